// ops::log_softmax_top_k on the CPU against a plain reference: every token's prefix + log-probability in
// double, fully sorted by (score descending, token ascending).
//
// Logits are drawn so that distinct values differ by far more than fp32 rounding of the scores, so the op
// must return exactly the reference's tokens; the scores must match within the fp32 error of the op's
// log-sum-exp: a sum of V terms, each lane of the vectorised loop adding V/8 of them sequentially (at most
// V/8 + 8 roundings of relative size u = 2^-24), exp_approx's few ulps, and two roundings of the score
// itself, so |error| <= (V/8 + 16) u + 4 u |score|. Exact ties in the logits must come out in token order.
// An ensemble's call must give the single call's bits for copies of one tensor, and otherwise follow the
// weighted sum of the tensors' log-probabilities.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
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

// The reference: all finite candidates of each row, best first, by prefix + sum_m weights[m] log_softmax(logits[m]).
std::vector<std::vector<Ranked>> reference(const std::vector<Tensor>& logits, const std::vector<double>& weights,
                                           const std::vector<float>& prefix, int64_t exclude) {
  const int64_t rows = logits[0].size(0), vocab = logits[0].size(1);
  std::vector<std::vector<Ranked>> out(rows);
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<double> score(vocab, prefix[r]);
    for (size_t m = 0; m < logits.size(); ++m) {
      const float* x = logits[m].data<float>() + r * vocab;
      double max = -INFINITY, sum = 0;
      for (int64_t v = 0; v < vocab; ++v) max = std::max(max, double(x[v]));
      for (int64_t v = 0; v < vocab; ++v) sum += std::exp(double(x[v]) - max);
      for (int64_t v = 0; v < vocab; ++v) score[v] += weights[m] * (double(x[v]) - max - std::log(sum));
    }
    for (int64_t v = 0; v < vocab; ++v)
      if (v != exclude && std::isfinite(score[v])) out[r].push_back({score[v], static_cast<int32_t>(v)});
    std::stable_sort(out[r].begin(), out[r].end(), [](const Ranked& a, const Ranked& b) { return a.score > b.score; });
  }
  return out;
}

// With several tensors, each model's log-probability carries the single call's error, and the weights sum
// to one, so the bound is the single call's.
void check_against_reference(const std::vector<Tensor>& logits, const std::vector<double>& weights,
                             const std::vector<float>& prefix, int64_t k, int64_t exclude) {
  const int64_t rows = logits[0].size(0), vocab = logits[0].size(1);
  INFO("rows " << rows << " vocab " << vocab << " k " << k << " exclude " << exclude << " models " << logits.size());
  const ops::TopK got = logits.size() == 1 && weights[0] == 1.0
                            ? ops::log_softmax_top_k(logits[0], prefix, k, exclude)
                            : ops::log_softmax_top_k(logits, weights, prefix, k, exclude);
  REQUIRE(got.scores.shape() == Shape{rows, k});
  REQUIRE(got.tokens.shape() == Shape{rows, k});
  const auto want = reference(logits, weights, prefix, exclude);
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

void check_against_reference(const Tensor& logits, const std::vector<float>& prefix, int64_t k, int64_t exclude) {
  check_against_reference(std::vector<Tensor>{logits}, {1.0}, prefix, k, exclude);
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

namespace {

// Integer logits in [-3, 3] over 40 tokens: every value is shared by several tokens. Row 2: all but three
// tokens are impossible (-inf), so k = 6 leaves three empty slots.
Tensor tied_logits(uint32_t seed) {
  std::mt19937 rng(seed);
  Tensor logits = Tensor::empty({4, 40});
  for (int64_t i = 0; i < logits.numel(); ++i) logits.data<float>()[i] = static_cast<float>(int(rng() % 7) - 3);
  for (int64_t v = 0; v < 40; ++v) logits.data<float>()[2 * 40 + v] = v % 13 == 1 ? 0.5f : -INFINITY;
  return logits;
}

void check_bitwise_equal(const ops::TopK& got, const ops::TopK& want) {
  REQUIRE(got.scores.shape() == want.scores.shape());
  for (int64_t i = 0; i < want.scores.numel(); ++i) {
    INFO("entry " << i);
    CHECK(got.tokens.data<int32_t>()[i] == want.tokens.data<int32_t>()[i]);
    const float a = got.scores.data<float>()[i], b = want.scores.data<float>()[i];
    CHECK(std::memcmp(&a, &b, sizeof a) == 0);
  }
}

}  // namespace

TEST_CASE("log_softmax_top_k breaks ties by token and skips tokens that cannot occur", "[ops][top_k]") {
  const Tensor logits = tied_logits(3);
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

TEST_CASE("log_softmax_top_k of an ensemble of copies gives the single call's result bit for bit", "[ops][top_k]") {
  // Copies of one tensor with weights summing to one: the double sum of the weighted fp32 log-probabilities
  // rounds back to the fp32 log-probability itself, so scores, ties and their order are the single call's.
  // Tied integer logits and -inf rows, spread logits over a vocabulary of 8000, an excluded token.
  const std::vector<std::vector<double>> weightings = {{1.0 / 2, 1.0 / 2}, {1.0 / 3, 1.0 / 3, 1.0 / 3},
                                                       {0.3, 0.7},         {0.1, 0.2, 0.3, 0.4},
                                                       {0.2, 0.2, 0.2, 0.2, 0.2}, std::vector<double>(8, 0.125)};
  const std::vector<float> prefix = {0.0f, -2.0f, -1.0f, -7.5f};
  for (const Tensor& logits : {tied_logits(9), spread_logits(4, 8000, 16.0f / 8000, 4)}) {
    for (const int64_t exclude : {int64_t{-1}, int64_t{0}, int64_t{14}}) {
      const ops::TopK alone = ops::log_softmax_top_k(logits, prefix, 10, exclude);
      for (const auto& weights : weightings) {
        INFO("vocab " << logits.size(1) << " exclude " << exclude << " weights " << Catch::Detail::stringify(weights));
        const std::vector<Tensor> copies(weights.size(), logits);
        check_bitwise_equal(ops::log_softmax_top_k(copies, weights, prefix, 10, exclude), alone);
      }
      // One tensor of weight 1 through the ensemble entry point is the single call.
      check_bitwise_equal(ops::log_softmax_top_k({logits}, {1.0}, prefix, 10, exclude), alone);
    }
  }
}

TEST_CASE("log_softmax_top_k of an ensemble ranks by the weighted sum of log-probabilities", "[ops][top_k]") {
  // Model 0's logits are spread `step` apart; the others' over other permutations within step / 4 in all.
  // With model 0's weight at least one half, the weighted sums stay at least step / 4 apart: far from
  // ties, so the tokens must be exact, while every model's log-probabilities count in every score.
  const int64_t rows = 5;
  const std::vector<float> prefix = {0.0f, -1.5f, -20.25f, -3.0f, -0.125f};
  for (const int64_t vocab : {7, 300, 8000}) {
    const float step = 16.0f / vocab;
    std::vector<Tensor> logits = {spread_logits(rows, vocab, step, 100)};
    for (uint32_t m = 1; m < 3; ++m) logits.push_back(spread_logits(rows, vocab, step / (4 * vocab), 100 + m));
    check_against_reference(logits, {0.5, 0.2, 0.3}, prefix, 6, -1);
    check_against_reference({logits[0], logits[1]}, {0.9, 0.1}, prefix, 6, vocab / 2);
    // A weight of its own on a single tensor scales its log-probabilities.
    check_against_reference({logits[0]}, {0.5}, prefix, 3, -1);
  }
}

TEST_CASE("log_softmax_top_k of an ensemble rejects bad arguments with the reason", "[ops][top_k]") {
  const Tensor logits = Tensor::zeros({2, 5});
  const std::vector<float> prefix = {0.0f, 0.0f};
  CHECK_THROWS_WITH(ops::log_softmax_top_k(std::vector<Tensor>{}, {}, prefix, 2), Catch::Contains("0 logits tensors"));
  CHECK_THROWS_WITH(ops::log_softmax_top_k(std::vector<Tensor>(9, logits), std::vector<double>(9, 1.0), prefix, 2),
                    Catch::Contains("9 logits tensors, expected 1 to 8"));
  CHECK_THROWS_WITH(ops::log_softmax_top_k({logits, logits}, {1.0}, prefix, 2), Catch::Contains("1 weights for 2"));
  CHECK_THROWS_WITH(ops::log_softmax_top_k({logits, logits}, {1.0, 0.0}, prefix, 2),
                    Catch::Contains("weight 1 is 0, expected a positive finite number"));
  CHECK_THROWS_WITH(ops::log_softmax_top_k({logits, logits}, {NAN, 1.0}, prefix, 2),
                    Catch::Contains("weight 0 is nan"));
  CHECK_THROWS_WITH(ops::log_softmax_top_k({logits, Tensor::zeros({2, 6})}, {0.5, 0.5}, prefix, 2),
                    Catch::Contains("logits 1 is [2, 6] F32 on cpu, logits 0 is [2, 5] F32 on cpu"));
}
