// Content hash of a buffer, used to tell whether a cached weight layout is stale even when the
// weight was edited through `.data` or numpy (which bypass torch's version counter), or has no
// version counter at all (inference tensors).
//
// It must not be fooled by the edits people make to weights: a sign flip (`neg_`) toggles bit 31
// of every word and a power-of-two scaling adds a constant to every exponent, and a linear
// checksum mod 2^k cancels such uniform changes (the previous sum of word * (2k + 1) did, for an
// even word count). So every 64-bit word goes through a non-linear multiply-rotate round
// (xxHash64's), in 32 independent lanes per fixed-size chunk, and each chunk's lanes are merged
// and avalanched with its index as the seed. Chunk hashes are added mod 2^64: the sum of
// well-mixed values does not depend on how chunks are split across threads, and an edit anywhere
// changes the total except with probability about 2^-64. With AVX-512 (64-bit vector multiplies)
// it is as fast as the checksum it replaces; a portable x86-64-v3 build emulates those multiplies
// and takes about 6x longer.
#pragma once

#include <cstdint>
#include <cstring>

#include "parallel.h"

namespace sparsespike {

namespace hash_detail {

constexpr uint64_t kP1 = 0x9E3779B185EBCA87ull;
constexpr uint64_t kP2 = 0xC2B2AE3D27D4EB4Full;
constexpr uint64_t kP3 = 0x165667B19E3779F9ull;
constexpr uint64_t kP4 = 0x85EBCA77C2B2AE63ull;
constexpr int64_t kChunkWords = 8192;  // 64 KiB: one thread's unit of work, fixed so the split never matters

inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

inline uint64_t mix_round(uint64_t acc, uint64_t word) { return rotl(acc + word * kP2, 31) * kP1; }

inline uint64_t avalanche(uint64_t h) {
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  h *= kP3;
  h ^= h >> 32;
  return h;
}

// One chunk of whole 64-bit words, seeded by its index.
inline uint64_t chunk_hash(const unsigned char* p, int64_t words, uint64_t seed) {
  typedef uint64_t u64x8 __attribute__((vector_size(64)));
  // four independent accumulators: one would make each multiply-rotate round wait on the last
  // (1024 x 1024 float32 on one core: 0.12 ms with one, 0.06 ms with four)
  u64x8 acc[4];
  for (int a = 0; a < 4; ++a)
    for (int l = 0; l < 8; ++l) acc[a][l] = seed * kP4 + kP1 * static_cast<uint64_t>(8 * a + l + 1);
  int64_t k = 0;
  for (; k + 32 <= words; k += 32) {
    for (int a = 0; a < 4; ++a) {
      u64x8 w;
      std::memcpy(&w, p + 8 * (k + 8 * a), 64);
      acc[a] += w * kP2;
      acc[a] = ((acc[a] << 31) | (acc[a] >> 33)) * kP1;
    }
  }
  uint64_t h = static_cast<uint64_t>(words) * kP3;
  for (int a = 0; a < 4; ++a)
    for (int l = 0; l < 8; ++l) h = (h ^ mix_round(0, acc[a][l])) * kP1 + kP4;
  for (; k < words; ++k) {
    uint64_t w;
    std::memcpy(&w, p + 8 * k, 8);
    h = rotl(h ^ mix_round(0, w), 27) * kP1 + kP4;
  }
  return avalanche(h ^ seed);
}

}  // namespace hash_detail

inline uint64_t fingerprint(const void* data, int64_t bytes, int threads) {
  using namespace hash_detail;
  const auto* p = static_cast<const unsigned char*>(data);
  const int64_t words = bytes / 8;
  const int64_t chunks = (words + kChunkWords - 1) / kChunkWords;
  uint64_t total = 0;
  // a thread per MiB at least: below that, waking a team costs more than it saves
#pragma omp parallel for num_threads(clamp_threads(threads, chunks / 16)) reduction(+ : total) schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t begin = c * kChunkWords;
    const int64_t n = begin + kChunkWords <= words ? kChunkWords : words - begin;
    total += chunk_hash(p + 8 * begin, n, static_cast<uint64_t>(c));
  }
  uint64_t tail = static_cast<uint64_t>(bytes);  // the last bytes % 8 bytes, and the length itself
  for (int64_t b = words * 8; b < bytes; ++b) tail = (tail << 8) | p[b];
  return total + avalanche(tail * kP1 + kP2);
}

}  // namespace sparsespike
