// Sparse x dense product, Y[r, :] = init[:] + sum_j val[j] * B[idx[j], :] for j in [beg[r], end[r]).
//
// The forward of spike_linear is spmm_packed (A = spikes, B = W^T); its weight gradient is
// scatter_tile, the same tiling turned around. B comes packed in column tiles: tile t is a
// contiguous [k_rows, TW] block (TW columns = kGatherTileBytes, zero-padded at the right edge). A tile
// spans few pages, so gathering random rows of it misses neither L2 nor the TLB (with B
// row-major, every gathered row is on another page: measured 1.5x slower). The accumulators of a
// tile live in registers. Rows are given by begin/end offsets, so threads can compact rows into
// slices of their own. Summation order is fixed (j ascending), so results are deterministic and
// independent of the thread count.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "parallel.h"
#include "simd.h"

namespace sparsespike {

// Column tile widths in bytes. The forward gathers rows of a packed weight tile, where 128-byte
// rows (4 accumulators a set, no register spills) measured ~10% faster than 256 at 3% density and
// 1024 inputs; the weight gradient read-modify-writes an accumulator tile, where 256-byte rows
// halve the passes over the events and measured ~8% faster than 128.
constexpr int64_t kGatherTileBytes = 128;
constexpr int64_t kScatterTileBytes = 256;

template <typename T, int64_t Bytes = kGatherTileBytes>
constexpr int64_t tile_width() {
  return Bytes / sizeof(T);
}

template <typename T, int64_t Bytes = kGatherTileBytes>
inline int64_t tile_count(int64_t n) {
  return (n + tile_width<T, Bytes>() - 1) / tile_width<T, Bytes>();
}

// packed[t][k][c] = src[k * stride_k + (t * TW + c) * stride_c], zero beyond column n.
// Each (tile, column) reads a source line along k: sequential when stride_k == 1, as in the
// transposing pack B = W^T from W.
template <typename T>
void pack_tiles(const T* src, int64_t k_rows, int64_t n, int64_t stride_k, int64_t stride_c,
                T* packed, int threads) {
  constexpr int64_t TW = tile_width<T>();
  // k in chunks whose TW-wide slab of the tile (32 KiB) stays in L1 while all TW columns fill it;
  // one pass over k per column wrote each 128-byte slab row TW times from memory (measured: a
  // 512 x 147968 weight packed in 278 ms before)
  constexpr int64_t kChunk = (32 << 10) / (TW * sizeof(T));
  const int64_t tiles = tile_count<T>(n), chunks = (k_rows + kChunk - 1) / kChunk;
#pragma omp parallel for num_threads(clamp_threads(threads, tiles * chunks)) schedule(static)
  for (int64_t job = 0; job < tiles * chunks; ++job) {
    const int64_t t = job / chunks, k0 = (job % chunks) * kChunk, k1 = std::min(k_rows, k0 + kChunk);
    T* block = packed + t * k_rows * TW;
    for (int64_t c = 0; c < TW; ++c) {
      const int64_t col = t * TW + c;
      if (col < n) {
        const T* line = src + col * stride_c;
        for (int64_t k = k0; k < k1; ++k) block[k * TW + c] = line[k * stride_k];
      } else {
        for (int64_t k = k0; k < k1; ++k) block[k * TW + c] = T(0);
      }
    }
  }
}

// One column tile: y[r, c0:c0+valid] for rows [r0, r1), gathering rows of `block`, whose row k
// holds the tile's TW columns at block + k * ldb (TW readable elements even where valid < TW).
// Two accumulator sets take alternate nonzeros: shorter FMA dependency chains.
template <typename T>
void spmm_tile(const int64_t* beg, const int64_t* end, const int32_t* idx, const T* val,
               int64_t r0, int64_t r1, const T* block, int64_t ldb, int64_t c0, int64_t valid,
               const T* init, T* y, int64_t ldy) {
  using V = typename Vec<T>::type;
  constexpr int L = Vec<T>::lanes;
  constexpr int TW = tile_width<T>();
  constexpr int NV = TW / L;
  T init_pad[TW] = {};
  if (init) std::memcpy(init_pad, init + c0, valid * sizeof(T));
  for (int64_t r = r0; r < r1; ++r) {
    V acc[NV], acc2[NV];
    for (int k = 0; k < NV; ++k) {
      acc[k] = load_vec<V>(init_pad + k * L);
      acc2[k] = V{};
    }
    int64_t j = beg[r];
    for (; j + 1 < end[r]; j += 2) {
      const V v = splat<V>(val[j]);
      const V v2 = splat<V>(val[j + 1]);
      const T* row = block + static_cast<int64_t>(idx[j]) * ldb;
      const T* row2 = block + static_cast<int64_t>(idx[j + 1]) * ldb;
      for (int k = 0; k < NV; ++k) {
        acc[k] = fmadd(v, load_vec<V>(row + k * L), acc[k]);
        acc2[k] = fmadd(v2, load_vec<V>(row2 + k * L), acc2[k]);
      }
    }
    if (j < end[r]) {
      const V v = splat<V>(val[j]);
      const T* row = block + static_cast<int64_t>(idx[j]) * ldb;
      for (int k = 0; k < NV; ++k) acc[k] = fmadd(v, load_vec<V>(row + k * L), acc[k]);
    }
    for (int k = 0; k < NV; ++k) acc[k] += acc2[k];
    T* out = y + r * ldy + c0;
    if (valid == TW) {
      // y is written once and not read here again: stream it (about a third of the forward's
      // time at 3% density went to reading output lines just to overwrite them)
      if (!stream_vec(out, acc[0]))
        for (int k = 0; k < NV; ++k) store_vec(out + k * L, acc[k]);
      else
        for (int k = 1; k < NV; ++k) stream_vec(out + k * L, acc[k]);
    } else {
      T tmp[TW];
      for (int k = 0; k < NV; ++k) store_vec(tmp + k * L, acc[k]);
      std::memcpy(out, tmp, valid * sizeof(T));
    }
  }
}

// Rows [r0, r1) of y (width n, row stride ldy) from the sparse rows [r0, r1) and B packed by
// pack_tiles. Rows go in blocks of 256, all tiles per block: the block's output rows stay within
// reach of the TLB while each tile of B is re-read once per block (measured ~8% faster than one
// tile at a time over all rows).
template <typename T>
void spmm_packed(const int64_t* beg, const int64_t* end, const int32_t* idx, const T* val,
                 int64_t r0, int64_t r1, const T* packed, int64_t k_rows, int64_t n,
                 const T* init, T* y, int64_t ldy) {
  constexpr int64_t TW = tile_width<T>();
  constexpr int64_t kRowBlock = 256;
  for (int64_t rb = r0; rb < r1; rb += kRowBlock)
    for (int64_t t = 0; t < tile_count<T>(n); ++t)
      spmm_tile(beg, end, idx, val, rb, std::min(rb + kRowBlock, r1), packed + t * k_rows * TW, TW,
                t * TW, std::min(TW, n - t * TW), init, y, ldy);
  stream_fence();
}

// The transposed product by scattering: acc[idx[j], 0:valid] += val[j] * g[r, c0:c0+valid] for
// every nonzero j of every row r in [0, rows). acc is a column tile (TW of kScatterTileBytes)
// with row stride ld_acc: either packed ([k_rows, TW], stays in L2 and on few pages; its padding lanes receive zeros) or
// the output itself (ld_acc = its width, c0 already applied) when there are too few events to pay
// for packing. Each row of g is loaded once into registers and added into the rows of acc its
// nonzeros select. Sums run over r ascending.
template <typename T>
void scatter_tile(const int64_t* beg, const int64_t* end, const int32_t* idx, const T* val,
                  int64_t rows, const T* g, int64_t ldg, int64_t c0, int64_t valid, T* acc,
                  int64_t ld_acc) {
  using V = typename Vec<T>::type;
  constexpr int L = Vec<T>::lanes;
  constexpr int TW = tile_width<T, kScatterTileBytes>();
  constexpr int NV = TW / L;
  const bool full_lanes = valid == TW || ld_acc == TW;
  for (int64_t r = 0; r < rows; ++r) {
    if (beg[r] == end[r]) continue;
    T g_pad[TW] = {};
    std::memcpy(g_pad, g + r * ldg + c0, valid * sizeof(T));
    if (!full_lanes) {  // ragged edge of the output itself: only `valid` lanes exist
      for (int64_t j = beg[r]; j < end[r]; ++j) {
        T* dst = acc + static_cast<int64_t>(idx[j]) * ld_acc;
        for (int64_t c = 0; c < valid; ++c) dst[c] += val[j] * g_pad[c];
      }
      continue;
    }
    V gv[NV];
    for (int k = 0; k < NV; ++k) gv[k] = load_vec<V>(g_pad + k * L);
    for (int64_t j = beg[r]; j < end[r]; ++j) {
      const V v = splat<V>(val[j]);
      T* dst = acc + static_cast<int64_t>(idx[j]) * ld_acc;
      for (int k = 0; k < NV; ++k) store_vec(dst + k * L, fmadd(v, gv[k], load_vec<V>(dst + k * L)));
    }
  }
}

}  // namespace sparsespike
