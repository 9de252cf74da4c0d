// The encoder-decoder Transformer of docs/model.md.
#pragma once

#include <vector>

#include "heed/data/batch.h"
#include "heed/nn/model_config.h"
#include "heed/nn/modules.h"

namespace heed::nn {

struct LossResult {
  autograd::Variable loss;  // 0-d; label-smoothed cross-entropy divided by the normaliser
  double nll_sum = 0;       // summed negative log-likelihood, for perplexity
  int64_t tokens = 0;       // target tokens counted
};

class IncrementalDecoder;

class Transformer {
 public:
  // Creates the parameters in `store`, initialised from the store's seed.
  Transformer(const ModelConfig& config, ParameterStore& store);

  const ModelConfig& config() const { return config_; }

  // The device of the parameters. Token ids come in on the CPU (they are checked there) and go to this
  // device; the outputs live on it.
  Device device() const { return src_embed_.value().device(); }

  // Encoder output [B, Ls, d]. src_padding receives the U8 [B, Ls] key-padding mask.
  Variable encode(const Tensor& src, Tensor* src_padding, ForwardContext& ctx) const;
  // Decoder output before the vocabulary projection, [B, Lt, d].
  Variable decode(const Tensor& tgt_in, const Variable& memory, const Tensor& src_padding, ForwardContext& ctx) const;
  // [N, d] -> [N, V].
  Variable logits(const Variable& hidden) const;
  // Label-smoothed cross-entropy over non-pad target tokens; normalizer <= 0 averages over them.
  LossResult loss(const data::Batch& batch, ForwardContext& ctx, double normalizer = 0) const;

 private:
  // Runs the decoder layers one position at a time with cached keys and values (incremental_decoder.h).
  friend class IncrementalDecoder;

  struct EncoderLayer {
    MultiHeadAttention self_attn;
    LayerNorm self_attn_layer_norm, final_layer_norm;
    FeedForward ffn;
  };
  struct DecoderLayer {
    MultiHeadAttention self_attn, encoder_attn;
    LayerNorm self_attn_layer_norm, encoder_attn_layer_norm, final_layer_norm;
    FeedForward ffn;
  };

  Variable embed(const Tensor& ids, const Variable& table, ForwardContext& ctx) const;
  // One residual block: post-norm x = LN(x + drop(f(x))), pre-norm x = x + drop(f(LN(x))).
  template <typename F>
  Variable residual(const Variable& x, const LayerNorm& norm, ForwardContext& ctx, F&& f) const;

  ModelConfig config_;
  Variable src_embed_, tgt_embed_, out_embed_, final_logits_bias_;
  std::vector<EncoderLayer> encoder_;
  std::vector<DecoderLayer> decoder_;
  LayerNorm encoder_norm_, decoder_norm_;  // pre-norm only
  bool pre_norm_;
  mutable Tensor positions_;  // sinusoidal table on device(), grown to the longest sequence seen
};

// Checks a batch against the model: int32, matching shapes, ids inside the vocabulary.
void validate_batch(const data::Batch& batch, const ModelConfig& config);

}  // namespace heed::nn
