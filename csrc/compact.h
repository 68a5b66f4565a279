// Compaction of a spike row into (index, value) lists: the event-driven half of every op.
//
// Rows are read 32 elements at a time into a bit mask of nonzeros (vector compare + movemask),
// and only the set bits are visited, so the cost is one compare per element plus one step per
// event. Values are compared as numbers, so -0.0 is silent, as in torch.count_nonzero. Non-finite
// values are flagged, never propagated: callers refuse the input before writing any result.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace sparsespike {

template <typename S>
inline bool is_nonfinite(S v) {
  if constexpr (std::is_floating_point_v<S>) {
    return !std::isfinite(v);
  } else {
    return false;
  }
}

// Bit k set where block[k] != 0, for the 32 elements of block; `bad` gets a bit where an element
// is NaN or +-Inf. Vector compares + movemask where AVX2 is available, a plain loop otherwise.
template <typename S>
inline uint32_t nonzero_mask32(const S* block, uint32_t& bad) {
#if defined(__AVX2__)
  if constexpr (std::is_same_v<S, float>) {
    const __m256 zero = _mm256_setzero_ps();
    const __m256 inf = _mm256_set1_ps(INFINITY);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    uint32_t m = 0, b = 0;
    for (int q = 0; q < 4; ++q) {
      const __m256 v = _mm256_loadu_ps(block + 8 * q);
      m |= static_cast<uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps(v, zero, _CMP_NEQ_UQ))) << (8 * q);
      const __m256 mag = _mm256_andnot_ps(sign, v);
      b |= static_cast<uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps(mag, inf, _CMP_NLT_UQ))) << (8 * q);
    }
    bad |= b;
    return m;
  } else if constexpr (std::is_same_v<S, double>) {
    const __m256d zero = _mm256_setzero_pd();
    const __m256d inf = _mm256_set1_pd(INFINITY);
    const __m256d sign = _mm256_set1_pd(-0.0);
    uint32_t m = 0, b = 0;
    for (int q = 0; q < 8; ++q) {
      const __m256d v = _mm256_loadu_pd(block + 4 * q);
      m |= static_cast<uint32_t>(_mm256_movemask_pd(_mm256_cmp_pd(v, zero, _CMP_NEQ_UQ))) << (4 * q);
      const __m256d mag = _mm256_andnot_pd(sign, v);
      b |= static_cast<uint32_t>(_mm256_movemask_pd(_mm256_cmp_pd(mag, inf, _CMP_NLT_UQ))) << (4 * q);
    }
    bad |= b;
    return m;
  } else {
    static_assert(sizeof(S) == 1, "byte spikes");
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block));
    const __m256i is_zero = _mm256_cmpeq_epi8(v, _mm256_setzero_si256());
    return ~static_cast<uint32_t>(_mm256_movemask_epi8(is_zero));
  }
#else
  uint32_t m = 0, b = 0;
  for (int k = 0; k < 32; ++k) {
    m |= static_cast<uint32_t>(block[k] != S(0)) << k;
    b |= static_cast<uint32_t>(is_nonfinite(block[k])) << k;
  }
  bad |= b;
  return m;
#endif
}

// Appends the nonzeros of row[0:n) to idx/val (value converted to T); returns how many.
// `nonfinite` is OR-ed with whether any element is NaN or +-Inf. idx/val need room for n.
template <typename S, typename T>
inline int64_t compact_row(const S* row, int64_t n, int32_t* idx, T* val, bool& nonfinite) {
  int64_t count = 0;
  uint32_t bad = 0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    uint32_t m = nonzero_mask32(row + i, bad);
    while (m) {
      const int k = __builtin_ctz(m);
      idx[count] = static_cast<int32_t>(i + k);
      val[count] = static_cast<T>(row[i + k]);
      ++count;
      m &= m - 1;
    }
  }
  bool tail_bad = false;
  for (; i < n; ++i) {
    const S v = row[i];
    idx[count] = static_cast<int32_t>(i);
    val[count] = static_cast<T>(v);
    count += (v != S(0));
    tail_bad |= is_nonfinite(v);
  }
  nonfinite |= (bad != 0) || tail_bad;
  return count;
}

// Number of nonzeros of row[0:n), with the same non-finite flag as compact_row.
template <typename S>
inline int64_t count_row(const S* row, int64_t n, bool& nonfinite) {
  int64_t count = 0;
  uint32_t bad = 0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) count += __builtin_popcount(nonzero_mask32(row + i, bad));
  bool tail_bad = false;
  for (; i < n; ++i) {
    count += (row[i] != S(0));
    tail_bad |= is_nonfinite(row[i]);
  }
  nonfinite |= (bad != 0) || tail_bad;
  return count;
}

}  // namespace sparsespike
