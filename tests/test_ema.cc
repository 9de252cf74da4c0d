// The moving average of the weights (train/ema.h): swapping it in for validation and back, frozen
// parameters, and restoring it. Its closed form over several updates of a real run, on the CPU and the
// simulated GPU, is checked end to end in tests/python/test_ema.py.
#include <catch2/catch.hpp>

#include <stdexcept>

#include "gradcheck.h"
#include "heed/core/error.h"
#include "heed/train/ema.h"

using namespace heed;

namespace {

bool same_values(const Tensor& a, const Tensor& b) {
  for (int64_t i = 0; i < a.numel(); ++i)
    if (a.item(i) != b.item(i)) return false;
  return a.numel() == b.numel();
}

}  // namespace

TEST_CASE("the moving average swaps in for validation and back, even when validation throws", "[train][ema]") {
  nn::ParameterStore store(7);
  const nn::Variable trained = store.create("trained", {4, 3}, nn::Init::XavierUniform);
  const nn::Variable frozen = store.create("frozen", {5}, nn::Init::Ones);
  frozen.set_requires_grad(false);
  const Tensor start = trained.value().clone();
  train::ExponentialMovingAverage average(store, 0.5);
  REQUIRE(average.enabled());

  // One update: the weights move to new values, and the average halfway there (0.5 and the halves of these
  // values are exact in fp32).
  const Tensor moved = testing::random_tensor({4, 3}, 3);
  trained.set_value(moved.clone());
  average.update();
  const Tensor weights = trained.value();
  const Tensor expected = Tensor::empty({4, 3});
  for (int64_t i = 0; i < expected.numel(); ++i)
    expected.data<float>()[i] = start.item(i) + 0.5f * (moved.item(i) - start.item(i));
  CHECK(same_values(average.values().at("trained"), expected));
  CHECK(average.values().at("frozen").data<float>() == frozen.value().data<float>());  // the weights themselves

  try {
    const auto averaged = average.swap_in();
    CHECK(same_values(trained.value(), expected));
    CHECK(same_values(average.values().at("trained"), moved));  // the average holds the weights meanwhile
    throw std::runtime_error("validation failed");
  } catch (const std::runtime_error&) {
  }
  CHECK(trained.value().data<float>() == weights.data<float>());  // the very tensor training updates
  CHECK(same_values(trained.value(), moved));
  CHECK(same_values(average.values().at("trained"), expected));
}

TEST_CASE("a moving average restores from a checkpoint's weights, refusing what does not fit", "[train][ema]") {
  nn::ParameterStore store(7);
  const nn::Variable trained = store.create("trained", {4, 3}, nn::Init::XavierUniform);
  train::ExponentialMovingAverage average(store, 0.9);
  const Tensor saved = testing::random_tensor({4, 3}, 5);
  average.load({{"trained", saved}}, "step-5");
  CHECK(same_values(average.values().at("trained"), saved));
  CHECK_THROWS_WITH(average.load({{"other", saved}}, "step-5"),
                    Catch::Contains("step-5: no averaged weights for trained"));
  CHECK_THROWS_WITH(average.load({{"trained", Tensor::zeros({3, 4})}}, "step-5"),
                    Catch::Contains("step-5: the average of trained has shape [3, 4], expected [4, 3]"));
}

TEST_CASE("a decay of 0 keeps no average", "[train][ema]") {
  nn::ParameterStore store(7);
  const nn::Variable trained = store.create("trained", {4, 3}, nn::Init::XavierUniform);
  train::ExponentialMovingAverage average(store, 0.0);
  CHECK_FALSE(average.enabled());
  const Tensor weights = trained.value();
  average.update();
  {
    const auto averaged = average.swap_in();
    CHECK(trained.value().data<float>() == weights.data<float>());
  }
  CHECK(average.values().at("trained").data<float>() == weights.data<float>());
}
