#include "heed/decode/ensemble.h"

#include <cmath>

#include "heed/ops/log_softmax_top_k.h"

namespace heed::decode {

namespace {

// Throws naming both models when `field` differs between them.
void check_same(const Ensemble::Member& first, const Ensemble::Member& other, const char* field, int64_t first_value,
                int64_t other_value) {
  HEED_CHECK(first_value == other_value,
             "cannot ensemble {} and {}: {} is {} in {} but {} in {} (the models must share one vocabulary)",
             first.name, other.name, field, first_value, first.name, other_value, other.name);
}

}  // namespace

Ensemble::Ensemble(const nn::Transformer& model) : models_{&model}, weights_{1.0} {}

void Ensemble::check_weights(const std::vector<double>& weights, size_t models, const std::string& what) {
  HEED_CHECK(weights.empty() || weights.size() == models,
             "{}: {} weights for {} models; give one weight per model, in the models' order", what, weights.size(),
             models);
  double total = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    HEED_CHECK(std::isfinite(weights[i]) && weights[i] > 0,
               "{}: weight {} is {}; weights must be positive finite numbers", what, i + 1, weights[i]);
    total += weights[i];
  }
  HEED_CHECK(std::isfinite(total), "{}: the weights overflow when added; use smaller numbers in the same ratios",
             what);
}

Ensemble::Ensemble(const std::vector<Member>& members, const std::vector<double>& weights) {
  HEED_CHECK(!members.empty(), "an ensemble needs at least one model");
  HEED_CHECK(static_cast<int64_t>(members.size()) <= ops::kMaxTopKModels, "an ensemble holds at most {} models, got {}",
             ops::kMaxTopKModels, members.size());
  check_weights(weights, members.size(), "ensemble weights");
  const nn::ModelConfig& first = members.front().model->config();
  for (size_t i = 1; i < members.size(); ++i) {
    const nn::ModelConfig& c = members[i].model->config();
    check_same(members.front(), members[i], "vocab_size", first.vocab_size, c.vocab_size);
    check_same(members.front(), members[i], "pad_id", first.pad_id, c.pad_id);
    check_same(members.front(), members[i], "eos_id", first.eos_id, c.eos_id);
    check_same(members.front(), members[i], "decoder_start_id", first.decoder_start_id, c.decoder_start_id);
  }
  double total = 0;
  for (double w : weights) total += w;
  for (size_t i = 0; i < members.size(); ++i) {
    models_.push_back(members[i].model);
    weights_.push_back(weights.empty() ? 1.0 / static_cast<double>(members.size()) : weights[i] / total);
  }
}

}  // namespace heed::decode
