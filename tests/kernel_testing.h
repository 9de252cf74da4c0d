// Shared by the kernel tests: each kernel runs on the simulator always, and on a GPU when one is usable.
//
// A kernel's arguments are raw pointers; these helpers put a host tensor where the backend under test
// reads it (the simulator reads host memory, the GPU its own) and bring results back. Most come from the
// kernel checks of heed/selftest/check.h, which the kernel tests share with `heed selftest`. GPU test cases
// are tagged [gpu]; tests/CMakeLists.txt gives them the ctest label `gpu` and reports them as skipped when
// they print kNoGpu.
#pragma once

#include <cstdio>
#include <functional>
#include <vector>

#include "heed/core/device.h"
#include "heed/core/tensor.h"
#include "heed/selftest/check.h"
#include "kernels/common/backend.h"
#include "sim/cuda_sim.h"

namespace heed::testing {

inline constexpr const char* kNoGpu = "SKIPPED: no CUDA device";

// False, after printing kNoGpu, when this machine has no usable GPU.
inline bool gpu_or_skip() {
  if (cuda_device_count() > 0) return true;
  std::puts(kNoGpu);
  return false;
}

using selftest::backend_device;
using selftest::to_backend;

// A backend result as a host fp32 tensor.
inline Tensor to_host_f32(const Tensor& t) { return t.to(Device::cpu()).to(DType::F32); }

// A tensor of the backend's memory (any layout and float dtype) as row-major fp32 values.
inline std::vector<float> values(const Tensor& t) { return selftest::host_values(t); }

// Runs `run` on the simulator in order, then under the schedules that let one warp run ahead (a missing
// barrier then gives a wrong result) or interleave threads at random and shuffle the order of blocks.
inline void under_every_schedule(uint64_t seed, const std::function<void()>& run) {
  for (cuda_sim::Schedule schedule : {cuda_sim::Schedule::InOrder, cuda_sim::Schedule::WarpAhead,
                                      cuda_sim::Schedule::Random}) {
    const cuda_sim::ScheduleScope scope(schedule, seed);
    run();
  }
}

inline const char* dtype_label(DType dtype) {
  return dtype == DType::F32 ? "fp32" : dtype == DType::BF16 ? "bf16" : "fp16";
}

}  // namespace heed::testing
