#include "heed/selftest/check.h"

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

DType dtype_of(kernels::Half half) { return half == kernels::Half::BF16 ? DType::BF16 : DType::F16; }

Tensor round_to(const Tensor& x, kernels::Half half) { return x.to(dtype_of(half)).to(DType::F32); }

Device backend_device(kernels::Backend backend) {
  return backend == kernels::Backend::Gpu ? Device::cuda() : Device::sim();
}

}  // namespace heed::selftest
