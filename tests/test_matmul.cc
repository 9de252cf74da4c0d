#include <catch2/catch.hpp>

#include "gradcheck.h"
#include "heed/autograd/functions.h"
#include "heed/ops/elementwise.h"
#include "heed/ops/matmul.h"

using namespace heed;

namespace {

// Plain triple loop in double over explicit strides: the reference for every layout.
Tensor naive_matmul(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  Tensor ac = (ta ? a.transpose(-1, -2) : a).contiguous(), bc = (tb ? b.transpose(-1, -2) : b).contiguous();
  const int64_t m = ac.size(-2), k = ac.size(-1), n = bc.size(-1);
  const int64_t batches = ac.numel() / (m * k);
  Shape shape(ac.shape().begin(), ac.shape().end() - 2);
  shape.push_back(m);
  shape.push_back(n);
  Tensor out = Tensor::empty(shape);
  for (int64_t bi = 0; bi < batches; ++bi)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        const int64_t boff = bc.dim() == 2 ? 0 : bi * k * n;
        for (int64_t p = 0; p < k; ++p) s += double(ac.data<float>()[bi * m * k + i * k + p]) * bc.data<float>()[boff + p * n + j];
        out.data<float>()[bi * m * n + i * n + j] = static_cast<float>(s);
      }
  return out;
}

void require_close(const Tensor& got, const Tensor& want, double tol) {
  REQUIRE(got.shape() == want.shape());
  Tensor g = got.contiguous(), w = want.contiguous();
  for (int64_t i = 0; i < g.numel(); ++i) CHECK(std::abs(g.item(i) - w.item(i)) <= tol);
}

}  // namespace

TEST_CASE("matmul matches a naive product for every transpose and strided views", "[ops][matmul]") {
  // fp32 GEMM vs a double reference over K = 37 terms of size <= 1: error <= K * eps_fp32 ~ 5e-6.
  const double tol = 1e-5;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      Tensor a = testing::random_tensor(ta ? Shape{37, 5} : Shape{5, 37}, 1);
      Tensor b = testing::random_tensor(tb ? Shape{6, 37} : Shape{37, 6}, 2);
      require_close(ops::matmul(a, b, ta, tb), naive_matmul(a, b, ta, tb), tol);
    }
  // Batched, with operands given as transposed views of [B, L, H, D]-style storage.
  Tensor qs = testing::random_tensor({2, 7, 3, 8}, 3), ks = testing::random_tensor({2, 9, 3, 8}, 4);
  Tensor q = qs.transpose(1, 2), k = ks.transpose(1, 2);  // [2, 3, 7, 8] and [2, 3, 9, 8], not contiguous
  require_close(ops::matmul(q, k, false, true), naive_matmul(q, k, false, true), tol);
  // A 2-d right operand shared by all batches.
  Tensor w = testing::random_tensor({8, 4}, 5);
  require_close(ops::matmul(qs, w), naive_matmul(qs, w, false, false), tol);
}

TEST_CASE("matmul rejects mismatched shapes with the shapes in the message", "[ops][matmul]") {
  Tensor a = testing::random_tensor({3, 4}, 1), b = testing::random_tensor({5, 2}, 2);
  CHECK_THROWS_WITH(ops::matmul(a, b), Catch::Contains("inner dimensions differ") && Catch::Contains("[3, 4]"));
}

TEST_CASE("matmul_into accumulates with beta", "[ops][matmul]") {
  Tensor a = testing::random_tensor({4, 3}, 1), b = testing::random_tensor({3, 2}, 2);
  Tensor c = testing::random_tensor({4, 2}, 3);
  Tensor expect = ops::add(ops::matmul(a, b, false, false, 2.0f), c);
  ops::matmul_into(a, b, c, false, false, 2.0f, 1.0f);
  require_close(c, expect, 1e-6);
}

TEST_CASE("broadcasting add and mul, and their reductions", "[ops][elementwise]") {
  Tensor a = testing::random_tensor({2, 3, 4}, 1), b = testing::random_tensor({3, 1}, 2);
  Tensor s = ops::add(a, b), p = ops::mul(a, b);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) {
        const float av = a.data<float>()[(i * 3 + j) * 4 + k], bv = b.data<float>()[j];
        CHECK(s.data<float>()[(i * 3 + j) * 4 + k] == av + bv);
        CHECK(p.data<float>()[(i * 3 + j) * 4 + k] == av * bv);
      }
  Tensor g = ops::sum_to(a, {3, 1});
  for (int j = 0; j < 3; ++j) {
    double want = 0;
    for (int i = 0; i < 2; ++i)
      for (int k = 0; k < 4; ++k) want += a.data<float>()[(i * 3 + j) * 4 + k];
    CHECK(g.item(j) == Approx(want).epsilon(1e-6));
  }
  Tensor r = ops::sum_rows(a);
  CHECK(r.shape() == Shape{4});
  CHECK_THROWS_WITH(ops::add(a, testing::random_tensor({5}, 3)), Catch::Contains("do not broadcast"));
}

TEST_CASE("linear: finite-difference gradients of input, weight and bias", "[ops][matmul][gradcheck]") {
  using autograd::Variable;
  Tensor xt = testing::random_tensor({2, 3, 5}, 1), wt = testing::random_tensor({4, 5}, 2),
         bt = testing::random_tensor({4}, 3);
  const Variable probe(testing::random_tensor({2, 3, 4}, 4));
  Variable x(xt, true), w(wt, true), b(bt, true);
  auto loss = [&] { return autograd::sum(autograd::mul(autograd::linear(x, w, b), probe)); };
  autograd::backward(loss());
  auto f = [&] {
    autograd::NoGradGuard no_grad;
    return double(loss().value().item());
  };
  testing::check_gradient(f, xt, x.grad());
  testing::check_gradient(f, wt, w.grad());
  testing::check_gradient(f, bt, b.grad());
}
