// Times the two choices Heed's CPU matmul makes for a large product (src/ops/matmul_cpu.cc): how it is split
// between threads (by rows of the output or by its columns), and whether operands whose rows lie a multiple
// of 2 KiB apart are first copied into rows 16 floats longer.
//
//   bench_gemm_split [--threads T] [--tokens K]
//
// The shapes are the weight gradients dW = dy^T . x of a Linear layer (TN, k = the batch's tokens, 3072 by
// default, as data.max_tokens in configs/bible-en-es.yaml) in the small and base configs of
// bench_train_step. Each thread runs oneDNN's sgemm (cpu_sgemm) on its own block of 16-row or 16-column
// tiles, as Heed does, on the operands as stored and on padded copies (the copies' time included); the last
// column is Heed's own linear_backward_weight. Prints the median GFLOP/s of 15 calls after 500 ms of warm-up;
// each shape runs twice, so the machine's noise shows.
#include <fmt/format.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <random>
#include <vector>

#include "core/gemm.h"
#include "heed/core/tensor.h"
#include "heed/ops/matmul.h"
#include "ops/matmul_backends.h"

using namespace heed;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double median_gflops(const std::function<void()>& call, double flops) {
  for (auto start = Clock::now(); seconds_since(start) < 0.5;) call();
  std::vector<double> times;
  for (int i = 0; i < 15; ++i) {
    const auto start = Clock::now();
    call();
    times.push_back(seconds_since(start));
  }
  std::sort(times.begin(), times.end());
  return flops / times[times.size() / 2] / 1e9;
}

Tensor random_matrix(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 engine(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  Tensor t = Tensor::empty({rows, cols});
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = uniform(engine);
  return t;
}

// dw (m x n) = dy^T (m x k) . x (k x n), each thread taking an equal share of 16-row (or column) tiles.
// With `padded`, both operands are first copied as Heed copies them, with longer rows (ops::cpu::copy_padded).
void split_product(const Tensor& dy, const Tensor& x, Tensor& dw, bool by_rows, bool padded) {
  const int64_t m = dw.shape()[0], n = dw.shape()[1], k = x.shape()[0];
  const float *a = dy.data<float>(), *b = x.data<float>();
  int64_t lda = m, ldb = n;
  thread_local std::vector<float> padded_a, padded_b;
  if (padded) {
    lda = ops::cpu::copy_padded(a, k, m, m, padded_a), a = padded_a.data();
    ldb = ops::cpu::copy_padded(b, k, n, n, padded_b), b = padded_b.data();
  }
  float* c = dw.data<float>();
#pragma omp parallel
  {
    const int64_t extent = by_rows ? m : n, tiles = (extent + 15) / 16;
    const int64_t chunk = (tiles + omp_get_num_threads() - 1) / omp_get_num_threads() * 16;
    const int64_t begin = std::min(extent, omp_get_thread_num() * chunk), end = std::min(extent, begin + chunk);
    if (begin < end) {
      if (by_rows)
        cpu_sgemm(true, false, end - begin, n, k, 1.0f, a + begin, lda, b, ldb, 0.0f, c + begin * n, n);
      else
        cpu_sgemm(true, false, m, end - begin, k, 1.0f, a, lda, b + begin, ldb, 0.0f, c + begin, n);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  int64_t tokens = 3072;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) omp_set_num_threads(std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--tokens") && i + 1 < argc) tokens = std::atoll(argv[++i]);
  }
  struct Shape {
    const char* layer;
    int64_t out, in;
  };
  const Shape shapes[] = {
      {"small fc1", 1024, 256}, {"small fc2", 256, 1024}, {"base fc1", 2048, 512},
      {"base fc2", 512, 2048},  {"base q/k/v", 1536, 512}, {"base attn out", 512, 512},
  };
  fmt::print("weight gradients dy^T . x, TN, k {}, {} threads, GFLOP/s:\n", tokens, omp_get_max_threads());
  fmt::print("{:27} {:>13} {:>13} | {}\n", "", "as stored", "padded copies", "Heed's matmul");
  fmt::print("{:27} {:>6} {:>6} {:>6} {:>6} |\n", "layer  dW", "rows", "cols", "rows", "cols");
  for (int repeat = 0; repeat < 2; ++repeat) {
    for (const Shape& s : shapes) {
      const Tensor dy = random_matrix(tokens, s.out, 1), x = random_matrix(tokens, s.in, 2);
      Tensor dw = Tensor::empty({s.out, s.in});
      const double flops = 2.0 * s.out * s.in * tokens;
      fmt::print("{:14} {:5} x {:5}", s.layer, s.out, s.in);
      for (const bool padded : {false, true})
        for (const bool by_rows : {true, false})
          fmt::print(" {:6.0f}", median_gflops([&] { split_product(dy, x, dw, by_rows, padded); }, flops));
      fmt::print(" | {:6.0f}\n",
                 median_gflops([&] { ops::linear_backward_weight(dy, x, dw, 0.0f, nullptr); }, flops));
    }
  }
}
