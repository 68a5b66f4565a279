// Portable SIMD through GCC/Clang vector extensions: one 32-byte vector type per element type.
// The compiler maps it to AVX2/AVX-512 halves or SSE pairs, whatever the target has, so the
// same source builds for -march=native and for a portable x86-64-v3 or non-x86 wheel.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__AVX__)
#include <immintrin.h>
#endif

namespace sparsespike {

typedef float f32x8 __attribute__((vector_size(32)));
typedef double f64x4 __attribute__((vector_size(32)));

template <typename T>
struct Vec;

template <>
struct Vec<float> {
  using type = f32x8;
  static constexpr int lanes = 8;
};

template <>
struct Vec<double> {
  using type = f64x4;
  static constexpr int lanes = 4;
};

// Unaligned load/store: memcpy compiles to a single vmovups and never assumes alignment.
template <typename V, typename T>
inline V load_vec(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}

template <typename V, typename T>
inline void store_vec(T* p, const V& v) {
  std::memcpy(p, &v, sizeof(V));
}

// a * b + c with one rounding where the target has FMA (the extension is compiled without
// automatic contraction, so kernels that want fused multiply-adds ask for them here).
template <typename V>
inline V fmadd(const V& a, const V& b, const V& c) {
#if defined(__FMA__)
  if constexpr (sizeof(a[0]) == 4) {
    const __m256 r = _mm256_fmadd_ps(reinterpret_cast<const __m256&>(a),
                                     reinterpret_cast<const __m256&>(b),
                                     reinterpret_cast<const __m256&>(c));
    return reinterpret_cast<const V&>(r);
  } else {
    const __m256d r = _mm256_fmadd_pd(reinterpret_cast<const __m256d&>(a),
                                      reinterpret_cast<const __m256d&>(b),
                                      reinterpret_cast<const __m256d&>(c));
    return reinterpret_cast<const V&>(r);
  }
#else
  return a * b + c;
#endif
}

// Non-temporal store where the target is 32-byte aligned and AVX exists: the line is written
// without first being read (no read-for-ownership) and without evicting the caller's working set.
// Returns false when it could not stream (the caller stores normally). Follow with stream_fence().
template <typename V, typename T>
inline bool stream_vec(T* p, const V& v) {
#if defined(__AVX__)
  if ((reinterpret_cast<uintptr_t>(p) & 31) == 0) {
    if constexpr (sizeof(T) == 4) {
      _mm256_stream_ps(reinterpret_cast<float*>(p), reinterpret_cast<const __m256&>(v));
      return true;
    } else {
      _mm256_stream_pd(reinterpret_cast<double*>(p), reinterpret_cast<const __m256d&>(v));
      return true;
    }
  }
#endif
  (void)p;
  (void)v;
  return false;
}

// Orders this thread's streamed stores before anything it does next.
inline void stream_fence() {
#if defined(__AVX__)
  _mm_sfence();
#endif
}

// Broadcast through a vector-scalar operation that is exact for every x (x - 0 == x, -0.0
// included), so the compiler emits a lone vbroadcastss; V{} + x would need a real add.
template <typename V, typename T>
inline V splat(T x) {
  return x - V{};
}

}  // namespace sparsespike
