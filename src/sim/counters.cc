// The step-level side of the simulator's counters (counters.h): the scope, and what the GPU path and the
// runtime report while it lives. The per-launch counting is in runtime.cc, next to the fibers it watches.
#include "sim/counters.h"

#include <cxxabi.h>
#include <dlfcn.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string_view>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>

#include "heed/core/error.h"

namespace heed::cuda_sim {

namespace {

enum Mode { kOff = 0, kCounting = 1, kCountingMemory = 2 };
std::atomic<int> g_mode{kOff};
std::mutex g_mutex;
StepCounters g_step;

// "void heed::kernels::sim::attention_forward_kernel<__nv_bfloat16, 64>(heed::kernels::AttentionArgs)"
// -> "attention_forward_kernel": the parameter list and the template arguments are dropped (matching
// brackets from the end), then everything up to the last "::" or space.
std::string base_name(std::string_view name) {
  auto drop_bracketed = [&](char open, char close) {
    if (name.empty() || name.back() != close) return;
    int depth = 0;
    for (size_t i = name.size(); i-- > 0;) {
      depth += name[i] == close ? 1 : name[i] == open ? -1 : 0;
      if (depth == 0) {
        name = name.substr(0, i);
        return;
      }
    }
  };
  drop_bracketed('(', ')');
  drop_bracketed('<', '>');
  const size_t colon = name.rfind("::"), space = name.rfind(' ');
  size_t start = 0;
  if (colon != std::string_view::npos) start = colon + 2;
  if (space != std::string_view::npos && space + 1 > start) start = space + 1;
  return std::string(name.substr(start));
}

}  // namespace

bool memory_counting_available() {
#ifdef HEED_WITH_SIM_COUNTERS
  return true;
#else
  return false;
#endif
}

CountingScope::CountingScope(bool count_memory) {
  std::lock_guard lock(g_mutex);
  HEED_CHECK(g_mode.load() == kOff, "simulator counters: a CountingScope is already counting");
  g_step = StepCounters{};
  g_mode = count_memory && memory_counting_available() ? kCountingMemory : kCounting;
}

CountingScope::~CountingScope() {
  std::lock_guard lock(g_mutex);
  g_mode = kOff;
}

StepCounters CountingScope::take() {
  std::lock_guard lock(g_mutex);
  return std::exchange(g_step, StepCounters{});
}

bool counting() { return g_mode.load(std::memory_order_relaxed) != kOff; }
bool counting_memory() { return g_mode.load(std::memory_order_relaxed) == kCountingMemory; }

void count_gemm(const GemmCounters& gemm) {
  if (!counting()) return;
  std::lock_guard lock(g_mutex);
  g_step.gemms.push_back(gemm);
}

void count_copy(bool to_host, uint64_t bytes) {
  if (!counting()) return;
  std::lock_guard lock(g_mutex);
  (to_host ? g_step.copies_to_host : g_step.copies_to_device) += 1;
  (to_host ? g_step.bytes_to_host : g_step.bytes_to_device) += bytes;
}

void count_synchronization() {
  if (!counting()) return;
  std::lock_guard lock(g_mutex);
  ++g_step.synchronizations;
}

void count_device_allocation(uint64_t bytes) {
  if (!counting()) return;
  std::lock_guard lock(g_mutex);
  ++g_step.device_allocations;
  g_step.device_allocation_bytes += bytes;
}

void record_launch(LaunchCounters counters) {
  std::lock_guard lock(g_mutex);
  g_step.launches.push_back(std::move(counters));
}

std::string kernel_name(const void* kernel) {
  static std::mutex mutex;
  static std::unordered_map<const void*, std::string> names;
  std::lock_guard lock(mutex);
  auto [it, inserted] = names.try_emplace(kernel);
  if (!inserted) return it->second;
  Dl_info info{};
  if (kernel && dladdr(kernel, &info) && info.dli_sname) {
    int status = 0;
    std::unique_ptr<char, void (*)(void*)> demangled(abi::__cxa_demangle(info.dli_sname, nullptr, nullptr, &status),
                                                     std::free);
    it->second = base_name(status == 0 && demangled ? demangled.get() : info.dli_sname);
  } else {
    it->second = fmt::format("kernel@{}", kernel);
  }
  return it->second;
}

}  // namespace heed::cuda_sim
