#include <catch2/catch.hpp>

#include <omp.h>

#include <cmath>
#include <cstdlib>
#include <functional>
#include <tuple>

#include "gradcheck.h"
#include "heed/autograd/functions.h"
#include "heed/ops/activation.h"
#include "heed/ops/dropout.h"
#include "heed/ops/elementwise.h"
#include "heed/ops/matmul.h"
#include "kernels/common/backend.h"
#include "kernel_testing.h"
#include "skip.h"
#include "worst.h"
#include "core/gemm.h"

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

TEST_CASE("matmul split over two threads by rows and by columns matches a naive product", "[ops][matmul]") {
  // Each product is split along the longer side of its output where every thread gets a tile of it: 300 x 100
  // x 100 by rows, 100 x 300 x 100 by columns, and 5 x 3000 x 200 (a decoding step's few rows by a
  // vocabulary) by columns, as its rows are too few to split; all with every transpose and with operands that
  // are column ranges of wider matrices (leading dimensions above their widths). fp32 sums of K <= 200
  // products of size <= 1 against double: at most K * 2^-24 * K, 2.4e-3, while a block written to the wrong
  // place is off by O(1).
  const int threads = omp_get_max_threads();
  omp_set_num_threads(2);
  for (const auto& [m, n, k] : {std::tuple{300, 100, 100}, std::tuple{100, 300, 100}, std::tuple{5, 3000, 200}})
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        INFO(m << " x " << n << " x " << k << (ta ? " A^T" : "") << (tb ? " B^T" : ""));
        const Shape a_shape = ta ? Shape{k, m} : Shape{m, k}, b_shape = tb ? Shape{n, k} : Shape{k, n};
        const Tensor a = testing::random_tensor({a_shape[0], a_shape[1] + 3}, 1).narrow(1, 2, a_shape[1]);
        const Tensor b = testing::random_tensor({b_shape[0], b_shape[1] + 5}, 2).narrow(1, 1, b_shape[1]);
        require_close(ops::matmul(a, b, ta, tb), naive_matmul(a, b, ta, tb), k * std::ldexp(1.0, -24) * k);
      }
  omp_set_num_threads(threads);
}

TEST_CASE("matmul with A transposed copies operands whose rows are 2 KiB apart and matches a naive product",
          "[ops][matmul]") {
  // A weight gradient's operands with rows 512 or 1024 floats apart are copied with longer rows first (cache
  // sets; ops/matmul_cpu.cc), in products of at least 2^24 multiply-adds: dense ones, column ranges of wider
  // matrices, and batches with B shared or per batch entry (the copy of a shared B is made once). Error bound
  // as in the split test: K * 2^-24 * K for K = 512.
  struct Case {
    const char* what;
    Tensor a, b;
  };
  const Tensor wide_a = testing::random_tensor({512, 1024}, 3), wide_b = testing::random_tensor({512, 1024}, 4);
  const Case cases[] = {
      {"dense, both 512 apart", testing::random_tensor({512, 512}, 1), testing::random_tensor({512, 512}, 2)},
      {"column ranges of 1024-wide rows", wide_a.narrow(1, 8, 300), wide_b.narrow(1, 3, 200)},
      {"batched, B shared", testing::random_tensor({2, 512, 64}, 5), testing::random_tensor({512, 512}, 6)},
      {"batched, B per entry", testing::random_tensor({2, 512, 64}, 7), testing::random_tensor({2, 512, 512}, 8)},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    require_close(ops::matmul(c.a, c.b, true, false), naive_matmul(c.a, c.b, true, false),
                  512 * std::ldexp(1.0, -24) * 512);
  }
}

namespace {

// t rounded to bf16 (to nearest even) and widened back, as stored; with `absolute`, its magnitudes.
Tensor bf16_rounded(const Tensor& t, bool absolute) {
  Tensor r = t.contiguous().to(DType::BF16).to(DType::F32);
  if (absolute)
    for (int64_t i = 0; i < r.numel(); ++i) r.data<float>()[i] = std::abs(r.data<float>()[i]);
  return r;
}

// The worst |got - want| / bound of out = alpha op(a) op(b) + beta c over every element, where want is
// naive_matmul's product of a and b rounded to bf16. Products of two bf16 values are exact in fp32 (8 + 8
// significant bits), so what remains is the fp32 accumulation of at most k + 1 terms and want's own
// rounding to fp32: bound = (k + 2) 2^-24 (|alpha| sum |a b| + |beta c|). Inputs rounded any other way
// (truncated, say) miss by about 2^-9 of a term, hundreds of bounds.
double worst_bf16_product_error(const Tensor& got, const Tensor& a, const Tensor& b, bool ta, bool tb, float alpha,
                                float beta, const Tensor& c) {
  const int64_t k = ta ? a.size(-2) : a.size(-1);
  const Tensor product = naive_matmul(bf16_rounded(a, false), bf16_rounded(b, false), ta, tb);
  const Tensor magnitude = naive_matmul(bf16_rounded(a, true), bf16_rounded(b, true), ta, tb);
  const Tensor cc = c.contiguous(), gc = got.contiguous();
  double worst = 0.0;
  for (int64_t i = 0; i < gc.numel(); ++i) {
    const double want = alpha * double(product.data<float>()[i]) + beta * double(cc.data<float>()[i]);
    const double bound =
        (k + 2) * 0x1p-24 * (std::abs(alpha) * magnitude.data<float>()[i] + std::abs(beta * cc.data<float>()[i])) +
        1e-30;
    testing::raise_worst(worst, std::abs(gc.data<float>()[i] - want) / bound);
  }
  return worst;
}

}  // namespace

TEST_CASE("matmul in bf16 on the CPU: inputs rounded to nearest even, fp32 accumulation",
          "[ops][matmul][cpu-bf16]") {
  if (!ops::cpu_has_bf16_gemm())
    return testing::skip("this CPU has no AVX512_BF16, and training.precision bf16 is refused on it");
  const int threads = omp_get_max_threads();
  omp_set_num_threads(2);
  const ops::CpuBf16GemmScope bf16("the test");
  REQUIRE(ops::cpu_bf16_gemm_on());
  // Odd sizes, one of m, n, k equal to 1, a product split by rows (300 x 100 x 100) and two split by
  // columns (100 x 300 x 100, 5 x 3000 x 200); operands are column ranges of wider matrices (leading
  // dimension > width).
  for (const auto& [m, n, k] :
       {std::tuple{1, 1, 1}, std::tuple{3, 5, 7}, std::tuple{17, 33, 65}, std::tuple{129, 1, 257},
        std::tuple{300, 100, 100}, std::tuple{100, 300, 100}, std::tuple{5, 3000, 200}})
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (float beta : {0.0f, 0.5f}) {
          INFO(m << " x " << n << " x " << k << (ta ? " A^T" : "") << (tb ? " B^T" : "") << " beta " << beta);
          const Shape a_shape = ta ? Shape{k, m} : Shape{m, k}, b_shape = tb ? Shape{n, k} : Shape{k, n};
          const Tensor a = testing::random_tensor({a_shape[0], a_shape[1] + 3}, 1).narrow(1, 2, a_shape[1]);
          const Tensor b = testing::random_tensor({b_shape[0], b_shape[1] + 5}, 2).narrow(1, 1, b_shape[1]);
          const Tensor c = testing::random_tensor({m, n}, 3);
          Tensor out = c.clone();
          ops::matmul_into(a, b, out, ta, tb, 1.5f, beta);
          CHECK(worst_bf16_product_error(out, a, b, ta, tb, 1.5f, beta, c) <= 1.0);
        }
  // Batched over attention-style transposed views, and with a 2-d right operand shared by every batch.
  const Tensor qs = testing::random_tensor({2, 7, 3, 40}, 3), ks = testing::random_tensor({2, 9, 3, 40}, 4);
  const Tensor q = qs.transpose(1, 2), key = ks.transpose(1, 2);
  const Tensor zeros = Tensor::zeros({2, 3, 7, 9});
  CHECK(worst_bf16_product_error(ops::matmul(q, key, false, true), q, key, false, true, 1.0f, 0.0f, zeros) <= 1.0);
  const Tensor w = testing::random_tensor({40, 24}, 5);
  CHECK(worst_bf16_product_error(ops::matmul(qs, w), qs, w, false, false, 1.0f, 0.0f, Tensor::zeros({2, 7, 3, 24})) <=
        1.0);
  omp_set_num_threads(threads);
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

namespace {

// The GPU path's products (cuBLASLt, or sgemm on the simulated GPU) against the double-precision naive
// product of the same inputs, rounded to the operand type first: 16-bit products are exact in fp32, so
// only the fp32 summation differs, K * eps_fp32 for terms of size <= 1; a 16-bit output adds its own
// rounding, half an ulp (2^-8 relative for bf16, 2^-11 for fp16).
void check_gpu_matmul(kernels::Backend backend) {
  const Device dev = testing::backend_device(backend);
  for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
    for (DType out_dtype : {DType::F32, dtype}) {
      const double rel = out_dtype == DType::BF16 ? 1.0 / 256 : out_dtype == DType::F16 ? 1.0 / 2048 : 0.0;
      auto check = [&](const Tensor& a, const Tensor& b, bool ta, bool tb) {
        Tensor want = naive_matmul(a.to(dtype).to(DType::F32), b.to(dtype).to(DType::F32), ta, tb);
        Shape shape = want.shape();
        Tensor out = Tensor::empty(shape, out_dtype, dev);
        ops::matmul_into(a.to(dtype).contiguous().to(dev), b.to(dtype).contiguous().to(dev), out, ta, tb, 1.0f, 0.0f);
        Tensor got = testing::to_host_f32(out);
        for (int64_t i = 0; i < got.numel(); ++i)
          CHECK(std::abs(got.item(i) - want.item(i)) <= 1e-5 + rel * std::abs(want.item(i)));
      };
      for (bool ta : {false, true})
        for (bool tb : {false, true})
          check(testing::random_tensor(ta ? Shape{37, 5} : Shape{5, 37}, 1),
                testing::random_tensor(tb ? Shape{6, 37} : Shape{37, 6}, 2), ta, tb);
      check(testing::random_tensor({2, 3, 7, 8}, 3), testing::random_tensor({2, 3, 8, 9}, 4), false, false);  // batched
      check(testing::random_tensor({2, 7, 8}, 5), testing::random_tensor({8, 4}, 6), false, false);  // shared b
    }
  }
  // Transposed views of [B, L, H, D] storage: leading dimensions that do not collapse to one stride.
  Tensor qs = testing::random_tensor({2, 7, 3, 8}, 7), ks = testing::random_tensor({2, 9, 3, 8}, 8);
  Tensor out = Tensor::empty({2, 3, 7, 9}, DType::F32, dev);
  ops::matmul_into(qs.to(dev).transpose(1, 2), ks.to(dev).transpose(1, 2), out, false, true, 1.0f, 0.0f);
  Tensor want = naive_matmul(qs.transpose(1, 2), ks.transpose(1, 2), false, true);
  Tensor got = testing::to_host_f32(out);
  for (int64_t i = 0; i < got.numel(); ++i) CHECK(std::abs(got.item(i) - want.item(i)) <= 1e-5);
}

// The bias and bias + ReLU epilogues, with alpha and beta: applied in fp32 before the one rounding.
void check_gemm_epilogues(kernels::Backend backend) {
  const Device dev = testing::backend_device(backend);
  Tensor a = testing::random_tensor({5, 16}, 1), b = testing::random_tensor({16, 6}, 2);
  Tensor bias = testing::random_tensor({6}, 3), c0 = testing::random_tensor({5, 6}, 4);
  for (bool relu : {false, true}) {
    Tensor ad = a.to(dev), bd = b.to(dev), biasd = bias.to(dev), out = c0.to(dev).clone();
    GemmDesc d;
    d.m = 5, d.n = 6, d.k = 16;
    d.a = {ad.raw_data(), DType::F32, false, 16, 0};
    d.b = {bd.raw_data(), DType::F32, false, 6, 0};
    d.out = out.raw_data(), d.ldo = 6, d.alpha = 0.5f, d.beta = 2.0f, d.bias = biasd.raw_data(), d.relu = relu;
    gemm(dev, d);
    Tensor ab = naive_matmul(a, b, false, false), got = testing::to_host_f32(out);
    for (int64_t i = 0; i < 5; ++i)
      for (int64_t j = 0; j < 6; ++j) {
        float want = 0.5f * ab.item(i * 6 + j) + 2.0f * c0.item(i * 6 + j) + bias.item(j);
        if (relu) want = std::max(want, 0.0f);
        CHECK(std::abs(got.item(i * 6 + j) - want) <= 1e-5);
      }
  }
}

// A Linear layer's forward (the bias and ReLU+bias epilogues on the GPU path) against the CPU op on the
// same rounded inputs: one rounding of the fp32 result to the output type apart.
void check_linear_forward(kernels::Backend backend) {
  const Device dev = testing::backend_device(backend);
  const Tensor x = testing::random_tensor({7, 16}, 1), w = testing::random_tensor({5, 16}, 2),
               bias = testing::random_tensor({5}, 3);
  for (DType dtype : {DType::F32, DType::BF16, DType::F16})
    for (bool relu : {false, true}) {
    INFO(testing::dtype_label(dtype) << (relu ? " relu" : ""));
    const double rel = dtype == DType::BF16 ? 1.0 / 256 : dtype == DType::F16 ? 1.0 / 2048 : 0.0;
    auto rounded = [&](const Tensor& t) { return t.to(dtype).to(DType::F32); };
    const Tensor want = ops::linear_forward(rounded(x), rounded(w), rounded(bias), relu);
    const Tensor out =
        ops::linear_forward(x.to(dtype).to(dev), w.to(dtype).to(dev), bias.to(dtype).to(dev), relu);
    REQUIRE(out.dtype() == dtype);
    const Tensor got = testing::to_host_f32(out);
    for (int64_t i = 0; i < got.numel(); ++i)
      CHECK(std::abs(got.item(i) - want.item(i)) <= 1e-5 + rel * std::abs(want.item(i)));
  }
}

// The worst error of the column sums of a dense rows x columns matrix against double sums, in units of
// bound(sum|x|, sum) of each column.
double column_sum_error(const std::vector<float>& values, const std::vector<float>& sums, int64_t rows,
                        const std::function<double(double magnitude, double want)>& bound) {
  const int64_t columns = static_cast<int64_t>(sums.size());
  double worst = 0.0;
  for (int64_t c = 0; c < columns; ++c) {
    double want = 0.0, magnitude = 0.0;
    for (int64_t r = 0; r < rows; ++r) {
      want += values[r * columns + c];
      magnitude += std::abs(values[r * columns + c]);
    }
    testing::raise_worst(worst, std::abs(sums[c] - want) / bound(magnitude, want));
  }
  return worst;
}

// A bias gradient summed in fp32: n terms err by at most (n - 1) u sum|x|, u = 2^-24.
double bias_gradient_error(const std::vector<float>& g, const std::vector<float>& db, int64_t rows) {
  return column_sum_error(g, db, rows, [rows](double magnitude, double) {
    return (rows - 1) * 0x1p-24 * magnitude + 1e-30;
  });
}

// A Linear layer's weight and bias gradients in one GEMM (the bias-gradient epilogue on the GPU path)
// against double-precision sums of the same rounded inputs. Both are fp32 sums of exact products: n terms
// summed in fp32 err by at most (n - 1) u sum|term|, u = 2^-24 (cuBLASLt's order is not sequential, but
// no order does worse). 300 rows: more than one 128- or 256-deep slice of K, so a split K sums partials.
void check_linear_backward_weight(kernels::Backend backend) {
  const Device dev = testing::backend_device(backend);
  const int64_t rows = 300, out_features = 5, in = 16;
  const Tensor dy = testing::random_tensor({rows, out_features}, 1), x = testing::random_tensor({rows, in}, 2);
  const Tensor dw0 = testing::random_tensor({out_features, in}, 3);
  for (DType dtype : {DType::F32, DType::BF16, DType::F16})
    for (float beta : {0.0f, 1.0f}) {
      INFO(testing::dtype_label(dtype) << " beta " << beta);
      const std::vector<float> g = dy.to(dtype).to(DType::F32).to_vector<float>();
      const std::vector<float> xs = x.to(dtype).to(DType::F32).to_vector<float>();
      Tensor dw = dw0.to(dev).clone(), db = Tensor::full({out_features}, 7.0f, dev);
      ops::linear_backward_weight(dy.to(dtype).to(dev), x.to(dtype).to(dev), dw, beta, &db);
      const std::vector<float> got_dw = testing::to_host_f32(dw).to_vector<float>();
      const std::vector<float> got_db = testing::to_host_f32(db).to_vector<float>();
      double worst = bias_gradient_error(g, got_db, rows);
      for (int64_t o = 0; o < out_features; ++o)
        for (int64_t i = 0; i < in; ++i) {
          double want = beta * dw0.item(o * in + i), magnitude = std::abs(want);
          for (int64_t r = 0; r < rows; ++r) {
            const double term = double(g[r * out_features + o]) * xs[r * in + i];
            want += term;
            magnitude += std::abs(term);
          }
          testing::raise_worst(worst, std::abs(got_dw[o * in + i] - want) / (rows * 0x1p-24 * magnitude + 1e-30));
        }
      CHECK(worst <= 1.0);
    }
  // Without db, only the weight gradient.
  Tensor dw = Tensor::empty({out_features, in}, DType::F32, dev);
  ops::linear_backward_weight(dy.to(dev), x.to(dev), dw, 0.0f, nullptr);
  require_close(testing::to_host_f32(dw), naive_matmul(dy, x, true, false), 1e-5);
}

// A Linear layer's input gradient added to a gradient so far by the GEMM (beta 1, C apart from D, or in
// place), against double sums of the same rounded values. The result is rounded once to dx's type:
// K = 24 fp32 additions of exact products, (K + 1) u sum|term| (u = 2^-24), then half an ulp of the type.
void check_linear_backward_input(kernels::Backend backend) {
  const Device dev = testing::backend_device(backend);
  const int64_t rows = 37, out_features = 24, in = 40;
  const Tensor dy = testing::random_tensor({rows, out_features}, 1), w = testing::random_tensor({out_features, in}, 2);
  const Tensor prior = testing::random_tensor({rows, in}, 3);
  for (DType dtype : {DType::F32, DType::BF16, DType::F16})
    for (const char* mode : {"none", "apart", "in place"}) {
      INFO(testing::dtype_label(dtype) << " prior " << mode);
      const double rel = dtype == DType::BF16 ? 1.0 / 256 : dtype == DType::F16 ? 1.0 / 2048 : 0.0;
      const std::vector<float> g = dy.to(dtype).to(DType::F32).to_vector<float>();
      const std::vector<float> ws = w.to(dtype).to(DType::F32).to_vector<float>();
      const std::vector<float> ps = prior.to(dtype).to(DType::F32).to_vector<float>();
      const std::string m = mode;
      Tensor p = m == "none" ? Tensor() : prior.to(dtype).to(dev);
      Tensor dx = m == "in place" ? p : Tensor::full({rows, in}, 5.0f, dev).to(dtype);
      ops::linear_backward_input(dy.to(dtype).to(dev), w.to(dtype).to(dev), dx, p);
      if (m == "apart") CHECK(testing::to_host_f32(p).to_vector<float>() == ps);  // C is only read
      const std::vector<float> got = testing::to_host_f32(dx).to_vector<float>();
      double worst = 0.0;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = 0; i < in; ++i) {
          double want = m == "none" ? 0.0 : ps[r * in + i], magnitude = std::abs(want);
          for (int64_t o = 0; o < out_features; ++o) {
            const double term = double(g[r * out_features + o]) * ws[o * in + i];
            want += term;
            magnitude += std::abs(term);
          }
          const double bound = (out_features + 1) * 0x1p-24 * magnitude + rel * std::abs(want) + 1e-30;
          testing::raise_worst(worst, std::abs(got[r * in + i] - want) / bound);
        }
      CHECK(worst <= 1.0);
    }
}

}  // namespace

TEST_CASE("matmul on the simulated GPU matches the naive product in fp32, bf16 and fp16", "[ops][matmul][sim]") {
  check_gpu_matmul(kernels::Backend::Sim);
  check_gemm_epilogues(kernels::Backend::Sim);
  check_linear_forward(kernels::Backend::Sim);
  check_linear_backward_weight(kernels::Backend::Sim);
  check_linear_backward_input(kernels::Backend::Sim);
}

TEST_CASE("matmul on the GPU (cuBLASLt) matches the naive product in fp32, bf16 and fp16", "[ops][matmul][gpu]") {
  if (!testing::gpu_or_skip()) return;
  check_gpu_matmul(kernels::Backend::Cuda);
  check_gemm_epilogues(kernels::Backend::Cuda);
  check_linear_forward(kernels::Backend::Cuda);
  check_linear_backward_weight(kernels::Backend::Cuda);
  check_linear_backward_input(kernels::Backend::Cuda);
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

namespace {

// Finite differences of sum(layer(x, w, b) * probe) against backward(), for every input of the layer.
void check_linear_gradients(Tensor xt, Tensor wt, Tensor bt,
                            const std::function<autograd::Variable(const autograd::Variable&, const autograd::Variable&,
                                                                   const autograd::Variable&)>& layer) {
  using autograd::Variable;
  const Variable probe(testing::random_tensor({xt.size(0), xt.size(1), wt.size(0)}, 4));
  Variable x(xt, true), w(wt, true), b(bt, true);
  auto loss = [&] { return autograd::sum(autograd::mul(layer(x, w, b), probe)); };
  autograd::backward(loss());
  auto f = [&] {
    autograd::NoGradGuard no_grad;
    return double(loss().value().item());
  };
  testing::check_gradient(f, xt, x.grad());
  testing::check_gradient(f, wt, w.grad());
  testing::check_gradient(f, bt, b.grad());
}

}  // namespace

TEST_CASE("linear: finite-difference gradients of input, weight and bias", "[ops][matmul][gradcheck]") {
  check_linear_gradients(testing::random_tensor({2, 3, 5}, 1), testing::random_tensor({4, 5}, 2),
                         testing::random_tensor({4}, 3), autograd::linear);
}

TEST_CASE("linear_relu: the fused ReLU equals relu(linear), and its gradients pass finite differences",
          "[ops][matmul][gradcheck]") {
  using autograd::Variable;
  // Half the pre-activations negative, none within the difference step of 0 (where ReLU has no derivative).
  const Tensor xt = testing::random_tensor({2, 3, 5}, 25), wt = testing::random_tensor({4, 5}, 26),
               bt = testing::random_tensor({4}, 7);
  {
    autograd::NoGradGuard no_grad;
    const Variable x(xt), w(wt), b(bt);
    const Tensor fused = autograd::linear_relu(x, w, b).value();
    const Tensor plain = autograd::activation(autograd::linear(x, w, b), ops::Activation::ReLU).value();
    CHECK(fused.to_vector<float>() == plain.to_vector<float>());
    int negative = 0;
    for (float v : autograd::linear(x, w, b).value().to_vector<float>()) {
      negative += v < 0;
      REQUIRE(std::abs(v) > 0.02f);
    }
    CHECK(negative >= 6);
  }
  check_linear_gradients(xt.clone(), wt.clone(), bt.clone(), autograd::linear_relu);
}

TEST_CASE("linear_relu_dropout: the dropped ReLU's backward is one pass and matches the two ops composed",
          "[ops][matmul][gradcheck][sim]") {
  // The backward reads the dropped output d in place of the ReLU's: d > 0 exactly where the mask keeps an
  // element and the pre-activation is positive. Forward and gradients equal dropout(linear_relu) composed
  // bit for bit on the CPU (the same products in the same order: dy times the mask's scale, then the 0 or 1
  // slope); on the simulated GPU within the bf16 rounding of one result per element. The mask is a fixed
  // function of the key, so finite differences see the same one.
  using autograd::Variable;
  const Tensor xt = testing::random_tensor({2, 3, 5}, 25), wt = testing::random_tensor({4, 5}, 26),
               bt = testing::random_tensor({4}, 7), probe = testing::random_tensor({2, 3, 4}, 8);
  const RandomKey key{11, 2, 3};
  const float p = 0.4f;
  auto fused = [&](const Variable& x, const Variable& w, const Variable& b) {
    return autograd::linear_relu_dropout(x, w, b, p, key);
  };
  auto composed = [&](const Variable& x, const Variable& w, const Variable& b) {
    return autograd::dropout(autograd::linear_relu(x, w, b), p, key);
  };
  check_linear_gradients(xt.clone(), wt.clone(), bt.clone(), fused);
  std::vector<float> want[4], got[4];
  for (int run = 0; run < 2; ++run) {
    Variable x(xt, true), w(wt, true), b(bt, true);
    Variable y = run == 0 ? composed(x, w, b) : fused(x, w, b);
    autograd::backward(autograd::sum(autograd::mul(y, Variable(probe))));
    std::vector<float>* out = run == 0 ? want : got;
    out[0] = y.value().to_vector<float>();
    out[1] = x.grad().to_vector<float>();
    out[2] = w.grad().to_vector<float>();
    out[3] = b.grad().to_vector<float>();
  }
  for (int i = 0; i < 4; ++i) CHECK(got[i] == want[i]);
  // On the simulated GPU in bf16, the one kernel against the CPU's composition of the same bf16 values.
  const Device sim = Device::sim();
  const Tensor dy = testing::random_tensor({6, 4}, 9).to(DType::BF16).to(DType::F32);
  const Tensor d = ops::dropout_forward(testing::random_tensor({6, 4}, 10), p, key).to(DType::BF16).to(DType::F32);
  const std::vector<float> cpu = ops::activation_backward(dy, d, ops::Activation::ReLU, p, key).to_vector<float>();
  const std::vector<float> gpu = ops::activation_backward(dy.to(DType::BF16).to(sim), d.to(DType::BF16).to(sim),
                                                          ops::Activation::ReLU, p, key)
                                     .to(Device::cpu())
                                     .to(DType::F32)
                                     .to_vector<float>();
  double worst = 0.0;
  for (size_t i = 0; i < cpu.size(); ++i)
    testing::raise_worst(worst, std::abs(gpu[i] - cpu[i]) / (std::abs(cpu[i]) / 256 + 1e-30));  // bf16: 2^-8
  CHECK(worst <= 1.0);
}

namespace {

// The fused feed-forward block against its two layers composed, forward and backward, on `dev` in fp32
// (37 ffn features: a mask row of 128 bits, partly used; 9 x 3 tokens). Its backward takes the ReLU's
// derivative from the mask in fc2's input-gradient GEMM; composed, it is a pass of its own over that GEMM's
// output. On the CPU and the simulated GPU every GEMM has the same operands and the same order of sums:
// equal bits (`tolerance` 0). cuBLASLt may pick another kernel for another epilogue, whose sums of at most
// 37 terms of size <= 1 differ by 2 * 37 u * 37 (u = 2^-24, 1.6e-4) a layer, two layers deep: 4e-4.
void check_feed_forward_relu(Device dev, double tolerance) {
  using autograd::Variable;
  INFO(dev.str());
  const Tensor xt = testing::random_tensor({9, 3, 16}, 31), w1t = testing::random_tensor({37, 16}, 32),
               b1t = testing::random_tensor({37}, 33), w2t = testing::random_tensor({16, 37}, 34),
               b2t = testing::random_tensor({16}, 35), probe = testing::random_tensor({9, 3, 16}, 36);
  std::vector<float> results[2][6];
  for (int fused = 0; fused < 2; ++fused) {
    auto on = [&](const Tensor& t) { return Variable(t.to(dev), true); };
    Variable x = on(xt), w1 = on(w1t), b1 = on(b1t), w2 = on(w2t), b2 = on(b2t);
    Variable y = fused ? autograd::feed_forward_relu(x, w1, b1, w2, b2)
                       : autograd::linear(autograd::linear_relu(x, w1, b1), w2, b2);
    autograd::backward(autograd::sum(autograd::mul(y, Variable(probe.to(dev)))));
    int i = 0;
    for (const Tensor& t : {y.value(), x.grad(), w1.grad(), b1.grad(), w2.grad(), b2.grad()})
      results[fused][i++] = testing::to_host_f32(t).to_vector<float>();
  }
  for (int i = 0; i < 6; ++i) {
    REQUIRE(results[1][i].size() == results[0][i].size());
    double worst = 0.0;
    for (size_t e = 0; e < results[0][i].size(); ++e)
      testing::raise_worst(worst, std::abs(results[1][i][e] - results[0][i][e]));
    CHECK(worst <= tolerance);
  }
}

}  // namespace

TEST_CASE("feed_forward_relu equals its two layers composed, forward and backward, on the CPU and the simulated GPU",
          "[ops][matmul][sim]") {
  check_feed_forward_relu(Device::cpu(), 0.0);
  check_feed_forward_relu(Device::sim(), 0.0);
  const Tensor xt = testing::random_tensor({9, 3, 16}, 31), w1t = testing::random_tensor({37, 16}, 32),
               b1t = testing::random_tensor({37}, 33), w2t = testing::random_tensor({16, 37}, 34);
  // In bf16 on the simulated GPU: the input gradient through the mask is the GEMM's rounded result where
  // the bit is set and 0 where not, as the ReLU's backward pass would make it.
  {
    const Device sim = Device::sim();
    const Tensor x2 = xt.reshape({27, 16}).to(DType::BF16).to(sim);
    Tensor mask;
    const Tensor h = ops::linear_relu_forward(x2, w1t.to(DType::BF16).to(sim), b1t.to(DType::BF16).to(sim), &mask);
    const Tensor dy = testing::random_tensor({27, 16}, 37).to(DType::BF16).to(sim);
    Tensor dz = Tensor::empty({27, 37}, DType::BF16, sim);
    ops::linear_backward_input_relu(dy, w2t.to(DType::BF16).to(sim), dz, mask);
    const Tensor want = ops::activation_backward(ops::matmul(dy, w2t.to(DType::BF16).to(sim)), h, ops::Activation::ReLU);
    CHECK(testing::to_host_f32(dz).to_vector<float>() == testing::to_host_f32(want).to_vector<float>());
  }
  // The mask: a bit an element, 1 where the output is positive, rows of 128 bits.
  Tensor mask;
  const Tensor h = ops::linear_relu_forward(xt.reshape({27, 16}), w1t, b1t, &mask);
  REQUIRE(mask.shape() == Shape({27, 16}));
  for (int64_t r = 0; r < 27; ++r)
    for (int64_t c = 0; c < 37; ++c)
      CHECK(((mask.data<uint8_t>()[r * 16 + c / 8] >> (c % 8)) & 1) == (h.item(r * 37 + c) > 0.0f));
}

TEST_CASE("feed_forward_relu equals its two layers composed on the GPU (cuBLASLt's ReLU-mask epilogues)",
          "[ops][matmul][gpu]") {
  if (!testing::gpu_or_skip()) return;
  check_feed_forward_relu(Device::cuda(0), 4e-4);
}

TEST_CASE("pointwise ops and sums on the simulated GPU match the CPU", "[ops][elementwise][sim]") {
  // The GPU path runs the same fp32 arithmetic per element, so results are equal up to the order of the
  // sums: exact for add, mul, scale and axpy; sums of 7..40 terms of size <= 1 agree to 1e-5.
  const Device sim = Device::sim();
  Tensor a = testing::random_tensor({2, 3, 4}, 1), b = testing::random_tensor({3, 1}, 2);
  auto on_host = [](const Tensor& t) { return t.to(Device::cpu()).to_vector<float>(); };
  CHECK(on_host(ops::add(a.to(sim), b.to(sim))) == ops::add(a, b).to_vector<float>());
  CHECK(on_host(ops::mul(a.to(sim), b.to(sim))) == ops::mul(a, b).to_vector<float>());
  CHECK(on_host(ops::scale(a.to(sim).transpose(0, 2), 0.5f)) == ops::scale(a.transpose(0, 2), 0.5f).to_vector<float>());
  Tensor d = a.to(sim).clone(), dc = a.clone();
  ops::axpy_(d, b.expand({2, 3, 4}).contiguous().to(sim), -2.0f);
  ops::axpy_(dc, b.expand({2, 3, 4}).contiguous(), -2.0f);
  CHECK(on_host(d) == dc.to_vector<float>());
  auto close = [](const std::vector<float>& got, const std::vector<float>& want) {
    REQUIRE(got.size() == want.size());
    for (size_t i = 0; i < got.size(); ++i) CHECK(std::abs(got[i] - want[i]) <= 1e-5);
  };
  for (const Shape& shape : {Shape{3, 1}, Shape{1, 3, 4}, Shape{4}, Shape{2, 1, 4}, Shape{}})
    close(on_host(ops::sum_to(a.to(sim), shape)), ops::sum_to(a, shape).to_vector<float>());
  close(on_host(ops::sum_rows(a.to(sim))), ops::sum_rows(a).to_vector<float>());
  close(on_host(ops::sum(a.to(sim).transpose(1, 2))), ops::sum(a).to_vector<float>());
  // Enough elements that every thread of each of sum_all's 256 blocks holds a value, so the tree over
  // shared memory adds real partials at every level. Both sums run in double: they differ by the last
  // rounding to fp32, far below 1e-6 of the sum of magnitudes.
  const Tensor big = testing::random_tensor({301, 257}, 3);
  double magnitude = 0.0;
  for (float x : big.to_vector<float>()) magnitude += std::abs(x);
  const float got = on_host(ops::sum(big.to(sim)))[0], want = ops::sum(big).to_vector<float>()[0];
  CHECK(std::abs(double(got) - want) <= 1e-6 * magnitude);
}

TEST_CASE("pointwise ops on the simulated GPU match the CPU on dense tensors and on views", "[ops][elementwise][sim]") {
  // Dense, aligned tensors take the kernel that moves 8 elements a thread in 16-byte accesses; 6149
  // elements are 3 blocks of 2048 and a last group of 5. A narrow at offset 1 (not 16-byte aligned) and a
  // transpose take the strided kernel. Each element is the CPU op's fp32 arithmetic on the inputs (the
  // CPU ops take fp32, so 16-bit inputs go in widened, exactly) rounded once to the output's type, so the
  // results are equal.
  const Device sim = Device::sim();
  auto on_host = [](const Tensor& t) { return t.to(Device::cpu()).to(DType::F32).to_vector<float>(); };
  for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
    INFO(dtype_name(dtype));
    const Tensor a = testing::random_tensor({6149}, 11).to(dtype), b = testing::random_tensor({6149}, 12).to(dtype);
    const Tensor a32 = a.to(DType::F32), b32 = b.to(DType::F32), a_sim = a.to(sim), b_sim = b.to(sim);
    auto want = [&](const Tensor& fp32_result) { return on_host(fp32_result.to(dtype)); };
    CHECK(on_host(ops::add(a_sim, b_sim)) == want(ops::add(a32, b32)));
    CHECK(on_host(ops::mul(a_sim, b_sim)) == want(ops::mul(a32, b32)));
    CHECK(on_host(ops::scale(a_sim, -0.75f)) == want(ops::scale(a32, -0.75f)));
    Tensor d = a_sim.clone(), dc = a32.clone();
    ops::axpy_(d, b_sim, -2.0f);
    ops::axpy_(dc, b32, -2.0f);
    CHECK(on_host(d) == want(dc));
    CHECK(on_host(a_sim.clone()) == on_host(a));
    for (DType to : {DType::F32, DType::BF16, DType::F16}) CHECK(on_host(a_sim.to(to)) == on_host(a.to(to)));
    d.fill_(0.5f);
    CHECK(on_host(d) == std::vector<float>(6149, 0.5f));
    const Tensor odd = a32.narrow(0, 1, 6000), b_head = b32.narrow(0, 0, 6000);
    CHECK(on_host(ops::add(a_sim.narrow(0, 1, 6000), b_sim.narrow(0, 0, 6000))) == want(ops::add(odd, b_head)));
    const Tensor m = a32.narrow(0, 0, 6144).view({96, 64});
    CHECK(on_host(ops::scale(m.to(dtype).to(sim).transpose(0, 1), 2.0f)) == want(ops::scale(m.transpose(0, 1), 2.0f)));
  }
}

TEST_CASE("cpu gemm: oneDNN's instruction sets map to their vector level, and one below the CPU's is flagged",
          "[ops][matmul]") {
  using ops::VectorLevel;
  CHECK(ops::onednn_isa(0x1).level == VectorLevel::BeforeAvx2);  // sse41
  CHECK(ops::onednn_isa(0x7).level == VectorLevel::Avx2);
  CHECK(ops::onednn_isa(0x407).level == VectorLevel::Avx2);  // avx2_vnni
  CHECK(ops::onednn_isa(0x27).level == VectorLevel::Avx512);
  CHECK(std::string(ops::onednn_isa(0xe7).name) == "avx512_core_bf16");
  CHECK(ops::onednn_isa(0x3e7).level == VectorLevel::Avx512);  // avx512_core_amx
  CHECK(ops::onednn_isa(0xf).level == VectorLevel::Unknown);   // Xeon Phi
  // bf16 products from avx512_core_bf16 up; avx2_vnni's value is larger but it has no AVX-512.
  CHECK(ops::onednn_isa(0xe7).bf16);
  CHECK(ops::onednn_isa(0x3e7).bf16);
  CHECK_FALSE(ops::onednn_isa(0x67).bf16);
  CHECK_FALSE(ops::onednn_isa(0x407).bf16);

  ops::CpuGemmLibrary gemm;
  gemm.kernels = VectorLevel::BeforeAvx2, gemm.cpu = VectorLevel::Avx512;
  CHECK(gemm.falls_back());
  gemm.kernels = VectorLevel::Avx512;
  CHECK_FALSE(gemm.falls_back());
  gemm.kernels = VectorLevel::Unknown;  // a set we do not know is not called a fallback
  CHECK_FALSE(gemm.falls_back());

  // The library linked here knows this CPU: its kernels use the newest extensions the CPU has, on either
  // of the CPU families Heed is tested on (and every x86-64 CPU with AVX2 or AVX-512).
  const ops::CpuGemmLibrary linked = ops::cpu_gemm_library();
  CHECK_THAT(linked.description, Catch::Matchers::StartsWith("oneDNN "));
  CHECK(linked.cpu != VectorLevel::Unknown);
  CHECK(linked.kernels == linked.cpu);
}

TEST_CASE("linear backward: a bias used twice gets both contributions on the simulated GPU as on the CPU",
          "[ops][matmul][sim]") {
  // The second use's bias gradient cannot be written over the first's: it goes to a fresh buffer and is
  // added. The loss is a plain sum, so each use contributes exactly 40 (its rows) to every bias element.
  const Tensor x1 = testing::random_tensor({40, 8}, 1), x2 = testing::random_tensor({40, 8}, 2);
  const Tensor w = testing::random_tensor({6, 8}, 3), b = testing::random_tensor({6}, 4);
  for (const Device dev : {Device::cpu(), Device::sim()}) {
    INFO(dev.str());
    autograd::Variable wv(w.to(dev), true), bv(b.to(dev), true);
    autograd::Variable y = autograd::add(autograd::linear(autograd::Variable(x1.to(dev)), wv, bv),
                                         autograd::linear(autograd::Variable(x2.to(dev)), wv, bv));
    autograd::backward(autograd::sum(y));
    for (float g : bv.grad().to(Device::cpu()).to_vector<float>()) CHECK(g == 80.0f);
  }
}

TEST_CASE("linear backward: an input used by three layers gets all three gradients, summed by the GEMMs",
          "[ops][matmul][sim]") {
  // As Q, K and V read one LayerNorm output: the first GEMM sums into a new buffer the gradient that the
  // residual path left (an alias of another tensor, which must not change), the next two in place. The
  // weights are small integers and the loss a plain sum, so every product and sum is exact in fp32.
  const Tensor x = Tensor::full({6, 8}, 1.0f, Device::cpu());
  for (const Device dev : {Device::cpu(), Device::sim()}) {
    INFO(dev.str());
    autograd::Variable xv(x.to(dev), true);
    autograd::Variable y = autograd::mul(xv, autograd::Variable(Tensor::full({6, 8}, 1.0f, dev)));
    autograd::Variable total;
    for (int layer = 0; layer < 3; ++layer) {
      autograd::Variable w(Tensor::full({5, 8}, float(layer + 1), dev), false);
      autograd::Variable out = autograd::linear(y, w, autograd::Variable());
      total = total.defined() ? autograd::add(total, out) : out;
    }
    autograd::Variable loss = autograd::sum(autograd::add(total, autograd::linear(y, autograd::Variable(
                                                              Tensor::full({5, 8}, 0.0f, dev)), autograd::Variable())));
    autograd::backward(autograd::add(loss, autograd::sum(y)));
    // d/dy: 1 from sum(y), and 5 * (1 + 2 + 3 + 0) from the four layers.
    for (float g : xv.grad().to(Device::cpu()).to_vector<float>()) CHECK(g == 31.0f);
  }
}

TEST_CASE("sum_rows of 16-bit rows returns fp32, so a loss-scaled bias gradient does not overflow",
          "[ops][elementwise][sim]") {
  // 20000 rows of 4 sum to 80000 (exact in fp32: every partial sum is an integer below 2^24), past fp16's
  // largest value 65504: stored in the input's fp16, the bias gradient would be inf and fp16 training
  // would skip the update and halve its loss scale.
  const int64_t rows = 20000, cols = 3;
  for (DType dtype : {DType::F16, DType::BF16}) {
    const Tensor x = Tensor::full({rows, cols}, 4.0f, Device::cpu()).to(dtype).to(Device::sim());
    const Tensor sum = ops::sum_rows(x);
    CHECK(sum.dtype() == DType::F32);
    const std::vector<float> got = sum.to(Device::cpu()).to_vector<float>();
    for (float v : got) CHECK(v == 80000.0f);
  }
}

TEST_CASE("sum_rows on the simulated GPU adds many row chunks and column tiles as the CPU does",
          "[ops][elementwise][sim]") {
  // The kernel adds each column's rows in fp32 within a 128-row chunk (16 rows a thread, then the 8
  // warps' sums: 24 additions) and the chunks in double (3000 rows: 24 chunks, 3 a warp); recursive summation of n terms errs by at most
  // (n - 1) u sum|x|, u = 2^-24, so 24 additions stay within 1.5e-6 sum|x|, and the last rounding to fp32
  // adds u |sum|. The CPU sums the same 16-bit-rounded values in double here.
  const Device sim = Device::sim();
  for (const Shape& shape : {Shape{1000, 300}, Shape{3000, 40}, Shape{129, 33}, Shape{5, 1}, Shape{7, 50, 40}})
    for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
      INFO(shape_str(shape) << " " << dtype_name(dtype));
      const Tensor x = testing::random_tensor(shape, 5).to(dtype);
      const int64_t cols = shape.back(), rows = x.numel() / cols;
      const std::vector<float> values = x.to(DType::F32).to_vector<float>();
      const Tensor sum = ops::sum_rows(x.to(sim));
      CHECK(sum.dtype() == DType::F32);
      const std::vector<float> got = sum.to(Device::cpu()).to_vector<float>();
      REQUIRE(got.size() == static_cast<size_t>(cols));
      CHECK(column_sum_error(values, got, rows, [](double magnitude, double want) {
              return 1.5e-6 * magnitude + 6e-8 * std::abs(want);
            }) <= 1.0);
    }
}

TEST_CASE("linear backward on the CPU sums the bias gradient of a column range and of a transposed view",
          "[ops][matmul]") {
  // linear_stacked's q, k and v gradients are column ranges of one wider gradient: their rows, a stride
  // apart, are summed in place. A transposed view is copied first.
  const int64_t rows = 300, out_features = 5, in = 16;
  const Tensor x = testing::random_tensor({rows, in}, 1);
  const Tensor column_range = testing::random_tensor({rows, 3 * out_features}, 2).narrow(1, out_features, out_features);
  const Tensor transposed = testing::random_tensor({out_features, rows}, 3).transpose(0, 1);
  for (const Tensor& dy : {column_range, transposed}) {
    INFO("dy strides " << shape_str(dy.strides()));
    Tensor dw = Tensor::empty({out_features, in}), db = Tensor::empty({out_features});
    ops::linear_backward_weight(dy, x, dw, 0.0f, &db);
    CHECK(bias_gradient_error(dy.contiguous().to_vector<float>(), db.to_vector<float>(), rows) <= 1.0);
  }
}
