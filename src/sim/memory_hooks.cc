// The hooks that the counting build of the kernels calls on every load and store (counters.h): GCC's
// -fsanitize=kernel-address with --param asan-instrumentation-with-call-threshold=0 turns each access
// into a call of __asan_{load,store}{1,2,4,8,16,N}_noabort(address[, size]), and nothing else (no shadow
// memory, no runtime library). Each passes the access on to the runtime with its instruction's address.
// Only in builds with the counters (GCC without a sanitizer of its own, whose runtime these names belong to).
#ifdef HEED_WITH_SIM_COUNTERS

#include <cstddef>
#include <cstdint>

#include "sim/cuda_sim.h"

#define HEED_SIM_ACCESS_HOOKS(bytes)                                                                  \
  void __asan_load##bytes##_noabort(uintptr_t address) {                                             \
    heed::cuda_sim::count_memory_access(reinterpret_cast<const void*>(address), bytes, false,        \
                                        __builtin_return_address(0));                                \
  }                                                                                                   \
  void __asan_store##bytes##_noabort(uintptr_t address) {                                            \
    heed::cuda_sim::count_memory_access(reinterpret_cast<const void*>(address), bytes, true,         \
                                        __builtin_return_address(0));                                \
  }

extern "C" {
HEED_SIM_ACCESS_HOOKS(1)
HEED_SIM_ACCESS_HOOKS(2)
HEED_SIM_ACCESS_HOOKS(4)
HEED_SIM_ACCESS_HOOKS(8)
HEED_SIM_ACCESS_HOOKS(16)
void __asan_loadN_noabort(uintptr_t address, size_t size) {
  heed::cuda_sim::count_memory_access(reinterpret_cast<const void*>(address), size, false,
                                      __builtin_return_address(0));
}
void __asan_storeN_noabort(uintptr_t address, size_t size) {
  heed::cuda_sim::count_memory_access(reinterpret_cast<const void*>(address), size, true,
                                      __builtin_return_address(0));
}
// Called before a function that does not return (a throw); nothing to do without shadow memory.
void __asan_handle_no_return() {}
}

#endif  // HEED_WITH_SIM_COUNTERS
