// LayerNorm forward and backward over contiguous rows of D features.
//
// Row kernels (forward; backward's dx): a team of threads owns one row, a warp for D <= kWarpRowMaxCols
// (kThreads / 32 rows a block, the row sums in __shfl_xor_sync butterflies, no shared memory and no
// barriers) and the whole block above that (the sums through block_sum), so that a wide row still has
// enough threads and a narrow one does not leave most of a block idle. Threads stride over the row, so
// each load instruction of a warp reads consecutive elements. The row is swept two or three times; a
// warp's row (at most 1024 elements, 2 or 4 KiB) and a block's row stay in L1 between the sweeps, so DRAM
// sees one read of x (and dy) and one write of y (or dx).
//
// The packed row path, for D = 256, 512, 768 or 1024 (every Transformer width Heed trains) with 16-byte
// aligned tensors: a warp owns kRowsPerWarp rows, one after another, and lane l holds elements
// 8 (32 p + l) .. 8 (32 p + l) + 7 of each, pack p < D / 256, in registers. A row is read once, in
// 16-byte loads (a warp's load is 512 contiguous bytes of a 16-bit row), where the team path sweeps it
// two or three times, and gamma and beta are read once per warp for its 8 rows, not once per row.
//
// The statistics follow the CPU op (layer_norm_cpu.cc) in fp32: the mean in a first sweep, then, in a
// second, the deviations d = x - mean and their squares. The mean of d, r, is the part of the exact mean
// that the fp32 mean missed; it is subtracted from every x - mean, and var = mean(d^2) - r^2, so a row with
// a large mean and a small spread loses nothing to cancellation. mean and rstd are saved in fp32. The
// backward pass recovers r the same way (the mean of x - mean over the row), in the sweep that also forms
// sum(g) and sum(g (x - mean)) with g = dy * gamma, and saves it per row in the workspace for the
// parameter gradients.
//
// dgamma = sum over rows of dy * xhat and dbeta = sum of dy are column sums, taken in two deterministic
// stages (partial rows into a workspace, then column_sums.h's sum of them in order): no atomics, the same
// bits on every run. The packed path takes stage 1 in its dx kernel, from the rows it holds in registers
// (a partial row per block, its warps added in shared memory); the team path reads x and dy once more in
// column tiles (column_sums.h), so that warps read rows contiguously.
#include <initializer_list>
#include <type_traits>

#include "column_sums.h"
#include "common/launch.h"
#include "common/reductions.h"
#include "layer_norm.h"
#include "storage_types.h"

namespace heed::kernels {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kWarpRowMaxCols = 1024;  // 32 elements a lane; wider rows get a block each
constexpr int kPackCols = 32 * 8;           // a warp's 16-byte pack of a row: 8 elements a lane
constexpr int kMaxPacks = 4;                // D <= 1024 in the packed path
constexpr int kRowsPerWarp = 8;             // rows a warp of the packed path normalises one after another

}  // namespace

namespace HEED_BACKEND {

// The threads that share a row: a warp (kRowThreads = 32) or the whole block (kRowThreads = kThreads).
template <int kRowThreads>
struct RowTeam {
  static constexpr int kRowsPerBlock = kThreads / kRowThreads;
  int64_t row;
  int lane;  // this thread's rank in the team: it handles elements lane, lane + kRowThreads, ...

  __device__ RowTeam()
      : row(int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / kRowThreads), lane(threadIdx.x % kRowThreads) {}

  // The team's total, in every thread; a block team needs 32 floats of shared scratch.
  __device__ float sum(float v, float* scratch) const {
    if constexpr (kRowThreads == 32) {
      (void)scratch;
      return warp_sum(v);
    } else {
      return block_sum(v, scratch);
    }
  }
};

template <typename T, int kRowThreads>
__global__ void __launch_bounds__(kThreads) layer_norm_forward_kernel(LayerNormArgs p) {
  __shared__ float scratch[32];
  const RowTeam<kRowThreads> team;
  if (team.row >= p.rows) return;  // whole warps of the last block; a block team always has its row
  const T* x = static_cast<const T*>(p.x) + team.row * p.cols;
  const float inv_d = 1.0f / static_cast<float>(p.cols);

  float sum = 0.0f;
  for (int64_t j = team.lane; j < p.cols; j += kRowThreads) sum += to_float(x[j]);
  const float mean = team.sum(sum, scratch) * inv_d;

  float sum_dev = 0.0f, sum_sq = 0.0f;
  for (int64_t j = team.lane; j < p.cols; j += kRowThreads) {
    const float d = to_float(x[j]) - mean;
    sum_dev += d;
    sum_sq += d * d;
  }
  const float r = team.sum(sum_dev, scratch) * inv_d;
  const float var = fmaxf(team.sum(sum_sq, scratch) * inv_d - r * r, 0.0f);
  const float rstd = rsqrtf(var + p.eps);

  T* y = static_cast<T*>(p.y) + team.row * p.cols;
  for (int64_t j = team.lane; j < p.cols; j += kRowThreads)
    y[j] = from_float<T>(((to_float(x[j]) - mean) - r) * rstd * p.gamma[j] + p.beta[j]);
  if (team.lane == 0) {
    p.mean[team.row] = mean;
    p.rstd[team.row] = rstd;
  }
}

// dx = rstd (g - mean(g) - xhat mean(g xhat)), g = dy * gamma; and r of each row into residual_means.
template <typename T, int kRowThreads>
__global__ void __launch_bounds__(kThreads) layer_norm_backward_dx_kernel(LayerNormArgs p, float* residual_means) {
  __shared__ float scratch[32];
  const RowTeam<kRowThreads> team;
  if (team.row >= p.rows) return;
  const T* x = static_cast<const T*>(p.x) + team.row * p.cols;
  const T* dy = static_cast<const T*>(p.dy) + team.row * p.cols;
  const float mean = p.mean[team.row], rstd = p.rstd[team.row];
  const float inv_d = 1.0f / static_cast<float>(p.cols);

  float sum_dev = 0.0f, sum_g = 0.0f, sum_g_dev = 0.0f;
  for (int64_t j = team.lane; j < p.cols; j += kRowThreads) {
    const float d = to_float(x[j]) - mean, g = to_float(dy[j]) * p.gamma[j];
    sum_dev += d;
    sum_g += g;
    sum_g_dev += g * d;
  }
  sum_dev = team.sum(sum_dev, scratch);
  sum_g = team.sum(sum_g, scratch);
  sum_g_dev = team.sum(sum_g_dev, scratch);
  const float r = sum_dev * inv_d;
  const float mean_g = sum_g * inv_d;
  const float mean_g_xhat = rstd * (sum_g_dev - r * sum_g) * inv_d;

  T* dx = static_cast<T*>(p.dx) + team.row * p.cols;
  for (int64_t j = team.lane; j < p.cols; j += kRowThreads) {
    const float xhat = ((to_float(x[j]) - mean) - r) * rstd;
    dx[j] = from_float<T>(rstd * (to_float(dy[j]) * p.gamma[j] - mean_g - xhat * mean_g_xhat));
  }
  if (team.lane == 0) residual_means[team.row] = r;
}

// A lane's kPacks packs of a packed-path row (row_data points at its first element), as fp32.
template <int kPacks, typename T>
__device__ __forceinline__ void load_lane_packs(const T* row_data, int lane, float (&v)[8 * kPacks]) {
#pragma unroll
  for (int k = 0; k < kPacks; ++k)
    load_floats(row_data + (k * 32 + lane) * 8, *reinterpret_cast<float(*)[8]>(v + 8 * k));
}

template <int kPacks, typename T>
__device__ __forceinline__ void store_lane_packs(T* row_data, int lane, const float (&v)[8 * kPacks]) {
#pragma unroll
  for (int k = 0; k < kPacks; ++k)
    store_floats(row_data + (k * 32 + lane) * 8, *reinterpret_cast<const float(*)[8]>(v + 8 * k));
}

// The rows [first, end) of this warp in the packed path; first >= rows for a warp past the last row.
struct WarpRows {
  int64_t first, end;
  __device__ explicit WarpRows(int64_t rows)
      : first((int64_t(blockIdx.x) * (kThreads / 32) + threadIdx.x / 32) * kRowsPerWarp),
        end(min(rows, first + kRowsPerWarp)) {}
};

template <typename T, int kPacks>
__global__ void __launch_bounds__(kThreads) layer_norm_forward_packed_kernel(LayerNormArgs p) {
  constexpr int kN = 8 * kPacks;
  const WarpRows rows(p.rows);
  if (rows.first >= p.rows) return;  // whole warps
  const int lane = threadIdx.x % 32;
  float gamma[kN], beta[kN];
  load_lane_packs<kPacks>(p.gamma, lane, gamma);
  load_lane_packs<kPacks>(p.beta, lane, beta);
  const float inv_d = 1.0f / static_cast<float>(p.cols);
  for (int64_t row = rows.first; row < rows.end; ++row) {
    float v[kN];
    load_lane_packs<kPacks>(static_cast<const T*>(p.x) + row * p.cols, lane, v);
    float sum = 0.0f;
    for (int k = 0; k < kN; ++k) sum += v[k];
    const float mean = warp_sum(sum) * inv_d;
    float sum_dev = 0.0f, sum_sq = 0.0f;
    for (int k = 0; k < kN; ++k) {
      const float d = v[k] - mean;
      sum_dev += d;
      sum_sq += d * d;
    }
    const float r = warp_sum(sum_dev) * inv_d;
    const float var = fmaxf(warp_sum(sum_sq) * inv_d - r * r, 0.0f);
    const float rstd = rsqrtf(var + p.eps);
    for (int k = 0; k < kN; ++k) v[k] = ((v[k] - mean) - r) * rstd * gamma[k] + beta[k];
    store_lane_packs<kPacks>(static_cast<T*>(p.y) + row * p.cols, lane, v);
    if (lane == 0) {
      p.mean[row] = mean;
      p.rstd[row] = rstd;
    }
  }
}

// The packed path of the backward: dx as layer_norm_backward_dx_kernel computes it, and, from the same
// registers, stage 1 of dgamma and dbeta: each lane sums its columns over its warp's rows, the block's
// warps add theirs in shared memory in warp order, and the block writes one partial row of 2 D floats
// (dgamma's, then dbeta's) for sum_column_partials. x and dy are read once for both, where a separate
// parameter-gradient kernel would read them again. Shared memory: a 2 D-float row a warp (32 KiB at D =
// 512, 64 KiB at 1024).
template <typename T, int kPacks>
__global__ void __launch_bounds__(kThreads) layer_norm_backward_packed_kernel(LayerNormArgs p, float* partials) {
  constexpr int kN = 8 * kPacks;
  const WarpRows rows(p.rows);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  float dgamma[kN] = {}, dbeta[kN] = {};
  if (rows.first < p.rows) {  // a warp past the last row still takes part in the block's sum, with zeros
    float gamma[kN];
    load_lane_packs<kPacks>(p.gamma, lane, gamma);
    const float inv_d = 1.0f / static_cast<float>(p.cols);
    for (int64_t row = rows.first; row < rows.end; ++row) {
      float dev[kN], dy[kN];
      load_lane_packs<kPacks>(static_cast<const T*>(p.x) + row * p.cols, lane, dev);
      load_lane_packs<kPacks>(static_cast<const T*>(p.dy) + row * p.cols, lane, dy);
      const float mean = p.mean[row], rstd = p.rstd[row];
      float sum_dev = 0.0f, sum_g = 0.0f, sum_g_dev = 0.0f;
      for (int k = 0; k < kN; ++k) {
        dev[k] -= mean;
        const float g = dy[k] * gamma[k];
        sum_dev += dev[k];
        sum_g += g;
        sum_g_dev += g * dev[k];
      }
      sum_dev = warp_sum(sum_dev);
      sum_g = warp_sum(sum_g);
      sum_g_dev = warp_sum(sum_g_dev);
      const float r = sum_dev * inv_d;
      const float mean_g = sum_g * inv_d;
      const float mean_g_xhat = rstd * (sum_g_dev - r * sum_g) * inv_d;
      for (int k = 0; k < kN; ++k) {
        const float xhat = (dev[k] - r) * rstd;
        dgamma[k] += dy[k] * xhat;
        dbeta[k] += dy[k];
        dev[k] = rstd * (dy[k] * gamma[k] - mean_g - xhat * mean_g_xhat);  // dx, in dev's registers
      }
      store_lane_packs<kPacks>(static_cast<T*>(p.dx) + row * p.cols, lane, dev);
    }
  }
  float* const warp_sums = dynamic_shared_memory<float>();  // [warps][2 D]
  store_lane_packs<kPacks>(warp_sums + warp * 2 * p.cols, lane, dgamma);
  store_lane_packs<kPacks>(warp_sums + warp * 2 * p.cols + p.cols, lane, dbeta);
  __syncthreads();
  float* const block_partial = partials + int64_t(blockIdx.x) * 2 * p.cols;
  for (int64_t c = threadIdx.x; c < 2 * p.cols; c += kThreads) {
    float sum = 0.0f;
    for (int w = 0; w < kThreads / 32; ++w) sum += warp_sums[w * 2 * p.cols + c];
    block_partial[c] = sum;
  }
}

// Stage 1 of dgamma and dbeta on the team path: this block's partial sums over its row chunk, dgamma's
// then dbeta's, into the chunk's 2 * D floats of `partials`.
template <typename T>
__global__ void __launch_bounds__(kColumnThreads)
    layer_norm_param_grads_kernel(LayerNormArgs p, const float* residual_means, float* partials) {
  __shared__ float scratch[kColumnThreads];
  const ColumnSlice s = column_slice<1>(p.rows);
  const T* x = static_cast<const T*>(p.x);
  const T* dy = static_cast<const T*>(p.dy);
  float dgamma[1] = {}, dbeta[1] = {};
  if (s.col < p.cols)
    for (int64_t row = s.row; row < s.row_end; row += kColumnWarps) {
      const int64_t i = row * p.cols + s.col;
      const float g = to_float(dy[i]);
      const float mean = p.mean[row], r = residual_means[row], rstd = p.rstd[row];
      dgamma[0] += g * (((to_float(x[i]) - mean) - r) * rstd);
      dbeta[0] += g;
    }
  float* partial = partials + int64_t(blockIdx.y) * 2 * p.cols;
  store_column_partial<1>(dgamma, s, p.cols, partial, scratch);
  store_column_partial<1>(dbeta, s, p.cols, partial + p.cols, scratch);
}

// The packed path's packs a row (D / 256) when every tensor of `a` that the pass reads or writes is 16-byte
// aligned and D is 256, 512, 768 or 1024; 0 when the team path must run.
int packed_row_packs(const LayerNormArgs& a, std::initializer_list<const void*> tensors) {
  if (a.cols % kPackCols != 0 || a.cols > kMaxPacks * kPackCols) return 0;
  for (const void* t : tensors)
    if (reinterpret_cast<uintptr_t>(t) % 16 != 0) return 0;
  return static_cast<int>(a.cols / kPackCols);
}

// Calls body(std::integral_constant<int, kPacks>) for packs in 1 .. kMaxPacks.
template <typename Body>
void with_packs(int packs, Body&& body) {
  switch (packs) {
    case 1: body(std::integral_constant<int, 1>{}); break;
    case 2: body(std::integral_constant<int, 2>{}); break;
    case 3: body(std::integral_constant<int, 3>{}); break;
    default: body(std::integral_constant<int, 4>{}); break;
  }
}

dim3 packed_grid(int64_t rows) {
  constexpr int64_t per_block = kThreads / 32 * kRowsPerWarp;
  return dim3(static_cast<unsigned>((rows + per_block - 1) / per_block));
}

// Calls body(std::integral_constant<int, kRowThreads>) with the row team size for rows of `cols`.
template <typename Body>
void with_row_team(int64_t cols, Body&& body) {
  if (cols <= kWarpRowMaxCols)
    body(std::integral_constant<int, 32>{});
  else
    body(std::integral_constant<int, kThreads>{});
}

template <int kRowThreads>
dim3 row_grid(int64_t rows) {
  constexpr int64_t per_block = RowTeam<kRowThreads>::kRowsPerBlock;
  return dim3(static_cast<unsigned>((rows + per_block - 1) / per_block));
}

void check_args(const LayerNormArgs& a, const char* op) {
  HEED_CHECK(a.rows >= 0 && a.cols > 0, "{}: needs rows >= 0 and D > 0, got [{}, {}]", op, a.rows, a.cols);
}

}  // namespace HEED_BACKEND

template <>
void layer_norm_forward<kBackend>(const LayerNormArgs& a) {
  using namespace HEED_BACKEND;
  check_args(a, "layer_norm_forward");
  if (a.rows == 0) return;
  const int packs = packed_row_packs(a, {a.x, a.y, a.gamma, a.beta});
  with_storage_type(a.dtype, "layer_norm_forward", [&](auto storage) {
    using T = decltype(storage);
    if (packs > 0) {
      with_packs(packs, [&](auto k) {
        launch(layer_norm_forward_packed_kernel<T, decltype(k)::value>, packed_grid(a.rows), dim3(kThreads), 0,
               a.stream, a);
      });
      return;
    }
    with_row_team(a.cols, [&](auto team) {
      constexpr int kRowThreads = decltype(team)::value;
      launch(layer_norm_forward_kernel<T, kRowThreads>, row_grid<kRowThreads>(a.rows), dim3(kThreads), 0,
             a.stream, a);
    });
  });
}

// The per-row r, then the column partials of dgamma and dbeta: a row of 2 D floats per 128-row chunk on
// the team path, per block of 64 rows on the packed path (whichever runs, the larger count).
template <>
size_t layer_norm_backward_workspace_bytes<kBackend>(const LayerNormArgs& a) {
  using namespace HEED_BACKEND;
  const int64_t partial_rows = std::max<int64_t>(column_partial_count(a.rows), packed_grid(a.rows).x);
  return static_cast<size_t>(a.rows + partial_rows * 2 * a.cols) * sizeof(float);
}

template <>
void layer_norm_backward<kBackend>(const LayerNormArgs& a) {
  using namespace HEED_BACKEND;
  check_args(a, "layer_norm_backward");
  float* residual_means = static_cast<float*>(a.workspace);
  float* partials = residual_means + a.rows;
  int64_t partial_rows = column_partial_count(a.rows);
  const int packs = packed_row_packs(a, {a.x, a.dy, a.dx, a.gamma});
  if (a.rows > 0) {
    with_storage_type(a.dtype, "layer_norm_backward", [&](auto storage) {
      using T = decltype(storage);
      if (packs > 0) {
        const dim3 grid = packed_grid(a.rows);
        const size_t warp_sums_bytes = kThreads / 32 * 2 * a.cols * sizeof(float);
        with_packs(packs, [&](auto k) {
          launch(layer_norm_backward_packed_kernel<T, decltype(k)::value>, grid, dim3(kThreads), warp_sums_bytes,
                 a.stream, a, partials);
        });
        partial_rows = grid.x;
        return;
      }
      with_row_team(a.cols, [&](auto team) {
        constexpr int kRowThreads = decltype(team)::value;
        launch(layer_norm_backward_dx_kernel<T, kRowThreads>, row_grid<kRowThreads>(a.rows), dim3(kThreads), 0,
               a.stream, a, residual_means);
      });
      launch(layer_norm_param_grads_kernel<T>, column_partials_grid<1>(a.rows, a.cols), dim3(kColumnThreads), 0,
             a.stream, a, static_cast<const float*>(residual_means), partials);
    });
  }
  // A partial row is dgamma's D then dbeta's D, as param_grads' two rows: one sum for both.
  sum_column_partials(partials, partial_rows, 2 * a.cols, 2 * a.cols, a.param_grads, a.stream);
}

}  // namespace heed::kernels
