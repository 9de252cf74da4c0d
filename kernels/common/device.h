// What every file in kernels/ includes first: the CUDA language, from nvcc or from Heed's simulator.
//
// Each kernel source is compiled twice. nvcc builds it for the GPU (sm_80, sm_90); the host compiler builds
// it against src/sim/cuda_sim.h, which provides the same builtins, types and intrinsics on CPU fibers, so CI
// runs every kernel without a GPU (and a third time, as HEED_BACKEND sim_counted, with every memory access
// counted for the cost model: src/sim/counters.h). The builds link into one program (`heed selftest` compares them), so
// each build's code lives in its own namespace, heed::kernels::HEED_BACKEND (cuda or sim), and a kernel's
// host entry point is an explicit specialisation for its Backend:
//
//   template <> void layer_norm_forward<kBackend>(const LayerNormArgs& a) { ... launch(...) ... }
//
// Kernels use only the subset of CUDA that the simulator provides (src/sim/cuda_sim.h lists it), inline PTX
// only through common/ptx.h, and launch only through common/launch.h.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/backend.h"

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#define HEED_BACKEND cuda
#elif defined(HEED_SIM) && defined(HEED_SIM_COUNTED)
#include "sim/cuda_sim.h"
#define HEED_BACKEND sim_counted
#elif defined(HEED_SIM)
#include "sim/cuda_sim.h"
#define HEED_BACKEND sim
#else
#error "kernels/ compiles with nvcc, or with the host compiler and -DHEED_SIM"
#endif

namespace heed::kernels {

#if defined(__CUDACC__)
inline constexpr Backend kBackend = Backend::Cuda;
#elif defined(HEED_SIM_COUNTED)
inline constexpr Backend kBackend = Backend::SimCounted;
#else
inline constexpr Backend kBackend = Backend::Sim;
#endif

namespace HEED_BACKEND {

// The block's dynamic shared memory (the smem_bytes of its launch), 16-byte aligned, for cp.async and
// ldmatrix. Kernels take it from here rather than declaring `extern __shared__` arrays of their own, so
// that the simulator can hand each block its buffer.
template <typename T>
__device__ __forceinline__ T* dynamic_shared_memory() {
#if defined(__CUDACC__)
  extern __shared__ uint4 heed_dynamic_smem[];
  return reinterpret_cast<T*>(heed_dynamic_smem);
#else
  return static_cast<T*>(::heed::cuda_sim::dynamic_shared_memory());
#endif
}

// One 16-byte global access at a 16-byte aligned address: LDG.128 and STG.128 on a GPU, a quarter of the
// instructions of 4-byte accesses and whole 32-byte sectors per lane pair.
__device__ __forceinline__ uint4 load_16(const void* p) {
#if defined(__CUDACC__)
  return *static_cast<const uint4*>(p);
#else
  return ::heed::cuda_sim::load_16(p);
#endif
}
__device__ __forceinline__ void store_16(void* p, uint4 v) {
#if defined(__CUDACC__)
  *static_cast<uint4*>(p) = v;
#else
  ::heed::cuda_sim::store_16(p, v);
#endif
}

}  // namespace HEED_BACKEND

}  // namespace heed::kernels
