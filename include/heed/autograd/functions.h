// Differentiable functions over Variables: each calls an op's forward and records the op's backward.
#pragma once

#include <optional>
#include <vector>

#include "heed/autograd/variable.h"
#include "heed/ops/activation.h"
#include "heed/ops/attention.h"

namespace heed::autograd {

// x: [..., in], weight: [out, in] (as PyTorch), bias: [out] or undefined.
Variable linear(const Variable& x, const Variable& weight, const Variable& bias);
// relu(linear(x, weight, bias)) in one GEMM pass (cuBLASLt's RELU_BIAS epilogue on a GPU); bias required.
Variable linear_relu(const Variable& x, const Variable& weight, const Variable& bias);
// dropout(linear_relu(x, weight, bias), p, key), whose backward through the dropout and the ReLU is one
// pass (ops::activation_backward with the dropout's mask).
Variable linear_relu_dropout(const Variable& x, const Variable& weight, const Variable& bias, float p,
                             const RandomKey& key);
// linear(linear_relu(x, w1, b1), w2, b2), a feed-forward block without dropout between its layers, as one
// node: the forward keeps the ReLU's mask (a bit an element, from fc1's GEMM) instead of its output's
// slope, and the backward takes the ReLU's derivative in fc2's input-gradient GEMM (cuBLASLt's DRELU),
// where a pass of its own would read the [tokens, ffn] gradient and the ReLU's output and write it again.
Variable feed_forward_relu(const Variable& x, const Variable& w1, const Variable& b1, const Variable& w2,
                           const Variable& b2);
// Linear layers that read one input, as one GEMM (attention's q, k and v projections): their outputs side
// by side, [..., sum of their out], which self_attention and cross_attention read as column ranges. The
// weights go in as one [sum of out, in] matrix: a view when their values lie end to end in one buffer (the
// 16-bit copies of a CastParametersScope, ParameterCopies's layout), else a copy; so do the biases (all or
// none). The backward takes one input-gradient GEMM, and each layer's weight and bias gradients from its
// column range of the output gradient, written where they live as linear's are.
Variable linear_stacked(const Variable& x, const std::vector<Variable>& weights, const std::vector<Variable>& biases);
Variable add(const Variable& a, const Variable& b);
Variable mul(const Variable& a, const Variable& b);
// Sum of all elements, 0-d.
Variable sum(const Variable& x);
// a + c for a constant c that broadcasts to a's shape.
Variable add_constant(const Variable& a, const Tensor& c);
Variable activation(const Variable& x, ops::Activation act);
// Identity when p == 0 (no node is recorded).
Variable dropout(const Variable& x, float p, const RandomKey& key);
// residual + dropout(x, p, key), the two in one pass (ops::dropout_add_forward).
Variable dropout_add(const Variable& residual, const Variable& x, float p, const RandomKey& key);
// Returns scale * weight[ids], ids int32.
Variable embedding(const Tensor& ids, const Variable& weight, float scale, int64_t pad_id);
Variable layer_norm(const Variable& x, const Variable& gamma, const Variable& beta, float eps);
Variable softmax(const Variable& x);
Variable reshape(const Variable& x, const Shape& shape);
// x converted to `dtype` (x itself when it already has it); the gradient goes back converted to x's dtype.
// Mixed precision uses it to give the 16-bit GEMMs 16-bit copies of the fp32 master weights, whose
// gradients then accumulate in fp32. While a CastParametersScope of x's ParameterCopies in `dtype` lives
// on this thread, the copy is the one the scope made.
Variable cast(const Variable& x, DType dtype);

// 16-bit copies of fp32 parameters, kept between forward passes so that their memory (and the GPU path's
// table of it) stays put. A training step makes them all in one launch when its forward pass starts
// (CastParametersScope), where casting each weight as a layer reads it took a launch per weight.
class ParameterCopies {
 public:
  ParameterCopies() = default;
  // fp32 parameters; dtype BF16 or F16.
  // The copies lie in one buffer: first the matrices, then the other parameters, each group in the order
  // given, so that the weights of layers created one after another (attention's q, k and v), and their
  // biases, are adjacent and one GEMM reads them as one matrix (stacked_view).
  ParameterCopies(std::vector<Variable> params, DType dtype);

  // `parts` stacked along dimension 0, as a view of the buffer, when they are copies that lie end to end in
  // it; else undefined.
  Tensor stacked_view(const std::vector<Tensor>& parts) const;

 private:
  friend class CastParametersScope;
  std::vector<Variable> params_;
  Tensor buffer_;
  std::vector<Tensor> copies_;
  DType dtype_ = DType::BF16;
};

// While it lives, cast(p, copies' dtype) of a parameter p of `copies` returns p's copy as of the scope's
// start (ops::half_copies makes them all then), with cast's gradient. One scope at a time per thread; the
// parameters must not change while it lives (a forward and backward pass).
class CastParametersScope {
 public:
  explicit CastParametersScope(ParameterCopies& copies);
  ~CastParametersScope();
  CastParametersScope(const CastParametersScope&) = delete;
  CastParametersScope& operator=(const CastParametersScope&) = delete;

  // x's copy in the thread's active scope, or an undefined tensor when there is none for x in `dtype`.
  static Tensor copy_of(const Variable& x, DType dtype);
  // The active scope's ParameterCopies::stacked_view of `parts`; undefined without a scope.
  static Tensor stacked_view(const std::vector<Tensor>& parts);
};

// Multi-head attention core on projections side by side, as linear_stacked makes them: splits heads, runs
// the fused attention op, and merges heads again, without copies. The backward writes dq, dk and dv straight
// into the column ranges of one gradient per input, which linear_stacked's backward then takes whole.
// Self-attention: q, k and v are the column ranges [0, d), [d, 2d) and [2d, 3d) of qkv [B, L, 3d].
Variable self_attention(const Variable& qkv, int64_t heads, const ops::AttentionOptions& options);
// Cross-attention: q [B, Lq, d]; k and v are the ranges [0, d) and [d, 2d) of kv [B, Lk, 2d].
Variable cross_attention(const Variable& q, const Variable& kv, int64_t heads, const ops::AttentionOptions& options);

struct CrossEntropy {
  Variable loss;   // 0-d: smoothed loss summed over counted tokens, divided by `normalizer`
  Tensor nll_sum;  // 0-d, beside the logits: unsmoothed negative log-likelihood, summed (for perplexity)
  int64_t count = 0;   // counted (non-ignored) tokens
};
// logits: [N, V]; targets: int32 [N]. normalizer <= 0 means "divide by count" (a mean over tokens).
CrossEntropy cross_entropy(const Variable& logits, const Tensor& targets, int64_t ignore_index, float smoothing,
                           double normalizer = 0);

}  // namespace heed::autograd
