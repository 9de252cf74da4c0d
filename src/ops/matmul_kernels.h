#pragma once

#include "heed/core/tensor.h"

namespace heed::ops::cpu {

void matmul_into(const Tensor& a, const Tensor& b, Tensor& out, bool trans_a, bool trans_b, float alpha, float beta);

}  // namespace heed::ops::cpu
