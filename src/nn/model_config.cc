#include "heed/nn/model_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>

#include "heed/core/error.h"
#include "heed/io/atomic_file.h"

namespace heed::nn {

namespace {

const io::Options<ModelConfig>& model_yaml_options() {
  static const io::Options<ModelConfig> options = [] {
    io::Options<ModelConfig> o;
    declare_model_options(o, "", [](ModelConfig& c) -> ModelConfig& { return c; }, true);
    return o;
  }();
  return options;
}

}  // namespace

void ModelConfig::validate() const {
  HEED_CHECK(d_model % heads == 0, "model.d_model ({}) must be divisible by model.heads ({})", d_model, heads);
  HEED_CHECK(d_model % 2 == 0, "model.d_model must be even for the sinusoidal positions, got {}", d_model);
  HEED_CHECK(vocab_size > 0 && d_model > 0 && ffn_dim > 0 && encoder_layers >= 0 && decoder_layers >= 1,
             "model sizes must be positive (vocab_size {}, d_model {}, ffn_dim {}, layers {}+{})", vocab_size, d_model,
             ffn_dim, encoder_layers, decoder_layers);
  for (auto [v, key] : {std::pair{pad_id, "pad_id"}, {eos_id, "eos_id"}, {decoder_start_id, "decoder_start_id"}})
    HEED_CHECK(v >= 0 && v < vocab_size, "model.{} = {} is outside the vocabulary [0, {})", key, v, vocab_size);
  // Values set in code (the converters, tests) bypass the schema's checks, so repeat the ones that matter.
  HEED_CHECK(norm == "post" || norm == "pre", "model.norm must be 'post' or 'pre', got '{}'", norm);
  HEED_CHECK(activation == "relu" || activation == "gelu" || activation == "swish" || activation == "silu",
             "model.activation must be relu, gelu or swish, got '{}'", activation);
  HEED_CHECK(tie_embeddings == "all" || tie_embeddings == "target" || tie_embeddings == "none",
             "model.tie_embeddings must be all, target or none, got '{}'", tie_embeddings);
  for (auto [v, key] : {std::pair{dropout, "dropout"}, {attention_dropout, "attention_dropout"},
                        {activation_dropout, "activation_dropout"}, {label_smoothing, "label_smoothing"}})
    HEED_CHECK(v >= 0.0f && v < 1.0f, "model.{} must be in [0, 1), got {}", key, v);
  HEED_CHECK(layer_norm_eps > 0.0f, "model.layer_norm_eps must be positive, got {}", layer_norm_eps);
}

std::vector<ConfigDifference> architecture_differences(const ModelConfig& first, const ModelConfig& second) {
  static const std::vector<std::string> training_only = {"dropout", "attention_dropout", "activation_dropout",
                                                         "label_smoothing"};
  std::vector<ConfigDifference> differences;
  for (const io::OptionSpec& spec : model_yaml_options().specs()) {
    if (std::find(training_only.begin(), training_only.end(), spec.key) != training_only.end()) continue;
    std::string a = spec.get(&first), b = spec.get(&second);
    if (a != b) differences.push_back({spec.key, std::move(a), std::move(b)});
  }
  return differences;
}

ModelConfig load_model_config(const std::string& path) {
  ModelConfig config;
  model_yaml_options().load_yaml(config, path);
  // A model written before decoder_start_id was set explicitly starts decoding from pad, as MarianMT does.
  if (!YAML::LoadFile(path)["decoder_start_id"]) config.decoder_start_id = config.pad_id;
  try {
    config.validate();
  } catch (const Error& e) {
    HEED_CHECK(false, "{}: {}", path, e.what());
  }
  return config;
}

void save_model_config(const ModelConfig& config, const std::string& path) {
  io::write_file_atomic(path, model_yaml_options().dump(config));
}

}  // namespace heed::nn
