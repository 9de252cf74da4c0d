// Embedding lookup and scatter-add: gathered values, id validation, gradients (repeats, pad row), and a
// bit-exact comparison of the threaded backward with a sequential sum.
#include <catch2/catch.hpp>

#include <random>

#include "gradcheck.h"
#include "heed/ops/embedding.h"
#include "worst.h"
#include "sim/counters.h"

using namespace heed;

namespace {

Tensor random_ids(const Shape& shape, int32_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, vocab - 1);
  std::vector<int32_t> ids(shape_numel(shape));
  for (auto& id : ids) id = dist(rng);
  return Tensor::from_vector(ids, shape);
}

}  // namespace

TEST_CASE("embedding gathers scaled rows", "[ops][embedding]") {
  const Tensor weight = testing::random_tensor({6, 5}, 1);
  const Tensor ids = Tensor::from_vector<int32_t>({3, 0, 5, 3, 1, 2}, {2, 3});
  const float scale = 2.5f;
  const Tensor y = ops::embedding_forward(ids, weight, scale);
  REQUIRE(y.shape() == Shape{2, 3, 5});
  for (int64_t i = 0; i < 6; ++i)
    for (int64_t j = 0; j < 5; ++j)
      CHECK(y.item(i * 5 + j) == scale * weight.item(ids.to_vector<int32_t>()[i] * 5 + j));
  CHECK(ops::embedding_forward(ids, weight).to_vector<float>() ==
        ops::embedding_forward(ids, weight.transpose(0, 1).contiguous().transpose(0, 1)).to_vector<float>());
}

TEST_CASE("embedding names an id outside the vocabulary and its position", "[ops][embedding]") {
  const Tensor weight = testing::random_tensor({5, 4}, 2);
  const Tensor bad = Tensor::from_vector<int32_t>({1, 2, 9, 0}, {2, 2});
  CHECK_THROWS_WITH(ops::embedding_forward(bad, weight), Catch::Contains("id 9 at position [1, 0]") &&
                                                             Catch::Contains("[0, 5)"));
  const Tensor negative = Tensor::from_vector<int32_t>({1, -1}, {2});
  CHECK_THROWS_WITH(ops::embedding_forward(negative, weight), Catch::Contains("id -1 at position [1]"));
  CHECK_THROWS_WITH(ops::embedding_backward(testing::random_tensor({2, 2, 4}, 3), bad, 5, -1),
                    Catch::Contains("id 9 at position [1, 0]"));
  CHECK_THROWS_WITH(ops::embedding_forward(Tensor::from_vector<float>({1, 2}, {2}), weight),
                    Catch::Contains("must be I32"));
}

TEST_CASE("embedding gradient matches finite differences, repeated ids accumulating", "[ops][embedding][grad]") {
  Tensor weight = testing::random_tensor({7, 5}, 4);
  // Ids 2 and 4 repeat; 6 is unused and must get a zero gradient.
  const Tensor ids = Tensor::from_vector<int32_t>({2, 4, 0, 2, 1, 4, 2, 3, 5, 4, 1, 2}, {3, 4});
  const Tensor w = testing::random_tensor({3, 4, 5}, 5);
  const float scale = 1.5f;
  const Tensor dweight = ops::embedding_backward(w, ids, 7, -1, scale);
  REQUIRE(dweight.shape() == Shape{7, 5});
  testing::check_gradient([&] { return testing::weighted_sum(ops::embedding_forward(ids, weight, scale), w); },
                          weight, dweight);
  for (int64_t j = 0; j < 5; ++j) CHECK(dweight.item(6 * 5 + j) == 0.0f);
}

TEST_CASE("embedding gives the pad row no gradient", "[ops][embedding][grad]") {
  const Tensor ids = Tensor::from_vector<int32_t>({0, 3, 3, 1, 0, 2}, {2, 3});
  const Tensor dy = testing::random_tensor({2, 3, 4}, 6);
  const Tensor all = ops::embedding_backward(dy, ids, 4, -1);
  const Tensor padded = ops::embedding_backward(dy, ids, 4, 3);
  for (int64_t v = 0; v < 4; ++v)
    for (int64_t j = 0; j < 4; ++j) {
      CHECK(padded.item(v * 4 + j) == (v == 3 ? 0.0f : all.item(v * 4 + j)));
      if (v == 3) CHECK(all.item(v * 4 + j) != 0.0f);
    }
  CHECK_THROWS_WITH(ops::embedding_backward(dy, ids, 4, 4), Catch::Contains("pad_id"));
  CHECK_THROWS_WITH(ops::embedding_backward(dy.narrow(2, 0, 3).unsqueeze(0), ids, 4, -1),
                    Catch::Contains("expected ids' shape"));
}

TEST_CASE("embedding backward is the sequential sum, on the threaded path too", "[ops][embedding][grad]") {
  // 3000 positions over 300 ids of width 128 take the threaded path. Each gradient row is summed by one
  // thread in position order, so it equals this sequential fp32 sum bit for bit; a race or a reordering
  // would not. dy is a transposed view, which the op must read in logical order.
  const int64_t n = 3000, vocab = 300, d = 128;
  const Tensor ids = random_ids({n}, vocab, 7);
  const Tensor dy = testing::random_tensor({d, n}, 8).transpose(0, 1);
  const float scale = 0.75f;
  const Tensor got = ops::embedding_backward(dy, ids, vocab, 0, scale);
  const Tensor dyc = dy.contiguous();
  std::vector<float> expected(vocab * d, 0.0f);
  const std::vector<int32_t> id = ids.to_vector<int32_t>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j) expected[id[i] * d + j] += dyc.item(i * d + j);
  for (int64_t j = 0; j < vocab * d; ++j) expected[j] = j < d ? 0.0f : expected[j] * scale;
  CHECK(got.to_vector<float>() == expected);
  CHECK(ops::embedding_backward(dy, ids, vocab, 0, scale).to_vector<float>() == got.to_vector<float>());
}

TEST_CASE("embedding on the simulated GPU runs the kernels and matches the CPU op bit for bit",
          "[ops][embedding][sim]") {
  // The op's GPU path end to end. Both gather scaled rows, and both sum each gradient row over its
  // positions in position order (the GPU path groups positions by id first), so the bits agree.
  const Device sim = Device::sim();
  const int64_t n = 300, vocab = 50, d = 37;
  const Tensor ids = random_ids({n}, vocab, 9);
  const Tensor weight = testing::random_tensor({vocab, d}, 10), dy = testing::random_tensor({n, d}, 11);
  CHECK(ops::embedding_forward(ids.to(sim), weight.to(sim), 1.5f).to(Device::cpu()).to_vector<float>() ==
        ops::embedding_forward(ids, weight, 1.5f).to_vector<float>());
  CHECK(ops::embedding_backward(dy.to(sim), ids.to(sim), vocab, 0, 1.5f).to(Device::cpu()).to_vector<float>() ==
        ops::embedding_backward(dy, ids, vocab, 0, 1.5f).to_vector<float>());
  CHECK_THROWS_WITH(ops::embedding_forward(Tensor::from_vector<int32_t>({vocab}, {1}).to(sim), weight.to(sim)),
                    Catch::Contains("outside the vocabulary"));
}

TEST_CASE("embedding on the simulated GPU takes ids from the host without reading anything back",
          "[ops][embedding][sim]") {
  // A training step's ids come from the host: the op checks them there and uploads them, and the backward
  // groups them there, so neither reads device memory on the host (a synchronisation each).
  const Device sim = Device::sim();
  const int64_t n = 300, vocab = 50, d = 37;
  const Tensor ids = random_ids({n}, vocab, 12);
  const Tensor weight = testing::random_tensor({vocab, d}, 13).to(sim), dy = testing::random_tensor({n, d}, 14).to(sim);
  const Tensor out_device_ids = ops::embedding_forward(ids.to(sim), weight, 0.5f);
  const Tensor grad_device_ids = ops::embedding_backward(dy, ids.to(sim), vocab, 0, 0.5f);
  cuda_sim::CountingScope counting;
  const Tensor out = ops::embedding_forward(ids, weight, 0.5f);
  const Tensor grad = ops::embedding_backward(dy, ids, vocab, 0, 0.5f);
  const cuda_sim::StepCounters counted = counting.take();
  CHECK(counted.copies_to_host == 0);
  CHECK(counted.copies_to_device == 2);  // the ids, then the grouping of them
  CHECK(counted.host_syncs() == 0);       // uploads are queued through the staging ring, waiting for nothing
  CHECK(out.device() == sim);
  CHECK(out.to(Device::cpu()).to_vector<float>() == out_device_ids.to(Device::cpu()).to_vector<float>());
  CHECK(grad.to(Device::cpu()).to_vector<float>() == grad_device_ids.to(Device::cpu()).to_vector<float>());
  CHECK_THROWS_WITH(ops::embedding_forward(Tensor::from_vector<int32_t>({vocab}, {1}), weight),
                    Catch::Contains("outside the vocabulary"));
}

TEST_CASE("embedding backward adds into a gradient in the rows of the ids present only",
          "[ops][embedding][grad][sim]") {
  // As a tied embedding's gradient after the output layer's product filled it: each present row gets
  // base + scale * (its positions' sum), the separate gradient added: the same fp32 sum, then one scaled
  // add, which a compiler may fuse into an FMA (skipping the product's rounding: u |added| at most, and an
  // ulp of the result, u = 2^-24). Rows of absent ids keep their bits, and so does the pad row.
  const int64_t n = 300, vocab = 80, d = 37;
  const Tensor ids = random_ids({n}, vocab / 2, 15);  // ids below 40 only: rows 40..79 absent
  const Tensor dy = testing::random_tensor({n, d}, 16), base = testing::random_tensor({vocab, d}, 17);
  const Tensor separate = ops::embedding_backward(dy, ids, vocab, 3, 0.5f);
  for (const Device dev : {Device::cpu(), Device::sim()}) {
    INFO(dev.str());
    Tensor dweight = base.to(dev).clone();
    ops::embedding_backward_into(dy.to(dev), ids, dweight, true, 3, 0.5f);
    const std::vector<float> got = dweight.to(Device::cpu()).to_vector<float>();
    double worst = 0.0;
    for (int64_t v = 0; v < vocab; ++v)
      for (int64_t j = 0; j < d; ++j) {
        const int64_t i = v * d + j;
        if (v >= vocab / 2 || v == 3) {
          CHECK(got[i] == base.item(i));
          continue;
        }
        const double want = static_cast<double>(base.item(i)) + separate.item(i);
        const double allowed = 0x1p-24 * (2 * std::abs(want) + std::abs(separate.item(i)));
        testing::raise_worst(worst, std::abs(got[i] - static_cast<float>(want)) - allowed);
      }
    CHECK(worst <= 0.0);
  }
}
