// The CUDA simulator's own primitives: each tensor-core instruction against the PTX ISA's definition, the
// warp exchanges, the barrier, atomics, deferred async copies, and the misuse it must catch (a missing
// barrier under an adversarial schedule, a missing cp.async wait, threads that skip a barrier or a warp
// collective, deadlocks, exceptions in device code). The kernels are in tests/sim_kernels.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <vector>

#include "heed/core/half.h"
#include "sim/cuda_sim.h"
#include "sim_kernels/sim_test_kernels.h"

using namespace heed;
using cuda_sim::Schedule;
using cuda_sim::ScheduleScope;

namespace {

uint16_t to_bits(float v, bool bf16) { return bf16 ? float_to_bf16_bits(v) : float_to_fp16_bits(v); }
float from_bits(uint16_t b, bool bf16) { return bf16 ? bf16_bits_to_float(b) : fp16_bits_to_float(b); }

std::vector<float> small_integers(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(rng() % 10);
  return v;
}

}  // namespace

TEST_CASE("simulated mma.m16n8k16 computes A B + C for bf16 and fp16", "[sim]") {
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  for (bool bf16 : {true, false}) {
    INFO((bf16 ? "bf16" : "fp16"));
    // The identity times B is B, exactly; then random A, B, C against a double-precision product. The
    // simulator rounds the exact sum once, so the error is at most half an fp32 ulp of the result.
    for (bool identity : {true, false}) {
      std::vector<uint16_t> a(256), b(128);
      std::vector<float> c(128), d(128, NAN);
      for (int i = 0; i < 16; ++i)
        for (int k = 0; k < 16; ++k) a[i * 16 + k] = to_bits(identity ? float(i == k) : u(rng), bf16);
      for (uint16_t& v : b) v = to_bits(u(rng), bf16);
      for (float& v : c) v = identity ? 0.0f : u(rng);
      sim_tests::mma(bf16, a.data(), b.data(), c.data(), d.data());
      for (int i = 0; i < 16; ++i)
        for (int n = 0; n < 8; ++n) {
          double want = c[i * 8 + n];
          for (int k = 0; k < 16; ++k) want += double(from_bits(a[i * 16 + k], bf16)) * from_bits(b[k * 8 + n], bf16);
          if (identity) CHECK(d[i * 8 + n] == from_bits(b[i * 8 + n], bf16));
          CHECK(std::abs(d[i * 8 + n] - want) <= std::abs(want) * 0x1p-24);
        }
    }
  }
}

TEST_CASE("simulated ldmatrix loads the PTX fragment layout, with and without .trans", "[sim]") {
  for (int matrices : {2, 4})
    for (bool trans : {false, true}) {
      INFO("x" << matrices << (trans ? ".trans" : ""));
      std::vector<uint16_t> m(matrices * 64);
      for (size_t i = 0; i < m.size(); ++i) m[i] = static_cast<uint16_t>(1000 + i);  // every element distinct
      std::vector<uint32_t> out(32 * matrices, 0);
      sim_tests::ldmatrix(matrices, trans, m.data(), out.data());
      // Register j of lane l: row l/4, columns 2(l%4) and 2(l%4)+1 of matrix j (of its transpose with .trans).
      for (int lane = 0; lane < 32; ++lane)
        for (int j = 0; j < matrices; ++j) {
          const int r = lane / 4, c = 2 * (lane % 4);
          auto at = [&](int row, int col) { return uint32_t{m[j * 64 + row * 8 + col]}; };
          const uint32_t want = trans ? at(c, r) | at(c + 1, r) << 16 : at(r, c) | at(r, c + 1) << 16;
          CHECK(out[lane * matrices + j] == want);
        }
    }
}

TEST_CASE("simulated bf16 and fp16 conversions round to nearest even, as the GPU does", "[sim]") {
  // Halfway cases go to the even neighbour: 1 + 2^-8 lies halfway between bf16's 1 and 1 + 2^-7.
  CHECK(__bfloat162float(__float2bfloat16(1.0f + 0x1p-8f)) == 1.0f);
  CHECK(__bfloat162float(__float2bfloat16_rn(1.0f + 3 * 0x1p-8f)) == 1.0f + 0x1p-6f);
  CHECK(__bfloat162float(__float2bfloat16(1.0f + 0x1p-8f + 0x1p-20f)) == 1.0f + 0x1p-7f);
  CHECK(__half2float(__float2half(1.0f + 0x1p-11f)) == 1.0f);
  CHECK(__half2float(__float2half_rn(1.0f + 3 * 0x1p-11f)) == 1.0f + 0x1p-9f);
  // Overflow: fp16's largest finite value is 65504; from 65520 on, round to nearest gives infinity.
  CHECK(__half2float(__float2half(65519.0f)) == 65504.0f);
  CHECK(std::isinf(__half2float(__float2half(65520.0f))));
  CHECK(std::isinf(__bfloat162float(__float2bfloat16(3.4e38f))));
  CHECK(std::isnan(__bfloat162float(__float2bfloat16(NAN))));
  CHECK(std::isnan(__half2float(__float2half(NAN))));
  const float2 pair = __bfloat1622float2(__floats2bfloat162_rn(0.5f, -3.0f));
  CHECK((pair.x == 0.5f && pair.y == -3.0f));
  const float2 halves = __half22float2(__floats2half2_rn(0.25f, 1024.0f));
  CHECK((halves.x == 0.25f && halves.y == 1024.0f));
}

TEST_CASE("simulated builtins number threads and blocks with x fastest", "[sim]") {
  const sim_tests::Dim3 grid{3, 2, 2}, block{8, 4, 2};
  std::vector<int> out(12 * 64 * 6, -1);
  sim_tests::builtins(grid, block, out.data());
  for (unsigned b = 0; b < 12; ++b)
    for (unsigned t = 0; t < 64; ++t) {
      const int* seen = &out[(b * 64 + t) * 6];
      const int want[6] = {int(t % 8), int(t / 8 % 4), int(t / 32), int(b % 3), int(b / 3 % 2), int(b / 6)};
      CHECK(std::vector<int>(seen, seen + 6) == std::vector<int>(want, want + 6));
    }
}

TEST_CASE("simulated shuffles and votes exchange values between the lanes of a warp", "[sim]") {
  std::vector<int> out(10 * 32, -1);
  sim_tests::shuffles(out.data());
  for (int lane = 0; lane < 32; ++lane) {
    INFO("lane " << lane);
    CHECK(out[0 * 32 + lane] == (lane ^ 5) * 10);
    CHECK(out[1 * 32 + lane] == (lane + 3 < 32 ? lane + 3 : lane));
    CHECK(out[2 * 32 + lane] == (lane >= 3 ? lane - 3 : lane));
    CHECK(out[3 * 32 + lane] == (31 - lane) * 7);
    CHECK(out[4 * 32 + lane] == (lane % 8 + 3 < 8 ? lane + 3 : lane));
    CHECK(static_cast<unsigned>(out[5 * 32 + lane]) == 0x49249249u);  // lanes 0, 3, 6, ..., 30
    CHECK(out[6 * 32 + lane] == 1 + 2);                               // any: yes; all < 32: yes; all < 31: no
    CHECK(out[7 * 32 + lane] == 2 * (lane ^ 1) + 1);
    CHECK(out[8 * 32 + lane] == (lane & 8 ? lane - 8 : lane));
    CHECK(out[9 * 32 + lane] == (lane & ~7) + 1);
  }
}

TEST_CASE("simulated shuffles from lanes past the end of a block read NaN poison", "[sim]") {
  std::vector<float> out(48, 0.0f);
  sim_tests::partial_warp(out.data());
  for (int t = 0; t < 32; ++t) CHECK(out[t] == float(t ^ 16));
  for (int t = 32; t < 48; ++t) CHECK(std::isnan(out[t]));  // lanes 16..31 of the second warp do not exist
}

namespace {

// Sums of small integers: exact in any order, so a wrong sum means a wrong read.
struct NeighbourSums {
  static constexpr int kBlocks = 4, kChunks = 3;
  std::vector<float> in = small_integers(kBlocks * kChunks * 256, 2);
  std::vector<float> want = std::vector<float>(kBlocks, 0.0f);
  NeighbourSums() {
    for (int b = 0; b < kBlocks; ++b)
      for (int i = 0; i < kChunks * 256; ++i) want[b] += in[b * kChunks * 256 + i];
  }
  std::vector<float> run(bool missing_barrier) const {
    std::vector<float> out(kBlocks, NAN);
    sim_tests::neighbour_sums(in.data(), kBlocks, kChunks, missing_barrier, out.data());
    return out;
  }
};

}  // namespace

TEST_CASE("simulated __syncthreads is a barrier under every schedule", "[sim]") {
  const NeighbourSums sums;
  for (Schedule s : {Schedule::InOrder, Schedule::Random, Schedule::WarpAhead})
    for (uint64_t seed : {1, 2, 3}) {
      ScheduleScope scope(s, seed);
      CHECK(sums.run(false) == sums.want);
    }
}

// Tagged [deliberate-race]: a ThreadSanitizer build reports these kernels' races, as it should, so its
// run leaves them out ("[sim]~[deliberate-race]").
TEST_CASE("a missing __syncthreads before a shared buffer is reused shows when a warp runs ahead",
          "[sim][deliberate-race]") {
  const NeighbourSums sums;
  // When one warp runs ahead, it overwrites the buffer with the next chunk before the others read it.
  int wrong = 0;
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    ScheduleScope scope(Schedule::WarpAhead, seed);
    wrong += sums.run(true) != sums.want;
  }
  CHECK(wrong == 10);
}

TEST_CASE("simulated atomics are exact when blocks run in any order on several workers", "[sim]") {
  for (Schedule s : {Schedule::InOrder, Schedule::Random}) {
    ScheduleScope scope(s, 7);
    int count = 0;
    float sum = 0.0f;
    sim_tests::atomics(32, &count, &sum);  // 4096 threads: every partial sum of 0..4095 is below 2^24, exact in fp32
    CHECK(count == 32 * 128);
    CHECK(sum == 4095.0f * 4096.0f / 2.0f);
  }
}

TEST_CASE("the adversarial schedules shuffle the order of blocks", "[sim]") {
  // Only the order of the atomics tells the blocks' order apart; under the adversarial schedules it must
  // not be the grid's (the chance that a shuffle of 64 blocks leaves them sorted is 1/64!).
  constexpr int kBlocks = 64;
  for (Schedule s : {Schedule::Random, Schedule::WarpAhead}) {
    ScheduleScope scope(s, 5);
    std::vector<int> tickets(kBlocks, -1);
    sim_tests::block_order(kBlocks, tickets.data());
    std::vector<int> sorted = tickets;
    std::sort(sorted.begin(), sorted.end());
    std::vector<int> every(kBlocks);
    std::iota(every.begin(), every.end(), 0);
    CHECK(sorted == every);
    CHECK(tickets != every);
  }
}

TEST_CASE("simulated cp.async lands at the wait, and without the wait shared memory is poison", "[sim]") {
  ScheduleScope in_order(Schedule::InOrder);  // the adversarial schedules land half of the copies early
  std::vector<float> in(256), out(256);
  for (int i = 0; i < 256; ++i) in[i] = static_cast<float>(i);
  sim_tests::async_copy(in.data(), true, out.data());
  for (int t = 0; t < 64; ++t)
    for (int i = 0; i < 4; ++i) CHECK(out[4 * t + i] == in[4 * ((t + 1) % 64) + i]);
  sim_tests::async_copy(in.data(), false, out.data());
  for (float v : out) CHECK(std::isnan(v));
}

namespace {

struct PipelinedSums {
  static constexpr int kChunks = 6;
  std::vector<float> in = small_integers(kChunks * 256, 3);
  float want = std::accumulate(in.begin(), in.end(), 0.0f);
  float run(bool missing_barrier) const {
    float out = NAN;
    sim_tests::pipelined_sums(in.data(), kChunks, missing_barrier, &out);
    return out;
  }
};

}  // namespace

TEST_CASE("a cp.async pipeline with its barriers is right under every schedule", "[sim]") {
  const PipelinedSums sums;
  for (Schedule s : {Schedule::InOrder, Schedule::Random, Schedule::WarpAhead})
    for (uint64_t seed : {1, 2, 3}) {
      ScheduleScope scope(s, seed);
      CHECK(sums.run(false) == sums.want);
    }
}

TEST_CASE("simulated cp.async lands anywhere up to its wait: a prefetch racing with readers shows",
          "[sim][deliberate-race]") {
  const PipelinedSums sums;
  int wrong = 0;
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    ScheduleScope scope(Schedule::WarpAhead, seed);
    wrong += sums.run(true) != sums.want;
  }
  CHECK(wrong >= 8);  // a copy lands early with probability 1/2 each; 64 threads x 5 prefetches per run
}

TEST_CASE("the simulator reports misuse as errors that say what happened", "[sim]") {
  using Catch::Contains;
  for (Schedule s : {Schedule::InOrder, Schedule::Random, Schedule::WarpAhead}) {
    ScheduleScope scope(s, 3);
    CHECK_THROWS_WITH(sim_tests::partial_barrier(), Contains("must reach each __syncthreads"));
    CHECK_THROWS_WITH(sim_tests::missing_lane(), Contains("thread (5,0,0) of block (0,0,0)") && Contains("exited"));
    CHECK_THROWS_WITH(sim_tests::deadlock(), Contains("deadlock in block (0,0,0)") &&
                                                 Contains("warp 0 waits in __syncwarp (mask 0xffffffff) for lanes "
                                                          "0x0000ffff at __syncthreads"));
    CHECK_THROWS_WITH(sim_tests::disagreeing_lanes(), Contains("disagree"));
    CHECK_THROWS_WITH(sim_tests::mma_in_partial_warp(), Contains("runs mma in a warp of lanes 0x0000ffff"));
    CHECK_THROWS_WITH(sim_tests::throwing_kernel(), Contains("thread (7,0,0) of block (0,0,0): thread 7 refuses"));
    // After an error the block is abandoned and the next launch runs normally.
    std::vector<int> out(10 * 32);
    CHECK_NOTHROW(sim_tests::shuffles(out.data()));
  }
}

namespace {

std::vector<float> softmax_reference(const std::vector<float>& x, int rows, int cols) {
  std::vector<float> y(x.size());
  for (int r = 0; r < rows; ++r) {
    const float* row = &x[size_t(r) * cols];
    const double mx = *std::max_element(row, row + cols);
    double sum = 0.0;
    for (int j = 0; j < cols; ++j) sum += std::exp(row[j] - mx);
    for (int j = 0; j < cols; ++j) y[size_t(r) * cols + j] = static_cast<float>(std::exp(row[j] - mx) / sum);
  }
  return y;
}

}  // namespace

// The speed the simulator is built for (about 10 ms on two cores): HEED_SIM_WORKERS and the schedule
// change it. Run with `heed_tests "[sim-bench]"`.
TEST_CASE("simulator speed: a 64 x 1024 row softmax with 128-thread blocks", "[.][sim-bench]") {
  constexpr int kRows = 64, kCols = 1024;
  std::vector<float> x(kRows * kCols), y(x.size());
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> u(-4.0f, 4.0f);
  for (float& v : x) v = u(rng);
  const std::vector<float> want = softmax_reference(x, kRows, kCols);
  for (int run = 0; run < 5; ++run) {
    const auto start = std::chrono::steady_clock::now();
    sim_tests::softmax(x.data(), kRows, kCols, y.data());
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    std::printf("softmax 64x1024 on the simulator: %.2f ms%s\n", ms, run == 0 ? " (first launch: stacks mapped)" : "");
  }
  for (size_t i = 0; i < y.size(); ++i) REQUIRE(std::abs(y[i] - want[i]) <= 1e-6f);
}
