// Adam/AdamW against a double-precision transcription of torch.optim's single-tensor update.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>

#include "gradcheck.h"
#include "heed/ops/adam.h"
#include "sim/counters.h"
#include "worst.h"

using namespace heed;

namespace {

// torch.optim.AdamW / torch.optim.Adam (_single_tensor_adam, no amsgrad) for one element, in double.
struct Element {
  double p, m = 0, v = 0;
};

void reference_step(Element& e, double grad, const ops::AdamHyper& h, int64_t step, double grad_scale) {
  double g = grad * grad_scale;
  if (h.decoupled) e.p *= 1 - double(h.lr) * h.weight_decay;
  else g += double(h.weight_decay) * e.p;
  e.m = e.m + (1 - double(h.beta1)) * (g - e.m);  // exp_avg.lerp_(grad, 1 - beta1)
  e.v = double(h.beta2) * e.v + (1 - double(h.beta2)) * g * g;
  const double bc1 = 1 - std::pow(double(h.beta1), step), bc2 = 1 - std::pow(double(h.beta2), step);
  const double denom = std::sqrt(e.v) / std::sqrt(bc2) + h.eps;
  e.p -= h.lr / bc1 * e.m / denom;
}

}  // namespace

TEST_CASE("adam_update follows torch's Adam and AdamW step by step", "[ops][adam]") {
  // Five steps on two tensors, one of 36000 elements (threaded path) and one of 37. Parameters are O(1)
  // and each step moves them by about lr = 1e-2 with fp32 relative error ~1e-7, so after five steps fp32
  // and double agree to 1e-6; m and v (O(1) and below) likewise. The semantics under test move results
  // far more: decoupled vs coupled decay by lr * wd * p = 1e-3 per step, a missing bias correction by
  // several times the update, and eps = 1e-2 placed differently in the denominator by about 3% of it.
  for (bool decoupled : {true, false})
    for (float eps : {1e-8f, 1e-2f}) {
      ops::AdamHyper h;
      h.lr = 1e-2f;
      h.beta1 = 0.9f;
      h.beta2 = 0.98f;
      h.eps = eps;
      h.weight_decay = 0.1f;
      h.decoupled = decoupled;
      const float grad_scale = 0.5f;
      INFO("decoupled " << decoupled << ", eps " << eps);

      const std::vector<Shape> shapes = {{3, 12000}, {37}};
      std::vector<ops::AdamSlot> slots;
      std::vector<std::vector<Element>> ref;
      for (size_t s = 0; s < shapes.size(); ++s) {
        ops::AdamSlot slot{testing::random_tensor(shapes[s], 10 + s), Tensor::empty(shapes[s]),
                           Tensor::zeros(shapes[s]), Tensor::zeros(shapes[s])};
        std::vector<Element> r;
        for (int64_t i = 0; i < slot.param.numel(); ++i) r.push_back({slot.param.item(i)});
        slots.push_back(slot);
        ref.push_back(r);
      }
      for (int64_t step = 1; step <= 5; ++step) {
        for (size_t s = 0; s < slots.size(); ++s) {
          slots[s].grad.copy_from(testing::random_tensor(shapes[s], 100 * step + s));
          for (int64_t i = 0; i < slots[s].grad.numel(); ++i)
            reference_step(ref[s][i], slots[s].grad.item(i), h, step, grad_scale);
        }
        ops::adam_update(slots, h, step, {.factor = grad_scale});
      }
      for (size_t s = 0; s < slots.size(); ++s) {
        double dp = 0, dm = 0, dv = 0;
        for (int64_t i = 0; i < slots[s].param.numel(); ++i) {
          testing::raise_worst(dp, std::abs(slots[s].param.item(i) - ref[s][i].p));
          testing::raise_worst(dm, std::abs(slots[s].m.item(i) - ref[s][i].m));
          testing::raise_worst(dv, std::abs(slots[s].v.item(i) - ref[s][i].v));
        }
        INFO("slot " << s);
        CHECK(dp <= 1e-6);
        CHECK(dm <= 1e-6);
        CHECK(dv <= 1e-6);
      }
    }
}

TEST_CASE("adam_update checks its slots and step", "[ops][adam]") {
  const Tensor p = testing::random_tensor({4}, 1);
  ops::AdamSlot bad{p, testing::random_tensor({5}, 2), Tensor::zeros({4}), Tensor::zeros({4})};
  CHECK_THROWS_WITH(ops::adam_update({bad}, ops::AdamHyper{}, 1), Catch::Contains("grad has shape [5]"));
  ops::AdamSlot ok{p, testing::random_tensor({4}, 3), Tensor::zeros({4}), Tensor::zeros({4})};
  CHECK_THROWS_WITH(ops::adam_update({ok}, ops::AdamHyper{}, 0), Catch::Contains("step counts from 1"));
  ops::AdamSlot strided{testing::random_tensor({2, 2}, 4).transpose(0, 1), testing::random_tensor({2, 2}, 5),
                        Tensor::zeros({2, 2}), Tensor::zeros({2, 2})};
  CHECK_THROWS_WITH(ops::adam_update({strided}, ops::AdamHyper{}, 1), Catch::Contains("param must be contiguous"));
}

TEST_CASE("adam_update on the simulated GPU updates every slot in one launch, as the CPU does",
          "[ops][adam][sim]") {
  // The same fp32 operations in the same order per element (kernels/adam.h), so CPU and GPU agree to a
  // few ulps (the GPU may contract a multiply and an add into one fma); slots of odd sizes, one empty,
  // cross the kernel's 4096-element chunks.
  const Device sim = Device::sim();
  const std::vector<Shape> shapes = {{5000}, {0}, {3, 7}, {4097}};
  std::vector<ops::AdamSlot> cpu, gpu;
  uint32_t seed = 1;
  for (const Shape& shape : shapes) {
    ops::AdamSlot s{testing::random_tensor(shape, seed), testing::random_tensor(shape, seed + 1),
                    testing::random_tensor(shape, seed + 2, -0.1f, 0.1f), testing::random_tensor(shape, seed + 3, 0.0f, 0.1f)};
    seed += 4;
    cpu.push_back({s.param.clone(), s.grad.clone(), s.m.clone(), s.v.clone()});
    gpu.push_back({s.param.to(sim), s.grad.to(sim), s.m.to(sim), s.v.to(sim)});
  }
  ops::AdamHyper hyper;
  hyper.lr = 1e-2f;
  hyper.weight_decay = 0.1f;
  for (int64_t step = 1; step <= 3; ++step) {
    ops::adam_update(cpu, hyper, step, {.factor = 0.5f});
    ops::adam_update(gpu, hyper, step, {.factor = 0.5f});
  }
  for (size_t i = 0; i < shapes.size(); ++i)
    for (const auto& [got, want] : {std::pair{&gpu[i].param, &cpu[i].param}, std::pair{&gpu[i].m, &cpu[i].m},
                                    std::pair{&gpu[i].v, &cpu[i].v}}) {
      const Tensor h = got->to(Device::cpu());
      for (int64_t j = 0; j < h.numel(); ++j)
        CHECK(std::abs(h.item(j) - want->item(j)) <= 1e-6 * (1 + std::abs(want->item(j))));
    }
}

TEST_CASE("half_copies rounds every parameter into its 16-bit copy in one launch, as the CPU does",
          "[ops][adam][sim]") {
  // Rounding to nearest even is exact arithmetic, so the copies agree bit for bit; tensors of odd sizes,
  // one empty, cross the 4096-element chunks.
  const Device sim = Device::sim();
  for (DType half : {DType::BF16, DType::F16}) {
    INFO(dtype_name(half));
    std::vector<Tensor> params, copies;
    uint32_t seed = 30;
    for (const Shape& shape : std::vector<Shape>{{5000}, {0}, {3, 7}, {4097}}) {
      params.push_back(testing::random_tensor(shape, seed++, -70000.0f, 70000.0f).to(sim));  // past fp16's range
      copies.push_back(Tensor::full(shape, std::nanf("")).to(half).to(sim));
    }
    cuda_sim::CountingScope counting;
    ops::half_copies(params, copies);
    CHECK(counting.take().launches.size() == 1);
    for (size_t i = 0; i < params.size(); ++i) {
      const Tensor got = copies[i].to(Device::cpu()), want = params[i].to(Device::cpu()).to(half);
      CHECK(std::memcmp(got.raw_data(), want.raw_data(), want.nbytes()) == 0);
    }
  }
}

TEST_CASE("copy_grads copies every gradient into its home, zeros where there is none, in one launch per 100",
          "[ops][adam][sim]") {
  // A copy is exact, so every home must hold its gradient's bits. 205 tensors take three launches (100 a
  // launch); sizes cross the 4096-element chunks, one is empty, and every seventh has no gradient.
  const Device device = GENERATE(Device::cpu(), Device::sim());
  INFO(device.str());
  std::vector<Tensor> grads, homes;
  const std::vector<Shape> shapes = {{5000}, {0}, {3, 7}, {4097}, {1}};
  for (uint32_t i = 0; i < 205; ++i) {
    const Shape& shape = shapes[i % shapes.size()];
    grads.push_back(i % 7 == 3 ? Tensor() : testing::random_tensor(shape, 100 + i).to(device));
    homes.push_back(Tensor::full(shape, std::nanf("")).to(device));
  }
  cuda_sim::CountingScope counting(/*count_memory=*/false);
  ops::copy_grads(grads, homes);
  CHECK(counting.take().launches.size() == (device.is_cpu() ? 0 : 3));
  for (size_t i = 0; i < homes.size(); ++i) {
    INFO(i);
    const std::vector<float> want = grads[i].defined() ? grads[i].to(Device::cpu()).to_vector<float>()
                                                       : std::vector<float>(homes[i].numel(), 0.0f);
    CHECK(homes[i].to(Device::cpu()).to_vector<float>() == want);
  }
  ops::copy_grads({}, {});  // nothing to copy: no launch
  CHECK(counting.take().launches.empty());
}

TEST_CASE("grad_squares sums every gradient's squares, and adam_update clips from it or skips", "[ops][adam]") {
  const std::vector<Shape> shapes = {{5000}, {0}, {3, 7}, {4097}};
  std::vector<Tensor> grads;
  double exact = 0;
  uint32_t seed = 1;
  for (const Shape& shape : shapes) {
    grads.push_back(testing::random_tensor(shape, seed++));
    for (int64_t j = 0; j < grads.back().numel(); ++j) exact += double(grads.back().item(j)) * grads.back().item(j);
  }
  // The CPU adds a chunk's squares in 16 float lanes of at most 256 terms each, then the lanes in float and
  // the chunks in double: all terms positive, so within (255 + 15 + 1) u of the exact sum.
  const float squares = ops::grad_squares(grads).item();
  CHECK(std::abs(squares - exact) <= 271 * std::ldexp(exact, -24));

  // Clipping from the sum is the factor clip / norm / loss_scale, the unclipped update's factor otherwise.
  auto slots_for = [&](const std::vector<Tensor>& g) {
    std::vector<ops::AdamSlot> slots;
    for (size_t i = 0; i < g.size(); ++i)
      slots.push_back({testing::random_tensor(g[i].shape(), 100 + i), g[i], Tensor::zeros(g[i].shape()),
                       Tensor::zeros(g[i].shape())});
    return slots;
  };
  const float loss_scale = 4.0f, norm = std::sqrt(squares) / loss_scale, clip = norm / 3;
  for (const auto& [clip_norm, factor] : {std::pair{clip, clip / norm / loss_scale}, std::pair{0.0f, 1 / loss_scale},
                                          std::pair{2 * norm, 1 / loss_scale}}) {
    std::vector<ops::AdamSlot> clipped = slots_for(grads), scaled = slots_for(grads);
    ops::adam_update(clipped, ops::AdamHyper{}, 1,
                     {.squares = Tensor::full({}, squares), .clip_norm = clip_norm, .loss_scale = loss_scale});
    ops::adam_update(scaled, ops::AdamHyper{}, 1, {.factor = factor});
    double worst = 0;  // Adam's step is nearly invariant to the factor: compare the moments, which are not
    for (size_t i = 0; i < shapes.size(); ++i)
      for (int64_t j = 0; j < grads[i].numel(); ++j)
        testing::raise_worst(worst, std::abs(clipped[i].m.item(j) - scaled[i].m.item(j)) /
                                        (1e-30f + std::abs(scaled[i].m.item(j))));
    INFO("clip_norm " << clip_norm);
    CHECK(worst <= 4e-7f);  // the two factors differ by a few float roundings
  }

  // A non-finite norm: nothing changes.
  std::vector<ops::AdamSlot> slots = slots_for(grads);
  const Tensor before = slots[0].param.clone();
  for (const float bad : {std::nanf(""), INFINITY}) {
    ops::adam_update(slots, ops::AdamHyper{}, 1, {.squares = Tensor::full({}, bad), .clip_norm = 1.0f});
    for (int64_t j = 0; j < before.numel(); ++j) REQUIRE(slots[0].param.item(j) == before.item(j));
    CHECK(slots[0].m.item(0) == 0.0f);
  }
}
