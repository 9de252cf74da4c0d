// The one gradient buffer of a parameter store (autograd::GradientBuffer): every trainable gradient is a
// slice of it that keeps its address from step to step, a backward pass fills it with the same values as
// gradients of their own, and GradientSync all-reduces consecutive slices of it in place, with no copy
// per parameter.
#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>

#include "gradcheck.h"
#include "heed/autograd/functions.h"
#include "heed/nn/parameters.h"
#include "heed/train/gradient_sync.h"
#include "sim/counters.h"

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

// A world of two ranks whose other rank contributes zeros: the sum is the identity, so the gradients
// after the all-reduce must equal one process's. It records what it was asked to reduce.
class ZeroPeerCommunicator : public dist::Communicator {
 public:
  struct Reduced {
    const void* data;
    int64_t numel;
  };
  std::vector<Reduced> reduced;

  int rank() const override { return 0; }
  int world() const override { return 2; }
  std::string name() const override { return "a peer of zeros"; }
  void all_reduce(Tensor& t, dist::ReduceOp) override { reduced.push_back({t.raw_data(), t.numel()}); }
  std::unique_ptr<dist::Pending> all_reduce_async(Tensor& t, dist::ReduceOp op) override {
    struct Done : dist::Pending {
      bool test() override { return true; }
      void wait() override {}
    };
    all_reduce(t, op);
    return std::make_unique<Done>();
  }
  void all_reduce(std::vector<double>&, dist::ReduceOp) override {}
  void broadcast(Tensor&, int) override {}
  Tensor all_gather(const Tensor& t) override { return t.clone(); }
  Tensor reduce_scatter(const Tensor& t, dist::ReduceOp) override { return t.clone(); }
  void barrier() override {}
};

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

TEST_CASE("GradientSync all-reduces slices of the gradient buffer in place, without a copy per parameter",
          "[train][grads][sim]") {
  // Buckets of about 64 bytes: four, so that some start while backward goes on.
  const Device sim = Device::sim();
  TinyModel model(sim), reference(sim);  // the reference runs one process's backward pass
  ZeroPeerCommunicator comm;
  train::GradientSync sync(model.store, comm, 64);
  cuda_sim::CountingScope counting(/*count_memory=*/false);
  for (int step = 0; step < 2; ++step) {
    INFO("step " << step);
    const Tensor x = testing::random_tensor({5, 6}, 21 + step);
    comm.reduced.clear();
    // spare has a gradient in the first step and none in the second: its slice must be zeroed then.
    model.store.zero_grads();
    counting.take();
    sync.backward_and_reduce(model.loss(x, step == 0));
    const cuda_sim::StepCounters synced = counting.take();
    // The reference has a buffer too, so that the launches differ only by what GradientSync does.
    reference.store.zero_grads();
    autograd::backward(reference.loss(x, step == 0));
    const cuda_sim::StepCounters plain = counting.take();

    // The buckets are the whole buffer, slice after slice.
    const Tensor& flat = model.store.grad_buffer().flat();
    REQUIRE(comm.reduced.size() >= 3);
    const char* next = static_cast<const char*>(flat.raw_data());
    int64_t covered = 0;
    for (const auto& r : comm.reduced) {
      CHECK(r.data == next);
      next += r.numel * 4;
      covered += r.numel;
    }
    CHECK(covered == flat.numel());

    for (const auto& [name, p] : model.store.all()) {
      INFO(name);
      if (name == "frozen") continue;
      REQUIRE(p.grad().defined());  // every trainable parameter takes part, with zeros where it had none
      CHECK(in_its_slice(model.store, name, p.grad()));
      const Tensor& want = reference.store.get(name).grad();
      CHECK(host(p.grad()) == (want.defined() ? host(want) : std::vector<float>(p.value().numel(), 0.0f)));
    }

    // The launches of a plain backward pass, and the gradient copies: at most one launch a bucket, where a
    // copy into a bucket and one back took two a parameter.
    auto kernels = [](const cuda_sim::StepCounters& c, bool copies) {
      std::vector<std::string> names;
      for (const auto& l : c.launches)
        if ((l.kernel == "copy_grads_kernel") == copies) names.push_back(l.kernel);
      std::sort(names.begin(), names.end());
      return names;
    };
    CHECK(kernels(synced, false) == kernels(plain, false));
    CHECK(kernels(synced, true).size() <= comm.reduced.size());
    CHECK(synced.copies_to_device == plain.copies_to_device);  // the input; no table uploads
  }
}

TEST_CASE("a 16-bit copy that sends its gradient to its parameter has GEMMs write into the parameter's slice",
          "[autograd][grads][sim]") {
  // As cast() does for a parameter copy of a CastParametersScope: the weight's gradient is the GEMM's,
  // written into the parameter's home with beta 0 and then 1, with nothing left to copy when backward
  // ends. The reference casts the usual way (a node that hands the copy's gradient to the parameter); the
  // GEMMs are the same, so the gradients are the same bits.
  const Device sim = Device::sim();
  struct Model {
    nn::ParameterStore store{3};
    Variable w = store.create("w", {8, 6}, nn::Init::XavierUniform);
    Model(Device device) { store.to(device); }
  } model(sim), reference(sim);
  const Tensor x1 = testing::random_tensor({5, 6}, 31).to(DType::BF16).to(sim);
  const Tensor x2 = testing::random_tensor({3, 6}, 32).to(DType::BF16).to(sim);
  auto loss = [&](const Variable& w16) {
    const Variable y1 = autograd::linear(Variable(x1), w16, Variable());
    const Variable y2 = autograd::linear(Variable(x2), w16, Variable());
    return autograd::add(autograd::sum(autograd::cast(y1, DType::F32)), autograd::sum(autograd::cast(y2, DType::F32)));
  };
  cuda_sim::CountingScope counting(/*count_memory=*/false);
  for (int step = 0; step < 2; ++step) {
    model.store.zero_grads();
    reference.store.zero_grads();
    const Variable copy(model.w.value().to(DType::BF16));
    copy.send_grad_to(model.w);
    counting.take();
    autograd::backward(loss(copy));
    for (const auto& l : counting.take().launches) CHECK(l.kernel != "copy_grads_kernel");
    autograd::backward(loss(autograd::cast(reference.w, DType::BF16)));
    CHECK_FALSE(copy.grad().defined());
    REQUIRE(model.w.grad().defined());
    CHECK(in_its_slice(model.store, "w", model.w.grad()));
    CHECK(host(model.w.grad()) == host(reference.w.grad()));
  }
}
