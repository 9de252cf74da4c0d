// The fused bias + activation + dropout + residual kernels (kernels/bias_act_dropout.cu) against the CPU
// ops they fuse, composed as the modules compose them: ops::add_bias, ops::activation_forward,
// ops::dropout_forward and ops::add forward; ops::dropout_backward, ops::activation_backward and
// ops::sum_rows (the bias gradient) backward. On the simulator and, when there is one, on the GPU.
//
// Inputs are rounded to the kernel's storage type first, so input rounding is not counted as error; x spans
// [-3, 3] so that every activation's regions are exercised. Cases: every activation (none, ReLU, GELU,
// SiLU) with dropout 0.25, a residual and a bias, and without dropout or residual; one case without a
// bias; column counts 1, 37 (not a multiple of the 4 columns a lane or of a warp's 128), 64, 67 and 1027;
// row counts on both sides of the 128 rows of a column-sum chunk (130 and 260 rows: two and three
// chunks). A dropout mask that differs from the CPU's in a single element moves that element by O(1), far
// outside any tolerance below.
//
// Tolerances (u = 2^-24). The kernel uses erff and expf where the CPU op uses its polynomial normal CDF
// (1.5e-7 absolute) and exp (1.5e-7 relative), a few u either way, on a pre-activation of magnitude
// |v| <= 4: the activation differs by at most 16 u (1 + |v|) (relative to its input scale), and the result
// after the dropout scale s and the residual add by 16 u (s (1 + |v|) + |y|). The slope likewise: dx within
// 16 u s |dy| (1 + |v|). 16-bit outputs may in addition be off by twice the error of a plain 16-bit
// computation (the fp32 reference rounded once). dbias (fp32) sums dx over rows in another order than
// sum_rows: per column, 64 u times the sum of |dx| (both sides add at most 64 terms in fp32 before the
// next level) plus the sum of the elements' own allowances. Measured on the simulator: fp32 y and dx within
// 0.12 of their bounds, 16-bit ones 0.50 (the plain rounding error itself).
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "core/kernel_args.h"
#include "gradcheck.h"
#include "heed/ops/activation.h"
#include "heed/ops/dropout.h"
#include "heed/ops/elementwise.h"
#include "kernel_testing.h"
#include "sim/cuda_sim.h"
#include "kernels/bias_act_dropout.h"

using namespace heed;
using heed::kernels::Backend;
using heed::kernels::BiasActivation;

namespace {


ops::Activation cpu_activation(BiasActivation act) {
  return act == BiasActivation::ReLU ? ops::Activation::ReLU
                                     : act == BiasActivation::GELU ? ops::Activation::GELU : ops::Activation::SiLU;
}

struct Case {
  int64_t rows, cols;
  BiasActivation act;
  float dropout_p;
  bool residual, bias;
};

// Every element within its own bound, plus twice the plain 16-bit rounding error of the whole tensor.
void check_elements(const char* what, const std::vector<float>& got, const Tensor& reference, DType dtype,
                    const std::vector<double>& allowance) {
  const std::vector<float> want = testing::values(reference);
  double plain = 0;
  if (dtype != DType::F32) {
    const std::vector<float> rounded = testing::values(reference.to(dtype));
    for (size_t i = 0; i < want.size(); ++i) plain = std::max(plain, std::fabs(double(rounded[i]) - want[i]));
  }
  for (size_t i = 0; i < want.size(); ++i) {
    const double error = std::fabs(double(got[i]) - want[i]), bound = 2 * plain + allowance[i];
    INFO(what << " element " << i << ": " << got[i] << " vs " << want[i] << ", error " << error << ", bound "
              << bound << " (plain 16-bit error " << plain << ")");
    if (!(error <= bound)) CHECK(error <= bound);  // report the first failures, not every element
  }
}

void check_case(Backend backend, DType dtype, const Case& c, uint32_t seed) {
  INFO("rows " << c.rows << " cols " << c.cols << " act " << static_cast<int>(c.act) << " p " << c.dropout_p
               << " residual " << c.residual << " bias " << c.bias << " " << testing::dtype_label(dtype));
  const RandomKey key{77, 5, 9};
  const Tensor x = testing::random_tensor({c.rows, c.cols}, seed, -3.0f, 3.0f).to(dtype).to(DType::F32);
  const Tensor residual = testing::random_tensor({c.rows, c.cols}, seed + 1).to(dtype).to(DType::F32);
  const Tensor dy = testing::random_tensor({c.rows, c.cols}, seed + 2).to(dtype).to(DType::F32);
  const Tensor bias = testing::random_tensor({c.cols}, seed + 3);

  // The CPU composition.
  const Tensor pre = c.bias ? ops::add_bias(x, bias) : x;
  const Tensor activated = c.act == BiasActivation::None ? pre : ops::activation_forward(pre, cpu_activation(c.act));
  const Tensor dropped = c.dropout_p > 0 ? ops::dropout_forward(activated, c.dropout_p, key) : activated;
  const Tensor y_ref = c.residual ? ops::add(residual, dropped) : dropped;
  const Tensor g = c.dropout_p > 0 ? ops::dropout_backward(dy, c.dropout_p, key) : dy;
  const Tensor dx_ref = c.act == BiasActivation::None ? g : ops::activation_backward(g, pre, cpu_activation(c.act));
  const Tensor dbias_ref = ops::sum_rows(dx_ref);

  const Device device = testing::backend_device(backend);
  const Tensor x_dev = testing::to_backend(x, backend, dtype), residual_dev = testing::to_backend(residual, backend, dtype);
  const Tensor dy_dev = testing::to_backend(dy, backend, dtype), bias_dev = bias.to(device);
  const Tensor y = testing::nan_tensor({c.rows, c.cols}, backend, dtype), dx = testing::nan_tensor({c.rows, c.cols}, backend, dtype);
  const Tensor dbias = testing::nan_tensor({c.cols}, backend, DType::F32);

  kernels::BiasActDropoutArgs args;
  args.rows = c.rows;
  args.cols = c.cols;
  args.dtype = dtype;
  args.x = x_dev.raw_data();
  args.bias = c.bias ? bias_dev.data<float>() : nullptr;
  args.act = c.act;
  args.dropout_p = c.dropout_p;
  args.dropout_key = key;
  args.residual = c.residual ? residual_dev.raw_data() : nullptr;
  args.y = y.raw_data();
  HEED_RUN_KERNEL(device, bias_act_dropout_forward, args);

  const float scale = c.dropout_p > 0 ? 1.0f / (1.0f - c.dropout_p) : 1.0f;
  const std::vector<float> pre_v = testing::values(pre), y_want = testing::values(y_ref), dy_v = testing::values(dy), dx_want = testing::values(dx_ref);
  const int64_t n = c.rows * c.cols;
  std::vector<double> y_allowance(n), dx_allowance(n);
  for (int64_t i = 0; i < n; ++i) {
    y_allowance[i] = 16 * testing::kFp32Unit * (scale * (1 + std::fabs(pre_v[i])) + std::fabs(y_want[i]));
    dx_allowance[i] = 16 * testing::kFp32Unit * scale * std::fabs(dy_v[i]) * (1 + std::fabs(pre_v[i]));
  }
  check_elements("y", testing::values(y), y_ref, dtype, y_allowance);

  args.dy = dy_dev.raw_data();
  args.dx = dx.raw_data();
  args.dbias = c.bias ? dbias.data<float>() : nullptr;
  // The workspace size is host arithmetic, the same in both builds; the simulator's is always linked.
  const size_t workspace_bytes = kernels::bias_act_dropout_backward_workspace_bytes<Backend::Sim>(args);
  const Tensor workspace =
      testing::nan_tensor({std::max<int64_t>(1, static_cast<int64_t>(workspace_bytes / sizeof(float)))}, backend, DType::F32);
  args.workspace = workspace.raw_data();
  HEED_RUN_KERNEL(device, bias_act_dropout_backward, args);
  check_elements("dx", testing::values(dx), dx_ref, dtype, dx_allowance);

  if (!c.bias) return;
  const std::vector<float> db = testing::values(dbias), db_want = testing::values(dbias_ref);
  for (int64_t j = 0; j < c.cols; ++j) {
    double abs_sum = 0, allowance = 0;
    for (int64_t i = 0; i < c.rows; ++i) {
      abs_sum += std::fabs(dx_want[i * c.cols + j]);
      allowance += dx_allowance[i * c.cols + j];
    }
    INFO("dbias column " << j << ": " << db[j] << " vs " << db_want[j]);
    CHECK(std::fabs(double(db[j]) - db_want[j]) <= 64 * testing::kFp32Unit * abs_sum + allowance);
  }
}

void check_all(Backend backend) {
  uint32_t seed = 900;
  for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
    for (BiasActivation act :
         {BiasActivation::None, BiasActivation::ReLU, BiasActivation::GELU, BiasActivation::SiLU}) {
      check_case(backend, dtype, {130, 37, act, 0.25f, true, true}, seed += 10);
      check_case(backend, dtype, {7, 64, act, 0.0f, false, true}, seed += 10);
    }
    check_case(backend, dtype, {5, 1, BiasActivation::GELU, 0.25f, true, true}, seed += 10);
    check_case(backend, dtype, {3, 1027, BiasActivation::ReLU, 0.5f, true, false}, seed += 10);
    check_case(backend, dtype, {260, 67, BiasActivation::GELU, 0.1f, true, true}, seed += 10);
  }
}

}  // namespace

TEST_CASE("bias_act_dropout kernels match the CPU ops on the simulator", "[kernel][bias_act_dropout]") {
  // In order, then under the adversarial schedules, which let one warp run ahead (a missing barrier then
  // gives a wrong result) and shuffle the order of blocks.
  using cuda_sim::Schedule;
  for (Schedule schedule : {Schedule::InOrder, Schedule::WarpAhead, Schedule::Random}) {
    const cuda_sim::ScheduleScope scope(schedule, 17);
    check_all(Backend::Sim);
  }
}

TEST_CASE("bias_act_dropout kernels match the CPU ops on the GPU", "[kernel][bias_act_dropout][gpu]") {
  if (!testing::gpu_or_skip()) return;
  check_all(Backend::Gpu);
}
