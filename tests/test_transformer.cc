#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "gradcheck.h"
#include "heed/nn/transformer.h"

using namespace heed;

namespace {

nn::ModelConfig tiny_config(const std::string& norm, const std::string& tie, const std::string& act) {
  nn::ModelConfig c;
  c.vocab_size = 13;
  c.pad_id = 0;
  c.decoder_start_id = 0;
  c.d_model = 8;
  c.heads = 2;
  c.ffn_dim = 16;
  c.encoder_layers = 2;
  c.decoder_layers = 2;
  c.norm = norm;
  c.tie_embeddings = tie;
  c.activation = act;
  c.final_logits_bias = true;
  c.label_smoothing = 0.1f;
  return c;
}

// Two sentence pairs, the second padded on both sides.
data::Batch tiny_batch() {
  return {Tensor::from_vector<int32_t>({5, 6, 7, 8, 2, 9, 4, 2, 0, 0}, {2, 5}),
          Tensor::from_vector<int32_t>({0, 3, 4, 5, 0, 10, 11, 0}, {2, 4}),
          Tensor::from_vector<int32_t>({3, 4, 5, 2, 10, 11, 2, 0}, {2, 4})};
}

}  // namespace

// Each parameter's gradient is checked as one vector over its sampled coordinates, against a bound scaled by
// its own norm, since the gradients of a whole model span four orders of magnitude (6e-5 to 0.9 here): an
// absolute bound loose enough for the largest lets a zero gradient pass for the smallest.
//   ||analytic - numeric|| <= kRelative (h / kStep)^2 ||numeric|| + kNoiseUlps sqrt(m) ulp(f) / h
// Central differences carry two errors. Truncation, h^2 f''' / 6, measured here at most 3e-5 of the
// gradient's norm at h = kStep = 1e-2 where rounding does not hide it: kRelative = 1e-3, growing as h^2.
// Rounding: the loss is an fp32 value of about 2.6, so f(x + h) and f(x - h) are each off by about half an
// ulp(f) (2.4e-7) and their quotient by about ulp(f) / 2h per coordinate (measured: 0.3 to 0.55 ulp(f) / h
// as the RMS over a parameter's coordinates): kNoiseUlps = 2 per coordinate, summed over the m coordinates as
// a norm. Where a gradient is within 10 times that noise at h = 1e-2 (attention's query and key projections,
// near 6e-5 in the swish case), the step widens to 1e-1, which divides the noise by 10. The test also
// requires that a zero gradient would fail for every parameter but the key projection's bias (its exact
// gradient is zero: softmax is unchanged when every score of a query shifts by the same q.b_k).
TEST_CASE("whole Transformer: loss gradient matches finite differences on sampled parameters",
          "[nn][transformer][gradcheck]") {
  constexpr double kStep = 1e-2, kWideStep = 1e-1, kRelative = 1e-3, kNoiseUlps = 2.0;
  for (const auto& [norm, tie, act] : {std::tuple{"post", "all", "relu"}, {"pre", "none", "gelu"},
                                       {"post", "target", "swish"}}) {
    INFO("norm=" << norm << " tie=" << tie << " activation=" << act);
    nn::ModelConfig config = tiny_config(norm, tie, act);
    nn::ParameterStore store(7);
    nn::Transformer model(config, store);
    // Non-trivial biases and norms, so that every parameter's gradient is exercised.
    uint32_t seed = 100;
    for (const auto& [name, p] : store.all())
      if (name.find("bias") != std::string::npos || name.find("norm") != std::string::npos)
        p.set_value(testing::random_tensor(p.shape(), seed++, 0.5f, 1.5f));
    const data::Batch batch = tiny_batch();
    nn::ForwardContext ctx;
    nn::LossResult r = model.loss(batch, ctx);
    CHECK(r.tokens == 7);
    autograd::backward(r.loss);
    auto f = [&] {
      autograd::NoGradGuard no_grad;
      nn::ForwardContext c;
      return double(model.loss(batch, c).loss.value().item());
    };
    const float loss = r.loss.value().item();
    const double ulp = std::nextafter(loss, std::numeric_limits<float>::infinity()) - loss;
    for (const auto& [name, p] : store.all()) {
      INFO("parameter " << name);
      REQUIRE(p.grad().defined());
      // The pad row (0) is used as the decoder start token but, as with torch's padding_idx, receives no
      // gradient from the lookup, so finite differences there disagree by design: skip it.
      const bool table = p.value().dim() == 2 && p.size(0) == config.vocab_size;
      Tensor value = table ? p.value().narrow(0, 1, config.vocab_size - 1) : p.value();
      Tensor grad = table ? p.grad().narrow(0, 1, config.vocab_size - 1) : p.grad();
      double h = kStep;
      testing::SampledGradient s = testing::sample_gradient(f, value, grad, h, 6);
      auto noise = [&] { return kNoiseUlps * std::sqrt(double(s.checked)) * ulp / h; };
      if (s.numeric < 10 * noise()) s = testing::sample_gradient(f, value, grad, h = kWideStep, 6);
      const double bound = kRelative * (h / kStep) * (h / kStep) * s.numeric + noise();
      INFO(s.checked << " coordinates, h " << h << ": |numeric| " << s.numeric << ", |analytic - numeric| "
                     << s.error << ", bound " << bound << " (rounding noise " << noise() << ")");
      CHECK(s.error <= bound);
      const bool exact_zero = name.find("k_proj.bias") != std::string::npos;
      if (!exact_zero) CHECK(s.numeric > bound);  // a zero gradient would fail
    }
  }
}

TEST_CASE("the pad row of an input embedding gets no gradient from the lookup", "[nn][transformer]") {
  // Untied, so the output projection (whose pad logit does get a gradient) has its own matrix.
  nn::ModelConfig config = tiny_config("post", "none", "relu");
  nn::ParameterStore store(3);
  nn::Transformer model(config, store);
  nn::ForwardContext ctx;
  autograd::backward(model.loss(tiny_batch(), ctx).loss);
  for (const char* name : {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight"}) {
    INFO(name);
    const Tensor& g = store.get(name).grad();
    for (int64_t j = 0; j < config.d_model; ++j) CHECK(g.data<float>()[config.pad_id * config.d_model + j] == 0.0f);
  }
  const Tensor& out = store.get("lm_head.weight").grad();
  CHECK(out.data<float>()[config.pad_id * config.d_model] != 0.0f);
}

TEST_CASE("dropout in training draws the same masks for the same step and others for the next",
          "[nn][transformer]") {
  nn::ModelConfig config = tiny_config("post", "all", "relu");
  config.dropout = 0.3f;
  config.attention_dropout = 0.2f;
  nn::ParameterStore store(3);
  nn::Transformer model(config, store);
  autograd::NoGradGuard no_grad;
  auto loss_at = [&](uint64_t step) {
    nn::ForwardContext ctx{.training = true, .seed = 5, .step = step};
    return model.loss(tiny_batch(), ctx).loss.value().item();
  };
  CHECK(loss_at(1) == loss_at(1));
  CHECK(loss_at(1) != loss_at(2));
  nn::ForwardContext eval;
  CHECK(model.loss(tiny_batch(), eval).loss.value().item() != loss_at(1));
}

TEST_CASE("a batch with an id outside the vocabulary is refused with its position", "[nn][transformer]") {
  nn::ModelConfig config = tiny_config("post", "all", "relu");
  nn::ParameterStore store(3);
  nn::Transformer model(config, store);
  data::Batch batch = tiny_batch();
  batch.src.data<int32_t>()[6] = 13;
  nn::ForwardContext ctx;
  CHECK_THROWS_WITH(model.loss(batch, ctx), Catch::Contains("batch.src[1][1] = 13 is outside the vocabulary"));
}
