// The simulator's counters (src/sim/counters.h) on kernels whose counts are known by hand, and the cost
// model (src/sim/cost_model.h) on counters whose bound is known. The kernels are in
// tests/counted_kernels; they exist only in builds with the memory counters (GCC without a sanitizer).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "heed/core/allocator.h"
#include "heed/core/device.h"
#include "heed/core/tensor.h"
#include "heed/ops/elementwise.h"
#include "sim/cost_model.h"
#include "sim/counters.h"
#include "sim_kernels/sim_test_kernels.h"
#ifdef HEED_WITH_SIM_COUNTERS
#include "counted_kernels/counter_test_kernels.h"
#endif

using namespace heed;

namespace {

// The one launch that `run` makes, counted.
template <typename Run>
cuda_sim::LaunchCounters count_launch(Run run) {
  cuda_sim::CountingScope counting;
  run();
  cuda_sim::StepCounters step = counting.take();
  REQUIRE(step.launches.size() == 1);
  return step.launches[0];
}

struct AlignedFloats {
  explicit AlignedFloats(size_t n) : data(static_cast<float*>(std::aligned_alloc(128, n * sizeof(float))), std::free) {
    for (size_t i = 0; i < n; ++i) data.get()[i] = static_cast<float>(i);
  }
  std::unique_ptr<float, void (*)(void*)> data{nullptr, std::free};
  float* get() const { return data.get(); }
};

}  // namespace

#ifdef HEED_WITH_SIM_COUNTERS

namespace {

// The bf16 bits of a small integer, which bf16 holds exactly: the high half of its fp32 bits.
uint16_t bf16_bits_of(uint16_t i) {
  const float f = i;
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  return static_cast<uint16_t>(bits >> 16);
}

}  // namespace

TEST_CASE("the counters see uncoalesced global loads as more 32-byte sectors", "[sim][counters]") {
  AlignedFloats in(32 * 32), out(32);
  // 32 lanes x 4 bytes, contiguous: 4 sectors; one float per 32 floats: a sector per lane. The stores
  // are contiguous in both.
  for (const auto& [stride, sectors] : {std::pair{1, 4}, std::pair{2, 8}, std::pair{32, 32}}) {
    const cuda_sim::LaunchCounters c = count_launch([&] { counter_tests::strided_load(in.get(), out.get(), stride); });
    INFO("stride " << stride);
    CHECK(c.kernel == "strided_load_kernel");
    CHECK(c.memory_counted);
    CHECK(c.global_load_requests == 1);
    CHECK(c.global_load_sectors == static_cast<uint64_t>(sectors));
    CHECK(c.global_store_requests == 1);
    CHECK(c.global_store_sectors == 4);
    CHECK(c.max_thread_global_loads == 1);
    CHECK(c.shared_requests == 0);
    CHECK(out.get()[31] == static_cast<float>(31 * stride));
  }
}

TEST_CASE("the counters see shared-memory bank conflicts as more wavefronts", "[sim][counters]") {
  AlignedFloats out(32);
  // Word i * stride of a __shared__ array: its bank is (i * stride) % 32. Each access is one store and
  // one load, so the wavefronts are twice those of one warp-wide access.
  for (const auto& [stride, wavefronts] :
       {std::pair{1, 1}, std::pair{33, 1}, std::pair{2, 2}, std::pair{32, 32}, std::pair{0, 1}}) {
    const cuda_sim::LaunchCounters c = count_launch([&] { counter_tests::shared_access(out.get(), stride); });
    INFO("stride " << stride);
    CHECK(c.shared_requests == 2);
    CHECK(c.shared_wavefronts == 2u * wavefronts);
    CHECK(c.global_load_requests == 0);  // the launch's parameters and the builtins are not global memory
    CHECK(c.global_store_sectors == 4);
    CHECK(c.warp_collectives == 1);      // the __syncwarp
  }
}

TEST_CASE("the counters see a 16-byte load as one request", "[sim][counters]") {
  AlignedFloats bf16_bits(32 * 8 / 2), out(32);
  auto* in = reinterpret_cast<uint16_t*>(bf16_bits.get());
  for (uint16_t i = 0; i < 32 * 8; ++i) in[i] = bf16_bits_of(i);
  const cuda_sim::LaunchCounters c = count_launch([&] { counter_tests::load_16(in, out.get()); });
  CHECK(c.global_load_requests == 1);
  CHECK(c.global_load_sectors == 16);  // 32 lanes x 16 bytes
  CHECK(c.max_thread_global_loads == 1);
  CHECK(out.get()[31] == 248 + 255);
}

TEST_CASE("the counters take shuffles and votes as register traffic, not memory", "[sim][counters]") {
  AlignedFloats in(32), out(32);
  const cuda_sim::LaunchCounters c = count_launch([&] { counter_tests::warp_sum(in.get(), out.get()); });
  CHECK(c.warp_collectives == 6);
  CHECK(c.global_load_requests == 1);
  CHECK(c.global_load_sectors == 4);
  CHECK(c.global_store_requests == 1);
  CHECK(c.global_store_sectors == 4);
  CHECK(c.max_thread_global_loads == 1);
  CHECK(c.shared_requests == 0);
  CHECK(out.get()[31] == 31 * 32 / 2);  // every lane has the sum, which is positive, so the vote passes
}

TEST_CASE("the counters count the barriers of every block", "[sim][counters]") {
  const cuda_sim::LaunchCounters c = count_launch([] { counter_tests::barriers(3, 5); });
  CHECK(c.barriers == 15);
  CHECK(c.blocks() == 3);
  CHECK(c.threads_per_block() == 64);
}

#endif  // HEED_WITH_SIM_COUNTERS

TEST_CASE("the counters count an mma.m16n8k16 as 2 x 16 x 8 x 16 FLOPs", "[sim][counters]") {
  std::vector<uint16_t> a(16 * 16, 0), b(16 * 8, 0);
  std::vector<float> c(16 * 8, 0.0f), d(16 * 8);
  const cuda_sim::LaunchCounters counted = count_launch([&] { sim_tests::mma(true, a.data(), b.data(), c.data(), d.data()); });
  CHECK(counted.mma_flops == 4096);
  CHECK(counted.warp_collectives == 1);
}

TEST_CASE("the counters count a step's launches, copies, synchronisations and device allocations",
          "[sim][counters]") {
  // The first step must find the cache empty, whatever ran before in this process (under TSan, every [sim]
  // test runs in one): only then do both tensors reach the device allocator.
  allocator_for(Device::sim()).release_cached();
  const int64_t n = 12347;
  auto step = [&] {
    cuda_sim::CountingScope counting;
    Tensor x = Tensor::full({n}, 1.5f).to(Device::sim());  // one copy to the device
    Tensor y = ops::add(x, x);                              // one launch
    Tensor host = y.to(Device::cpu());                      // one copy to the host
    synchronize(Device::sim());
    CHECK(host.item(n - 1) == 3.0f);
    return counting.take();
  };
  const cuda_sim::StepCounters first = step(), second = step();
  for (const cuda_sim::StepCounters& s : {first, second}) {
    CHECK(s.launches.size() == 1);
    CHECK(s.gemms.empty());
    CHECK(s.copies_to_device == 1);
    CHECK(s.copies_to_host == 1);
    CHECK(s.bytes_to_host == n * sizeof(float));
    CHECK(s.synchronizations == 1);
    CHECK(s.host_syncs() == 2);  // the read back and the synchronisation; the upload waits for nothing
  }
  CHECK(first.device_allocations == 2);  // x and y
  CHECK(second.device_allocations == 0);  // both from the cache
  cuda_sim::CountingScope outside;
  CHECK(outside.take().launches.empty());  // nothing is counted between scopes
}

TEST_CASE("an upload to the simulated GPU is a copy to the device and no host synchronisation, a read back is one",
          "[sim][counters]") {
  const int64_t n = 1000;
  Tensor host = Tensor::full({n}, 2.0f);
  cuda_sim::CountingScope counting(false);
  const Tensor device = host.to(Device::sim());
  const cuda_sim::StepCounters upload = counting.take();
  host = Tensor();  // the upload's source may go at once: its bytes were staged
  const Tensor back = device.to(Device::cpu());
  const cuda_sim::StepCounters read_back = counting.take();
  CHECK(upload.copies_to_device == 1);
  CHECK(upload.bytes_to_device == n * sizeof(float));
  CHECK(upload.copies_to_host == 0);
  CHECK(upload.host_syncs() == 0);
  CHECK(read_back.copies_to_device == 0);
  CHECK(read_back.copies_to_host == 1);
  CHECK(read_back.host_syncs() == 1);
  CHECK(back.item(n - 1) == 2.0f);
}

TEST_CASE("the H100 model charges an upload its call and its bytes, and a host synchronisation a round trip",
          "[counters]") {
  const cuda_sim::GpuModel gpu = cuda_sim::h100_sxm();
  cuda_sim::StepCounters step;
  step.copies_to_device = 2;
  step.bytes_to_device = 1'000'000;
  cuda_sim::StepEstimate e = cuda_sim::estimate_step(gpu, step);
  CHECK(e.host_syncs == 0);
  CHECK(e.seconds == Approx(2 * gpu.launch_overhead_s + 1e6 / gpu.host_to_device_bytes_per_s));
  step = {};
  step.copies_to_host = 1;
  step.synchronizations = 1;
  e = cuda_sim::estimate_step(gpu, step);
  CHECK(e.host_syncs == 2);
  CHECK(e.seconds == Approx(2 * gpu.host_sync_s));
}

TEST_CASE("the H100 model bounds a launch by compute, memory or latency as its counts say", "[counters]") {
  const cuda_sim::GpuModel gpu = cuda_sim::h100_sxm();
  cuda_sim::LaunchCounters l;
  l.kernel = "sum_to_kernel";
  l.block[0] = 256;

  SECTION("a few threads walking many rows one load after another are bound by latency") {
    l.grid[0] = 2;
    l.max_thread_global_loads = 25000;
    l.global_load_sectors = 25000 * 2 * 8 * 2;  // each warp's row: 32 bf16, 2 sectors
    const cuda_sim::Estimate e = cuda_sim::estimate_launch(gpu, l);
    CHECK(e.bound == "latency");
    CHECK(e.latency_s == Approx(25000 / 4 * 600e-9));
  }
  SECTION("many blocks streaming memory are bound by bandwidth") {
    l.grid[0] = 50000;
    l.max_thread_global_loads = 1;
    l.global_load_sectors = 1'000'000'000 / 32;
    const cuda_sim::Estimate e = cuda_sim::estimate_launch(gpu, l);
    CHECK(e.bound == "memory");
    CHECK(e.seconds == Approx(1e9 / gpu.hbm_bytes_per_s + gpu.launch_overhead_s));
  }
  SECTION("tensor-core work is bound by the mma.sync rate") {
    l.grid[0] = 1000;
    l.mma_flops = uint64_t{1} << 40;
    CHECK(cuda_sim::estimate_launch(gpu, l).bound == "compute");
  }
  SECTION("occupancy follows registers and shared memory") {
    // A kernel missing from ptxas's table is taken at 255 registers a thread: 8192 a warp of the SM's
    // 65536, so 1 block of 8 warps, or 4 of 2 warps; 100 KiB of shared memory a block leaves room for 2.
    l.kernel = "not_in_the_table";
    CHECK(cuda_sim::resident_blocks_per_sm(gpu, l) == 1);
    l.block[0] = 64;
    CHECK(cuda_sim::resident_blocks_per_sm(gpu, l) == 4);
    l.dynamic_smem_bytes = 100 * 1024;
    CHECK(cuda_sim::resident_blocks_per_sm(gpu, l) == 2);
  }
}

TEST_CASE("the H100 model splits a GEMM of few output tiles over K", "[counters]") {
  const cuda_sim::GpuModel gpu = cuda_sim::h100_sxm();
  const double tile_rate = gpu.dense_16bit_flops / gpu.sms * gpu.gemm_efficiency;  // FLOP/s of one SM
  SECTION("a weight gradient: 512 x 512 over 24,576 tokens, 8 tiles, in 16 slices to fill 128 SMs") {
    const cuda_sim::GemmCounters g{.m = 512, .n = 512, .k = 24576, .output_bytes = 4};
    const cuda_sim::Estimate e = cuda_sim::estimate_gemm(gpu, g, 16);
    CHECK(e.compute_s == Approx(2.0 * 128 * 256 * (24576 / 16) / tile_rate));
    const double bytes = 2.0 * 512 * 24576 * 2 + 512 * 512 * 4 + 2.0 * 16 * 512 * 512 * 4;  // and the partials
    CHECK(e.memory_s == Approx(bytes / gpu.hbm_bytes_per_s));
    CHECK(e.seconds == Approx(std::max(e.compute_s, e.memory_s) + 2 * gpu.launch_overhead_s));
    // With the bias gradient from the epilogue: a second read of dy (512 x 24,576) and the fp32 sums.
    cuda_sim::GemmCounters with_bias = g;
    with_bias.bias_grad = true;
    CHECK(cuda_sim::estimate_gemm(gpu, with_bias, 16).memory_s ==
          Approx((bytes + 512.0 * 24576 * 2 + 512 * 4) / gpu.hbm_bytes_per_s));
    // Added to a gradient so far (beta 1): the fp32 output is read as well as written.
    cuda_sim::GemmCounters accumulating = g;
    accumulating.accumulates = true;
    CHECK(cuda_sim::estimate_gemm(gpu, accumulating, 16).memory_s ==
          Approx((bytes + 512.0 * 512 * 4) / gpu.hbm_bytes_per_s));
  }
  SECTION("the split is the fastest of those up to one wave: fewer slices than 16, whose partials cost more") {
    for (const bool bias_grad : {false, true}) {
      const cuda_sim::GemmCounters g{.m = 512, .n = 512, .k = 24576, .output_bytes = 4, .bias_grad = bias_grad};
      const int chosen = cuda_sim::gemm_split_k(gpu, g);
      INFO("bias gradient " << bias_grad << ", split " << chosen);
      // 12 slices: 25.6 us of compute and 76.6 MB (25.5 us); 13 slices: 23.6 us and 78.6 MB (26.2 us).
      if (!bias_grad) CHECK(chosen == 12);
      CHECK(cuda_sim::estimate_gemm(gpu, g).seconds == cuda_sim::estimate_gemm(gpu, g, chosen).seconds);
      for (int split = 1; split <= 16; ++split)
        CHECK(cuda_sim::estimate_gemm(gpu, g, split).seconds >= cuda_sim::estimate_gemm(gpu, g, chosen).seconds);
    }
  }
  SECTION("a shallow product is not split below 256 deep") {
    // 1024 deep: 4 slices of 256 at most, and the fastest, though more would fill more SMs.
    CHECK(cuda_sim::gemm_split_k(gpu, {.m = 512, .n = 512, .k = 1024}) == 4);
    // 512 deep: 2 slices would save less than their second launch costs.
    CHECK(cuda_sim::gemm_split_k(gpu, {.m = 512, .n = 512, .k = 512}) == 1);
  }
  SECTION("a product that fills the SMs is not split") {
    const cuda_sim::GemmCounters g{.m = 24576, .n = 512, .k = 512};
    CHECK(cuda_sim::gemm_split_k(gpu, g) == 1);
    CHECK(cuda_sim::estimate_gemm(gpu, g).compute_s == Approx(3 * 2.0 * 128 * 256 * 512 / tile_rate));  // 384 tiles
  }
}

TEST_CASE("counters extrapolate as affine functions of the batch", "[counters]") {
  cuda_sim::StepCounters a, b;
  cuda_sim::LaunchCounters l;
  l.kernel = "k";
  l.grid[0] = 10;
  l.global_load_sectors = 100;
  a.launches.push_back(l);
  l.grid[0] = 18;
  l.global_load_sectors = 180;
  b.launches.push_back(l);
  a.gemms.push_back({.m = 64, .n = 512, .k = 512});
  b.gemms.push_back({.m = 128, .n = 512, .k = 512});
  a.copies_to_host = b.copies_to_host = 3;
  const cuda_sim::StepCounters x = cuda_sim::extrapolate(a, 2, b, 4, 100);
  CHECK(x.launches[0].blocks() == 10 + 4 * 98);
  CHECK(x.launches[0].global_load_sectors == 100 + 40 * 98);
  CHECK(x.gemms[0].m == 64 * 50);
  CHECK(x.gemms[0].n == 512);
  CHECK(x.copies_to_host == 3);
  b.launches[0].kernel = "other";
  CHECK_THROWS_WITH(cuda_sim::extrapolate(a, 2, b, 4, 100), Catch::Contains("must match") || Catch::Contains("other"));
}
