// log_softmax against a double-precision reference, with large and masked logits, and its GPU path (the
// simulator always, a GPU when there is one) against the CPU op.
//
// Error bound, u = 2^-24, for a row of V values spanning S = max - min: x - max rounds once (u S); the
// sum of e^(x - max) carries exp's error (under 2.5 u relative on the CPU, cpu_math.h), the rounding of
// its argument (u S relative) and its own additions (the CPU adds V/8 terms per vector lane and then the
// lanes, the GPU V/256 per thread and then 8 tree levels: under (V/8 + 16) u relative either way), which
// log(sum) turns into the same absolute error plus its own rounding (u log V); the final subtraction
// rounds once more (u |y|, |y| <= S + log V). In all, |y - exact| <= (V/8 + 16 + 2.5 + 3 S + 3 log V) u,
// which (V/8 + 40 + 3 S) u bounds for V up to 1000.
#include <catch2/catch.hpp>

#include <cmath>

#include "gradcheck.h"
#include "heed/ops/log_softmax.h"
#include "kernel_testing.h"

using namespace heed;

namespace {

constexpr double kUnit = 1.0 / (1 << 24);

// (V/8 + 40 + 3 S) u for the finite values of one row.
double row_bound(const float* row, int64_t width) {
  float lo = INFINITY, hi = -INFINITY;
  for (int64_t j = 0; j < width; ++j)
    if (std::isfinite(row[j])) lo = std::min(lo, row[j]), hi = std::max(hi, row[j]);
  return (width / 8.0 + 40 + 3.0 * (double(hi) - lo)) * kUnit;
}

}  // namespace

TEST_CASE("log_softmax matches a double-precision reference, for large and masked logits", "[ops][log_softmax]") {
  // [24, 1000] takes the threaded path; row r is shifted by 100 r, up to 2300, where the sum of e^x without
  // the max subtraction overflows; a few entries per row are -inf (masked tokens).
  const int64_t rows = 24, width = 1000;
  Tensor x = testing::random_tensor({rows, width}, 1, -8.0f, 8.0f);
  float* px = x.data<float>();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < width; ++j) px[r * width + j] += 100.0f * r;
    px[r * width + (7 * r) % width] = -INFINITY;
  }
  const Tensor y = ops::log_softmax(x);
  REQUIRE(y.shape() == x.shape());
  const float* py = y.data<float>();
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = px + r * width;
    double mx = -INFINITY, sum = 0;
    for (int64_t j = 0; j < width; ++j) mx = std::max(mx, double(xr[j]));
    for (int64_t j = 0; j < width; ++j) sum += std::exp(xr[j] - mx);
    const double log_sum = std::log(sum), bound = row_bound(xr, width);
    double worst = 0;
    int64_t masked_wrong = 0;
    for (int64_t j = 0; j < width; ++j) {
      const float got = py[r * width + j];
      if (std::isinf(xr[j])) {
        masked_wrong += got != -INFINITY;
        continue;
      }
      const double error = std::abs(got - ((xr[j] - mx) - log_sum));
      if (!(error <= worst)) worst = error;  // NaN-safe: a NaN becomes the worst
    }
    INFO("row " << r << " bound " << bound);
    CHECK(worst <= bound);
    CHECK(masked_wrong == 0);
  }
}

TEST_CASE("log_softmax reads non-contiguous inputs and refuses bad ones", "[ops][log_softmax]") {
  const Tensor x = testing::random_tensor({7, 5}, 4).transpose(0, 1);
  CHECK(ops::log_softmax(x).to_vector<float>() == ops::log_softmax(x.contiguous()).to_vector<float>());
  CHECK_THROWS_WITH(ops::log_softmax(Tensor::empty({3, 0})), Catch::Contains("non-empty last dimension"));
  CHECK_THROWS_WITH(ops::log_softmax(Tensor::empty({3, 4}, DType::I32)), Catch::Contains("must be F32"));
}

namespace {

// The GPU path against the CPU op, on the same (16-bit rounded) inputs: each is within row_bound of the
// exact value, so they differ by at most twice that; a 16-bit output adds half an ulp of |y| (2^-8
// relative for bf16, 2^-11 for fp16). Widths below, at and above the kernel's 256 threads, with a partial
// last stride.
void check_gpu_log_softmax(kernels::Backend backend) {
  const Device dev = testing::backend_device(backend);
  for (int64_t width : {1, 100, 256, 1000}) {
    const int64_t rows = 9;
    Tensor x = testing::random_tensor({rows, width}, 5, -6.0f, 6.0f);
    if (width > 1) x.data<float>()[3 * width + width / 2] = -INFINITY;  // a masked token stays -inf
    for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
      INFO("width " << width << " " << testing::dtype_label(dtype));
      const double rel = dtype == DType::BF16 ? 1.0 / 256 : dtype == DType::F16 ? 1.0 / 2048 : 0.0;
      const Tensor xr = x.to(dtype).to(DType::F32);
      const Tensor want = ops::log_softmax(xr);
      const Tensor got = testing::to_host_f32(ops::log_softmax(xr.to(dtype).to(dev)));
      REQUIRE(got.shape() == want.shape());
      for (int64_t r = 0; r < rows; ++r) {
        const double bound = 2 * row_bound(xr.data<float>() + r * width, width);
        double worst = 0;
        for (int64_t j = 0; j < width; ++j) {
          const float w = want.data<float>()[r * width + j], g = got.data<float>()[r * width + j];
          const double error = std::isinf(w) && g == w ? 0.0 : std::abs(double(g) - w) - rel * std::abs(w);
          if (!(error <= worst)) worst = error;
        }
        INFO("row " << r);
        CHECK(worst <= bound);
      }
    }
  }
}

}  // namespace

TEST_CASE("log_softmax on the simulated GPU matches the CPU op in fp32, bf16 and fp16", "[ops][log_softmax][sim]") {
  check_gpu_log_softmax(kernels::Backend::Sim);
}

TEST_CASE("log_softmax on the GPU matches the CPU op in fp32, bf16 and fp16", "[ops][log_softmax][gpu]") {
  if (!testing::gpu_or_skip()) return;
  check_gpu_log_softmax(kernels::Backend::Cuda);
}
