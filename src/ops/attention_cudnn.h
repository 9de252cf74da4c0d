// cuDNN's fused flash attention as a second GPU path for heed::ops::attention_forward and _backward
// (training.attention: cudnn), the yardstick the hand-written kernels are measured against.
//
// The graphs are built with cuDNN's backend (graph) API, in the shape cuDNN's own frontend gives scaled
// dot-product attention, so that its fused flash-attention engines take them: Q Kᵀ, scale, the padding
// bias, the causal mask, softmax with its statistics, dropout, then P V; the backward pass recomputes P
// from the statistics. Plans are cached per shape. Built only where CMake finds cuDNN, which then defines
// HEED_WITH_CUDNN.
//
// Differences from the fused kernels, all documented where a user chooses the path:
// - padding is an additive bias of -1e30 on padded keys, so a query row that sees no key at all gets the
//   mean of the values instead of 0 (the kernels' convention); batches from the batcher never have such
//   rows, because every source sentence holds at least its eos;
// - causal masking needs len_q == len_k (decoder self-attention in training);
// - dropout draws from cuDNN's generator, seeded from the same key, not from Heed's Philox stream;
// - 16-bit inputs only, head dims up to 128.
#pragma once

#include <string>

#include "heed/ops/attention.h"

namespace heed::ops::cudnn {

AttentionResult attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& opt);
// Writes into grads' tensors, which (like every operand) must have [B, L, H, D] storage.
void attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                        const AttentionResult& fwd, const AttentionOptions& opt, const AttentionGrads& grads);

// One attention problem as cuDNN sees it: q, k, v and the output are [B, L, H, D] storage seen as
// [B, H, L, D] (the layout of Heed's projections).
struct SdpaProblem {
  int64_t batch = 1, heads = 1, len_q = 1, len_k = 1, head_dim = 64;
  DType dtype = DType::BF16;
  bool causal = false, padding = false, dropout = false;
};

// How many engine configurations cuDNN's heuristics offer for the forward or backward graph of `problem`
// on the device that `device_json` describes (cuDNN's device-properties JSON), without a GPU: the check
// that CI can make of these graphs. Needs a libcuda.so.1 to load, which may be the toolkit's stub.
int64_t deviceless_engine_configs(const SdpaProblem& problem, bool backward, const std::string& device_json);

}  // namespace heed::ops::cudnn
