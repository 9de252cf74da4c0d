// Label-smoothed cross-entropy against a double-precision transcription of torch's definition, its
// gradient, and target validation.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include <omp.h>

#include "gradcheck.h"
#include "heed/ops/cross_entropy.h"
#include "sim/counters.h"

using namespace heed;

namespace {

// torch.nn.functional.cross_entropy(label_smoothing=eps, reduction='sum') in double precision, row by row.
struct Reference {
  double loss = 0, nll = 0;
  int64_t count = 0;
  std::vector<double> lse;
};

Reference reference(const Tensor& logits, const std::vector<int32_t>& targets, int64_t ignore, double eps) {
  const int64_t n = logits.size(0), v = logits.size(1);
  Reference r;
  r.lse.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    double mx = -INFINITY, sum = 0;
    for (int64_t j = 0; j < v; ++j) mx = std::max(mx, double(logits.item(i * v + j)));
    for (int64_t j = 0; j < v; ++j) sum += std::exp(logits.item(i * v + j) - mx);
    r.lse[i] = mx + std::log(sum);
    if (targets[i] == ignore) continue;
    double mean_nll = 0;
    for (int64_t j = 0; j < v; ++j) mean_nll += (r.lse[i] - logits.item(i * v + j)) / v;
    const double nll = r.lse[i] - logits.item(i * v + targets[i]);
    r.loss += (1 - eps) * nll + eps * mean_nll;
    r.nll += nll;
    ++r.count;
  }
  return r;
}

// Targets in [0, vocab), with every fifth row set to `ignore`.
std::vector<int32_t> make_targets(int64_t n, int32_t vocab, int32_t ignore, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, vocab - 1);
  std::vector<int32_t> t(n);
  for (int64_t i = 0; i < n; ++i) t[i] = i % 5 == 2 ? ignore : dist(rng);
  return t;
}

}  // namespace

TEST_CASE("cross_entropy matches torch's label-smoothed definition in double precision",
          "[ops][cross_entropy]") {
  // V = 1300 spans three blocks of the online logsumexp, and [37, 1300] takes the threaded path. Rows are
  // shifted by 0, +60 or +100; at +100 a sum of exponentials without the max subtracted overflows fp32.
  // Row losses are formed in double from an fp32 running sum (1e-7 relative), so the sums over about 30
  // rows get 1e-6 relative; the saved fp32 lse (up to about 110) carries half an ulp, 3.8e-6, on top.
  const int64_t n = 37, v = 1300;
  Tensor logits = testing::random_tensor({n, v}, 1, -4.0f, 4.0f);
  const float shifts[3] = {60.0f, 100.0f, 0.0f};
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < v; ++j) logits.data<float>()[i * v + j] += shifts[i % 3];
  const int32_t ignore = 3;
  const std::vector<int32_t> t = make_targets(n, v, ignore, 2);
  const Tensor targets = Tensor::from_vector(t, {n});
  for (float eps : {0.0f, 0.1f}) {
    INFO("smoothing " << eps);
    const Reference ref = reference(logits, t, ignore, eps);
    const ops::CrossEntropyResult r = ops::cross_entropy_forward(logits, targets, ignore, eps);
    CHECK(r.count == ref.count);
    CHECK(r.loss_sum.dim() == 0);
    CHECK(std::abs(r.loss_sum.item() - ref.loss) <= 1e-6 * ref.loss);
    CHECK(std::abs(r.nll_sum.item() - ref.nll) <= 1e-6 * ref.nll);
    if (eps == 0.0f) CHECK(r.loss_sum.item() == r.nll_sum.item());
    for (int64_t i = 0; i < n; ++i)
      if (t[i] != ignore) CHECK(std::abs(r.lse.item(i) - ref.lse[i]) <= 5e-6);
  }
}

TEST_CASE("cross_entropy sums do not depend on the thread count", "[ops][cross_entropy]") {
  // Row losses are added in row order after the parallel loop: bit-identical for 1 and 3 threads.
  const Tensor logits = testing::random_tensor({200, 300}, 6, -3.0f, 3.0f);
  const Tensor targets = Tensor::from_vector(make_targets(200, 300, -100, 7), {200});
  const int saved = omp_get_max_threads();
  std::vector<float> sums;
  for (int threads : {1, 3}) {
    omp_set_num_threads(threads);
    const ops::CrossEntropyResult r = ops::cross_entropy_forward(logits, targets, -100, 0.1f);
    sums.push_back(r.loss_sum.item());
    sums.push_back(r.nll_sum.item());
  }
  omp_set_num_threads(saved);
  CHECK(sums[0] == sums[2]);
  CHECK(sums[1] == sums[3]);
}

TEST_CASE("cross_entropy gradient matches the formula and finite differences", "[ops][cross_entropy][grad]") {
  const int64_t n = 6, v = 7;
  const int32_t ignore = 0;
  const std::vector<int32_t> t = {3, 0, 6, 1, 0, 4};  // rows 1 and 4 are ignored
  const Tensor targets = Tensor::from_vector(t, {n});
  Tensor logits = testing::random_tensor({n, v}, 3, -2.0f, 2.0f);
  const float eps = 0.2f, scale = 0.37f;
  const ops::CrossEntropyResult fwd = ops::cross_entropy_forward(logits, targets, ignore, eps);
  const Tensor d = ops::cross_entropy_backward(logits, targets, fwd.lse, ignore, eps, scale);
  REQUIRE(d.shape() == logits.shape());
  // grad_scale * (softmax - (1 - eps) onehot - eps / V) in double; fp32 probabilities are within 1e-6.
  for (int64_t i = 0; i < n; ++i) {
    double mx = -INFINITY, sum = 0;
    for (int64_t j = 0; j < v; ++j) mx = std::max(mx, double(logits.item(i * v + j)));
    for (int64_t j = 0; j < v; ++j) sum += std::exp(logits.item(i * v + j) - mx);
    for (int64_t j = 0; j < v; ++j) {
      const double p = std::exp(logits.item(i * v + j) - mx) / sum;
      const double want = t[i] == ignore ? 0.0 : scale * (p - (j == t[i] ? 1 - eps : 0.0) - eps / v);
      INFO("row " << i << " class " << j);
      CHECK(std::abs(d.item(i * v + j) - want) <= 1e-6);
    }
  }
  const Tensor d1 = ops::cross_entropy_backward(logits, targets, fwd.lse, ignore, eps, 1.0f);
  testing::check_gradient(
      [&] { return double(ops::cross_entropy_forward(logits, targets, ignore, eps).loss_sum.item()); }, logits, d1);
}

TEST_CASE("cross_entropy names a target outside the classes and its row", "[ops][cross_entropy]") {
  const Tensor logits = testing::random_tensor({3, 4}, 4);
  const Tensor bad = Tensor::from_vector<int32_t>({1, 4, -100}, {3});
  CHECK_THROWS_WITH(ops::cross_entropy_forward(logits, bad, -100, 0.1f),
                    Catch::Contains("target 4 at row 1") && Catch::Contains("[0, 4)"));
  const Tensor ok = Tensor::from_vector<int32_t>({1, 3, -100}, {3});
  CHECK(ops::cross_entropy_forward(logits, ok, -100, 0.1f).count == 2);
  CHECK_THROWS_WITH(ops::cross_entropy_forward(logits, ok, 0, 0.1f), Catch::Contains("target -100 at row 2"));
  CHECK_THROWS_WITH(ops::cross_entropy_forward(logits, ok, -100, 1.5f), Catch::Contains("[0, 1]"));
  CHECK_THROWS_WITH(ops::cross_entropy_forward(logits, Tensor::from_vector<int32_t>({1, 2}, {2}), -100, 0.1f),
                    Catch::Contains("expected [3]"));
}

TEST_CASE("cross_entropy on the simulated GPU takes targets from the host without reading anything back",
          "[ops][cross_entropy][sim]") {
  // Checked on the host, then uploaded: no copy to the host, one to the device for each pass.
  const Device sim = Device::sim();
  const Tensor logits = testing::random_tensor({6, 5}, 6).to(sim);
  const Tensor targets = Tensor::from_vector<int32_t>({1, 4, -100, 0, 2, 3}, {6});
  const ops::CrossEntropyResult on_device = ops::cross_entropy_forward(logits, targets.to(sim), -100, 0.1f);
  cuda_sim::CountingScope counting;
  const ops::CrossEntropyResult r = ops::cross_entropy_forward(logits, targets, -100, 0.1f);
  const Tensor grad = ops::cross_entropy_backward(logits, targets, r.lse, -100, 0.1f, 1.0f);
  const cuda_sim::StepCounters counted = counting.take();
  CHECK(counted.copies_to_host == 0);
  CHECK(counted.copies_to_device == 2);
  CHECK(counted.host_syncs() == 0);  // uploads are queued through the staging ring, waiting for nothing
  CHECK(r.count == 5);
  CHECK(r.loss_sum.to(Device::cpu()).item() == on_device.loss_sum.to(Device::cpu()).item());
  CHECK(grad.to(Device::cpu()).to_vector<float>() ==
        ops::cross_entropy_backward(logits, targets.to(sim), on_device.lse, -100, 0.1f, 1.0f)
            .to(Device::cpu())
            .to_vector<float>());
  CHECK_THROWS_WITH(ops::cross_entropy_forward(logits, Tensor::from_vector<int32_t>({1, 4, 5, 0, 2, 3}, {6}), -100,
                                               0.1f),
                    Catch::Contains("target 5 at row 2"));
}

TEST_CASE("cross_entropy reads non-contiguous logits", "[ops][cross_entropy]") {
  const Tensor logits = testing::random_tensor({9, 4}, 5).transpose(0, 1);  // [4, 9]
  const Tensor targets = Tensor::from_vector<int32_t>({8, 0, 5, 2}, {4});
  const ops::CrossEntropyResult a = ops::cross_entropy_forward(logits, targets, -1, 0.1f);
  const ops::CrossEntropyResult b = ops::cross_entropy_forward(logits.contiguous(), targets, -1, 0.1f);
  CHECK(a.loss_sum.item() == b.loss_sum.item());
  CHECK(ops::cross_entropy_backward(logits, targets, a.lse, -1, 0.1f, 1.0f).to_vector<float>() ==
        ops::cross_entropy_backward(logits.contiguous(), targets, a.lse, -1, 0.1f, 1.0f).to_vector<float>());
}

TEST_CASE("cross_entropy on the simulated GPU runs the kernels and matches the CPU op", "[ops][cross_entropy][sim]") {
  // The op's GPU path end to end, ignored rows included; the kernels' own accuracy is tested in
  // test_kernel_cross_entropy.cc. Both compute in fp32 from the same logits (the CPU with a vectorised
  // exp, a few ulps apart), summing rows in double: per-row values agree to 1e-5 relative.
  const Device sim = Device::sim();
  const Tensor logits = testing::random_tensor({40, 301}, 5, -4.0f, 4.0f);
  const Tensor targets = Tensor::from_vector(make_targets(40, 301, -100, 6), {40});
  const ops::CrossEntropyResult want = ops::cross_entropy_forward(logits, targets, -100, 0.1f);
  const ops::CrossEntropyResult got = ops::cross_entropy_forward(logits.to(sim), targets.to(sim), -100, 0.1f);
  CHECK(got.count == want.count);
  auto close = [](const Tensor& g, const Tensor& w, double tol) {
    const Tensor h = g.to(Device::cpu());
    REQUIRE(h.shape() == w.shape());
    for (int64_t i = 0; i < h.numel(); ++i) CHECK(std::abs(h.item(i) - w.item(i)) <= tol * (1 + std::abs(w.item(i))));
  };
  close(got.loss_sum, want.loss_sum, 1e-5);
  close(got.nll_sum, want.nll_sum, 1e-5);
  close(got.lse, want.lse, 1e-5);
  close(ops::cross_entropy_backward(logits.to(sim), targets.to(sim), got.lse, -100, 0.1f, 0.5f),
        ops::cross_entropy_backward(logits, targets, want.lse, -100, 0.1f, 0.5f), 1e-6);
}

TEST_CASE("cross_entropy_backward multiplies by the gradient that reached the loss, read where it is",
          "[ops][cross_entropy][sim]") {
  const Tensor logits = testing::random_tensor({6, 11}, 3);
  const Tensor targets = Tensor::from_vector<int32_t>({1, 0, -100, 10, 4, 4}, {6});
  for (const Device device : {Device::cpu(), Device::sim()}) {
    INFO(device.str());
    const Tensor l = logits.to(device), t = targets.to(device);
    const Tensor lse = ops::cross_entropy_forward(l, t, -100, 0.1f).lse;
    // 0.25 * 3 and 0.75 are the same float: the gradients must be the same bits.
    const Tensor with_dloss = ops::cross_entropy_backward(l, t, lse, -100, 0.1f, 0.25f, Tensor::full({}, 3.0f, device));
    const Tensor scaled = ops::cross_entropy_backward(l, t, lse, -100, 0.1f, 0.75f);
    CHECK(with_dloss.to(Device::cpu()).to_vector<float>() == scaled.to(Device::cpu()).to_vector<float>());
    CHECK_THROWS_WITH(ops::cross_entropy_backward(l, t, lse, -100, 0.1f, 1.0f, Tensor::full({2}, 1.0f, device)),
                      Catch::Contains("dloss must be one F32 value"));
  }
}
