// Out-of-place matrix transpose, dst[j * ldd + i] = src[i * lds + j] for i < rows, j < cols, in
// register blocks of 8 x 8 floats / 4 x 4 doubles (AVX), scalar at the ragged edges. Used to move
// between channel-major (NCHW) and channel-contiguous (NHWC) rows; a scalar strided loop measured
// several times slower there.
#pragma once

#include <cstdint>

#if defined(__AVX__)
#include <immintrin.h>
#endif

namespace sparsespike {

namespace detail {

#if defined(__AVX__)
inline void transpose8x8(const float* src, int64_t lds, float* dst, int64_t ldd) {
  __m256 r[8], t[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * lds);
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  // t0 = a0 b0 a1 b1 | a4 b4 a5 b5, t1 = a2 b2 a3 b3 | a6 b6 a7 b7, t2/t3 the same for c, d ...
  __m256 u[8];
  for (int h = 0; h < 8; h += 4) {
    u[h + 0] = _mm256_shuffle_ps(t[h + 0], t[h + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[h + 1] = _mm256_shuffle_ps(t[h + 0], t[h + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[h + 2] = _mm256_shuffle_ps(t[h + 1], t[h + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[h + 3] = _mm256_shuffle_ps(t[h + 1], t[h + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  // u0 = column 0 of rows 0-3 | column 4 of rows 0-3, ...; u4..u7 the same for rows 4-7
  for (int j = 0; j < 4; ++j) {
    _mm256_storeu_ps(dst + j * ldd, _mm256_permute2f128_ps(u[j], u[j + 4], 0x20));
    _mm256_storeu_ps(dst + (j + 4) * ldd, _mm256_permute2f128_ps(u[j], u[j + 4], 0x31));
  }
}

inline void transpose4x4(const double* src, int64_t lds, double* dst, int64_t ldd) {
  const __m256d r0 = _mm256_loadu_pd(src), r1 = _mm256_loadu_pd(src + lds);
  const __m256d r2 = _mm256_loadu_pd(src + 2 * lds), r3 = _mm256_loadu_pd(src + 3 * lds);
  const __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
  const __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
  _mm256_storeu_pd(dst, _mm256_permute2f128_pd(t0, t2, 0x20));
  _mm256_storeu_pd(dst + ldd, _mm256_permute2f128_pd(t1, t3, 0x20));
  _mm256_storeu_pd(dst + 2 * ldd, _mm256_permute2f128_pd(t0, t2, 0x31));
  _mm256_storeu_pd(dst + 3 * ldd, _mm256_permute2f128_pd(t1, t3, 0x31));
}

inline void transpose_block(const float* src, int64_t lds, float* dst, int64_t ldd) {
  transpose8x8(src, lds, dst, ldd);
}
inline void transpose_block(const double* src, int64_t lds, double* dst, int64_t ldd) {
  transpose4x4(src, lds, dst, ldd);
}
#endif

}  // namespace detail

template <typename T>
void transpose(const T* src, int64_t lds, int64_t rows, int64_t cols, T* dst, int64_t ldd) {
  int64_t i0 = 0;
#if defined(__AVX__)
  constexpr int64_t B = 32 / sizeof(T);
  for (; i0 + B <= rows; i0 += B)
    for (int64_t j = 0; j + B <= cols; j += B)
      detail::transpose_block(src + i0 * lds + j, lds, dst + j * ldd + i0, ldd);
  const int64_t j0 = cols - cols % B;
  // the right edge of the blocked rows
  for (int64_t i = 0; i < i0; ++i)
    for (int64_t j = j0; j < cols; ++j) dst[j * ldd + i] = src[i * lds + j];
#endif
  // the bottom rows
  for (int64_t i = i0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) dst[j * ldd + i] = src[i * lds + j];
}

}  // namespace sparsespike
