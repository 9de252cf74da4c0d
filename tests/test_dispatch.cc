// HEED_DISPATCH (src/ops/dispatch.h): an expression with the chosen backend's value, calling exactly one
// backend, and an error naming the op for a device with none.
#include <catch2/catch.hpp>

#include <string>

#include "ops/dispatch.h"

using namespace heed;

namespace dispatch_test {

int cpu_calls = 0, gpu_calls = 0;

namespace cpu {
std::string which(int x) {
  ++cpu_calls;
  return "cpu " + std::to_string(x);
}
void touch() { ++cpu_calls; }
}  // namespace cpu

namespace gpu {
std::string which(int x) {
  ++gpu_calls;
  return "gpu " + std::to_string(x);
}
void touch() { ++gpu_calls; }
}  // namespace gpu

std::string which(const Device& device, int x) { return HEED_DISPATCH(device, "which", which(x)); }
void touch(const Device& device) { HEED_DISPATCH(device, "touch", touch()); }

}  // namespace dispatch_test

TEST_CASE("HEED_DISPATCH returns the value of the one backend it calls", "[ops][dispatch]") {
  using namespace dispatch_test;
  cpu_calls = gpu_calls = 0;
  CHECK(which(Device::cpu(), 1) == "cpu 1");
  CHECK(which(Device::sim(), 2) == "gpu 2");
  CHECK(which(Device::cuda(0), 3) == "gpu 3");
  CHECK(cpu_calls == 1);
  CHECK(gpu_calls == 2);
  touch(Device::cpu());
  touch(Device::sim());
  CHECK(cpu_calls == 2);
  CHECK(gpu_calls == 3);
}

TEST_CASE("HEED_DISPATCH refuses a device without a backend and names the op", "[ops][dispatch]") {
  using namespace dispatch_test;
  cpu_calls = gpu_calls = 0;
  const Device unknown{static_cast<DeviceType>(7), 0};
  try {
    touch(unknown);
    FAIL("no heed::Error thrown");
  } catch (const Error& e) {
    CHECK(std::string(e.what()) == "op touch has no implementation for ? in this build");
    CHECK(e.where().find("test_dispatch.cc:") != std::string::npos);
  }
  CHECK_THROWS_AS(which(unknown, 4), Error);
  CHECK(cpu_calls == 0);
  CHECK(gpu_calls == 0);
}
