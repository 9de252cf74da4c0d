// FlashAttention-2 forward: O = softmax(Q K^T * scale + mask) V and the row logsumexp, for bf16 or fp16
// Q, K, V with fp32 accumulation, never materialising the Lq x Lk score matrix.
//
// Tiling. One block of 4 warps per (64-query tile, head, batch). The block's Q tile is copied to shared
// memory once; 64-key tiles of K and V then stream through two shared-memory buffers with cp.async, the
// copy of tile t + 1 in flight while tile t is computed, so global latency hides behind tensor-core work.
// Keys and queries past the sequence ends are zero-filled by the copy itself (a 0-byte cp.async), which
// keeps every value finite without a separate clearing pass.
//
// Each warp owns 16 query rows, FA2-style: it computes its 16 x 64 score tile S = Q K^T with
// mma.m16n8k16 (Q fragments by ldmatrix, K fragments by ldmatrix of K's rows, which are K^T's columns),
// masks it, and updates its rows' online softmax entirely in registers: a row lives in the 4
// lanes of a quad, so the row max and sum need two quad shuffles and no shared memory or cross-warp
// reduction. The probabilities P = e^(S - m) are rounded to 16 bits straight from the accumulator
// registers into A fragments (the C layout of two 8-column tiles is the A layout of one 16-column block),
// and O += P V runs on tensor cores with V's fragments loaded by ldmatrix.trans. When the row max grows,
// the O accumulator and the running sum are rescaled by e^(m_old - m_new). Per thread that is D / 2 fp32
// accumulators of O, 32 of S and the fragments in flight: 95, 124 and 156 registers at D = 32, 64 and 128
// on sm_80 (94, 123, 159 on sm_90), under the 255 that 128-thread blocks allow, with no spills.
//
// The running sum stays per-lane (each lane sums its own columns) and is reduced across the quad once at
// the end. O / l goes back through the warp's own Q rows in shared memory (no other warp reads them) so
// that global stores are whole 16-byte pieces; lse = m scale + log l is written per row for the backward
// pass. Exponentials are 2^(s scale log2(e) - m scale log2(e)), one FFMA and ex2 (attention_tiles.h).
//
// Masks. The causal rule (query i sees keys j <= i + Lk - Lq) bounds the keys a tile can see, so key tiles
// beyond the last query's limit are never loaded or computed. Only tiles that straddle the causal diagonal,
// the end of the keys, or have a padding mask pay for the per-element test, a bit test of the tile's
// hidden keys (KeyVisibility::hidden_keys: two byte loads a lane, not one per element). A row that sees no key keeps
// m = -inf; exponentials are then taken against 0, so its P is 0, l stays 0, and it writes 0 and lse = -inf.
//
// Dropout. Each probability is kept or zeroed by the Philox draw of its flat index, exactly as the CPU op
// draws it, so both produce the same mask bit for bit; l sums the undropped probabilities (as the CPU op
// does), and the 1 / (1 - p) of the kept ones is folded into the final 1 / l.
//
// Shared memory: a Q tile and two K and two V tiles of 64 x (D + 8) elements: 25, 45 and 85 KiB at D = 32,
// 64 and 128, requested dynamically (launch() opts in beyond 48 KiB).
#include <cmath>

#include "attention.h"
#include "attention_tiles.h"
#include "common/launch.h"

namespace heed::kernels {

namespace {

constexpr int kWarps = 4;
constexpr int kWarpSize = 32;
constexpr int kThreads = kWarps * kWarpSize;
constexpr int kWarpRows = 16;                // query rows per warp: one mma row block
constexpr int kBlockQ = kWarps * kWarpRows;  // query rows per block
constexpr int kBlockK = 64;                  // keys per streamed tile
constexpr unsigned kFullMask = 0xffffffffu;

}  // namespace

namespace HEED_BACKEND {

template <typename T, int D>
__global__ void __launch_bounds__(kThreads) attention_forward_kernel(AttentionArgs a) {
  using QTile = SmemTile<kBlockQ, D>;
  using KVTile = SmemTile<kBlockK, D>;
  T* const q_tile = dynamic_shared_memory<T>();  // 16-byte aligned, as cp.async and ldmatrix need
  T* const k_tiles = q_tile + QTile::kElements;        // two buffers
  T* const v_tiles = k_tiles + 2 * KVTile::kElements;  // two buffers

  const int b = blockIdx.z, h = blockIdx.y, i0 = blockIdx.x * kBlockQ;
  const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  const int g = lane / 4, t = lane % 4;  // fragment row and column pair (common/ptx.h)
  const int warp_row0 = warp * kWarpRows;
  const int rows_q = min(kBlockQ, a.len_q - i0);

  const T* const q = static_cast<const T*>(a.q) + b * a.q_strides.batch + h * a.q_strides.head;
  const T* const k = static_cast<const T*>(a.k) + b * a.k_strides.batch + h * a.k_strides.head;
  const T* const v = static_cast<const T*>(a.v) + b * a.v_strides.batch + h * a.v_strides.head;
  const KeyVisibility keys{a.len_k, a.len_k - a.len_q, a.causal,
                           a.key_padding != nullptr ? a.key_padding + static_cast<int64_t>(b) * a.len_k : nullptr};
  // Keys [0, k_end) are visible to some query of the tile; under the causal rule the rest are skipped.
  const int k_end = a.causal ? max(0, min(a.len_k, i0 + rows_q + keys.causal_offset)) : a.len_k;
  const int key_tiles = (k_end + kBlockK - 1) / kBlockK;

  auto load_key_tile = [&](int tile) {
    const int j0 = tile * kBlockK, buffer = tile % 2, valid = min(kBlockK, a.len_k - j0);
    load_tile_async<kBlockK, D>(k_tiles + buffer * KVTile::kElements, k + j0 * a.k_strides.row, a.k_strides.row,
                                valid, threadIdx.x, kThreads);
    load_tile_async<kBlockK, D>(v_tiles + buffer * KVTile::kElements, v + j0 * a.v_strides.row, a.v_strides.row,
                                valid, threadIdx.x, kThreads);
  };

  load_tile_async<kBlockQ, D>(q_tile, q + i0 * a.q_strides.row, a.q_strides.row, rows_q, threadIdx.x, kThreads);
  if (key_tiles > 0) load_key_tile(0);
  cp_async_commit();

  // Rows g and g + 8 of the warp's 16: running max (of unscaled scores), this lane's part of the running
  // sum, and the unnormalised output, as 8-column accumulator tiles.
  const float scale_log2 = a.scale * kLog2e;
  float m[2] = {-INFINITY, -INFINITY};
  float l[2] = {0.0f, 0.0f};
  float o[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[n][e] = 0.0f;

  for (int tile = 0; tile < key_tiles; ++tile) {
    // The buffer tile + 1 goes into was last read in iteration tile - 1, which ended with a barrier. The
    // group is committed even when empty, so one wait<1> always means "tile `tile` has landed".
    if (tile + 1 < key_tiles) load_key_tile(tile + 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();

    const int j0 = tile * kBlockK;
    const T* const k_tile = k_tiles + tile % 2 * KVTile::kElements;
    const T* const v_tile = v_tiles + tile % 2 * KVTile::kElements;

    float s[kBlockK / 8][4];
#pragma unroll
    for (int n = 0; n < kBlockK / 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[n][e] = 0.0f;
#pragma unroll
    for (int k0 = 0; k0 < D; k0 += 16) {
      uint32_t qa[4];
      load_a_fragment(qa, q_tile, QTile::kStride, warp_row0, k0, lane);
#pragma unroll
      for (int n0 = 0; n0 < kBlockK; n0 += 16) {
        uint32_t kb[4];
        load_b_fragments(kb, k_tile, KVTile::kStride, n0, k0, lane);
        mma_m16n8k16<T>(s[n0 / 8], qa, kb, s[n0 / 8]);
        mma_m16n8k16<T>(s[n0 / 8 + 1], qa, kb + 2, s[n0 / 8 + 1]);
      }
    }

    // Scale, mask, and the new row max over the quad.
    const bool needs_mask = keys.tile_needs_mask(i0, j0, kBlockK);
    const uint64_t hidden = needs_mask ? keys.hidden_keys(j0, lane) : 0;
    float m_new[2] = {m[0], m[1]};
#pragma unroll
    for (int n = 0; n < kBlockK / 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int i = i0 + warp_row0 + g + (e / 2) * 8, j = j0 + n * 8 + 2 * t + e % 2;
        if (needs_mask && !keys.visible(i, j, j0, hidden)) s[n][e] = -INFINITY;
        m_new[e / 2] = fmaxf(m_new[e / 2], s[n][e]);
      }
    float base[2], alpha[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      m_new[r] = fmaxf(m_new[r], __shfl_xor_sync(kFullMask, m_new[r], 1));
      m_new[r] = fmaxf(m_new[r], __shfl_xor_sync(kFullMask, m_new[r], 2));
      base[r] = m_new[r] == -INFINITY ? 0.0f : m_new[r] * scale_log2;  // a row that has seen no key keeps P = 0
      alpha[r] = exp2f(fmaf(m[r], scale_log2, -base[r]));              // 0 while m was -inf
      m[r] = m_new[r];
      l[r] *= alpha[r];
    }
#pragma unroll
    for (int n = 0; n < kBlockK / 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[n][e] = exp2f(fmaf(s[n][e], scale_log2, -base[e / 2]));
        l[e / 2] += s[n][e];
      }
#pragma unroll
    for (int n = 0; n < D / 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) o[n][e] *= alpha[e / 2];

    if (a.dropout_p > 0.0f) {
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int i = i0 + warp_row0 + g + r * 8;
        const uint64_t row_index =
            ((static_cast<uint64_t>(b) * a.heads + h) * a.len_q + i) * a.len_k + j0 + 2 * t;
#pragma unroll
        for (int n = 0; n < kBlockK / 8; ++n) {
          bool keep[2];
          dropout_keep_pair(a.dropout_key, row_index + n * 8, a.dropout_p, keep);
          if (!keep[0]) s[n][2 * r] = 0.0f;
          if (!keep[1]) s[n][2 * r + 1] = 0.0f;
        }
      }
    }

    // O += P V, with P rounded to 16 bits as the A operand.
#pragma unroll
    for (int kk = 0; kk < kBlockK / 16; ++kk) {
      uint32_t pa[4];
      accumulators_to_a_fragment<T>(pa, s[2 * kk], s[2 * kk + 1]);
#pragma unroll
      for (int n0 = 0; n0 < D; n0 += 16) {
        uint32_t vb[4];
        load_b_fragments_transposed(vb, v_tile, KVTile::kStride, kk * 16, n0, lane);
        mma_m16n8k16<T>(o[n0 / 8], pa, vb, o[n0 / 8]);
        mma_m16n8k16<T>(o[n0 / 8 + 1], pa, vb + 2, o[n0 / 8 + 1]);
      }
    }
    __syncthreads();  // every warp is done with this buffer before the next iteration refills it
  }

  // With no key tile at all, the Q copy may still be in flight; it must land before the rows are reused.
  // The rows a warp reuses were copied by threads of every warp, hence a barrier, not only the wait.
  cp_async_wait<0>();
  __syncthreads();  // no schedule can show its loss, only ThreadSanitizer (tests/barrier_mutations.py)

  const float keep_scale = 1.0f / (1.0f - a.dropout_p);
  float inv_l[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(kFullMask, l[r], 1);
    l[r] += __shfl_xor_sync(kFullMask, l[r], 2);
    inv_l[r] = l[r] > 0.0f ? keep_scale / l[r] : 0.0f;
  }
  T* const o_rows = q_tile + warp_row0 * QTile::kStride;
#pragma unroll
  for (int n = 0; n < D / 8; ++n)
#pragma unroll
    for (int r = 0; r < 2; ++r)
      *reinterpret_cast<uint32_t*>(o_rows + (g + r * 8) * QTile::kStride + n * 8 + 2 * t) =
          pack_pair<T>(o[n][2 * r] * inv_l[r], o[n][2 * r + 1] * inv_l[r]);
  __syncwarp();

  T* const out = static_cast<T*>(a.out) + b * a.out_strides.batch + h * a.out_strides.head;
  store_tile<kWarpRows, D>(out + (i0 + warp_row0) * a.out_strides.row, a.out_strides.row, o_rows,
                           rows_q - warp_row0, lane, kWarpSize);
  if (t == 0)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int i = i0 + warp_row0 + g + r * 8;
      if (i < a.len_q)
        a.lse[(static_cast<int64_t>(b) * a.heads + h) * a.len_q + i] =
            l[r] > 0.0f ? m[r] * a.scale + logf(l[r]) : -INFINITY;
    }
}

}  // namespace HEED_BACKEND

namespace {

template <typename T, int D>
void launch_forward(const AttentionArgs& a) {
  using HEED_BACKEND::SmemTile;
  const size_t smem_bytes =
      (SmemTile<kBlockQ, D>::kElements + 4 * SmemTile<kBlockK, D>::kElements) * sizeof(T);
  const dim3 grid((a.len_q + kBlockQ - 1) / kBlockQ, a.heads, a.batch);
  HEED_BACKEND::launch(HEED_BACKEND::attention_forward_kernel<T, D>, grid, dim3(kThreads), smem_bytes, a.stream,
                       a);
}

template <typename T>
void launch_forward_for_head_dim(const AttentionArgs& a) {
  switch (a.head_dim) {
    case 32: launch_forward<T, 32>(a); break;
    case 64: launch_forward<T, 64>(a); break;
    case 128: launch_forward<T, 128>(a); break;
    default: HEED_CHECK(false, "attention_forward: head_dim must be 32, 64 or 128, got {}", a.head_dim);
  }
}

}  // namespace

template <>
void attention_forward<kBackend>(const AttentionArgs& a) {
  HEED_BACKEND::check_common_args("attention_forward", a);
  if (a.dtype == Half::FP16)
    launch_forward_for_head_dim<__half>(a);
  else
    launch_forward_for_head_dim<__nv_bfloat16>(a);
}

}  // namespace heed::kernels
