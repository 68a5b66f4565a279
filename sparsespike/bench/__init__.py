"""Benchmarks: ``python -m sparsespike.bench`` (sparsity vs throughput profiling).

Suites: ``spike_linear`` (event-driven propagation vs dense matmul and embedding_bag) and
``lif`` (the fused multi-step neuron vs step-by-step loops).
"""
