// HGRN scan (CPU): the element-wise gated linear recurrence h_t = exp(g_t) * h_{t-1} + x_t over
// time (Qin et al., NeurIPS 2023), forward and its reverse-time backward, parallel over blocks
// of neurons, time-outer, the inner loop vectorised over contiguous neurons (lanes.h). Arrays
// are C-contiguous: [steps, n] for sequences, [n] per neuron. Every output element is computed
// by one thread in a fixed order: results do not depend on the thread count.
#pragma once

#include <cstdint>

namespace sparsespike {

// What a forward found in its inputs (outputs are unspecified unless ok).
enum class HgrnStatus : int { ok = 0, x_nonfinite = 1, g_nonfinite = 2, h0_nonfinite = 3, g_positive = 4 };

// h[t, :] = exp(g[t, :]) * h[t - 1, :] + x[t, :] with h[-1, :] = h0; h_final = h[steps - 1, :].
template <typename T>
HgrnStatus hgrn_scan_forward(const T* x, const T* g, const T* h0, int64_t steps, int64_t n, T* h,
                             T* h_final, int threads);

// Gradients of the forward. grad_h holds rows of n, `grad_h_step` apart (n for [steps, n], 0 for
// one row broadcast over the steps), or is null; grad_h_final [n] may be null. With
// a_t = grad_h[t] + exp(g[t + 1]) * a_{t + 1} (+ grad_h_final at the last step):
// grad_x[t] = a_t, grad_g[t] = a_t * exp(g[t]) * h[t - 1], grad_h0 = exp(g[0]) * a_0.
template <typename T>
void hgrn_scan_backward(const T* grad_h, int64_t grad_h_step, const T* grad_h_final, const T* g,
                        const T* h, const T* h0, int64_t steps, int64_t n, T* grad_x, T* grad_g,
                        T* grad_h0, int threads);

}  // namespace sparsespike
