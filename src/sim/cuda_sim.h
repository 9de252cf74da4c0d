// Heed's CUDA simulator: the CUDA that kernels/ may use, on CPU fibers. kernels/common/device.h includes
// this header when a kernel source is compiled by the host compiler with -DHEED_SIM.
//
// How it runs. launch() runs every block of the grid; each CUDA thread of a block is a fiber (its own
// stack, switched by src/sim/fiber_switch_x86_64.S), and all fibers of a block share one OS thread, so
// `__shared__` (thread_local here) is per-block storage. Blocks run one after another on each of
// HEED_SIM_WORKERS OS threads (default 2). A fiber runs until it waits: at __syncthreads (a real barrier
// over the block's threads), or at a warp collective (a real exchange among the warp's lanes). The
// scheduler then picks the next fiber under one of three schedules (Schedule below); the adversarial ones
// let one warp run ahead, which turns a missing barrier into a wrong result.
//
// What kernels may use:
//   builtins      threadIdx blockIdx blockDim gridDim, dim3 uint3
//   qualifiers    __global__ __device__ __host__ __forceinline__ __shared__ __launch_bounds__ __align__
//                 __restrict__; dynamic shared memory through dynamic_shared_memory<T>() (common/device.h)
//   sync          __syncthreads __syncwarp
//   warp          __shfl_sync __shfl_xor_sync __shfl_up_sync __shfl_down_sync (any value up to 16 bytes),
//                 __ballot_sync __any_sync __all_sync
//   atomics       atomicAdd (float, double, int, unsigned) atomicMax (int, unsigned) atomicCAS atomicExch
//   math          the <cmath> functions, __expf __logf __fdividef rsqrtf INFINITY, min max (two values of
//                 one type, or an int and an unsigned, compared as unsigned as in CUDA)
//   16-bit        __nv_bfloat16 __nv_bfloat162 __half __half2 and the conversions below, rounding to
//                 nearest even as the GPU does
//   vectors       float2 float4 int2 int4 uint2 uint4 and make_*
//   tensor cores  through kernels/common/ptx.h: mma.m16n8k16 (bf16, fp16), ldmatrix (x2, x4, .trans),
//                 cp.async with commit and wait groups (declared at the end of this header)
//
// What it checks: a __syncthreads that some threads never reach, warp collectives whose lanes disagree
// or are missing, deadlocks, misaligned ldmatrix and cp.async addresses, and exceptions thrown in device
// code all become a heed::Error from launch(), naming the thread and block. A shuffle that reads a lane
// outside its mask (or past the end of the block) gets NaN poison, as undefined values should look. A
// fiber that overflows its 64 KiB stack hits a guard page, and the simulator says so before the crash.
// cp.async copies land at the wait that must complete them (or, under the adversarial schedules, half of
// them at once) and dynamic shared memory starts each block as NaN, so a missing wait reads poison and a
// prefetch racing with other warps' reads corrupts them.
//
// What it cannot see, so that nobody over-trusts it:
//   - races between blocks: blocks never overlap in time within a worker, and atomics are the only
//     inter-block communication it models (their order is shuffled under the adversarial schedules);
//   - weak memory ordering and a missing __threadfence: every store is at once visible to all threads;
//   - a race inside a block that no schedule happens to turn into a wrong result. The adversarial
//     schedules expose most missing barriers; a ThreadSanitizer build (clang -fsanitize=thread) reports
//     every race between the threads of a block at its source lines, since the runtime makes each CUDA
//     thread a TSan fiber whose only happens-before edges are CUDA's (block start and end, barriers,
//     warp collectives). Run it on "[sim]~[deliberate-race]" and the kernel tests;
//   - the last bits of real tensor cores: mma adds the 16 exact products and C in double (exact while
//     the terms span less than 2^24 in magnitude, close to it beyond) and rounds once to fp32, while
//     hardware aligns and truncates; the host's expf/__expf also differ from the GPU's in the last bits;
//   - stale static __shared__ data: only dynamic shared memory is poisoned at the start of a block;
//   - lanes of one warp running collectives with different masks at the same time, which Volta's
//     independent thread scheduling allows: here they are reported as disagreeing lanes;
//   - timing, occupancy and register spills: the nvcc build and ptxas check spills; src/sim/counters.h
//     counts what a cost model needs (sectors, bank-conflicted wavefronts, mma FLOPs, barriers).
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <source_location>
#include <string>
#include <type_traits>

#include "heed/core/half.h"

// ---- builtins and qualifiers ------------------------------------------------------------------------

struct uint3 {
  unsigned x = 0, y = 0, z = 0;
};

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};

// Real variables, not macros: CUDA's own headers have struct fields with these names.
extern thread_local uint3 threadIdx;
extern thread_local uint3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ thread_local
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))

using cudaStream_t = struct CUstream_st*;

// ---- vector types ----------------------------------------------------------------------------------

struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) int2 { int x, y; };
struct alignas(16) int4 { int x, y, z, w; };
struct alignas(8) uint2 { unsigned x, y; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline int2 make_int2(int x, int y) { return {x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
inline uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }

namespace heed::cuda_sim {

// A 16-byte access kept whole (common/device.h's load_16 and store_16, LDG.128 and STG.128 on a GPU).
// The host compiler narrows a copied uint4 to 4-byte loads (or to just the elements read from it); a
// 16-byte memcpy stays one access, so the counting build sees the one request a GPU makes
// (tests/test_sim_counters.cc checks it).
[[gnu::always_inline]] inline uint4 load_16(const void* p) {
  uint4 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
[[gnu::always_inline]] inline void store_16(void* p, uint4 v) { std::memcpy(p, &v, sizeof v); }

}  // namespace heed::cuda_sim

// ---- 16-bit floating point -------------------------------------------------------------------------

// Like CUDA's, each converts from and to float (rounding to nearest even) and keeps its bits public.
struct __nv_bfloat16 {
  uint16_t bits;
  __nv_bfloat16() = default;
  __nv_bfloat16(float f) : bits(heed::float_to_bf16_bits(f)) {}
  operator float() const { return heed::bf16_bits_to_float(bits); }
};
struct __half {
  uint16_t bits;
  __half() = default;
  __half(float f) : bits(heed::float_to_fp16_bits(f)) {}
  operator float() const { return heed::fp16_bits_to_float(bits); }
};
struct alignas(4) __nv_bfloat162 {
  __nv_bfloat16 x, y;
};
struct alignas(4) __half2 {
  __half x, y;
};

inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
inline float __bfloat162float(__nv_bfloat16 h) { return static_cast<float>(h); }
inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) { return {__nv_bfloat16(a), __nv_bfloat16(b)}; }
inline float2 __bfloat1622float2(__nv_bfloat162 v) { return {float(v.x), float(v.y)}; }
inline float __low2float(__nv_bfloat162 v) { return float(v.x); }
inline float __high2float(__nv_bfloat162 v) { return float(v.y); }

inline __half __float2half(float f) { return __half(f); }
inline __half __float2half_rn(float f) { return __half(f); }
inline float __half2float(__half h) { return static_cast<float>(h); }
inline __half2 __floats2half2_rn(float a, float b) { return {__half(a), __half(b)}; }
inline float2 __half22float2(__half2 v) { return {float(v.x), float(v.y)}; }
inline float __low2float(__half2 v) { return float(v.x); }
inline float __high2float(__half2 v) { return float(v.y); }

// ---- math ------------------------------------------------------------------------------------------

inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
// CUDA's min and max: two values of one type, or an int and an unsigned (compared as unsigned, as CUDA
// does); fminf/fmaxf for floats.
template <typename T>
  requires std::is_integral_v<T>
inline T min(T a, T b) { return b < a ? b : a; }
template <typename T>
  requires std::is_integral_v<T>
inline T max(T a, T b) { return a < b ? b : a; }
inline unsigned min(int a, unsigned b) { return min(static_cast<unsigned>(a), b); }
inline unsigned min(unsigned a, int b) { return min(a, static_cast<unsigned>(b)); }
inline unsigned max(int a, unsigned b) { return max(static_cast<unsigned>(a), b); }
inline unsigned max(unsigned a, int b) { return max(a, static_cast<unsigned>(b)); }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }

// ---- atomics ---------------------------------------------------------------------------------------
// Blocks on different workers run at once, so these are real atomic read-modify-writes.

template <typename T>
inline T atomicAdd(T* address, std::type_identity_t<T> value) {
  return std::atomic_ref<T>(*address).fetch_add(value);
}
template <typename T>
inline T atomicMax(T* address, std::type_identity_t<T> value) {
  std::atomic_ref<T> a(*address);
  T old = a.load();
  while (old < value && !a.compare_exchange_weak(old, value)) {
  }
  return old;
}
template <typename T>
inline T atomicCAS(T* address, std::type_identity_t<T> compare, std::type_identity_t<T> value) {
  std::atomic_ref<T>(*address).compare_exchange_strong(compare, value);
  return compare;
}
template <typename T>
inline T atomicExch(T* address, std::type_identity_t<T> value) {
  return std::atomic_ref<T>(*address).exchange(value);
}

// ---- the runtime -----------------------------------------------------------------------------------

namespace heed::cuda_sim {

// How the fibers of a block are interleaved. InOrder (the default) runs thread 0 until it waits, then
// thread 1, and so on: deterministic and fastest. Random picks any ready thread. WarpAhead gives the
// warps random priorities and always runs the highest ready one, so one warp races ahead of the others
// as far as the barriers let it: that catches a missing __syncthreads before a shared buffer is reused,
// which InOrder misses. The two adversarial schedules also shuffle the order of blocks (so atomics
// between blocks meet every order) and let half of the cp.async copies, at random, land at issue.
enum class Schedule { InOrder, Random, WarpAhead };

// Sets the schedule (and the seed of its random choices) for launches made while it lives, from any
// thread: the setting is process-wide. HEED_SIM_SCHEDULE=inorder|random|warp-ahead sets the default.
class ScheduleScope {
 public:
  explicit ScheduleScope(Schedule schedule, uint64_t seed = 1);
  ~ScheduleScope();
  ScheduleScope(const ScheduleScope&) = delete;
  ScheduleScope& operator=(const ScheduleScope&) = delete;

 private:
  Schedule saved_schedule_;
  uint64_t saved_seed_;
};

// Runs body(context) once per CUDA thread of the grid, the threads of a block as fibers of one OS thread
// and the blocks spread over HEED_SIM_WORKERS threads (default 2, the caller's among them). Returns when
// every block has finished, or throws heed::Error describing the first failure; the block that failed is
// abandoned and no further blocks start. One launch runs at a time.
// `kernel` (the __global__ function, or null) names the launch in the counters (counters.h); the
// `context_bytes` at `context` are the launch's parameters, which the counters do not take for memory.
void launch_threads(dim3 grid, dim3 block, size_t dynamic_smem_bytes, void (*body)(void*), void* context,
                    size_t context_bytes, const void* kernel);

template <typename Body>
void launch(dim3 grid, dim3 block, size_t dynamic_smem_bytes, Body body, const void* kernel = nullptr) {
  launch_threads(grid, block, dynamic_smem_bytes, [](void* b) { (*static_cast<Body*>(b))(); }, &body, sizeof(Body),
                 kernel);
}

// Counts one access of the calling CUDA thread while the counters count memory (counters.h); `site` is
// the instruction's address. The counting build's hooks (memory_hooks.cc), cp.async and ldmatrix call it.
void count_memory_access(const void* address, size_t size, bool store, const void* site);

// The calling block's dynamic shared memory: dynamic_smem_bytes of the launch, 16-byte aligned.
void* dynamic_shared_memory();

// The barriers. Each takes its call site so that one can be dropped for mutation testing:
// HEED_SIM_DROP_BARRIER=FILE:LINE (FILE a suffix of the source's path, e.g. attention_forward.cu:195) turns
// the __syncthreads or __syncwarp written at that line into nothing, as if it had been deleted, without a
// rebuild. tests/barrier_mutations.py drops every barrier of kernels/ in turn and requires the kernel's
// tests to fail, under the adversarial schedules and under ThreadSanitizer.
void sync_block(const char* file, int line);
void sync_warp(unsigned mask, const char* file, int line);

// The warp exchange behind every collective: each lane of `mask` publishes `size` bytes (at most 64);
// once all have, every lane gets the 32 published values (indexed by lane), and the lane whose arrival
// completed the exchange first runs `finish`, which may fill each lane's 16-byte result slot.
struct WarpSlots {
  alignas(16) unsigned char in[32][64];
  alignas(16) unsigned char out[32][16];
  unsigned lanes;  // the lanes that took part: the mask, less lanes past the end of the block
};
enum class Collective { Sync, Shuffle, Vote, Mma, Ldmatrix };
const WarpSlots& warp_exchange(Collective kind, unsigned mask, const void* mine, size_t size,
                               void (*finish)(WarpSlots&) = nullptr);
unsigned lane_id();

// Throws the heed::Error that launch() reports, naming the calling thread and block.
[[noreturn]] void misuse(const std::string& what);

// All bits set: NaN in every floating-point type, what undefined reads return.
alignas(16) inline constexpr unsigned char kPoison[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                                          0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

// Tensor cores (see kernels/common/ptx.h for the register layouts). mma takes the whole warp and gives
// each lane its registers of D = A B + C, the 16 products added exactly in double and rounded once to
// fp32. ldmatrix takes the whole warp; each lane that gives a row address reads its row as it arrives.
// cp.async is deferred: a copy is recorded in its thread's open group, commit closes the group, and
// wait(n) performs the oldest groups until n remain, so shared memory read before the wait is poison.
void mma_m16n8k16_bf16(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4]);
void mma_m16n8k16_f16(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4]);
void ldmatrix_x4(uint32_t r[4], const void* row);
void ldmatrix_x4_trans(uint32_t r[4], const void* row);
void ldmatrix_x2(uint32_t r[2], const void* row);
void ldmatrix_x2_trans(uint32_t r[2], const void* row);
void cp_async_16(void* smem_dst, const void* gmem_src, bool valid = true);
void cp_async_commit();
void cp_async_wait(int pending);

}  // namespace heed::cuda_sim

// ---- synchronisation and warp intrinsics -----------------------------------------------------------

inline void __syncthreads(std::source_location at = std::source_location::current()) {
  heed::cuda_sim::sync_block(at.file_name(), static_cast<int>(at.line()));
}
inline void __syncwarp(unsigned mask = 0xffffffffu, std::source_location at = std::source_location::current()) {
  heed::cuda_sim::sync_warp(mask, at.file_name(), static_cast<int>(at.line()));
}

namespace heed::cuda_sim {

template <typename T>
T shuffle(unsigned mask, T value, int width, int (*source)(int lane, int arg, int width), int arg) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 16, "shuffles move 4- to 16-byte values");
  if (width < 1 || width > 32 || (width & (width - 1)) != 0) misuse("a shuffle's width must be 1, 2, 4, 8, 16 or 32");
  const WarpSlots& slots = warp_exchange(Collective::Shuffle, mask, &value, sizeof(T));
  const int lane = static_cast<int>(lane_id());
  const int src = source(lane, arg, width);
  T out;
  // The PTX ISA leaves a value read from a lane outside the mask undefined: here it is NaN poison.
  std::memcpy(&out, slots.lanes >> src & 1u ? slots.in[src] : kPoison, sizeof(T));
  return out;
}

}  // namespace heed::cuda_sim

template <typename T>
T __shfl_sync(unsigned mask, T value, int src_lane, int width = 32) {
  return heed::cuda_sim::shuffle(
      mask, value, width, [](int lane, int src, int w) { return (lane & ~(w - 1)) + (src & (w - 1)); }, src_lane);
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T value, int lane_mask, int width = 32) {
  return heed::cuda_sim::shuffle(
      mask, value, width,
      [](int lane, int m, int w) {
        const int src = lane ^ m;  // lanes of earlier groups of `w` may be read, later ones not
        return src <= (lane | (w - 1)) ? src : lane;
      },
      lane_mask);
}
template <typename T>
T __shfl_down_sync(unsigned mask, T value, unsigned delta, int width = 32) {
  return heed::cuda_sim::shuffle(
      mask, value, width, [](int lane, int d, int w) { return (lane & (w - 1)) + d < w ? lane + d : lane; },
      static_cast<int>(delta));
}
template <typename T>
T __shfl_up_sync(unsigned mask, T value, unsigned delta, int width = 32) {
  return heed::cuda_sim::shuffle(
      mask, value, width, [](int lane, int d, int w) { return (lane & (w - 1)) >= d ? lane - d : lane; },
      static_cast<int>(delta));
}

inline unsigned __ballot_sync(unsigned mask, int predicate) {
  const int mine = predicate != 0;
  const auto& slots = heed::cuda_sim::warp_exchange(heed::cuda_sim::Collective::Vote, mask, &mine, sizeof(mine));
  unsigned ballot = 0;
  for (int lane = 0; lane < 32; ++lane)
    if ((slots.lanes >> lane & 1u) && *reinterpret_cast<const int*>(slots.in[lane])) ballot |= 1u << lane;
  return ballot;
}
inline int __any_sync(unsigned mask, int predicate) { return __ballot_sync(mask, predicate) != 0; }
inline int __all_sync(unsigned mask, int predicate) {
  const int mine = predicate != 0;
  const auto& slots = heed::cuda_sim::warp_exchange(heed::cuda_sim::Collective::Vote, mask, &mine, sizeof(mine));
  for (int lane = 0; lane < 32; ++lane)
    if ((slots.lanes >> lane & 1u) && !*reinterpret_cast<const int*>(slots.in[lane])) return 0;
  return 1;
}
