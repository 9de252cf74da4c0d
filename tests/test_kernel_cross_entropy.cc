// The fused cross-entropy kernels (kernels/cross_entropy.cu) against the CPU op, on the simulator and, when
// there is one, on the GPU.
//
// The reference is heed::ops::cross_entropy_forward/_backward in fp32 on the logits rounded to the
// kernel's storage type. Vocabulary sizes cover V = 1, V below, at and above the 256 threads of a block
// (thread tails that see no logit, or one logit fewer), and wide rows (5003, and 32003 as a real vocabulary); every fourth row's target is
// ignore_index, one case ignores every row, and targets include class 0 and V - 1. Logits span [-6, 6],
// so the row maximum moves often during the online logsumexp. Smoothing 0 and 0.1. Outputs start as NaN.
//
// Tolerances. The kernel and the CPU op compute lse from the same rounded logits in fp32 with different
// summation orders (the kernel: V / 256 terms a thread, then 8 + 5 merge levels; the CPU op: blocks of 512
// in vector lanes, then V / 512 blocks) and different exponentials (expf: 1-2 ulps; the CPU's exp_approx:
// 1.5e-7 relative). The sum of e^(x - max) is within (V / 128 + 64) u relative (u = 2^-24, the summation
// bound n u with n the larger of the two orders' depths, doubled), and so lse within that much absolutely
// plus 4 ulps of |lse|. A row's loss adds the smoothing term's mean of the logits, whose fp32 sum is within
// (V / 256 + 16) u sum|x| / V. The per-row bounds are summed for loss_sum and nll_sum, which the CPU adds in
// double. A wrong maximum, a lost rescale or a wrong smoothing weight moves a loss by 1e-3 or more.
// dlogits = grad_scale (p - eps / V - ...): the error of p is p times the lse error plus expf's 2 ulps, so
// fp32 outputs are within |grad_scale| (lse bound + 4 u); 16-bit outputs within twice the error of a plain
// 16-bit gradient (the fp32 reference rounded once) plus that. Measured on the simulator: loss sums within
// 0.11 of their bounds, fp32 dlogits within 0.01, 16-bit dlogits 0.50 (the plain rounding error itself).
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "core/kernel_args.h"
#include "gradcheck.h"
#include "heed/ops/cross_entropy.h"
#include "kernel_testing.h"
#include "sim/cuda_sim.h"
#include "kernels/cross_entropy.h"

using namespace heed;
using heed::kernels::Backend;

namespace {

constexpr int64_t kIgnore = -100;

double max_error(const std::vector<float>& got, const std::vector<float>& want) {
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double e = std::fabs(double(got[i]) - want[i]);
    if (!(e <= worst)) worst = e;  // NaN fails every check
  }
  return worst;
}

// Targets cycle through the classes from V - 1 down (so 0 and V - 1 both occur); every fourth row, or all
// rows, is ignored.
Tensor make_targets(int64_t rows, int64_t classes, bool ignore_all) {
  std::vector<int32_t> t(rows);
  for (int64_t i = 0; i < rows; ++i)
    t[i] = (ignore_all || i % 4 == 2) ? static_cast<int32_t>(kIgnore)
                                      : static_cast<int32_t>((classes - 1 - i * 7919 % classes + classes) % classes);
  return Tensor::from_vector(t, {rows});
}

void check_cross_entropy(Backend backend, DType dtype, int64_t rows, int64_t classes, float smoothing,
                         bool ignore_all, uint32_t seed) {
  INFO("rows " << rows << " V " << classes << " smoothing " << smoothing << " ignore_all " << ignore_all << " "
               << testing::dtype_label(dtype));
  const Tensor logits = testing::random_tensor({rows, classes}, seed, -6.0f, 6.0f).to(dtype).to(DType::F32);
  const Tensor targets = make_targets(rows, classes, ignore_all);
  const ops::CrossEntropyResult ref = ops::cross_entropy_forward(logits, targets, kIgnore, smoothing);
  const float grad_scale = ref.count > 0 ? 1.0f / static_cast<float>(ref.count) : 1.0f;
  const Tensor ref_dlogits = ops::cross_entropy_backward(logits, targets, ref.lse, kIgnore, smoothing, grad_scale);

  const Device device = testing::backend_device(backend);
  const Tensor logits_dev = testing::to_backend(logits, backend, dtype), targets_dev = targets.to(device);
  const Tensor loss = testing::nan_tensor({rows}, backend, DType::F32), nll = testing::nan_tensor({rows}, backend, DType::F32);
  const Tensor lse = testing::nan_tensor({rows}, backend, DType::F32);
  const Tensor ref_lse_dev = ref.lse.to(device);
  const Tensor dlogits = testing::nan_tensor({rows, classes}, backend, dtype);

  kernels::CrossEntropyArgs args;
  args.rows = rows;
  args.classes = classes;
  args.dtype = dtype;
  args.logits = logits_dev.raw_data();
  args.targets = targets_dev.data<int32_t>();
  args.ignore_index = kIgnore;
  args.smoothing = smoothing;
  args.loss = loss.data<float>();
  args.nll = nll.data<float>();
  args.lse = lse.data<float>();
  HEED_RUN_KERNEL(device, cross_entropy_forward, args);

  const std::vector<float> lse_got = testing::values(lse), lse_want = testing::values(ref.lse), loss_got = testing::values(loss),
                           nll_got = testing::values(nll), x = testing::values(logits);
  const std::vector<int32_t> t(targets.data<int32_t>(), targets.data<int32_t>() + rows);
  const double sum_bound = (static_cast<double>(classes) / 128 + 64) * testing::kFp32Unit;
  double loss_sum = 0, nll_sum = 0, loss_bound = 0, nll_bound = 0;
  for (int64_t i = 0; i < rows; ++i) {
    INFO("row " << i << ": lse " << lse_got[i] << " vs " << lse_want[i] << ", loss " << loss_got[i]);
    if (t[i] == kIgnore) {
      CHECK(lse_got[i] == 0.0f);
      CHECK(loss_got[i] == 0.0f);
      CHECK(nll_got[i] == 0.0f);
      continue;
    }
    const double lse_bound = sum_bound + 4 * testing::kFp32Unit * std::fabs(lse_want[i]);
    CHECK(std::fabs(double(lse_got[i]) - lse_want[i]) <= lse_bound);
    double abs_x = 0;
    for (int64_t j = 0; j < classes; ++j) abs_x += std::fabs(x[i * classes + j]);
    loss_sum += loss_got[i];
    nll_sum += nll_got[i];
    nll_bound += lse_bound + 2 * testing::kFp32Unit * std::fabs(nll_got[i]);
    loss_bound += lse_bound + 2 * testing::kFp32Unit * std::fabs(loss_got[i]) +
                  smoothing * (static_cast<double>(classes) / 256 + 16) * testing::kFp32Unit * abs_x / classes;
  }
  INFO("loss_sum " << loss_sum << " vs " << ref.loss_sum.item() << " (bound " << loss_bound << "), nll_sum "
                   << nll_sum << " vs " << ref.nll_sum.item() << " (bound " << nll_bound << ")");
  CHECK(std::fabs(loss_sum - ref.loss_sum.item()) <= loss_bound);
  CHECK(std::fabs(nll_sum - ref.nll_sum.item()) <= nll_bound);

  args.lse = ref_lse_dev.data<float>();  // the backward pass is checked on its own
  args.grad_scale = grad_scale;
  args.dlogits = dlogits.raw_data();
  HEED_RUN_KERNEL(device, cross_entropy_backward, args);

  const std::vector<float> want = testing::values(ref_dlogits);
  const double plain = dtype == DType::F32 ? 0.0 : max_error(testing::values(ref_dlogits.to(dtype)), want);
  const double error = max_error(testing::values(dlogits), want);
  const double bound = 2 * plain + std::fabs(grad_scale) * (sum_bound + 4 * testing::kFp32Unit);
  INFO("dlogits: error " << error << ", plain 16-bit error " << plain << ", bound " << bound);
  CHECK(error <= bound);
}

void check_all_shapes(Backend backend) {
  struct Case {
    int64_t rows, classes;
    float smoothing;
    bool ignore_all;
  };
  const Case cases[] = {{5, 1, 0.1f, false},     {13, 37, 0.0f, false},  {13, 37, 0.1f, false},
                        {6, 255, 0.1f, false},   {7, 256, 0.0f, false},  {9, 257, 0.1f, false},
                        {4, 5003, 0.1f, false},  {3, 64, 0.1f, true},    {33, 1000, 0.0f, false},
                        {8, 32003, 0.1f, false}};
  uint32_t seed = 500;
  for (DType dtype : {DType::F32, DType::BF16, DType::F16})
    for (const Case& c : cases)
      check_cross_entropy(backend, dtype, c.rows, c.classes, c.smoothing, c.ignore_all, seed += 10);
}

}  // namespace

TEST_CASE("cross_entropy kernels match the CPU op on the simulator", "[kernel][cross_entropy]") {
  // In order, then under the adversarial schedules, which let one warp run ahead (a missing barrier then
  // gives a wrong result) and shuffle the order of blocks.
  using cuda_sim::Schedule;
  for (Schedule schedule : {Schedule::InOrder, Schedule::WarpAhead, Schedule::Random}) {
    const cuda_sim::ScheduleScope scope(schedule, 17);
    check_all_shapes(Backend::Sim);
  }
}

TEST_CASE("cross_entropy kernels match the CPU op on the GPU", "[kernel][cross_entropy][gpu]") {
  if (!testing::gpu_or_skip()) return;
  check_all_shapes(Backend::Gpu);
}
