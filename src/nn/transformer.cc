#include "heed/nn/transformer.h"

#include <cmath>

#include "heed/ops/elementwise.h"

namespace heed::nn {

using autograd::add;

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

  const ops::Activation act = ops::parse_activation(config.activation);
  const float eps = config.layer_norm_eps;
  auto attn = [&](const std::string& name) {
    return MultiHeadAttention(store, name, d, config.heads, config.attention_dropout);
  };
  auto ffn = [&](const std::string& prefix) {
    return FeedForward(store, prefix, d, config.ffn_dim, act, config.activation_dropout);
  };
  for (int64_t i = 0; i < config.encoder_layers; ++i) {
    const std::string p = fmt::format("encoder.layers.{}", i);
    EncoderLayer layer;
    layer.self_attn = attn(p + ".self_attn");
    layer.self_attn_layer_norm = LayerNorm(store, p + ".self_attn_layer_norm", d, eps);
    layer.ffn = ffn(p);
    layer.final_layer_norm = LayerNorm(store, p + ".final_layer_norm", d, eps);
    encoder_.push_back(std::move(layer));
  }
  for (int64_t i = 0; i < config.decoder_layers; ++i) {
    const std::string p = fmt::format("decoder.layers.{}", i);
    DecoderLayer layer;
    layer.self_attn = attn(p + ".self_attn");
    layer.self_attn_layer_norm = LayerNorm(store, p + ".self_attn_layer_norm", d, eps);
    layer.encoder_attn = attn(p + ".encoder_attn");
    layer.encoder_attn_layer_norm = LayerNorm(store, p + ".encoder_attn_layer_norm", d, eps);
    layer.ffn = ffn(p);
    layer.final_layer_norm = LayerNorm(store, p + ".final_layer_norm", d, eps);
    decoder_.push_back(std::move(layer));
  }
  if (pre_norm_) {
    encoder_norm_ = LayerNorm(store, "encoder.layer_norm", d, eps);
    decoder_norm_ = LayerNorm(store, "decoder.layer_norm", d, eps);
  }
}

Variable Transformer::embed(const Tensor& ids, const Variable& table, ForwardContext& ctx) const {
  const float scale = config_.scale_embedding ? std::sqrt(static_cast<float>(config_.d_model)) : 1.0f;
  Variable x = autograd::embedding(ids.to(device()), table, scale, config_.pad_id);
  const int64_t length = ids.size(1);
  if (!positions_.defined() || positions_.size(0) < length || positions_.device() != device())
    positions_ = sinusoidal_positions(std::max<int64_t>(length, 256), config_.d_model).to(device());
  x = autograd::add_constant(x, positions_.narrow(0, 0, length));
  return ctx.dropout(autograd::cast(x, ctx.compute), config_.dropout);
}

template <typename F>
Variable Transformer::residual(const Variable& x, const LayerNorm& norm, ForwardContext& ctx, F&& f) const {
  if (pre_norm_) return add(x, ctx.dropout(f(norm(x)), config_.dropout));
  return norm(add(x, ctx.dropout(f(x), config_.dropout)));
}

Variable Transformer::encode(const Tensor& src, Tensor* src_padding, ForwardContext& ctx) const {
  // U8 mask: 1 where the source is padding.
  Tensor mask = Tensor::empty(src.shape(), DType::U8);
  const int32_t* ids = src.data<int32_t>();
  uint8_t* m = mask.data<uint8_t>();
  for (int64_t i = 0; i < src.numel(); ++i) m[i] = ids[i] == config_.pad_id;
  mask = mask.to(device());
  *src_padding = mask;

  Variable x = embed(src, src_embed_, ctx);
  for (const EncoderLayer& layer : encoder_) {
    x = residual(x, layer.self_attn_layer_norm, ctx,
                 [&](const Variable& h) { return layer.self_attn(h, h, mask, false, ctx); });
    x = residual(x, layer.final_layer_norm, ctx, [&](const Variable& h) { return layer.ffn(h, ctx); });
  }
  return pre_norm_ ? encoder_norm_(x) : x;
}

Variable Transformer::decode(const Tensor& tgt_in, const Variable& memory, const Tensor& src_padding,
                             ForwardContext& ctx) const {
  Variable y = embed(tgt_in, tgt_embed_, ctx);
  for (const DecoderLayer& layer : decoder_) {
    y = residual(y, layer.self_attn_layer_norm, ctx,
                 [&](const Variable& h) { return layer.self_attn(h, h, Tensor(), true, ctx); });
    y = residual(y, layer.encoder_attn_layer_norm, ctx,
                 [&](const Variable& h) { return layer.encoder_attn(h, memory, src_padding, false, ctx); });
    y = residual(y, layer.final_layer_norm, ctx, [&](const Variable& h) { return layer.ffn(h, ctx); });
  }
  return pre_norm_ ? decoder_norm_(y) : y;
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
  autograd::CrossEntropy ce = autograd::cross_entropy(logits(flat), batch.tgt_out.reshape({-1}).to(device()), config_.pad_id,
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
