#include "heed/core/device.h"

#include <spdlog/spdlog.h>

#include <mutex>

#include "heed/core/error.h"
#include "sim/counters.h"
#ifdef HEED_WITH_CUDA
#include "core/cuda_runtime.h"
#endif

namespace heed {

Device Device::parse(const std::string& text) {
  if (text == "cpu") return cpu();
  if (text == "cuda") return cuda(0);
  if (text == "sim") return sim();
  if (text.rfind("cuda:", 0) == 0) {
    try {
      size_t used = 0;
      int index = std::stoi(text.substr(5), &used);
      if (used == text.size() - 5 && index >= 0) return cuda(index);
    } catch (const std::exception&) {
    }
  }
  HEED_CHECK(false, "unknown device '{}' (expected cpu, cuda, cuda:N, sim or auto)", text);
}

std::string Device::str() const {
  switch (type) {
    case DeviceType::CPU: return "cpu";
    case DeviceType::CUDA: return fmt::format("cuda:{}", index);
    case DeviceType::Sim: return "sim";
  }
  return "?";
}

int cuda_device_count() {
  static int count = -1;
  static std::once_flag once;
  std::call_once(once, [] {
#ifdef HEED_WITH_CUDA
    std::string why;
    count = cuda::device_count(&why);
    if (count > 0)
      spdlog::info("CUDA backend: {} device(s) available", count);
    else
      spdlog::info("CUDA backend compiled in, but no usable GPU ({}); running on the CPU", why);
#else
    count = 0;
    spdlog::debug("built without CUDA; running on the CPU");
#endif
  });
  return count;
}

void synchronize(Device device) {
  if (device.is_sim()) cuda_sim::count_synchronization();  // cudaDeviceSynchronize on a real GPU
#ifdef HEED_WITH_CUDA
  if (device.is_cuda()) cuda::synchronize(device.index);
#else
  (void)device;
#endif
}

Device resolve_device(const std::string& text, const std::string& option) {
  if (text == "auto") return cuda_device_count() > 0 ? Device::cuda(0) : Device::cpu();
  Device device;
  try {
    device = Device::parse(text);
  } catch (const Error& e) {
    HEED_CHECK(false, "{}: {}", option, e.what());
  }
  if (device.is_cuda())
    HEED_CHECK(device.index < cuda_device_count(), "{}: device {} requested, but {} CUDA device(s) are usable",
               option, device.str(), cuda_device_count());
  return device;
}

}  // namespace heed
