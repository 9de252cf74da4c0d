// The encoder-decoder Transformer of docs/model.md.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "heed/data/batch.h"
#include "heed/nn/model_config.h"
#include "heed/nn/modules.h"

namespace heed::nn {

struct LossResult {
  autograd::Variable loss;  // 0-d; label-smoothed cross-entropy divided by the normaliser
  Tensor nll_sum;           // 0-d, on the model's device: summed negative log-likelihood, for perplexity
  int64_t tokens = 0;       // target tokens counted
};

// How a sublayer joins the residual stream: post-norm x = LN(x + drop(f(x))), pre-norm x = x + drop(f(LN(x))).
struct Residual {
  bool pre_norm = false;
  float dropout = 0.0f;

  template <typename F>
  Variable operator()(const Variable& x, const LayerNorm& norm, ForwardContext& ctx, F&& f) const {
    if (pre_norm) return ctx.dropout_add(x, f(norm(x)), dropout);
    return norm(ctx.dropout_add(x, f(x), dropout));
  }
};

// Asks an inference forward pass for one attention's probabilities (heed translate --attention-plots,
// --alignment): the self-attention of one encoder layer, or the cross-attention of one decoder layer.
struct AttentionProbe {
  enum class Kind { EncoderSelf, DecoderCross };
  Kind kind = Kind::DecoderCross;
  int64_t layer = 0;     // 0-based, of the encoder or the decoder as `kind` says
  Tensor probabilities;  // the result: fp32 [B, H, Lq, Lk] on the CPU (MultiHeadAttention)

  // Refuses a layer that the model does not have, naming the range.
  void check(const ModelConfig& config) const;
  // The probabilities slot for layer `index` of `kind`, or null when this probe does not ask for it.
  static Tensor* slot(AttentionProbe* probe, Kind kind, size_t index) {
    return probe && probe->kind == kind && probe->layer == static_cast<int64_t>(index) ? &probe->probabilities
                                                                                      : nullptr;
  }
};

class EncoderLayer {
 public:
  // Creates the parameters under `prefix` (encoder.layers.<i>).
  EncoderLayer(ParameterStore& store, const std::string& prefix, const ModelConfig& config);
  // x: [B, Ls, d]; padding: U8 [B, Ls], 1 at padding. `self_attention`: see MultiHeadAttention.
  Variable operator()(const Variable& x, const Tensor& padding, ForwardContext& ctx,
                      Tensor* self_attention = nullptr) const;

 private:
  Residual residual_;
  MultiHeadAttention self_attn_;
  LayerNorm self_attn_layer_norm_;
  FeedForward ffn_;
  LayerNorm final_layer_norm_;
};

// What one decoder layer keeps between incremental decoding steps (see MultiHeadAttention): the keys and
// values of the target positions so far, and those of the encoder output.
struct DecoderLayerCache {
  KeyValueCache self_attn, encoder_attn;
};

// The decoder block, the same for training and decoding. Without a cache it runs teacher-forced over the
// whole target (causal self-attention); with one, it runs one new position over the cached keys and values.
class DecoderLayer {
 public:
  // Creates the parameters under `prefix` (decoder.layers.<i>).
  DecoderLayer(ParameterStore& store, const std::string& prefix, const ModelConfig& config);
  // y: [B, Lt, d]; memory: the encoder output [B, Ls, d], undefined with a cache (cache_memory has already
  // projected it); memory_padding: U8 [B, Ls], 1 at padding. `encoder_attention`: see MultiHeadAttention.
  Variable operator()(const Variable& y, const Variable& memory, const Tensor& memory_padding, ForwardContext& ctx,
                      const DecoderLayerCache* cache = nullptr, Tensor* encoder_attention = nullptr) const;
  // Writes the cross-attention keys and values of memory [B, Ls, d] into cache.encoder_attn.
  void cache_memory(const Variable& memory, const DecoderLayerCache& cache) const;

 private:
  Residual residual_;
  MultiHeadAttention self_attn_;
  LayerNorm self_attn_layer_norm_;
  MultiHeadAttention encoder_attn_;
  LayerNorm encoder_attn_layer_norm_;
  FeedForward ffn_;
  LayerNorm final_layer_norm_;
};

class Transformer {
 public:
  // Creates the parameters in `store`, initialised from the store's seed.
  Transformer(const ModelConfig& config, ParameterStore& store);

  const ModelConfig& config() const { return config_; }

  // The device of the parameters. Token ids come in on the CPU (they are checked there) and go to this
  // device; the outputs live on it.
  Device device() const { return src_embed_.value().device(); }

  // Encoder output [B, Ls, d]. src_padding receives the U8 [B, Ls] key-padding mask. A probe of kind
  // EncoderSelf (inference only) receives that layer's self-attention probabilities; null costs nothing.
  Variable encode(const Tensor& src, Tensor* src_padding, ForwardContext& ctx, AttentionProbe* probe = nullptr) const;
  // Decoder output before the vocabulary projection, [B, Lt, d], for target tokens whose first sits at
  // position `first_position`. Training passes no caches; incremental decoding (incremental_decoder.h)
  // passes one per decoder layer, one position at a time, after cache_memory. A probe of kind DecoderCross
  // (inference only) receives that layer's cross-attention probabilities; null costs nothing.
  Variable decode(const Tensor& tgt_in, const Variable& memory, const Tensor& src_padding, ForwardContext& ctx,
                  std::span<const DecoderLayerCache> caches = {}, int64_t first_position = 0,
                  AttentionProbe* probe = nullptr) const;
  // Writes each decoder layer's cross-attention keys and values of memory [B, Ls, d] into its cache.
  void cache_memory(const Variable& memory, std::span<const DecoderLayerCache> caches) const;
  // [N, d] -> [N, V].
  Variable logits(const Variable& hidden) const;
  // Label-smoothed cross-entropy over non-pad target tokens; normalizer <= 0 averages over them.
  LossResult loss(const data::Batch& batch, ForwardContext& ctx, double normalizer = 0) const;

 private:
  // Token embeddings plus the positions [first_position, first_position + L), in the compute type.
  Variable embed(const Tensor& ids, const Variable& table, int64_t first_position, ForwardContext& ctx) const;

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
