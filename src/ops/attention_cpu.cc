// Fused attention on the CPU: FlashAttention-2's tiling, with fp32 register-blocked tile products.
//
// Forward. One task is a tile of kBq queries of one (batch, head); tasks are spread over threads. The task
// transposes its Q tile once and streams tiles of kBk keys: S^T = K Q^T (keys are rows and queries are
// vector lanes, so K is read in place and the transposed Q is reused by every key tile), the mask, the
// online softmax (running max m and sum l of each query, updated lane-wise with no horizontal reductions;
// the accumulator is rescaled by e^(m_old - m_new) when the max grows), dropout on P, and O += P V with P^T
// and V read in place. The result O / l is written once, and lse = m + log l is kept for the backward
// pass. Only tiles live: per thread a [D, kBq] Q^T, a [kBk, kBq] score tile and a [kBq, D] accumulator
// (48 KiB at D = 64), never an Lq x Lk matrix.
//
// Backward. One task is one (batch, head), so every gradient row is written by a single thread in a fixed
// order: no atomics, no reduction buffers, and the same bits on every run and for every thread count. For
// each key tile (transposed once; its dK and dV rows stay in cache) the task walks the query tiles that
// can see it, recomputes P = e^(S - lse) from the saved lse, and forms dV += Pd^T dO, dP = dO V^T,
// dS = P (dP - Drow) with Drow = rowsum(dO O), dQ += dS K and dK += dS^T Q (the scale folded into dS).
// Dropout factors are drawn again from Philox, so the mask is never stored. The price of one task per
// head is that B * H must reach the thread count for the backward pass to use every core; training
// batches have B * H in the hundreds.
//
// The tile products (64 x 64 x D) go through block_product: a block of C (8 x 64 with AVX-512, 6 x 16 with
// AVX2; kBlockRows) stays in vector registers while the inner dimension streams, B rows are loaded as
// vectors and A is read by broadcast with arbitrary strides, which lets the transposed products (P^T V,
// Pd^T dO, dS^T Q) read their tile in place. On one core of a 2-core AMD EPYC (Zen 4) that reached 100
// GFLOP/s on 64-sized products where OpenBLAS's sgemm reaches 78 (its packing does not pay off at this
// size), and it costs no call overhead at L = 32.
// The transposes that the products need go through 16 x 16 register shuffles.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "heed/ops/dropout.h"
#include "ops/attention_backends.h"
#include "ops/cpu_math.h"

namespace heed::ops::cpu {

namespace {

constexpr int kBq = 64;     // queries per tile
constexpr int kBk = 64;     // keys per tile
constexpr int kLanes = 16;  // floats per AVX-512 vector; score rows are padded to a multiple of it
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

int round_lanes(int64_t n) { return static_cast<int>((n + kLanes - 1) / kLanes * kLanes); }

// C[MR, W] (+)= A[MR, k] B[k, W] for a width W = 16 NV known at compile time (or `width` < 16 when NV is 0),
// with C in registers. A(r, p) is a[r * a_rs + p * a_cs]; B and C rows have unit stride.
template <int MR, int NV>
void block_product(int k, const float* a, int64_t a_rs, int64_t a_cs, const float* b, int64_t ldb, float* c,
                   int64_t ldc, bool accumulate, int width = NV * kLanes) {
  constexpr int W = NV > 0 ? NV * kLanes : kLanes;
  const int w = NV > 0 ? W : width;
  float acc[MR][W];
  for (int r = 0; r < MR; ++r)
#pragma omp simd
    for (int j = 0; j < W; ++j) acc[r][j] = accumulate && j < w ? c[r * ldc + j] : 0.0f;
  for (int p = 0; p < k; ++p) {
    const float* bp = b + p * ldb;
    for (int r = 0; r < MR; ++r) {
      const float ar = a[r * a_rs + p * a_cs];
      if constexpr (NV > 0) {
#pragma omp simd
        for (int j = 0; j < W; ++j) acc[r][j] += ar * bp[j];
      } else {
        for (int j = 0; j < w; ++j) acc[r][j] += ar * bp[j];
      }
    }
  }
  for (int r = 0; r < MR; ++r)
#pragma omp simd
    for (int j = 0; j < w; ++j) c[r * ldc + j] = acc[r][j];
}

// The register block of tile_product: kBlockRows rows of C, kBlockVectors * kLanes columns wide. It must fit
// the vector registers next to a row of B and a broadcast of A, or the accumulators spill to the stack on
// every step of the inner dimension. AVX-512 has 32 registers of 16 floats: 8 x 64 keeps 32 accumulators
// (a few spilled to L1), which measured faster than 4 or 6 rows on one core of a 2-core AMD EPYC (Zen 4):
// 103 against 77 and 97 GFLOP/s. AVX2 has 16 of 8 floats, where 8 x 64 needs 64: 6 x 16 keeps 12. On a
// 2-core Zen 3, bench_attention ran 70-85 GFLOP/s at L = 512 with 6 x 16 (forward / backward, three runs),
// against 39-47 with 8 x 64 and 62-72 with 8 x 16, and 40-68 against 26-38 at the training step's L = 32.
#ifdef __AVX512F__
constexpr int kBlockRows = 8, kBlockVectors = 4;
#else
constexpr int kBlockRows = 6, kBlockVectors = 1;
#endif

// Columns [0, n) of a block of MR rows: register blocks of kBlockVectors vectors, then one of fewer, then
// the rest.
template <int MR>
void row_block_product(int n, int k, const float* a, int64_t a_rs, int64_t a_cs, const float* b, int64_t ldb,
                       float* c, int64_t ldc, bool accumulate) {
  constexpr int kBlockWidth = kBlockVectors * kLanes;
  int j = 0;
  for (; j + kBlockWidth <= n; j += kBlockWidth)
    block_product<MR, kBlockVectors>(k, a, a_rs, a_cs, b + j, ldb, c + j, ldc, accumulate);
  if constexpr (kBlockVectors > 1) {
    switch ((n - j) / kLanes) {
      case 3: block_product<MR, 3>(k, a, a_rs, a_cs, b + j, ldb, c + j, ldc, accumulate); break;
      case 2: block_product<MR, 2>(k, a, a_rs, a_cs, b + j, ldb, c + j, ldc, accumulate); break;
      case 1: block_product<MR, 1>(k, a, a_rs, a_cs, b + j, ldb, c + j, ldc, accumulate); break;
      default: break;
    }
    j += (n - j) / kLanes * kLanes;
  }
  if (j < n) block_product<MR, 0>(k, a, a_rs, a_cs, b + j, ldb, c + j, ldc, accumulate, n - j);
}

// C[m, n] (+)= A[m, k] B[k, n]; strides as in block_product. Blocks of kBlockRows rows, then 4, 2 and 1 for
// the remainder.
void tile_product(int m, int n, int k, const float* a, int64_t a_rs, int64_t a_cs, const float* b, int64_t ldb,
                  float* c, int64_t ldc, bool accumulate) {
  const auto rows = [&](auto block_rows, int i) {
    row_block_product<block_rows()>(n, k, a + i * a_rs, a_rs, a_cs, b, ldb, c + i * ldc, ldc, accumulate);
  };
  int i = 0;
  for (; i + kBlockRows <= m; i += kBlockRows) rows(std::integral_constant<int, kBlockRows>(), i);
  if (m - i >= 4) {
    rows(std::integral_constant<int, 4>(), i);
    i += 4;
  }
  if (m - i >= 2) {
    rows(std::integral_constant<int, 2>(), i);
    i += 2;
  }
  if (m - i >= 1) rows(std::integral_constant<int, 1>(), i);
}

// The rows of one (batch, head) of a [B, H, L, D] view: row i starts at p + i * row_stride.
template <typename T>
struct HeadRows {
  T* p;
  int64_t row_stride;
  T* row(int64_t i) const { return p + i * row_stride; }
};

template <typename T>
HeadRows<T> head_rows(const Tensor& t, int64_t b, int64_t h) {
  T* base = t.data<float>();
  return {base + b * t.stride(0) + h * t.stride(1), t.stride(2)};
}

struct Problem {
  int64_t B, H, Lq, Lk, D;
  float scale;
  bool causal;
  const uint8_t* padding;  // [B, Lk] or null
  float dropout_p;
  float keep_scale;  // 1 / (1 - p)
  RandomKey key;

  explicit Problem(const Tensor& q, const Tensor& k, const AttentionOptions& opt)
      : B(q.size(0)), H(q.size(1)), Lq(q.size(2)), Lk(k.size(2)), D(q.size(3)), scale(opt.scale),
        causal(opt.causal), padding(opt.key_padding.defined() ? opt.key_padding.data<uint8_t>() : nullptr),
        dropout_p(opt.dropout_p), keep_scale(1.0f / (1.0f - opt.dropout_p)), key(opt.dropout_key) {}

  // Number of keys of the tile at j0 that query i may see: a prefix, by the causal rule j <= i + Lk - Lq.
  int visible(int64_t i, int64_t j0, int nk) const {
    return causal ? static_cast<int>(std::clamp<int64_t>(i + Lk - Lq - j0 + 1, 0, nk)) : nk;
  }

  // bias[j] = 0 for a key of the tile that is not padding, -inf for padding and for the lanes past nk.
  // Returns whether any key of the tile is visible.
  bool key_bias(int64_t b, int64_t j0, int nk, float* bias) const {
    const int nkp = round_lanes(nk);
    bool any = false;
    for (int j = 0; j < nkp; ++j) {
      const bool masked = j >= nk || (padding != nullptr && padding[b * Lk + j0 + j] != 0);
      bias[j] = masked ? kNegInf : 0.0f;
      any |= !masked;
    }
    return any;
  }

  // f[j] = keep_scale or 0: the dropout factors of elements (b, h, i, j0 .. j0 + n) of the probabilities,
  // one Philox call per group of four as dropout_keep() defines them. u holds n + 8 floats.
  void dropout_factors(int64_t b, int64_t h, int64_t i, int64_t j0, int n, float* f, float* u) const {
    const uint64_t base = static_cast<uint64_t>(((b * H + h) * Lq + i) * Lk + j0);
    const uint64_t g0 = base / 4;
    const int groups = static_cast<int>((base + n + 3) / 4 - g0);
#pragma omp simd
    for (int g = 0; g < groups; ++g) philox_uniform4(key, g0 + g, u + 4 * g);
    const float* uj = u + (base - 4 * g0);
    const float p = dropout_p, kept = keep_scale;
#pragma omp simd
    for (int j = 0; j < n; ++j) f[j] = uj[j] >= p ? kept : 0.0f;
  }
};

// Consecutive pieces of one thread's scratch, each aligned to a cache line. With a null base it only
// counts, so the allocation is sized by the very code that carves it.
class Carver {
 public:
  explicit Carver(float* base) : base_(base) {}
  float* take(int64_t n) {
    float* piece = base_ != nullptr ? base_ + used_ : nullptr;
    used_ += round_lanes(n);
    return piece;
  }
  int64_t used() const { return used_; }

 private:
  float* base_;
  int64_t used_ = 0;
};

// One scratch block per thread, from the caching allocator: a training step reuses the same memory,
// and the memory statistics count it.
template <typename Buffers>
class Scratch {
 public:
  Scratch(int threads, int64_t D, int64_t Lq) : D_(D), Lq_(Lq) {
    Carver counter(nullptr);
    (void)Buffers(counter, D, Lq);
    per_thread_ = counter.used();
    buffer_ = Tensor::empty({threads * per_thread_});
  }
  Buffers thread(int t) const {
    Carver carver(buffer_.data<float>() + t * per_thread_);
    return Buffers(carver, D_, Lq_);
  }

 private:
  int64_t D_, Lq_, per_thread_ = 0;
  Tensor buffer_;
};

struct ForwardBuffers {
  float* qt;     // Q^T of the query tile, [D, kBq]
  float* st;     // S^T, then P^T, [kBk, kBq]
  float* acc;    // unnormalised output rows, [kBq, D]
  float* m;      // running max of each query
  float* l;      // running sum of each query
  float* m_new;  // the max after this key tile
  float* sum;    // the sum of this key tile
  float* bias;   // key padding of the tile as 0 / -inf
  float* f;      // dropout factors of one query
  float* u;      // Philox uniforms of one query
  ForwardBuffers(Carver& c, int64_t D, int64_t)
      : qt(c.take(D * kBq)), st(c.take(kBk * kBq)), acc(c.take(kBq * D)), m(c.take(kBq)), l(c.take(kBq)),
        m_new(c.take(kBq)), sum(c.take(kBq)), bias(c.take(kBk)), f(c.take(kBk)), u(c.take(kBk + 8)) {}
};

struct BackwardBuffers {
  float* kt;    // K^T of the key tile, [D, kBk]
  float* vt;    // V^T of the key tile, [D, kBk]
  float* s;     // scores, then dropped probabilities Pd, [kBq, kBk]
  float* dp;    // dP, then dS times the scale, [kBq, kBk]
  float* drow;  // rowsum(dO o O) of the head, [Lq]
  float* bias;
  float* f;
  float* u;
  BackwardBuffers(Carver& c, int64_t D, int64_t Lq)
      : kt(c.take(D * kBk)), vt(c.take(D * kBk)), s(c.take(kBq * kBk)), dp(c.take(kBq * kBk)), drow(c.take(Lq)),
        bias(c.take(kBk)), f(c.take(kBk)), u(c.take(kBk + 8)) {}
};

// 16 floats, as GCC's vector extension: the transpose below is written in whole-vector shuffles, which no
// loop form gets out of the auto-vectoriser (it gathers, or inserts one float at a time).
using Vec16 = float __attribute__((vector_size(64)));

// Transposes 16 x 16 floats held as rows x[0..16) in place. Stage b exchanges bit b of the row index with
// bit b of the column index between rows j and j + b, so after the four stages element (j, d) sits at
// (d, j).
void transpose16(Vec16 x[16]) {
  for (int j = 0; j < 16; ++j) {
    if ((j & 1) != 0) continue;
    const Vec16 a = x[j], c = x[j + 1];
    x[j] = __builtin_shufflevector(a, c, 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30);
    x[j + 1] = __builtin_shufflevector(a, c, 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
  }
  for (int j = 0; j < 16; ++j) {
    if ((j & 2) != 0) continue;
    const Vec16 a = x[j], c = x[j + 2];
    x[j] = __builtin_shufflevector(a, c, 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29);
    x[j + 2] = __builtin_shufflevector(a, c, 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
  }
  for (int j = 0; j < 16; ++j) {
    if ((j & 4) != 0) continue;
    const Vec16 a = x[j], c = x[j + 4];
    x[j] = __builtin_shufflevector(a, c, 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27);
    x[j + 4] = __builtin_shufflevector(a, c, 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
  }
  for (int j = 0; j < 8; ++j) {
    const Vec16 a = x[j], c = x[j + 8];
    x[j] = __builtin_shufflevector(a, c, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
    x[j + 8] = __builtin_shufflevector(a, c, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  }
}

// Rows j0 .. j0 + n of a head, transposed into t[D, round_lanes(n)], zero past n so padded lanes stay
// finite. 16 x 16 blocks go through registers (2.6 times faster than a scalar copy at 32 x 64); the
// columns past the last multiple of 16 are copied one by one.
void transpose_tile(const HeadRows<const float>& rows, int64_t j0, int n, int64_t D, float* t) {
  const int np = round_lanes(n);
  const int64_t D16 = D / kLanes * kLanes;
  for (int jb = 0; jb < np; jb += kLanes) {
    for (int64_t d0 = 0; d0 < D16; d0 += kLanes) {
      Vec16 x[kLanes];
      for (int j = 0; j < kLanes; ++j) {
        x[j] = Vec16{};
        if (jb + j < n) std::memcpy(&x[j], rows.row(j0 + jb + j) + d0, sizeof(Vec16));
      }
      transpose16(x);
      for (int d = 0; d < kLanes; ++d) std::memcpy(t + (d0 + d) * np + jb, &x[d], sizeof(Vec16));
    }
  }
  for (int64_t d = D16; d < D; ++d)
    for (int j = 0; j < np; ++j) t[d * np + j] = j < n ? rows.row(j0 + j)[d] : 0.0f;
}

// Zeroes rows [0, n): the gradient rows that no product reaches (off the hot path, since products write
// the rows they reach first rather than accumulate into cleared memory).
void zero_rows(const HeadRows<float>& rows, int64_t n, int64_t D) {
  for (int64_t i = 0; i < n; ++i) std::fill(rows.row(i), rows.row(i) + D, 0.0f);
}

int threads_for(int64_t tasks, double flops) {
  constexpr double kParallelMinFlops = 1 << 18;  // below this, waking threads costs more than the work
  if (flops < kParallelMinFlops) return 1;
  return static_cast<int>(std::min<int64_t>(omp_get_max_threads(), tasks));
}

}  // namespace

AttentionResult attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& opt) {
  const Problem pr(q, k, opt);
  const int64_t B = pr.B, H = pr.H, Lq = pr.Lq, Lk = pr.Lk, D = pr.D;
  AttentionResult res{Tensor::empty({B, Lq, H, D}).transpose(1, 2), Tensor::empty({B, H, Lq})};
  float* lse = res.lse.data<float>();

  const int64_t q_tiles = (Lq + kBq - 1) / kBq, tasks = B * H * q_tiles;
  const int threads = threads_for(tasks, 4.0 * B * H * Lq * Lk * D);
  const Scratch<ForwardBuffers> scratch(threads, D, Lq);

#pragma omp parallel num_threads(threads)
  {
    // Plain locals, not structured bindings: GCC does not vectorise loops through the latter's pointers.
    const ForwardBuffers buf = scratch.thread(omp_get_thread_num());
    float *const qt = buf.qt, *const st = buf.st, *const acc = buf.acc, *const m = buf.m, *const l = buf.l,
                 *const m_new = buf.m_new, *const sum = buf.sum, *const bias = buf.bias, *const f = buf.f,
                 *const u = buf.u;

#pragma omp for schedule(dynamic)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t bh = task / q_tiles, b = bh / H, h = bh % H, i0 = task % q_tiles * kBq;
      const int mq = static_cast<int>(std::min<int64_t>(kBq, Lq - i0)), mqp = round_lanes(mq);
      const HeadRows<const float> qr = head_rows<const float>(q, b, h), kr = head_rows<const float>(k, b, h),
                                  vr = head_rows<const float>(v, b, h);
      // Keys past the causal limit of the tile's last query are never seen.
      const int64_t k_end = pr.causal ? std::clamp<int64_t>(i0 + mq + Lk - Lq, 0, Lk) : Lk;
      transpose_tile(qr, i0, mq, D, qt);
#pragma omp simd
      for (int r = 0; r < mqp; ++r) {
        m[r] = kNegInf;
        l[r] = 0.0f;
      }
      bool first = true;  // the first product writes acc, so it is never cleared

      for (int64_t j0 = 0; j0 < k_end; j0 += kBk) {
        const int nk = static_cast<int>(std::min<int64_t>(kBk, k_end - j0));
        if (!pr.key_bias(b, j0, nk, bias)) continue;
        tile_product(nk, mqp, static_cast<int>(D), kr.row(j0), kr.row_stride, 1, qt, mqp, st, mqp, false);

        // Mask and scale; the tile's max of each query (lanes are queries, so no horizontal reductions).
        const float scale = pr.scale;
#pragma omp simd
        for (int r = 0; r < mqp; ++r) m_new[r] = m[r];
        for (int j = 0; j < nk; ++j) {
          float* sj = st + j * mqp;
          // Key j0 + j is visible to the queries from i0 + r_min on.
          const int r_min = pr.causal ? static_cast<int>(std::clamp<int64_t>(j0 + j - (Lk - Lq) - i0, 0, mqp)) : 0;
          const float bj = bias[j];
#pragma omp simd
          for (int r = 0; r < mqp; ++r) {
            const float x = r >= r_min ? sj[r] * scale + bj : kNegInf;
            sj[r] = x;
            m_new[r] = x > m_new[r] ? x : m_new[r];
          }
        }
        // P = e^(S - m_new), 0 for a query that has seen no key yet (m_new = -inf).
#pragma omp simd
        for (int r = 0; r < mqp; ++r) sum[r] = 0.0f;
        for (int j = 0; j < nk; ++j) {
          float* sj = st + j * mqp;
#pragma omp simd
          for (int r = 0; r < mqp; ++r) {
            const float e = m_new[r] == kNegInf ? 0.0f : exp_approx(sj[r] - m_new[r]);
            sj[r] = e;
            sum[r] += e;
          }
        }
        for (int r = 0; r < mq; ++r) {
          const float alpha = m_new[r] == kNegInf ? 1.0f : exp_approx(m[r] - m_new[r]);  // 0 when m was -inf
          l[r] = l[r] * alpha + sum[r];
          m[r] = m_new[r];
          if (!first && alpha != 1.0f) {
            float* ar = acc + r * D;
#pragma omp simd
            for (int64_t d = 0; d < D; ++d) ar[d] *= alpha;
          }
          if (pr.dropout_p > 0.0f) {  // l stays the sum of the undropped probabilities
            pr.dropout_factors(b, h, i0 + r, j0, nk, f, u);
            for (int j = 0; j < nk; ++j) st[j * mqp + r] *= f[j];
          }
        }
        tile_product(mq, static_cast<int>(D), nk, st, 1, mqp, vr.row(j0), vr.row_stride, acc, D, !first);
        first = false;
      }

      const HeadRows<float> out = head_rows<float>(res.out, b, h);
      for (int r = 0; r < mq; ++r) {
        float* o = out.row(i0 + r);
        if (l[r] == 0.0f) {  // saw no key (acc may never have been written)
          for (int64_t d = 0; d < D; ++d) o[d] = 0.0f;
          lse[bh * Lq + i0 + r] = kNegInf;
          continue;
        }
        const float inv = 1.0f / l[r];
        const float* ar = acc + r * D;
#pragma omp simd
        for (int64_t d = 0; d < D; ++d) o[d] = ar[d] * inv;
        lse[bh * Lq + i0 + r] = m[r] + std::log(l[r]);
      }
    }
  }
  return res;
}

void attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                        const AttentionResult& fwd, const AttentionOptions& opt, const AttentionGrads& g) {
  const Problem pr(q, k, opt);
  const int64_t B = pr.B, H = pr.H, Lq = pr.Lq, Lk = pr.Lk, D = pr.D;
  const float* lse_all = fwd.lse.data<float>();

  const int64_t tasks = B * H;
  const int threads = threads_for(tasks, 8.0 * B * H * Lq * Lk * D);
  const Scratch<BackwardBuffers> scratch(threads, D, Lq);

#pragma omp parallel num_threads(threads)
  {
    const BackwardBuffers buf = scratch.thread(omp_get_thread_num());
    float *const kt = buf.kt, *const vt = buf.vt, *const s = buf.s, *const dp = buf.dp, *const drow = buf.drow,
                 *const bias = buf.bias, *const f = buf.f, *const u = buf.u;
    if (pr.dropout_p == 0.0f) std::fill(f, f + kBk, 1.0f);

#pragma omp for schedule(dynamic)
    for (int64_t bh = 0; bh < tasks; ++bh) {
      const int64_t b = bh / H, h = bh % H;
      const HeadRows<const float> qr = head_rows<const float>(q, b, h), kr = head_rows<const float>(k, b, h),
                                  vr = head_rows<const float>(v, b, h), dor = head_rows<const float>(dout, b, h),
                                  outr = head_rows<const float>(fwd.out, b, h);
      const HeadRows<float> dq = head_rows<float>(g.dq, b, h), dk = head_rows<float>(g.dk, b, h),
                            dv = head_rows<float>(g.dv, b, h);
      const float* lse = lse_all + bh * Lq;
      for (int64_t i = 0; i < Lq; ++i) {
        const float* o = outr.row(i);
        const float* dy = dor.row(i);
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (int64_t d = 0; d < D; ++d) dot += dy[d] * o[d];
        drow[i] = dot;
      }

      // Gradient rows are written by their first product and accumulated by the later ones, so they are
      // never cleared; rows that no product reaches are zeroed explicitly. The first query a key tile
      // visits only moves forward with the key tile, so the first key tile processed writes every dQ row
      // that any later one accumulates into.
      int64_t dq_written_from = Lq;
      for (int64_t j0 = 0; j0 < Lk; j0 += kBk) {
        const int nk = static_cast<int>(std::min<int64_t>(kBk, Lk - j0)), nkp = round_lanes(nk);
        // The first query that sees key j0 under the causal rule.
        const int64_t i_start = pr.causal ? std::clamp<int64_t>(j0 - (Lk - Lq), 0, Lq) : 0;
        if (!pr.key_bias(b, j0, nk, bias) || i_start >= Lq) {  // no query sees these keys
          zero_rows({dk.row(j0), dk.row_stride}, nk, D);
          zero_rows({dv.row(j0), dv.row_stride}, nk, D);
          continue;
        }
        const bool dq_accumulate = dq_written_from < Lq;
        if (!dq_accumulate) dq_written_from = i_start;
        transpose_tile(kr, j0, nk, D, kt);
        transpose_tile(vr, j0, nk, D, vt);
        for (int64_t i0 = i_start; i0 < Lq; i0 += kBq) {
          const int mq = static_cast<int>(std::min<int64_t>(kBq, Lq - i0));
          tile_product(mq, nkp, static_cast<int>(D), qr.row(i0), qr.row_stride, 1, kt, nkp, s, nkp, false);
          tile_product(mq, nkp, static_cast<int>(D), dor.row(i0), dor.row_stride, 1, vt, nkp, dp, nkp, false);
          for (int r = 0; r < mq; ++r) {
            float* sr = s + r * nkp;
            float* dpr = dp + r * nkp;
            const float lse_i = lse[i0 + r];
            if (lse_i == kNegInf) {  // the row saw no key: P = 0, so nothing flows back
              std::fill(sr, sr + nkp, 0.0f);
              std::fill(dpr, dpr + nkp, 0.0f);
              continue;
            }
            if (pr.dropout_p > 0.0f) pr.dropout_factors(b, h, i0 + r, j0, nk, f, u);
            const int lim = pr.visible(i0 + r, j0, nk);
            const float scale = pr.scale, d_i = drow[i0 + r];
#pragma omp simd
            for (int j = 0; j < nkp; ++j) {
              const float x = j < lim ? sr[j] * scale + bias[j] : kNegInf;
              const float pj = exp_approx(x - lse_i);
              const float fj = j < nk ? f[j] : 0.0f;
              sr[j] = pj * fj;
              dpr[j] = pj * (dpr[j] * fj - d_i) * scale;
            }
          }
          const bool dkv_accumulate = i0 > i_start;
          tile_product(nk, static_cast<int>(D), mq, s, 1, nkp, dor.row(i0), dor.row_stride, dv.row(j0),
                       dv.row_stride, dkv_accumulate);
          tile_product(mq, static_cast<int>(D), nk, dp, nkp, 1, kr.row(j0), kr.row_stride, dq.row(i0),
                       dq.row_stride, dq_accumulate);
          tile_product(nk, static_cast<int>(D), mq, dp, 1, nkp, qr.row(i0), qr.row_stride, dk.row(j0),
                       dk.row_stride, dkv_accumulate);
        }
      }
      zero_rows(dq, dq_written_from, D);
    }
  }
}

// Plain loops: the caller asks for a few rows (one decoding step's queries of one layer), not for speed.
Tensor attention_probabilities(const Tensor& q, const Tensor& k, const Tensor& lse, const AttentionOptions& opt) {
  const int64_t B = q.size(0), H = q.size(1), Lq = q.size(2), Lk = k.size(2), D = q.size(3);
  Tensor p = Tensor::empty({B, H, Lq, Lk});
  float* out = p.data<float>();
  const float* q_data = q.data<float>();
  const float* k_data = k.data<float>();
  const float* lse_data = lse.data<float>();
  const uint8_t* padding = opt.key_padding.defined() ? opt.key_padding.data<uint8_t>() : nullptr;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < Lq; ++i) {
        const float* qi = q_data + b * q.stride(0) + h * q.stride(1) + i * q.stride(2);
        const float row_lse = lse_data[(b * H + h) * Lq + i];
        float* row = out + ((b * H + h) * Lq + i) * Lk;
        for (int64_t j = 0; j < Lk; ++j) {
          const bool masked = (padding && padding[b * Lk + j]) || (opt.causal && j > i + Lk - Lq);
          if (masked || row_lse == kNegInf) {
            row[j] = 0.0f;
            continue;
          }
          const float* kj = k_data + b * k.stride(0) + h * k.stride(1) + j * k.stride(2);
          float dot = 0.0f;
          for (int64_t d = 0; d < D; ++d) dot += qi[d] * kj[d];
          row[j] = std::exp(dot * opt.scale - row_lse);
        }
      }
  return p;
}

}  // namespace heed::ops::cpu
