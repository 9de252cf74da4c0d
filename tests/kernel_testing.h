// Shared by the kernel tests: each kernel runs on the simulator always, and on a GPU when one is usable.
//
// A kernel's arguments are raw pointers; these helpers put a host tensor where the backend under test
// reads it (the simulator reads host memory, the GPU its own) and bring results back. GPU test cases are
// tagged [gpu]; tests/CMakeLists.txt gives them the ctest label `gpu` and reports them as skipped when
// they print kNoGpu.
#pragma once

#include <cstdio>
#include <limits>
#include <vector>

#include "heed/core/device.h"
#include "heed/core/tensor.h"
#include "kernels/common/backend.h"

namespace heed::testing {

inline constexpr const char* kNoGpu = "SKIPPED: no CUDA device";

// False, after printing kNoGpu, when this machine has no usable GPU.
inline bool gpu_or_skip() {
  if (cuda_device_count() > 0) return true;
  std::puts(kNoGpu);
  return false;
}

inline Device backend_device(kernels::Backend backend) {
  return backend == kernels::Backend::Gpu ? Device::cuda() : Device::sim();
}

// A contiguous copy of `host` in the backend's memory (the simulated GPU's is host RAM), converted to `dtype`.
inline Tensor to_backend(const Tensor& host, kernels::Backend backend, DType dtype) {
  return host.to(dtype).contiguous().to(backend_device(backend));
}

// A backend result as a host fp32 tensor.
inline Tensor to_host_f32(const Tensor& t) { return t.to(Device::cpu()).to(DType::F32); }

// A tensor of the backend's memory (any layout and float dtype) as row-major fp32 values.
inline std::vector<float> values(const Tensor& t) {
  const Tensor c = to_host_f32(t).contiguous();
  return std::vector<float>(c.data<float>(), c.data<float>() + c.numel());
}

// NaN everywhere, in the backend's memory: an output the kernel must overwrite element by element.
inline Tensor nan_tensor(const Shape& shape, kernels::Backend backend, DType dtype) {
  return to_backend(Tensor::full(shape, std::numeric_limits<float>::quiet_NaN()), backend, dtype);
}

inline const char* dtype_label(DType dtype) {
  return dtype == DType::F32 ? "fp32" : dtype == DType::BF16 ? "bf16" : "fp16";
}

// fp32 unit roundoff, the unit of the fp32 allowances in the kernel tests.
inline constexpr double kFp32Unit = 1.0 / (1 << 24);

inline DType dtype_of(kernels::Half half) { return half == kernels::Half::BF16 ? DType::BF16 : DType::F16; }

// `x` rounded to the 16-bit type and back: the inputs a 16-bit kernel actually sees, so that the fp32
// reference computes from the same values.
inline Tensor round_to(const Tensor& x, kernels::Half half) { return x.to(dtype_of(half)).to(DType::F32); }

}  // namespace heed::testing
