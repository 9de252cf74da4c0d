// Sums on the GPU path (reduce.cu): a tensor summed down to a broadcast shape (the backward pass of
// broadcasting), the rows of a matrix summed (a bias gradient), and a tensor summed to one number. Both are deterministic: every sum is
// taken in a fixed order, with no atomics.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/backend.h"
#include "heed/core/dtype.h"
#include "tensor_layout.h"

namespace heed::kernels {

// out (contiguous) has in's rank, with size 1 in each reduced dimension; out[j] is the sum of the
// elements of `in` that broadcasting out to in's shape maps to j.
struct SumToArgs {
  TensorLayout out, in;
  Stream stream = nullptr;
};

template <Backend B>
void sum_to(const SumToArgs& args);

// out[c] (fp32) = the sum over r of in[r * cols + c], for a contiguous [rows, cols] `in` of fp32, bf16 or
// fp16: a bias gradient. workspace: sum_rows_workspace_bytes(args) bytes of device memory.
struct SumRowsArgs {
  const void* in = nullptr;
  DType dtype = DType::F32;
  int64_t rows = 0, cols = 0;
  float* out = nullptr;
  void* workspace = nullptr;
  Stream stream = nullptr;
};

template <Backend B>
size_t sum_rows_workspace_bytes(const SumRowsArgs& args);
template <Backend B>
void sum_rows(const SumRowsArgs& args);

// out: one fp32 element, the sum of every element of `in`, accumulated in double in a fixed order.
// workspace: sum_all_workspace_bytes() bytes of device memory.
struct SumAllArgs {
  TensorLayout in;
  float* out = nullptr;
  void* workspace = nullptr;
  Stream stream = nullptr;
};

// sum_all's first stage writes one double per block.
inline constexpr int kSumAllPartials = 256;
inline constexpr size_t sum_all_workspace_bytes() { return kSumAllPartials * sizeof(double); }
template <Backend B>
void sum_all(const SumAllArgs& args);

}  // namespace heed::kernels
