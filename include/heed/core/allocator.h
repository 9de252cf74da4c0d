// One caching allocator per device.
//
// Training repeats the same shapes step after step, and the first touch of each fresh 4 KiB page costs a
// page fault; on a GPU, cudaMalloc synchronises the device. So freed blocks are
// kept in free lists keyed by size class (four classes per power of two, so at most ~19% is wasted) and
// handed out again, and memory is only returned to the system by release_cached().
#pragma once

#include <cstddef>
#include <map>
#include <mutex>
#include <vector>

#include "heed/core/device.h"

namespace heed {

struct MemoryStats {
  size_t in_use = 0;       // bytes handed out and not yet freed
  size_t peak_in_use = 0;  // high-water mark of in_use since the last reset_peak()
  size_t reserved = 0;     // bytes obtained from the system, in use or cached
};

class Allocator {
 public:
  explicit Allocator(Device device);
  ~Allocator();
  Allocator(const Allocator&) = delete;
  Allocator& operator=(const Allocator&) = delete;

  void* allocate(size_t nbytes);
  void deallocate(void* ptr, size_t nbytes);
  void release_cached();
  MemoryStats stats() const;
  void reset_peak();
  Device device() const { return device_; }

  // Size class that a request of nbytes is served from.
  static size_t size_class(size_t nbytes);

 private:
  void* system_allocate(size_t nbytes);
  void system_free(void* ptr);

  Device device_;
  mutable std::mutex mutex_;
  std::map<size_t, std::vector<void*>> free_lists_;
  MemoryStats stats_;
};

Allocator& allocator_for(Device device);

}  // namespace heed
