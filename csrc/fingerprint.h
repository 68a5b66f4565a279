// Position-sensitive checksum of a buffer, used to tell whether a cached weight layout is stale
// even when the weight was edited through `.data` (which bypasses torch's version counter).
// Sum over 32-bit words of word * (2k + 1), mod 2^64: any single-word change, and any swap of two
// different words, changes it. Addition is associative mod 2^64, so the split across threads
// never changes the result. Memory-bound: a fifth of the cost of re-packing the weight.
#pragma once

#include <cstdint>
#include <cstring>

#include "parallel.h"

namespace sparsespike {

inline uint64_t fingerprint(const void* data, int64_t bytes, int threads) {
  const auto* p = static_cast<const unsigned char*>(data);
  const int64_t words = bytes / 4;
  uint64_t total = 0;
#pragma omp parallel num_threads(clamp_threads(threads, words / 65536 + 1)) reduction(+ : total)
  {
    const Range r = thread_range(words);
    uint64_t acc = 0;
    for (int64_t k = r.begin; k < r.end; ++k) {
      uint32_t w;
      std::memcpy(&w, p + 4 * k, 4);
      acc += static_cast<uint64_t>(w) * static_cast<uint64_t>(2 * k + 1);
    }
    total += acc;
  }
  for (int64_t b = words * 4; b < bytes; ++b) total += static_cast<uint64_t>(p[b]) * (2 * b + 1);
  return total;
}

}  // namespace sparsespike
