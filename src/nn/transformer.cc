#include "heed/nn/transformer.h"

#include <cmath>

#include "heed/ops/elementwise.h"

namespace heed::nn {

namespace {

MultiHeadAttention attention(ParameterStore& store, const std::string& name, const ModelConfig& config) {
  return MultiHeadAttention(store, name, config.d_model, config.heads, config.attention_dropout);
}

FeedForward feed_forward(ParameterStore& store, const std::string& prefix, const ModelConfig& config) {
  return FeedForward(store, prefix, config.d_model, config.ffn_dim, ops::parse_activation(config.activation),
                     config.activation_dropout);
}

LayerNorm layer_norm(ParameterStore& store, const std::string& name, const ModelConfig& config) {
  return LayerNorm(store, name, config.d_model, config.layer_norm_eps);
}

}  // namespace

// The members are initialised in declaration order, which is the order the parameters are created in and
// so the order they draw from the store's seed.
EncoderLayer::EncoderLayer(ParameterStore& store, const std::string& prefix, const ModelConfig& config)
    : residual_{config.norm == "pre", config.dropout},
      self_attn_(attention(store, prefix + ".self_attn", config)),
      self_attn_layer_norm_(layer_norm(store, prefix + ".self_attn_layer_norm", config)),
      ffn_(feed_forward(store, prefix, config)),
      final_layer_norm_(layer_norm(store, prefix + ".final_layer_norm", config)) {}

Variable EncoderLayer::operator()(const Variable& x, const Tensor& padding, ForwardContext& ctx,
                                  Tensor* self_attention) const {
  const Variable h = residual_(x, self_attn_layer_norm_, ctx, [&](const Variable& in) {
    return self_attn_(in, in, padding, false, ctx, nullptr, self_attention);
  });
  return residual_(h, final_layer_norm_, ctx, [&](const Variable& in) { return ffn_(in, ctx); });
}

DecoderLayer::DecoderLayer(ParameterStore& store, const std::string& prefix, const ModelConfig& config)
    : residual_{config.norm == "pre", config.dropout},
      self_attn_(attention(store, prefix + ".self_attn", config)),
      self_attn_layer_norm_(layer_norm(store, prefix + ".self_attn_layer_norm", config)),
      encoder_attn_(attention(store, prefix + ".encoder_attn", config)),
      encoder_attn_layer_norm_(layer_norm(store, prefix + ".encoder_attn_layer_norm", config)),
      ffn_(feed_forward(store, prefix, config)),
      final_layer_norm_(layer_norm(store, prefix + ".final_layer_norm", config)) {}

Variable DecoderLayer::operator()(const Variable& y, const Variable& memory, const Tensor& memory_padding,
                                  ForwardContext& ctx, const DecoderLayerCache* cache,
                                  Tensor* encoder_attention) const {
  Variable h = residual_(y, self_attn_layer_norm_, ctx, [&](const Variable& in) {
    return self_attn_(in, in, Tensor(), true, ctx, cache ? &cache->self_attn : nullptr);
  });
  h = residual_(h, encoder_attn_layer_norm_, ctx, [&](const Variable& in) {
    return encoder_attn_(in, memory, memory_padding, false, ctx, cache ? &cache->encoder_attn : nullptr,
                         encoder_attention);
  });
  return residual_(h, final_layer_norm_, ctx, [&](const Variable& in) { return ffn_(in, ctx); });
}

void DecoderLayer::cache_memory(const Variable& memory, const DecoderLayerCache& cache) const {
  encoder_attn_.cache_keys_values(memory, cache.encoder_attn);
}

Transformer::Transformer(const ModelConfig& config, ParameterStore& store)
    : config_(config), pre_norm_(config.norm == "pre") {
  config.validate();
  const int64_t V = config.vocab_size, d = config.d_model;
  if (config.tie_embeddings == "all") {
    src_embed_ = tgt_embed_ = out_embed_ = store.create("shared.weight", {V, d}, Init::EmbeddingUniform);
  } else {
    src_embed_ = store.create("encoder.embed_tokens.weight", {V, d}, Init::EmbeddingUniform);
    tgt_embed_ = out_embed_ = store.create("decoder.embed_tokens.weight", {V, d}, Init::EmbeddingUniform);
    if (config.tie_embeddings == "none") out_embed_ = store.create("lm_head.weight", {V, d}, Init::EmbeddingUniform);
  }
  if (config.final_logits_bias) final_logits_bias_ = store.create("final_logits_bias", {V}, Init::Zeros);

  for (int64_t i = 0; i < config.encoder_layers; ++i)
    encoder_.emplace_back(store, fmt::format("encoder.layers.{}", i), config);
  for (int64_t i = 0; i < config.decoder_layers; ++i)
    decoder_.emplace_back(store, fmt::format("decoder.layers.{}", i), config);
  if (pre_norm_) {
    encoder_norm_ = layer_norm(store, "encoder.layer_norm", config);
    decoder_norm_ = layer_norm(store, "decoder.layer_norm", config);
  }
}

void AttentionProbe::check(const ModelConfig& config) const {
  const bool encoder = kind == Kind::EncoderSelf;
  const char* stack = encoder ? "encoder" : "decoder";
  const int64_t layers = encoder ? config.encoder_layers : config.decoder_layers;
  HEED_CHECK(layer >= 0 && layer < layers, "attention probe: {} layer {} does not exist; the {} has layers 0 to {}",
             stack, layer, stack, layers - 1);
}

Variable Transformer::embed(const Tensor& ids, const Variable& table, int64_t first_position,
                            ForwardContext& ctx) const {
  const float scale = config_.scale_embedding ? std::sqrt(static_cast<float>(config_.d_model)) : 1.0f;
  // Ids from the host stay there: the op checks them (and its backward groups them) without a read-back.
  Variable x = autograd::embedding(ids, table, scale, config_.pad_id);
  const int64_t end = first_position + ids.size(1);
  if (!positions_.defined() || positions_.size(0) < end || positions_.device() != device())
    positions_ = sinusoidal_positions(std::max<int64_t>(2 * end, 256), config_.d_model).to(device());
  x = autograd::add_constant(x, positions_.narrow(0, first_position, ids.size(1)));
  return ctx.dropout(autograd::cast(x, ctx.compute), config_.dropout);
}

Variable Transformer::encode(const Tensor& src, Tensor* src_padding, ForwardContext& ctx,
                             AttentionProbe* probe) const {
  // U8 mask: 1 where the source is padding.
  Tensor mask = Tensor::empty(src.shape(), DType::U8);
  const int32_t* ids = src.data<int32_t>();
  uint8_t* m = mask.data<uint8_t>();
  for (int64_t i = 0; i < src.numel(); ++i) m[i] = ids[i] == config_.pad_id;
  mask = mask.to(device());
  *src_padding = mask;

  Variable x = embed(src, src_embed_, 0, ctx);
  if (probe) probe->check(config_);
  for (size_t i = 0; i < encoder_.size(); ++i)
    x = encoder_[i](x, mask, ctx, AttentionProbe::slot(probe, AttentionProbe::Kind::EncoderSelf, i));
  return pre_norm_ ? encoder_norm_(x) : x;
}

Variable Transformer::decode(const Tensor& tgt_in, const Variable& memory, const Tensor& src_padding,
                             ForwardContext& ctx, std::span<const DecoderLayerCache> caches,
                             int64_t first_position, AttentionProbe* probe) const {
  HEED_CHECK(caches.empty() || caches.size() == decoder_.size(), "decode: {} caches for {} decoder layers",
             caches.size(), decoder_.size());
  Variable y = embed(tgt_in, tgt_embed_, first_position, ctx);
  if (probe) probe->check(config_);
  for (size_t i = 0; i < decoder_.size(); ++i)
    y = decoder_[i](y, memory, src_padding, ctx, caches.empty() ? nullptr : &caches[i],
                    AttentionProbe::slot(probe, AttentionProbe::Kind::DecoderCross, i));
  return pre_norm_ ? decoder_norm_(y) : y;
}

void Transformer::cache_memory(const Variable& memory, std::span<const DecoderLayerCache> caches) const {
  HEED_CHECK(caches.size() == decoder_.size(), "cache_memory: {} caches for {} decoder layers", caches.size(),
             decoder_.size());
  for (size_t i = 0; i < decoder_.size(); ++i) decoder_[i].cache_memory(memory, caches[i]);
}

Variable Transformer::logits(const Variable& hidden) const {
  const DType t = hidden.value().dtype();
  return autograd::linear(hidden, autograd::cast(out_embed_, t),
                          final_logits_bias_.defined() ? autograd::cast(final_logits_bias_, t) : final_logits_bias_);
}

LossResult Transformer::loss(const data::Batch& batch, ForwardContext& ctx, double normalizer) const {
  validate_batch(batch, config_);
  Tensor src_padding;
  Variable memory = encode(batch.src, &src_padding, ctx);
  Variable hidden = decode(batch.tgt_in, memory, src_padding, ctx);
  Variable flat = autograd::reshape(hidden, {-1, config_.d_model});
  autograd::CrossEntropy ce = autograd::cross_entropy(logits(flat), batch.tgt_out.reshape({-1}), config_.pad_id,
                                                      config_.label_smoothing, normalizer);
  return {ce.loss, ce.nll_sum, ce.count};
}

void validate_batch(const data::Batch& batch, const ModelConfig& config) {
  auto check_ids = [&](const Tensor& t, const char* name) {
    HEED_CHECK(t.defined() && t.dtype() == DType::I32 && t.dim() == 2, "batch.{} must be int32 [batch, length]",
               name);
    HEED_CHECK(t.size(0) > 0 && t.size(1) > 0, "batch.{} is empty (shape {})", name, shape_str(t.shape()));
    const int32_t* p = t.contiguous().data<int32_t>();
    for (int64_t i = 0; i < t.numel(); ++i)
      HEED_CHECK(p[i] >= 0 && p[i] < config.vocab_size, "batch.{}[{}][{}] = {} is outside the vocabulary [0, {})",
                 name, i / t.size(1), i % t.size(1), p[i], config.vocab_size);
  };
  check_ids(batch.src, "src");
  check_ids(batch.tgt_in, "tgt_in");
  check_ids(batch.tgt_out, "tgt_out");
  HEED_CHECK(batch.tgt_in.shape() == batch.tgt_out.shape(), "batch.tgt_in {} and batch.tgt_out {} differ in shape",
             shape_str(batch.tgt_in.shape()), shape_str(batch.tgt_out.shape()));
  HEED_CHECK(batch.src.size(0) == batch.tgt_in.size(0), "batch.src has {} rows but batch.tgt_in has {}",
             batch.src.size(0), batch.tgt_in.size(0));
}

}  // namespace heed::nn
