// Fused multi-head attention on the GPU (and the simulator): the FlashAttention-2 forward and backward
// kernels of attention_forward.cu and attention_backward.cu. The math and the conventions are those of the
// CPU op, heed/ops/attention.h, which is the reference these kernels are tested against: the causal
// offset (query i sees keys j <= i + Lk - Lq), the key-padding mask, lse = -inf and a zero output for a
// row that sees no key, and dropout element (b, h, i, j) drawn from Philox at index ((b*H + h)*Lq + i)*Lk + j.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/backend.h"
#include "heed/core/philox.h"

namespace heed::kernels {

// Strides in elements of a [B, H, L, D] tensor whose last dimension is contiguous; the projections'
// [B, L, H, D] layout, viewed transposed, goes in without a copy.
struct AttentionStrides {
  int64_t batch, head, row;
};

struct AttentionArgs {
  Half dtype = Half::BF16;  // of q, k, v, out, dout, dq, dk, dv
  int batch = 0, heads = 0, len_q = 0, len_k = 0;
  int head_dim = 0;  // 32, 64 or 128
  float scale = 1.0f;
  bool causal = false;
  const uint8_t* key_padding = nullptr;  // optional [B, Lk], contiguous: 1 marks a key no query may see
  float dropout_p = 0.0f;
  RandomKey dropout_key;

  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  AttentionStrides q_strides{}, k_strides{}, v_strides{};
  void* out = nullptr;  // written by the forward pass, read by the backward pass
  AttentionStrides out_strides{};
  float* lse = nullptr;  // [B, H, Lq] contiguous fp32: written by the forward pass, read by the backward pass

  // Backward only.
  const void* dout = nullptr;
  AttentionStrides dout_strides{};
  void *dq = nullptr, *dk = nullptr, *dv = nullptr;
  AttentionStrides dq_strides{}, dk_strides{}, dv_strides{};
  bool deterministic = false;  // no atomics: the same bits on every run
  void* workspace = nullptr;   // attention_backward_workspace_bytes(args) bytes of device memory

  Stream stream = nullptr;
};

template <Backend B>
void attention_forward(const AttentionArgs& args);

template <Backend B>
size_t attention_backward_workspace_bytes(const AttentionArgs& args);
template <Backend B>
void attention_backward(const AttentionArgs& args);

}  // namespace heed::kernels
