// Fused attention against a naive double-precision reference that materialises the score matrix.
//
// The reference computes the textbook backward pass (dS = P (dP - rowsum(P dP))), not the kernel's
// rowsum(dO O) shortcut, so the two share no algebra beyond the definition of the op. Lengths straddle
// the 64-wide tiles (1, 7, 63, 64, 65, 130), queries and keys differ in number, and a larger-than-usual
// scale makes the row maximum move between key tiles, so the online softmax's rescaling is exercised.
//
// Tolerances: the kernel computes in fp32 with a few-ulp exp. Inputs are uniform in [-1, 1], so scores,
// dP and rowsum(dO O) are O(1); scores are sums of D <= 64 products and every output a sum of at most 130
// terms, and fp32 rounding of such sums (eps = 6e-8, growing like sqrt(n) in practice, n eps at worst)
// stays below 1e-5 of max(1, largest value of the tensor). That is the absolute part of the tolerance; it
// must not shrink with the tensor, because a single key makes dq and dk exactly 0 while the kernel's
// dP - Drow cancels O(1) terms down to ~1e-7. A relative 1e-5 of each element is added. The worst element
// measured at 0.13 of this tolerance; a wrong mask, a missed tile or a wrong rescale is off by 1e-2 or more.
#include <catch2/catch.hpp>

#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "gradcheck.h"
#include "heed/ops/attention.h"
#include "heed/ops/dropout.h"
#include "kernel_testing.h"
#include "worst.h"

using namespace heed;
using heed::testing::random_tensor;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// A [B, H, L, D] view of random [B, L, H, D] storage, as the model passes the heads of a projection.
Tensor head_view(int64_t B, int64_t H, int64_t L, int64_t D, uint32_t seed) {
  return random_tensor({B, L, H, D}, seed).transpose(1, 2);
}

// The values of a [B, H, L, D] view in row-major order.
std::vector<double> to_double(const Tensor& t) {
  const Tensor c = t.contiguous();
  return std::vector<double>(c.data<float>(), c.data<float>() + c.numel());
}

// Padding masks: batch row b has its last 3 b keys padded (so row 0 has none), odd rows also every fifth
// key from key 2 on (a mask need not be a suffix), and the row `full_row` names has every key padded.
Tensor padding_mask(int64_t B, int64_t Lk, int64_t full_row = -1) {
  std::vector<uint8_t> m(B * Lk);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < Lk; ++j)
      m[b * Lk + j] = (b == full_row || j >= Lk - 3 * b || (b % 2 == 1 && j % 5 == 2)) ? 1 : 0;
  return Tensor::from_vector(m, {B, Lk});
}

struct Reference {
  // [B, H, L, D] (lse: [B, H, Lq]) in row-major order.
  std::vector<double> out, lse, dq, dk, dv;
};

Reference reference(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& dout,
                    const ops::AttentionOptions& opt) {
  const int64_t B = q.size(0), H = q.size(1), Lq = q.size(2), Lk = k.size(2), D = q.size(3);
  Reference r;
  r.out.assign(B * H * Lq * D, 0.0);
  r.lse.assign(B * H * Lq, -kInf);
  r.dq.assign(B * H * Lq * D, 0.0);
  r.dk.assign(B * H * Lk * D, 0.0);
  r.dv.assign(B * H * Lk * D, 0.0);
  const double keep_scale = 1.0 / (1.0 - opt.dropout_p);
  const std::vector<double> qd = to_double(q), kd = to_double(k), vd = to_double(v), dod = to_double(dout);
  std::vector<double> p(Lk), drop(Lk), dp(Lk);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < Lq; ++i) {
        const int64_t row = (b * H + h) * Lq + i;
        const double* qi = &qd[row * D];
        const double* doi = &dod[row * D];
        auto key_row = [&](const std::vector<double>& t, int64_t j) { return &t[((b * H + h) * Lk + j) * D]; };
        double mx = -kInf;
        for (int64_t j = 0; j < Lk; ++j) {
          const bool padded = opt.key_padding.defined() && opt.key_padding.data<uint8_t>()[b * Lk + j] != 0;
          const bool hidden = opt.causal && j > i + Lk - Lq;
          double s = 0;
          for (int64_t d = 0; d < D; ++d) s += qi[d] * key_row(kd, j)[d];
          p[j] = padded || hidden ? -kInf : s * opt.scale;
          mx = std::max(mx, p[j]);
        }
        if (mx == -kInf) continue;  // sees no key: output, lse and gradients stay 0 / -inf
        double sum = 0;
        for (int64_t j = 0; j < Lk; ++j) sum += p[j] = std::exp(p[j] - mx);
        r.lse[row] = mx + std::log(sum);
        for (int64_t j = 0; j < Lk; ++j) {
          p[j] /= sum;
          const bool keep = opt.dropout_p == 0.0f ||
                            ops::dropout_keep(opt.dropout_key, static_cast<uint64_t>(row * Lk + j), opt.dropout_p);
          drop[j] = keep ? keep_scale : 0.0;
        }
        for (int64_t d = 0; d < D; ++d) {
          double o = 0;
          for (int64_t j = 0; j < Lk; ++j) o += p[j] * drop[j] * key_row(vd, j)[d];
          r.out[row * D + d] = o;
        }
        // Backward of O = (P drop) V, then of the softmax, then of S = scale Q K^T.
        double pdp = 0;
        for (int64_t j = 0; j < Lk; ++j) {
          double g = 0;
          for (int64_t d = 0; d < D; ++d) g += doi[d] * key_row(vd, j)[d];
          dp[j] = g * drop[j];
          pdp += p[j] * dp[j];
        }
        for (int64_t j = 0; j < Lk; ++j) {
          const double ds = p[j] * (dp[j] - pdp) * opt.scale;
          const int64_t krow = ((b * H + h) * Lk + j) * D;
          for (int64_t d = 0; d < D; ++d) {
            r.dv[krow + d] += p[j] * drop[j] * doi[d];
            r.dq[row * D + d] += ds * kd[krow + d];
            r.dk[krow + d] += ds * qi[d];
          }
        }
      }
  return r;
}

// Checks a [B, H, L, D] view (or the [B, H, Lq] lse) against the reference with the tolerance of the
// file comment; -inf must match exactly.
void check_close(const Tensor& got, const std::vector<double>& want, const char* what) {
  REQUIRE(static_cast<size_t>(got.numel()) == want.size());
  const Tensor g = got.contiguous();
  double largest = 0;
  for (double w : want)
    if (std::isfinite(w)) largest = std::max(largest, std::abs(w));
  double worst = 0;  // largest error in units of the tolerance
  int64_t worst_at = -1, mismatched_inf = 0;
  for (size_t n = 0; n < want.size(); ++n) {
    const double x = g.data<float>()[n];
    if (!std::isfinite(want[n]) || !std::isfinite(x)) {
      mismatched_inf += x != want[n];
      continue;
    }
    const double err = std::abs(x - want[n]) / (1e-5 * std::max(1.0, largest) + 1e-5 * std::abs(want[n]));
    if (testing::raise_worst(worst, err)) worst_at = static_cast<int64_t>(n);
  }
  INFO(what << ": worst element " << worst_at << " is off by " << worst << " tolerances (largest |value| "
            << largest << ")");
  CHECK(mismatched_inf == 0);
  CHECK(worst <= 1.0);
}

struct Case {
  int64_t B, H, Lq, Lk, D;
  bool causal;
  bool padding;
  int64_t full_row = -1;  // a batch row whose keys are all padding
  float dropout = 0.0f;
};

void check_against_reference(const Case& c) {
  INFO("B " << c.B << " H " << c.H << " Lq " << c.Lq << " Lk " << c.Lk << " D " << c.D << " causal " << c.causal
            << " padding " << c.padding << " dropout " << c.dropout);
  const Tensor q = head_view(c.B, c.H, c.Lq, c.D, 1), k = head_view(c.B, c.H, c.Lk, c.D, 2),
               v = head_view(c.B, c.H, c.Lk, c.D, 3), dout = head_view(c.B, c.H, c.Lq, c.D, 4);
  ops::AttentionOptions opt;
  opt.scale = 2.0f / std::sqrt(static_cast<float>(c.D));
  opt.causal = c.causal;
  if (c.padding) opt.key_padding = padding_mask(c.B, c.Lk, c.full_row);
  opt.dropout_p = c.dropout;
  opt.dropout_key = RandomKey{7, 3, 11};
  const ops::AttentionResult fwd = ops::attention_forward(q, k, v, opt);
  const ops::AttentionGrads g = ops::attention_backward(dout, q, k, v, fwd, opt);
  const Reference r = reference(q, k, v, dout, opt);
  check_close(fwd.out, r.out, "out");
  check_close(fwd.lse, r.lse, "lse");
  check_close(g.dq, r.dq, "dq");
  check_close(g.dk, r.dk, "dk");
  check_close(g.dv, r.dv, "dv");
}

bool same_bits(const Tensor& a, const Tensor& b) {
  const Tensor ac = a.contiguous(), bc = b.contiguous();
  return ac.shape() == bc.shape() && std::memcmp(ac.data<float>(), bc.data<float>(), ac.nbytes()) == 0;
}

}  // namespace

TEST_CASE("attention matches the reference for lengths around the tile size", "[ops][attention]") {
  const bool causal = GENERATE(false, true);
  for (int64_t lq : {1, 7, 63, 64, 65, 130})
    for (int64_t lk : {1, 7, 63, 64, 65, 130}) check_against_reference({2, 2, lq, lk, 32, causal, true});
}

TEST_CASE("attention matches the reference for head sizes 8, 24, 32 and 64", "[ops][attention]") {
  const int64_t D = GENERATE(8, 24, 32, 64);
  const bool causal = GENERATE(false, true);
  check_against_reference({2, 3, 65, 65, D, causal, false});
  check_against_reference({3, 2, 33, 130, D, causal, true});
}

TEST_CASE("attention gives zero output and gradients for a fully padded batch row", "[ops][attention]") {
  const bool causal = GENERATE(false, true);
  check_against_reference({3, 2, 70, 66, 32, causal, true, /*full_row=*/1});
  // Independently of the reference: row 1 is exactly zero, its lse -inf, and no NaN anywhere.
  const Tensor q = head_view(3, 2, 9, 16, 1), k = head_view(3, 2, 5, 16, 2), v = head_view(3, 2, 5, 16, 3);
  ops::AttentionOptions opt;
  opt.causal = causal;
  opt.key_padding = padding_mask(3, 5, 1);
  const ops::AttentionResult fwd = ops::attention_forward(q, k, v, opt);
  const ops::AttentionGrads g = ops::attention_backward(head_view(3, 2, 9, 16, 4), q, k, v, fwd, opt);
  for (const Tensor& t : {fwd.out, g.dq, g.dk, g.dv}) {
    const Tensor row = t.select(0, 1).contiguous();
    for (int64_t n = 0; n < row.numel(); ++n) REQUIRE(row.data<float>()[n] == 0.0f);
    const Tensor all = t.contiguous();
    for (int64_t n = 0; n < all.numel(); ++n) REQUIRE(std::isfinite(all.data<float>()[n]));
  }
  const Tensor lse = fwd.lse.select(0, 1).contiguous();
  for (int64_t n = 0; n < lse.numel(); ++n) CHECK(lse.data<float>()[n] == -std::numeric_limits<float>::infinity());
}

TEST_CASE("attention with dropout on the probabilities matches the reference", "[ops][attention][dropout]") {
  const bool causal = GENERATE(false, true);
  check_against_reference({2, 2, 65, 130, 32, causal, true, -1, 0.2f});
  check_against_reference({2, 2, 7, 63, 64, causal, false, -1, 0.2f});
}

TEST_CASE("attention gradients agree with finite differences", "[ops][attention][gradcheck]") {
  const float dropout = GENERATE(0.0f, 0.2f);
  INFO("dropout " << dropout);
  const int64_t B = 2, H = 2, Lq = 5, Lk = 6, D = 4;
  Tensor q = random_tensor({B, H, Lq, D}, 11), k = random_tensor({B, H, Lk, D}, 12),
         v = random_tensor({B, H, Lk, D}, 13);
  const Tensor w = random_tensor({B, H, Lq, D}, 14);
  ops::AttentionOptions opt;
  opt.scale = 0.7f;
  opt.causal = true;
  opt.key_padding = padding_mask(B, Lk);  // batch row 1 has keys 2, 3, 4 and 5 padded
  opt.dropout_p = dropout;
  opt.dropout_key = RandomKey{5, 1, 2};
  auto loss = [&] { return testing::weighted_sum(ops::attention_forward(q, k, v, opt).out, w); };
  const ops::AttentionGrads g = ops::attention_backward(w, q, k, v, ops::attention_forward(q, k, v, opt), opt);
  testing::check_gradient(loss, q, g.dq);
  testing::check_gradient(loss, k, g.dk);
  testing::check_gradient(loss, v, g.dv);
}

TEST_CASE("attention reads transposed views exactly like contiguous inputs", "[ops][attention]") {
  const int64_t B = 2, H = 3, Lq = 70, Lk = 40, D = 32;
  const Tensor q = head_view(B, H, Lq, D, 1), k = head_view(B, H, Lk, D, 2), v = head_view(B, H, Lk, D, 3),
               dout = head_view(B, H, Lq, D, 4);
  REQUIRE_FALSE(q.is_contiguous());
  ops::AttentionOptions opt;
  opt.scale = 0.3f;
  opt.key_padding = padding_mask(B, Lk);
  opt.dropout_p = 0.1f;
  const ops::AttentionResult a = ops::attention_forward(q, k, v, opt);
  const ops::AttentionGrads ga = ops::attention_backward(dout, q, k, v, a, opt);
  const ops::AttentionResult c = ops::attention_forward(q.contiguous(), k.contiguous(), v.contiguous(), opt);
  const ops::AttentionGrads gc =
      ops::attention_backward(dout.contiguous(), q.contiguous(), k.contiguous(), v.contiguous(), c, opt);
  // Each row is computed by the same instructions whatever its address, so the bits agree.
  CHECK(same_bits(a.out, c.out));
  CHECK(same_bits(a.lse, c.lse));
  CHECK(same_bits(ga.dq, gc.dq));
  CHECK(same_bits(ga.dk, gc.dk));
  CHECK(same_bits(ga.dv, gc.dv));
  // Results are stored as [B, L, H, D], ready for the output projection.
  for (const Tensor& t : {a.out, ga.dq, ga.dk, ga.dv}) CHECK(t.transpose(1, 2).is_contiguous());
  CHECK(a.lse.is_contiguous());
}

TEST_CASE("attention gives the same bits on every run and for every thread count", "[ops][attention]") {
  const int64_t B = 2, H = 4, Lq = 130, Lk = 100, D = 64;
  const Tensor q = head_view(B, H, Lq, D, 1), k = head_view(B, H, Lk, D, 2), v = head_view(B, H, Lk, D, 3),
               dout = head_view(B, H, Lq, D, 4);
  ops::AttentionOptions opt;
  opt.scale = 0.125f;
  opt.causal = true;
  opt.key_padding = padding_mask(B, Lk);
  opt.dropout_p = 0.1f;
  auto run = [&] {
    ops::AttentionResult fwd = ops::attention_forward(q, k, v, opt);
    ops::AttentionGrads g = ops::attention_backward(dout, q, k, v, fwd, opt);
    return std::vector<Tensor>{fwd.out, fwd.lse, g.dq, g.dk, g.dv};
  };
  const std::vector<Tensor> first = run(), second = run();
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const std::vector<Tensor> serial = run();
  omp_set_num_threads(threads);
  for (size_t n = 0; n < first.size(); ++n) {
    CHECK(same_bits(first[n], second[n]));
    CHECK(same_bits(first[n], serial[n]));
  }
}

TEST_CASE("attention rejects malformed arguments with clear messages", "[ops][attention]") {
  const Tensor q = head_view(2, 2, 5, 8, 1), k = head_view(2, 2, 6, 8, 2), v = head_view(2, 2, 6, 8, 3);
  ops::AttentionOptions opt;
  using Catch::Matchers::Contains;
  CHECK_THROWS_WITH(ops::attention_forward(q, k, head_view(2, 2, 7, 8, 3), opt),
                    Contains("v must have k's shape [2, 2, 6, 8], got [2, 2, 7, 8]"));
  CHECK_THROWS_WITH(ops::attention_forward(q, head_view(2, 3, 6, 8, 2), v, opt), Contains("k must be [B=2, H=2"));
  CHECK_THROWS_WITH(ops::attention_forward(q.transpose(2, 3), k, v, opt), Contains("unit stride in its last"));
  CHECK_THROWS_WITH(ops::attention_forward(q.select(0, 0), k, v, opt), Contains("q must be 4-d"));
  CHECK_THROWS_WITH(ops::attention_forward(q.to(DType::I32), k, v, opt), Contains("q must be F32"));
  opt.dropout_p = 1.0f;
  CHECK_THROWS_WITH(ops::attention_forward(q, k, v, opt), Contains("dropout_p must be in [0, 1), got 1"));
  opt.dropout_p = 0.0f;
  opt.scale = -0.5f;  // the GPU kernels take row maxima of unscaled scores
  CHECK_THROWS_WITH(ops::attention_forward(q, k, v, opt), Contains("scale must be positive and finite, got -0.5"));
  opt.scale = 1.0f;
  opt.key_padding = Tensor::zeros({2, 5}, DType::U8);
  CHECK_THROWS_WITH(ops::attention_forward(q, k, v, opt), Contains("key_padding must be [B=2, Lk=6], got [2, 5]"));
  opt.key_padding = Tensor::zeros({2, 6});
  CHECK_THROWS_WITH(ops::attention_forward(q, k, v, opt), Contains("key_padding must be U8, got F32"));
  opt.key_padding = Tensor();
  const ops::AttentionResult fwd = ops::attention_forward(q, k, v, opt);
  CHECK_THROWS_WITH(ops::attention_backward(head_view(2, 2, 6, 8, 4), q, k, v, fwd, opt),
                    Contains("dout must have q's shape [2, 2, 5, 8], got [2, 2, 6, 8]"));
}

TEST_CASE("attention on the simulated GPU runs the kernels and returns the op's layouts", "[ops][attention][sim]") {
  // The op's GPU path end to end, with q, k, v as transposed views of [B, L, H, D] projections in bf16.
  // The kernels' accuracy is bounded precisely in test_kernel_attention.cc (FlashAttention's rule); here
  // bf16's own error, a few 1e-3 on these O(1) values, is allowed with room (2e-2), while a wrong stride,
  // layout or mask is off by far more.
  const Device sim = Device::sim();
  const int64_t B = 2, H = 2, Lq = 9, Lk = 13, D = 32;
  auto heads = [&](int64_t L, uint32_t seed) {  // bf16-exact values, as [B, L, H, D] storage
    return testing::random_tensor({B, L, H, D}, seed).to(DType::BF16).to(DType::F32);
  };
  const Tensor q = heads(Lq, 1), k = heads(Lk, 2), v = heads(Lk, 3), dout = heads(Lq, 4);
  ops::AttentionOptions opt;
  opt.scale = 0.3f;
  opt.causal = true;
  opt.key_padding = Tensor::from_vector<uint8_t>(std::vector<uint8_t>(B * Lk, 0), {B, Lk});
  opt.key_padding.data<uint8_t>()[Lk + 3] = 1;
  const auto cpu_view = [](const Tensor& t) { return t.transpose(1, 2); };
  const auto sim_view = [&](const Tensor& t) { return t.to(DType::BF16).to(sim).transpose(1, 2); };
  const ops::AttentionResult want = ops::attention_forward(cpu_view(q), cpu_view(k), cpu_view(v), opt);
  const ops::AttentionGrads gwant =
      ops::attention_backward(cpu_view(dout), cpu_view(q), cpu_view(k), cpu_view(v), want, opt);
  ops::AttentionOptions sim_opt = opt;
  sim_opt.key_padding = opt.key_padding.to(sim);
  const ops::AttentionResult got = ops::attention_forward(sim_view(q), sim_view(k), sim_view(v), sim_opt);
  const ops::AttentionGrads ggot =
      ops::attention_backward(sim_view(dout), sim_view(q), sim_view(k), sim_view(v), got, sim_opt);
  auto close = [](const Tensor& g, const Tensor& w) {
    REQUIRE(g.shape() == w.shape());
    const Tensor h = g.contiguous().to(Device::cpu()).to(DType::F32), wc = w.contiguous();
    for (int64_t i = 0; i < h.numel(); ++i) CHECK(std::abs(h.item(i) - wc.item(i)) <= 2e-2);
  };
  close(got.out, want.out);
  close(got.lse, want.lse);
  close(ggot.dq, gwant.dq);
  close(ggot.dk, gwant.dk);
  close(ggot.dv, gwant.dv);
  CHECK(got.out.transpose(1, 2).is_contiguous());  // stored as [B, Lq, H, D], as the op promises
  CHECK_THROWS_WITH(ops::attention_forward(cpu_view(q).contiguous().to(sim), sim_view(k), sim_view(v), sim_opt),
                    Catch::Contains("must be BF16 or F16"));
}

namespace {

// q, k and v as the column ranges of one [B, L, 3 H D] projection, as self-attention on a fused QKV
// product reads them, and their gradients written into the same ranges of one buffer filled with NaN
// first: every element must be written, and with the bits attention_backward gives for the same views
// (the same kernels and order of sums, only the destination's strides differ), on `device` with `backend`.
// 70 positions straddle the 64-wide tiles.
void check_backward_into_ranges(Device device, ops::AttentionBackend backend) {
  INFO(device.str() << (backend == ops::AttentionBackend::Cudnn ? " cudnn" : ""));
  const int64_t B = 2, H = 2, L = 70, D = 32, d = H * D;
  const DType dtype = device.is_cpu() ? DType::F32 : DType::BF16;
  const auto packed = [&](uint32_t seed, int64_t ranges) {
    return random_tensor({B, L, ranges * d}, seed).to(dtype).to(device);
  };
  // Range r of a [B, L, n * d] tensor as [B, H, L, D].
  const auto range = [&](const Tensor& t, int64_t r) {
    return t.view({B, L, t.size(2) / D, D}).narrow(2, r * H, H).transpose(1, 2);
  };
  const Tensor qkv = packed(1, 3), dout = packed(2, 1);
  ops::AttentionOptions opt;
  opt.scale = 0.4f;
  opt.causal = true;
  opt.key_padding = padding_mask(B, L).to(device);
  opt.backend = backend;
  const Tensor q = range(qkv, 0), k = range(qkv, 1), v = range(qkv, 2), dov = range(dout, 0);
  const ops::AttentionResult fwd = ops::attention_forward(q, k, v, opt);
  const ops::AttentionGrads want = ops::attention_backward(dov, q, k, v, fwd, opt);
  Tensor buffer = Tensor::full({B, L, 3 * d}, std::numeric_limits<float>::quiet_NaN()).to(dtype).to(device);
  const ops::AttentionGrads into{range(buffer, 0), range(buffer, 1), range(buffer, 2)};
  ops::attention_backward_into(dov, q, k, v, fwd, opt, into);
  const auto host = [](const Tensor& t) { return testing::to_host_f32(t.contiguous()).to_vector<float>(); };
  for (const float x : host(buffer)) REQUIRE(std::isfinite(x));
  CHECK(host(into.dq) == host(want.dq));
  CHECK(host(into.dk) == host(want.dk));
  CHECK(host(into.dv) == host(want.dv));
  const ops::AttentionGrads short_dk{into.dq, range(buffer, 1).narrow(2, 0, L - 1), into.dv};
  CHECK_THROWS_WITH(ops::attention_backward_into(dov, q, k, v, fwd, opt, short_dk),
                    Catch::Contains(fmt::format("dk must be {} [2, 2, 70, 32]", dtype_name(dtype))));
}

}  // namespace

TEST_CASE("attention_backward_into writes the gradients into column ranges of one buffer, as attention_backward "
          "returns them",
          "[ops][attention][sim]") {
  check_backward_into_ranges(Device::cpu(), ops::AttentionBackend::Fused);
  check_backward_into_ranges(Device::sim(), ops::AttentionBackend::Fused);
}

TEST_CASE("attention_backward_into writes column ranges on the GPU, with the kernels and with cuDNN",
          "[ops][attention][gpu]") {
  if (!testing::gpu_or_skip()) return;
  check_backward_into_ranges(Device::cuda(0), ops::AttentionBackend::Fused);
#ifdef HEED_WITH_CUDNN
  check_backward_into_ranges(Device::cuda(0), ops::AttentionBackend::Cudnn);
#endif
}
