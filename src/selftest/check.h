// Kernel checks: a kernel of kernels/ run on random inputs, on the simulator or a GPU, and compared with
// its CPU reference op. `heed selftest` prints them; the kernel tests assert them.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
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

// Per-element bounds |got_i - want_i| <= bound_i, folded into one Comparison that fails exactly when one
// of them fails: its error is the worst ratio of an element's error to its own bound, against a bound of
// 1, and its detail names that element. An error over a zero bound, or NaN, counts as infinite.
class WorstRatio {
 public:
  WorstRatio(std::string name, std::string element) : name_(std::move(name)), element_(std::move(element)) {}
  // `where` (called only for a new worst) names the element, as in "row 3" or "tensor 2 element 17".
  template <class Where>
  void add(double got, double want, double bound, const Where& where) {
    const double r = ratio(got, want, bound);
    if (r <= worst_) return;
    worst_ = r, got_ = got, want_ = want, bound_ = bound, where_ = where();
  }
  Comparison comparison() const;

 private:
  static double ratio(double got, double want, double bound);
  std::string name_, element_;
  double worst_ = 0, got_ = 0, want_ = 0, bound_ = 0;
  std::string where_;
};

// fp32's unit roundoff, u = 2^-24: the unit of the checks' fp32 allowances.
inline constexpr double kFp32Unit = 1.0 / (1 << 24);

// FlashAttention's rule for an output stored in `dtype`: its worst error against the fp32 reference may
// be twice that of a plain 16-bit implementation (the reference rounded once to `dtype`; nothing for
// fp32), plus `fp32_allowance` for the order of the kernel's fp32 arithmetic.
Comparison within_twice_plain(const std::string& name, const Tensor& got, const Tensor& reference, DType dtype,
                              double fp32_allowance);
// The error of that plain 16-bit implementation.
double plain_error(const Tensor& reference, DType dtype);

// Uniform values in [lo, hi) (never exactly 0 for a symmetric range), from Philox keyed by `seed` and
// `stream`, the same on every machine.
Tensor random_uniform(const Shape& shape, uint64_t seed, uint32_t stream, float lo = -1.0f, float hi = 1.0f);

// The largest |a - b| over two equally long vectors; NaN anywhere makes it infinite.
double max_abs_difference(const std::vector<float>& a, const std::vector<float>& b);
double max_abs(const std::vector<float>& x);

// The values of a tensor (any device, layout and float dtype) in row-major order, as fp32.
std::vector<float> host_values(const Tensor& t);

// A contiguous copy of the host tensor `x` in the backend's memory (the simulated GPU's is host RAM), in
// `dtype`.
Tensor to_backend(const Tensor& x, kernels::Backend backend, DType dtype);
// NaN everywhere, in the backend's memory: an output the kernel must overwrite element by element.
Tensor nan_tensor(const Shape& shape, kernels::Backend backend, DType dtype);

// x rounded to the 16-bit (or given) type and back: what a kernel of that type sees.
Tensor round_to(const Tensor& x, kernels::Half half);
Tensor round_to(const Tensor& x, DType dtype);
DType dtype_of(kernels::Half half);
Device backend_device(kernels::Backend backend);

}  // namespace heed::selftest
