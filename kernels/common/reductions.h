// Sums and maxima across a warp and across a block, in a fixed pairing order, so that a kernel built on
// them gives the same bits on every run.
#pragma once

#include "common/device.h"

namespace heed::kernels::HEED_BACKEND {

inline constexpr unsigned kFullWarp = 0xffffffffu;

// Butterfly over the 32 lanes: every lane ends with the total.
__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(kFullWarp, v, offset);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
  for (int offset = 16; offset > 0; offset /= 2) v = fmaxf(v, __shfl_xor_sync(kFullWarp, v, offset));
  return v;
}

// Every thread of the block gets the total. `scratch` holds one float per warp (32 suffice for any
// block); blockDim.x must be a multiple of 32. Starts and ends with a barrier, so scratch can be reused
// by the next call.
template <bool kMax>
__device__ __forceinline__ float block_reduce(float v, float* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = kMax ? warp_max(v) : warp_sum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : (kMax ? -INFINITY : 0.0f);
  return kMax ? warp_max(v) : warp_sum(v);
}

__device__ __forceinline__ float block_sum(float v, float* scratch) { return block_reduce<false>(v, scratch); }
__device__ __forceinline__ float block_max(float v, float* scratch) { return block_reduce<true>(v, scratch); }

}  // namespace heed::kernels::HEED_BACKEND
