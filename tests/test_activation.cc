// Activations and the vectorisable exp / normal CDF under them, against double-precision libm references
// and finite differences.
#include <catch2/catch.hpp>

#include <cmath>

#include "gradcheck.h"
#include "heed/ops/activation.h"
#include "ops/cpu_math.h"
#include "worst.h"

using namespace heed;
using ops::Activation;

namespace {

double reference(Activation act, double x) {
  switch (act) {
    case Activation::ReLU: return x > 0 ? x : 0;
    case Activation::GELU: return x * 0.5 * std::erfc(-x / std::sqrt(2.0));
    case Activation::SiLU: return x / (1 + std::exp(-x));
  }
  return 0;
}

// Uniform values in +-[lo, hi] with random signs: never within lo of zero, where ReLU has its kink.
Tensor away_from_zero(const Shape& shape, uint32_t seed, float lo, float hi) {
  Tensor magnitude = testing::random_tensor(shape, seed, lo, hi);
  Tensor sign = testing::random_tensor(shape, seed + 1);
  float* p = magnitude.data<float>();
  for (int64_t i = 0; i < magnitude.numel(); ++i) p[i] = sign.data<float>()[i] < 0 ? -p[i] : p[i];
  return magnitude;
}

}  // namespace

TEST_CASE("parse_activation accepts the four names and lists them otherwise", "[ops][activation]") {
  CHECK(ops::parse_activation("relu") == Activation::ReLU);
  CHECK(ops::parse_activation("gelu") == Activation::GELU);
  CHECK(ops::parse_activation("swish") == Activation::SiLU);
  CHECK(ops::parse_activation("silu") == Activation::SiLU);
  CHECK(ops::parse_activation(ops::activation_name(Activation::GELU)) == Activation::GELU);
  CHECK_THROWS_WITH(ops::parse_activation("tanh"),
                    Catch::Contains("'tanh'") && Catch::Contains("relu, gelu, swish or silu"));
}

TEST_CASE("vectorisable exp is accurate to about one ulp", "[ops][activation][math]") {
  // Measured worst case 7.7e-8 (0.65 ulp); 1.5e-7 is 1.25 ulp (ulp = 2^-23 relative). A wrong polynomial
  // coefficient or range reduction is off by 1e-5 or more.
  double worst = 0;
  for (double x = -87.0; x <= 88.0; x += 1.1e-4) {
    const float xf = static_cast<float>(x);
    const double ref = std::exp(static_cast<double>(xf));
    testing::raise_worst(worst, std::abs(ops::cpu::exp_approx(xf) - ref) / ref);
  }
  CHECK(worst <= 1.5e-7);
  CHECK(ops::cpu::exp_approx(0.0f) == 1.0f);
  CHECK(ops::cpu::exp_approx(-90.0f) == 0.0f);
  CHECK(std::isinf(ops::cpu::exp_approx(89.0f)));
}

TEST_CASE("vectorisable normal CDF matches erfc in double precision", "[ops][activation][math]") {
  // Bounds from cpu_math.h, each above the measured worst case (8.4e-8 absolute; 1.2e-6 and 7.8e-6
  // relative): the absolute bound is 2.5 half-ulps of 1; the tail bounds follow from rounding exp's
  // argument (about x^2 / 2) to fp32. The 1 + erf form would have relative errors near 1 at x = -5.
  double worst_abs = 0, worst_rel_near = 0, worst_rel_far = 0;
  for (double x = -14.0; x <= 14.0; x += 1.1e-4) {
    const float xf = static_cast<float>(x);
    const double ref = 0.5 * std::erfc(-static_cast<double>(xf) / std::sqrt(2.0));
    const double err = std::abs(ops::cpu::normal_cdf(xf) - ref);
    testing::raise_worst(worst_abs, err);
    if (xf >= -5.0f && xf <= -1.0f) testing::raise_worst(worst_rel_near, err / ref);
    if (xf >= -12.5f && xf < -5.0f) testing::raise_worst(worst_rel_far, err / ref);
  }
  CHECK(worst_abs <= 1.5e-7);
  CHECK(worst_rel_near <= 2e-6);
  CHECK(worst_rel_far <= 1.5e-5);
}

TEST_CASE("activations match double-precision references", "[ops][activation]") {
  // |x| up to 8 covers both branches of the CDF and SiLU's saturation. The bound, 2e-7 * max(1, |x|),
  // allows the CDF's 1.5e-7 absolute error times x plus the final rounding; libm-exact references make a
  // wrong formula (e.g. the tanh approximation of GELU, off by up to 5e-4) fail.
  const Tensor x = testing::random_tensor({64, 513}, 11, -8.0f, 8.0f);  // large enough for the threaded path
  for (Activation act : {Activation::ReLU, Activation::GELU, Activation::SiLU}) {
    INFO(ops::activation_name(act));
    const Tensor y = ops::activation_forward(x, act);
    REQUIRE(y.shape() == x.shape());
    double worst = 0;
    for (int64_t i = 0; i < x.numel(); ++i) {
      const double xi = x.data<float>()[i];
      testing::raise_worst(worst, std::abs(y.data<float>()[i] - reference(act, xi)) / std::max(1.0, std::abs(xi)));
    }
    CHECK(worst <= 2e-7);
  }
}

TEST_CASE("activation gradients match finite differences", "[ops][activation][grad]") {
  // |x| >= 0.1 keeps ReLU's kink out of reach of the h = 1e-2 difference.
  Tensor x = away_from_zero({5, 13}, 21, 0.1f, 3.0f);
  const Tensor w = testing::random_tensor({5, 13}, 23);
  for (Activation act : {Activation::ReLU, Activation::GELU, Activation::SiLU}) {
    INFO(ops::activation_name(act));
    const Tensor dx = ops::activation_backward(w, x, act);
    testing::check_gradient([&] { return testing::weighted_sum(ops::activation_forward(x, act), w); }, x, dx);
  }
}

TEST_CASE("activations read non-contiguous inputs", "[ops][activation]") {
  const Tensor x = testing::random_tensor({6, 40}, 31, -4.0f, 4.0f);
  const Tensor xt = x.transpose(0, 1);
  const Tensor dy = testing::random_tensor({40, 6}, 32);
  for (Activation act : {Activation::ReLU, Activation::GELU, Activation::SiLU}) {
    CHECK(ops::activation_forward(xt, act).to_vector<float>() ==
          ops::activation_forward(xt.contiguous(), act).to_vector<float>());
    CHECK(ops::activation_backward(dy.transpose(0, 1), x, act).to_vector<float>() ==
          ops::activation_backward(dy.transpose(0, 1).contiguous(), x, act).to_vector<float>());
  }
  CHECK_THROWS_WITH(ops::activation_backward(dy, x, Activation::ReLU), Catch::Contains("expected x's shape"));
}
