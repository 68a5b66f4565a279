#include "spike_linear.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <new>
#include <vector>

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
  // Room for every row fully active; only the pages the compaction touches are ever faulted in.
  std::unique_ptr<int32_t[]> idx(new (std::nothrow) int32_t[rows * in]);
  std::unique_ptr<T[]> val(new (std::nothrow) T[rows * in]);
  std::unique_ptr<int64_t[]> rowbeg(new (std::nothrow) int64_t[rows]);
  std::unique_ptr<int64_t[]> rowend(new (std::nothrow) int64_t[rows]);
  if (!idx || !val || !rowbeg || !rowend) {
    result.out_of_memory = true;
    return result;
  }
  const int p = clamp_threads(threads, rows);
  std::atomic<bool> any_bad{false};
  std::atomic<int64_t> total{0};

#pragma omp parallel num_threads(p)
  {
    const Range rr = thread_range(rows);
    // Each thread compacts its own rows into its own slice [r0 * in, r1 * in) of the buffers;
    // rowbeg/rowend hold absolute offsets, so the slices never need to be joined.
    bool bad = false;
    int64_t n = rr.begin * in;
    for (int64_t r = rr.begin; r < rr.end; ++r) {
      rowbeg[r] = n;
      n += compact_row(spikes + r * in, in, idx.get() + n, val.get() + n, bad);
      rowend[r] = n;
    }
    if (bad) any_bad = true;
    total += n - rr.begin * in;
    parallel_barrier();
    // Validate before writing: a non-finite spike anywhere leaves y untouched.
    if (!any_bad.load() && rr.end > rr.begin)
      spmm_packed(rowbeg.get(), rowend.get(), idx.get(), val.get(), rr.begin, rr.end,
                  packed_weight, in, out, bias, y, out);
  }
  result.nnz = total.load();
  result.nonfinite = any_bad.load();
  return result;
}

template <typename S, typename T>
ScanResult spike_linear_grad_weight(const S* spikes, int64_t rows, int64_t in, const T* grad,
                                    int64_t out, T* gwt, int threads) {
  ScanResult result;
  const int p = clamp_threads(threads, rows);
  // Transposed compaction (CSR of spikes^T) by a stable counting sort: rows stay in ascending
  // order within each input, whatever the thread count, so the sums below are deterministic.
  std::vector<int64_t> counts(static_cast<size_t>(p) * in, 0);
  std::unique_ptr<int32_t[]> scratch_idx(new (std::nothrow) int32_t[p * in]);
  std::unique_ptr<T[]> scratch_val(new (std::nothrow) T[p * in]);
  if (!scratch_idx || !scratch_val) {
    result.out_of_memory = true;
    return result;
  }
  std::atomic<bool> any_bad{false};

#pragma omp parallel num_threads(p)
  {
    const int t = thread_index();
    const Range rr = thread_range(rows);
    int32_t* sidx = scratch_idx.get() + static_cast<int64_t>(t) * in;
    T* sval = scratch_val.get() + static_cast<int64_t>(t) * in;
    int64_t* cnt = counts.data() + static_cast<int64_t>(t) * in;
    bool bad = false;
    for (int64_t r = rr.begin; r < rr.end; ++r) {
      const int64_t n = compact_row(spikes + r * in, in, sidx, sval, bad);
      for (int64_t j = 0; j < n; ++j) ++cnt[sidx[j]];
    }
    if (bad) any_bad = true;
  }
  result.nonfinite = any_bad.load();
  if (result.nonfinite) return result;

  // colptr[i] = start of input i; counts become each thread's write cursor inside input i.
  std::vector<int64_t> colptr(in + 1, 0);
  for (int64_t i = 0; i < in; ++i) {
    int64_t cursor = colptr[i];
    for (int t = 0; t < p; ++t) {
      const int64_t c = counts[static_cast<int64_t>(t) * in + i];
      counts[static_cast<int64_t>(t) * in + i] = cursor;
      cursor += c;
    }
    colptr[i + 1] = cursor;
  }
  const int64_t nnz = colptr[in];
  result.nnz = nnz;
  std::unique_ptr<int32_t[]> ridx(new (std::nothrow) int32_t[std::max<int64_t>(nnz, 1)]);
  std::unique_ptr<T[]> rval(new (std::nothrow) T[std::max<int64_t>(nnz, 1)]);
  std::unique_ptr<T[]> edge(new (std::nothrow) T[tile_width<T>() * rows]);
  if (!ridx || !rval || !edge) {
    result.out_of_memory = true;
    return result;
  }

#pragma omp parallel num_threads(p)
  {
    const int t = thread_index();
    const Range rr = thread_range(rows);
    int32_t* sidx = scratch_idx.get() + static_cast<int64_t>(t) * in;
    T* sval = scratch_val.get() + static_cast<int64_t>(t) * in;
    int64_t* cursor = counts.data() + static_cast<int64_t>(t) * in;
    bool unused = false;
    for (int64_t r = rr.begin; r < rr.end; ++r) {
      const int64_t n = compact_row(spikes + r * in, in, sidx, sval, unused);
      for (int64_t j = 0; j < n; ++j) {
        const int64_t pos = cursor[sidx[j]]++;
        ridx[pos] = static_cast<int32_t>(r);
        rval[pos] = sval[j];
      }
    }
  }

  // The ragged right edge of grad_out, packed: its last tile read in place would run past
  // the end of the array.
  const int64_t edge_col = out / tile_width<T>() * tile_width<T>();
  if (nnz > 0 && edge_col < out)
    pack_tiles(grad + edge_col, rows, out - edge_col, out, 1, edge.get(), threads);

  // Inputs split so that each thread gets about the same number of events.
  const int q = clamp_threads(threads, in);
#pragma omp parallel num_threads(q)
  {
    const Range ir = balanced_range(colptr.data(), in);
    if (ir.end > ir.begin)
      spmm_rowmajor(colptr.data(), colptr.data() + 1, ridx.get(), rval.get(), ir.begin, ir.end,
                    grad, out, out, edge.get(), gwt, out);
  }
  return result;
}

template <typename S>
ScanResult scan_spikes(const S* spikes, int64_t rows, int64_t in, int threads) {
  const int p = clamp_threads(threads, rows);
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
