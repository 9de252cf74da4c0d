#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <optional>

#include "gradcheck.h"
#include "heed/autograd/functions.h"
#include "heed/core/allocator.h"
#include "kernel_testing.h"
#include "worst.h"

using namespace heed;
using autograd::Variable;

TEST_CASE("a variable used twice accumulates both gradients", "[autograd]") {
  Variable x(Tensor::from_vector<float>({1, 2, 3}, {3}), true);
  // loss = sum(x * x + x): d/dx = 2x + 1
  Variable loss = autograd::sum(autograd::add(autograd::mul(x, x), x));
  autograd::backward(loss);
  CHECK(x.grad().to_vector<float>() == std::vector<float>{3, 5, 7});
  // Gradients accumulate across backward passes until zeroed.
  autograd::backward(autograd::sum(x));
  CHECK(x.grad().to_vector<float>() == std::vector<float>{4, 6, 8});
  x.zero_grad();
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("shared first gradients are copied before accumulation", "[autograd]") {
  // add() hands the same dy to both inputs; accumulating into one must not change the other.
  Variable a(Tensor::from_vector<float>({1, 1}, {2}), true), b(Tensor::from_vector<float>({1, 1}, {2}), true);
  Variable s = autograd::add(a, b);
  Variable loss = autograd::sum(autograd::add(s, a));
  autograd::backward(loss);
  CHECK(a.grad().to_vector<float>() == std::vector<float>{2, 2});
  CHECK(b.grad().to_vector<float>() == std::vector<float>{1, 1});
}

TEST_CASE("no-grad scope records nothing, and backward clears the tape and frees intermediates", "[autograd]") {
  Variable x(testing::random_tensor({64, 64}, 1), true);
  {
    autograd::NoGradGuard no_grad;
    Variable y = autograd::sum(autograd::mul(x, x));
    CHECK(autograd::tape_size() == 0);
    CHECK_FALSE(y.requires_grad());
  }
  Allocator& alloc = allocator_for(Device::cpu());
  const size_t before = alloc.stats().in_use;
  {
    Variable loss = autograd::sum(autograd::mul(autograd::mul(x, x), x));
    CHECK(autograd::tape_size() == 3);
    autograd::backward(loss);
    CHECK(autograd::tape_size() == 0);
  }
  x.zero_grad();
  CHECK(alloc.stats().in_use == before);
}

TEST_CASE("backward needs a scalar that depends on a parameter", "[autograd]") {
  Variable x(testing::random_tensor({3}, 1), true);
  CHECK_THROWS_WITH(autograd::backward(autograd::mul(x, x)), Catch::Contains("needs a scalar"));
  autograd::clear_tape();
  CHECK_THROWS_WITH(autograd::backward(Variable(Tensor::full({}, 1.0f))), Catch::Contains("does not depend"));
}

TEST_CASE("in a cast-parameters scope, cast gives the copy made at its start, with cast's gradient",
          "[autograd]") {
  // On the simulated GPU, where 16-bit arithmetic runs.
  const Device sim = Device::sim();
  const Tensor w_value = testing::random_tensor({4, 3}, 7), x_value = testing::random_tensor({4, 3}, 8).to(sim);
  Variable w(w_value.to(sim), true);
  const Variable alias(w.value(), true);  // the same memory, but not the parameter
  autograd::ParameterCopies copies({w}, DType::BF16);
  auto loss_of = [&](const Variable& weight) {
    const Variable product = autograd::mul(autograd::cast(weight, DType::BF16), Variable(x_value.to(DType::BF16)));
    return autograd::sum(autograd::cast(product, DType::F32));
  };
  autograd::backward(loss_of(w));
  const std::vector<float> plain_grad = w.grad().to(Device::cpu()).to_vector<float>();
  w.zero_grad();
  {
    autograd::CastParametersScope scope(copies);
    const Tensor copy = autograd::cast(w, DType::BF16).value();
    CHECK(copy.raw_data() == autograd::cast(w, DType::BF16).value().raw_data());  // the scope's one copy
    CHECK(copy.to(Device::cpu()).to(DType::F32).to_vector<float>() ==
          w_value.to(DType::BF16).to(DType::F32).to_vector<float>());
    CHECK(autograd::cast(alias, DType::BF16).value().raw_data() != copy.raw_data());  // not in the scope
    CHECK(autograd::cast(w, DType::F16).value().raw_data() != copy.raw_data());       // not in its dtype
    autograd::backward(loss_of(w));
    CHECK(w.grad().to(Device::cpu()).to_vector<float>() == plain_grad);
    CHECK_THROWS_WITH(autograd::CastParametersScope(copies), Catch::Contains("already active"));
  }
  CHECK(autograd::cast(w, DType::BF16).value().raw_data() != autograd::cast(w, DType::BF16).value().raw_data());
}

namespace {

// sum(y * probe) for a fixed random probe, so that every output element's gradient differs.
Variable probed(const Variable& y, uint32_t seed) {
  return autograd::sum(autograd::mul(y, Variable(testing::random_tensor(y.shape(), seed).to(y.value().device()))));
}

}  // namespace

TEST_CASE("self and cross attention on stacked projections pass finite differences for inputs, weights and biases",
          "[autograd][gradcheck]") {
  // d 8 in 2 heads; 5 queries, 4 memory positions; fp32 on the CPU (gradcheck.h's tolerances).
  std::vector<Tensor> t;
  for (uint32_t seed = 1; seed <= 6; ++seed) t.push_back(testing::random_tensor(seed % 2 ? Shape{8, 8} : Shape{8}, seed));
  Tensor xt = testing::random_tensor({2, 5, 8}, 7), mt = testing::random_tensor({2, 4, 8}, 8);
  ops::AttentionOptions opt;
  opt.scale = 0.5f;
  opt.causal = true;
  for (const bool self : {true, false}) {
    INFO((self ? "self-attention" : "cross-attention"));
    opt.causal = self;
    std::vector<Variable> p;
    for (const Tensor& v : t) p.push_back(Variable(v, true));
    const Variable x(xt, true), memory(mt, true);
    auto loss = [&] {
      if (self)
        return probed(autograd::self_attention(autograd::linear_stacked(x, {p[0], p[2], p[4]}, {p[1], p[3], p[5]}), 2,
                                               opt),
                      9);
      const Variable q = autograd::linear(x, p[0], p[1]);
      return probed(autograd::cross_attention(q, autograd::linear_stacked(memory, {p[2], p[4]}, {p[3], p[5]}), 2, opt),
                    9);
    };
    autograd::backward(loss());
    const auto f = [&] {
      autograd::NoGradGuard no_grad;
      return static_cast<double>(loss().value().item());
    };
    testing::check_gradient(f, xt, x.grad());
    if (!self) testing::check_gradient(f, mt, memory.grad());
    for (size_t i = 0; i < t.size(); ++i) {
      INFO("parameter " << i);
      testing::check_gradient(f, t[i], p[i].grad());
    }
  }
}

TEST_CASE("linear_stacked reads a cast scope's adjacent copies as one matrix and equals its layers side by side",
          "[autograd][sim]") {
  // On the simulated GPU in bf16: q, k and v layers (d 16) created after a vector parameter, whose copy
  // ParameterCopies places after the matrices. Each output column and each weight and bias gradient is one
  // GEMM element over the same operands in the same order, stacked or not: equal bits. The input gradient
  // is one GEMM over 3d products stacked, and apart three GEMMs whose partial sums are rounded to bf16 twice
  // more: four roundings between the two (two partials, both finals), each at most half a bf16 ulp
  // (2^-9 relative) of a value no larger than the largest |dx|, so 2^-7 of it.
  const Device sim = Device::sim();
  const int64_t d = 16;
  std::vector<Variable> params{Variable(testing::random_tensor({d}, 1).to(sim), true)};
  for (uint32_t seed = 2; seed <= 7; ++seed)
    params.push_back(Variable(testing::random_tensor(seed % 2 ? Shape{d} : Shape{d, d}, seed).to(sim), true));
  const std::vector<Variable> weights{params[1], params[3], params[5]}, biases{params[2], params[4], params[6]};
  autograd::ParameterCopies copies(params, DType::BF16);
  const Tensor xt = testing::random_tensor({3, 5, d}, 8).to(DType::BF16).to(sim);
  const Tensor probe = testing::random_tensor({3, 5, 3 * d}, 9).to(sim);
  // sum(y * probe) of a bf16 y, with columns [first, first + y's width) of the probe.
  const auto probed_columns = [&](const Variable& y, int64_t first) {
    const Variable columns(probe.narrow(2, first, y.size(2)).contiguous());
    return autograd::sum(autograd::mul(autograd::cast(y, DType::F32), columns));
  };
  const auto bf16 = [](const std::vector<Variable>& v) {
    std::vector<Variable> out;
    for (const Variable& p : v) out.push_back(autograd::cast(p, DType::BF16));
    return out;
  };
  const auto host = [](const Tensor& t) { return testing::to_host_f32(t.contiguous()).to_vector<float>(); };
  // Outputs, then the input's, the weights' and the biases' gradients.
  const auto run = [&](bool stacked, bool in_scope) {
    std::optional<autograd::CastParametersScope> scope;
    if (in_scope) scope.emplace(copies);
    const std::vector<Variable> w = bf16(weights), b = bf16(biases);
    if (in_scope) {
      CHECK(autograd::CastParametersScope::stacked_view({w[0].value(), w[1].value(), w[2].value()}).raw_data() ==
            w[0].value().raw_data());
      CHECK(autograd::CastParametersScope::stacked_view({b[0].value(), b[1].value(), b[2].value()}).raw_data() ==
            b[0].value().raw_data());
      CHECK_FALSE(autograd::CastParametersScope::stacked_view({w[0].value(), w[2].value()}).defined());
      CHECK_FALSE(autograd::CastParametersScope::stacked_view({w[1].value(), w[0].value()}).defined());
    }
    const Variable x(xt, true);
    std::vector<Variable> outputs;
    if (stacked) {
      const Variable y = autograd::linear_stacked(x, w, b);
      for (int64_t i = 0; i < 3; ++i) outputs.push_back(Variable(y.value().narrow(2, i * d, d)));
      autograd::backward(probed_columns(y, 0));
    } else {
      std::vector<Variable> ys;
      for (size_t i = 0; i < 3; ++i) ys.push_back(autograd::linear(x, w[i], b[i]));
      outputs = ys;
      autograd::backward(autograd::add(autograd::add(probed_columns(ys[0], 0), probed_columns(ys[1], d)),
                                       probed_columns(ys[2], 2 * d)));
    }
    std::vector<std::vector<float>> r;
    for (const Variable& y : outputs) r.push_back(host(y.value()));
    r.push_back(host(x.grad()));
    for (const Variable& p : params) {
      r.push_back(p.grad().defined() ? host(p.grad()) : std::vector<float>{});
      p.zero_grad();
    }
    return r;
  };
  const auto stacked = run(true, true), apart = run(false, true), copied = run(true, false);
  CHECK(copied == stacked);  // the stacked copy outside a scope reads the same values
  REQUIRE(stacked.size() == apart.size());
  for (size_t i = 0; i < stacked.size(); ++i) {
    INFO("result " << i << " (3 outputs, the input's gradient, then the parameters')");
    if (i != 3) {
      CHECK(stacked[i] == apart[i]);
      continue;
    }
    REQUIRE(stacked[i].size() == apart[i].size());
    double worst = 0.0, largest = 0.0;
    for (size_t e = 0; e < stacked[i].size(); ++e) {
      testing::raise_worst(worst, std::abs(stacked[i][e] - apart[i][e]));
      largest = std::max<double>(largest, std::abs(apart[i][e]));
    }
    INFO("largest |dx| " << largest);
    CHECK(worst <= std::ldexp(largest, -7));
  }
  CHECK(stacked[4].empty());  // the vector created first has no gradient
  CHECK_FALSE(stacked[5].empty());
}
