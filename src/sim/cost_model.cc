#include "sim/cost_model.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "heed/core/error.h"

namespace heed::cuda_sim {

namespace {

// Generated from ptxas's report for sm_90; see the file's opening comment.
constexpr KernelResources kResources[] = {
#include "kernel_resources.inc"
};

// A kernel missing from the table is taken at the most registers a thread may have (255), which keeps
// its occupancy, and so its estimate, from looking better than it is.
constexpr int kUnknownRegisters = 255;

uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

}  // namespace

GpuModel h100_sxm() {
  GpuModel g;
  g.name = "H100 SXM5";
  g.sms = 132;
  g.clock_hz = 1.83e9;  // 989.4e12 / (132 SMs * 4096 dense FLOPs per clock)
  g.dense_16bit_flops = 989e12;
  g.mma_sync_flops = 370e12;  // about FlashAttention-2's best on H100 (FlashAttention-3 paper)
  g.gemm_efficiency = 0.70;   // of the dense peak, per 128 x 256 tile of a large cuBLASLt GEMM
  g.gemm_tile_m = 128;
  g.gemm_tile_n = 256;
  g.gemm_min_split_k = 256;
  g.hbm_bytes_per_s = 3.0e12;  // 90% of the data sheet's 3.35 TB/s, what a streaming copy reaches
  g.dram_latency_s = 600e-9;
  g.loads_in_flight_per_thread = 4;
  g.max_warps_per_sm = 64;
  g.max_blocks_per_sm = 32;
  g.registers_per_sm = 65536;
  g.register_granularity_per_warp = 256;
  g.smem_per_sm = 228 * 1024;
  g.smem_reserved_per_block = 1024;
  g.launch_overhead_s = 4e-6;
  g.host_sync_s = 10e-6;
  g.host_to_device_bytes_per_s = 25e9;  // an assumption: under half of PCIe 5.0 x16's 64 GB/s a direction
  return g;
}

const KernelResources* kernel_resources(const std::string& kernel) {
  for (const KernelResources& r : kResources)
    if (kernel == r.kernel) return &r;
  return nullptr;
}

int resident_blocks_per_sm(const GpuModel& gpu, const LaunchCounters& launch) {
  const KernelResources* r = kernel_resources(launch.kernel);
  const uint64_t warps = ceil_div(std::max<uint64_t>(launch.threads_per_block(), 1), 32);
  const uint64_t registers = r ? static_cast<uint64_t>(r->registers) : kUnknownRegisters;
  const uint64_t registers_per_warp =
      ceil_div(registers * 32, gpu.register_granularity_per_warp) * gpu.register_granularity_per_warp;
  const uint64_t smem = (r ? static_cast<uint64_t>(r->static_smem_bytes) : 0) + launch.dynamic_smem_bytes +
                        gpu.smem_reserved_per_block;
  uint64_t blocks = gpu.max_blocks_per_sm;
  blocks = std::min(blocks, gpu.max_warps_per_sm / warps);
  blocks = std::min(blocks, gpu.registers_per_sm / (registers_per_warp * warps));
  blocks = std::min(blocks, gpu.smem_per_sm / smem);
  return static_cast<int>(std::max<uint64_t>(blocks, 1));
}

namespace {

// The largest bound names the estimate; a launch that does next to nothing is bound by its overhead.
Estimate finish(const GpuModel& gpu, Estimate e) {
  const std::pair<double, const char*> bounds[] = {
      {e.compute_s, "compute"}, {e.memory_s, "memory"}, {e.shared_s, "shared"}, {e.latency_s, "latency"}};
  const auto* top = std::max_element(std::begin(bounds), std::end(bounds),
                                     [](const auto& a, const auto& b) { return a.first < b.first; });
  e.bound = top->first > gpu.launch_overhead_s ? top->second : "launch";
  e.seconds = top->first + gpu.launch_overhead_s;
  return e;
}

}  // namespace

Estimate estimate_launch(const GpuModel& gpu, const LaunchCounters& launch) {
  Estimate e;
  e.resident_blocks_per_sm = resident_blocks_per_sm(gpu, launch);
  const uint64_t blocks = launch.blocks();
  const uint64_t busy_sms = std::min<uint64_t>(blocks, gpu.sms);
  e.compute_s = static_cast<double>(launch.mma_flops) / gpu.mma_sync_flops;
  e.memory_s = static_cast<double>(launch.global_load_sectors + launch.global_store_sectors) * 32 / gpu.hbm_bytes_per_s;
  e.shared_s = static_cast<double>(launch.shared_wavefronts) / (static_cast<double>(busy_sms) * gpu.clock_hz);
  const uint64_t waves = ceil_div(blocks, static_cast<uint64_t>(e.resident_blocks_per_sm) * gpu.sms);
  const uint64_t serial_loads = ceil_div(launch.max_thread_global_loads, gpu.loads_in_flight_per_thread);
  e.latency_s = static_cast<double>(waves * serial_loads) * gpu.dram_latency_s;
  return finish(gpu, e);
}

Estimate estimate_gemm(const GpuModel& gpu, const GemmCounters& g, int split) {
  Estimate e;
  const auto tiles = static_cast<uint64_t>(ceil_div(g.m, gpu.gemm_tile_m) * ceil_div(g.n, gpu.gemm_tile_n) * g.batch);
  const uint64_t waves = ceil_div(tiles * split, gpu.sms);
  const double tile_flops = 2.0 * gpu.gemm_tile_m * gpu.gemm_tile_n * static_cast<double>(ceil_div(g.k, split));
  e.compute_s = static_cast<double>(waves) * tile_flops / (gpu.dense_16bit_flops / gpu.sms * gpu.gemm_efficiency);
  double bytes = static_cast<double>(g.batch) * (static_cast<double>(g.m * g.k + g.k * g.n) * g.input_bytes +
                                                 static_cast<double>(g.m * g.n) * g.output_bytes);
  if (g.accumulates) bytes += static_cast<double>(g.batch * g.m * g.n) * g.output_bytes;
  if (g.relu_mask) bytes += static_cast<double>(g.batch * g.m * ((g.n + 127) / 128 * 128)) / 8;
  // Split over K, each slice writes its fp32 partial product to the workspace and a reduction reads them
  // all back: traffic, and one more launch.
  if (split > 1) bytes += 2.0 * split * static_cast<double>(g.m * g.n) * sizeof(float);
  // The bias-gradient epilogue sums op(a)'s rows from the tiles already in shared memory; charged here as a
  // second read of a from DRAM (as a separate reduction would make, without its launch), and its output.
  if (g.bias_grad) bytes += static_cast<double>(g.m * g.k) * g.input_bytes + static_cast<double>(g.m) * sizeof(float);
  e.memory_s = bytes / gpu.hbm_bytes_per_s;
  e = finish(gpu, e);
  if (split > 1) e.seconds += gpu.launch_overhead_s;
  return e;
}

// Up to as many slices as fill the SMs in one wave, each at least gemm_min_split_k deep; of those, the one
// this model finds fastest (more slices shorten each tile's depth but add partials to write and read), as
// cuBLASLt's heuristic picks among its split-K kernels by its own estimate.
int gemm_split_k(const GpuModel& gpu, const GemmCounters& g) {
  const uint64_t tiles = ceil_div(g.m, gpu.gemm_tile_m) * ceil_div(g.n, gpu.gemm_tile_n) * g.batch;
  if (g.batch != 1 || tiles >= static_cast<uint64_t>(gpu.sms)) return 1;
  const uint64_t most_slices = std::min(gpu.sms / tiles, ceil_div(g.k, gpu.gemm_min_split_k));
  const int most = static_cast<int>(std::max<uint64_t>(most_slices, 1));
  int best = 1;
  for (int split = 2; split <= most; ++split)
    if (estimate_gemm(gpu, g, split).seconds < estimate_gemm(gpu, g, best).seconds) best = split;
  return best;
}

Estimate estimate_gemm(const GpuModel& gpu, const GemmCounters& g) {
  return estimate_gemm(gpu, g, gemm_split_k(gpu, g));
}

StepEstimate estimate_step(const GpuModel& gpu, const StepCounters& step) {
  StepEstimate s;
  std::map<std::string, std::pair<KernelTotal, double>> totals;  // with each kernel's longest call
  auto add = [&](const std::string& name, const Estimate& e) {
    auto& [total, longest] = totals[name];
    total.name = name;
    ++total.calls;
    total.seconds += e.seconds;
    if (e.seconds > longest) {
      longest = e.seconds;
      total.bound = e.bound;
    }
    s.seconds += e.seconds;
  };
  for (const LaunchCounters& l : step.launches) add(l.kernel, estimate_launch(gpu, l));
  for (const GemmCounters& g : step.gemms) add("cublaslt_gemm", estimate_gemm(gpu, g));
  s.launches = step.launches.size() + step.gemms.size();
  s.host_syncs = step.host_syncs();
  s.device_allocations = step.device_allocations;
  s.seconds += static_cast<double>(s.host_syncs) * gpu.host_sync_s;
  // Uploads wait for nothing, but run in order on the stream, between the kernels.
  s.seconds += static_cast<double>(step.copies_to_device) * gpu.launch_overhead_s +
               static_cast<double>(step.bytes_to_device) / gpu.host_to_device_bytes_per_s;
  for (auto& [name, total] : totals) s.kernels.push_back(total.first);
  std::sort(s.kernels.begin(), s.kernels.end(),
            [](const KernelTotal& a, const KernelTotal& b) { return a.seconds > b.seconds; });
  return s;
}

namespace {

// The value at x of the line through (xa, a) and (xb, b), rounded, never below 0.
uint64_t affine(uint64_t a, double xa, uint64_t b, double xb, double x) {
  const double v = static_cast<double>(a) + (static_cast<double>(b) - static_cast<double>(a)) * (x - xa) / (xb - xa);
  return static_cast<uint64_t>(std::max(0.0, std::round(v)));
}

// The counts of a launch and of a step that extrapolate() carries along the line through two sizes.
constexpr uint64_t LaunchCounters::*kLaunchCounts[] = {
    &LaunchCounters::dynamic_smem_bytes,    &LaunchCounters::barriers,
    &LaunchCounters::warp_collectives,      &LaunchCounters::mma_flops,
    &LaunchCounters::global_load_requests,  &LaunchCounters::global_load_sectors,
    &LaunchCounters::global_store_requests, &LaunchCounters::global_store_sectors,
    &LaunchCounters::shared_requests,       &LaunchCounters::shared_wavefronts,
    &LaunchCounters::max_thread_global_loads};
constexpr uint64_t StepCounters::*kStepCounts[] = {
    &StepCounters::copies_to_device,   &StepCounters::copies_to_host,     &StepCounters::bytes_to_device,
    &StepCounters::bytes_to_host,      &StepCounters::synchronizations,   &StepCounters::device_allocations,
    &StepCounters::device_allocation_bytes};

}  // namespace

StepCounters extrapolate(const StepCounters& a, double xa, const StepCounters& b, double xb, double x) {
  HEED_CHECK(xa != xb, "extrapolating counters needs two different sizes");
  HEED_CHECK(a.launches.size() == b.launches.size() && a.gemms.size() == b.gemms.size(),
             "extrapolating counters: the runs at sizes {} and {} made {} and {} launches and {} and {} GEMMs; "
             "they must match one for one",
             xa, xb, a.launches.size(), b.launches.size(), a.gemms.size(), b.gemms.size());
  auto f = [&](uint64_t va, uint64_t vb) { return affine(va, xa, vb, xb, x); };
  StepCounters s;
  for (size_t i = 0; i < a.launches.size(); ++i) {
    const LaunchCounters &la = a.launches[i], &lb = b.launches[i];
    HEED_CHECK(la.kernel == lb.kernel && la.threads_per_block() == lb.threads_per_block(),
               "extrapolating counters: launch {} is {} with {} threads at size {} but {} with {} at size {}", i,
               la.kernel, la.threads_per_block(), xa, lb.kernel, lb.threads_per_block(), xb);
    LaunchCounters l = la;
    l.grid[0] = static_cast<unsigned>(std::max<uint64_t>(1, f(la.blocks(), lb.blocks())));
    l.grid[1] = l.grid[2] = 1;
    for (const auto count : kLaunchCounts) l.*count = f(la.*count, lb.*count);
    s.launches.push_back(std::move(l));
  }
  for (size_t i = 0; i < a.gemms.size(); ++i) {
    GemmCounters g = a.gemms[i];
    const GemmCounters& gb = b.gemms[i];
    auto dim = [&](int64_t va, int64_t vb) {
      return static_cast<int64_t>(f(static_cast<uint64_t>(va), static_cast<uint64_t>(vb)));
    };
    g.m = dim(g.m, gb.m);
    g.n = dim(g.n, gb.n);
    g.k = dim(g.k, gb.k);
    g.batch = std::max<int64_t>(1, dim(g.batch, gb.batch));
    s.gemms.push_back(g);
  }
  for (const auto count : kStepCounts) s.*count = f(a.*count, b.*count);
  return s;
}

}  // namespace heed::cuda_sim
