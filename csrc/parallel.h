// OpenMP helpers. Without OpenMP everything runs on one thread with the same results:
// work splits never change the summation order of any output element.
#pragma once

#include <algorithm>
#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace sparsespike {

struct Range {
  int64_t begin;
  int64_t end;
};

inline int thread_index() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

inline int thread_count() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

inline void parallel_barrier() {
#ifdef _OPENMP
#pragma omp barrier
#endif
}

// No more threads than work items, and at least one.
inline int clamp_threads(int threads, int64_t items) {
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, items)));
}

// Threads for `elements` of streaming work: starting an OpenMP team costs microseconds, more
// than a small call's whole work, so small problems stay on one thread.
inline int threads_for_work(int threads, int64_t items, int64_t elements) {
  constexpr int64_t kMinElementsPerThread = 1 << 15;
  return std::min(clamp_threads(threads, items),
                  clamp_threads(threads, elements / kMinElementsPerThread));
}

// This thread's contiguous share of [0, n) inside a parallel region.
inline Range thread_range(int64_t n) {
  const int64_t t = thread_index(), p = thread_count();
  return {n * t / p, n * (t + 1) / p};
}

}  // namespace sparsespike
