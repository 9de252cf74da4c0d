// Fused scaled-dot-product attention: out = softmax(q . k^T * scale + mask) . v, FlashAttention-style.
//
// The score matrix is never materialised: key/value tiles are streamed against a tile of queries with the
// online softmax, so the extra memory grows with length x tile, not length^2. The forward pass saves the
// per-row logsumexp; the backward pass recomputes the probabilities from it. This CPU op is also the
// reference that the CUDA kernel is tested against.
#pragma once

#include "heed/core/philox.h"
#include "heed/core/tensor.h"

namespace heed::ops {

// Which implementation runs attention on a CUDA device: Heed's FlashAttention-2 kernels, or cuDNN's fused
// attention (a build with cuDNN only; ops/attention_cudnn.h lists how it differs). The CPU and the
// simulated GPU always run Heed's own.
enum class AttentionBackend { Fused, Cudnn };

struct AttentionOptions {
  float scale = 1.0f;
  bool causal = false;        // query i sees keys j <= i (+ Lk - Lq, so the last query sees every key)
  Tensor key_padding;         // optional U8 [B, Lk]: 1 marks a padding key that no query may see
  float dropout_p = 0.0f;     // dropout on the probabilities; element (b,h,i,j) is index ((b*H+h)*Lq+i)*Lk+j
  RandomKey dropout_key;
  // GPU path: dQ without atomics (a second pass, about 1.4x its work), so a run gives the same bits every
  // time. The CPU path is always deterministic.
  bool deterministic = true;
  AttentionBackend backend = AttentionBackend::Fused;
};

struct AttentionResult {
  Tensor out;  // [B, H, Lq, D], stored as [B, Lq, H, D] so out.transpose(1, 2) is contiguous
  Tensor lse;  // [B, H, Lq] fp32; -inf for a row that sees no key (its output is 0)
};

struct AttentionGrads {
  Tensor dq, dk, dv;  // shaped like q, k, v, stored as [B, L, H, D] like AttentionResult::out
};

// q: [B, H, Lq, D], k and v: [B, H, Lk, D], fp32 (bf16 or fp16 on the GPU path); any strides with a unit
// stride in the last dimension, so the transposed views of [B, L, H, D] projections go in without a copy.
AttentionResult attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& opt);
AttentionGrads attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                  const AttentionResult& fwd, const AttentionOptions& opt);
// attention_backward writing into the caller's grads.dq, dk and dv: shaped like q, k and v, of their dtype
// and device, with a unit stride in the last dimension and any other strides; for instance the column
// ranges of one fused projection's gradient, which then needs no assembling.
void attention_backward_into(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                             const AttentionResult& fwd, const AttentionOptions& opt, const AttentionGrads& grads);

// The probabilities that attention_forward used, which it never materialises, recomputed from its lse as
// P = exp(q . k * scale - lse) with the same masks (scale, causal, key_padding; dropout is ignored):
// fp32 [B, H, Lq, Lk] on the CPU, each row summing to one (a row that sees no key is all zero). For looking
// at what a model attends to (heed translate --attention-plots, --alignment) on a few rows at a time.
// q, k: as attention_forward takes them; lse: fwd.lse of the same inputs.
Tensor attention_probabilities(const Tensor& q, const Tensor& k, const Tensor& lse, const AttentionOptions& opt);

}  // namespace heed::ops
