// Differentiable functions over Variables: each calls an op's forward and records the op's backward.
#pragma once

#include <optional>

#include "heed/autograd/variable.h"
#include "heed/ops/activation.h"
#include "heed/ops/attention.h"

namespace heed::autograd {

// x: [..., in], weight: [out, in] (as PyTorch), bias: [out] or undefined.
Variable linear(const Variable& x, const Variable& weight, const Variable& bias);
// relu(linear(x, weight, bias)) in one GEMM pass (cuBLASLt's RELU_BIAS epilogue on a GPU); bias required.
Variable linear_relu(const Variable& x, const Variable& weight, const Variable& bias);
Variable add(const Variable& a, const Variable& b);
Variable mul(const Variable& a, const Variable& b);
// Sum of all elements, 0-d.
Variable sum(const Variable& x);
// a + c for a constant c that broadcasts to a's shape.
Variable add_constant(const Variable& a, const Tensor& c);
Variable activation(const Variable& x, ops::Activation act);
// Identity when p == 0 (no node is recorded).
Variable dropout(const Variable& x, float p, const RandomKey& key);
// Returns scale * weight[ids], ids int32.
Variable embedding(const Tensor& ids, const Variable& weight, float scale, int64_t pad_id);
Variable layer_norm(const Variable& x, const Variable& gamma, const Variable& beta, float eps);
Variable softmax(const Variable& x);
Variable reshape(const Variable& x, const Shape& shape);
// x converted to `dtype` (x itself when it already has it); the gradient goes back converted to x's dtype.
// Mixed precision uses it to give the 16-bit GEMMs 16-bit copies of the fp32 master weights, whose
// gradients then accumulate in fp32.
Variable cast(const Variable& x, DType dtype);

// Multi-head attention core on [B, L, heads * head_dim] projections: splits heads, runs the fused
// attention op, and merges heads again, without copies.
Variable attention(const Variable& q, const Variable& k, const Variable& v, int64_t heads,
                   const ops::AttentionOptions& options);

struct CrossEntropy {
  Variable loss;   // 0-d: smoothed loss summed over counted tokens, divided by `normalizer`
  Tensor nll_sum;  // 0-d, beside the logits: unsmoothed negative log-likelihood, summed (for perplexity)
  int64_t count = 0;   // counted (non-ignored) tokens
};
// logits: [N, V]; targets: int32 [N]. normalizer <= 0 means "divide by count" (a mean over tokens).
CrossEntropy cross_entropy(const Variable& logits, const Tensor& targets, int64_t ignore_index, float smoothing,
                           double normalizer = 0);

}  // namespace heed::autograd
