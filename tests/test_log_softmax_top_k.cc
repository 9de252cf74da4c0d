// ops::log_softmax_top_k on the CPU against a plain reference: every token's prefix + log-probability in
// double, fully sorted by (score descending, token ascending).
//
// Logits are drawn so that distinct values differ by far more than fp32 rounding of the scores, so the op
// must return exactly the reference's tokens; the scores must match within the fp32 error of the op's
// log-sum-exp: a sum of V terms, each lane of the vectorised loop adding V/8 of them sequentially (at most
// V/8 + 8 roundings of relative size u = 2^-24), exp_approx's few ulps, and two roundings of the score
// itself, so |error| <= (V/8 + 16) u + 4 u |score|. Exact ties in the logits must come out in token order.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "heed/ops/log_softmax_top_k.h"

using namespace heed;

namespace {

constexpr double kUnit = 1.0 / (1 << 24);

struct Ranked {
  double score;
  int32_t token;
};

// The reference: all finite candidates of each row, best first.
std::vector<std::vector<Ranked>> reference(const Tensor& logits, const std::vector<float>& prefix, int64_t exclude) {
  const int64_t rows = logits.size(0), vocab = logits.size(1);
  std::vector<std::vector<Ranked>> out(rows);
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = logits.data<float>() + r * vocab;
    double max = -INFINITY, sum = 0;
    for (int64_t v = 0; v < vocab; ++v) max = std::max(max, double(x[v]));
    for (int64_t v = 0; v < vocab; ++v) sum += std::exp(double(x[v]) - max);
    for (int64_t v = 0; v < vocab; ++v) {
      const double score = prefix[r] + (double(x[v]) - max - std::log(sum));
      if (v != exclude && std::isfinite(score)) out[r].push_back({score, static_cast<int32_t>(v)});
    }
    std::stable_sort(out[r].begin(), out[r].end(), [](const Ranked& a, const Ranked& b) { return a.score > b.score; });
  }
  return out;
}

void check_against_reference(const Tensor& logits, const std::vector<float>& prefix, int64_t k, int64_t exclude) {
  const int64_t rows = logits.size(0), vocab = logits.size(1);
  INFO("rows " << rows << " vocab " << vocab << " k " << k << " exclude " << exclude);
  const ops::TopK got = ops::log_softmax_top_k(logits, prefix, k, exclude);
  REQUIRE(got.scores.shape() == Shape{rows, k});
  REQUIRE(got.tokens.shape() == Shape{rows, k});
  const auto want = reference(logits, prefix, exclude);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < k; ++i) {
      INFO("row " << r << " rank " << i);
      const float score = got.scores.data<float>()[r * k + i];
      const int32_t token = got.tokens.data<int32_t>()[r * k + i];
      if (i >= static_cast<int64_t>(want[r].size())) {
        CHECK(token == -1);
        CHECK(score == -INFINITY);
        continue;
      }
      CHECK(token == want[r][i].token);
      const double bound = (vocab / 8.0 + 16) * kUnit + 4 * kUnit * std::abs(want[r][i].score);
      CHECK(std::abs(score - want[r][i].score) <= bound);
    }
}

// Logits i * step - offset over a random permutation of the tokens: distinct, `step` apart.
Tensor spread_logits(int64_t rows, int64_t vocab, float step, uint32_t seed) {
  std::mt19937 rng(seed);
  Tensor t = Tensor::empty({rows, vocab});
  std::vector<int64_t> order(vocab);
  for (int64_t r = 0; r < rows; ++r) {
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    for (int64_t v = 0; v < vocab; ++v) t.data<float>()[r * vocab + order[v]] = v * step - 0.5f * vocab * step;
  }
  return t;
}

}  // namespace

TEST_CASE("log_softmax_top_k returns the best continuations of each row in rank order", "[ops][top_k]") {
  for (const int64_t vocab : {1, 7, 300, 8000})
    for (const int64_t k : {1, 3, 10}) {
      const int64_t rows = 5;
      const Tensor logits = spread_logits(rows, vocab, 16.0f / vocab, static_cast<uint32_t>(vocab + k));
      const std::vector<float> prefix = {0.0f, -1.5f, -20.25f, -3.0f, -0.125f};
      check_against_reference(logits, prefix, k, -1);
      check_against_reference(logits, prefix, k, vocab / 2);  // an excluded token, e.g. the pad id
    }
}

TEST_CASE("log_softmax_top_k breaks ties by token and skips tokens that cannot occur", "[ops][top_k]") {
  // Integer logits in [-3, 3] over 40 tokens: every value is shared by several tokens.
  std::mt19937 rng(3);
  Tensor logits = Tensor::empty({4, 40});
  for (int64_t i = 0; i < logits.numel(); ++i) logits.data<float>()[i] = static_cast<float>(int(rng() % 7) - 3);
  // Row 2: all but three tokens are impossible (-inf), so k = 6 leaves three empty slots.
  for (int64_t v = 0; v < 40; ++v) logits.data<float>()[2 * 40 + v] = v % 13 == 1 ? 0.5f : -INFINITY;
  check_against_reference(logits, {0.0f, -2.0f, -1.0f, -7.5f}, 6, 0);
  check_against_reference(logits, {0.0f, -2.0f, -1.0f, -7.5f}, 6, 14);
}

TEST_CASE("log_softmax_top_k rejects bad arguments with the reason", "[ops][top_k]") {
  const Tensor logits = Tensor::zeros({2, 5});
  CHECK_THROWS_WITH(ops::log_softmax_top_k(logits, {0.0f}, 2), Catch::Contains("1 prefix scores for 2 rows"));
  CHECK_THROWS_WITH(ops::log_softmax_top_k(logits, {0.0f, 0.0f}, 0), Catch::Contains("k must be"));
  CHECK_THROWS_WITH(ops::log_softmax_top_k(logits, {0.0f, 0.0f}, 2, 5), Catch::Contains("exclude must be"));
  CHECK_THROWS_WITH(ops::log_softmax_top_k(Tensor::zeros({10}), {0.0f}, 2), Catch::Contains("[rows, vocab]"));
}
