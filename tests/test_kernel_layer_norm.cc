// The LayerNorm kernels (kernels/layer_norm.cu) against the CPU op, on the simulator and, when there is
// one, on the GPU.
//
// The reference is heed::ops::layer_norm_forward/_backward (double statistics) in fp32 on the inputs
// rounded to the kernel's storage type, so input rounding is not counted as error. Shapes cover one warp's
// row path (D <= 1024: D = 1, 37, 64, 1024) with row counts that are not multiples of the 8 rows a block,
// and the block-per-row path (D = 1500, 4099); rows sit around 2 with a spread of 1, so that the mean's
// fp32 rounding matters, and two fp32 cases sit around 300 with a spread of 0.1, where only the
// residual-mean correction keeps y accurate. Outputs start as NaN, so
// an element the kernel fails to write cannot pass.
//
// Tolerances. The kernel computes in fp32; it differs from the reference by summation order (each lane
// sums D / 32 terms, then 5 butterfly levels or a block reduction: n <= D / 32 + 10 roundings, the classic
// bound n u sum|terms|, u = 2^-24), rsqrtf's 2 ulps, and fp32 where the CPU forward uses double. So for
// fp32 outputs: y, dx within (D / 32 + 16) u times the largest |reference| (an error of one term of the
// row in D would be far larger: about |x| / D); mean within (D / 32 + 8) u max|x|; rstd within
// (D / 32 + 8) u relative. For 16-bit outputs the kernel must stay within twice the error of a plain
// 16-bit LayerNorm (the fp32 reference rounded once to 16 bits, computed here), plus that fp32 allowance.
// dgamma and dbeta (fp32, column sums over rows) differ in order: both sides add at most 32 fp32 terms
// before moving to double, so each column is within (64 + D / 32) u times the sum of |terms| (the D / 32
// for the row statistics that enter xhat). Measured on the simulator: 16-bit errors were 0.49-0.50 of their
// bounds (the kernel rounds to the same 16-bit value as the reference, up to ties), fp32 errors at most
// 0.15 of theirs.
//
// The simulator runs blocks one after another, so it cannot show races between blocks; these kernels
// have none (each block writes its own rows, its own chunk's partials, or its own columns).
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "core/kernel_args.h"
#include "gradcheck.h"
#include "heed/ops/layer_norm.h"
#include "kernel_testing.h"
#include "sim/cuda_sim.h"
#include "kernels/layer_norm.h"

using namespace heed;
using heed::kernels::Backend;

namespace {


double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, std::fabs(double(x)));
  return m;
}

// Largest |got - want|; NaN if got has a NaN, which fails every check.
double max_error(const std::vector<float>& got, const std::vector<float>& want) {
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double e = std::fabs(double(got[i]) - want[i]);
    if (!(e <= worst)) worst = e;
  }
  return worst;
}

// An activation output: the fp32 allowance, plus for 16-bit twice the error of rounding the reference.
void check_activation(const char* what, const std::vector<float>& got, const Tensor& reference, DType dtype,
                      double fp32_allowance) {
  const std::vector<float> want = testing::values(reference);
  double plain = 0;
  if (dtype != DType::F32) plain = max_error(testing::values(reference.to(dtype)), want);
  const double error = max_error(got, want), bound = 2 * plain + fp32_allowance;
  INFO(what << ": error " << error << ", plain 16-bit error " << plain << ", bound " << bound);
  CHECK(error <= bound);
}

void check_layer_norm(Backend backend, DType dtype, int64_t rows, int64_t cols, uint32_t seed, float lo = 1.0f,
                      float hi = 3.0f) {
  INFO("rows " << rows << " D " << cols << " x in [" << lo << ", " << hi << "] " << testing::dtype_label(dtype));
  const float eps = 1e-5f;
  const Tensor x = testing::random_tensor({rows, cols}, seed, lo, hi).to(dtype).to(DType::F32);
  const Tensor dy = testing::random_tensor({rows, cols}, seed + 1).to(dtype).to(DType::F32);
  const Tensor gamma = testing::random_tensor({cols}, seed + 2, 0.5f, 1.5f);
  const Tensor beta = testing::random_tensor({cols}, seed + 3);
  const ops::LayerNormResult ref = ops::layer_norm_forward(x, gamma, beta, eps);
  const ops::LayerNormGrads ref_grads = ops::layer_norm_backward(dy, x, gamma, ref.mean, ref.rstd);

  const Device device = testing::backend_device(backend);
  const Tensor x_dev = testing::to_backend(x, backend, dtype), dy_dev = testing::to_backend(dy, backend, dtype);
  const Tensor gamma_dev = gamma.to(device), beta_dev = beta.to(device);
  // The backward pass reads the reference statistics, so that it is checked on its own.
  const Tensor ref_mean_dev = ref.mean.to(device), ref_rstd_dev = ref.rstd.to(device);
  const Tensor y = testing::nan_tensor({rows, cols}, backend, dtype), dx = testing::nan_tensor({rows, cols}, backend, dtype);
  const Tensor mean = testing::nan_tensor({rows}, backend, DType::F32), rstd = testing::nan_tensor({rows}, backend, DType::F32);
  const Tensor dgamma = testing::nan_tensor({cols}, backend, DType::F32), dbeta = testing::nan_tensor({cols}, backend, DType::F32);

  kernels::LayerNormArgs args;
  args.rows = rows;
  args.cols = cols;
  args.dtype = dtype;
  args.eps = eps;
  args.x = x_dev.raw_data();
  args.gamma = gamma_dev.data<float>();
  args.beta = beta_dev.data<float>();
  args.y = y.raw_data();
  args.mean = mean.data<float>();
  args.rstd = rstd.data<float>();
  HEED_RUN_KERNEL(device, layer_norm_forward, args);

  const double row_terms = static_cast<double>(cols) / 32;
  check_activation("y", testing::values(y), ref.y, dtype, (row_terms + 16) * testing::kFp32Unit * max_abs(testing::values(ref.y)));
  CHECK(max_error(testing::values(mean), testing::values(ref.mean)) <= (row_terms + 8) * testing::kFp32Unit * max_abs(testing::values(x)));
  const std::vector<float> rstd_got = testing::values(rstd), rstd_want = testing::values(ref.rstd);
  for (size_t i = 0; i < rstd_got.size(); ++i) {
    INFO("row " << i << ": rstd " << rstd_got[i] << " vs " << rstd_want[i]);
    CHECK(std::fabs(double(rstd_got[i]) - rstd_want[i]) <= (row_terms + 8) * testing::kFp32Unit * rstd_want[i]);
  }

  args.mean = ref_mean_dev.data<float>();
  args.rstd = ref_rstd_dev.data<float>();
  args.dy = dy_dev.raw_data();
  args.dx = dx.raw_data();
  args.dgamma = dgamma.data<float>();
  args.dbeta = dbeta.data<float>();
  // The workspace size is host arithmetic, the same in both builds; the simulator's is always linked.
  const size_t workspace_bytes = kernels::layer_norm_backward_workspace_bytes<Backend::Sim>(args);
  const Tensor workspace = testing::nan_tensor({static_cast<int64_t>(workspace_bytes / sizeof(float))}, backend, DType::F32);
  args.workspace = workspace.raw_data();
  HEED_RUN_KERNEL(device, layer_norm_backward, args);

  check_activation("dx", testing::values(dx), ref_grads.dx, dtype, (row_terms + 16) * testing::kFp32Unit * max_abs(testing::values(ref_grads.dx)));

  // Column sums of |dy * xhat| and |dy| bound the order-dependent error of dgamma and dbeta.
  const std::vector<float> xv = testing::values(x), dyv = testing::values(dy), mv = testing::values(ref.mean), rv = testing::values(ref.rstd);
  std::vector<double> abs_dgamma(cols, 0.0), abs_dbeta(cols, 0.0);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      const double g = std::fabs(dyv[i * cols + j]);
      abs_dgamma[j] += g * std::fabs((xv[i * cols + j] - mv[i]) * rv[i]);
      abs_dbeta[j] += g;
    }
  const std::vector<float> dg = testing::values(dgamma), dg_ref = testing::values(ref_grads.dgamma);
  const std::vector<float> db = testing::values(dbeta), db_ref = testing::values(ref_grads.dbeta);
  const double column_terms = 64 + row_terms;
  for (int64_t j = 0; j < cols; ++j) {
    INFO("column " << j << ": dgamma " << dg[j] << " vs " << dg_ref[j] << ", dbeta " << db[j] << " vs " << db_ref[j]);
    CHECK(std::fabs(double(dg[j]) - dg_ref[j]) <= column_terms * testing::kFp32Unit * abs_dgamma[j]);
    CHECK(std::fabs(double(db[j]) - db_ref[j]) <= column_terms * testing::kFp32Unit * abs_dbeta[j]);
  }
}

void check_all_shapes(Backend backend) {
  struct Shape2 {
    int64_t rows, cols;
  };
  const Shape2 shapes[] = {{7, 1}, {13, 37}, {33, 64}, {9, 1024}, {5, 1500}, {3, 4099}, {300, 48}, {64, 512}};
  uint32_t seed = 100;
  for (DType dtype : {DType::F32, DType::BF16, DType::F16})
    for (const Shape2& s : shapes) check_layer_norm(backend, dtype, s.rows, s.cols, seed += 10);
  // A large mean and a small spread: the fp32 mean is off by up to half an ulp of 300 (1.5e-5), 3e-4 of
  // the spread, which only the residual-mean correction removes from y.
  for (const Shape2& s : {Shape2{9, 1000}, Shape2{4, 3000}})
    check_layer_norm(backend, DType::F32, s.rows, s.cols, seed += 10, 299.95f, 300.05f);
}

}  // namespace

TEST_CASE("layer_norm kernels match the CPU op on the simulator", "[kernel][layer_norm]") {
  // In order, then under the adversarial schedules, which let one warp run ahead (a missing barrier then
  // gives a wrong result) and shuffle the order of blocks.
  using cuda_sim::Schedule;
  for (Schedule schedule : {Schedule::InOrder, Schedule::WarpAhead, Schedule::Random}) {
    const cuda_sim::ScheduleScope scope(schedule, 17);
    check_all_shapes(Backend::Sim);
  }
}

TEST_CASE("layer_norm kernels match the CPU op on the GPU", "[kernel][layer_norm][gpu]") {
  if (!testing::gpu_or_skip()) return;
  check_all_shapes(Backend::Gpu);
}
