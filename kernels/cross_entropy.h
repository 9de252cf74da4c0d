// Label-smoothed softmax cross-entropy over a vocabulary, fused (cross_entropy.cu): the GPU path of
// heed/ops/cross_entropy.h, with its definitions. For a row with target t, smoothing eps over V classes and
// lse = log sum_v e^(x_v):
//   nll  = lse - x_t
//   loss = (1 - eps) nll + eps (lse - sum_v x_v / V)
//   dlogits_v = grad_scale (e^(x_v - lse) - eps / V - (1 - eps) [v = t])
// Rows whose target is ignore_index have loss = nll = lse = 0 and a zero gradient. No probability tensor is
// written: the backward pass recomputes e^(x_v - lse) from the logits and the saved lse.
#pragma once

#include <cstdint>

#include "common/backend.h"
#include "heed/core/dtype.h"

namespace heed::kernels {

struct CrossEntropyArgs {
  int64_t rows = 0, classes = 0;  // logits are [rows, classes], contiguous
  DType dtype = DType::BF16;      // of logits and dlogits: F32, BF16 or F16; the math is fp32
  const void* logits = nullptr;
  const int32_t* targets = nullptr;  // [rows], each in [0, classes) or equal to ignore_index
  int64_t ignore_index = -100;
  float smoothing = 0.0f;

  // Forward outputs, fp32 [rows]. The caller sums loss and nll over rows (and counts the rows that are
  // not ignored); keeping them per row lets that sum be deterministic (reduce.h's sum_all).
  float* loss = nullptr;
  float* nll = nullptr;
  float* lse = nullptr;  // written by the forward pass, read by the backward pass

  // Backward: dlogits [rows, classes] in dtype, overwritten; the gradient of grad_scale * sum(loss), times
  // *dloss when dloss is set: the gradient that reached the loss, read in device memory, so that the
  // backward pass needs no host round trip for it.
  float grad_scale = 1.0f;
  const float* dloss = nullptr;
  void* dlogits = nullptr;

  Stream stream = nullptr;
};

template <Backend B>
void cross_entropy_forward(const CrossEntropyArgs& args);
template <Backend B>
void cross_entropy_backward(const CrossEntropyArgs& args);

}  // namespace heed::kernels
