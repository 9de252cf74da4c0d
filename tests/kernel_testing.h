// Shared by the kernel tests: each kernel runs on the simulator always, and on a GPU when one is usable.
//
// A kernel's arguments are raw pointers; these helpers put a host tensor where the backend under test
// reads it (the simulator reads host memory, the GPU its own) and bring results back. Most come from the
// kernel checks of selftest/check.h, which the kernel tests share with `heed selftest`. GPU test cases
// are tagged [gpu]; tests/CMakeLists.txt gives them the ctest label `gpu`, and they are reported as skipped
// on a machine without a GPU, unless HEED_REQUIRE_GPU=1 says that this machine must have one.
#pragma once

#include <catch2/catch.hpp>

#include <cstdlib>
#include <string_view>
#include <vector>

#include "heed/core/device.h"
#include "heed/core/tensor.h"
#include "selftest/check.h"
#include "kernels/common/backend.h"
#include "skip.h"

namespace heed::testing {

// False, after marking the test case skipped, when this machine has no usable GPU; a failure instead
// when HEED_REQUIRE_GPU=1 (a GPU machine's run, where a skip would hide that the GPU was not found).
inline bool gpu_or_skip() {
  if (cuda_device_count() > 0) return true;
  const char* require = std::getenv("HEED_REQUIRE_GPU");
  if (require && std::string_view(require) == "1") FAIL("HEED_REQUIRE_GPU=1, but no usable CUDA device was found");
  skip("no CUDA device");
  return false;
}

using selftest::backend_device;
using selftest::to_backend;

// A backend result as a host fp32 tensor.
inline Tensor to_host_f32(const Tensor& t) { return t.to(Device::cpu()).to(DType::F32); }

// A tensor of the backend's memory (any layout and float dtype) as row-major fp32 values.
inline std::vector<float> values(const Tensor& t) { return selftest::host_values(t); }

inline const char* dtype_label(DType dtype) {
  return dtype == DType::F32 ? "fp32" : dtype == DType::BF16 ? "bf16" : "fp16";
}

}  // namespace heed::testing
