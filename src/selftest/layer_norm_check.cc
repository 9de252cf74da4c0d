// The LayerNorm check of selftest/layer_norm_check.h: inputs from Philox, the CPU op as the
// reference, the kernels launched on their raw arguments.
#include "selftest/layer_norm_check.h"

#include <cmath>

#include "core/kernel_args.h"
#include "heed/ops/layer_norm.h"
#include "kernels/layer_norm.h"
#include "selftest/case_text.h"

namespace heed::selftest {

std::string LayerNormCase::str() const {
  return fmt::format("{},{},{}{}", rows, cols, detail::dtype_text(dtype), offset ? ",offset" : "");
}

std::optional<LayerNormCase> parse_layer_norm_case(const std::string& text, std::string* error) {
  return detail::read_case(
      "--layernorm", "ROWS,COLS[,bf16|fp16|fp32][,offset]", text, 2, error, [](const std::vector<std::string>& fields) {
        LayerNormCase c;
        c.rows = detail::read_size(fields[0]);
        c.cols = detail::read_size(fields[1]);
        for (size_t i = 2; i < fields.size(); ++i) {
          if (const std::optional<DType> dtype = detail::read_dtype(fields[i])) c.dtype = *dtype;
          else if (fields[i] == "offset") c.offset = true;
          else throw detail::CaseTextError{fmt::format("unknown flag '{}'", fields[i])};
        }
        if (c.offset && c.dtype != DType::F32)
          throw detail::CaseTextError{"offset needs fp32: 16 bits cannot hold a spread of 0.1 at 300"};
        return c;
      });
}

CheckResult check_layer_norm(kernels::Backend backend, const LayerNormCase& c, uint64_t seed) {
  const float eps = 1e-5f, lo = c.offset ? 299.95f : 1.0f, hi = c.offset ? 300.05f : 3.0f;
  const int64_t rows = c.rows, cols = c.cols;
  const Tensor x = random_uniform({rows, cols}, seed, 0, lo, hi).to(c.dtype).to(DType::F32);
  const Tensor dy = random_uniform({rows, cols}, seed, 1).to(c.dtype).to(DType::F32);
  const Tensor gamma = random_uniform({cols}, seed, 2, 0.5f, 1.5f);
  const Tensor beta = random_uniform({cols}, seed, 3);
  const ops::LayerNormResult ref = ops::layer_norm_forward(x, gamma, beta, eps);
  const ops::LayerNormGrads ref_grads = ops::layer_norm_backward(dy, x, gamma, ref.mean, ref.rstd);

  const Device device = backend_device(backend);
  const Tensor x_dev = to_backend(x, backend, c.dtype), dy_dev = to_backend(dy, backend, c.dtype);
  const Tensor gamma_dev = gamma.to(device), beta_dev = beta.to(device);
  const Tensor ref_mean_dev = ref.mean.to(device), ref_rstd_dev = ref.rstd.to(device);
  const Tensor y = nan_tensor({rows, cols}, backend, c.dtype), dx = nan_tensor({rows, cols}, backend, c.dtype);
  const Tensor mean = nan_tensor({rows}, backend, DType::F32), rstd = nan_tensor({rows}, backend, DType::F32);
  const Tensor param_grads = nan_tensor({2, cols}, backend, DType::F32);  // dgamma, then dbeta
  const Tensor dgamma = param_grads.narrow(0, 0, 1).view({cols}), dbeta = param_grads.narrow(0, 1, 1).view({cols});

  kernels::LayerNormArgs args;
  args.rows = rows;
  args.cols = cols;
  args.dtype = c.dtype;
  args.eps = eps;
  args.x = x_dev.raw_data();
  args.gamma = gamma_dev.data<float>();
  args.beta = beta_dev.data<float>();
  args.y = y.raw_data();
  args.mean = mean.data<float>();
  args.rstd = rstd.data<float>();
  HEED_RUN_KERNEL(device, layer_norm_forward, args);

  args.mean = ref_mean_dev.data<float>();
  args.rstd = ref_rstd_dev.data<float>();
  args.dy = dy_dev.raw_data();
  args.dx = dx.raw_data();
  args.param_grads = param_grads.data<float>();
  // The workspace size is host arithmetic, the same in both builds; the simulator's is always linked.
  const size_t workspace_bytes = kernels::layer_norm_backward_workspace_bytes<kernels::Backend::Sim>(args);
  const Tensor workspace = nan_tensor({static_cast<int64_t>(workspace_bytes / sizeof(float))}, backend, DType::F32);
  args.workspace = workspace.raw_data();
  HEED_RUN_KERNEL(device, layer_norm_backward, args);

  CheckResult result{"layernorm " + c.str(), {}};
  const double row_terms = static_cast<double>(cols) / 32;
  const std::vector<float> xv = host_values(x), mv = host_values(ref.mean), rv = host_values(ref.rstd);
  result.comparisons.push_back(
      within_twice_plain("y", y, ref.y, c.dtype, (row_terms + 16) * kFp32Unit * max_abs(host_values(ref.y))));
  result.comparisons.push_back({"mean", max_abs_difference(host_values(mean), mv),
                                (row_terms + 8) * kFp32Unit * max_abs(xv), ""});
  WorstRatio rstd_check("rstd", "row");
  const std::vector<float> rstd_got = host_values(rstd);
  for (int64_t i = 0; i < rows; ++i)
    rstd_check.add(rstd_got[i], rv[i], (row_terms + 8) * kFp32Unit * rv[i], [&] { return fmt::format("row {}", i); });
  result.comparisons.push_back(rstd_check.comparison());
  result.comparisons.push_back(within_twice_plain("dx", dx, ref_grads.dx, c.dtype,
                                                  (row_terms + 16) * kFp32Unit * max_abs(host_values(ref_grads.dx))));

  // Column sums of |dy * xhat| and |dy| bound the order-dependent error of dgamma and dbeta.
  const std::vector<float> dyv = host_values(dy);
  std::vector<double> abs_dgamma(cols, 0.0), abs_dbeta(cols, 0.0);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      const double g = std::fabs(dyv[i * cols + j]);
      abs_dgamma[j] += g * std::fabs((xv[i * cols + j] - mv[i]) * rv[i]);
      abs_dbeta[j] += g;
    }
  const std::vector<float> dg = host_values(dgamma), dg_ref = host_values(ref_grads.dgamma);
  const std::vector<float> db = host_values(dbeta), db_ref = host_values(ref_grads.dbeta);
  const double column_terms = 64 + row_terms;
  WorstRatio dgamma_check("dgamma", "column"), dbeta_check("dbeta", "column");
  for (int64_t j = 0; j < cols; ++j) {
    auto where = [&] { return fmt::format("column {}", j); };
    dgamma_check.add(dg[j], dg_ref[j], column_terms * kFp32Unit * abs_dgamma[j], where);
    dbeta_check.add(db[j], db_ref[j], column_terms * kFp32Unit * abs_dbeta[j], where);
  }
  result.comparisons.push_back(dgamma_check.comparison());
  result.comparisons.push_back(dbeta_check.comparison());
  return result;
}

}  // namespace heed::selftest
