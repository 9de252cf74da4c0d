// Device dispatch for ops: one macro at the boundary between an op's checks and its backends.
//
// Each op X has src/ops/X.cc (argument checks, shapes, dispatch), X_backends.h (the backend entry points,
// declared by hand in each backend's namespace), X_cpu.cc, and X_gpu.cc for the GPU path.
// HEED_DISPATCH(device, "X", fn(args...)) is an expression: it calls cpu::fn or gpu::fn and has that call's
// value, so an op writes `return HEED_DISPATCH(...);` for a result and `HEED_DISPATCH(...);` for none. As
// it compiles both calls, a backend whose declaration drifts from the other fails to build. Any other
// device is an error that names the op, never a silent copy to another device.
//
// The names, one meaning each:
//   ops::cpu      the CPU backend (Device::cpu).
//   ops::gpu      the GPU path, as in Device::is_gpu(): a real GPU (Device::cuda) or the simulated one
//                 (Device::sim). Its code launches kernels of kernels/ through HEED_RUN_KERNEL
//                 (core/kernel_args.h), which picks the kernels' build from the tensor's device:
//   kernels::cuda the kernels built by nvcc, for a real GPU (Backend::Cuda; CUDA builds only);
//   kernels::sim  the same kernels built by the host compiler for the CUDA simulator (Backend::Sim).
#pragma once

#include "heed/core/device.h"
#include "heed/core/error.h"
#include "heed/core/tensor.h"

#define HEED_DISPATCH(device, op_name, call)                                                  \
  ((device).is_cpu()   ? cpu::call                                                             \
   : (device).is_gpu() ? gpu::call                                                             \
                       : throw ::heed::error_at(__FILE__, __LINE__,                            \
                                                ::heed::ops::no_backend_message(op_name, (device))))

namespace heed::ops {

// HEED_DISPATCH's error for a device with no backend.
inline std::string no_backend_message(const char* op, const Device& device) {
  return fmt::format("op {} has no implementation for {} in this build", op, device.str());
}

// The checks every floating-point op input goes through: fp32 on the CPU; fp32, bf16 or fp16 on the GPU
// path, whose kernels load 16-bit values and compute in fp32.
inline void check_float(const Tensor& t, const char* op, const char* what) {
  HEED_CHECK(t.defined(), "{}: {} is undefined", op, what);
  const DType d = t.dtype();
  if (t.device().is_cpu())
    HEED_CHECK(d == DType::F32, "{}: {} must be F32 on the CPU, got {}", op, what, dtype_name(d));
  else
    HEED_CHECK(d == DType::F32 || d == DType::BF16 || d == DType::F16, "{}: {} must be F32, BF16 or F16, got {}", op,
               what, dtype_name(d));
}

// The checks every fp32 op input goes through.
inline void check_f32(const Tensor& t, const char* op, const char* what) {
  HEED_CHECK(t.defined(), "{}: {} is undefined", op, what);
  HEED_CHECK(t.dtype() == DType::F32, "{}: {} must be F32, got {}", op, what, dtype_name(t.dtype()));
}

}  // namespace heed::ops
