// Philox-4x32-10, the counter-based generator of Salmon et al. (SC'11), as in cuRAND and PyTorch.
//
// Random numbers are a pure function of (key, counter), so any element of any tensor can be drawn
// independently, in any order, by any thread, on the CPU or the GPU, and a run reproduces exactly. Heed
// keys every random tensor by (seed, step, tensor id): see RandomKey.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define HEED_HOST_DEVICE __host__ __device__
#else
#define HEED_HOST_DEVICE
#endif

namespace heed {

struct Philox4 {
  uint32_t v[4];
};

HEED_HOST_DEVICE inline Philox4 philox4x32_10(Philox4 counter, uint32_t key0, uint32_t key1) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = static_cast<uint64_t>(kMul0) * counter.v[0];
    uint64_t p1 = static_cast<uint64_t>(kMul1) * counter.v[2];
    Philox4 next;
    next.v[0] = static_cast<uint32_t>(p1 >> 32) ^ counter.v[1] ^ key0;
    next.v[1] = static_cast<uint32_t>(p1);
    next.v[2] = static_cast<uint32_t>(p0 >> 32) ^ counter.v[3] ^ key1;
    next.v[3] = static_cast<uint32_t>(p0);
    counter = next;
    key0 += kWeyl0;
    key1 += kWeyl1;
  }
  return counter;
}

// Identifies one random tensor: the run's seed, the training step, and which tensor within the step.
struct RandomKey {
  uint64_t seed = 0;
  uint64_t step = 0;
  uint32_t tensor_id = 0;
};

// Four uniform floats in [0, 1) for elements 4*group .. 4*group+3 of the tensor keyed by `key`.
HEED_HOST_DEVICE inline void philox_uniform4(const RandomKey& key, uint64_t group, float out[4]) {
  Philox4 counter{{static_cast<uint32_t>(group), static_cast<uint32_t>(group >> 32),
                   static_cast<uint32_t>(key.step), key.tensor_id}};
  Philox4 r = philox4x32_10(counter, static_cast<uint32_t>(key.seed), static_cast<uint32_t>(key.seed >> 32));
  for (int i = 0; i < 4; ++i) out[i] = static_cast<float>(r.v[i] >> 8) * (1.0f / 16777216.0f);
}

}  // namespace heed
