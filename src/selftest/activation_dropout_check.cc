// The activation + dropout check of selftest/activation_dropout_check.h: inputs from Philox, the CPU ops
// composed as the reference, the kernels launched on their raw arguments.
#include "selftest/activation_dropout_check.h"

#include <algorithm>
#include <cmath>

#include "core/kernel_args.h"
#include "heed/ops/activation.h"
#include "heed/ops/dropout.h"
#include "heed/ops/elementwise.h"
#include "selftest/case_text.h"

namespace heed::selftest {

namespace {

using kernels::Activation;

constexpr std::pair<Activation, const char*> kActivations[] = {
    {Activation::None, "none"}, {Activation::ReLU, "relu"}, {Activation::GELU, "gelu"},
    {Activation::SiLU, "silu"}};

ops::Activation cpu_activation(Activation act) {
  return act == Activation::ReLU ? ops::Activation::ReLU
                                 : act == Activation::GELU ? ops::Activation::GELU : ops::Activation::SiLU;
}

// Each element within its own allowance plus twice the plain 16-bit error of the whole tensor.
Comparison compare_elements(const std::string& name, const Tensor& got, const Tensor& reference, DType dtype,
                            const std::vector<double>& allowance) {
  const std::vector<float> g = host_values(got), want = host_values(reference);
  const double plain = plain_error(reference, dtype);
  WorstRatio check(name, "element");
  for (size_t i = 0; i < want.size(); ++i)
    check.add(g[i], want[i], 2 * plain + allowance[i], [&] { return fmt::format("element {}", i); });
  return check.comparison();
}

}  // namespace

std::string ActivationDropoutCase::str() const {
  const char* act_name = "";
  for (const auto& [a, n] : kActivations)
    if (a == act) act_name = n;
  return fmt::format("{},{},{}{},{}{}{}", rows, cols, act_name,
                     dropout > 0 ? fmt::format(",dropout={}", dropout) : "", detail::dtype_text(dtype),
                     unaligned ? ",unaligned" : "", residual ? ",residual" : "");
}

std::optional<ActivationDropoutCase> parse_activation_dropout_case(const std::string& text, std::string* error) {
  return detail::read_case(
      "--act-dropout", "ROWS,COLS,none|relu|gelu|silu[,dropout=P][,bf16|fp16|fp32][,unaligned][,residual]", text, 3, error,
      [](const std::vector<std::string>& fields) {
        ActivationDropoutCase c;
        c.rows = detail::read_size(fields[0]);
        c.cols = detail::read_size(fields[1]);
        const auto* act = std::find_if(std::begin(kActivations), std::end(kActivations),
                                       [&](const auto& a) { return fields[2] == a.second; });
        if (act == std::end(kActivations))
          throw detail::CaseTextError{fmt::format("unknown activation '{}'", fields[2])};
        c.act = act->first;
        for (size_t i = 3; i < fields.size(); ++i) {
          const std::string& f = fields[i];
          if (const std::optional<DType> dtype = detail::read_dtype(f)) c.dtype = *dtype;
          else if (const std::optional<float> p = detail::read_dropout(f)) c.dropout = *p;
          else if (f == "unaligned") c.unaligned = true;
          else if (f == "residual") c.residual = true;
          else throw detail::CaseTextError{fmt::format("unknown flag '{}'", f)};
        }
        return c;
      });
}

CheckResult check_activation_dropout(kernels::Backend backend, const ActivationDropoutCase& c, uint64_t seed) {
  const RandomKey key{seed, 5, 9};
  const Tensor x = random_uniform({c.rows, c.cols}, seed, 0, -3.0f, 3.0f).to(c.dtype).to(DType::F32);
  const Tensor dy = random_uniform({c.rows, c.cols}, seed, 2).to(c.dtype).to(DType::F32);

  // The CPU composition.
  const Tensor activated = c.act == Activation::None ? x : ops::activation_forward(x, cpu_activation(c.act));
  const Tensor r = random_uniform({c.rows, c.cols}, seed, 3).to(c.dtype).to(DType::F32);
  const Tensor dropped = c.dropout > 0 ? ops::dropout_forward(activated, c.dropout, key) : activated;
  const Tensor y_ref = c.residual ? ops::add(r, dropped) : dropped;
  const Tensor g = c.dropout > 0 ? ops::dropout_backward(dy, c.dropout, key) : dy;
  const Tensor dx_ref = c.act == Activation::None ? g : ops::activation_backward(g, x, cpu_activation(c.act));

  // The kernels see each tensor `lead` elements into its allocation.
  const int64_t n = c.rows * c.cols, lead = c.unaligned ? 1 : 0;
  auto on_device = [&](const Tensor& host) {
    std::vector<float> v(lead, 0.0f);
    for (float e : host_values(host)) v.push_back(e);
    return to_backend(Tensor::from_vector(v, {lead + n}), backend, c.dtype);
  };
  auto element_data = [&](const Tensor& t) { return static_cast<char*>(t.raw_data()) + lead * dtype_size(c.dtype); };
  auto kernel_result = [&](const Tensor& t) {
    const std::vector<float> v = host_values(t);
    return Tensor::from_vector(std::vector<float>(v.begin() + lead, v.end()), {c.rows, c.cols});
  };
  const Device device = backend_device(backend);
  const Tensor x_dev = on_device(x), dy_dev = on_device(dy), r_dev = on_device(r);
  const Tensor y_dev = nan_tensor({lead + n}, backend, c.dtype), dx_dev = nan_tensor({lead + n}, backend, c.dtype);

  kernels::ActivationDropoutArgs args;
  args.n = n;
  args.dtype = c.dtype;
  args.x = element_data(x_dev);
  args.act = c.act;
  args.dropout_p = c.dropout;
  args.dropout_key = key;
  args.y = element_data(y_dev);
  if (c.residual) args.residual = element_data(r_dev);
  HEED_RUN_KERNEL(device, activation_dropout_forward, args);
  args.residual = nullptr;
  args.dy = element_data(dy_dev);
  args.dx = element_data(dx_dev);
  HEED_RUN_KERNEL(device, activation_dropout_backward, args);
  const Tensor y = kernel_result(y_dev), dx = kernel_result(dx_dev);

  const float scale = c.dropout > 0 ? 1.0f / (1.0f - c.dropout) : 1.0f;
  const std::vector<float> x_v = host_values(x), y_want = host_values(y_ref), dy_v = host_values(dy),
                           r_v = host_values(r);
  std::vector<double> y_allowance(n), dx_allowance(n);
  for (int64_t i = 0; i < n; ++i) {
    y_allowance[i] = 16 * kFp32Unit * (scale * (1 + std::fabs(x_v[i])) + std::fabs(y_want[i])) +
                     (c.residual ? kFp32Unit * std::fabs(r_v[i]) : 0.0);
    dx_allowance[i] = 16 * kFp32Unit * scale * std::fabs(dy_v[i]) * (1 + std::fabs(x_v[i]));
  }
  return {"act-dropout " + c.str(),
          {compare_elements("y", y, y_ref, c.dtype, y_allowance),
           compare_elements("dx", dx, dx_ref, c.dtype, dx_allowance)}};
}

}  // namespace heed::selftest
