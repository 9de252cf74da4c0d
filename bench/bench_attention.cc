// Times the fused attention op on the CPU and measures its extra memory.
//
//   bench_attention [threads]
//
// For B = 8, H = 8, D = 64 and lengths 128 .. 2048 (self-attention, no mask, no dropout) it prints the
// median forward and backward times, GFLOP/s, and the peak memory that forward + backward allocate beyond
// their inputs, as the CPU allocator counts it (outputs, lse, gradients and the kernels' scratch). That
// peak divided by the size of one input tensor stays constant as the length grows: memory is linear in
// the length, the L x L score matrix is never stored. Then the shapes of the training benchmark (L = 32).
// FLOPs follow the FlashAttention papers: 4 B H Lq Lk D for the forward pass (two products) and 2.5 times
// that for the backward pass (five products, the scores being recomputed).
#include <fmt/format.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <random>
#include <vector>

#include "heed/core/allocator.h"
#include "heed/ops/attention.h"

using namespace heed;
using Clock = std::chrono::steady_clock;

namespace {

// A [B, H, L, D] view of random [B, L, H, D] storage, as the model passes the heads of a projection.
Tensor head_view(int64_t B, int64_t H, int64_t L, int64_t D, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  Tensor t = Tensor::empty({B, L, H, D});
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = dist(rng);
  return t.transpose(1, 2);
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Timing {
  double forward_s, backward_s;
  size_t peak_extra_bytes;
};

Timing measure(int64_t B, int64_t H, int64_t L, int64_t D, bool causal, int reps) {
  const Tensor q = head_view(B, H, L, D, 1), k = head_view(B, H, L, D, 2), v = head_view(B, H, L, D, 3),
               dout = head_view(B, H, L, D, 4);
  ops::AttentionOptions opt;
  opt.scale = 0.125f;
  opt.causal = causal;
  Allocator& alloc = allocator_for(Device::cpu());

  // The first pass is measured for memory only: it also warms the allocator's caches and the pages.
  const size_t in_use = alloc.stats().in_use;
  alloc.reset_peak();
  {
    const ops::AttentionResult fwd = ops::attention_forward(q, k, v, opt);
    const ops::AttentionGrads g = ops::attention_backward(dout, q, k, v, fwd, opt);
  }
  const size_t peak_extra = alloc.stats().peak_in_use - in_use;

  std::vector<double> fwd_s, bwd_s;
  for (int rep = 0; rep < reps; ++rep) {
    auto t0 = Clock::now();
    const ops::AttentionResult fwd = ops::attention_forward(q, k, v, opt);
    fwd_s.push_back(seconds_since(t0));
    t0 = Clock::now();
    const ops::AttentionGrads g = ops::attention_backward(dout, q, k, v, fwd, opt);
    bwd_s.push_back(seconds_since(t0));
  }
  return {median(fwd_s), median(bwd_s), peak_extra};
}

double forward_flops(int64_t B, int64_t H, int64_t L, int64_t D, bool causal) {
  return 4.0 * B * H * L * L * D * (causal ? 0.5 : 1.0);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) omp_set_num_threads(std::atoi(argv[1]));
  fmt::print("attention on the CPU, {} threads; backward FLOPs = 2.5 x forward\n\n", omp_get_max_threads());

  const int64_t B = 8, H = 8, D = 64;
  fmt::print("B={} H={} D={}, no mask\n", B, H, D);
  fmt::print("{:>6} {:>10} {:>9} {:>10} {:>9} {:>14} {:>14}\n", "L", "fwd ms", "GFLOP/s", "bwd ms", "GFLOP/s",
             "peak extra MiB", "/ input size");
  for (int64_t L : {128, 256, 512, 1024, 2048}) {
    const Timing t = measure(B, H, L, D, false, L >= 1024 ? 3 : 7);
    const double flops = forward_flops(B, H, L, D, false);
    const double input_bytes = 4.0 * B * H * L * D;
    fmt::print("{:>6} {:>10.2f} {:>9.1f} {:>10.2f} {:>9.1f} {:>14.2f} {:>14.2f}\n", L, t.forward_s * 1e3,
               flops / t.forward_s / 1e9, t.backward_s * 1e3, 2.5 * flops / t.backward_s / 1e9,
               t.peak_extra_bytes / 1048576.0, t.peak_extra_bytes / input_bytes);
  }

  fmt::print("\ntraining-step shapes, L=32, D=64\n");
  fmt::print("{:>3} {:>3} {:>7} {:>10} {:>9} {:>10} {:>9}\n", "B", "H", "causal", "fwd us", "GFLOP/s", "bwd us",
             "GFLOP/s");
  for (auto [b, h] : {std::pair<int64_t, int64_t>{32, 4}, {16, 8}})
    for (bool causal : {false, true}) {
      const Timing t = measure(b, h, 32, D, causal, 201);
      const double flops = forward_flops(b, h, 32, D, causal);
      fmt::print("{:>3} {:>3} {:>7} {:>10.1f} {:>9.1f} {:>10.1f} {:>9.1f}\n", b, h, causal ? "yes" : "no",
                 t.forward_s * 1e6, flops / t.forward_s / 1e9, t.backward_s * 1e6,
                 2.5 * flops / t.backward_s / 1e9);
    }
  return 0;
}
