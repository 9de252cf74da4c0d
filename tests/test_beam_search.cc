// The incremental decoder against the teacher-forced Transformer, and beam search against its definition:
// batch independence, greedy = argmax decoding, n-best lists, length limits and the pad token; ensembles:
// a model with itself is that model exactly, two models follow the weighted sum of their log-probabilities.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <set>

#include "gradcheck.h"
#include "heed/decode/beam_search.h"
#include "heed/decode/ensemble.h"
#include "heed/nn/incremental_decoder.h"
#include "kernel_testing.h"
#include "worst.h"

using namespace heed;

namespace {

constexpr int32_t kPad = 0, kEos = 2;

struct TinyModel {
  nn::ModelConfig config;
  nn::ParameterStore store{11};
  nn::Transformer model;

  // `seed` draws the weights: models of different seeds share only the vocabulary.
  explicit TinyModel(const std::string& norm, int64_t d_model = 16, uint32_t seed = 300)
      : config(make_config(norm, d_model)), model(config, store) {
    // Non-trivial biases and norms, and a stronger signal than the initialisation gives, so that the
    // distributions are peaked enough for hypotheses of different lengths and shapes.
    for (const auto& [name, p] : store.all()) {
      if (name.find("bias") != std::string::npos || name.find("norm") != std::string::npos)
        p.set_value(testing::random_tensor(p.shape(), seed++, -0.5f, 0.5f));
      else
        p.set_value(testing::random_tensor(p.shape(), seed++, -0.6f, 0.6f));
    }
  }

  static nn::ModelConfig make_config(const std::string& norm, int64_t d_model) {
    nn::ModelConfig c;
    c.vocab_size = 23;
    c.pad_id = kPad;
    c.eos_id = kEos;
    c.decoder_start_id = kPad;
    c.d_model = d_model;
    c.heads = 2;
    c.ffn_dim = 2 * d_model;
    c.encoder_layers = 2;
    c.decoder_layers = 2;
    c.norm = norm;
    c.activation = "gelu";
    c.final_logits_bias = true;
    c.dropout = 0.3f;  // must have no effect at inference
    return c;
  }

  // Sets one entry of the output bias, to push a token's probability up or down everywhere.
  void bias_logit(int32_t token, float value) { store.get("final_logits_bias").value().data<float>()[token] = value; }
};

// Right-pads rows of ids into an int32 [rows, longest] tensor.
Tensor pad_rows(const std::vector<std::vector<int32_t>>& rows) {
  size_t longest = 0;
  for (const auto& r : rows) longest = std::max(longest, r.size());
  std::vector<int32_t> ids(rows.size() * longest, kPad);
  for (size_t i = 0; i < rows.size(); ++i) std::copy(rows[i].begin(), rows[i].end(), ids.begin() + i * longest);
  return Tensor::from_vector(ids, {static_cast<int64_t>(rows.size()), static_cast<int64_t>(longest)});
}

// Log-probabilities [B * T][V] of the teacher-forced decoder (Transformer::decode + logits), in double.
std::vector<std::vector<double>> teacher_forced(const nn::Transformer& model, const Tensor& src, const Tensor& tgt_in) {
  autograd::NoGradGuard no_grad;
  nn::ForwardContext ctx;
  Tensor padding;
  const autograd::Variable memory = model.encode(src, &padding, ctx);
  const autograd::Variable hidden = model.decode(tgt_in, memory, padding, ctx);
  const int64_t d = model.config().d_model, V = model.config().vocab_size;
  const std::vector<float> logits = model.logits(autograd::reshape(hidden, {-1, d})).value().to_vector<float>();
  std::vector<std::vector<double>> out;
  for (size_t r = 0; r < logits.size() / V; ++r) {
    const float* row = logits.data() + r * V;
    const double max = *std::max_element(row, row + V);
    double sum = 0;
    for (int64_t v = 0; v < V; ++v) sum += std::exp(row[v] - max);
    std::vector<double> lp(V);
    for (int64_t v = 0; v < V; ++v) lp[v] = row[v] - max - std::log(sum);
    out.push_back(std::move(lp));
  }
  return out;
}

// Sum of the teacher-forced log-probabilities of `tokens` (then eos, if `with_eos`) after the start token.
double sequence_log_prob(const nn::Transformer& model, const std::vector<int32_t>& source, std::vector<int32_t> tokens,
                         bool with_eos) {
  if (with_eos) tokens.push_back(kEos);
  std::vector<int32_t> tgt_in{static_cast<int32_t>(model.config().decoder_start_id)};
  tgt_in.insert(tgt_in.end(), tokens.begin(), tokens.end() - 1);
  const auto lp = teacher_forced(model, pad_rows({source}), pad_rows({tgt_in}));
  double sum = 0;
  for (size_t t = 0; t < tokens.size(); ++t) sum += lp[t][tokens[t]];
  return sum;
}

const std::vector<std::vector<int32_t>> kSources = {
    {5, 9, 13, 4, 17, 8, kEos}, {11, 3, kEos}, {20, 6, 6, 14, kEos}, {kEos}, {7, 19, 10, 12, 15, 21, 3, 9, 16, kEos}};

}  // namespace

TEST_CASE("incremental decoding gives the teacher-forced decoder's log-probabilities through reorders", "[decode]") {
  // Rows are regrouped between steps as beam search does: kept, permuted, repeated (also beyond the
  // initial row count) and dropped, so that sources move between rows. Every row's log-probabilities must
  // be those of the full decoder run on that row's own source and token history.
  for (const std::string norm : {"post", "pre"}) {
    INFO("norm: " << norm);
    TinyModel m(norm);
    const int64_t V = m.config.vocab_size, steps = 20, max_rows = 7;  // 20 > 16: the caches grow once
    const std::vector<std::vector<int32_t>> sources = {kSources[0], kSources[1], kSources[4]};
    nn::IncrementalDecoder decoder(m.model, pad_rows(sources), max_rows);
    std::vector<int64_t> row_source = {0, 1, 2};
    std::vector<std::vector<int32_t>> history(3, {kPad});  // the decoder inputs so far, start token first
    std::mt19937 rng(5);
    double worst = 0;
    for (int64_t t = 0; t < steps; ++t) {
      std::vector<int32_t> tokens;
      for (const auto& h : history) tokens.push_back(h.back());
      const Tensor log_probs = decoder.step_log_probs(tokens);
      REQUIRE(log_probs.shape() == Shape{static_cast<int64_t>(history.size()), V});
      for (size_t r = 0; r < history.size(); ++r) {
        const auto expected = teacher_forced(m.model, pad_rows({sources[row_source[r]]}), pad_rows({history[r]}));
        for (int64_t v = 0; v < V; ++v)
          testing::raise_worst(worst, std::abs(log_probs.data<float>()[r * V + v] - expected.back()[v]));
      }
      std::vector<int64_t> from;
      if (t % 4 == 0) {  // the identity: nothing to copy
        for (size_t r = 0; r < history.size(); ++r) from.push_back(static_cast<int64_t>(r));
      } else {
        const size_t rows = 1 + rng() % max_rows;
        for (size_t j = 0; j < rows; ++j) from.push_back(static_cast<int64_t>(rng() % history.size()));
      }
      decoder.reorder(from);
      std::vector<int64_t> next_source;
      std::vector<std::vector<int32_t>> next_history;
      for (int64_t f : from) {
        next_source.push_back(row_source[f]);
        next_history.push_back(history[f]);
        next_history.back().push_back(static_cast<int32_t>(3 + rng() % (V - 3)));
      }
      row_source = next_source;
      history = next_history;
      REQUIRE(decoder.row_sources() == row_source);
    }
    CHECK(decoder.steps() == steps);
    CHECK(worst < 2e-5);
  }
}

TEST_CASE("incremental decoding on the simulated GPU in bf16 and fp16 gives the CPU's log-probabilities",
          "[decode][sim]") {
  // The GPU attention kernel needs head dim 32, 64 or 128: d_model 64 over 2 heads. The same tokens and
  // reorders go to a CPU decoder in fp32 and a simulated-GPU one in 16 bits; each step's log-probabilities
  // must agree within 4 unit roundoffs of the 16-bit type, relative to the largest log-probability
  // magnitude of the row: the allowance tests/test_mixed_precision.cc gives a whole forward pass's loss
  // (measured: under 1 u).
  for (const DType compute : {DType::BF16, DType::F16}) {
    INFO(testing::dtype_label(compute));
    const double u = compute == DType::BF16 ? 1.0 / 256 : 1.0 / 2048;
    TinyModel cpu("pre", 64), sim("pre", 64);
    sim.store.to(Device::sim());
    const int64_t V = cpu.config.vocab_size, max_rows = 6;
    const Tensor src = pad_rows({kSources[0], kSources[2], kSources[4]});
    nn::IncrementalDecoder on_cpu(cpu.model, src, max_rows), on_sim(sim.model, src, max_rows, compute);
    std::vector<int32_t> tokens(3, kPad);
    std::mt19937 rng(8);
    double worst = 0;
    for (int t = 0; t < 18; ++t) {  // past 16: the caches grow once
      const Tensor want = on_cpu.step_log_probs(tokens), got = on_sim.step_log_probs(tokens);
      REQUIRE(got.shape() == want.shape());
      for (int64_t r = 0; r < want.size(0); ++r) {
        double scale = 0;
        for (int64_t v = 0; v < V; ++v) scale = std::max(scale, double(std::abs(want.data<float>()[r * V + v])));
        for (int64_t v = 0; v < V; ++v)
          testing::raise_worst(worst, std::abs(got.data<float>()[r * V + v] - want.data<float>()[r * V + v]) / scale);
      }
      std::vector<int64_t> from;
      const size_t rows = 1 + rng() % max_rows;
      for (size_t j = 0; j < rows; ++j) from.push_back(static_cast<int64_t>(rng() % tokens.size()));
      on_cpu.reorder(from);
      on_sim.reorder(from);
      tokens.assign(rows, 0);
      for (auto& token : tokens) token = static_cast<int32_t>(3 + rng() % (V - 3));
    }
    INFO("worst relative difference " << worst / u << " u");
    CHECK(worst <= 4 * u);
    CHECK(worst > 0);  // the 16-bit path really ran
  }
}

TEST_CASE("decoding leaves the model's parameters unchanged", "[decode]") {
  // One sentence at a time means single-row steps, where a layer that wrote into a shared buffer (e.g. a
  // broadcast bias) would change the model.
  TinyModel m("post");
  io::TensorMap before = m.store.values();
  for (auto& [name, value] : before) value = value.clone();  // values() shares the parameters' storage
  decode::SearchOptions options;
  options.beam_size = 1;
  decode::beam_search(m.model, {kSources[0]}, options);
  options.beam_size = 3;
  decode::beam_search(m.model, {kSources[1]}, options);
  for (const auto& [name, value] : m.store.values()) {
    INFO("parameter " << name);
    const Tensor& original = before.at(name);
    CHECK(std::equal(value.data<float>(), value.data<float>() + value.numel(), original.data<float>()));
  }
}

TEST_CASE("beam search of a batch equals beam search of its sentences one at a time", "[decode]") {
  for (const std::string norm : {"post", "pre"}) {
    TinyModel m(norm);
    decode::SearchOptions options;
    options.beam_size = 4;
    options.n_best = 4;
    options.length_penalty = 0.6f;
    const auto batch = decode::beam_search(m.model, kSources, options);
    REQUIRE(batch.size() == kSources.size());
    std::set<size_t> lengths;
    for (size_t i = 0; i < kSources.size(); ++i) {
      INFO("norm " << norm << ", sentence " << i);
      const auto alone = decode::beam_search(m.model, {kSources[i]}, options);
      REQUIRE(alone.size() == 1);
      REQUIRE(batch[i].size() == alone[0].size());
      for (size_t h = 0; h < alone[0].size(); ++h) {
        CHECK(batch[i][h].tokens == alone[0][h].tokens);
        CHECK(batch[i][h].score == Approx(alone[0][h].score).margin(1e-4));
        CHECK(batch[i][h].log_prob == Approx(alone[0][h].log_prob).margin(1e-4));
        lengths.insert(alone[0][h].tokens.size());
      }
    }
    CHECK(lengths.size() > 3);  // the model is not degenerate: hypotheses of many lengths
  }
}

TEST_CASE("beam size 1 is greedy argmax decoding", "[decode]") {
  TinyModel m("post");
  decode::SearchOptions options;
  options.beam_size = 1;
  options.length_penalty = 1.0f;
  const auto results = decode::beam_search(m.model, kSources, options);
  for (size_t i = 0; i < kSources.size(); ++i) {
    INFO("sentence " << i);
    // The reference: re-run the full decoder on the growing prefix and take the argmax (pad excluded).
    std::vector<int32_t> tokens;
    double log_prob = 0;
    bool ended = false;
    const int64_t limit = decode::max_target_length(static_cast<int64_t>(kSources[i].size()), options);
    while (!ended && static_cast<int64_t>(tokens.size()) < limit) {
      std::vector<int32_t> tgt_in{kPad};
      tgt_in.insert(tgt_in.end(), tokens.begin(), tokens.end());
      const std::vector<double> lp = teacher_forced(m.model, pad_rows({kSources[i]}), pad_rows({tgt_in})).back();
      int32_t best = -1;
      for (int32_t v = 0; v < m.config.vocab_size; ++v)
        if (v != kPad && (best < 0 || lp[v] > lp[best])) best = v;
      log_prob += lp[best];
      ended = best == kEos;
      if (!ended) tokens.push_back(best);
    }
    REQUIRE(results[i].size() == 1);
    CHECK(results[i][0].tokens == tokens);
    CHECK(results[i][0].log_prob == Approx(log_prob).margin(1e-4));
    const double length = static_cast<double>(tokens.size() + (ended ? 1 : 0));
    CHECK(results[i][0].score == Approx(log_prob / length).margin(1e-4));
  }
}

TEST_CASE("n-best lists are sorted, distinct, and score what the model assigns", "[decode]") {
  TinyModel m("pre");
  decode::SearchOptions options;
  options.beam_size = 5;
  options.n_best = 5;
  options.length_penalty = 1.3f;
  options.max_length_ratio = 1.0f;
  options.max_length_offset = 2;
  const auto results = decode::beam_search(m.model, kSources, options);
  for (size_t i = 0; i < kSources.size(); ++i) {
    INFO("sentence " << i);
    const auto& list = results[i];
    REQUIRE(list.size() == 5);
    std::set<std::vector<int32_t>> distinct;
    const int64_t limit = decode::max_target_length(static_cast<int64_t>(kSources[i].size()), options);
    for (size_t h = 0; h < list.size(); ++h) {
      if (h > 0) CHECK(list[h - 1].score >= list[h].score);
      distinct.insert(list[h].tokens);
      // A hypothesis shorter than the limit ended with eos; one at the limit was cut there.
      const int64_t size = static_cast<int64_t>(list[h].tokens.size());
      REQUIRE(size <= limit);
      const bool with_eos = size < limit;
      const double length = static_cast<double>(size + (with_eos ? 1 : 0));
      CHECK(list[h].log_prob == Approx(sequence_log_prob(m.model, kSources[i], list[h].tokens, with_eos)).margin(1e-4));
      CHECK(list[h].score == Approx(list[h].log_prob / std::pow(length, 1.3)).margin(1e-5));
    }
    CHECK(distinct.size() == list.size());
  }
}

TEST_CASE("the maximum length holds, and cut hypotheses compete as finished", "[decode]") {
  TinyModel m("post");
  m.bias_logit(kEos, -100.0f);  // eos is never likely: every hypothesis runs to the limit
  decode::SearchOptions options;
  options.beam_size = 3;
  options.n_best = 3;
  options.max_length_ratio = 0.5f;
  options.max_length_offset = 1;
  options.max_length = 4;
  CHECK(decode::max_target_length(7, options) == 4);   // floor(3.5) + 1
  CHECK(decode::max_target_length(3, options) == 2);   // floor(1.5) + 1
  CHECK(decode::max_target_length(10, options) == 4);  // 6, capped by max_length
  const auto results = decode::beam_search(m.model, kSources, options);
  for (size_t i = 0; i < kSources.size(); ++i) {
    INFO("sentence " << i);
    const int64_t limit = decode::max_target_length(static_cast<int64_t>(kSources[i].size()), options);
    REQUIRE(results[i].size() == 3);
    for (const decode::Hypothesis& h : results[i]) {
      CHECK(static_cast<int64_t>(h.tokens.size()) == limit);
      CHECK(h.score == Approx(h.log_prob / static_cast<double>(limit)).margin(1e-5));
    }
  }
}

TEST_CASE("the pad token is never generated, even when the model prefers it", "[decode]") {
  TinyModel m("post");
  m.bias_logit(kPad, 50.0f);
  for (int beam : {1, 4}) {
    decode::SearchOptions options;
    options.beam_size = beam;
    options.n_best = beam;
    for (const auto& list : decode::beam_search(m.model, kSources, options)) {
      REQUIRE(!list.empty());
      for (const decode::Hypothesis& h : list) {
        CHECK(std::count(h.tokens.begin(), h.tokens.end(), kPad) == 0);
        CHECK(std::isfinite(h.score));
      }
    }
  }
}

TEST_CASE("beam search refuses bad options and empty sources, naming them", "[decode]") {
  TinyModel m("post");
  decode::SearchOptions options;
  options.n_best = 5;
  CHECK_THROWS_WITH(decode::beam_search(m.model, kSources, options),
                    Catch::Contains("n_best must be between 1 and beam_size (4), got 5"));
  options = {};
  options.beam_size = 0;
  CHECK_THROWS_WITH(decode::beam_search(m.model, kSources, options), Catch::Contains("beam_size must be at least 1"));
  CHECK_THROWS_WITH(decode::beam_search(m.model, {{5, kEos}, {}}, decode::SearchOptions{}),
                    Catch::Contains("source sentence 1 is empty"));
  CHECK_THROWS_WITH(decode::beam_search(m.model, {{5, 23, kEos}}, decode::SearchOptions{}),
                    Catch::Contains("id 23 at position 1, outside the vocabulary [0, 23)"));
}

namespace {

// Hypothesis lists compared exactly: the same tokens, and the same scores and log-probabilities, bit for bit.
void check_identical(const std::vector<std::vector<decode::Hypothesis>>& got,
                     const std::vector<std::vector<decode::Hypothesis>>& want) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    INFO("sentence " << i);
    REQUIRE(got[i].size() == want[i].size());
    for (size_t h = 0; h < want[i].size(); ++h) {
      INFO("hypothesis " << h);
      CHECK(got[i][h].tokens == want[i][h].tokens);
      CHECK(got[i][h].score == want[i][h].score);
      CHECK(got[i][h].log_prob == want[i][h].log_prob);
    }
  }
}

}  // namespace

TEST_CASE("an ensemble of a model with itself gives that model's output exactly", "[decode][ensemble]") {
  // Weights summing to one over copies of one model combine to the model's own fp32 log-probabilities
  // (heed/ops/log_softmax_top_k.h), so every choice, tie and score must be the same bits. Thirds and
  // fifths are not exact in binary, and 0.3/0.7 are unequal: the double sum must still round back.
  for (const std::string norm : {"post", "pre"}) {
    TinyModel m(norm);
    decode::SearchOptions options;
    options.beam_size = 4;
    options.n_best = 4;
    options.length_penalty = 0.6f;
    const auto alone = decode::beam_search(m.model, kSources, options);
    const std::vector<std::vector<double>> weightings = {{}, {1, 1, 1}, {0.3, 0.7}, {2, 2, 2, 2, 2}, {5, 1, 3}};
    for (const auto& weights : weightings) {
      const size_t copies = weights.empty() ? 2 : weights.size();
      INFO("norm " << norm << ", " << copies << " copies, weights " << Catch::Detail::stringify(weights));
      const std::vector<decode::Ensemble::Member> members(copies, {&m.model, "tiny"});
      check_identical(decode::beam_search(decode::Ensemble(members, weights), kSources, options), alone);
    }
    options.beam_size = options.n_best = 1;  // greedy: another stopping path
    check_identical(decode::beam_search(decode::Ensemble({{&m.model, "a"}, {&m.model, "b"}}, {}), kSources, options),
                    decode::beam_search(m.model, kSources, options));
  }
}

TEST_CASE("an ensemble of a model with itself gives that model's output exactly on the simulated GPU",
          "[decode][ensemble][sim]") {
  // The GPU path: a single model selects with the single-model kernel, the ensemble with its own kernel,
  // which must reproduce the former's scores bit for bit (bf16 logits, head dim 32 for the attention kernel).
  TinyModel m("pre", 64);
  m.store.to(Device::sim());
  decode::SearchOptions options;
  options.beam_size = 3;
  options.n_best = 3;
  options.compute = DType::BF16;
  const std::vector<std::vector<int32_t>> sources = {kSources[0], kSources[1]};
  check_identical(decode::beam_search(decode::Ensemble({{&m.model, "a"}, {&m.model, "b"}, {&m.model, "c"}}, {}),
                                      sources, options),
                  decode::beam_search(m.model, sources, options));
}

TEST_CASE("an ensemble of two models follows the weighted sum of their log-probabilities", "[decode][ensemble]") {
  // Greedy decoding against a reference that runs both full decoders on the growing prefix and takes the
  // argmax of w_a log p_a + w_b log p_b (pad excluded), in double. The weights are given unnormalised
  // (4 : 1) and must act as 0.8 : 0.2; b's distributions are the more peaked, so a weighs more, and the
  // ensemble's translations differ from each model's. The chosen token must lead the runner-up by far
  // more than the fp32 difference between the incremental and full decoders (2e-5, the first test), so
  // the comparison of tokens is exact; the summed log-probability agrees within 1e-4 as in the
  // single-model tests.
  TinyModel a("post"), b("pre", 16, 900);
  const double wa = 0.8, wb = 0.2;
  decode::SearchOptions options;
  options.beam_size = 1;
  options.length_penalty = 1.0f;
  const decode::Ensemble ensemble({{&a.model, "a"}, {&b.model, "b"}}, {4, 1});
  REQUIRE(ensemble.weights() == std::vector<double>{wa, wb});
  const auto results = decode::beam_search(ensemble, kSources, options);
  const auto only_a = decode::beam_search(a.model, kSources, options);
  const auto only_b = decode::beam_search(b.model, kSources, options);
  int differs_from_a = 0, differs_from_b = 0;
  for (size_t i = 0; i < kSources.size(); ++i) {
    INFO("sentence " << i);
    std::vector<int32_t> tokens;
    double log_prob = 0, closest = INFINITY;
    bool ended = false;
    const int64_t limit = decode::max_target_length(static_cast<int64_t>(kSources[i].size()), options);
    while (!ended && static_cast<int64_t>(tokens.size()) < limit) {
      std::vector<int32_t> tgt_in{kPad};
      tgt_in.insert(tgt_in.end(), tokens.begin(), tokens.end());
      const std::vector<double> lp_a = teacher_forced(a.model, pad_rows({kSources[i]}), pad_rows({tgt_in})).back();
      const std::vector<double> lp_b = teacher_forced(b.model, pad_rows({kSources[i]}), pad_rows({tgt_in})).back();
      std::vector<double> lp(lp_a.size());
      for (size_t v = 0; v < lp.size(); ++v) lp[v] = wa * lp_a[v] + wb * lp_b[v];
      int32_t best = -1, second = -1;
      for (int32_t v = 0; v < a.config.vocab_size; ++v) {
        if (v == kPad) continue;
        if (best < 0 || lp[v] > lp[best]) {
          second = best;
          best = v;
        } else if (second < 0 || lp[v] > lp[second]) {
          second = v;
        }
      }
      closest = std::min(closest, lp[best] - lp[second]);
      log_prob += lp[best];
      ended = best == kEos;
      if (!ended) tokens.push_back(best);
    }
    REQUIRE(closest > 1e-3);
    REQUIRE(results[i].size() == 1);
    CHECK(results[i][0].tokens == tokens);
    CHECK(results[i][0].log_prob == Approx(log_prob).margin(1e-4));
    differs_from_a += results[i][0].tokens != only_a[i][0].tokens;
    differs_from_b += results[i][0].tokens != only_b[i][0].tokens;
  }
  // Both models count: the ensemble's translations are neither model's alone.
  CHECK(differs_from_a > 0);
  CHECK(differs_from_b > 0);
}

TEST_CASE("an ensemble refuses models of different vocabularies and bad weights, naming them", "[decode][ensemble]") {
  TinyModel m("post");
  const decode::Ensemble::Member first{&m.model, "runs/a"};
  for (const auto& [field, change] : std::vector<std::pair<std::string, std::function<void(nn::ModelConfig&)>>>{
           {"vocab_size is 23 in runs/a but 24 in runs/b", [](nn::ModelConfig& c) { c.vocab_size = 24; }},
           {"pad_id is 0 in runs/a but 1 in runs/b", [](nn::ModelConfig& c) { c.pad_id = 1; }},
           {"eos_id is 2 in runs/a but 3 in runs/b", [](nn::ModelConfig& c) { c.eos_id = 3; }},
           {"decoder_start_id is 0 in runs/a but 2 in runs/b", [](nn::ModelConfig& c) { c.decoder_start_id = 2; }}}) {
    nn::ModelConfig config = m.config;
    change(config);
    nn::ParameterStore store(1);
    const nn::Transformer other(config, store);
    CHECK_THROWS_WITH(decode::Ensemble({first, {&other, "runs/b"}}, {}),
                      Catch::Contains("cannot ensemble runs/a and runs/b: " + field));
  }
  // A different architecture is no obstacle.
  TinyModel wider("pre", 32, 700);
  CHECK_NOTHROW(decode::Ensemble({first, {&wider.model, "runs/c"}}, {}));

  const std::vector<decode::Ensemble::Member> two{first, first};
  CHECK_THROWS_WITH(decode::Ensemble(two, {1.0}), Catch::Contains("ensemble weights: 1 weights for 2 models"));
  CHECK_THROWS_WITH(decode::Ensemble(two, {1, 2, 3}), Catch::Contains("3 weights for 2 models"));
  CHECK_THROWS_WITH(decode::Ensemble(two, {1, 0}), Catch::Contains("weight 2 is 0; weights must be positive finite"));
  CHECK_THROWS_WITH(decode::Ensemble(two, {-0.5, 1}), Catch::Contains("weight 1 is -0.5"));
  CHECK_THROWS_WITH(decode::Ensemble(two, {1, NAN}), Catch::Contains("weight 2 is nan"));
  CHECK_THROWS_WITH(decode::Ensemble(two, {INFINITY, 1}), Catch::Contains("weight 1 is inf"));
  CHECK_THROWS_WITH(decode::Ensemble(two, {1e308, 1e308}), Catch::Contains("the weights overflow"));
  CHECK_THROWS_WITH(decode::Ensemble({}, {}), Catch::Contains("at least one model"));
  CHECK_THROWS_WITH(decode::Ensemble(std::vector<decode::Ensemble::Member>(9, first), {}),
                    Catch::Contains("at most 8 models, got 9"));
  // One model with any weight is the model alone.
  CHECK(decode::Ensemble({first}, {0.7}).weights() == std::vector<double>{1.0});
}
