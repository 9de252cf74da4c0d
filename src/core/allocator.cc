#include "heed/core/allocator.h"

#include <bit>
#include <cstdlib>

#include "core/per_device.h"
#include "heed/core/error.h"
#include "sim/counters.h"
#ifdef HEED_WITH_CUDA
#include "core/cuda_runtime.h"
#endif

namespace heed {

namespace {
constexpr size_t kAlignment = 64;  // one cache line; also enough for AVX-512 loads
constexpr size_t kMinBlock = 256;
}  // namespace

Allocator::Allocator(Device device) : device_(device) {}

Allocator::~Allocator() { release_cached(); }

size_t Allocator::size_class(size_t nbytes) {
  if (nbytes <= kMinBlock) return kMinBlock;
  // Four classes per power of two: round up to a multiple of 2^(floor(log2 n) - 2).
  size_t step = std::bit_floor(nbytes) >> 2;
  return (nbytes + step - 1) / step * step;
}

void* Allocator::system_allocate(size_t nbytes) {
  if (device_.is_sim()) cuda_sim::count_device_allocation(nbytes);  // a cudaMalloc on a real GPU
  if (device_.is_host_memory()) {
    void* ptr = std::aligned_alloc(kAlignment, nbytes);
    HEED_CHECK(ptr != nullptr, "out of host memory allocating {} bytes", nbytes);
    return ptr;
  }
#ifdef HEED_WITH_CUDA
  return cuda::malloc(nbytes, device_.index);
#else
  HEED_CHECK(false, "cannot allocate on {}: Heed was built without CUDA", device_.str());
#endif
}

void Allocator::system_free(void* ptr) {
  if (device_.is_host_memory()) {
    std::free(ptr);
    return;
  }
#ifdef HEED_WITH_CUDA
  cuda::free(ptr, device_.index);
#endif
}

void* Allocator::allocate(size_t nbytes) {
  size_t cls = size_class(nbytes);
  std::lock_guard lock(mutex_);
  void* ptr = nullptr;
  auto it = free_lists_.find(cls);
  if (it != free_lists_.end() && !it->second.empty()) {
    ptr = it->second.back();
    it->second.pop_back();
  } else {
    ptr = system_allocate(cls);
    stats_.reserved += cls;
  }
  stats_.in_use += cls;
  if (stats_.in_use > stats_.peak_in_use) stats_.peak_in_use = stats_.in_use;
  return ptr;
}

void Allocator::deallocate(void* ptr, size_t nbytes) {
  size_t cls = size_class(nbytes);
  std::lock_guard lock(mutex_);
  free_lists_[cls].push_back(ptr);
  stats_.in_use -= cls;
}

void Allocator::release_cached() {
  std::lock_guard lock(mutex_);
  for (auto& [cls, ptrs] : free_lists_) {
    for (void* ptr : ptrs) system_free(ptr);
    stats_.reserved -= cls * ptrs.size();
  }
  free_lists_.clear();
}

MemoryStats Allocator::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void Allocator::reset_peak() {
  std::lock_guard lock(mutex_);
  stats_.peak_in_use = stats_.in_use;
}

Allocator& allocator_for(Device device) {
  // Leaked on purpose: tensors held by static objects may be freed after main returns.
  static Allocator* cpu = new Allocator(Device::cpu());
  if (device.is_cpu()) return *cpu;
  static Allocator* sim = new Allocator(Device::sim());  // its own pool, so its peak is the GPU path's
  if (device.is_sim()) return *sim;
  static auto& cuda = *new PerDevice<Allocator>(
      [](int index) { return std::make_unique<Allocator>(Device::cuda(index)); });
  return cuda.get(device.index);
}

}  // namespace heed
