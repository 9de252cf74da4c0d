// Checks of the FlashAttention-2 kernels (kernels/attention_forward.cu, attention_backward.cu) against the
// CPU op, heed::ops::attention_forward and _backward, in fp32 on the same 16-bit-rounded inputs.
//
// Tolerances follow FlashAttention's rule: a kernel's worst error against the fp32 reference may be at
// most twice that of a plain 16-bit implementation of the same math, computed in the check, plus a small
// floor for cases where both are exact up to fp32 noise. The plain forward takes the softmax in fp32 from
// the rounded inputs, rounds P to 16 bits before P V (as FlashAttention and the kernel feed P to the
// tensor cores) and rounds the output; the plain backward is the textbook pass over the materialised
// scores with fp32 products and every intermediate (S, P, dropped P, dP, dS, the gradients) rounded to 16
// bits, as an unfused framework stores them. Both share the roundings every 16-bit attention makes and
// none of the kernels' structure (tiles, online rescaling, deferred normalisation), so 2x leaves room for
// the kernels' own rounding and summation order, while a wrong mask, a skipped tile, a wrong rescale or a
// wrong dropout draw is off by far more (each was tried).
#pragma once

#include <optional>
#include <string>

#include "selftest/check.h"

namespace heed::selftest {

enum class KeyPadding {
  None,
  Some,            // batch row b: its last 3b keys, and in odd rows every fifth key from key 2 on
  SomeAndFullRow,  // as Some, and the last batch row is all padding (its rows see no key)
};

struct AttentionCase {
  int batch = 1, heads = 1, len_q = 1, len_k = 1, head_dim = 64;
  bool causal = false;
  KeyPadding padding = KeyPadding::None;
  float dropout = 0.0f;
  kernels::Half dtype = kernels::Half::BF16;
  bool deterministic = false;  // backward: dQ without atomics, checked to give the same bits twice
  std::string str() const;
};

// "B,H,Lq,Lk,D[,causal][,pad][,padrow][,dropout=P][,bf16|fp16][,deterministic]"; nullopt (and *error set)
// when the text does not parse.
std::optional<AttentionCase> parse_attention_case(const std::string& text, std::string* error);

// Q and the output are [B, L, H, D] storage seen as [B, H, L, D] (a projection's heads), K and V
// contiguous, so both stride patterns run. Outputs start as NaN, so an element the kernel never writes
// fails. Rows that see no key must have lse = -inf and an output of exactly 0.
CheckResult check_attention_forward(kernels::Backend backend, const AttentionCase& c, uint64_t seed);
// The forward quantities the backward kernels read (out, lse) come from the CPU op, so this check does
// not depend on the forward kernel.
CheckResult check_attention_backward(kernels::Backend backend, const AttentionCase& c, uint64_t seed);

}  // namespace heed::selftest
