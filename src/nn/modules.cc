#include "heed/nn/modules.h"

#include <cmath>

#include "heed/ops/matmul.h"

namespace heed::nn {

Linear::Linear(ParameterStore& store, const std::string& name, int64_t in, int64_t out, bool bias) {
  weight_ = store.create(name + ".weight", {out, in}, Init::XavierUniform);
  if (bias) bias_ = store.create(name + ".bias", {out}, Init::Zeros);
}

Precision resolve_precision(const std::string& precision, Device device, const std::string& option) {
  const std::string p = precision != "auto" ? precision : device.is_cpu() ? "fp32" : "bf16";
  HEED_CHECK(p == "fp32" || p == "bf16" || p == "fp16", "{} must be one of auto, fp32, bf16, fp16, got '{}'", option,
             precision);
  const DType named = p == "fp32" ? DType::F32 : p == "bf16" ? DType::BF16 : DType::F16;
  if (device.is_cpu()) {
    HEED_CHECK(named != DType::F16, "{} fp16: the CPU computes in fp32 or bf16; fp16 needs a GPU device (cuda, or sim)",
               option);
    if (named == DType::BF16) ops::require_cpu_bf16_gemm(option + " bf16");
    return {.compute = DType::F32, .cpu_bf16_gemm = named == DType::BF16};
  }
  HEED_CHECK(named != DType::F32, "{} fp32 on {}: the GPU attention kernel computes in bf16 or fp16; use bf16 or fp16",
             option, device.str());
  return {.compute = named};
}

Variable Linear::operator()(const Variable& x) const {
  const DType t = x.value().dtype();
  return autograd::linear(x, autograd::cast(weight_, t), bias_.defined() ? autograd::cast(bias_, t) : bias_);
}

Variable Linear::with_relu(const Variable& x) const {
  const DType t = x.value().dtype();
  return autograd::linear_relu(x, autograd::cast(weight_, t), autograd::cast(bias_, t));
}

Variable Linear::with_relu_dropout(const Variable& x, float p, ForwardContext& ctx) const {
  if (!ctx.training || p == 0.0f) return with_relu(x);
  const DType t = x.value().dtype();
  return autograd::linear_relu_dropout(x, autograd::cast(weight_, t), autograd::cast(bias_, t), p, ctx.next_key());
}

LayerNorm::LayerNorm(ParameterStore& store, const std::string& name, int64_t dim, float eps) : eps_(eps) {
  gamma_ = store.create(name + ".weight", {dim}, Init::Ones);
  beta_ = store.create(name + ".bias", {dim}, Init::Zeros);
}

MultiHeadAttention::MultiHeadAttention(ParameterStore& store, const std::string& name, int64_t d_model,
                                       int64_t heads, float dropout)
    : q_proj_(store, name + ".q_proj", d_model, d_model),
      k_proj_(store, name + ".k_proj", d_model, d_model),
      v_proj_(store, name + ".v_proj", d_model, d_model),
      out_proj_(store, name + ".out_proj", d_model, d_model),
      heads_(heads),
      dropout_(dropout) {}

Variable MultiHeadAttention::operator()(const Variable& x_q, const Variable& x_kv, const Tensor& key_padding,
                                        bool causal, ForwardContext& ctx, const KeyValueCache* cache,
                                        Tensor* probabilities) const {
  if (cache) {
    if (x_kv.defined()) cache_keys_values(x_kv, *cache);
    return attend_cached(x_q, *cache, key_padding, ctx, probabilities);
  }
  ops::AttentionOptions options;
  options.scale = 1.0f / std::sqrt(static_cast<float>(x_q.size(-1) / heads_));
  options.causal = causal;
  options.key_padding = key_padding;
  options.backend = ctx.attention;
  if (ctx.training && dropout_ > 0) {
    options.dropout_p = dropout_;
    options.dropout_key = ctx.next_key();
  }
  if (probabilities) return attend_recording(x_q, x_kv, options, probabilities);
  // The projections of one input as one GEMM: q, k and v for self-attention, k and v for cross-attention.
  const DType t = x_q.value().dtype();
  const Variable wk = k_proj_.weight_as(t), bk = k_proj_.bias_as(t), wv = v_proj_.weight_as(t), bv = v_proj_.bias_as(t);
  if (x_q.same(x_kv)) {
    const Variable qkv = autograd::linear_stacked(x_q, {q_proj_.weight_as(t), wk, wv}, {q_proj_.bias_as(t), bk, bv});
    return out_proj_(autograd::self_attention(qkv, heads_, options));
  }
  const Variable kv = autograd::linear_stacked(x_kv, {wk, wv}, {bk, bv});
  return out_proj_(autograd::cross_attention(q_proj_(x_q), kv, heads_, options));
}

void MultiHeadAttention::cache_keys_values(const Variable& x_kv, const KeyValueCache& cache) const {
  const int64_t batch = x_kv.size(0), length = x_kv.size(1), d = x_kv.size(-1);
  const Shape heads_shape{batch, length, heads_, d / heads_};
  const int64_t first = cache.keys.size(1) - length;
  HEED_CHECK(cache.keys.size(0) == batch && first >= 0,
             "attention cache {} cannot take the keys of {} new positions for {} rows", shape_str(cache.keys.shape()),
             length, batch);
  cache.keys.narrow(1, first, length).copy_from(k_proj_(x_kv).value().view(heads_shape));
  cache.values.narrow(1, first, length).copy_from(v_proj_(x_kv).value().view(heads_shape));
}

Variable MultiHeadAttention::attend_recording(const Variable& x_q, const Variable& x_kv,
                                              const ops::AttentionOptions& options, Tensor* probabilities) const {
  HEED_CHECK(!autograd::grad_enabled(), "recording attention probabilities is for inference: no gradients");
  const int64_t batch = x_q.size(0), length = x_q.size(1), d = x_q.size(-1);
  // [B, L, H*Dh] -> [B, H, L, Dh] views, as autograd::self_attention makes them.
  const auto split = [this](const Tensor& t) {
    return t.view({t.size(0), t.size(1), heads_, t.size(2) / heads_}).transpose(1, 2);
  };
  const Tensor q = split(q_proj_(x_q).value().contiguous()), k = split(k_proj_(x_kv).value().contiguous());
  const ops::AttentionResult result =
      ops::attention_forward(q, k, split(v_proj_(x_kv).value().contiguous()), options);
  *probabilities = ops::attention_probabilities(q, k, result.lse, options);
  return out_proj_(Variable(result.out.transpose(1, 2).reshape({batch, length, d})));
}

Variable MultiHeadAttention::attend_cached(const Variable& x_q, const KeyValueCache& cache,
                                           const Tensor& key_padding, ForwardContext& ctx,
                                           Tensor* probabilities) const {
  HEED_CHECK(!ctx.training && !autograd::grad_enabled(),
             "attention with a key/value cache is for inference: no training, no gradients");
  const int64_t rows = x_q.size(0), d = x_q.size(-1);
  HEED_CHECK(x_q.size(1) == 1, "attention with a key/value cache takes one new position, got {}", x_q.size(1));
  ops::AttentionOptions options;
  options.scale = 1.0f / std::sqrt(static_cast<float>(d / heads_));
  options.key_padding = key_padding;
  options.backend = ctx.attention;
  // [B, L, H, Dh] caches -> [B, H, L, Dh] views, read in place by the op.
  const Tensor q = q_proj_(x_q).value().view({rows, 1, heads_, d / heads_}).transpose(1, 2);
  const ops::AttentionResult result =
      ops::attention_forward(q, cache.keys.transpose(1, 2), cache.values.transpose(1, 2), options);
  if (probabilities) *probabilities = ops::attention_probabilities(q, cache.keys.transpose(1, 2), result.lse, options);
  return out_proj_(Variable(result.out.transpose(1, 2).reshape({rows, 1, d})));
}

FeedForward::FeedForward(ParameterStore& store, const std::string& prefix, int64_t d_model, int64_t ffn_dim,
                         ops::Activation act, float activation_dropout)
    : fc1_(store, prefix + ".fc1", d_model, ffn_dim),
      fc2_(store, prefix + ".fc2", ffn_dim, d_model),
      act_(act),
      activation_dropout_(activation_dropout) {}

Variable FeedForward::operator()(const Variable& x, ForwardContext& ctx) const {
  if (act_ == ops::Activation::ReLU) {
    if (ctx.training && activation_dropout_ > 0) return fc2_(fc1_.with_relu_dropout(x, activation_dropout_, ctx));
    const DType t = x.value().dtype();
    return autograd::feed_forward_relu(x, fc1_.weight_as(t), fc1_.bias_as(t), fc2_.weight_as(t), fc2_.bias_as(t));
  }
  return fc2_(ctx.dropout(autograd::activation(fc1_(x), act_), activation_dropout_));
}

Tensor sinusoidal_positions(int64_t length, int64_t d) {
  Tensor table = Tensor::empty({length, d});
  float* p = table.data<float>();
  const int64_t half = d / 2;
  for (int64_t pos = 0; pos < length; ++pos) {
    for (int64_t j = 0; j < half; ++j) {
      const double angle = static_cast<double>(pos) / std::pow(10000.0, 2.0 * static_cast<double>(j) / d);
      p[pos * d + j] = static_cast<float>(std::sin(angle));
      p[pos * d + half + j] = static_cast<float>(std::cos(angle));
    }
  }
  return table;
}

}  // namespace heed::nn
