// LayerNorm forward and backward against a double-precision reference (unit-scale rows and rows with a
// large mean) and finite differences.
#include <catch2/catch.hpp>

#include <cmath>

#include <omp.h>

#include "gradcheck.h"
#include "heed/ops/layer_norm.h"
#include "worst.h"

using namespace heed;

namespace {

// LayerNorm forward and backward in double precision, from the definitions.
struct Reference {
  std::vector<double> y, mean, rstd, dx, dgamma, dbeta;
};

Reference reference(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& dy, double eps) {
  const int64_t d = x.size(-1), rows = x.numel() / d;
  Reference r;
  r.y.resize(x.numel());
  r.dx.resize(x.numel());
  r.dgamma.assign(d, 0.0);
  r.dbeta.assign(d, 0.0);
  for (int64_t row = 0; row < rows; ++row) {
    auto X = [&](int64_t j) { return double(x.item(row * d + j)); };
    auto G = [&](int64_t j) { return double(dy.item(row * d + j)) * gamma.item(j); };
    double mean = 0, var = 0;
    for (int64_t j = 0; j < d; ++j) mean += X(j);
    mean /= d;
    for (int64_t j = 0; j < d; ++j) var += (X(j) - mean) * (X(j) - mean);
    const double rstd = 1 / std::sqrt(var / d + eps);
    r.mean.push_back(mean);
    r.rstd.push_back(rstd);
    double mean_g = 0, mean_gx = 0;
    for (int64_t j = 0; j < d; ++j) {
      const double xhat = (X(j) - mean) * rstd;
      r.y[row * d + j] = xhat * gamma.item(j) + beta.item(j);
      mean_g += G(j) / d;
      mean_gx += G(j) * xhat / d;
      r.dgamma[j] += dy.item(row * d + j) * xhat;
      r.dbeta[j] += dy.item(row * d + j);
    }
    for (int64_t j = 0; j < d; ++j)
      r.dx[row * d + j] = rstd * (G(j) - mean_g - (X(j) - mean) * rstd * mean_gx);
  }
  return r;
}

double max_abs_diff(const Tensor& got, const std::vector<double>& want) {
  double worst = 0;
  for (int64_t i = 0; i < got.numel(); ++i) testing::raise_worst(worst, std::abs(got.item(i) - want[i]));
  return worst;
}

}  // namespace

TEST_CASE("layer_norm matches a double-precision reference", "[ops][layer_norm]") {
  // [40, 3, 160] = 19200 elements takes the threaded path. Outputs are O(1) to O(5) and every step is a
  // handful of fp32 operations, so 2e-6 (about 8 ulp of the largest values) bounds a correct result; the
  // row sums of dgamma and dbeta over 120 rows get 1e-5. A wrong formula is off by O(0.1).
  const Tensor x = testing::random_tensor({40, 3, 160}, 1, -2.0f, 3.0f);
  const Tensor gamma = testing::random_tensor({160}, 2, 0.5f, 1.5f);
  const Tensor beta = testing::random_tensor({160}, 3);
  const Tensor dy = testing::random_tensor({40, 3, 160}, 4);
  const float eps = 1e-5f;
  const Reference ref = reference(x, gamma, beta, dy, eps);
  const ops::LayerNormResult fwd = ops::layer_norm_forward(x, gamma, beta, eps);
  REQUIRE(fwd.y.shape() == x.shape());
  REQUIRE(fwd.mean.shape() == Shape{120});
  CHECK(max_abs_diff(fwd.y, ref.y) <= 2e-6);
  CHECK(max_abs_diff(fwd.mean, ref.mean) <= 1e-6);
  for (int64_t r = 0; r < 120; ++r) CHECK(std::abs(fwd.rstd.item(r) - ref.rstd[r]) <= 1e-6 * ref.rstd[r]);
  const ops::LayerNormGrads g = ops::layer_norm_backward(dy, x, gamma, fwd.mean, fwd.rstd);
  CHECK(max_abs_diff(g.dx, ref.dx) <= 2e-6);
  CHECK(max_abs_diff(g.dgamma, ref.dgamma) <= 1e-5);
  CHECK(max_abs_diff(g.dbeta, ref.dbeta) <= 1e-5);
}

TEST_CASE("layer_norm is accurate for rows with a large mean", "[ops][layer_norm]") {
  // x = 1e4 + U(-1, 1): fp32 holds these inputs exactly (spacing 1e-3), but a one-pass fp32 variance
  // (E[x^2] - E[x]^2) loses every digit, and even x - fl(mean) with an fp32 mean is off by up to 5e-4
  // times rstd. The bounds are those of the unit-scale test above.
  Tensor x = testing::random_tensor({8, 96}, 5);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] += 1e4f;
  const Tensor gamma = testing::random_tensor({96}, 6, 0.5f, 1.5f);
  const Tensor beta = testing::random_tensor({96}, 7);
  const Tensor dy = testing::random_tensor({8, 96}, 8);
  const Reference ref = reference(x, gamma, beta, dy, 1e-5);
  const ops::LayerNormResult fwd = ops::layer_norm_forward(x, gamma, beta, 1e-5f);
  CHECK(max_abs_diff(fwd.y, ref.y) <= 2e-6);
  const ops::LayerNormGrads g = ops::layer_norm_backward(dy, x, gamma, fwd.mean, fwd.rstd);
  CHECK(max_abs_diff(g.dx, ref.dx) <= 2e-6);
  CHECK(max_abs_diff(g.dgamma, ref.dgamma) <= 1e-5);
}

TEST_CASE("layer_norm backward does not depend on the thread count", "[ops][layer_norm]") {
  // dgamma and dbeta sum over rows in fixed chunks, added in chunk order: bit-identical for 1 and 3 threads.
  const Tensor x = testing::random_tensor({300, 100}, 17);
  const Tensor gamma = testing::random_tensor({100}, 18);
  const Tensor beta = testing::random_tensor({100}, 19);
  const Tensor dy = testing::random_tensor({300, 100}, 20);
  const ops::LayerNormResult fwd = ops::layer_norm_forward(x, gamma, beta, 1e-5f);
  const int saved = omp_get_max_threads();
  std::vector<std::vector<float>> runs;
  for (int threads : {1, 3}) {
    omp_set_num_threads(threads);
    const ops::LayerNormGrads g = ops::layer_norm_backward(dy, x, gamma, fwd.mean, fwd.rstd);
    runs.push_back(g.dgamma.to_vector<float>());
    runs.push_back(g.dbeta.to_vector<float>());
  }
  omp_set_num_threads(saved);
  CHECK(runs[0] == runs[2]);
  CHECK(runs[1] == runs[3]);
}

TEST_CASE("layer_norm gradients match finite differences", "[ops][layer_norm][grad]") {
  Tensor x = testing::random_tensor({3, 4, 16}, 9);
  Tensor gamma = testing::random_tensor({16}, 10, 0.5f, 1.5f);
  Tensor beta = testing::random_tensor({16}, 11);
  const Tensor w = testing::random_tensor({3, 4, 16}, 12);
  const float eps = 1e-5f;
  const ops::LayerNormResult fwd = ops::layer_norm_forward(x, gamma, beta, eps);
  const ops::LayerNormGrads g = ops::layer_norm_backward(w, x, gamma, fwd.mean, fwd.rstd);
  const auto f = [&] { return testing::weighted_sum(ops::layer_norm_forward(x, gamma, beta, eps).y, w); };
  SECTION("dx") { testing::check_gradient(f, x, g.dx); }
  SECTION("dgamma") { testing::check_gradient(f, gamma, g.dgamma); }
  SECTION("dbeta") { testing::check_gradient(f, beta, g.dbeta); }
}

TEST_CASE("layer_norm reads non-contiguous inputs and checks shapes", "[ops][layer_norm]") {
  const Tensor x = testing::random_tensor({12, 5}, 13).transpose(0, 1);  // [5, 12], strided
  const Tensor gamma = testing::random_tensor({12}, 14);
  const Tensor beta = testing::random_tensor({12}, 15);
  const ops::LayerNormResult a = ops::layer_norm_forward(x, gamma, beta, 1e-5f);
  const ops::LayerNormResult b = ops::layer_norm_forward(x.contiguous(), gamma, beta, 1e-5f);
  CHECK(a.y.to_vector<float>() == b.y.to_vector<float>());
  CHECK_THROWS_WITH(ops::layer_norm_forward(x, testing::random_tensor({5}, 16), beta, 1e-5f),
                    Catch::Contains("gamma has shape [5], expected [12]"));
  CHECK_THROWS_WITH(ops::layer_norm_backward(x, x, gamma, a.mean.narrow(0, 0, 4), a.rstd),
                    Catch::Contains("mean has shape [4], expected [5]"));
}

TEST_CASE("layer_norm on the simulated GPU runs the kernels and matches the CPU op", "[ops][layer_norm][sim]") {
  // The op's GPU path, end to end (device copies of a transposed input, the kernels, the results back);
  // the kernels' own accuracy is tested in test_kernel_layer_norm.cc. Both compute in fp32 from the same
  // values, differing in summation order: over 300 columns of O(1) values, well within 2e-5.
  const Device sim = Device::sim();
  const Tensor base = testing::random_tensor({300, 9}, 1);
  const Tensor x = base.transpose(0, 1), x_sim = base.to(sim).transpose(0, 1);  // [9, 300], not contiguous
  const Tensor gamma = testing::random_tensor({300}, 2), beta = testing::random_tensor({300}, 3);
  const Tensor dy = testing::random_tensor({9, 300}, 4);
  const ops::LayerNormResult want = ops::layer_norm_forward(x, gamma, beta, 1e-5f);
  const ops::LayerNormResult got = ops::layer_norm_forward(x_sim, gamma.to(sim), beta.to(sim), 1e-5f);
  const ops::LayerNormGrads gwant = ops::layer_norm_backward(dy, x, gamma, want.mean, want.rstd);
  const ops::LayerNormGrads ggot = ops::layer_norm_backward(dy.to(sim), x_sim, gamma.to(sim), got.mean, got.rstd);
  auto close = [](const Tensor& g, const Tensor& w) {
    const Tensor h = g.to(Device::cpu()), wc = w.contiguous();
    REQUIRE(h.shape() == wc.shape());
    for (int64_t i = 0; i < h.numel(); ++i) CHECK(std::abs(h.item(i) - wc.item(i)) <= 2e-5 + 1e-5 * std::abs(wc.item(i)));
  };
  close(got.y, want.y);
  close(got.mean, want.mean);
  close(got.rstd, want.rstd);
  close(ggot.dx, gwant.dx);
  close(ggot.dgamma, gwant.dgamma);
  close(ggot.dbeta, gwant.dbeta);
}
