// The k best continuations of each decoder row (log_softmax_top_k.cu), for beam search: the GPU path of
// heed::ops::log_softmax_top_k. Each row of logits is normalised to log-probabilities, the row's prefix
// score is added, and the k best (score, token) pairs come out, best first, so that only rows x k values
// cross to the host per step instead of rows x vocabulary. An ensemble's selection scores each token by
// the weighted sum of several models' log-probabilities, in a kernel of its own.
#pragma once

#include <cstdint>

#include "common/backend.h"
#include "heed/core/dtype.h"

namespace heed::kernels {

struct LogSoftmaxTopKArgs {
  int64_t rows = 0, vocab = 0;
  int k = 0;
  DType dtype = DType::F32;     // of logits: F32, BF16 or F16; the math is fp32
  const void* logits = nullptr;  // [rows, vocab], contiguous
  const float* prefix = nullptr;  // [rows]: added to every log-probability of the row
  int64_t exclude = -1;           // a token never returned (the pad id), or -1
  // [rows, k], best first by score, ties to the lower token. Slots beyond the row's finite candidates hold
  // score -inf and token -1.
  float* scores = nullptr;
  int32_t* tokens = nullptr;
  Stream stream = nullptr;
};

template <Backend B>
void log_softmax_top_k(const LogSoftmaxTopKArgs& args);

// The most models one ensemble launch combines; their arrays travel in the launch arguments, by value.
inline constexpr int kMaxTopKModels = 8;

// An ensemble's selection: score = prefix + fp32(sum over m, in double and in model order, of
// weights[m] * the fp32 log-probability of logits[m], computed as the single kernel computes it).
// The fields of `row` mean what they mean for one model, but for its `logits`, which the kernel ignores.
struct EnsembleLogSoftmaxTopKArgs {
  LogSoftmaxTopKArgs row;
  int models = 0;                           // 1 to kMaxTopKModels
  const void* logits[kMaxTopKModels] = {};  // each [rows, vocab], contiguous, of dtype row.dtype
  double weights[kMaxTopKModels] = {};
};

template <Backend B>
void ensemble_log_softmax_top_k(const EnsembleLogSoftmaxTopKArgs& args);

}  // namespace heed::kernels
