// Compaction of a spike row into (index, value) lists: the event-driven half of every op.
//
// Rows are compared 8 or 32 elements at a time into bit masks of nonzeros (vector compare +
// movemask); float outputs are left-packed through a lookup table, other types visit the set
// bits. Values are compared as numbers, so -0.0 is silent, as in torch.count_nonzero. Non-finite
// values are flagged, never propagated: callers refuse the input before writing any result.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <type_traits>

#include "parallel.h"

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

// Scalar compaction of row[i:n), appended at `count`; returns the new count.
template <typename S, typename T>
inline int64_t compact_scalar(const S* row, int64_t i, int64_t n, int32_t* idx, T* val,
                              int64_t count, bool& nonfinite) {
  bool bad = false;
  for (; i < n; ++i) {
    const S v = row[i];
    idx[count] = static_cast<int32_t>(i);
    val[count] = static_cast<T>(v);
    count += (v != S(0));
    bad |= is_nonfinite(v);
  }
  nonfinite |= bad;
  return count;
}

#if defined(__AVX2__)
// For each 8-bit mask, the lane numbers of its set bits, left-packed.
struct LeftPackTable {
  alignas(32) int32_t lanes[256][8];
};

inline const LeftPackTable& left_pack_table() {
  static const LeftPackTable table = [] {
    LeftPackTable t{};
    for (int m = 0; m < 256; ++m) {
      int n = 0;
      for (int b = 0; b < 8; ++b)
        if ((m >> b) & 1) t.lanes[m][n++] = b;
    }
    return t;
  }();
  return table;
}

// Branchless compaction, 8 elements a step: compare, movemask, then one table lookup gives
// the permutation that left-packs the active lanes; indices and values are stored with full
// 8-lane stores and the write position advances by the popcount. Nothing to mispredict, which
// at a few % density is what a bit-scanning loop spends most of its time on.
template <typename S>
inline int64_t compact_row_left_pack(const S* row, int64_t n, int32_t* idx, float* val,
                                     bool& nonfinite) {
  const LeftPackTable& table = left_pack_table();
  const __m256 zero = _mm256_setzero_ps();
  const __m256 inf = _mm256_set1_ps(INFINITY);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  int64_t count = 0;
  int bad = 0;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v;
    if constexpr (std::is_same_v<S, float>) {
      v = _mm256_loadu_ps(row + i);
      bad |= _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, v), inf, _CMP_NLT_UQ));
    } else {
      const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + i));
      v = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes));
    }
    const int m = _mm256_movemask_ps(_mm256_cmp_ps(v, zero, _CMP_NEQ_UQ));
    const __m256i perm = _mm256_load_si256(reinterpret_cast<const __m256i*>(table.lanes[m]));
    // 8 slots are written at `count` <= i, so they stay inside the row's n reserved slots.
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx + count),
                        _mm256_add_epi32(perm, _mm256_set1_epi32(static_cast<int32_t>(i))));
    _mm256_storeu_ps(val + count, _mm256_permutevar8x32_ps(v, perm));
    count += __builtin_popcount(m);
  }
  nonfinite |= bad != 0;
  return compact_scalar(row, i, n, idx, val, count, nonfinite);
}
#endif

// Appends the nonzeros of row[0:n) to idx/val (value converted to T); returns how many.
// `nonfinite` is OR-ed with whether any element is NaN or +-Inf. idx/val need room for n.
template <typename S, typename T>
inline int64_t compact_row(const S* row, int64_t n, int32_t* idx, T* val, bool& nonfinite) {
#if defined(__AVX2__)
  if constexpr (std::is_same_v<T, float> &&
                (std::is_same_v<S, float> || std::is_same_v<S, uint8_t>)) {
    return compact_row_left_pack(row, n, idx, val, nonfinite);
  }
#endif
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
  nonfinite |= bad != 0;
  return compact_scalar(row, i, n, idx, val, count, nonfinite);
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

// Per-row event lists of a [rows, in] spike matrix. Inside a parallel region each thread
// compacts its own rows into its own slice [r0 * in, r1 * in) of the buffers (room for every
// row fully active; only the pages the compaction touches are ever faulted in); beg/end hold
// absolute offsets, so the slices never need to be joined.
template <typename T>
struct RowEvents {
  std::unique_ptr<int32_t[]> idx;
  std::unique_ptr<T[]> val;
  std::unique_ptr<int64_t[]> beg, end;

  // false when out of memory
  bool allocate(int64_t rows, int64_t in) {
    idx.reset(new (std::nothrow) int32_t[rows * in]);
    val.reset(new (std::nothrow) T[rows * in]);
    beg.reset(new (std::nothrow) int64_t[rows]);
    end.reset(new (std::nothrow) int64_t[rows]);
    return idx && val && beg && end;
  }

  // Compacts rows [rr.begin, rr.end); returns how many events they hold.
  template <typename S>
  int64_t compact(const S* spikes, int64_t in, Range rr, bool& nonfinite) {
    int64_t n = rr.begin * in;
    for (int64_t r = rr.begin; r < rr.end; ++r) {
      beg[r] = n;
      n += compact_row(spikes + r * in, in, idx.get() + n, val.get() + n, nonfinite);
      end[r] = n;
    }
    return n - rr.begin * in;
  }
};

}  // namespace sparsespike
