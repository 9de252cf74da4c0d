#include "heed/nn/model_config.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include "heed/core/error.h"

namespace heed::nn {

namespace {

// Each field once: its YAML key, how to read it and how to write it.
struct Field {
  std::function<void(ModelConfig&, const YAML::Node&)> read;
  std::function<void(const ModelConfig&, YAML::Emitter&)> write;
};

template <typename T>
Field field(T ModelConfig::*member) {
  return {[member](ModelConfig& c, const YAML::Node& n) { c.*member = n.as<T>(); },
          [member](const ModelConfig& c, YAML::Emitter& e) { e << c.*member; }};
}

const std::vector<std::pair<std::string, Field>>& fields() {
  static const std::vector<std::pair<std::string, Field>> all = {
      {"vocab_size", field(&ModelConfig::vocab_size)},
      {"pad_id", field(&ModelConfig::pad_id)},
      {"eos_id", field(&ModelConfig::eos_id)},
      {"decoder_start_id", field(&ModelConfig::decoder_start_id)},
      {"d_model", field(&ModelConfig::d_model)},
      {"heads", field(&ModelConfig::heads)},
      {"ffn_dim", field(&ModelConfig::ffn_dim)},
      {"encoder_layers", field(&ModelConfig::encoder_layers)},
      {"decoder_layers", field(&ModelConfig::decoder_layers)},
      {"norm", field(&ModelConfig::norm)},
      {"activation", field(&ModelConfig::activation)},
      {"tie_embeddings", field(&ModelConfig::tie_embeddings)},
      {"final_logits_bias", field(&ModelConfig::final_logits_bias)},
      {"scale_embedding", field(&ModelConfig::scale_embedding)},
      {"label_smoothing", field(&ModelConfig::label_smoothing)},
      {"dropout", field(&ModelConfig::dropout)},
      {"attention_dropout", field(&ModelConfig::attention_dropout)},
      {"activation_dropout", field(&ModelConfig::activation_dropout)},
      {"layer_norm_eps", field(&ModelConfig::layer_norm_eps)},
  };
  return all;
}

}  // namespace

void ModelConfig::validate() const {
  auto positive = [](int64_t v, const char* key) { HEED_CHECK(v > 0, "model.{} must be positive, got {}", key, v); };
  positive(vocab_size, "vocab_size");
  positive(d_model, "d_model");
  positive(heads, "heads");
  positive(ffn_dim, "ffn_dim");
  HEED_CHECK(encoder_layers >= 0 && decoder_layers >= 1, "model needs encoder_layers >= 0 and decoder_layers >= 1");
  HEED_CHECK(d_model % heads == 0, "model.d_model ({}) must be divisible by model.heads ({})", d_model, heads);
  HEED_CHECK(d_model % 2 == 0, "model.d_model must be even for the sinusoidal positions, got {}", d_model);
  for (auto [v, key] : {std::pair{pad_id, "pad_id"}, {eos_id, "eos_id"}, {decoder_start_id, "decoder_start_id"}})
    HEED_CHECK(v >= 0 && v < vocab_size, "model.{} = {} is outside the vocabulary [0, {})", key, v, vocab_size);
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

ModelConfig load_model_config(const std::string& path) {
  HEED_CHECK(std::filesystem::exists(path), "model config {} does not exist", path);
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    HEED_CHECK(false, "{}:{}: invalid YAML: {}", path, e.mark.line + 1, e.msg);
  }
  HEED_CHECK(root.IsMap(), "{}: expected a mapping of model hyper-parameters", path);
  ModelConfig config;
  std::map<std::string, const Field*> by_name;
  std::vector<std::string> known;
  for (const auto& [name, f] : fields()) {
    by_name[name] = &f;
    known.push_back(name);
  }
  for (const auto& kv : root) {
    const std::string key = kv.first.as<std::string>();
    auto it = by_name.find(key);
    HEED_CHECK(it != by_name.end(), "{}:{}: unknown model key '{}' (known: {})", path, kv.first.Mark().line + 1, key,
               fmt::join(known, ", "));
    try {
      it->second->read(config, kv.second);
    } catch (const YAML::Exception&) {
      HEED_CHECK(false, "{}:{}: model key '{}' has the wrong type", path, kv.second.Mark().line + 1, key);
    }
  }
  // A model written before decoder_start_id was set explicitly starts decoding from pad, as MarianMT does.
  if (!root["decoder_start_id"]) config.decoder_start_id = config.pad_id;
  try {
    config.validate();
  } catch (const Error& e) {
    HEED_CHECK(false, "{}: {}", path, e.what());
  }
  return config;
}

void save_model_config(const ModelConfig& config, const std::string& path) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  for (const auto& [name, f] : fields()) {
    out << YAML::Key << name << YAML::Value;
    f.write(config, out);
  }
  out << YAML::EndMap;
  std::ofstream file(path);
  HEED_CHECK(file.good(), "cannot write model config {}", path);
  file << out.c_str() << "\n";
  HEED_CHECK(file.good(), "error writing model config {}", path);
}

}  // namespace heed::nn
