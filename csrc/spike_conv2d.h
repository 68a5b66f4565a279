// Event-driven 2-D convolution of spike maps (CPU): out = conv2d(spikes, weight) + bias, NCHW,
// groups = 1, touching only the nonzero inputs.
//
// All arrays are C-contiguous; callers validate shapes, dtypes and sizes before calling.
// S is the spike element type (float, double or uint8 for bool/uint8 spikes), T the weight type.
#pragma once

#include <cstdint>

namespace sparsespike {

// Geometry of one convolution. Padding is given as the top/left amounts only: with the output
// size fixed by h_out/w_out, the bottom/right padding is implied (and may differ, as for
// padding="same" with an even dilated kernel).
struct ConvShape {
  int64_t n, c_in, h, w;       // input [n, c_in, h, w]
  int64_t c_out, h_out, w_out;  // output [n, c_out, h_out, w_out]
  int64_t kh, kw;               // kernel
  int64_t sh, sw;               // stride (>= 1)
  int64_t ph, pw;               // top / left padding (>= 0)
  int64_t dh, dw;               // dilation (>= 1)
};

struct ConvResult {
  int64_t nnz = 0;    // nonzero inputs (events)
  int64_t reach = 0;  // (event, kernel tap) pairs that land inside the output: SynOps / c_out
  bool nonfinite = false;  // a NaN or Inf spike was found: no output was written
  bool out_of_memory = false;
};

// Output channels rounded up to whole 32-byte vectors: the row width of the packed weight.
int64_t conv_padded_width(int64_t c_out, int64_t itemsize);

// weight [c_out, c_in, kh, kw] -> packed [c_in * kh * kw][cpad], cpad = conv_padded_width,
// output channels zero-padded: one event's kernel slice for one tap is one contiguous row.
template <typename T>
void conv_pack_weight(const T* weight, const ConvShape& s, int64_t cpad, T* packed, int threads);

// out[n, c_out, h_out, w_out] from the packed weight (and bias[c_out] or nullptr).
template <typename S, typename T>
ConvResult spike_conv2d_forward(const S* spikes, const ConvShape& s, const T* packed, int64_t cpad,
                                const T* bias, T* out, int threads);

// gwt[c_in * kh * kw, c_out] = the weight gradient (rows in packing order, i.e. the gradient of
// weight.permute(1, 2, 3, 0)), summing grad_out[n, :, oy, ox] over the active inputs only.
template <typename S, typename T>
ConvResult spike_conv2d_grad_weight(const S* spikes, const ConvShape& s, const T* grad_out, T* gwt,
                                    int threads);

// grad_in[n, c_in, h, w] = the input gradient (conv_transpose2d of grad_out) at the nonzeros of
// mask [n, c_in, h, w] (uint8), zero elsewhere, from the forward's packed weight.
template <typename T>
ConvResult spike_conv2d_grad_input_masked(const uint8_t* mask, const ConvShape& s, const T* grad_out,
                                          const T* packed, int64_t cpad, T* grad_in, int threads);

// nnz and reach of the spikes (and the non-finite check), for the dense path's SynOp count.
template <typename S>
ConvResult spike_conv2d_scan(const S* spikes, const ConvShape& s, int threads);

}  // namespace sparsespike
