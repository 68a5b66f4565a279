// Fused multi-step leaky integrate-and-fire neuron (CPU): one pass over T forward, one reverse
// pass backward, parallel over blocks of neurons. The recurrences are those of
// sparsespike/ops/lif_reference.py, evaluated in the same order with the same roundings (this
// file is compiled without FMA contraction), so spikes and membranes equal the reference's bit
// for bit. Arrays are C-contiguous: [steps, n] for sequences, [n] for per-neuron values.
#pragma once

#include <cstdint>
#include <limits>

namespace sparsespike {

enum class LifConvention : int { snntorch = 0, spikingjelly = 1 };
enum class LifReset : int { subtract = 0, zero = 1, none = 2 };
enum class Surrogate : int { fast_sigmoid = 0, atan = 1, sigmoid = 2, triangle = 3 };

struct LifConfig {
  LifConvention convention = LifConvention::snntorch;
  LifReset reset = LifReset::subtract;
  bool detach_reset = true;
  Surrogate surrogate = Surrogate::fast_sigmoid;
  double surrogate_param = 25.0;
  // the surrogate is zero where |membrane - threshold| >= grad_band (infinity: no band)
  double grad_band = std::numeric_limits<double>::infinity();
  bool decay_input = true;  // spikingjelly only: h = beta v + (1 - beta) x
};

// spikes[t, n] in {0, 1}, trace[t, n] = membrane compared with the threshold (trace may be null
// when not wanted: inference), v_final[n], and band[t, n] = |trace - threshold| < band_width as
// one byte (band may be null). Returns false if the current holds NaN or Inf (outputs then
// unspecified).
template <typename T>
bool lif_forward(const T* current, int64_t steps, int64_t n, const T* beta, const T* threshold,
                 const T* v0, const LifConfig& cfg, T* spikes, T* trace, T* v_final, uint8_t* band,
                 double band_width, int threads);

// Gradients from grad_spikes / grad_trace (rows of n, `*_step` apart: n for [steps, n], 0 for
// one row broadcast over the steps; either may be null) and grad_v_final ([n], may be null).
// trace may be null: each neuron block then recomputes it from current, with the forward's own
// code, into a scratch that stays in cache (nothing but the input is saved for backward).
// current is also read for spikingjelly with decay_input. grad_beta and grad_threshold are per
// element [n] (callers reduce over shared parameters). Returns false if a recompute met NaN or
// Inf in current (outputs then unspecified).
template <typename T>
bool lif_backward(const T* grad_spikes, int64_t grad_spikes_step, const T* grad_trace,
                  int64_t grad_trace_step, const T* grad_v_final, const T* current,
                  const T* trace, int64_t steps, int64_t n, const T* beta, const T* threshold,
                  const T* v0, const LifConfig& cfg, T* grad_current, T* grad_beta,
                  T* grad_threshold, T* grad_v0, int threads);

}  // namespace sparsespike
