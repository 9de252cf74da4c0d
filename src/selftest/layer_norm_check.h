// Checks of the LayerNorm kernels (kernels/layer_norm.cu) against the CPU op, heed::ops::layer_norm_forward
// and _backward (double statistics), in fp32 on the inputs rounded to the kernel's storage type, so that
// input rounding is not counted as error. Rows sit around 2 with a spread of 1, so that the mean's fp32
// rounding matters; an `offset` case puts them around 300 with a spread of 0.1, where only the kernel's
// residual-mean correction keeps y accurate (the fp32 mean is off by up to half an ulp of 300, 1.5e-5,
// 3e-4 of the spread). Outputs start as NaN, so an element the kernel fails to write cannot pass.
//
// Tolerances. The kernel computes in fp32; it differs from the reference by summation order (each lane
// sums D / 32 terms, then 5 butterfly levels or a block reduction: n <= D / 32 + 10 roundings, the classic
// bound n u sum|terms|, u = 2^-24), rsqrtf's 2 ulps, and fp32 where the CPU forward uses double. So for
// fp32 outputs: y, dx within (D / 32 + 16) u times the largest |reference| (an error of one term of the
// row in D would be far larger: about |x| / D); mean within (D / 32 + 8) u max|x|; rstd within
// (D / 32 + 8) u relative, row by row. For 16-bit outputs the kernel must stay within twice the error of
// a plain 16-bit LayerNorm (the fp32 reference rounded once to 16 bits), plus that fp32 allowance.
// dgamma and dbeta (fp32, column sums over rows) differ in order: both sides add at most 32 fp32 terms
// before moving to double, so each column is within (64 + D / 32) u times the sum of |terms| (the D / 32
// for the row statistics that enter xhat), column by column. docs/cuda.md lists how close the kernel
// comes to these bounds.
#pragma once

#include <optional>
#include <string>

#include "selftest/check.h"

namespace heed::selftest {

struct LayerNormCase {
  int64_t rows = 1, cols = 1;  // x is [rows, cols]: D = cols
  DType dtype = DType::BF16;   // of x, y, dy and dx; gamma, beta, the statistics and their gradients are fp32
  bool offset = false;         // rows around 300 with a spread of 0.1 (fp32 only: 16 bits cannot hold that)
  std::string str() const;
};

// "ROWS,COLS[,bf16|fp16|fp32][,offset]"; nullopt (and *error set) when the text does not parse.
std::optional<LayerNormCase> parse_layer_norm_case(const std::string& text, std::string* error);

// The forward pass (y, mean, rstd), then the backward pass (dx, dgamma, dbeta) from the reference
// statistics, so that it is checked on its own.
CheckResult check_layer_norm(kernels::Backend backend, const LayerNormCase& c, uint64_t seed);

}  // namespace heed::selftest
