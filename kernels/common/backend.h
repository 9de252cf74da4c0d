// What callers outside kernels/ see of a kernel build: which backend, a stream handle and the 16-bit
// types, with no CUDA headers, so the CPU-only parts of Heed and its tests can name both builds.
#pragma once

namespace heed::kernels {

// Which build of a kernel a caller wants: nvcc's for a real GPU (Device::cuda), or the host compiler's for
// the simulated one (Device::sim). Both are the GPU path of src/ops (ops::gpu).
// Device::sim runs Backend::SimCounted instead while the simulator counts memory accesses
// (src/sim/counters.h): the same kernels, built to report each load and store.
enum class Backend { Cuda, Sim, SimCounted };

// A cudaStream_t on the GPU: the device's compute stream, which HEED_RUN_KERNEL sets (src/core/kernel_args.h;
// nullptr would be the legacy default stream, which does not wait for it). The simulator runs launches
// synchronously and ignores it.
using Stream = void*;

// The 16-bit storage types a kernel can read and write; compute is always fp32.
enum class Half { BF16, FP16 };

}  // namespace heed::kernels
