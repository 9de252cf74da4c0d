// Checks of the ops' device paths, for `heed selftest --op`: each op runs on the simulator or a GPU
// (dispatch, workspaces, layouts and the kernels it launches) and is compared with the same op on the CPU,
// in fp32 on the same 16-bit-rounded inputs. They reach the kernels that have no check of their own here
// (softmax, beam search's top-k); the kernel checks (the other *_check.h, which the kernel tests run under
// the adversarial schedules too) hold each kernel to its finer bounds.
//
// One rule for every output, FlashAttention's: the error may be at most twice that of rounding the fp32
// reference once to the output type (zero for fp32 outputs), plus an fp32 allowance for the order of the
// arithmetic: n + 16 roundings, u = 2^-24 each, relative to the largest value involved for an output
// computed from a row of n values, and relative to the sum of the magnitudes (at most n times the largest)
// for a sum of n terms such as LayerNorm's dgamma. A wrong index, mask, scale or missing term is off by a
// whole term or more, far beyond either part.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "selftest/check.h"

namespace heed::selftest {

struct OpCase {
  // layernorm (forward and backward), xent (label-smoothed cross-entropy, forward and backward), act (GELU
  // forward and backward, then dropout), embedding (lookup and scatter-add backward), adam (three steps),
  // softmax (forward and backward), topk (beam search's log_softmax_top_k)
  std::string op;
  int64_t rows = 1, cols = 1;
  DType dtype = DType::BF16;  // of activations; LayerNorm's parameters and Adam's state are always fp32
  std::string str() const;
};

// The ops `heed selftest --op` knows, in its order.
const std::vector<std::string>& op_names();

// "OP,ROWS,COLS[,bf16|fp16|fp32]"; nullopt (and *error set) when the text does not parse.
std::optional<OpCase> parse_op_case(const std::string& text, std::string* error);

CheckResult check_op(kernels::Backend backend, const OpCase& c, uint64_t seed);

}  // namespace heed::selftest
