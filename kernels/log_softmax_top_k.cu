// Beam search's per-step selection: one block of 256 threads per decoder row.
//
// The row's log-softmax statistics come first, as in the softmax kernel: the maximum, then the sum of
// e^(x - max), both through block_reduce in a fixed order. A log-probability is then (x - max) - log(sum),
// the expression (and rounding order) of the CPU op, and the candidate's score adds the row's prefix.
//
// Selection is k rounds of a block-wide argmax, each over the elements that rank strictly after the
// previous round's pick in the total order (score descending, token ascending). Every thread keeps only
// its best candidate of a round in registers, strided over the row so loads are coalesced; the block then
// reduces (score, token) pairs with warp shuffles and one shared-memory step. Rounds re-read the row, which
// stays in L2 (a 32k-entry fp32 row is 128 KiB): for the k <= 2 x beam of beam search that costs far less
// than moving rows x vocabulary logits to the host each step. The total order makes the result independent
// of the thread count and of the reduction's pairing, and equal scores resolve to the lower token as on
// the CPU.
//
// An ensemble has a kernel of its own, so that a single model's keeps its arguments and code. It computes
// each model's statistics and log-probabilities with the single kernel's expressions, in the same order,
// and a score as the models' fp32 log-probabilities weighted and summed in double, rounded once to fp32:
// for copies of one model with weights summing to one, the single kernel's score bit for bit
// (heed/ops/log_softmax_top_k.h). The models' pointers, weights and statistics sit in shared memory,
// because a loop cannot index the launch arguments, and every round reads every model's row.
#include "common/elements.h"
#include "common/launch.h"
#include "common/reductions.h"
#include "log_softmax_top_k.h"

namespace heed::kernels {

namespace {
constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int32_t kNoToken = 0x7fffffff;  // ranks after every real token, so "none" loses every comparison
}  // namespace

namespace HEED_BACKEND {

namespace {

// Whether (s, j) ranks before (best_s, best_j): a higher score, or the same score and a lower token.
// NaN scores never rank before anything, as on the CPU, which skips them.
__device__ __forceinline__ bool ranks_before(float s, int32_t j, float best_s, int32_t best_j) {
  return s > best_s || (s == best_s && j < best_j);
}

// The block's best (score, token); every thread gets it. Starts and ends with a barrier.
__device__ __forceinline__ void block_best(float& s, int32_t& j, float* warp_s, int32_t* warp_j) {
  for (int offset = 16; offset > 0; offset /= 2) {
    const float other_s = __shfl_xor_sync(kFullWarp, s, offset);
    const int32_t other_j = __shfl_xor_sync(kFullWarp, j, offset);
    if (ranks_before(other_s, other_j, s, j)) s = other_s, j = other_j;
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  __syncthreads();
  if (lane == 0) warp_s[warp] = s, warp_j[warp] = j;
  __syncthreads();
  s = lane < kWarps ? warp_s[lane] : -INFINITY;
  j = lane < kWarps ? warp_j[lane] : kNoToken;
  for (int offset = 16; offset > 0; offset /= 2) {
    const float other_s = __shfl_xor_sync(kFullWarp, s, offset);
    const int32_t other_j = __shfl_xor_sync(kFullWarp, j, offset);
    if (ranks_before(other_s, other_j, s, j)) s = other_s, j = other_j;
  }
}

// The log-softmax statistics of the row of `x` that starts at `base`: its maximum and the log of the sum
// of e^(x - max), reduced in a fixed order. Every thread gets them.
struct RowStats {
  float max, log_sum;
};
__device__ __forceinline__ RowStats row_stats(const void* x, int64_t base, const LogSoftmaxTopKArgs& p,
                                              float* scratch) {
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < p.vocab; j += kThreads) mx = fmaxf(mx, load_element(x, base + j, p.dtype));
  mx = block_max(mx, scratch);
  float sum = 0.0f;
  for (int64_t j = threadIdx.x; j < p.vocab; j += kThreads) sum += expf(load_element(x, base + j, p.dtype) - mx);
  return {mx, logf(block_sum(sum, scratch))};
}

// The k rounds of selection for `row`, where score(j) is token j's candidate score; writes the row's k
// (score, token) pairs, -inf and -1 once the row has no more.
template <class Score>
__device__ __forceinline__ void select_top_k(const LogSoftmaxTopKArgs& p, int64_t row, Score score, float* warp_s,
                                             int32_t* warp_j) {
  float last_s = INFINITY;
  int32_t last_j = -1;
  for (int round = 0; round < p.k; ++round) {
    float best_s = -INFINITY;
    int32_t best_j = kNoToken;
    for (int64_t j = threadIdx.x; j < p.vocab; j += kThreads) {
      if (j == p.exclude) continue;
      const float s = score(j);
      const int32_t token = static_cast<int32_t>(j);
      const bool after_last = s < last_s || (s == last_s && token > last_j);
      if (after_last && s > -INFINITY && ranks_before(s, token, best_s, best_j)) best_s = s, best_j = token;
    }
    block_best(best_s, best_j, warp_s, warp_j);
    if (threadIdx.x == 0) {
      const bool found = best_j != kNoToken;
      p.scores[row * p.k + round] = found ? best_s : -INFINITY;
      p.tokens[row * p.k + round] = found ? best_j : -1;
    }
    last_s = best_s, last_j = best_j;  // every thread holds the block's pick: no shared state to sync
  }
}

}  // namespace

__global__ void __launch_bounds__(kThreads) log_softmax_top_k_kernel(LogSoftmaxTopKArgs p) {
  __shared__ float scratch[32];
  __shared__ float warp_s[kWarps];
  __shared__ int32_t warp_j[kWarps];
  const int64_t row = blockIdx.x, base = row * p.vocab;
  const RowStats stats = row_stats(p.logits, base, p, scratch);
  const float prefix = p.prefix[row];
  select_top_k(
      p, row,
      [&](int64_t j) { return prefix + ((load_element(p.logits, base + j, p.dtype) - stats.max) - stats.log_sum); },
      warp_s, warp_j);
}

// (kThreads, 1): given no minimum of blocks per SM, ptxas held this kernel to 32 registers for sm_80 and
// spilled; it takes 48, which still fits 5 blocks of 256 threads on an SM.
__global__ void __launch_bounds__(kThreads, 1) ensemble_log_softmax_top_k_kernel(EnsembleLogSoftmaxTopKArgs e) {
  __shared__ float scratch[32];
  __shared__ float warp_s[kWarps];
  __shared__ int32_t warp_j[kWarps];
  __shared__ const void* logits[kMaxTopKModels];
  __shared__ double weights[kMaxTopKModels];
  __shared__ float row_max[kMaxTopKModels], row_log_sum[kMaxTopKModels];
  const LogSoftmaxTopKArgs& p = e.row;
  const int64_t row = blockIdx.x, base = row * p.vocab;
  const int models = e.models;

  // The single kernel's statistics, model by model.
  for (int m = 0; m < models; ++m) {
    const RowStats stats = row_stats(e.logits[m], base, p, scratch);
    if (threadIdx.x == 0)
      logits[m] = e.logits[m], weights[m] = e.weights[m], row_max[m] = stats.max, row_log_sum[m] = stats.log_sum;
  }
  __syncthreads();
  const float prefix = p.prefix[row];

  // The single kernel's rounds, over the ensemble's scores: the models' fp32 log-probabilities, weighted and
  // summed in double, rounded once.
  select_top_k(
      p, row,
      [&](int64_t j) {
        double weighted = 0.0;
        for (int m = 0; m < models; ++m)
          weighted += weights[m] * static_cast<double>((load_element(logits[m], base + j, p.dtype) - row_max[m]) -
                                                       row_log_sum[m]);
        return prefix + static_cast<float>(weighted);
      },
      warp_s, warp_j);
}

}  // namespace HEED_BACKEND

template <>
void log_softmax_top_k<kBackend>(const LogSoftmaxTopKArgs& args) {
  if (args.rows == 0 || args.k == 0) return;
  HEED_BACKEND::launch(HEED_BACKEND::log_softmax_top_k_kernel, dim3(static_cast<unsigned>(args.rows)),
                       dim3(kThreads), 0, args.stream, args);
}

template <>
void ensemble_log_softmax_top_k<kBackend>(const EnsembleLogSoftmaxTopKArgs& args) {
  HEED_CHECK(args.models >= 1 && args.models <= kMaxTopKModels,
             "ensemble_log_softmax_top_k: {} models, expected 1 to {}", args.models, kMaxTopKModels);
  if (args.row.rows == 0 || args.row.k == 0) return;
  HEED_BACKEND::launch(HEED_BACKEND::ensemble_log_softmax_top_k_kernel, dim3(static_cast<unsigned>(args.row.rows)),
                       dim3(kThreads), 0, args.row.stream, args);
}

}  // namespace heed::kernels
