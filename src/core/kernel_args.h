// What a tensor looks like to the kernels of kernels/: its layout, and which build of a kernel (the GPU's
// or the simulator's) runs on its device.
#pragma once

#include "heed/core/error.h"
#include "heed/core/stream.h"
#include "heed/core/tensor.h"
#include "kernels/common/backend.h"
#include "kernels/tensor_layout.h"
#include "sim/counters.h"

namespace heed {

inline kernels::TensorLayout kernel_layout(const Tensor& t) {
  HEED_CHECK(t.dim() <= kernels::kMaxDims, "GPU kernels take tensors of up to {} dimensions, got {}",
             kernels::kMaxDims, shape_str(t.shape()));
  kernels::TensorLayout l;
  l.data = t.raw_data();
  l.dtype = t.dtype();
  l.dims = t.dim();
  for (int d = 0; d < t.dim(); ++d) {
    l.sizes[d] = t.size(d);
    l.strides[d] = t.stride(d);
  }
  return l;
}

inline kernels::Backend kernel_backend(Device device) {
  HEED_CHECK(device.is_gpu(), "no GPU kernels run on {}", device.str());
  if (!device.is_sim()) return kernels::Backend::Cuda;
  return cuda_sim::counting_memory() ? kernels::Backend::SimCounted : kernels::Backend::Sim;
}

// Puts a GPU launch on the device's compute stream (heed/core/stream.h), where everything else of Heed
// is queued: HEED_RUN_KERNEL does it for every kernel's args, so no call site sets a stream. (An
// ensemble's selection launches with the stream of its `row`.)
template <typename Args>
void set_compute_stream(Args& args, Device device) {
  if constexpr (requires { args.row.stream; })
    args.row.stream = Stream::compute(device).handle();
  else
    args.stream = Stream::compute(device).handle();
}

}  // namespace heed

// The simulator's build of a kernel: the counting one while the simulator counts memory accesses.
#ifdef HEED_WITH_SIM_COUNTERS
#define HEED_RUN_SIM_KERNEL(device, kernel, args)                                \
  do {                                                                           \
    if (::heed::kernel_backend(device) == ::heed::kernels::Backend::SimCounted)  \
      ::heed::kernels::kernel<::heed::kernels::Backend::SimCounted>(args);       \
    else                                                                         \
      ::heed::kernels::kernel<::heed::kernels::Backend::Sim>(args);              \
  } while (0)
#else
#define HEED_RUN_SIM_KERNEL(device, kernel, args) ::heed::kernels::kernel<::heed::kernels::Backend::Sim>(args)
#endif

// Runs kernels::kernel<Backend::Sim>(args) or kernels::kernel<Backend::Cuda>(args) for a tensor on
// `device`. Without CUDA the GPU build of the kernels does not exist, and only the simulated GPU runs.
#ifdef HEED_WITH_CUDA
#define HEED_RUN_KERNEL(device, kernel, args)                                \
  do {                                                                       \
    if (::heed::kernel_backend(device) == ::heed::kernels::Backend::Cuda) {  \
      ::heed::set_compute_stream(args, device);                              \
      ::heed::kernels::kernel<::heed::kernels::Backend::Cuda>(args);         \
    } else {                                                                 \
      HEED_RUN_SIM_KERNEL(device, kernel, args);                             \
    }                                                                        \
  } while (0)
#else
#define HEED_RUN_KERNEL(device, kernel, args)                                                        \
  do {                                                                                               \
    HEED_CHECK(::heed::kernel_backend(device) != ::heed::kernels::Backend::Cuda,                     \
               "{} needs the CUDA backend, and Heed was built without it", (device).str());         \
    HEED_RUN_SIM_KERNEL(device, kernel, args);                                                       \
  } while (0)
#endif
