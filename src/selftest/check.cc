// The shared pieces of the kernel checks (selftest/check.h).
#include "selftest/check.h"

#include <cmath>
#include <limits>

#include "heed/core/philox.h"

namespace heed::selftest {

bool CheckResult::ok() const {
  for (const Comparison& c : comparisons)
    if (!c.ok()) return false;
  return true;
}

std::string CheckResult::str() const {
  std::string out = kernel + ":";
  for (const Comparison& c : comparisons)
    out += fmt::format(" {} {:.3g} {} {:.3g}{}{};", c.name, c.error, c.ok() ? "<=" : "EXCEEDS", c.bound,
                       c.detail.empty() ? "" : " ", c.detail);
  out += ok() ? " ok" : " FAILED";
  return out;
}

double WorstRatio::ratio(double got, double want, double bound) {
  const double error = std::abs(got - want);
  if (error <= bound) return bound > 0 ? error / bound : 0.0;
  // Over its bound: the quotient of doubles error > bound > 0 exceeds 1 after rounding too, and a zero
  // bound, a NaN or an infinity must fail as well.
  const double r = bound > 0 ? error / bound : std::numeric_limits<double>::infinity();
  return r > 1 ? r : std::numeric_limits<double>::infinity();
}

Comparison WorstRatio::comparison() const {
  std::string detail = fmt::format("(in units of each {}'s bound", element_);
  if (!where_.empty()) detail += fmt::format(", worst {}: {:.9g} vs {:.9g}, bound {:.3g}", where_, got_, want_, bound_);
  return {name_, worst_, 1.0, detail + ")"};
}

double plain_error(const Tensor& reference, DType dtype) {
  if (dtype == DType::F32) return 0.0;
  return max_abs_difference(host_values(reference.to(dtype)), host_values(reference));
}

Comparison within_twice_plain(const std::string& name, const Tensor& got, const Tensor& reference, DType dtype,
                              double fp32_allowance) {
  const double plain = plain_error(reference, dtype);
  return {name, max_abs_difference(host_values(got), host_values(reference)), 2 * plain + fp32_allowance,
          dtype == DType::F32 ? "" : fmt::format("(2 x plain 16-bit error {:.3g} + {:.3g})", plain, fp32_allowance)};
}

Tensor random_uniform(const Shape& shape, uint64_t seed, uint32_t stream, float lo, float hi) {
  Tensor t = Tensor::empty(shape);
  float* p = t.data<float>();
  const RandomKey key{seed, 0, stream};
  float u[4];
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (i % 4 == 0) philox_uniform4(key, static_cast<uint64_t>(i / 4), u);
    const float v = lo + (hi - lo) * u[i % 4];
    p[i] = v == 0.0f ? (hi - lo) * 0x1p-24f : v;
  }
  return t;
}

double max_abs_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double e = std::abs(static_cast<double>(a[i]) - b[i]);
    if (std::isnan(e)) return std::numeric_limits<double>::infinity();
    worst = std::max(worst, e);
  }
  return worst;
}

double max_abs(const std::vector<float>& x) {
  double m = 0;
  for (float v : x) m = std::max(m, static_cast<double>(std::abs(v)));
  return m;
}

std::vector<float> host_values(const Tensor& t) {
  const Tensor c = t.to(Device::cpu()).to(DType::F32).contiguous();
  return std::vector<float>(c.data<float>(), c.data<float>() + c.numel());
}

Tensor to_backend(const Tensor& x, kernels::Backend backend, DType dtype) {
  return x.to(dtype).contiguous().to(backend_device(backend));
}

Tensor nan_tensor(const Shape& shape, kernels::Backend backend, DType dtype) {
  return to_backend(Tensor::full(shape, std::numeric_limits<float>::quiet_NaN()), backend, dtype);
}

DType dtype_of(kernels::Half half) { return half == kernels::Half::BF16 ? DType::BF16 : DType::F16; }

Tensor round_to(const Tensor& x, kernels::Half half) { return round_to(x, dtype_of(half)); }

Tensor round_to(const Tensor& x, DType dtype) { return x.to(dtype).to(DType::F32); }

Device backend_device(kernels::Backend backend) {
  return backend == kernels::Backend::Cuda ? Device::cuda() : Device::sim();
}

}  // namespace heed::selftest
