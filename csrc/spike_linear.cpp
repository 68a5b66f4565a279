#include "spike_linear.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <new>

#include "compact.h"
#include "parallel.h"
#include "spmm.h"

namespace sparsespike {

template <typename T>
void pack_weight(const T* weight, int64_t out, int64_t in, T* packed, int threads) {
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

template <typename S, typename T>
ScanResult spike_linear_grad_weight(const S* spikes, int64_t rows, int64_t in, const T* grad,
                                    int64_t out, T* gwt, int threads) {
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
    // them: no atomics, and each element sums its rows in ascending order. With at least one
    // event per input on average, a packed accumulator tile (in L2, few pages) pays for its
    // zeroing and copy-out; with fewer, events scatter straight into the zeroed output.
    if (!any_bad.load()) {
      const Range tr = thread_range(tiles);
      const bool packed = total.load() >= in;
      T* tile_acc = acc.get() + static_cast<int64_t>(thread_index()) * in * TW;
      for (int64_t t = tr.begin; t < tr.end; ++t) {
        const int64_t c0 = t * TW, valid = std::min(TW, out - c0);
        T* dst = packed ? tile_acc : gwt + c0;
        const int64_t ld = packed ? TW : out;
        for (int64_t i = 0; i < in; ++i)
          std::memset(dst + i * ld, 0, (packed ? TW : valid) * sizeof(T));
        scatter_tile(events.beg.get(), events.end.get(), events.idx.get(), events.val.get(), rows,
                     grad, out, c0, valid, dst, ld);
        if (packed)
          for (int64_t i = 0; i < in; ++i)
            std::memcpy(gwt + i * out + c0, tile_acc + i * TW, valid * sizeof(T));
      }
    }
  }
  result.nnz = total.load();
  result.nonfinite = any_bad.load();
  return result;
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
  template ScanResult spike_linear_grad_weight<S, T>(const S*, int64_t, int64_t, const T*,      \
                                                     int64_t, T*, int);

template void pack_weight<float>(const float*, int64_t, int64_t, float*, int);
template void pack_weight<double>(const double*, int64_t, int64_t, double*, int);
SPARSESPIKE_INSTANTIATE(float, float)
SPARSESPIKE_INSTANTIATE(double, double)
SPARSESPIKE_INSTANTIATE(uint8_t, float)
SPARSESPIKE_INSTANTIATE(uint8_t, double)
template ScanResult scan_spikes<float>(const float*, int64_t, int64_t, int);
template ScanResult scan_spikes<double>(const double*, int64_t, int64_t, int);
template ScanResult scan_spikes<uint8_t>(const uint8_t*, int64_t, int64_t, int);

}  // namespace sparsespike
