// Where a tensor lives. The CPU is always there; CUDA devices exist when Heed was built with CUDA and a
// driver and GPU are present at run time. The same binary runs on both kinds of machine.
//
// The simulated GPU, "sim", is always there too: it runs the CUDA backend's code path (the kernels of
// kernels/ on the CUDA simulator, GEMMs on the CPU with the GPU's input rounding) with its memory in host
// RAM, so that path is tested on machines without a GPU. It is for tests and `heed selftest`, not speed.
#pragma once

#include <string>

namespace heed {

enum class DeviceType : uint8_t { CPU, CUDA, Sim };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  static Device cpu() { return {}; }
  static Device cuda(int index = 0) { return {DeviceType::CUDA, index}; }
  static Device sim() { return {DeviceType::Sim, 0}; }
  // "cpu", "cuda", "cuda:N" or "sim"; throws heed::Error on anything else.
  static Device parse(const std::string& text);

  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  bool is_sim() const { return type == DeviceType::Sim; }
  // Runs the CUDA backend: a real GPU or the simulated one.
  bool is_gpu() const { return is_cuda() || is_sim(); }
  // Memory the host can read and write directly: the CPU's, and the simulated GPU's.
  bool is_host_memory() const { return is_cpu() || is_sim(); }
  std::string str() const;
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
};

// Number of usable CUDA devices: 0 when built without CUDA, or without a driver or GPU. The first call
// logs one line saying which backend is available and why.
int cuda_device_count();

// Waits until the work queued on `device` is done (a no-op on the CPU and the simulated GPU, which work
// synchronously); for timing whole steps.
void synchronize(Device device);

// "auto" resolves to cuda:0 when a GPU is usable and to the CPU otherwise; other texts go to Device::parse.
// Errors (an unknown name, a GPU that is not there) name `option`, the setting the text came from.
Device resolve_device(const std::string& text, const std::string& option);

}  // namespace heed
