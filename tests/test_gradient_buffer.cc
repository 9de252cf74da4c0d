// The one gradient buffer of a parameter store (autograd::GradientBuffer): every trainable gradient is a
// slice of it that keeps its address from step to step, and a backward pass fills it with the same values
// as gradients of their own.
#include <catch2/catch.hpp>

#include <memory>

#include "gradcheck.h"
#include "heed/autograd/functions.h"
#include "heed/nn/parameters.h"

using namespace heed;
using autograd::Variable;

namespace {

// A model with what decides where a gradient is written: weights that GEMMs write (one used twice, so a
// second GEMM adds to it), biases and LayerNorm parameters whose first contribution comes from another
// op's result (one used twice, so a second contribution arrives before backward ends), a frozen weight,
// and a parameter used only when asked.
struct TinyModel {
  nn::ParameterStore store{7};
  Variable w1, b1, gamma, beta, w2, b2, spare, frozen;

  explicit TinyModel(Device device) {
    w1 = store.create("w1", {8, 6}, nn::Init::XavierUniform);
    b1 = store.create("b1", {8}, nn::Init::Zeros);
    gamma = store.create("ln.gamma", {8}, nn::Init::Ones);
    beta = store.create("ln.beta", {8}, nn::Init::Zeros);
    w2 = store.create("w2", {8, 8}, nn::Init::XavierUniform);
    b2 = store.create("b2", {8}, nn::Init::Zeros);
    spare = store.create("spare", {8}, nn::Init::Ones);
    frozen = store.create("frozen", {8, 8}, nn::Init::XavierUniform);
    frozen.set_requires_grad(false);
    if (!device.is_cpu()) store.to(device);
  }

  Variable loss(const Tensor& x, bool use_spare) const {
    Variable h = autograd::linear(Variable(x.to(w1.value().device())), w1, b1);
    h = autograd::layer_norm(h, gamma, beta, 1e-5f);
    h = autograd::linear(autograd::linear(h, w2, b2), w2, b2);
    h = autograd::linear(h, frozen, Variable());
    if (use_spare) h = autograd::mul(h, spare);
    return autograd::sum(autograd::mul(h, h));
  }
};

std::vector<float> host(const Tensor& t) { return t.to(Device::cpu()).to_vector<float>(); }

// Whether t's memory is the slice of the store's buffer that belongs to trainable parameter `name`.
bool in_its_slice(const nn::ParameterStore& store, const std::string& name, const Tensor& t) {
  const autograd::GradientBuffer& buffer = store.grad_buffer();
  for (size_t i = 0; i < buffer.vars().size(); ++i)
    if (buffer.vars()[i].same(store.get(name)))
      return t.raw_data() == buffer.flat().narrow(0, buffer.offset(i), t.numel()).raw_data();
  return false;
}

}  // namespace

TEST_CASE("trainable gradients live in the store's one buffer, at the same addresses step after step, with "
          "the values of gradients of their own",
          "[autograd][grads][sim]") {
  const Device device = GENERATE(Device::cpu(), Device::sim());
  INFO(device.str());
  TinyModel model(device), reference(device);  // the reference never lays out a buffer
  const std::vector<std::string> trainable = {"w1", "b1", "ln.gamma", "ln.beta", "w2", "b2"};
  std::vector<const void*> first_addresses;
  for (int step = 0; step < 3; ++step) {
    const Tensor x = testing::random_tensor({5, 6}, 11 + step);
    model.store.zero_grads();
    for (const auto& [name, p] : reference.store.all()) p.zero_grad();
    autograd::backward(model.loss(x, step == 0));
    autograd::backward(reference.loss(x, step == 0));
    if (step == 2) {  // gradient accumulation: a second batch adds to every gradient
      const Tensor x2 = testing::random_tensor({4, 6}, 99);
      autograd::backward(model.loss(x2, false));
      autograd::backward(reference.loss(x2, false));
    }
    REQUIRE(model.store.grad_buffer().defined());
    CHECK(model.store.grad_buffer().vars().size() == trainable.size() + 1);  // and spare; not the frozen one
    for (size_t i = 0; i < trainable.size(); ++i) {
      const std::string& name = trainable[i];
      INFO("step " << step << ", " << name);
      const Tensor& g = model.store.get(name).grad();
      REQUIRE(g.defined());
      CHECK(in_its_slice(model.store, name, g));
      if (step == 0) first_addresses.push_back(g.raw_data());
      CHECK(g.raw_data() == first_addresses[i]);
      // The same operations in the same order (a copy where the reference keeps the tensor, a GEMM into
      // the slice where it writes a fresh buffer): the same bits.
      CHECK(host(g) == host(reference.store.get(name).grad()));
    }
    CHECK(model.store.get("spare").grad().defined() == (step == 0));
    CHECK_FALSE(model.store.get("frozen").grad().defined());
    CHECK_FALSE(model.store.get("frozen").grad_home().defined());
  }
}

TEST_CASE("a store lays its gradient buffer out anew when a parameter is frozen, and moves drop it",
          "[autograd][grads]") {
  TinyModel model(Device::cpu());
  model.store.zero_grads();
  const Tensor first = model.store.grad_buffer().flat();
  model.store.zero_grads();
  CHECK(model.store.grad_buffer().flat().raw_data() == first.raw_data());
  model.w1.set_requires_grad(false);
  model.store.zero_grads();
  CHECK(model.store.grad_buffer().flat().numel() == first.numel() - 48);
  CHECK_FALSE(model.w1.grad_home().defined());
  model.store.to(Device::cpu());
  CHECK_FALSE(model.store.grad_buffer().defined());
  CHECK_FALSE(model.b1.grad_home().defined());
}
