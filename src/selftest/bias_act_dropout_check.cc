// The bias + activation + dropout + residual check of heed/selftest/bias_act_dropout_check.h: inputs from
// Philox, the CPU ops composed as the reference, the kernels launched on their raw arguments.
#include "heed/selftest/bias_act_dropout_check.h"

#include <algorithm>
#include <cmath>

#include "core/kernel_args.h"
#include "heed/ops/activation.h"
#include "heed/ops/dropout.h"
#include "heed/ops/elementwise.h"
#include "selftest/case_text.h"

namespace heed::selftest {

namespace {

using kernels::BiasActivation;

constexpr std::pair<BiasActivation, const char*> kActivations[] = {
    {BiasActivation::None, "none"}, {BiasActivation::ReLU, "relu"}, {BiasActivation::GELU, "gelu"},
    {BiasActivation::SiLU, "silu"}};

ops::Activation cpu_activation(BiasActivation act) {
  return act == BiasActivation::ReLU ? ops::Activation::ReLU
                                     : act == BiasActivation::GELU ? ops::Activation::GELU : ops::Activation::SiLU;
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

std::string BiasActCase::str() const {
  const char* act_name = "";
  for (const auto& [a, n] : kActivations)
    if (a == act) act_name = n;
  return fmt::format("{},{},{}{}{}{},{}", rows, cols, act_name, bias ? ",bias" : "", residual ? ",residual" : "",
                     dropout > 0 ? fmt::format(",dropout={}", dropout) : "", detail::dtype_text(dtype));
}

std::optional<BiasActCase> parse_bias_act_case(const std::string& text, std::string* error) {
  return detail::read_case(
      "--bias-act", "ROWS,COLS,none|relu|gelu|silu[,bias][,residual][,dropout=P][,bf16|fp16|fp32]", text, 3, error,
      [](const std::vector<std::string>& fields) {
        BiasActCase c;
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
          else if (f == "bias") c.bias = true;
          else if (f == "residual") c.residual = true;
          else throw detail::CaseTextError{fmt::format("unknown flag '{}'", f)};
        }
        return c;
      });
}

CheckResult check_bias_act_dropout(kernels::Backend backend, const BiasActCase& c, uint64_t seed) {
  const RandomKey key{seed, 5, 9};
  const Tensor x = random_uniform({c.rows, c.cols}, seed, 0, -3.0f, 3.0f).to(c.dtype).to(DType::F32);
  const Tensor residual = random_uniform({c.rows, c.cols}, seed, 1).to(c.dtype).to(DType::F32);
  const Tensor dy = random_uniform({c.rows, c.cols}, seed, 2).to(c.dtype).to(DType::F32);
  const Tensor bias = random_uniform({c.cols}, seed, 3);

  // The CPU composition.
  const Tensor pre = c.bias ? ops::add_bias(x, bias) : x;
  const Tensor activated = c.act == BiasActivation::None ? pre : ops::activation_forward(pre, cpu_activation(c.act));
  const Tensor dropped = c.dropout > 0 ? ops::dropout_forward(activated, c.dropout, key) : activated;
  const Tensor y_ref = c.residual ? ops::add(residual, dropped) : dropped;
  const Tensor g = c.dropout > 0 ? ops::dropout_backward(dy, c.dropout, key) : dy;
  const Tensor dx_ref = c.act == BiasActivation::None ? g : ops::activation_backward(g, pre, cpu_activation(c.act));
  const Tensor dbias_ref = ops::sum_rows(dx_ref);

  const Device device = backend_device(backend);
  const Tensor x_dev = to_backend(x, backend, c.dtype), residual_dev = to_backend(residual, backend, c.dtype);
  const Tensor dy_dev = to_backend(dy, backend, c.dtype), bias_dev = bias.to(device);
  const Tensor y = nan_tensor({c.rows, c.cols}, backend, c.dtype), dx = nan_tensor({c.rows, c.cols}, backend, c.dtype);
  const Tensor dbias = nan_tensor({c.cols}, backend, DType::F32);

  kernels::BiasActDropoutArgs args;
  args.rows = c.rows;
  args.cols = c.cols;
  args.dtype = c.dtype;
  args.x = x_dev.raw_data();
  args.bias = c.bias ? bias_dev.data<float>() : nullptr;
  args.act = c.act;
  args.dropout_p = c.dropout;
  args.dropout_key = key;
  args.residual = c.residual ? residual_dev.raw_data() : nullptr;
  args.y = y.raw_data();
  HEED_RUN_KERNEL(device, bias_act_dropout_forward, args);

  args.dy = dy_dev.raw_data();
  args.dx = dx.raw_data();
  args.dbias = c.bias ? dbias.data<float>() : nullptr;
  // The workspace size is host arithmetic, the same in both builds; the simulator's is always linked.
  const size_t workspace_bytes = kernels::bias_act_dropout_backward_workspace_bytes<kernels::Backend::Sim>(args);
  const Tensor workspace =
      nan_tensor({std::max<int64_t>(1, static_cast<int64_t>(workspace_bytes / sizeof(float)))}, backend, DType::F32);
  args.workspace = workspace.raw_data();
  HEED_RUN_KERNEL(device, bias_act_dropout_backward, args);

  const float scale = c.dropout > 0 ? 1.0f / (1.0f - c.dropout) : 1.0f;
  const std::vector<float> pre_v = host_values(pre), y_want = host_values(y_ref), dy_v = host_values(dy),
                           dx_want = host_values(dx_ref);
  const int64_t n = c.rows * c.cols;
  std::vector<double> y_allowance(n), dx_allowance(n);
  for (int64_t i = 0; i < n; ++i) {
    y_allowance[i] = 16 * kFp32Unit * (scale * (1 + std::fabs(pre_v[i])) + std::fabs(y_want[i]));
    dx_allowance[i] = 16 * kFp32Unit * scale * std::fabs(dy_v[i]) * (1 + std::fabs(pre_v[i]));
  }
  CheckResult result{"bias-act " + c.str(),
                     {compare_elements("y", y, y_ref, c.dtype, y_allowance),
                      compare_elements("dx", dx, dx_ref, c.dtype, dx_allowance)}};
  if (!c.bias) return result;
  const std::vector<float> db = host_values(dbias), db_want = host_values(dbias_ref);
  WorstRatio dbias_check("dbias", "column");
  for (int64_t j = 0; j < c.cols; ++j) {
    double abs_sum = 0, allowance = 0;
    for (int64_t i = 0; i < c.rows; ++i) {
      abs_sum += std::fabs(dx_want[i * c.cols + j]);
      allowance += dx_allowance[i * c.cols + j];
    }
    dbias_check.add(db[j], db_want[j], 64 * kFp32Unit * abs_sum + allowance,
                    [&] { return fmt::format("column {}", j); });
  }
  result.comparisons.push_back(dbias_check.comparison());
  return result;
}

}  // namespace heed::selftest
