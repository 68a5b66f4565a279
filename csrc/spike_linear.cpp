#include "spike_linear.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <new>

#include "compact.h"
#include "parallel.h"
#include "spmm.h"
#include "transpose.h"

namespace sparsespike {

template <typename T>
void spike_linear_pack_weight(const T* weight, int64_t out, int64_t in, T* packed, int threads) {
  // B = W^T: row k of B is input k, column c is output c, i.e. weight[c * in + k].
  pack_tiles(weight, in, out, 1, in, packed, threads);
}

template <typename S, typename T>
ScanResult spike_linear_forward(const S* spikes, int64_t rows, int64_t in, const T* packed_weight,
                                int64_t out, const T* bias, T* y, int threads) {
  ScanResult result;
  RowEvents<T> events;
  if (!events.allocate(rows, in)) {
    result.out_of_memory = true;
    return result;
  }
  const int p = threads_for_work(threads, rows, rows * std::max<int64_t>(in, out));
  std::atomic<bool> any_bad{false};
  std::atomic<int64_t> total{0};

#pragma omp parallel num_threads(p)
  {
    const Range rr = thread_range(rows);
    bool bad = false;
    total += events.compact(spikes, in, rr, bad);
    if (bad) any_bad = true;
    parallel_barrier();
    // Validate before writing: a non-finite spike anywhere leaves y untouched.
    if (!any_bad.load() && rr.end > rr.begin)
      spmm_packed(events.beg.get(), events.end.get(), events.idx.get(), events.val.get(), rr.begin,
                  rr.end, packed_weight, in, out, bias, y, out);
  }
  result.nnz = total.load();
  result.nonfinite = any_bad.load();
  return result;
}

// acc[r][g][:] += v * tile_g[i][:] for every event (input i, row r, value v) sorted by input, NG
// consecutive packed weight tiles at once (tile g at tile0 + g * in * TW): one pass over the
// events serves NG tiles.
constexpr int kMaxTileGroup = 8;

template <typename T, int NG>
void add_events_to_tiles(const int64_t* start, const int32_t* by_row, const T* by_val, int64_t in,
                         const T* tile0, T* acc) {
  constexpr int64_t TW = tile_width<T>();
  for (int64_t i = 0; i < in; ++i) {
    for (int64_t e = start[i]; e < start[i + 1]; ++e) {
      T* dst = acc + static_cast<int64_t>(by_row[e]) * NG * TW;
      const T v = by_val[e];
      for (int g = 0; g < NG; ++g) {
        const T* w = tile0 + (g * in + i) * TW;
        for (int64_t j = 0; j < TW; ++j) dst[g * TW + j] += v * w[j];
      }
    }
  }
}

// Input-stationary forward. Phase 1: every thread compacts its rows (as in the forward); then a
// counting sort, parallel over ranges of inputs, regroups the events by input (rows ascending
// within an input; fc1 [800 x 147968] at 5%: 222 -> 182 ms against one thread's sort). Phase 2:
// each thread owns whole output tiles; per group of tiles it zeroes an accumulator
// [rows, group, TW] (in cache for the few rows this kernel is chosen for) and streams those tiles
// of the packed weight, [in, TW] each, contiguous, in input order, adding each active input's
// slices into the rows where it fired. Each output sums its events in ascending input order (as
// the gather does); deterministic.
template <typename S, typename T>
ScanResult spike_linear_forward_by_input(const S* spikes, int64_t rows, int64_t in,
                                         const T* packed_weight, int64_t out, const T* bias, T* y,
                                         int threads) {
  ScanResult result;
  constexpr int64_t TW = tile_width<T>();
  const int64_t tiles = tile_count<T>(out);
  RowEvents<T> events;
  std::unique_ptr<int64_t[]> start(new (std::nothrow) int64_t[in + 1]);
  std::unique_ptr<int32_t[]> by_row;
  std::unique_ptr<T[]> by_val;
  const int p = threads_for_work(threads, std::max(rows, tiles), rows * in + in * out);
  // Output tiles per pass over the events: while one tile's accumulator [rows, TW] fits in L1,
  // kMaxTileGroup of them side by side (fp32, fc1 [200 x 147968] at 3%: 33.4 -> 28.4 ms, at 5%:
  // 45.8 -> 44.1); with more rows a wider accumulator measured slower than re-streaming the
  // events (800 rows, two tiles a pass: 183 -> 194 ms).
  constexpr int64_t kL1Bytes = 32 << 10;
  const int64_t group = rows * TW * static_cast<int64_t>(sizeof(T)) > kL1Bytes ? 1 : kMaxTileGroup;
  std::unique_ptr<int64_t[]> range_events(new (std::nothrow) int64_t[p]);  // events per thread's inputs
  if (!events.allocate(rows, in) || !start || !range_events) {
    result.out_of_memory = true;
    return result;
  }
  std::atomic<bool> any_bad{false}, oom{false}, sort_oom{false};
  std::atomic<int64_t> total{0};

#pragma omp parallel num_threads(p)
  {
    bool bad = false;
    total += events.compact(spikes, in, thread_range(rows), bad);
    if (bad) any_bad = true;
    std::unique_ptr<T[]> acc(new (std::nothrow) T[rows * group * TW]);  // [rows, ng, TW]
    if (!acc) oom = true;
    parallel_barrier();
#pragma omp single
    if (!any_bad.load() && !oom.load()) {
      const int64_t nnz = std::max<int64_t>(total.load(), 1);
      by_row.reset(new (std::nothrow) int32_t[nnz]);
      by_val.reset(new (std::nothrow) T[nnz]);
      if (!by_row || !by_val) oom = true;
    }  // implicit barrier
    // Counting sort of the events by input, each thread over its own range of inputs: it finds
    // that range's events in every row (a row's events ascend by input), counts them, then
    // places them after the ranges of lower threads, rows ascending. The same order as one
    // thread's sort, so the sums below are independent of the thread count. The barriers stay
    // outside the branches: `sorting` reads flags no thread writes between here and the end.
    const bool sorting = !any_bad.load() && !oom.load();
    const Range ir = thread_range(in);
    const int64_t span = ir.end - ir.begin;
    auto own = [&](int64_t r) {  // this thread's events of row r
      const int32_t* b = events.idx.get() + events.beg[r];
      const int32_t* e = events.idx.get() + events.end[r];
      return std::make_pair(std::lower_bound(b, e, static_cast<int32_t>(ir.begin)) - events.idx.get(),
                            std::lower_bound(b, e, static_cast<int32_t>(ir.end)) - events.idx.get());
    };
    // this thread's counts, then its cursors: start[] is written only inside its own range
    std::unique_ptr<int64_t[]> cursor(sorting ? new (std::nothrow) int64_t[span + 1]() : nullptr);
    if (sorting) {
      int64_t count = 0;
      if (cursor) {
        for (int64_t r = 0; r < rows; ++r) {
          const auto [e0, e1] = own(r);
          for (int64_t e = e0; e < e1; ++e) ++cursor[events.idx[e] - ir.begin + 1];
          count += e1 - e0;
        }
      } else {
        sort_oom = true;
      }
      range_events[thread_index()] = count;
    }
    parallel_barrier();
    if (sorting && !sort_oom.load()) {
      int64_t base = 0;
      for (int k = 0; k < thread_index(); ++k) base += range_events[k];
      cursor[0] = base;
      for (int64_t j = 0; j < span; ++j) cursor[j + 1] += cursor[j];
      std::memcpy(start.get() + ir.begin, cursor.get(), span * sizeof(int64_t));
      if (ir.end == in) start[in] = cursor[span];
      for (int64_t r = 0; r < rows; ++r) {
        const auto [e0, e1] = own(r);
        for (int64_t e = e0; e < e1; ++e) {
          const int64_t slot = cursor[events.idx[e] - ir.begin]++;
          by_row[slot] = static_cast<int32_t>(r);
          by_val[slot] = events.val[e];
        }
      }
    }
    parallel_barrier();
    if (sorting && !sort_oom.load()) {
      // `group` tiles per pass over the events: the event list (tens of MB for fc1) is streamed
      // once per group instead of once per tile
      const Range tr = thread_range(tiles);
      T* a = acc.get();
      for (int64_t t0 = tr.begin; t0 < tr.end;) {
        const int64_t left = tr.end - t0;
        const int ng = group == 1 ? 1 : left >= 8 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
        std::fill(a, a + rows * ng * TW, T(0));
        const T* w = packed_weight + t0 * in * TW;
        switch (ng) {  // compile-time widths: a runtime tile loop measured 15% slower
          case 8: add_events_to_tiles<T, 8>(start.get(), by_row.get(), by_val.get(), in, w, a); break;
          case 4: add_events_to_tiles<T, 4>(start.get(), by_row.get(), by_val.get(), in, w, a); break;
          case 2: add_events_to_tiles<T, 2>(start.get(), by_row.get(), by_val.get(), in, w, a); break;
          default: add_events_to_tiles<T, 1>(start.get(), by_row.get(), by_val.get(), in, w, a);
        }
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t g = 0; g < ng; ++g) {
            const int64_t c0 = (t0 + g) * TW, valid = std::min(TW, out - c0);
            for (int64_t j = 0; j < valid; ++j)
              y[r * out + c0 + j] = a[(r * ng + g) * TW + j] + (bias ? bias[c0 + j] : T(0));
          }
        t0 += ng;
      }
    }
  }
  result.nnz = total.load();
  result.nonfinite = any_bad.load();
  result.out_of_memory = oom.load() || sort_oom.load();
  return result;
}

template <typename S, typename T>
ScanResult spike_linear_grad_weight(const S* spikes, int64_t rows, int64_t in, const T* grad,
                                    int64_t out, T* gw, int threads) {
  ScanResult result;
  constexpr int64_t TW = tile_width<T, kScatterTileBytes>();
  const int64_t tiles = tile_count<T, kScatterTileBytes>(out);
  const int p = threads_for_work(threads, std::max(rows, tiles), (rows + in) * out);
  RowEvents<T> events;
  std::unique_ptr<T[]> acc(new (std::nothrow) T[p * in * TW]);
  if (!events.allocate(rows, in) || !acc) {
    result.out_of_memory = true;
    return result;
  }
  std::atomic<bool> any_bad{false};
  std::atomic<int64_t> total{0};

#pragma omp parallel num_threads(p)
  {
    // Phase 1: every thread compacts its share of the rows (as in the forward).
    bool bad = false;
    total += events.compact(spikes, in, thread_range(rows), bad);
    if (bad) any_bad = true;
    parallel_barrier();

    // Phase 2: every thread owns whole column tiles of grad_weight^T and streams all rows into
    // them: no atomics, and each element sums its rows in ascending order. The tile's packed
    // [in, TW] accumulator stays in L2 (few pages); transposed once into gw's TW rows, it comes
    // out in nn.Linear's layout, so autograd keeps it without a transposing copy of its own.
    if (!any_bad.load()) {
      const Range tr = thread_range(tiles);
      T* tile_acc = acc.get() + static_cast<int64_t>(thread_index()) * in * TW;
      for (int64_t t = tr.begin; t < tr.end; ++t) {
        const int64_t c0 = t * TW, valid = std::min(TW, out - c0);
        std::memset(tile_acc, 0, in * TW * sizeof(T));
        scatter_tile(events.beg.get(), events.end.get(), events.idx.get(), events.val.get(), rows,
                     grad, out, c0, valid, tile_acc, TW);
        transpose(tile_acc, TW, in, valid, gw + c0 * in, in);
      }
    }
  }
  result.nnz = total.load();
  result.nonfinite = any_bad.load();
  return result;
}

// gw[out, in] = grad[rows, out]^T @ spikes[rows, in], input by input: each thread owns a range of
// inputs (columns of gw), lists each input's events (its rows ascending, so every element sums
// in a fixed order) and adds their grad rows into kInputBlock accumulator rows of an output
// chunk, transposed into gw's columns when done. Every grad row an event reads is one of `rows`:
// few rows keep grad in L2, where the scatter formulation's [in, tile] accumulator would not fit
// for wide inputs (fc1 of visual M1: 147968 inputs, 200 rows). gw comes out in nn.Linear's
// layout, so autograd keeps it without a transposing copy.
template <typename S, typename T>
ScanResult spike_linear_grad_weight_by_input(const S* spikes, int64_t rows, int64_t in, const T* grad,
                                             int64_t out, T* gw, int threads) {
  constexpr int64_t kInputBlock = 16;   // 16 floats: a whole cache line of each gw row written
  constexpr int64_t kOutChunk = 1024;   // accumulator rows of at most 4 KiB (floats)
  using V = typename Vec<T>::type;
  constexpr int L = Vec<T>::lanes;
  ScanResult result;
  const int p = threads_for_work(threads, (in + kInputBlock - 1) / kInputBlock, rows * in + in * out);
  std::atomic<bool> any_bad{false}, out_of_memory{false};
  std::atomic<int64_t> total{0};
#pragma omp parallel num_threads(p)
  {
    // this thread's inputs, a multiple of the block (the last thread takes the remainder)
    const int64_t blocks = (in + kInputBlock - 1) / kInputBlock;
    const Range br = thread_range(blocks);
    const int64_t j0 = br.begin * kInputBlock, j1 = std::min(in, br.end * kInputBlock), width = j1 - j0;
    std::unique_ptr<int64_t[]> start(new (std::nothrow) int64_t[width + 1]());
    bool bad = false;
    int64_t count = 0;
    if (start) {
      for (int64_t r = 0; r < rows; ++r) {  // counts per input
        const S* row = spikes + r * in;
        for (int64_t j = j0; j < j1; ++j) {
          start[j - j0 + 1] += row[j] != S(0);
          bad |= is_nonfinite(row[j]);
        }
      }
      for (int64_t j = 0; j < width; ++j) start[j + 1] += start[j];
      count = start[width];
    }
    std::unique_ptr<int32_t[]> event_row(new (std::nothrow) int32_t[std::max<int64_t>(count, 1)]);
    std::unique_ptr<T[]> event_val(new (std::nothrow) T[std::max<int64_t>(count, 1)]);
    std::unique_ptr<T[]> acc(new (std::nothrow) T[kInputBlock * std::min(out, kOutChunk) + L]);
    std::unique_ptr<int64_t[]> cursor(new (std::nothrow) int64_t[width]);
    if (!start || !event_row || !event_val || !acc || !cursor) out_of_memory = true;
    if (bad) any_bad = true;
    total += count;
    parallel_barrier();
    // Validate (every thread's inputs) before writing any output.
    if (!any_bad.load() && !out_of_memory.load()) {
      std::memcpy(cursor.get(), start.get(), width * sizeof(int64_t));
      for (int64_t r = 0; r < rows; ++r) {  // rows ascending: each input's events in row order
        const S* row = spikes + r * in;
        for (int64_t j = j0; j < j1; ++j)
          if (row[j] != S(0)) {
            const int64_t e = cursor[j - j0]++;
            event_row[e] = static_cast<int32_t>(r);
            event_val[e] = static_cast<T>(row[j]);
          }
      }
      constexpr int64_t NV = 8;  // accumulator registers: 8 vectors of outputs per pass
      for (int64_t o0 = 0; o0 < out; o0 += kOutChunk) {
        const int64_t oc = std::min(kOutChunk, out - o0), reg_end = oc - oc % (NV * L);
        for (int64_t b0 = j0; b0 < j1; b0 += kInputBlock) {
          const int64_t nb = std::min(kInputBlock, j1 - b0);
          for (int64_t jj = 0; jj < nb; ++jj) {
            T* a = acc.get() + jj * oc;
            const int64_t e0 = start[b0 + jj - j0], e1 = start[b0 + jj - j0 + 1];
            // the input's few events, re-read per register block: its sums never leave registers
            for (int64_t c = 0; c < reg_end; c += NV * L) {
              V r[NV] = {};
              for (int64_t e = e0; e < e1; ++e) {
                const V v = splat<V>(event_val[e]);
                const T* g = grad + static_cast<int64_t>(event_row[e]) * out + o0 + c;
                for (int k = 0; k < NV; ++k) r[k] = fmadd(v, load_vec<V>(g + k * L), r[k]);
              }
              for (int k = 0; k < NV; ++k) store_vec(a + c + k * L, r[k]);
            }
            for (int64_t c = reg_end; c < oc; ++c) {  // the ragged right edge
              T sum = T(0);
              for (int64_t e = e0; e < e1; ++e)
                sum = std::fma(event_val[e], grad[static_cast<int64_t>(event_row[e]) * out + o0 + c], sum);
              a[c] = sum;
            }
          }
          // acc[nb][oc] -> gw[o0 + c][b0 + jj]
          transpose(acc.get(), oc, nb, oc, gw + o0 * in + b0, in);
        }
      }
    }
  }
  result.nnz = total.load();
  result.nonfinite = any_bad.load();
  result.out_of_memory = out_of_memory.load();
  return result;
}

// dst[i] = g . W[:, i] for the N inputs i in `inputs`, W packed [tiles, in, TW]: lane-wise
// partial sums within a tile (full tiles have a constant trip count, so they vectorise), tile
// after tile, then the lanes in order; the same order for every N.
template <typename T, int N>
inline void masked_dots(const int64_t* inputs, const T* g, const T* packed, int64_t in, int64_t out,
                        T* dst) {
  constexpr int64_t TW = tile_width<T>();
  const int64_t full = out / TW, rest = out - full * TW;
  T acc[N][TW] = {};
  const T* w[N];
  for (int n = 0; n < N; ++n) w[n] = packed + inputs[n] * TW;
  for (int64_t t = 0; t < full; ++t) {
    const T* gt = g + t * TW;
    for (int n = 0; n < N; ++n) {
      const T* wt = w[n] + t * in * TW;
      for (int64_t j = 0; j < TW; ++j) acc[n][j] += gt[j] * wt[j];
    }
  }
  if (rest) {
    const T* gt = g + full * TW;
    for (int n = 0; n < N; ++n) {
      const T* wt = w[n] + full * in * TW;
      for (int64_t j = 0; j < rest; ++j) acc[n][j] += gt[j] * wt[j];
    }
  }
  for (int n = 0; n < N; ++n) {
    T sum = T(0);
    for (int64_t j = 0; j < TW; ++j) sum += acc[n][j];
    dst[inputs[n]] = sum;
  }
}

// The positions i in [i0, i1) where m[i] != 0, ascending, into listed; returns how many. 32
// bytes per compare (an element-by-element scan cost more than the dot products at 3% of entries).
inline int64_t list_nonzero(const uint8_t* m, int64_t i0, int64_t i1, int64_t* listed) {
  int64_t count = 0, i = i0;
  uint32_t unused = 0;
  for (; i + 32 <= i1; i += 32) {
    uint32_t bits = nonzero_mask32(m + i, unused);
    while (bits) {
      listed[count++] = i + __builtin_ctz(bits);
      bits &= bits - 1;
    }
  }
  for (; i < i1; ++i)
    if (m[i]) listed[count++] = i;
  return count;
}

// The input gradient where the mask lists an input, the mirror image of the forward's gather:
// the input's packed weight row (tile by tile) dotted with the row's grad instead of added to
// the output. It reads the forward's packed weight, which the forward of this weight version
// built and cached (a transposed copy for the backward cost 220 ms per step for visual fc1).
// Each thread owns blocks of inputs whose packed rows fit in L2 (~256 KiB) and runs every row
// over them, so each weight row is read from memory once (row by row re-read a random row per
// listed entry: 0.7x the dense product for fc1). Listed inputs go two at a time (masked_dots):
// 1.3-1.6x faster than one at a time, measured. Each element sums in a fixed order:
// deterministic.
template <typename T>
void spike_linear_grad_input_masked(const uint8_t* mask, int64_t rows, int64_t in, const T* grad,
                                    const T* packed_weight, int64_t out, T* gx, int threads) {
  constexpr int64_t TW = tile_width<T>();
  const int64_t tiles = tile_count<T>(out);
  constexpr int64_t kMaxBlock = 2048;  // the listed inputs of a block live on the stack (16 KiB)
  const int64_t block =
      std::clamp<int64_t>((256 << 10) / (tiles * TW * static_cast<int64_t>(sizeof(T))), 16, kMaxBlock);
  const int64_t blocks = (in + block - 1) / block;
  const int p = threads_for_work(threads, blocks, rows * in);
#pragma omp parallel for num_threads(p) schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t i0 = b * block, i1 = std::min(in, i0 + block);
    int64_t listed[kMaxBlock];  // no allocation: nothing can throw inside the parallel region
    for (int64_t r = 0; r < rows; ++r) {
      const uint8_t* m = mask + r * in;
      const T* g = grad + r * out;
      T* dst = gx + r * in;
      std::fill(dst + i0, dst + i1, T(0));
      const int64_t count = list_nonzero(m, i0, i1, listed);
      // two inputs per pass: each grad tile loaded once for both, eight independent vector sums
      int64_t k = 0;
      for (; k + 2 <= count; k += 2)
        masked_dots<T, 2>(&listed[k], g, packed_weight, in, out, dst);
      if (k < count) masked_dots<T, 1>(&listed[k], g, packed_weight, in, out, dst);
    }
  }
}

template <typename S>
ScanResult scan_spikes(const S* spikes, int64_t rows, int64_t in, int threads) {
  const int p = threads_for_work(threads, rows, rows * in);
  int64_t total = 0;
  bool any_bad = false;
#pragma omp parallel num_threads(p) reduction(+ : total) reduction(|| : any_bad)
  {
    const Range rr = thread_range(rows);
    bool bad = false;
    for (int64_t r = rr.begin; r < rr.end; ++r) total += count_row(spikes + r * in, in, bad);
    any_bad = any_bad || bad;
  }
  ScanResult result;
  result.nnz = total;
  result.nonfinite = any_bad;
  return result;
}

#define SPARSESPIKE_INSTANTIATE(S, T)                                                         \
  template ScanResult spike_linear_forward<S, T>(const S*, int64_t, int64_t, const T*, int64_t, \
                                                 const T*, T*, int);                           \
  template ScanResult spike_linear_forward_by_input<S, T>(const S*, int64_t, int64_t, const T*,  \
                                                          int64_t, const T*, T*, int);          \
  template ScanResult spike_linear_grad_weight<S, T>(const S*, int64_t, int64_t, const T*,      \
                                                     int64_t, T*, int);                        \
  template ScanResult spike_linear_grad_weight_by_input<S, T>(const S*, int64_t, int64_t,       \
                                                              const T*, int64_t, T*, int);

template void spike_linear_pack_weight<float>(const float*, int64_t, int64_t, float*, int);
template void spike_linear_pack_weight<double>(const double*, int64_t, int64_t, double*, int);
template void spike_linear_grad_input_masked<float>(const uint8_t*, int64_t, int64_t, const float*,
                                                    const float*, int64_t, float*, int);
template void spike_linear_grad_input_masked<double>(const uint8_t*, int64_t, int64_t, const double*,
                                                     const double*, int64_t, double*, int);
SPARSESPIKE_INSTANTIATE(float, float)
SPARSESPIKE_INSTANTIATE(double, double)
SPARSESPIKE_INSTANTIATE(uint8_t, float)
SPARSESPIKE_INSTANTIATE(uint8_t, double)
template ScanResult scan_spikes<float>(const float*, int64_t, int64_t, int);
template ScanResult scan_spikes<double>(const double*, int64_t, int64_t, int);
template ScanResult scan_spikes<uint8_t>(const uint8_t*, int64_t, int64_t, int);

}  // namespace sparsespike
