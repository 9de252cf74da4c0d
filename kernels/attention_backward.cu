// FlashAttention-2 backward: dQ, dK and dV of O = softmax(Q K^T * scale + mask) V (with dropout on the
// probabilities), for bf16 or fp16 tensors with fp32 accumulation, recomputing the probabilities from the
// forward pass's row logsumexp so that the Lq x Lk score matrix never exists in global memory.
//
// The math (heed/ops/attention.h, as the CPU op computes it): P = e^(S * scale - lse), Pd = P f with f the
// dropout factor (0 or 1 / (1 - p); 1 without dropout), dV = Pd^T dO, dP = dO V^T, dS = P (dP f - delta)
// with delta_i = rowsum(dO o O)_i, dK = dS^T Q * scale and dQ = dS K * scale.
//
// Three steps, one launch each:
//  1. Pre-pass: one warp per query row computes delta_i (fp32, into the workspace) and, in the default
//     mode, clears that row of the fp32 dQ accumulator.
//  2. dK and dV: one block of 4 warps per (64-key tile, head, batch). The block's K and V tiles stay in
//     shared memory, and each warp owns 16 keys, whose dK and dV rows it accumulates in fp32 registers
//     while the block walks the query tiles that can see the key tile (under the causal rule, tiles of
//     queries that see none of its keys are never visited). Query tiles (64 rows; 32 at D = 128, for
//     registers) of Q and dO stream through two shared-memory buffers with cp.async, tile n + 1 in flight
//     while tile n is computed; lse and delta of the tile's rows come along in shared memory.
//     Each warp works in the transposed orientation, keys as rows: S^T = K Q^T and dP^T = V dO^T
//     (mma.m16n8k16, K and V fragments by ldmatrix, Q and dO by ldmatrix of their rows, which are the
//     columns of Q^T and dO^T). Then Pd^T and dS^T come out in the accumulator layout with the warp's keys
//     as rows, which is the A-operand layout of dV += Pd^T dO and dK += dS^T Q: they are rounded to 16
//     bits straight from registers, and dO and Q fragments come from ldmatrix.trans. P and dS never touch
//     shared memory for dK and dV.
//  3. dQ, one of two ways:
//     - Default (atomic): in step 2, each query tile's dS^T also goes to shared memory as 16-bit values,
//       and after a barrier the 4 warps compute that query tile's dQ contribution dS K (dS fragments by
//       ldmatrix.trans of dS^T, K fragments by ldmatrix.trans) and atomicAdd it into an fp32 [B, H, Lq, D]
//       buffer in the workspace; a small kernel then scales it and converts it to the output dtype and
//       strides. Cost over computing dK and dV alone: one more 64 x Bq x D product per tile pair, Bq x D
//       fp32 atomics per block and query tile (every dQ element receives ceil(Lk / 64) of them, in an
//       order that varies from run to run, so the last bits of dQ do too), a shared-memory round trip of
//       dS, and the 4 B H Lq D bytes of the buffer, written twice and read once.
//     - Deterministic (args.deterministic): step 2 skips dQ, and a second kernel with one block of 4 warps
//       per (64-query tile, head, batch), shaped like the forward kernel, walks the key tiles its queries
//       see (K and V double-buffered with cp.async), recomputes S = Q K^T, P, dP = dO V^T and dS with the
//       queries as rows, and accumulates dQ += dS K in registers (dS rounded to 16 bits from registers as
//       the A operand). Each dQ element is then summed by one thread in a fixed order: the same bits on
//       every run, no atomics and no fp32 buffer. Cost: S and dP are computed twice, 7 tile products per
//       (query tile, key tile) pair instead of 5, so about 1.4 times the tensor-core work of the default,
//       plus a second pass over K and V.
//
// Memory traffic: step 2 reads K and V once and Q, dO, lse and delta once per key tile (ceil(Lk / 64)
// passes over the queries, mostly from L2), and writes dK and dV once; the default dQ adds ceil(Lk / 64)
// fp32 atomic passes over the [Lq, D] accumulator of each head, the deterministic dQ kernel instead reads
// Q and dO once and K and V once per query tile. Nothing of size Lq x Lk is ever written.
//
// Strides are free, but every row of a 16-bit tensor must start 16-byte aligned (strides in multiples of 8
// elements), since rows move in 16-byte pieces (attention_tiles.h); the entry point checks it.
//
// Masks: keys past Lk and queries past Lq are zero-filled by the tile loads; a query past Lq gets lse =
// -inf, and a row with lse = -inf (one that saw no key) has P = 0, so it contributes nothing. Tiles that
// straddle the causal diagonal, the end of the keys, or carry a padding mask pay for the per-element test,
// a bit test of the tile's hidden keys (KeyVisibility::hidden_keys, made once per key tile).
//
// Dropout factors are drawn again from Philox, exactly as the CPU op and the forward kernel draw them, so
// the mask is never stored. One Philox call yields the decisions of four consecutive flat indices, which
// in both kernels' layouts belong to different lanes (in step 2 a lane's two adjacent elements are even
// adjacent queries, Lk apart): the lanes that share a query row each draw one group and pass the decisions
// around by shuffles (DropoutRun), half a Philox call per element.
//
// Registers: step 2 keeps D fp32 accumulators of dK and dV per thread plus Bq of S^T and dP^T, 160 at
// D = 128 (with Bq = 32) and 128 at D = 64; the dQ kernel keeps D / 2 of dQ plus 64 of S and dP. ptxas -v
// reports 184 to 255 registers for step 2 (the most at D = 128 with the dQ part) and 128 to 242 for the
// dQ kernel over sm_80 and sm_90, both dtypes and all head dims: no spills, within the 255 that 128-thread
// blocks allow, and two blocks per SM.
// Shared memory: step 2 holds K, V, two Q and two dO tiles, the dS^T tile in the default mode, and lse and
// delta of two query tiles: 40, 64 and 73.5 KiB at D = 32, 64 and 128 (9, 9 and 5 KiB less without dS^T);
// the dQ kernel holds Q, dO and two K and two V tiles: 30, 54 and 102 KiB.
#include <cmath>

#include "attention.h"
#include "attention_tiles.h"
#include "common/launch.h"
#include "common/reductions.h"

namespace heed::kernels {

namespace {

constexpr int kWarps = 4;
constexpr int kWarpSize = 32;
constexpr int kThreads = kWarps * kWarpSize;
constexpr int kWarpRows = 16;                // rows (keys in step 2, queries in the dQ kernel) per warp
constexpr int kBlockK = kWarps * kWarpRows;  // keys per block in step 2, per streamed tile in the dQ kernel
constexpr int kBlockQ = kWarps * kWarpRows;  // queries per block in the dQ kernel

// Queries per streamed tile in step 2: S^T and dP^T cost Bq / 2 registers each next to the D of dK and
// dV, so D = 128 halves the tile to stay clear of spills.
template <int D>
constexpr int kDkdvTileQ = D == 128 ? 32 : 64;

}  // namespace

namespace HEED_BACKEND {

// What one score element contributes: the dropped probability Pd = P f, which multiplies dO into dV, and
// dS = P (dP f - delta), which multiplies Q into dK and K into dQ (the scale is applied to the sums).
struct ScoreGradient {
  float p_dropped, ds;
};

// `s` = q . k and `dp` = dO . v of one (query, key) element; `factor` is its dropout factor f. The row's
// lse comes as lse log2(e) and the scale as scale log2(e): P = 2^(s scale_log2 - lse_log2), one FFMA and
// one ex2 (attention_tiles.h).
__device__ __forceinline__ ScoreGradient score_gradient(float s, float dp, float scale_log2, float lse_log2,
                                                        float delta, bool visible, float factor) {
  // A hidden key has P = 0, and so does every key of a row that saw none (lse = -inf, where the exponent
  // would be +inf).
  const float p = visible && lse_log2 != -INFINITY ? exp2f(fmaf(s, scale_log2, -lse_log2)) : 0.0f;
  return {p * factor, p * (dp * factor - delta)};
}

// Dropout keep decisions (as heed::ops::dropout_keep draws them) for a run of consecutive flat indices
// [first, first + n) of one query row that several lanes of a warp hold between them. Member m of those
// lanes (lane base + m * stride) draws Philox group first / 4 + m and keeps its four decisions as bits;
// each lane then reads the bits of its own elements from the member that drew them, by shuffle. Every
// element thus costs one Philox call divided by the elements per member, however the run is aligned,
// where a lane drawing for itself would pay one call per element or per adjacent pair (two when the pair
// straddles groups, and in a warp some pair nearly always does). Needs (n + 6) / 4 members (the run may
// start anywhere in a group); every lane of the warp must take part, as in any shuffle.
class DropoutRun {
 public:
  __device__ __forceinline__ DropoutRun(const RandomKey& key, float p, uint64_t first, int member, int base, int stride)
      : offset0_(static_cast<int>(first % 4)), base_(base), stride_(stride) {
    float u[4];
    philox_uniform4(key, first / 4 + member, u);
    bits_ = static_cast<unsigned>(u[0] >= p) | static_cast<unsigned>(u[1] >= p) << 1 |
            static_cast<unsigned>(u[2] >= p) << 2 | static_cast<unsigned>(u[3] >= p) << 3;
  }
  // The decision for flat index first + offset.
  __device__ __forceinline__ bool keep(int offset) const {
    const int o = offset0_ + offset;
    return (__shfl_sync(kFullWarp, bits_, base_ + o / 4 * stride_) >> (o % 4)) & 1u;
  }

 private:
  int offset0_, base_, stride_;
  unsigned bits_;
};

// The rows of one (batch, head) of a [B, H, L, D] tensor.
template <typename T>
__device__ __forceinline__ T* head_rows(T* base, const AttentionStrides& s, int b, int h) {
  return base + b * s.batch + h * s.head;
}

// The masks of batch row b.
__device__ __forceinline__ KeyVisibility key_visibility(const AttentionArgs& a, int b) {
  return {a.len_k, a.len_k - a.len_q, a.causal,
          a.key_padding != nullptr ? a.key_padding + static_cast<int64_t>(b) * a.len_k : nullptr};
}

// acc (16 x N, as N / 8 accumulator tiles) += X Y^T over K columns, for rows [x_row0, x_row0 + 16) of a
// row-major tile X and all N rows of a row-major tile Y: S = Q K^T and dP = dO V^T, or, with the keys as
// rows, their transposes K Q^T and V dO^T.
template <typename T, int K, int N>
__device__ __forceinline__ void accumulate_product_transposed(float acc[N / 8][4], const T* x, int x_stride, int x_row0,
                                                              const T* y, int y_stride, int lane) {
#pragma unroll
  for (int k0 = 0; k0 < K; k0 += 16) {
    uint32_t xa[4];
    load_a_fragment(xa, x, x_stride, x_row0, k0, lane);
#pragma unroll
    for (int n0 = 0; n0 < N; n0 += 16) {
      uint32_t yb[4];
      load_b_fragments(yb, y, y_stride, n0, k0, lane);
      mma_m16n8k16<T>(acc[n0 / 8], xa, yb, acc[n0 / 8]);
      mma_m16n8k16<T>(acc[n0 / 8 + 1], xa, yb + 2, acc[n0 / 8 + 1]);
    }
  }
}

// acc (16 x N) += A Y, where A (16 x K) is an earlier product's result still in accumulator registers,
// rounded to T here, and Y is a row-major K x N tile: dV += Pd^T dO, dK += dS^T Q and dQ += dS K.
template <typename T, int K, int N>
__device__ __forceinline__ void accumulate_product_from_registers(float acc[N / 8][4], const float a[K / 8][4],
                                                                  const T* y, int y_stride, int lane) {
#pragma unroll
  for (int kk = 0; kk < K / 16; ++kk) {
    uint32_t aa[4];
    accumulators_to_a_fragment<T>(aa, a[2 * kk], a[2 * kk + 1]);
#pragma unroll
    for (int n0 = 0; n0 < N; n0 += 16) {
      uint32_t yb[4];
      load_b_fragments_transposed(yb, y, y_stride, kk * 16, n0, lane);
      mma_m16n8k16<T>(acc[n0 / 8], aa, yb, acc[n0 / 8]);
      mma_m16n8k16<T>(acc[n0 / 8 + 1], aa, yb + 2, acc[n0 / 8 + 1]);
    }
  }
}

// Step 1. delta_i = rowsum(dO o O)_i for every query row, one warp per row; clears the row of the dQ
// accumulator when there is one.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    attention_backward_delta_kernel(AttentionArgs a, float* delta, float* dq_accum) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  if (row >= static_cast<int64_t>(a.batch) * a.heads * a.len_q) return;  // whole warps leave together
  const int i = static_cast<int>(row % a.len_q), bh = static_cast<int>(row / a.len_q);
  const int b = bh / a.heads, h = bh % a.heads;
  const T* dout = head_rows(static_cast<const T*>(a.dout), a.dout_strides, b, h) + i * a.dout_strides.row;
  const T* out = head_rows(static_cast<const T*>(a.out), a.out_strides, b, h) + i * a.out_strides.row;
  float dot = 0.0f;
  for (int d = lane; d < a.head_dim; d += kWarpSize) dot += static_cast<float>(dout[d]) * static_cast<float>(out[d]);
  dot = warp_sum(dot);
  if (lane == 0) delta[row] = dot;
  if (dq_accum != nullptr)
    for (int d = lane; d < a.head_dim; d += kWarpSize) dq_accum[row * a.head_dim + d] = 0.0f;
}

// Step 2: dK and dV of one 64-key tile, and with kAccumulateDq the atomic dQ contributions. Two blocks per
// SM is the register budget: left to itself, ptxas aims for three at D = 32 and spills.
template <typename T, int D, bool kAccumulateDq>
__global__ void __launch_bounds__(kThreads, 2)
    attention_backward_dkdv_kernel(AttentionArgs a, const float* delta, float* dq_accum) {
  constexpr int kTileQ = kDkdvTileQ<D>;
  using KVTile = SmemTile<kBlockK, D>;
  using QTile = SmemTile<kTileQ, D>;
  using DsTile = SmemTile<kBlockK, kTileQ>;  // dS^T: keys as rows
  T* const k_tile = dynamic_shared_memory<T>();
  T* const v_tile = k_tile + KVTile::kElements;
  T* const q_tiles = v_tile + KVTile::kElements;       // two buffers
  T* const do_tiles = q_tiles + 2 * QTile::kElements;  // two buffers
  T* const ds_tile = do_tiles + 2 * QTile::kElements;  // only with kAccumulateDq
  float* const lse_rows = reinterpret_cast<float*>(ds_tile + (kAccumulateDq ? DsTile::kElements : 0));  // two
  float* const delta_rows = lse_rows + 2 * kTileQ;                                                      // two

  const int b = blockIdx.z, h = blockIdx.y, j0 = blockIdx.x * kBlockK;
  const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  const int g = lane / 4, t = lane % 4;  // fragment row and column pair (common/ptx.h)
  const int warp_key0 = warp * kWarpRows;
  const int64_t bh = static_cast<int64_t>(b) * a.heads + h;

  const T* const q = head_rows(static_cast<const T*>(a.q), a.q_strides, b, h);
  const T* const k = head_rows(static_cast<const T*>(a.k), a.k_strides, b, h);
  const T* const v = head_rows(static_cast<const T*>(a.v), a.v_strides, b, h);
  const T* const dout = head_rows(static_cast<const T*>(a.dout), a.dout_strides, b, h);
  const float* const lse = a.lse + bh * a.len_q;
  const float* const head_delta = delta + bh * a.len_q;
  const KeyVisibility keys = key_visibility(a, b);
  // The first query that sees key j0 under the causal rule; query tiles before its tile see no key here.
  // The last query sees every key, so there is always at least one tile.
  const int first_query = a.causal ? max(0, j0 - keys.causal_offset) : 0;
  const int first_tile = first_query / kTileQ;
  const int query_tiles = (a.len_q + kTileQ - 1) / kTileQ - first_tile;
  const bool dropout = a.dropout_p > 0.0f;
  const float keep_scale = 1.0f / (1.0f - a.dropout_p);
  const float scale_log2 = a.scale * kLog2e;

  // Tile n of this block's walk goes into buffer n % 2, with its rows' lse log2(e) and delta (lse = -inf past
  // Lq).
  auto load_query_tile = [&](int n) {
    const int i0 = (first_tile + n) * kTileQ, buffer = n % 2, valid = min(kTileQ, a.len_q - i0);
    load_tile_async<kTileQ, D>(q_tiles + buffer * QTile::kElements, q + i0 * a.q_strides.row, a.q_strides.row, valid,
                               threadIdx.x, kThreads);
    load_tile_async<kTileQ, D>(do_tiles + buffer * QTile::kElements, dout + i0 * a.dout_strides.row, a.dout_strides.row,
                               valid, threadIdx.x, kThreads);
    if (threadIdx.x < kTileQ) {
      const int r = threadIdx.x;
      lse_rows[buffer * kTileQ + r] = r < valid ? lse[i0 + r] * kLog2e : -INFINITY;
      delta_rows[buffer * kTileQ + r] = r < valid ? head_delta[i0 + r] : 0.0f;
    }
  };

  const int valid_keys = min(kBlockK, a.len_k - j0);
  load_tile_async<kBlockK, D>(k_tile, k + j0 * a.k_strides.row, a.k_strides.row, valid_keys, threadIdx.x, kThreads);
  load_tile_async<kBlockK, D>(v_tile, v + j0 * a.v_strides.row, a.v_strides.row, valid_keys, threadIdx.x, kThreads);
  load_query_tile(0);
  cp_async_commit();

  // The warp's 16 keys' gradient rows, as 8-column accumulator tiles (rows g and g + 8).
  float dk[D / 8][4] = {}, dv[D / 8][4] = {};
  const uint64_t hidden = keys.hidden_keys(j0, lane);  // the block's keys are the same for every query tile

  for (int n_tile = 0; n_tile < query_tiles; ++n_tile) {
    // The buffer tile n + 1 goes into was last read in iteration n - 1, which ended with a barrier. The
    // group is committed even when empty, so one wait<1> always means "tile n has landed".
    if (n_tile + 1 < query_tiles) load_query_tile(n_tile + 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();

    const int buffer = n_tile % 2, i0 = (first_tile + n_tile) * kTileQ;
    const T* const q_tile = q_tiles + buffer * QTile::kElements;
    const T* const do_tile = do_tiles + buffer * QTile::kElements;
    const float* const tile_lse = lse_rows + buffer * kTileQ;
    const float* const tile_delta = delta_rows + buffer * kTileQ;

    // S^T = K Q^T and dP^T = V dO^T for the warp's 16 keys and the tile's queries.
    float s[kTileQ / 8][4] = {}, dp[kTileQ / 8][4] = {};
    accumulate_product_transposed<T, D, kTileQ>(s, k_tile, KVTile::kStride, warp_key0, q_tile, QTile::kStride, lane);
    accumulate_product_transposed<T, D, kTileQ>(dp, v_tile, KVTile::kStride, warp_key0, do_tile, QTile::kStride, lane);

    // Pd^T into s, dS^T into dp. Element e of tile n is key g + (e / 2) * 8, query column n * 8 + 2t + e % 2.
    // The 16 keys of a query column are held by the 8 lanes with this t, 2 each: one DropoutRun.
    const bool needs_mask = keys.tile_needs_mask(i0, j0, kBlockK);
#pragma unroll
    for (int n = 0; n < kTileQ / 8; ++n)
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int column = n * 8 + 2 * t + c, i = i0 + column;
        const float row_lse = tile_lse[column], row_delta = tile_delta[column];
        float factor[2] = {1.0f, 1.0f};
        if (dropout) {
          const DropoutRun run(a.dropout_key, a.dropout_p, (bh * a.len_q + i) * a.len_k + j0 + warp_key0, g, t, 4);
#pragma unroll
          for (int r = 0; r < 2; ++r) factor[r] = run.keep(g + r * 8) ? keep_scale : 0.0f;
        }
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const int e = 2 * r + c, j = j0 + warp_key0 + g + r * 8;
          const ScoreGradient sg = score_gradient(s[n][e], dp[n][e], scale_log2, row_lse, row_delta,
                                                  !needs_mask || keys.visible(i, j, j0, hidden), factor[r]);
          s[n][e] = sg.p_dropped;
          dp[n][e] = sg.ds;
        }
      }

    // dV += Pd^T dO and dK += dS^T Q, Pd^T and dS^T straight from the registers.
    accumulate_product_from_registers<T, kTileQ, D>(dv, s, do_tile, QTile::kStride, lane);
    accumulate_product_from_registers<T, kTileQ, D>(dk, dp, q_tile, QTile::kStride, lane);

    if constexpr (kAccumulateDq) {
      // dQ of the tile's queries sums over all 64 keys, which four warps hold: dS^T goes through shared
      // memory. The previous tile's readers of ds_tile finished before the barrier at the top.
#pragma unroll
      for (int n = 0; n < kTileQ / 8; ++n)
#pragma unroll
        for (int r = 0; r < 2; ++r)
          *reinterpret_cast<uint32_t*>(ds_tile + (warp_key0 + g + r * 8) * DsTile::kStride + n * 8 + 2 * t) =
              pack_pair<T>(dp[n][2 * r], dp[n][2 * r + 1]);
      __syncthreads();

      // Warp w computes rows [16 rb, 16 rb + 16) of the tile's dQ, columns [cg D / groups, ...).
      constexpr int kRowBlocks = kTileQ / kWarpRows, kColumnGroups = kWarps / kRowBlocks;
      constexpr int kColumns = D / kColumnGroups;
      const int rb = warp % kRowBlocks, column0 = warp / kRowBlocks * kColumns;
      uint32_t dsa[kBlockK / 16][4];  // dS rows of the block, all 64 keys
#pragma unroll
      for (int kk = 0; kk < kBlockK / 16; ++kk)
        load_a_fragment_transposed(dsa[kk], ds_tile, DsTile::kStride, rb * kWarpRows, kk * 16, lane);
      float* const dq_rows = dq_accum + (bh * a.len_q + i0 + rb * kWarpRows) * D;
#pragma unroll
      for (int n0 = column0; n0 < column0 + kColumns; n0 += 16) {
        float acc[2][4] = {};
#pragma unroll
        for (int kk = 0; kk < kBlockK / 16; ++kk) {
          uint32_t kb[4];
          load_b_fragments_transposed(kb, k_tile, KVTile::kStride, kk * 16, n0, lane);
          mma_m16n8k16<T>(acc[0], dsa[kk], kb, acc[0]);
          mma_m16n8k16<T>(acc[1], dsa[kk], kb + 2, acc[1]);
        }
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const int row = g + r * 8;
          if (i0 + rb * kWarpRows + row < a.len_q)
#pragma unroll
            for (int half = 0; half < 2; ++half) {
              float* const to = dq_rows + row * D + n0 + half * 8 + 2 * t;
              atomicAdd(to, acc[half][2 * r]);
              atomicAdd(to + 1, acc[half][2 * r + 1]);
            }
        }
      }
    }
    __syncthreads();  // every warp is done with this buffer (and dS^T) before the next iteration refills it
  }

  // The loop's last barrier came after every copy had landed and every warp had read K and V for the last
  // time: each warp now writes its own 16 rows of results over them.
  T* const dk_rows = k_tile + warp_key0 * KVTile::kStride;
  T* const dv_rows = v_tile + warp_key0 * KVTile::kStride;
#pragma unroll
  for (int n = 0; n < D / 8; ++n)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int offset = (g + r * 8) * KVTile::kStride + n * 8 + 2 * t;
      *reinterpret_cast<uint32_t*>(dk_rows + offset) = pack_pair<T>(dk[n][2 * r] * a.scale, dk[n][2 * r + 1] * a.scale);
      *reinterpret_cast<uint32_t*>(dv_rows + offset) = pack_pair<T>(dv[n][2 * r], dv[n][2 * r + 1]);
    }
  __syncwarp();
  const int key0 = j0 + warp_key0;
  T* const dk_out = head_rows(static_cast<T*>(a.dk), a.dk_strides, b, h) + key0 * a.dk_strides.row;
  T* const dv_out = head_rows(static_cast<T*>(a.dv), a.dv_strides, b, h) + key0 * a.dv_strides.row;
  store_tile<kWarpRows, D>(dk_out, a.dk_strides.row, dk_rows, a.len_k - key0, lane, kWarpSize);
  store_tile<kWarpRows, D>(dv_out, a.dv_strides.row, dv_rows, a.len_k - key0, lane, kWarpSize);
}

// Default mode, last step: dQ = scale * the fp32 accumulator, in the output dtype and strides; one thread
// per 8-element piece (two 16-byte loads, one 16-byte store).
template <typename T, int D>
__global__ void __launch_bounds__(kThreads)
    attention_backward_dq_convert_kernel(AttentionArgs a, const float* dq_accum) {
  constexpr int kPiecesPerRow = D / kPieceElements;
  const int64_t piece = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (piece >= static_cast<int64_t>(a.batch) * a.heads * a.len_q * kPiecesPerRow) return;
  const int64_t row = piece / kPiecesPerRow;
  const int col = static_cast<int>(piece % kPiecesPerRow) * kPieceElements;
  const int i = static_cast<int>(row % a.len_q), bh = static_cast<int>(row / a.len_q);
  const float4* from = reinterpret_cast<const float4*>(dq_accum + row * D + col);
  const float4 lo = from[0], hi = from[1];
  uint4 packed;
  packed.x = pack_pair<T>(lo.x * a.scale, lo.y * a.scale);
  packed.y = pack_pair<T>(lo.z * a.scale, lo.w * a.scale);
  packed.z = pack_pair<T>(hi.x * a.scale, hi.y * a.scale);
  packed.w = pack_pair<T>(hi.z * a.scale, hi.w * a.scale);
  T* const dq = head_rows(static_cast<T*>(a.dq), a.dq_strides, bh / a.heads, bh % a.heads) + i * a.dq_strides.row + col;
  *reinterpret_cast<uint4*>(dq) = packed;
}

// Deterministic mode: dQ of one 64-query tile, each warp owning 16 query rows, the key tiles streamed.
template <typename T, int D>
__global__ void __launch_bounds__(kThreads) attention_backward_dq_kernel(AttentionArgs a, const float* delta) {
  using QTile = SmemTile<kBlockQ, D>;
  using KVTile = SmemTile<kBlockK, D>;
  T* const q_tile = dynamic_shared_memory<T>();
  T* const do_tile = q_tile + QTile::kElements;
  T* const k_tiles = do_tile + QTile::kElements;       // two buffers
  T* const v_tiles = k_tiles + 2 * KVTile::kElements;  // two buffers

  const int b = blockIdx.z, h = blockIdx.y, i0 = blockIdx.x * kBlockQ;
  const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  const int g = lane / 4, t = lane % 4;
  const int warp_row0 = warp * kWarpRows;
  const int rows_q = min(kBlockQ, a.len_q - i0);
  const int64_t bh = static_cast<int64_t>(b) * a.heads + h;

  const T* const q = head_rows(static_cast<const T*>(a.q), a.q_strides, b, h);
  const T* const k = head_rows(static_cast<const T*>(a.k), a.k_strides, b, h);
  const T* const v = head_rows(static_cast<const T*>(a.v), a.v_strides, b, h);
  const T* const dout = head_rows(static_cast<const T*>(a.dout), a.dout_strides, b, h);
  const KeyVisibility keys = key_visibility(a, b);
  // Keys [0, k_end) are visible to some query of the tile; under the causal rule the rest are skipped.
  const int k_end = a.causal ? max(0, min(a.len_k, i0 + rows_q + keys.causal_offset)) : a.len_k;
  const int key_tiles = (k_end + kBlockK - 1) / kBlockK;
  const bool dropout = a.dropout_p > 0.0f;
  const float keep_scale = 1.0f / (1.0f - a.dropout_p);
  const float scale_log2 = a.scale * kLog2e;

  auto load_key_tile = [&](int tile) {
    const int j0 = tile * kBlockK, buffer = tile % 2, valid = min(kBlockK, a.len_k - j0);
    load_tile_async<kBlockK, D>(k_tiles + buffer * KVTile::kElements, k + j0 * a.k_strides.row, a.k_strides.row, valid,
                                threadIdx.x, kThreads);
    load_tile_async<kBlockK, D>(v_tiles + buffer * KVTile::kElements, v + j0 * a.v_strides.row, a.v_strides.row, valid,
                                threadIdx.x, kThreads);
  };
  load_tile_async<kBlockQ, D>(q_tile, q + i0 * a.q_strides.row, a.q_strides.row, rows_q, threadIdx.x, kThreads);
  load_tile_async<kBlockQ, D>(do_tile, dout + i0 * a.dout_strides.row, a.dout_strides.row, rows_q, threadIdx.x,
                              kThreads);
  if (key_tiles > 0) load_key_tile(0);
  cp_async_commit();

  // lse log2(e) and delta of the lane's rows g and g + 8 (lse = -inf past Lq: those rows contribute nothing).
  float row_lse[2], row_delta[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int i = i0 + warp_row0 + g + r * 8;
    row_lse[r] = i < a.len_q ? a.lse[bh * a.len_q + i] * kLog2e : -INFINITY;
    row_delta[r] = i < a.len_q ? delta[bh * a.len_q + i] : 0.0f;
  }

  float dq[D / 8][4] = {};

  for (int tile = 0; tile < key_tiles; ++tile) {
    if (tile + 1 < key_tiles) load_key_tile(tile + 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();

    const int j0 = tile * kBlockK;
    const T* const k_tile = k_tiles + tile % 2 * KVTile::kElements;
    const T* const v_tile = v_tiles + tile % 2 * KVTile::kElements;

    // S = Q K^T and dP = dO V^T for the warp's 16 queries and the tile's 64 keys.
    float s[kBlockK / 8][4] = {}, dp[kBlockK / 8][4] = {};
    accumulate_product_transposed<T, D, kBlockK>(s, q_tile, QTile::kStride, warp_row0, k_tile, KVTile::kStride, lane);
    accumulate_product_transposed<T, D, kBlockK>(dp, do_tile, QTile::kStride, warp_row0, v_tile, KVTile::kStride, lane);

    // dS into dp. Element e of tile n is query g + (e / 2) * 8, key column n * 8 + 2t + e % 2. The 8 keys
    // of tile n in a query row are held by the 4 lanes with this g, 2 each: one DropoutRun.
    const bool needs_mask = keys.tile_needs_mask(i0, j0, kBlockK);
    const uint64_t hidden = needs_mask ? keys.hidden_keys(j0, lane) : 0;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int i = i0 + warp_row0 + g + r * 8;
#pragma unroll
      for (int n = 0; n < kBlockK / 8; ++n) {
        const int j = j0 + n * 8 + 2 * t;
        float factor[2] = {1.0f, 1.0f};
        if (dropout) {
          const DropoutRun run(a.dropout_key, a.dropout_p, (bh * a.len_q + i) * a.len_k + j0 + n * 8, t, 4 * g, 1);
#pragma unroll
          for (int c = 0; c < 2; ++c) factor[c] = run.keep(2 * t + c) ? keep_scale : 0.0f;
        }
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          const int e = 2 * r + c;
          dp[n][e] = score_gradient(s[n][e], dp[n][e], scale_log2, row_lse[r], row_delta[r],
                                    !needs_mask || keys.visible(i, j + c, j0, hidden), factor[c])
                         .ds;
        }
      }
    }

    // dQ += dS K, dS straight from the registers.
    accumulate_product_from_registers<T, kBlockK, D>(dq, dp, k_tile, KVTile::kStride, lane);
    __syncthreads();  // every warp is done with this buffer before the next iteration refills it
  }

  // The warp's own Q rows carry its dQ rows to 16-byte global stores (no other warp reads them now). With
  // no key tile, the Q copy, made by threads of every warp, may still be in flight: the wait and a barrier.
  cp_async_wait<0>();
  __syncthreads();
  T* const dq_rows = q_tile + warp_row0 * QTile::kStride;
#pragma unroll
  for (int n = 0; n < D / 8; ++n)
#pragma unroll
    for (int r = 0; r < 2; ++r)
      *reinterpret_cast<uint32_t*>(dq_rows + (g + r * 8) * QTile::kStride + n * 8 + 2 * t) =
          pack_pair<T>(dq[n][2 * r] * a.scale, dq[n][2 * r + 1] * a.scale);
  __syncwarp();
  T* const dq_out = head_rows(static_cast<T*>(a.dq), a.dq_strides, b, h) + (i0 + warp_row0) * a.dq_strides.row;
  store_tile<kWarpRows, D>(dq_out, a.dq_strides.row, dq_rows, rows_q - warp_row0, lane, kWarpSize);
}

}  // namespace HEED_BACKEND

// ----------------------------------------------------------------------------------------------------------

namespace {

// The workspace: delta ([B, H, Lq] fp32), then in the default mode the dQ accumulator ([B, H, Lq, D] fp32)
// at the next 256-byte boundary, so that its rows take 16-byte loads in any workspace aligned to 16.
struct Workspace {
  size_t delta_bytes, dq_accum_offset, bytes;
  explicit Workspace(const AttentionArgs& a) {
    const size_t rows = static_cast<size_t>(a.batch) * a.heads * a.len_q;
    delta_bytes = rows * sizeof(float);
    dq_accum_offset = (delta_bytes + 255) / 256 * 256;
    bytes = a.deterministic ? delta_bytes : dq_accum_offset + rows * a.head_dim * sizeof(float);
  }
};

unsigned blocks_for(int64_t work, int per_block) { return static_cast<unsigned>((work + per_block - 1) / per_block); }

template <typename T, int D>
void launch_backward(const AttentionArgs& a) {
  using HEED_BACKEND::SmemTile;
  const Workspace ws(a);
  float* const delta = static_cast<float*>(a.workspace);
  float* const dq_accum =
      a.deterministic ? nullptr : reinterpret_cast<float*>(static_cast<char*>(a.workspace) + ws.dq_accum_offset);
  const int64_t rows = static_cast<int64_t>(a.batch) * a.heads * a.len_q;

  HEED_BACKEND::launch(HEED_BACKEND::attention_backward_delta_kernel<T>, dim3(blocks_for(rows, kWarps)), dim3(kThreads),
                       0, a.stream, a, delta, dq_accum);

  constexpr int kTileQ = kDkdvTileQ<D>;
  const size_t dkdv_smem = (2 * SmemTile<kBlockK, D>::kElements + 4 * SmemTile<kTileQ, D>::kElements +
                            (a.deterministic ? 0 : SmemTile<kBlockK, kTileQ>::kElements)) *
                               sizeof(T) +
                           4 * kTileQ * sizeof(float);
  const dim3 dkdv_grid(blocks_for(a.len_k, kBlockK), a.heads, a.batch);
  if (a.deterministic) {
    HEED_BACKEND::launch(HEED_BACKEND::attention_backward_dkdv_kernel<T, D, false>, dkdv_grid, dim3(kThreads),
                         dkdv_smem, a.stream, a, delta, dq_accum);
    const size_t dq_smem = (2 * SmemTile<kBlockQ, D>::kElements + 4 * SmemTile<kBlockK, D>::kElements) * sizeof(T);
    HEED_BACKEND::launch(HEED_BACKEND::attention_backward_dq_kernel<T, D>,
                         dim3(blocks_for(a.len_q, kBlockQ), a.heads, a.batch), dim3(kThreads), dq_smem, a.stream, a,
                         delta);
  } else {
    HEED_BACKEND::launch(HEED_BACKEND::attention_backward_dkdv_kernel<T, D, true>, dkdv_grid, dim3(kThreads), dkdv_smem,
                         a.stream, a, delta, dq_accum);
    HEED_BACKEND::launch(HEED_BACKEND::attention_backward_dq_convert_kernel<T, D>,
                         dim3(blocks_for(rows * (D / HEED_BACKEND::kPieceElements), kThreads)), dim3(kThreads), 0,
                         a.stream, a, dq_accum);
  }
}

template <typename T>
void launch_backward_for_head_dim(const AttentionArgs& a) {
  switch (a.head_dim) {
    case 32:
      launch_backward<T, 32>(a);
      break;
    case 64:
      launch_backward<T, 64>(a);
      break;
    case 128:
      launch_backward<T, 128>(a);
      break;
    default:
      HEED_CHECK(false, "attention_backward: head_dim must be 32, 64 or 128, got {}", a.head_dim);
  }
}

}  // namespace

template <>
size_t attention_backward_workspace_bytes<kBackend>(const AttentionArgs& a) {
  return Workspace(a).bytes;
}

template <>
void attention_backward<kBackend>(const AttentionArgs& a) {
  HEED_BACKEND::check_common_args("attention_backward", a);
  HEED_BACKEND::check_rows_aligned("attention_backward", a.dout, a.dout_strides, "dout");
  HEED_BACKEND::check_rows_aligned("attention_backward", a.dq, a.dq_strides, "dq");
  HEED_BACKEND::check_rows_aligned("attention_backward", a.dk, a.dk_strides, "dk");
  HEED_BACKEND::check_rows_aligned("attention_backward", a.dv, a.dv_strides, "dv");
  HEED_CHECK(a.workspace != nullptr && reinterpret_cast<uintptr_t>(a.workspace) % 16 == 0,
             "attention_backward: the workspace must be {} bytes of 16-byte aligned device memory", Workspace(a).bytes);
  if (a.dtype == Half::FP16)
    launch_backward_for_head_dim<__half>(a);
  else
    launch_backward_for_head_dim<__nv_bfloat16>(a);
}

}  // namespace heed::kernels
