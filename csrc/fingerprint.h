// Position-sensitive checksum of a buffer, used to tell whether a cached weight layout is stale
// even when the weight was edited through `.data` (which bypasses torch's version counter).
// Sum over 32-bit words of word * (2k + 1), mod 2^32, in 8 interleaved lanes (so it vectorises
// with 32-bit multiplies): the multiplier is odd, hence invertible, so any single-word change
// changes it. Addition is associative mod 2^32, so the split across threads never changes the
// result. Memory-bound: a fifth of the cost of re-packing the weight.
#pragma once

#include <cstdint>
#include <cstring>

#include "parallel.h"

namespace sparsespike {

inline uint64_t fingerprint(const void* data, int64_t bytes, int threads) {
  const auto* p = static_cast<const unsigned char*>(data);
  const int64_t words = bytes / 4;
  uint64_t lanes_total[8] = {};
#pragma omp parallel num_threads(clamp_threads(threads, words / 65536 + 1))
  {
    const Range r = thread_range(words);
    uint32_t acc[8] = {};
    int64_t k = r.begin;
    for (; k < r.end && (k % 8) != 0; ++k) {
      uint32_t w;
      std::memcpy(&w, p + 4 * k, 4);
      acc[k % 8] += w * static_cast<uint32_t>(2 * k + 1);
    }
    typedef uint32_t u32x8 __attribute__((vector_size(32)));
    u32x8 vacc = {}, mult;
    for (int l = 0; l < 8; ++l) mult[l] = static_cast<uint32_t>(2 * (k + l) + 1);
    for (; k + 8 <= r.end; k += 8) {
      u32x8 w;
      std::memcpy(&w, p + 4 * k, 32);
      vacc += w * mult;
      mult += 16;
    }
    for (int l = 0; l < 8; ++l) acc[l] += vacc[l];
    for (; k < r.end; ++k) {
      uint32_t w;
      std::memcpy(&w, p + 4 * k, 4);
      acc[k % 8] += w * static_cast<uint32_t>(2 * k + 1);
    }
#pragma omp critical
    for (int l = 0; l < 8; ++l) lanes_total[l] += acc[l];
  }
  uint64_t total = 0;
  for (int l = 0; l < 8; ++l) total = total * 0x9E3779B97F4A7C15ull + static_cast<uint32_t>(lanes_total[l]);
  for (int64_t b = words * 4; b < bytes; ++b) total += static_cast<uint64_t>(p[b]) * (2 * b + 1);
  return total;
}

}  // namespace sparsespike
