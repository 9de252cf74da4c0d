// The simulator's hooks for ThreadSanitizer, internal to src/sim. Under clang -fsanitize=thread every
// CUDA thread is a TSan fiber, and the only happens-before edges between them are those CUDA
// guarantees: the start and end of a block, each __syncthreads and each warp collective (released on
// arrival, acquired on leaving). The runtime's own bookkeeping, which fibers share without such edges,
// is hidden from TSan (TsanIgnore). In other builds every hook is a no-op.
#pragma once

#include <cstddef>

// ThreadSanitizer's fiber support, with clang (-fsanitize=thread); GCC 12 has no __has_feature.
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HEED_SIM_TSAN 1
#endif
#endif

#if HEED_SIM_TSAN
// For the function at the base of each fiber, which never returns: TSan keeps a call stack per fiber,
// and a frame that is entered and never left would pile up there, block after block.
#define HEED_SIM_FIBER_BASE __attribute__((disable_sanitizer_instrumentation))
#include <sanitizer/tsan_interface.h>
extern "C" void AnnotateIgnoreReadsBegin(const char* file, int line);
extern "C" void AnnotateIgnoreReadsEnd(const char* file, int line);
extern "C" void AnnotateIgnoreWritesBegin(const char* file, int line);
extern "C" void AnnotateIgnoreWritesEnd(const char* file, int line);
extern "C" void __tsan_read_range(void* address, unsigned long size);
extern "C" void __tsan_write_range(void* address, unsigned long size);
#else
#define HEED_SIM_FIBER_BASE
#endif

namespace heed::cuda_sim::tsan {
#if HEED_SIM_TSAN
inline void* current_fiber() { return __tsan_get_current_fiber(); }
inline void* create_fiber() { return __tsan_create_fiber(0); }
inline void destroy_fiber(void* fiber) { __tsan_destroy_fiber(fiber); }
// Call right before heed_sim_switch, in the function that calls it: TSan keeps a call stack per fiber,
// so a function entered on one fiber must return on it (hence inlined). No implied synchronisation:
// the runtime releases and acquires the edges above explicitly.
[[gnu::always_inline]] inline void switch_to(void* fiber) {
  __tsan_switch_to_fiber(fiber, __tsan_switch_to_fiber_no_sync);
}
inline void release(void* token) { __tsan_release(token); }
inline void acquire(void* token) { __tsan_acquire(token); }
inline void ignore_begin() {
  AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
  AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
}
inline void ignore_end() {
  AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
  AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
}
// Accesses the runtime makes for the running CUDA thread through memcpy/memset, which TSan may not see
// (ignore_noninstrumented_modules), so they are reported explicitly.
inline void reads(const void* address, size_t size) { __tsan_read_range(const_cast<void*>(address), size); }
inline void writes(void* address, size_t size) { __tsan_write_range(address, size); }
#else
inline void* current_fiber() { return nullptr; }
inline void* create_fiber() { return nullptr; }
inline void destroy_fiber(void*) {}
inline void switch_to(void*) {}
inline void release(void*) {}
inline void acquire(void*) {}
inline void ignore_begin() {}
inline void ignore_end() {}
inline void reads(const void*, size_t) {}
inline void writes(void*, size_t) {}
#endif
}  // namespace heed::cuda_sim::tsan

namespace heed::cuda_sim {

// Hides the runtime's bookkeeping from ThreadSanitizer while it lives, on the fiber that made it.
struct TsanIgnore {
  TsanIgnore() { tsan::ignore_begin(); }
  ~TsanIgnore() { tsan::ignore_end(); }
  TsanIgnore(const TsanIgnore&) = delete;
  TsanIgnore& operator=(const TsanIgnore&) = delete;
};

}  // namespace heed::cuda_sim
