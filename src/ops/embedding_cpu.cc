// Embedding lookup and scatter-add on the CPU.
//
// Forward: positions are independent, so they are split over threads; each copies (and scales) one
// contiguous row of D floats.
// Backward: several positions can share an id, so a naive parallel scatter would race. Instead the
// positions are bucketed by id with a stable counting sort (O(N + V), sequential and cheap next to the
// N * D adds), and threads own whole rows of the gradient: each row is written by one thread, which adds
// its positions in increasing order. No atomics, and the sums are identical for any thread count.
#include <cstring>
#include <vector>

#include "ops/embedding_backends.h"

namespace heed::ops::cpu {

namespace {

constexpr int64_t kParallelMin = 1 << 15;  // floats moved; below this, thread start-up costs more

}  // namespace

void embedding_forward(const Tensor& ids, const Tensor& weight, Tensor& out, float scale) {
  const int32_t* pid = ids.data<int32_t>();
  const float* pw = weight.data<float>();
  float* po = out.data<float>();
  const int64_t n = ids.numel(), d = weight.size(1);
#pragma omp parallel for if (n * d > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const float* src = pw + static_cast<int64_t>(pid[i]) * d;
    float* dst = po + i * d;
    if (scale == 1.0f) {
      std::memcpy(dst, src, d * sizeof(float));
    } else {
#pragma omp simd
      for (int64_t j = 0; j < d; ++j) dst[j] = scale * src[j];
    }
  }
}

void embedding_backward(const Tensor& dy, const Tensor& ids, Tensor& dweight, bool accumulate, int64_t pad_id,
                        float scale) {
  const int32_t* pid = ids.data<int32_t>();
  const float* pdy = dy.data<float>();
  float* pg = dweight.data<float>();
  const int64_t n = ids.numel(), vocab = dweight.size(0), d = dweight.size(1);

  // Positions grouped by id: those of id v are order[start[v] .. start[v + 1]), in increasing order.
  std::vector<int64_t> start(vocab + 1, 0);
  for (int64_t i = 0; i < n; ++i) ++start[pid[i] + 1];
  for (int64_t v = 0; v < vocab; ++v) start[v + 1] += start[v];
  std::vector<int64_t> order(n);
  {
    std::vector<int64_t> cursor(start.begin(), start.end() - 1);
    for (int64_t i = 0; i < n; ++i) order[cursor[pid[i]]++] = i;
  }

  // Rows differ in work (frequent ids have many positions), hence dynamic scheduling.
#pragma omp parallel for schedule(dynamic, 16) if (vocab * d > kParallelMin)
  for (int64_t v = 0; v < vocab; ++v) {
    float* row = pg + v * d;
    if (!accumulate) std::memset(row, 0, d * sizeof(float));
    if (v == pad_id || start[v] == start[v + 1]) continue;
    // With accumulate, the row's sum goes into a buffer first, so that it is scaled before it is added,
    // as a gradient of its own would be.
    thread_local std::vector<float> sum_buffer;
    float* sum = row;
    if (accumulate) {
      sum_buffer.assign(d, 0.0f);
      sum = sum_buffer.data();
    }
    for (int64_t k = start[v]; k < start[v + 1]; ++k) {
      const float* src = pdy + order[k] * d;
#pragma omp simd
      for (int64_t j = 0; j < d; ++j) sum[j] += src[j];
    }
    if (accumulate) {
#pragma omp simd
      for (int64_t j = 0; j < d; ++j) row[j] += sum[j] * scale;
    } else {
#pragma omp simd
      for (int64_t j = 0; j < d; ++j) row[j] *= scale;
    }
  }
}

}  // namespace heed::ops::cpu
