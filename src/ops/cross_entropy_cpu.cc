// Label-smoothed cross-entropy on the CPU, fused over the vocabulary: no probability tensor is formed.
//
// With lse = log sum_v e^(x_v), -log p_v = lse - x_v, so a row's loss needs only lse, x_target and
// sum_v x_v: (1 - eps) (lse - x_t) + eps (lse - sum_v x_v / V). All three come from one sweep over the
// row in blocks of kBlock logits (an online logsumexp: each block's maximum and sum of exponentials are
// merged into the running pair, rescaling the older sum), and each block is read twice while it is in L1.
// Rows are split over threads; their losses are added in row order, in double, so the sums do not depend
// on the thread count.
//
// The backward pass recomputes p_v = e^(x_v - lse) from the saved lse:
// d x_v = grad_scale (p_v - eps / V - (1 - eps) [v = t]).
#include <cmath>
#include <vector>

#include "ops/cpu_math.h"
#include "ops/cross_entropy_backends.h"

namespace heed::ops::cpu {

namespace {

constexpr int64_t kParallelMin = 1 << 14;  // elements; below this, thread start-up costs more than the loop
constexpr int64_t kBlock = 512;            // logits per online-logsumexp step: 2 KiB, resident in L1

}  // namespace

void cross_entropy_forward(const Tensor& logits, const Tensor& targets, int64_t ignore_index, float smoothing,
                           Tensor& lse, Tensor& loss_sum, Tensor& nll_sum) {
  const int64_t rows = logits.size(0), classes = logits.size(1);
  const float* px = logits.data<float>();
  const int32_t* pt = targets.data<int32_t>();
  float* plse = lse.data<float>();
  std::vector<double> loss(rows, 0.0), nll(rows, 0.0);
#pragma omp parallel for if (rows * classes > kParallelMin)
  for (int64_t row = 0; row < rows; ++row) {
    if (pt[row] == ignore_index) {
      plse[row] = 0.0f;
      continue;
    }
    const float* xr = px + row * classes;
    float run_max = -INFINITY, run_sum = 0.0f;
    double sum_x = 0;
    for (int64_t b = 0; b < classes; b += kBlock) {
      const int64_t end = std::min(classes, b + kBlock);
      float block_max = -INFINITY, block_x = 0.0f;
#pragma omp simd reduction(max : block_max) reduction(+ : block_x)
      for (int64_t j = b; j < end; ++j) {
        block_max = xr[j] > block_max ? xr[j] : block_max;
        block_x += xr[j];
      }
      const float m = block_max > run_max ? block_max : run_max;
      float block_sum = 0.0f;
#pragma omp simd reduction(+ : block_sum)
      for (int64_t j = b; j < end; ++j) block_sum += exp_approx(xr[j] - m);
      run_sum = run_sum * exp_approx(run_max - m) + block_sum;
      run_max = m;
      sum_x += block_x;
    }
    const double row_lse = static_cast<double>(run_max) + std::log(static_cast<double>(run_sum));
    const double target_nll = row_lse - xr[pt[row]];
    const double mean_nll = row_lse - sum_x / static_cast<double>(classes);
    plse[row] = static_cast<float>(row_lse);
    nll[row] = target_nll;
    loss[row] = (1.0 - smoothing) * target_nll + smoothing * mean_nll;
  }
  double loss_total = 0, nll_total = 0;
  for (int64_t row = 0; row < rows; ++row) {
    loss_total += loss[row];
    nll_total += nll[row];
  }
  loss_sum.data<float>()[0] = static_cast<float>(loss_total);
  nll_sum.data<float>()[0] = static_cast<float>(nll_total);
}

void cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse, int64_t ignore_index,
                            float smoothing, float grad_scale_alone, const Tensor& dloss, Tensor& dlogits) {
  const float grad_scale = dloss.defined() ? grad_scale_alone * dloss.item() : grad_scale_alone;
  const int64_t rows = logits.size(0), classes = logits.size(1);
  const float* px = logits.data<float>();
  const int32_t* pt = targets.data<int32_t>();
  const float* plse = lse.data<float>();
  float* pd = dlogits.data<float>();
  const float uniform = grad_scale * smoothing / static_cast<float>(classes);
  const float on_target = grad_scale * (1.0f - smoothing);
#pragma omp parallel for if (rows * classes > kParallelMin)
  for (int64_t row = 0; row < rows; ++row) {
    float* dr = pd + row * classes;
    if (pt[row] == ignore_index) {
#pragma omp simd
      for (int64_t j = 0; j < classes; ++j) dr[j] = 0.0f;
      continue;
    }
    const float* xr = px + row * classes;
    const float l = plse[row];
#pragma omp simd
    for (int64_t j = 0; j < classes; ++j) dr[j] = grad_scale * exp_approx(xr[j] - l) - uniform;
    dr[pt[row]] -= on_target;
  }
}

}  // namespace heed::ops::cpu
