// Seeded shuffling with the same result under every standard library: std::mt19937_64 and std::seed_seq
// are specified exactly by the C++ standard, while std::uniform_int_distribution and std::shuffle are
// not, so the bounded draw and the Fisher–Yates loop are Heed's own.
#pragma once

#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace heed::data {

// The generator of one independent stream (an epoch, say) of a run's seed.
inline std::mt19937_64 seeded_rng(uint64_t seed, uint64_t stream) {
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), static_cast<uint32_t>(stream),
                    static_cast<uint32_t>(stream >> 32)};
  return std::mt19937_64(seq);
}

// Uniform in [0, n): rejecting the raw values below 2^64 mod n leaves a range whose size is a multiple of
// n, so the remainder is unbiased.
inline uint64_t draw_below(std::mt19937_64& rng, uint64_t n) {
  const uint64_t reject_below = (0 - n) % n;
  for (;;) {
    const uint64_t r = rng();
    if (r >= reject_below) return r % n;
  }
}

template <typename T>
void seeded_shuffle(std::vector<T>& items, std::mt19937_64& rng) {
  for (size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[draw_below(rng, i)]);
}

}  // namespace heed::data
