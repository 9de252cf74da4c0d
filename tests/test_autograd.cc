#include <catch2/catch.hpp>

#include "gradcheck.h"
#include "heed/autograd/functions.h"
#include "heed/core/allocator.h"

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
