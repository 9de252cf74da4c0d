// An estimate of a training step's time on a real GPU from the simulator's counters (counters.h): a
// roofline with a latency bound, per launch, in the spirit of the speed-of-light analyses of Nsight
// Compute. docs/cuda.md ("The cost model") gives every constant with its source, and what is left out.
//
// A kernel launch takes the largest of
//   compute   its tensor-core FLOPs at the rate mma.sync kernels reach (FlashAttention-2's, not the
//             dense peak, which only wgmma kernels approach);
//   memory    its global sectors at the achievable HBM bandwidth (every sector from DRAM: no L2 reuse is
//             credited), and its shared-memory wavefronts at one per SM per clock;
//   latency   waves of blocks (from the resident blocks per SM that registers, shared memory and warps
//             allow) times the longest thread's global loads, a few in flight at a time, each a DRAM
//             latency: what a kernel with too little parallelism pays;
// plus a launch overhead. A GEMM (cuBLASLt) is modelled from its shape: tiles of the size cuBLASLt
// picks for large products, in waves over the SMs, each at a stated fraction of the dense peak, or its
// operands' traffic at the HBM bandwidth if that is longer; a product of too few tiles to fill the SMs
// is split over K, paying for its partial sums' traffic and a second launch. Every copy to the host and every
// synchronisation costs a round trip; a copy to the device, queued on the stream from pinned memory, costs
// a call and its bytes over PCIe. The step is the sum: launches and copies are serial on one stream.
#pragma once

#include <string>
#include <vector>

#include "sim/counters.h"

namespace heed::cuda_sim {

struct GpuModel {
  std::string name;
  int sms;
  double clock_hz;
  double dense_16bit_flops;     // peak dense bf16/fp16 tensor-core FLOP/s: what MFU divides by
  double mma_sync_flops;        // what hand-written mma.sync kernels reach
  double gemm_efficiency;       // the fraction of the dense peak a cuBLASLt tile reaches
  int gemm_tile_m, gemm_tile_n;
  int64_t gemm_min_split_k;     // the least depth of one slice of a product split over K
  double hbm_bytes_per_s;       // achievable, not the data sheet's peak
  double dram_latency_s;
  int loads_in_flight_per_thread;
  int max_warps_per_sm, max_blocks_per_sm, registers_per_sm, register_granularity_per_warp;
  int smem_per_sm, smem_reserved_per_block;
  double launch_overhead_s, host_sync_s;
  double host_to_device_bytes_per_s;  // a copy from pinned host memory
};

// H100 SXM5 (132 SMs, HBM3): the model of `bench_train_step --estimate h100`.
GpuModel h100_sxm();

// What ptxas reports for a kernel on sm_90, by name (the most over its instantiations); see
// kernel_resources.inc for where the numbers come from. Null for a kernel that is not in the table.
struct KernelResources {
  const char* kernel;
  int registers, static_smem_bytes;
};
const KernelResources* kernel_resources(const std::string& kernel);

struct Estimate {
  double seconds = 0;        // the bound, plus launch overhead
  std::string bound;         // "compute", "memory", "shared", "latency" or "launch"
  double compute_s = 0, memory_s = 0, shared_s = 0, latency_s = 0;
  int resident_blocks_per_sm = 0;
};

// Blocks of `launch` that one SM holds at once (at least 1).
int resident_blocks_per_sm(const GpuModel& gpu, const LaunchCounters& launch);
Estimate estimate_launch(const GpuModel& gpu, const LaunchCounters& launch);
// The slices a GEMM's K is split into (1: none). A product of fewer output tiles than SMs, such as a weight
// gradient (512 x 512 over 25,000 tokens), would leave most SMs idle for its whole depth; cuBLASLt's
// heuristics then split K (or stream-K on Hopper) and add the slices' fp32 partials. The model takes, of
// the splits up to as many slices as fill the SMs in one wave (each at least gemm_min_split_k deep), the
// one it estimates fastest. The partials of one wave (132 tiles of 128 x 256 floats, 16.5 MiB) fit the
// 32 MiB workspace Heed gives cuBLASLt.
int gemm_split_k(const GpuModel& gpu, const GemmCounters& gemm);
Estimate estimate_gemm(const GpuModel& gpu, const GemmCounters& gemm);
// The same with K split in `split` slices.
Estimate estimate_gemm(const GpuModel& gpu, const GemmCounters& gemm, int split);

struct KernelTotal {
  std::string name;
  uint64_t calls = 0;
  double seconds = 0;
  std::string bound;  // the bound of its longest call
};

struct StepEstimate {
  double seconds = 0;
  uint64_t launches = 0;  // kernels and GEMMs
  uint64_t host_syncs = 0, device_allocations = 0;
  std::vector<KernelTotal> kernels;  // slowest first; all GEMMs are one entry, "cublaslt_gemm"
};
StepEstimate estimate_step(const GpuModel& gpu, const StepCounters& step);

// Counters of a step at size `x` from two runs at sizes xa and xb (say, sentences of a batch), each
// count taken as affine in the size: launches must match one for one (kernel, block size). A launch's
// grid becomes its extrapolated number of blocks (in x).
StepCounters extrapolate(const StepCounters& a, double xa, const StepCounters& b, double xb, double x);

}  // namespace heed::cuda_sim
