"""Triton GPU kernels of sparsespike, one module per op (installed as sparsespike.kernels).

Importing a module decorates its kernels: set TRITON_INTERPRET=1 before that to run them on the
CPU (sparsespike does so itself on machines without CUDA).
"""
