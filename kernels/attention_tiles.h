// Device helpers shared by the FlashAttention-2 kernels (attention_forward.cu, attention_backward.cu):
// shared-memory tiles of 16-bit rows, their asynchronous loads and stores, the ldmatrix fragment loads
// that feed mma.m16n8k16, and the masking and dropout rules of heed/ops/attention.h.
//
// Tiles. A tile is Rows x D 16-bit elements, row-major in shared memory, with each row padded by 8
// elements (16 bytes). ldmatrix reads eight rows of 16 bytes at once; unpadded rows of 64, 128 or 256
// bytes would put all eight in the same banks (an 8-way conflict), while the padding shifts each row by 4
// banks so the eight land on distinct ones. Padding is simpler to read than an XOR swizzle and costs
// 1/9 to 1/5 of the tile (D = 64 to 32), which the kernels' shared-memory budgets absorb.
//
// Global memory is read and written in 16-byte pieces (8 elements): each row of D contiguous elements
// must start 16-byte aligned, which the host entry points check.
//
// Fragments follow common/ptx.h's layouts, with g = lane / 4 and t = lane % 4. A warp's 16 x 8 fp32
// accumulator tile holds row g in c[0], c[1] and row g + 8 in c[2], c[3], at columns 2t and 2t + 1.
#pragma once

#include <type_traits>

#include "attention.h"
#include "common/device.h"
#include "common/ptx.h"
#include "heed/core/error.h"
#include "heed/core/philox.h"

namespace heed::kernels::HEED_BACKEND {

// 16-byte pieces of a row: the unit of every global <-> shared copy.
constexpr int kPieceElements = 8;
constexpr int kTileRowPad = 8;

template <int Rows, int D>
struct SmemTile {
  static_assert(D % 16 == 0, "a tile row is a whole number of 16-element mma steps");
  static constexpr int kStride = D + kTileRowPad;  // elements from one row to the next
  static constexpr int kElements = Rows * kStride;
  static constexpr int kPiecesPerRow = D / kPieceElements;
  static constexpr int kPieces = Rows * kPiecesPerRow;
};

// Starts the copy of rows [0, valid_rows) of a Rows x D tile from global memory (row r at src + r *
// row_stride) into `tile`; rows past valid_rows are zero-filled, so masked keys and values stay finite.
// `worker` of `workers` threads share the copy. Commit and wait with cp_async_commit / cp_async_wait.
template <int Rows, int D, typename T>
__device__ __forceinline__ void load_tile_async(T* tile, const T* src, int64_t row_stride, int valid_rows,
                                                int worker, int workers) {
  using Tile = SmemTile<Rows, D>;
  for (int piece = worker; piece < Tile::kPieces; piece += workers) {
    const int row = piece / Tile::kPiecesPerRow, col = piece % Tile::kPiecesPerRow * kPieceElements;
    const bool valid = row < valid_rows;
    // A zero-filled piece reads nothing, but its address must still be a legal one: row 0's.
    const T* from = src + (valid ? row * row_stride : 0) + col;
    cp_async_16(tile + row * Tile::kStride + col, from, valid);
  }
}

// Writes rows [0, valid_rows) of a Rows x D tile to global memory (row r at dst + r * row_stride).
template <int Rows, int D, typename T>
__device__ __forceinline__ void store_tile(T* dst, int64_t row_stride, const T* tile, int valid_rows, int worker,
                                           int workers) {
  using Tile = SmemTile<Rows, D>;
  for (int piece = worker; piece < Tile::kPieces; piece += workers) {
    const int row = piece / Tile::kPiecesPerRow, col = piece % Tile::kPiecesPerRow * kPieceElements;
    if (row < valid_rows)
      *reinterpret_cast<uint4*>(dst + row * row_stride + col) =
          *reinterpret_cast<const uint4*>(tile + row * Tile::kStride + col);
  }
}

// The A fragment (16 x 16) of rows [row0, row0 + 16) and columns [k0, k0 + 16) of a row-major tile.
template <typename T>
__device__ __forceinline__ void load_a_fragment(uint32_t a[4], const T* tile, int stride, int row0, int k0,
                                                int lane) {
  // Lanes 0-15 address rows 0-15 at k0 (matrices 0, 1 = a[0], a[1]); lanes 16-31 the same rows at k0 + 8.
  ldmatrix_x4(a, tile + (row0 + (lane & 15)) * stride + k0 + (lane >> 4) * 8);
}

// The A fragment (16 x 16) of A = X^T, where X is a row-major tile: A's rows are X's columns
// [col0, col0 + 16) and A's k runs over X's rows [k0, k0 + 16) (e.g. P^T or dS^T in a backward pass).
template <typename T>
__device__ __forceinline__ void load_a_fragment_transposed(uint32_t a[4], const T* tile, int stride, int col0,
                                                           int k0, int lane) {
  // Matrix j = lane / 8 is A's block (rows (j & 1) * 8, k (j >> 1) * 8), stored at X's rows k, columns rows.
  const int j = lane >> 3;
  ldmatrix_x4_trans(a, tile + (k0 + (lane & 7) + (j >> 1) * 8) * stride + col0 + (j & 1) * 8);
}

// B fragments for two adjacent 8-column tiles of B = X^T, where X is a row-major tile whose rows are B's
// columns (e.g. K for S = Q K^T): b[0..1] for B's columns [n0, n0 + 8), b[2..3] for [n0 + 8, n0 + 16), with
// k in [k0, k0 + 16).
template <typename T>
__device__ __forceinline__ void load_b_fragments(uint32_t b[4], const T* tile, int stride, int n0, int k0,
                                                 int lane) {
  // Matrix j = lane / 8: X's rows n0 + (j >> 1) * 8 .., columns k0 + (j & 1) * 8 ..
  const int j = lane >> 3;
  ldmatrix_x4(b, tile + (n0 + (lane & 7) + (j >> 1) * 8) * stride + k0 + (j & 1) * 8);
}

// B fragments for two adjacent 8-column tiles of B = X itself, a row-major tile with k along its rows
// (e.g. V for O = P V): b[0..1] for columns [n0, n0 + 8), b[2..3] for [n0 + 8, n0 + 16), k in [k0, k0 + 16).
template <typename T>
__device__ __forceinline__ void load_b_fragments_transposed(uint32_t b[4], const T* tile, int stride, int k0,
                                                            int n0, int lane) {
  // Matrix j = lane / 8: X's rows k0 + (j & 1) * 8 .., columns n0 + (j >> 1) * 8 .., transposed on load.
  const int j = lane >> 3;
  ldmatrix_x4_trans(b, tile + (k0 + (lane & 7) + (j & 1) * 8) * stride + n0 + (j >> 1) * 8);
}

// d = a * b + c on tensor cores, for the 16-bit type T (__nv_bfloat16 or __half).
template <typename T>
__device__ __forceinline__ void mma_m16n8k16(float d[4], const uint32_t a[4], const uint32_t b[2],
                                             const float c[4]) {
  if constexpr (std::is_same_v<T, __half>)
    mma_m16n8k16_f16(d, a, b, c);
  else
    mma_m16n8k16_bf16(d, a, b, c);
}

// Two floats rounded to T and packed into one register, `lo` in the low half.
template <typename T>
__device__ __forceinline__ uint32_t pack_pair(float lo, float hi) {
  if constexpr (std::is_same_v<T, __half>) {
    const __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  } else {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  }
}

// The A fragment of the 16 x 16 block whose columns [0, 8) are the accumulator tile `left` and [8, 16)
// are `right`, rounded to T: how a product's result (P, dS) feeds the next product without shared memory.
template <typename T>
__device__ __forceinline__ void accumulators_to_a_fragment(uint32_t a[4], const float left[4],
                                                           const float right[4]) {
  a[0] = pack_pair<T>(left[0], left[1]);
  a[1] = pack_pair<T>(left[2], left[3]);
  a[2] = pack_pair<T>(right[0], right[1]);
  a[3] = pack_pair<T>(right[2], right[3]);
}

// Exponentials are taken base 2, with the softmax scale folded in: e^(x scale - c) = 2^(x scale log2(e) -
// c log2(e)), one FFMA and one ex2 (the MUFU instruction __expf itself multiplies into), as FlashAttention 2
// does. Scores stay unscaled until then, so the scale must be positive (the row max of raw scores is then
// the max of scaled ones); the entry points check it.
inline constexpr float kLog2e = 1.4426950408889634f;

// Which keys a query sees (heed/ops/attention.h): keys past the end, padding keys, and under the causal
// rule the keys j > i + len_k - len_q are hidden.
//
// The keys hidden from every query (past the end, padding) of a 64-key tile are one 64-bit word per warp,
// made once per tile: each lane reads the padding bytes of two keys (the warp's loads are two coalesced
// 32-byte pieces) and two ballots share them. The per-element test is then a shift and a compare, where a
// byte load per element would make each lane wait on 32 dependent global loads a tile.
struct KeyVisibility {
  int len_k;
  int causal_offset;       // len_k - len_q
  bool causal;
  const uint8_t* padding;  // this batch row's [len_k] mask, or null

  // Bit c: key j0 + c (c < 64) is past the end or padding. Every lane of the warp must call it.
  __device__ __forceinline__ uint64_t hidden_keys(int j0, int lane) const {
    const int low = j0 + lane, high = j0 + 32 + lane;
    const bool hide_low = low >= len_k || (padding != nullptr && padding[low] != 0);
    const bool hide_high = high >= len_k || (padding != nullptr && padding[high] != 0);
    return static_cast<uint64_t>(__ballot_sync(0xffffffffu, hide_low)) |
           static_cast<uint64_t>(__ballot_sync(0xffffffffu, hide_high)) << 32;
  }
  // Whether query i sees key j of the tile starting at j0, whose hidden_keys are `hidden`.
  __device__ __forceinline__ bool visible(int i, int j, int j0, uint64_t hidden) const {
    return !((hidden >> (j - j0)) & 1u) && !(causal && j > i + causal_offset);
  }
  // Whether any key of [j0, j0 + cols) is hidden from any query of [i0, i0 + rows): tiles for which this
  // is false skip the per-element test.
  __device__ __forceinline__ bool tile_needs_mask(int i0, int j0, int cols) const {
    return j0 + cols > len_k || (causal && j0 + cols - 1 > i0 + causal_offset) || padding != nullptr;
  }
};

// u[r] for a run-time r, by selects: indexing a register array with a run-time value would move it to
// local memory on the GPU.
__device__ __forceinline__ float pick_of_four(const float u[4], int r) {
  return r == 0 ? u[0] : r == 1 ? u[1] : r == 2 ? u[2] : u[3];
}

// Dropout keep decisions for the attention probabilities at flat indices `index` and `index + 1` (element
// (b, h, i, j) is ((b * H + h) * Lq + i) * Lk + j), exactly as heed::ops::dropout_keep draws them: one
// Philox call when both fall in the same group of four, two when the pair straddles groups.
__device__ __forceinline__ void dropout_keep_pair(const RandomKey& key, uint64_t index, float p, bool keep[2]) {
  float u[4];
  philox_uniform4(key, index / 4, u);
  const int r = static_cast<int>(index % 4);
  keep[0] = pick_of_four(u, r) >= p;
  if (r < 3) {
    keep[1] = pick_of_four(u, r + 1) >= p;
  } else {
    philox_uniform4(key, index / 4 + 1, u);
    keep[1] = u[0] >= p;
  }
}

// Host side: rows are copied in 16-byte pieces, so each row of a 16-bit tensor must start on a 16-byte
// boundary. `op` names the entry point in the message.
inline void check_rows_aligned(const char* op, const void* p, const AttentionStrides& s, const char* what) {
  HEED_CHECK(p != nullptr, "{}: {} is null", op, what);
  HEED_CHECK(reinterpret_cast<uintptr_t>(p) % 16 == 0 && s.batch % 8 == 0 && s.head % 8 == 0 && s.row % 8 == 0,
             "{}: {} rows must start 16-byte aligned (pointer {}, strides {} {} {} must be multiples of 8 elements)",
             op, what, p, s.batch, s.head, s.row);
}

// Host side: the checks both entry points make of the arguments they share (sizes, dropout, and q, k, v
// and out, whose rows are copied in 16-byte pieces). `op` names the entry point in the messages.
inline void check_common_args(const char* op, const AttentionArgs& a) {
  HEED_CHECK(a.batch > 0 && a.heads > 0 && a.len_q > 0 && a.len_k > 0, "{}: empty problem B={} H={} Lq={} Lk={}", op,
             a.batch, a.heads, a.len_q, a.len_k);
  HEED_CHECK(a.dropout_p >= 0.0f && a.dropout_p < 1.0f, "{}: dropout_p must be in [0, 1), got {}", op, a.dropout_p);
  HEED_CHECK(a.scale > 0.0f, "{}: the scale must be positive (the kernels take row maxima before scaling), got {}",
             op, a.scale);
  check_rows_aligned(op, a.q, a.q_strides, "q");
  check_rows_aligned(op, a.k, a.k_strides, "k");
  check_rows_aligned(op, a.v, a.v_strides, "v");
  check_rows_aligned(op, a.out, a.out_strides, "out");
  HEED_CHECK(a.lse != nullptr, "{}: lse is null", op);
}


}  // namespace heed::kernels::HEED_BACKEND
