// Checks of the embedding kernels (kernels/embedding.cu) against the CPU op, heed::ops::embedding_forward
// and _backward. Position i reads id (i * 2654435761 + seed) mod VOCAB, so that ids repeat (heavily when
// VOCAB is small next to POSITIONS) and an optional pad id may occur in the batch; weights and gradients
// are random, non-zero, and rounded to the storage type. dweight starts as NaN, so a row the kernel fails
// to write (an id no position uses, the pad row) cannot pass.
//
// Tolerances. The forward pass computes fl(scale * w) from the same (rounded) weight as the CPU op and
// rounds it once to the storage type, so it must equal the CPU result rounded to that type, bit for bit.
// The deterministic backward adds the same fp32 values in the same order (positions in increasing order)
// and scales the sum as the CPU op does, so it must match bit for bit too. The atomic backward adds
// scale * dy in an order that varies, scaling each term first: each element is within (k + 1) u
// scale * sum|dy| of the reference, for the k positions of its id (the summation bound), u = 2^-24.
#pragma once

#include <optional>
#include <string>

#include "selftest/check.h"

namespace heed::selftest {

struct EmbeddingCase {
  int64_t positions = 1, vocab = 1, dim = 1;
  int64_t pad_id = -1;  // -1: none
  float scale = 1.0f;
  DType dtype = DType::BF16;  // of the weight and out, and of dy; dweight is fp32
  std::string str() const;
};

// "POSITIONS,VOCAB,DIM[,pad=ID][,scale=S|sqrt][,bf16|fp16|fp32]" (sqrt: the square root of DIM, as the
// Transformer scales); nullopt (and *error set) when the text does not parse.
std::optional<EmbeddingCase> parse_embedding_case(const std::string& text, std::string* error);

// The lookup, then the deterministic and the atomic backward pass.
CheckResult check_embedding(kernels::Backend backend, const EmbeddingCase& c, uint64_t seed);

}  // namespace heed::selftest
