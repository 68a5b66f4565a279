// Event-driven spike propagation through a dense weight matrix (CPU).
//
// All arrays are C-contiguous; callers validate shapes, dtypes and sizes before calling.
// S is the spike element type (float, double or uint8 for bool/uint8 spikes), T the weight type.
#pragma once

#include <cstdint>

namespace sparsespike {

struct ScanResult {
  int64_t nnz = 0;         // nonzeros of the spike tensor = events propagated
  bool nonfinite = false;  // a NaN or Inf was found: no output was written
  bool out_of_memory = false;
};

// Packs weight[out, in] into the input-major tiled layout the forward gathers from:
// packed[tile_count(out)][in][tile_width] (see spmm.h). Done once per weight version by callers.
template <typename T>
void spike_linear_pack_weight(const T* weight, int64_t out, int64_t in, T* packed, int threads);

// y[rows, out] = spikes[rows, in] @ W^T (+ bias[out]), W given packed by spike_linear_pack_weight.
template <typename S, typename T>
ScanResult spike_linear_forward(const S* spikes, int64_t rows, int64_t in, const T* packed_weight,
                                int64_t out, const T* bias, T* y, int threads);

// The same y, input-stationary: the events regrouped by input, and each thread streams its output
// tiles of the packed weight once, adding every input's slice into the rows where it fired. For
// wide inputs and few rows (visual fc1), where the row-by-row gather reads the weight many times.
template <typename S, typename T>
ScanResult spike_linear_forward_by_input(const S* spikes, int64_t rows, int64_t in,
                                         const T* packed_weight, int64_t out, const T* bias, T* y,
                                         int threads);

// gw[out, in] = (spikes[rows, in]^T @ grad[rows, out])^T (nn.Linear's weight layout), touching
// only active inputs: scattered row by row into column tiles.
template <typename S, typename T>
ScanResult spike_linear_grad_weight(const S* spikes, int64_t rows, int64_t in, const T* grad,
                                    int64_t out, T* gw, int threads);

// gw[out, in] = spikes[rows, in]^T @ grad[rows, out], transposed (nn.Linear's weight layout),
// input by input: for few rows (grad in cache) and wide inputs.
template <typename S, typename T>
ScanResult spike_linear_grad_weight_by_input(const S* spikes, int64_t rows, int64_t in, const T* grad,
                                             int64_t out, T* gw, int threads);

// gx[rows, in] = grad[rows, out] @ W at the nonzeros of mask[rows, in] (bool/uint8), zero
// elsewhere, W given packed by spike_linear_pack_weight: one dot product per listed input.
template <typename T>
void spike_linear_grad_input_masked(const uint8_t* mask, int64_t rows, int64_t in, const T* grad,
                                    const T* packed_weight, int64_t out, T* gx, int threads);

// Nonzero count and non-finite check of spikes[rows, in], for the dense path's SynOp count.
template <typename S>
ScanResult scan_spikes(const S* spikes, int64_t rows, int64_t in, int threads);

}  // namespace sparsespike
