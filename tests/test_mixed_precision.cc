// Whole training steps of a small Transformer on the GPU code path, run by the simulator in bf16 and fp16
// mixed precision, against the CPU backend in fp32: forward (with dropout in the model and in attention),
// backward through every op, and Adam on fp32 master weights.
//
// Tolerances. A mixed-precision step rounds every activation and every GEMM input to 16 bits, so it differs
// from fp32 by the accumulated rounding of a few dozen such roundings along each path, not by fp32 noise.
// The allowances are multiples of the 16-bit unit roundoff u (bf16 2^-8, fp16 2^-11), relative, with the
// gradients compared norm-wise per parameter: the loss within 4 u and each gradient within 16 u. Measured
// runs stay within half of each (gradients up to 7 u, losses up to 0.7 u). The test can fail: the negative
// control compares the CPU gradients of the same step with those of another batch and must exceed every
// allowance many times over, so an op that computed the wrong thing (or dropped a mask) would not pass.
#include <catch2/catch.hpp>

#include <cmath>

#include "heed/nn/transformer.h"
#include "heed/train/optimizer.h"
#include "kernel_testing.h"
#include "worst.h"

using namespace heed;

namespace {

nn::ModelConfig small_config(const std::string& norm) {
  nn::ModelConfig c;
  c.vocab_size = 40;
  c.pad_id = 0;
  c.decoder_start_id = 0;
  c.d_model = 64;
  c.heads = 2;  // head dim 32
  c.ffn_dim = 128;
  c.encoder_layers = 2;
  c.decoder_layers = 2;
  c.norm = norm;
  c.tie_embeddings = "target";
  c.activation = "gelu";
  c.final_logits_bias = true;
  c.label_smoothing = 0.1f;
  c.dropout = 0.1f;
  c.attention_dropout = 0.1f;
  return c;
}

// Three pairs, padded on both sides; ids from a fixed pattern that covers the vocabulary.
data::Batch make_batch(int shift) {
  const int64_t rows = 3, ls = 9, lt = 7;
  std::vector<int32_t> src(rows * ls, 0), tin(rows * lt, 0), tout(rows * lt, 0);
  const int64_t src_len[] = {9, 6, 4}, tgt_len[] = {7, 5, 3};
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < src_len[r]; ++i) src[r * ls + i] = 3 + (7 * r + 5 * i + shift) % 37;
    for (int64_t i = 0; i < tgt_len[r]; ++i) {
      tout[r * lt + i] = 3 + (11 * r + 3 * i + 2 * shift) % 37;
      tin[r * lt + i] = i == 0 ? 0 : tout[r * lt + i - 1];
    }
  }
  return {Tensor::from_vector(src, {rows, ls}), Tensor::from_vector(tin, {rows, lt}),
          Tensor::from_vector(tout, {rows, lt})};
}

double l2_norm(const Tensor& t) {
  double sum = 0;
  for (float v : testing::values(t)) sum += double(v) * v;
  return std::sqrt(sum);
}

double relative_distance(const Tensor& a, const Tensor& b) {
  const std::vector<float> x = testing::values(a), y = testing::values(b);
  double diff = 0, ref = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    diff += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
    ref += double(y[i]) * y[i];
  }
  return std::sqrt(diff / std::max(ref, 1e-300));
}

nn::ParameterStore& moved(nn::ParameterStore& store, Device device) {
  store.to(device);
  return store;
}

struct Run {
  nn::ParameterStore store{5};
  nn::Transformer model;
  train::AdamOptimizer adam;
  DType compute;

  Run(const nn::ModelConfig& config, Device device, DType compute_type)
      : model(config, store), adam(moved(store, device), ops::AdamHyper{.lr = 3e-3f}), compute(compute_type) {}

  // Forward and backward of step `step`; returns the loss.
  double forward_backward(const data::Batch& batch, uint64_t step) {
    store.zero_grads();
    nn::ForwardContext ctx{.training = true, .compute = compute, .seed = 9, .step = step};
    nn::LossResult r = model.loss(batch, ctx);
    autograd::backward(r.loss);
    return r.loss.value().to(Device::cpu()).item();
  }
};

}  // namespace

// Relative distance of the simulated run's gradient of `name` from the CPU's. A key bias shifts every score
// of a query's row alike, which softmax ignores: its exact gradient is zero, so only rounding noise may be
// there, measured against the same layer's query-bias gradient.
double gradient_error(const std::string& name, const nn::ParameterStore& sim, const nn::ParameterStore& cpu) {
  const size_t key_bias = name.find("k_proj.bias");
  if (key_bias == std::string::npos) return relative_distance(sim.get(name).grad(), cpu.get(name).grad());
  return l2_norm(sim.get(name).grad()) / l2_norm(sim.get(std::string(name).replace(key_bias, 6, "q_proj")).grad());
}

TEST_CASE("training steps on the simulated GPU in bf16 and fp16 mixed precision match the CPU in fp32",
          "[sim][mixed_precision]") {
  for (const char* norm : {"pre", "post"}) {
    for (const DType compute : {DType::BF16, DType::F16}) {
      INFO("norm=" << norm << " compute=" << testing::dtype_label(compute));
      const double u = compute == DType::BF16 ? 1.0 / 256 : 1.0 / 2048;
      const nn::ModelConfig config = small_config(norm);
      Run cpu(config, Device::cpu(), DType::F32), sim(config, Device::sim(), compute);
      REQUIRE(sim.store.get("decoder.embed_tokens.weight").value().device() == Device::sim());
      const data::Batch batch = make_batch(0);

      // Step 0 from identical weights: the loss and every gradient.
      double loss_cpu = cpu.forward_backward(batch, 0), loss_sim = sim.forward_backward(batch, 0);
      CHECK(std::abs(loss_sim - loss_cpu) <= 4 * u * loss_cpu);
      double worst = 0;
      std::string worst_name;
      for (const auto& [name, p] : cpu.store.all()) {
        REQUIRE(sim.store.get(name).grad().defined());
        CHECK(sim.store.get(name).grad().dtype() == DType::F32);  // master gradients stay fp32
        if (testing::raise_worst(worst, gradient_error(name, sim.store, cpu.store))) worst_name = name;
      }
      INFO("worst gradient " << worst_name << ": " << worst / u << " u");
      CHECK(worst <= 16 * u);

      // Negative control: the CPU's gradients of another batch, from the same weights.
      Run other(config, Device::cpu(), DType::F32);
      other.forward_backward(make_batch(1), 0);
      double control = 1e300;
      for (const auto& [name, p] : cpu.store.all())
        if (name.find("k_proj.bias") == std::string::npos)
          control = std::min(control, relative_distance(other.store.get(name).grad(), p.grad()));
      CHECK(control > 4 * 16 * u);

      // Adam on the fp32 master weights (the multi-tensor kernel on the simulator), then the losses of
      // the next steps. Past step 0 the gradients are no longer compared: Adam's first steps move each
      // weight by about lr whatever the gradient's size, so a rounding that flips a near-zero gradient's
      // sign moves that weight the other way, and later gradients differ by more than rounding.
      for (uint64_t step = 1; step <= 3; ++step) {
        INFO("step " << step);
        cpu.adam.step();
        sim.adam.step();
        loss_cpu = cpu.forward_backward(batch, step);
        loss_sim = sim.forward_backward(batch, step);
        CHECK(std::abs(loss_sim - loss_cpu) <= 4 * u * loss_cpu);
      }
    }
  }
}
