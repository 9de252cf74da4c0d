// What decides a kernel's speed on a real GPU, counted by the simulator while it runs the kernel: the
// inputs of the cost model (src/sim/cost_model.h, docs/cuda.md "The cost model").
//
// Off by default, and then it costs nothing: the runtime tests one flag per launch, and the kernels that
// count memory accesses are a second build of kernels/ (Backend::SimCounted) that only runs while a
// CountingScope lives. That build is compiled with GCC's -fsanitize=kernel-address in its outline form,
// so every load and store of a kernel calls a hook (memory_hooks.cc) with its address, size and
// instruction address; no kernel source changes. The runtime then sorts each access by where it lands:
//   - a fiber's own stack: registers or local memory, not counted;
//   - shared memory (dynamic, or a static `__shared__`, which is thread_local here): counted in
//     wavefronts, grouped per warp and per instruction (the k-th time each lane of the warp executes
//     that instruction is one warp-wide access); a warp-wide access takes as many wavefronts as the most
//     distinct 4-byte words any one of the 32 banks must deliver (a word read by several lanes is
//     broadcast);
//   - the launch's parameters, the builtins (threadIdx ...) and the slots of the warp collectives (a
//     shuffle reads another lane's register through them, inline in the kernel): not counted;
//   - anything else is global memory: counted in distinct 32-byte sectors per warp-wide access, grouped
//     the same way, so a strided access shows as more sectors than a contiguous one.
// cp.async and ldmatrix are counted by the runtime itself (16 bytes a lane, global and shared), mma as
// 2 * 16 * 8 * 16 FLOPs a warp.
//
// A launch of more than 128 blocks has its memory accesses counted in every k-th block (by linear block
// index, about 128 of them) and the counts scaled by blocks / counted blocks: the blocks of Heed's
// kernels do the same work but for the last, partial ones and causal attention's skipped tiles, which an
// even sample averages over. Everything else is counted in every block.
//
// The grouping assumes the lanes of a warp execute the same instructions the same number of times, as a
// converged warp does; the host compiler's code stands in for nvcc's (its unrolling and vectorisation
// of a loop differ), so the counts are of the source's accesses, not of SASS instructions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace heed::cuda_sim {

struct LaunchCounters {
  std::string kernel;  // the kernel function's name, without namespace and template arguments
  unsigned grid[3] = {1, 1, 1}, block[3] = {1, 1, 1};
  uint64_t dynamic_smem_bytes = 0;
  uint64_t barriers = 0;          // __syncthreads completed, summed over blocks
  uint64_t warp_collectives = 0;  // shuffles, votes, __syncwarp, mma and ldmatrix, warp-wide
  uint64_t mma_flops = 0;         // tensor-core FLOPs: 2 m n k per mma.m16n8k16
  // Memory: gathered only by the counting build of the kernels (memory_counted).
  bool memory_counted = false;
  uint64_t global_load_requests = 0, global_load_sectors = 0;    // warp-wide accesses; 32-byte sectors
  uint64_t global_store_requests = 0, global_store_sectors = 0;  // of them
  uint64_t shared_requests = 0, shared_wavefronts = 0;           // warp-wide accesses; wavefronts
  uint64_t max_thread_global_loads = 0;  // the most global loads (cp.async included) any one thread made

  uint64_t blocks() const { return uint64_t{grid[0]} * grid[1] * grid[2]; }
  uint64_t threads_per_block() const { return uint64_t{block[0]} * block[1] * block[2]; }
};

// A GEMM on the GPU path (cuBLASLt on a GPU, sgemm on the simulator): not a kernel of kernels/, so the
// cost model takes its time from its shape.
struct GemmCounters {
  int64_t m = 0, n = 0, k = 0, batch = 1;
  int input_bytes = 2, output_bytes = 2;  // per element
  bool bias = false;
  bool bias_grad = false;    // sums op(a)'s rows in its epilogue (BGRADB)
  bool accumulates = false;  // beta != 0: reads the m x n it adds to
  bool relu_mask = false;    // writes or reads a ReLU mask, a bit an element of out
};

struct StepCounters {
  std::vector<LaunchCounters> launches;
  std::vector<GemmCounters> gemms;
  uint64_t copies_to_device = 0, copies_to_host = 0;  // between host and device (src/core/cuda_runtime.h)
  uint64_t bytes_to_device = 0, bytes_to_host = 0;
  uint64_t synchronizations = 0;    // explicit device synchronisations (cudaDeviceSynchronize)
  uint64_t device_allocations = 0;  // requests that reached the device's allocator (cudaMalloc)
  uint64_t device_allocation_bytes = 0;

  // What blocks the host until the device is done: a copy to the host (queued on the compute stream, then
  // waited for) and a synchronisation. A copy to the device is not one: it goes through the pinned staging
  // ring and is queued on the compute stream without waiting.
  uint64_t host_syncs() const { return copies_to_host + synchronizations; }
};

// Whether the memory-access counting build of the kernels is part of this build (GCC, no sanitizer).
bool memory_counting_available();

// Counts what the simulated GPU does while it lives (one at a time, process-wide): every launch, GEMM,
// copy, synchronisation and device allocation. With memory counting on (the default where available),
// simulated kernels run from their counting build, which is several times slower.
class CountingScope {
 public:
  explicit CountingScope(bool count_memory = true);
  ~CountingScope();
  CountingScope(const CountingScope&) = delete;
  CountingScope& operator=(const CountingScope&) = delete;
  // What was counted since the scope began (or since the last take), and a fresh start.
  StepCounters take();
};

// Whether a CountingScope lives; whether it counts memory accesses (then kernels run from the counting build).
bool counting();
bool counting_memory();

// What the GPU path reports while counting (src/core); each does nothing when not counting.
void count_gemm(const GemmCounters& gemm);
void count_copy(bool to_host, uint64_t bytes);
void count_synchronization();
void count_device_allocation(uint64_t bytes);

// The runtime's side: a finished launch's counters, and its kernel's name from the function's address
// (dladdr: executables export their symbols, see CMakeLists.txt; "kernel@ADDRESS" when it has none).
void record_launch(LaunchCounters counters);
std::string kernel_name(const void* kernel);

}  // namespace heed::cuda_sim
