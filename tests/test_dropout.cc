// Dropout: Philox known answers, the mask definition (dropout_keep), its keying and statistics, and the
// backward pass reusing the mask.
#include <catch2/catch.hpp>

#include <cmath>

#include "gradcheck.h"
#include "heed/core/philox.h"
#include "heed/ops/activation.h"
#include "heed/autograd/functions.h"
#include "heed/ops/dropout.h"
#include "heed/ops/elementwise.h"
#include "worst.h"

using namespace heed;

TEST_CASE("philox4x32_10 reproduces Random123's known-answer vectors", "[ops][dropout][philox]") {
  // kat_vectors from Random123 (Salmon et al.), philox4x32 with 10 rounds.
  struct Kat {
    Philox4 counter;
    uint32_t key0, key1;
    Philox4 expected;
  };
  const Kat kats[] = {
      {{{0, 0, 0, 0}}, 0, 0, {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}}},
      {{{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}},
       0xffffffff,
       0xffffffff,
       {{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}}},
      {{{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}},
       0xa4093822,
       0x299f31d0,
       {{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}}},
  };
  for (const Kat& k : kats) {
    const Philox4 r = philox4x32_10(k.counter, k.key0, k.key1);
    for (int i = 0; i < 4; ++i) CHECK(r.v[i] == k.expected.v[i]);
  }
}

TEST_CASE("dropout keeps exactly the elements dropout_keep selects", "[ops][dropout]") {
  const float p = 0.3f;
  const RandomKey key{1234, 7, 3};
  const Tensor x = testing::random_tensor({13, 7}, 1);  // 91 elements: the last group of four is partial
  const Tensor y = ops::dropout_forward(x, p, key);
  REQUIRE(y.shape() == x.shape());
  const float scale = 1.0f / (1.0f - p);
  for (int64_t i = 0; i < x.numel(); ++i) {
    INFO("element " << i);
    CHECK(y.item(i) == (ops::dropout_keep(key, i, p) ? x.item(i) * scale : 0.0f));
  }
}

TEST_CASE("dropout masks are a function of seed, step and tensor id", "[ops][dropout]") {
  const Tensor x = Tensor::full({4096}, 1.0f);
  const RandomKey key{42, 10, 5};
  const auto mask = [&](const RandomKey& k) { return ops::dropout_forward(x, 0.5f, k).to_vector<float>(); };
  CHECK(mask(key) == mask(key));
  CHECK(mask(key) != mask(RandomKey{43, 10, 5}));
  CHECK(mask(key) != mask(RandomKey{42, 11, 5}));
  CHECK(mask(key) != mask(RandomKey{42, 10, 6}));
  // The seed's high word reaches the generator too.
  CHECK(mask(key) != mask(RandomKey{42 + (uint64_t(1) << 32), 10, 5}));
}

TEST_CASE("dropout keeps a fraction 1 - p of the elements", "[ops][dropout]") {
  // 2^17 elements take the threaded path. The kept count is Binomial(n, 1 - p); a correct generator lands
  // within 5 standard deviations (at most 181 here) with probability above 1 - 1e-6, while a bias of 1% in
  // the keep probability moves the count by 1311, over 7 of them.
  const int64_t n = 1 << 17;
  const Tensor x = Tensor::full({n}, 1.0f);
  for (float p : {0.1f, 0.5f, 0.9f}) {
    const Tensor y = ops::dropout_forward(x, p, RandomKey{7, 1, 2});
    int64_t kept = 0;
    for (int64_t i = 0; i < n; ++i) kept += y.item(i) != 0.0f;
    const double mean = n * (1.0 - p), sd = std::sqrt(n * p * (1.0 - p));
    INFO("p = " << p << ", kept " << kept << " of " << n);
    CHECK(std::abs(kept - mean) <= 5 * sd);
  }
}

TEST_CASE("dropout backward applies the forward mask", "[ops][dropout][grad]") {
  const float p = 0.25f;
  const RandomKey key{99, 3, 1};
  Tensor x = testing::random_tensor({6, 11}, 2);
  const Tensor w = testing::random_tensor({6, 11}, 3);
  const Tensor y = ops::dropout_forward(x, p, key);
  const Tensor dx = ops::dropout_backward(w, p, key);
  for (int64_t i = 0; i < x.numel(); ++i) CHECK((y.item(i) == 0.0f) == (dx.item(i) == 0.0f));
  testing::check_gradient([&] { return testing::weighted_sum(ops::dropout_forward(x, p, key), w); }, x, dx);
}

TEST_CASE("dropout with p = 0 is the identity, without a copy", "[ops][dropout]") {
  const Tensor x = testing::random_tensor({3, 5}, 4);
  CHECK(ops::dropout_forward(x, 0.0f, RandomKey{}).shares_storage(x));
  CHECK(ops::dropout_backward(x, 0.0f, RandomKey{}).shares_storage(x));
  CHECK_THROWS_WITH(ops::dropout_forward(x, 1.0f, RandomKey{}), Catch::Contains("[0, 1)"));
  CHECK_THROWS_WITH(ops::dropout_forward(x, -0.1f, RandomKey{}), Catch::Contains("[0, 1)"));
}

TEST_CASE("dropout numbers non-contiguous inputs in logical order", "[ops][dropout]") {
  const Tensor x = testing::random_tensor({5, 8}, 5).transpose(0, 1);
  const RandomKey key{5, 5, 5};
  CHECK(ops::dropout_forward(x, 0.5f, key).to_vector<float>() ==
        ops::dropout_forward(x.contiguous(), 0.5f, key).to_vector<float>());
}

TEST_CASE("dropout and activations on the simulated GPU match the CPU ops", "[ops][dropout][activation][sim]") {
  // Dropout draws the same Philox mask, so the results agree bit for bit; the activations agree to a few
  // fp32 ulps (the CPU uses vectorised exp and normal CDF, the GPU expf and erff).
  const Device sim = Device::sim();
  const Tensor x = testing::random_tensor({13, 70}, 3, -3.0f, 3.0f), dy = testing::random_tensor({13, 70}, 4);
  const RandomKey key{42, 3, 7};
  CHECK(ops::dropout_forward(x.to(sim), 0.3f, key).to(Device::cpu()).to_vector<float>() ==
        ops::dropout_forward(x, 0.3f, key).to_vector<float>());
  CHECK(ops::dropout_backward(dy.to(sim), 0.3f, key).to(Device::cpu()).to_vector<float>() ==
        ops::dropout_backward(dy, 0.3f, key).to_vector<float>());
  for (ops::Activation act : {ops::Activation::ReLU, ops::Activation::GELU, ops::Activation::SiLU}) {
    INFO(ops::activation_name(act));
    const Tensor y = ops::activation_forward(x.to(sim), act).to(Device::cpu());
    const Tensor dx = ops::activation_backward(dy.to(sim), x.to(sim), act).to(Device::cpu());
    const Tensor y_want = ops::activation_forward(x, act), dx_want = ops::activation_backward(dy, x, act);
    for (int64_t i = 0; i < x.numel(); ++i) {
      CHECK(std::abs(y.item(i) - y_want.item(i)) <= 1e-6 * (1 + std::abs(y_want.item(i))));
      CHECK(std::abs(dx.item(i) - dx_want.item(i)) <= 1e-6 * (1 + std::abs(dx_want.item(i))));
    }
  }
}

TEST_CASE("dropout_add is residual + dropout in one pass, forward and backward, on the CPU and the simulated GPU",
          "[ops][dropout][sim]") {
  // The same Philox mask as the two ops composed. Either device may fuse x * scale + residual into one FMA
  // (nvcc does; GCC does for the CPU loop and the simulator), which skips the product's rounding (at most
  // u |x * scale|, u = 2^-24) and may then round the sum the other way (one ulp, at most 2u |y|). The
  // backward gives the residual dy and x the masked dy, exactly.
  const Tensor x = testing::random_tensor({13, 70}, 3), r = testing::random_tensor({13, 70}, 4);
  const Tensor dy = testing::random_tensor({13, 70}, 5);
  const RandomKey key{42, 3, 8};
  const std::vector<float> want = ops::add(r, ops::dropout_forward(x, 0.3f, key)).to_vector<float>();
  for (const Device dev : {Device::cpu(), Device::sim()}) {
    INFO(dev.str());
    autograd::Variable xv(x.to(dev), true), rv(r.to(dev), true);
    autograd::Variable y = autograd::dropout_add(rv, xv, 0.3f, key);
    const std::vector<float> got = y.value().to(Device::cpu()).to_vector<float>();
    double worst = 0.0;
    for (size_t i = 0; i < want.size(); ++i)
      testing::raise_worst(worst, std::abs(got[i] - want[i]) /
                                      (0x1p-24 * (std::abs(x.item(i)) / 0.7 + 2 * std::abs(want[i])) + 1e-30));
    CHECK(worst <= 1.0);
    autograd::backward(autograd::sum(autograd::mul(y, autograd::Variable(dy.to(dev)))));
    CHECK(rv.grad().to(Device::cpu()).to_vector<float>() == dy.to_vector<float>());
    CHECK(xv.grad().to(Device::cpu()).to_vector<float>() == ops::dropout_backward(dy, 0.3f, key).to_vector<float>());
  }
}
