// The hyper-parameters of Heed's encoder-decoder Transformer: the model.yaml of a model directory.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "heed/io/options.h"

namespace heed::nn {

struct ModelConfig {
  int64_t vocab_size = 8000;    // one vocabulary for source and target
  int64_t pad_id = 0;           // padding; its embedding row gets no gradient
  int64_t eos_id = 2;           // end of sentence
  int64_t decoder_start_id = 0; // first decoder input; defaults to pad_id, as in MarianMT
  int64_t d_model = 256;
  int64_t heads = 4;
  int64_t ffn_dim = 1024;
  int64_t encoder_layers = 3;
  int64_t decoder_layers = 3;
  std::string norm = "post";         // "post" (Vaswani, Marian) or "pre" (adds encoder/decoder.layer_norm)
  std::string activation = "relu";   // relu, gelu or swish
  std::string tie_embeddings = "all";  // all: one matrix for source, target and output;
                                       // target: decoder input and output share; none: three matrices
  bool final_logits_bias = false;    // a trainable [vocab] bias on the output logits
  bool scale_embedding = true;       // multiply embeddings by sqrt(d_model)
  float label_smoothing = 0.0f;
  float dropout = 0.1f;              // residual dropout
  float attention_dropout = 0.0f;    // dropout on attention probabilities
  float activation_dropout = 0.0f;   // dropout after the feed-forward activation
  float layer_norm_eps = 1e-5f;

  int64_t head_dim() const { return d_model / heads; }
  // Throws heed::Error naming the field when a value is out of range or inconsistent.
  void validate() const;
};

// Declares the model's options under `prefix` ("" for model.yaml, "model." in a training config) in any
// schema, bound through `model(root)`. The vocabulary fields come from the tokenizer when training, so a
// training config leaves them out.
template <typename Root, typename Access>
void declare_model_options(io::Options<Root>& o, const std::string& prefix, Access model, bool with_vocabulary) {
  auto field = [&](auto member) { return [model, member](Root& r) -> auto& { return model(r).*member; }; };
  using C = ModelConfig;
  if (with_vocabulary) {
    o.template add<int64_t>(prefix + "vocab_size", field(&C::vocab_size), "vocabulary size (source and target)")
        .positive();
    o.template add<int64_t>(prefix + "pad_id", field(&C::pad_id), "padding id; its embedding row gets no gradient")
        .at_least(0);
    o.template add<int64_t>(prefix + "eos_id", field(&C::eos_id), "end-of-sentence id").at_least(0);
    o.template add<int64_t>(prefix + "decoder_start_id", field(&C::decoder_start_id),
                            "first decoder input; pad_id when absent, as in MarianMT")
        .at_least(0);
  }
  o.template add<int64_t>(prefix + "d_model", field(&C::d_model), "model width").positive();
  o.template add<int64_t>(prefix + "heads", field(&C::heads), "attention heads; must divide d_model").positive();
  o.template add<int64_t>(prefix + "ffn_dim", field(&C::ffn_dim), "feed-forward inner width").positive();
  o.template add<int64_t>(prefix + "encoder_layers", field(&C::encoder_layers), "encoder layers").at_least(0);
  o.template add<int64_t>(prefix + "decoder_layers", field(&C::decoder_layers), "decoder layers").at_least(1);
  o.template add<std::string>(prefix + "norm", field(&C::norm),
                              "LayerNorm placement: post (Vaswani, Marian) or pre (adds a final norm per stack)")
      .one_of({"post", "pre"});
  o.template add<std::string>(prefix + "activation", field(&C::activation), "feed-forward activation")
      .one_of({"relu", "gelu", "swish", "silu"});
  o.template add<std::string>(prefix + "tie_embeddings", field(&C::tie_embeddings),
                              "all: source, target and output share one matrix; target: decoder input and output "
                              "share; none: three matrices")
      .one_of({"all", "target", "none"});
  o.template add<bool>(prefix + "final_logits_bias", field(&C::final_logits_bias),
                       "a trainable bias on the output logits");
  o.template add<bool>(prefix + "scale_embedding", field(&C::scale_embedding), "multiply embeddings by sqrt(d_model)");
  if (with_vocabulary) {  // in a training config, label smoothing belongs to the training group
    o.template add<float>(prefix + "label_smoothing", field(&C::label_smoothing), "label smoothing of the loss")
        .at_least(0).at_most(0.999);
  }
  o.template add<float>(prefix + "dropout", field(&C::dropout), "residual dropout").at_least(0).at_most(0.999);
  o.template add<float>(prefix + "attention_dropout", field(&C::attention_dropout),
                        "dropout on attention probabilities")
      .at_least(0).at_most(0.999);
  o.template add<float>(prefix + "activation_dropout", field(&C::activation_dropout),
                        "dropout after the feed-forward activation")
      .at_least(0).at_most(0.999);
  o.template add<float>(prefix + "layer_norm_eps", field(&C::layer_norm_eps), "LayerNorm epsilon").positive();
}

// A model.yaml key whose value differs between two configs, with both values as model.yaml writes them.
struct ConfigDifference {
  std::string key, first, second;
};
// Where `first` and `second` differ in what their weights compute, in model.yaml's order: every key but
// the dropouts and label smoothing, which only training reads.
std::vector<ConfigDifference> architecture_differences(const ModelConfig& first, const ModelConfig& second);

// model.yaml: every field above under its own name; unknown keys are errors with a did-you-mean.
ModelConfig load_model_config(const std::string& path);
void save_model_config(const ModelConfig& config, const std::string& path);

}  // namespace heed::nn
