// PerDevice<T> (src/core/per_device.h), the registry behind the per-device allocators, cuBLASLt and cuDNN
// state: one instance per device index, made once, also when threads ask for it at the same time.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/per_device.h"

using namespace heed;

namespace {

struct Instance {
  int device;
};

}  // namespace

TEST_CASE("PerDevice makes one instance per device, on first use", "[core][per_device]") {
  std::vector<int> made;
  PerDevice<Instance> registry([&](int device) {
    made.push_back(device);
    return std::make_unique<Instance>(Instance{device});
  });
  CHECK(made.empty());
  Instance& zero = registry.get(0);
  Instance& three = registry.get(3);
  CHECK(zero.device == 0);
  CHECK(three.device == 3);
  CHECK(&registry.get(0) == &zero);
  CHECK(&registry.get(3) == &three);
  CHECK(made == std::vector<int>{0, 3});
}

TEST_CASE("PerDevice refuses an index out of range", "[core][per_device]") {
  PerDevice<Instance> registry([](int device) { return std::make_unique<Instance>(Instance{device}); });
  CHECK_THROWS_WITH(registry.get(-1), "device index -1 out of range [0, 16)");
  CHECK_THROWS_WITH(registry.get(PerDevice<Instance>::kMaxDevices), "device index 16 out of range [0, 16)");
}

TEST_CASE("PerDevice tries again after a make that threw", "[core][per_device]") {
  int attempts = 0;
  PerDevice<Instance> registry([&](int device) {
    HEED_CHECK(++attempts > 1, "device {} is not ready", device);
    return std::make_unique<Instance>(Instance{device});
  });
  CHECK_THROWS_WITH(registry.get(1), "device 1 is not ready");
  CHECK(registry.get(1).device == 1);
  CHECK(&registry.get(1) == &registry.get(1));
  CHECK(attempts == 2);
}

TEST_CASE("PerDevice makes each instance once when threads race for it", "[core][per_device]") {
  constexpr int kDevices = 4, kThreads = 8;
  std::atomic<int> made[kDevices] = {};
  PerDevice<Instance> registry([&](int device) {
    ++made[device];
    // A slow make, as cublasLtCreate is, widens the window in which an unguarded registry makes two.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return std::make_unique<Instance>(Instance{device});
  });
  Instance* seen[kThreads][kDevices] = {};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      while (!go) std::this_thread::yield();
      for (int i = 0; i < kDevices; ++i) {
        const int device = (t + i) % kDevices;
        seen[t][device] = &registry.get(device);
      }
    });
  go = true;
  for (std::thread& thread : threads) thread.join();
  for (int d = 0; d < kDevices; ++d) {
    CHECK(made[d] == 1);
    for (int t = 0; t < kThreads; ++t) {
      CHECK(seen[t][d] == seen[0][d]);
      CHECK(seen[t][d]->device == d);
    }
  }
}
