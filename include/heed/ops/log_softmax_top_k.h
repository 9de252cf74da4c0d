// Beam search's selection step: for each row of logits, the k best continuations by
// prefix + log_softmax(logits); for an ensemble, by prefix + a weighted sum of several models' log_softmax.
//
// Scores are fp32, computed as (x - max) - log(sum(e^(x - max))) and then prefix + that, in that order on
// both backends. Candidates rank by score, higher first, and equal scores by token, lower first (the order
// of Hugging Face's flattened scores), so the result never depends on how the work is split. Non-finite
// scores (-inf or NaN) are never returned; rows with fewer than k finite candidates fill the rest with
// score -inf and token -1.
#pragma once

#include <vector>

#include "heed/core/tensor.h"

namespace heed::ops {

struct TopK {
  Tensor scores;  // [rows, k] F32, on the CPU
  Tensor tokens;  // [rows, k] I32, on the CPU
};

// The most logits tensors (models of an ensemble) one call combines.
inline constexpr int64_t kMaxTopKModels = 8;

// logits: [rows, vocab] on any device (F32 on the CPU; F32, BF16 or F16 on the GPU path); prefix: one
// score per row; `exclude` is a token never returned (e.g. the pad id), or -1. Only rows x k values come
// back from a GPU.
TopK log_softmax_top_k(const Tensor& logits, const std::vector<float>& prefix, int64_t k, int64_t exclude = -1);

// An ensemble's selection: scores are prefix + sum_m weights[m] * log_softmax(logits[m]). Each model's
// log-probability is the fp32 value the single-tensor call computes; the weighted sum is taken in double,
// in model order, and rounded to fp32 once, then the prefix is added as above. So weights that sum to one
// over copies of the same logits give the single call's scores and tokens bit for bit: the double sum
// lies within about N * 2^-52 (relative) of the fp32 log-probability, far inside the half-ulp (2^-25)
// that rounds it back. One tensor with weight 1 is the single-tensor call, on its own code path.
// logits: 1 to kMaxTopKModels tensors of one shape, dtype and device; weights: one per tensor, positive
// and finite.
TopK log_softmax_top_k(const std::vector<Tensor>& logits, const std::vector<double>& weights,
                       const std::vector<float>& prefix, int64_t k, int64_t exclude = -1);

}  // namespace heed::ops
