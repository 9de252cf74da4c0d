// The hyper-parameters of Heed's encoder-decoder Transformer: the model.yaml of a model directory.
#pragma once

#include <cstdint>
#include <string>

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

// YAML: every field above under its own name; unknown keys are errors that list the known ones.
ModelConfig load_model_config(const std::string& path);
void save_model_config(const ModelConfig& config, const std::string& path);

}  // namespace heed::nn
