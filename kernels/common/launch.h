// The one way kernels are launched: on the GPU with <<<>>>, or on the simulator's CPU fibers.
//
// Every launch checks its configuration and, on the GPU, the launch error, naming the kernel's file and
// line. A kernel that asks for more than 48 KiB of dynamic shared memory gets the opt-in attribute here,
// so callers state only what they need.
#pragma once

#include "common/device.h"
#include "heed/core/error.h"

#if defined(__CUDACC__)
#include "common/cuda_check.h"
#endif

namespace heed::kernels::HEED_BACKEND {

template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem_bytes, Stream stream,
            Args&&... args) {
  HEED_CHECK(grid.x > 0 && grid.y > 0 && grid.z > 0 && block.x * block.y * block.z > 0,
             "kernel launch with an empty grid ({},{},{}) or block ({},{},{})", grid.x, grid.y, grid.z,
             block.x, block.y, block.z);
#if defined(__CUDACC__)
  if (smem_bytes > 48 * 1024)
    HEED_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(smem_bytes)));
  kernel<<<grid, block, smem_bytes, static_cast<cudaStream_t>(stream)>>>(static_cast<Params>(args)...);
  HEED_CUDA_CHECK(cudaGetLastError());
#else
  (void)stream;  // the simulator runs each launch to completion before returning
  ::heed::cuda_sim::launch(
      grid, block, smem_bytes, [=] { kernel(static_cast<Params>(args)...); }, reinterpret_cast<const void*>(kernel));
#endif
}

}  // namespace heed::kernels::HEED_BACKEND
