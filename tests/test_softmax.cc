// Softmax against a double-precision reference, with large and masked logits, and its backward pass.
#include <catch2/catch.hpp>

#include <cmath>

#include "gradcheck.h"
#include "heed/ops/softmax.h"
#include "kernel_testing.h"

using namespace heed;

TEST_CASE("softmax matches a double-precision reference, for large logits too", "[ops][softmax]") {
  // [24, 1000] takes the threaded path; row r is shifted by 100 r, up to 2300, where a softmax without the
  // max subtraction overflows. Probabilities are at most 1 and each is a few fp32 operations from the
  // inputs, so 1e-7 absolute and 2e-6 relative (for the non-tiny ones) bound a correct result.
  Tensor x = testing::random_tensor({24, 1000}, 1, -8.0f, 8.0f);
  for (int64_t r = 0; r < 24; ++r)
    for (int64_t j = 0; j < 1000; ++j) x.data<float>()[r * 1000 + j] += 100.0f * r;
  const Tensor y = ops::softmax_forward(x);
  REQUIRE(y.shape() == x.shape());
  for (int64_t r = 0; r < 24; ++r) {
    double mx = -INFINITY, sum = 0;
    for (int64_t j = 0; j < 1000; ++j) mx = std::max(mx, double(x.item(r * 1000 + j)));
    for (int64_t j = 0; j < 1000; ++j) sum += std::exp(x.item(r * 1000 + j) - mx);
    int64_t outside = 0;
    for (int64_t j = 0; j < 1000; ++j) {
      const double want = std::exp(x.item(r * 1000 + j) - mx) / sum;
      outside += std::abs(y.item(r * 1000 + j) - want) > 1e-7 + 2e-6 * want;
    }
    INFO("row " << r);
    CHECK(outside == 0);
  }
}

TEST_CASE("softmax gives masked (-inf) entries zero probability", "[ops][softmax]") {
  const Tensor x = Tensor::from_vector<float>({1.0f, -INFINITY, 2.0f, -INFINITY}, {1, 4});
  const Tensor y = ops::softmax_forward(x);
  CHECK(y.item(1) == 0.0f);
  CHECK(y.item(3) == 0.0f);
  CHECK(y.item(0) == Approx(1.0 / (1.0 + std::exp(1.0))).epsilon(1e-6));
}

TEST_CASE("softmax backward matches the reference formula and finite differences", "[ops][softmax][grad]") {
  Tensor x = testing::random_tensor({4, 3, 9}, 2, -3.0f, 3.0f);
  const Tensor w = testing::random_tensor({4, 3, 9}, 3);
  const Tensor y = ops::softmax_forward(x);
  const Tensor dx = ops::softmax_backward(w, y);
  // dx = y * (w - sum(w * y)) in double from the same y: fp32 rounding of O(1) terms only.
  for (int64_t r = 0; r < 12; ++r) {
    double dot = 0;
    for (int64_t j = 0; j < 9; ++j) dot += double(w.item(r * 9 + j)) * y.item(r * 9 + j);
    for (int64_t j = 0; j < 9; ++j)
      CHECK(std::abs(dx.item(r * 9 + j) - y.item(r * 9 + j) * (w.item(r * 9 + j) - dot)) <= 1e-6);
  }
  testing::check_gradient([&] { return testing::weighted_sum(ops::softmax_forward(x), w); }, x, dx);
}

TEST_CASE("softmax reads non-contiguous inputs and checks shapes", "[ops][softmax]") {
  const Tensor x = testing::random_tensor({7, 5}, 4).transpose(0, 1);
  CHECK(ops::softmax_forward(x).to_vector<float>() == ops::softmax_forward(x.contiguous()).to_vector<float>());
  const Tensor y = ops::softmax_forward(x);
  const Tensor dy = testing::random_tensor({7, 5}, 5).transpose(0, 1);
  CHECK(ops::softmax_backward(dy, y).to_vector<float>() ==
        ops::softmax_backward(dy.contiguous(), y).to_vector<float>());
  CHECK_THROWS_WITH(ops::softmax_backward(testing::random_tensor({5, 6}, 6), y),
                    Catch::Contains("expected y's shape [5, 7]"));
}

namespace {

// The GPU path against the CPU op. Both compute in fp32 from the same inputs; they differ in the order
// of the row sums and in exp (the CPU's vectorised approximation vs the GPU's expf, a few ulps), so
// fp32 results agree to 1e-6 relative. A 16-bit output adds one rounding: half an ulp, 2^-8 relative
// for bf16 and 2^-11 for fp16.
void check_gpu_softmax(kernels::Backend backend) {
  const Device dev = testing::backend_device(backend);
  Tensor x = testing::random_tensor({37, 300}, 4, -6.0f, 6.0f);
  x.data<float>()[5] = -INFINITY;  // masked entries come out as exact zeros
  const Tensor w = testing::random_tensor({37, 300}, 5);
  for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
    INFO(dtype_name(dtype));
    const double rel = dtype == DType::BF16 ? 1.0 / 256 : dtype == DType::F16 ? 1.0 / 2048 : 0.0;
    const Tensor xr = x.to(dtype).to(DType::F32), wr = w.to(dtype).to(DType::F32);
    const Tensor y_want = ops::softmax_forward(xr);
    const Tensor y = ops::softmax_forward(xr.to(dtype).to(dev));
    const Tensor y_got = testing::to_host_f32(y);
    CHECK(y_got.item(5) == 0.0f);
    for (int64_t i = 0; i < x.numel(); ++i)
      CHECK(std::abs(y_got.item(i) - y_want.item(i)) <= 1e-7 + (1e-6 + rel) * y_want.item(i));
    // Backward from the GPU's own y (as training would use it), against the CPU formula on the same y.
    const Tensor dx_want = ops::softmax_backward(wr, y_got);
    const Tensor dx_got = testing::to_host_f32(ops::softmax_backward(wr.to(dtype).to(dev), y));
    for (int64_t i = 0; i < x.numel(); ++i)
      CHECK(std::abs(dx_got.item(i) - dx_want.item(i)) <= 1e-6 + (1e-6 + rel) * std::abs(dx_want.item(i)));
  }
}

}  // namespace

TEST_CASE("softmax on the simulated GPU matches the CPU op in fp32, bf16 and fp16", "[ops][softmax][sim]") {
  check_gpu_softmax(kernels::Backend::Sim);
}

TEST_CASE("softmax on the GPU matches the CPU op in fp32, bf16 and fp16", "[ops][softmax][gpu]") {
  if (!testing::gpu_or_skip()) return;
  check_gpu_softmax(kernels::Backend::Cuda);
}
