// Kernel checks: a kernel of kernels/ run on random inputs, on the simulator or a GPU, and compared with
// its CPU reference op. `heed selftest` prints them; the kernel tests assert them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "heed/core/tensor.h"
#include "kernels/common/backend.h"

namespace heed::selftest {

// One output of a kernel against its reference.
struct Comparison {
  std::string name;  // "out", "lse", "dq", ...
  double error = 0;  // the kernel's worst deviation from the reference
  double bound = 0;  // what that deviation may reach; each check says why
  std::string detail;
  bool ok() const { return error <= bound; }  // false for NaN
};

struct CheckResult {
  std::string kernel;  // what ran, at which shape
  std::vector<Comparison> comparisons;
  bool ok() const;
  // "attention forward ... : out 1.2e-3 <= 2.4e-3 ok, lse ..."
  std::string str() const;
};

// Uniform values in [lo, hi) (never exactly 0 for a symmetric range), from Philox keyed by `seed` and
// `stream`, the same on every machine.
Tensor random_uniform(const Shape& shape, uint64_t seed, uint32_t stream, float lo = -1.0f, float hi = 1.0f);

// The largest |a - b| over two equally long vectors; NaN anywhere makes it infinite.
double max_abs_difference(const std::vector<float>& a, const std::vector<float>& b);
double max_abs(const std::vector<float>& x);

// The values of a tensor (any device, layout and float dtype) in row-major order, as fp32.
std::vector<float> host_values(const Tensor& t);

// x rounded to the 16-bit type and back: what a 16-bit kernel sees.
Tensor round_to(const Tensor& x, kernels::Half half);
DType dtype_of(kernels::Half half);
Device backend_device(kernels::Backend backend);

}  // namespace heed::selftest
