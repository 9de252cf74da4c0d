// The building blocks of the Transformer. A module holds handles to its parameters (created in a
// ParameterStore under the module's name prefix) and applies them with the differentiable functions.
#pragma once

#include "heed/ops/attention.h"

#include <string>

#include "heed/autograd/functions.h"
#include "heed/nn/parameters.h"

namespace heed::nn {

// What a forward pass needs beyond its inputs: whether dropout is on, the Philox key of each dropout
// site, and the type activations are computed in. Sites are numbered in the order the forward pass reaches
// them, so a replay of the same step draws the same masks.
//
// Mixed precision: with `compute` BF16 or F16, the embeddings are converted to it and every later
// activation stays in it; each Linear multiplies with a 16-bit copy of its fp32 weight (autograd::cast),
// so weight gradients come back and accumulate in fp32. LayerNorm keeps fp32 parameters and statistics,
// softmax and cross-entropy compute in fp32 internally.
struct ForwardContext {
  bool training = false;
  DType compute = DType::F32;
  ops::AttentionBackend attention = ops::AttentionBackend::Fused;  // on a CUDA device (training.attention)
  uint64_t seed = 0;
  uint64_t step = 0;
  uint32_t next_site = 0;

  RandomKey next_key() { return RandomKey{seed, step, next_site++}; }
  Variable dropout(const Variable& x, float p) { return training && p > 0 ? autograd::dropout(x, p, next_key()) : x; }
  // residual + dropout(x, p), in one pass when training.
  Variable dropout_add(const Variable& residual, const Variable& x, float p) {
    return training && p > 0 ? autograd::dropout_add(residual, x, p, next_key()) : autograd::add(residual, x);
  }
};

// What a precision option ("fp32", "bf16", "fp16", or "auto": bf16 on a GPU, fp32 on the CPU) means for a
// model on `device`.
struct Precision {
  DType compute = DType::F32;  // the activations' type, and on a GPU the GEMMs' inputs'
  // bf16 on the CPU: activations stay fp32 and the matrix products take bf16 inputs with fp32 accumulation
  // (ops::CpuBf16GemmScope), as the CPU's other ops compute in fp32 only.
  bool cpu_bf16_gemm = false;
};
// The GPU attention kernel computes in 16 bits only, the CPU's GEMMs in fp32 or (with AVX512_BF16) bf16;
// anything else is an error naming `option`.
Precision resolve_precision(const std::string& precision, Device device, const std::string& option);

class Linear {
 public:
  Linear() = default;
  Linear(ParameterStore& store, const std::string& name, int64_t in, int64_t out, bool bias = true);
  // Runs in x's type: fp32 weights are converted for 16-bit inputs (see ForwardContext).
  Variable operator()(const Variable& x) const;
  // relu(this(x)), fused into the product (autograd::linear_relu); the layer must have a bias. With
  // ctx's dropout p after the ReLU when training (autograd::linear_relu_dropout).
  Variable with_relu(const Variable& x) const;
  Variable with_relu_dropout(const Variable& x, float p, ForwardContext& ctx) const;
  // The weight and bias in type t (the 16-bit copies in a training step), for fused blocks.
  Variable weight_as(DType t) const { return autograd::cast(weight_, t); }
  Variable bias_as(DType t) const { return autograd::cast(bias_, t); }

 private:
  Variable weight_, bias_;
};

class LayerNorm {
 public:
  LayerNorm() = default;
  LayerNorm(ParameterStore& store, const std::string& name, int64_t dim, float eps);
  Variable operator()(const Variable& x) const { return autograd::layer_norm(x, gamma_, beta_, eps_); }

 private:
  Variable gamma_, beta_;
  float eps_ = 1e-5f;
};

// Keys and values an attention has already projected, for incremental decoding: [B, L, H, Dh] views into
// buffers that the caller owns (IncrementalDecoder grows and reorders them), read and written in place.
struct KeyValueCache {
  Tensor keys, values;
};

class MultiHeadAttention {
 public:
  MultiHeadAttention() = default;
  MultiHeadAttention(ParameterStore& store, const std::string& name, int64_t d_model, int64_t heads, float dropout);
  // x_q: [B, Lq, d], x_kv: [B, Lk, d]; key_padding: optional U8 [B, Lk] (Lk: the cache's length with a cache).
  // With a cache (inference only): x_q is one new position [B, 1, d]. If x_kv is defined, its keys and values
  // are first written into the cache's last Lk positions (self-attention: the new position's own); then the
  // query attends over every cached position, which it may all see, so `causal` needs no mask.
  // `probabilities` (inference only), when given, receives the attention probabilities: fp32 [B, H, Lq, Lk]
  // on the CPU (ops::attention_probabilities); null costs nothing.
  Variable operator()(const Variable& x_q, const Variable& x_kv, const Tensor& key_padding, bool causal,
                      ForwardContext& ctx, const KeyValueCache* cache = nullptr,
                      Tensor* probabilities = nullptr) const;
  // Writes the keys and values of x_kv [B, Lk, d] into the cache's last Lk positions.
  void cache_keys_values(const Variable& x_kv, const KeyValueCache& cache) const;

 private:
  Variable attend_cached(const Variable& x_q, const KeyValueCache& cache, const Tensor& key_padding,
                         ForwardContext& ctx, Tensor* probabilities) const;
  // The uncached path with its probabilities: the op called directly, since autograd::attention keeps lse.
  Variable attend_recording(const Variable& x_q, const Variable& x_kv, const ops::AttentionOptions& options,
                            Tensor* probabilities) const;

  Linear q_proj_, k_proj_, v_proj_, out_proj_;
  int64_t heads_ = 1;
  float dropout_ = 0.0f;
};

class FeedForward {
 public:
  FeedForward() = default;
  FeedForward(ParameterStore& store, const std::string& prefix, int64_t d_model, int64_t ffn_dim,
              ops::Activation act, float activation_dropout);
  Variable operator()(const Variable& x, ForwardContext& ctx) const;

 private:
  Linear fc1_, fc2_;
  ops::Activation act_ = ops::Activation::ReLU;
  float activation_dropout_ = 0.0f;
};

// The Marian/HF sinusoidal position table [length, d] (docs/model.md).
Tensor sinusoidal_positions(int64_t length, int64_t d);

}  // namespace heed::nn
