// The beam-search selection kernel (kernels/log_softmax_top_k.cu), through ops::log_softmax_top_k on the
// simulator and, when there is one, on the GPU, against the same op on the CPU.
//
// Rows of 1 to 33000 tokens (one element per thread and fewer, many per thread, a partial last stride),
// k from 1 to 16 (including k above the number of finite candidates), an excluded token, fp32/bf16/fp16
// logits (the CPU reference reads the same values widened), rows with exact ties and rows that are mostly
// -inf. Distinct logits differ by far more than fp32 rounding of a score, so the tokens must match exactly,
// ties included (both sides rank equal scores by token). Scores differ only through each side's log-sum-
// exp: the CPU adds V/8 terms per vector lane with exp_approx, the kernel V/256 per thread and 8 tree
// levels with expf; each is within (V/8 + 16) u of the exact sum relative, u = 2^-24, and the two final
// roundings of a score add 2 u |score| per side. So |kernel - CPU| <= 2 (V/8 + 16) u + 4 u |score|.
// An ensemble's log-probabilities carry the same error each, and its weights sum to one: the same bound.
// Its models beyond the first get logits within a quarter of the first's spacing in all, so that with the
// first weighing at least one half the weighted sums are as far from ties as the first's logits; fp32 only,
// where that spacing survives. An ensemble of copies of one tensor, in every dtype, must give the kernel's
// own single-model result bit for bit.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>

#include "heed/ops/log_softmax_top_k.h"
#include "kernel_testing.h"
#include "sim/cuda_sim.h"

using namespace heed;
using heed::kernels::Backend;

namespace {

constexpr double kUnit = 1.0 / (1 << 24);

struct Case {
  int64_t rows, vocab, k, exclude;
  DType dtype;
  bool ties;  // small integer logits, many shared
};

Tensor make_logits(const Case& c, uint32_t seed) {
  std::mt19937 rng(seed);
  Tensor t = Tensor::empty({c.rows, c.vocab});
  float* p = t.data<float>();
  if (c.ties) {
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(int(rng() % 9) - 4);
  } else {
    // A shuffled ladder 3/V apart, spanning about [-1.5, 1.5] x 2: distinct in every dtype at these sizes.
    for (int64_t r = 0; r < c.rows; ++r) {
      std::vector<int64_t> order(c.vocab);
      for (int64_t v = 0; v < c.vocab; ++v) order[v] = v;
      std::shuffle(order.begin(), order.end(), rng);
      for (int64_t v = 0; v < c.vocab; ++v) p[r * c.vocab + order[v]] = 6.0f * (float(v) / c.vocab - 0.5f);
    }
  }
  // The last row: every fifth token possible, the rest -inf.
  if (c.rows > 1)
    for (int64_t v = 0; v < c.vocab; ++v)
      if (v % 5 != 2) p[(c.rows - 1) * c.vocab + v] = -INFINITY;
  return t.to(c.dtype).to(DType::F32);  // what a 16-bit kernel reads
}

// The logits of an ensemble's model m >= 1: a shuffled ladder spanning a quarter of model 0's smallest gap
// between distinct logits (1 for the tie cases, 6 / vocab for the ladders).
Tensor minor_logits(const Case& c, uint32_t seed) {
  std::mt19937 rng(seed);
  const float span = (c.ties ? 1.0f : 6.0f / c.vocab) / 4;
  Tensor t = Tensor::empty({c.rows, c.vocab});
  std::vector<int64_t> order(c.vocab);
  for (int64_t r = 0; r < c.rows; ++r) {
    for (int64_t v = 0; v < c.vocab; ++v) order[v] = v;
    std::shuffle(order.begin(), order.end(), rng);
    for (int64_t v = 0; v < c.vocab; ++v) t.data<float>()[r * c.vocab + order[v]] = span * float(v) / c.vocab;
  }
  return t;
}

// One logits tensor per weight (the case's, then minor_logits); one tensor of weight 1 is the single call.
void check_case(Backend backend, const Case& c, uint32_t seed, const std::vector<double>& weights = {1.0}) {
  INFO("rows " << c.rows << " vocab " << c.vocab << " k " << c.k << " exclude " << c.exclude << " "
               << testing::dtype_label(c.dtype) << (c.ties ? " ties" : "") << " weights "
               << Catch::Detail::stringify(weights));
  std::vector<Tensor> logits, on_backend;
  for (size_t m = 0; m < weights.size(); ++m) {
    logits.push_back(m == 0 ? make_logits(c, seed) : minor_logits(c, seed + static_cast<uint32_t>(m)));
    on_backend.push_back(testing::to_backend(logits.back(), backend, c.dtype));
  }
  std::vector<float> prefix(c.rows);
  for (int64_t r = 0; r < c.rows; ++r) prefix[r] = -0.75f * static_cast<float>(r);
  const bool single = weights.size() == 1 && weights[0] == 1.0;
  const ops::TopK want = single ? ops::log_softmax_top_k(logits[0], prefix, c.k, c.exclude)
                                : ops::log_softmax_top_k(logits, weights, prefix, c.k, c.exclude);
  const ops::TopK got = single ? ops::log_softmax_top_k(on_backend[0], prefix, c.k, c.exclude)
                               : ops::log_softmax_top_k(on_backend, weights, prefix, c.k, c.exclude);
  REQUIRE(got.tokens.shape() == want.tokens.shape());
  for (int64_t i = 0; i < want.tokens.numel(); ++i) {
    INFO("row " << i / c.k << " rank " << i % c.k);
    const int32_t token = got.tokens.data<int32_t>()[i];
    const float score = got.scores.data<float>()[i], expected = want.scores.data<float>()[i];
    CHECK(token == want.tokens.data<int32_t>()[i]);
    if (std::isinf(expected)) {
      CHECK(score == expected);
    } else {
      const double bound = 2 * (c.vocab / 8.0 + 16) * kUnit + 4 * kUnit * std::abs(expected);
      CHECK(std::abs(double(score) - expected) <= bound);
    }
  }
}

const Case kCases[] = {
    {3, 1, 1, -1, DType::F32, false},      {4, 7, 3, 0, DType::BF16, false},
    {3, 255, 16, 5, DType::F16, false},    {5, 256, 8, -1, DType::F32, true},
    {3, 257, 10, 256, DType::BF16, true},  {2, 1000, 12, 1, DType::F32, false},
    {2, 33000, 8, 0, DType::F16, false},   {3, 40, 16, 2, DType::F32, true},
};

void check_all(Backend backend) {
  uint32_t seed = 50;
  for (const Case& c : kCases) check_case(backend, c, ++seed);
}

// Ensembles of different tensors against the CPU; copies of one tensor against the kernel's single call.
void check_ensembles(Backend backend) {
  uint32_t seed = 70;
  for (const Case& c : kCases) {
    if (c.dtype == DType::F32) {
      check_case(backend, c, ++seed, {0.75, 0.25});
      check_case(backend, c, ++seed, {0.5, 0.125, 0.375});
    }
    const Tensor logits = testing::to_backend(make_logits(c, ++seed), backend, c.dtype);
    std::vector<float> prefix(c.rows, -1.25f);
    const ops::TopK alone = ops::log_softmax_top_k(logits, prefix, c.k, c.exclude);
    for (const std::vector<double>& weights :
         {std::vector<double>{0.5, 0.5}, std::vector<double>(3, 1.0 / 3), std::vector<double>{0.3, 0.7}}) {
      INFO("rows " << c.rows << " vocab " << c.vocab << " copies with weights " << Catch::Detail::stringify(weights));
      const ops::TopK copies =
          ops::log_softmax_top_k(std::vector<Tensor>(weights.size(), logits), weights, prefix, c.k, c.exclude);
      for (int64_t i = 0; i < alone.tokens.numel(); ++i) {
        const float a = copies.scores.data<float>()[i], b = alone.scores.data<float>()[i];
        CHECK(copies.tokens.data<int32_t>()[i] == alone.tokens.data<int32_t>()[i]);
        CHECK(std::memcmp(&a, &b, sizeof a) == 0);
      }
    }
  }
}

}  // namespace

TEST_CASE("log_softmax_top_k kernel matches the CPU op on the simulator", "[kernel][sim][top_k]") {
  // A missing barrier around the shared per-warp bests gives a wrong pick under warp-ahead.
  check_all(Backend::Sim);
}

TEST_CASE("log_softmax_top_k kernel matches the CPU op on the GPU", "[kernel][top_k][gpu]") {
  if (!testing::gpu_or_skip()) return;
  check_all(Backend::Cuda);
}

TEST_CASE("log_softmax_top_k ensemble kernel matches the CPU op on the simulator", "[kernel][sim][top_k]") {
  check_ensembles(Backend::Sim);
}

TEST_CASE("log_softmax_top_k ensemble kernel matches the CPU op on the GPU", "[kernel][top_k][gpu]") {
  if (!testing::gpu_or_skip()) return;
  check_ensembles(Backend::Cuda);
}
