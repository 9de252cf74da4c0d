// PerDevice<T>: one T per CUDA device index, made on first use: the allocators, the cuBLASLt and the cuDNN
// state. The one way Heed keeps per-device singletons.
//
// Looking an instance up, and making it the first time, hold the registry's lock; using the instance does
// not, so a T that threads share guards its own mutable parts. A make that throws leaves the device
// without an instance, and the next get tries again.
//
// Instances are never destroyed, and neither is a registry: hold one as
// `static auto& registry = *new PerDevice<T>(make);`. At exit, tensors held by static objects may still
// return memory to an allocator, and the CUDA runtime may be gone before a handle could be released.
// (Compiled by nvcc too, as C++17.)
#pragma once

#include <array>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>

#include "heed/core/error.h"

namespace heed {

template <typename T>
class PerDevice {
 public:
  static constexpr int kMaxDevices = 16;

  // make(index) builds device `index`'s instance; it runs at most once per index that succeeds.
  explicit PerDevice(std::function<std::unique_ptr<T>(int)> make) : make_(std::move(make)) {}
  PerDevice(const PerDevice&) = delete;
  PerDevice& operator=(const PerDevice&) = delete;

  T& get(int device) {
    HEED_CHECK(device >= 0 && device < kMaxDevices, "device index {} out of range [0, {})", device, kMaxDevices);
    std::lock_guard lock(mutex_);
    std::unique_ptr<T>& instance = instances_[device];
    if (!instance) instance = make_(device);
    return *instance;
  }

 private:
  std::function<std::unique_ptr<T>(int)> make_;
  std::mutex mutex_;
  std::array<std::unique_ptr<T>, kMaxDevices> instances_;
};

}  // namespace heed
