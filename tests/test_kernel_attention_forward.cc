// The FlashAttention-2 forward kernel (kernels/attention_forward.cu) against the CPU op, on the simulator
// and, when there is one, on the GPU.
//
// The reference is heed::ops::attention_forward in fp32 on the inputs rounded to the kernel's 16-bit type,
// so input rounding is not counted as error. The cases cover, without the full cross product (the
// simulator runs every CUDA thread as a fiber on 2 cores): every length 1, 7, 63, 64, 65, 127, 200 at head
// dim 64, for queries and keys, with Lq != Lk both ways (the causal diagonal then starts mid-tile, and with
// Lq > Lk the first queries see no key); head dims 32 and 128 at two shapes each; causal and not; padding
// masks, including a batch row whose every key is padding; dropout; bf16 and fp16. Q and the output are
// strided [B, L, H, D] storage seen as [B, H, L, D], K and V contiguous [B, H, L, D], so both stride
// patterns are exercised. Outputs start as NaN, so a row the kernel fails to write cannot pass.
//
// Tolerance, FlashAttention's rule: the kernel's largest error against the fp32 reference must be at most
// twice that of a plain 16-bit implementation of the same math, computed here: scores and softmax in fp32
// from the rounded inputs, P rounded to 16 bits before P V (as FA and the kernel feed P to the tensor
// cores), P V accumulated in fp32 and the output rounded to 16 bits. This plain version shares the two
// roundings every 16-bit attention makes and none of the kernel's structure (tiles, online rescaling,
// deferred normalisation), so 2x leaves room for the kernel rounding unnormalised P and for fp32
// summation order, while a wrong mask, a missed tile or a wrong rescale is off by far more.
// To that is added FlashAttention's floor, two fp32 ulps of the largest output: on tiny cases (Lk = 1,
// where P = 1 exactly) the plain error is 0 and so is the kernel's, up to fp32 noise. Measured on the
// simulator, the kernel's error was 0.57 to 0.98 of the plain one across the cases below.
//
// lse is fp32 in both, from the same rounded inputs: the differences are the order of the D <= 128
// products summed into each score (tensor cores may also truncate in accumulation: about D * 2^-24 *
// |score| at worst, 1e-5 here, far less on average) and a few ulps of __expf and logf. The tolerance, 5e-5
// plus 1e-5 relative, covers that; the simulator's worst error was 1e-6, while a wrong mask, tile or
// rescale moves lse by 1e-2 or more (a missing quad reduction of l alone, by log 4). Rows that see no key
// must have lse = -inf exactly and an output of exactly 0.
//
// The simulator runs blocks one after another, so it cannot show races between blocks; this kernel has
// none (each block writes its own rows), and races within a block are what its fibers do exercise.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "core/kernel_args.h"
#include "gradcheck.h"
#include "heed/ops/attention.h"
#include "heed/ops/dropout.h"
#include "kernel_testing.h"
#include "kernels/attention.h"

using namespace heed;
using heed::kernels::Backend;
using heed::kernels::Half;

namespace {

enum class Padding { None, Some, SomeAndFullRow };

struct Case {
  int64_t B, H, Lq, Lk, D;
  bool causal;
  Padding padding;
  float dropout_p;
  Half dtype;
};

std::string describe(const Case& c) {
  return fmt::format("B={} H={} Lq={} Lk={} D={} causal={} padding={} dropout={} {}", c.B, c.H, c.Lq, c.Lk, c.D,
                     c.causal, static_cast<int>(c.padding), c.dropout_p, c.dtype == Half::BF16 ? "bf16" : "fp16");
}

// Batch row b has its last 3 b keys padded and, in odd rows, every fifth key from key 2 on; with
// SomeAndFullRow the last batch row is all padding.
std::vector<uint8_t> padding_mask(const Case& c) {
  std::vector<uint8_t> m(c.B * c.Lk, 0);
  if (c.padding == Padding::None) return m;
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t j = 0; j < c.Lk; ++j)
      m[b * c.Lk + j] = (j >= c.Lk - 3 * b || (b % 2 == 1 && j % 5 == 2) ||
                         (c.padding == Padding::SomeAndFullRow && b == c.B - 1))
                            ? 1
                            : 0;
  return m;
}

// The values of a [B, H, L, D] view in row-major order.
std::vector<float> values(const Tensor& t) {
  const Tensor c = t.contiguous();
  return std::vector<float>(c.data<float>(), c.data<float>() + c.numel());
}

// Plain 16-bit attention (see the header comment): softmax in fp32 from the rounded inputs, P rounded to
// 16 bits, P V in fp32, the output rounded. Returns [B, H, Lq, D] in row-major order.
std::vector<float> plain_16bit_attention(const Case& c, const std::vector<float>& q, const std::vector<float>& k,
                                         const std::vector<float>& v, const std::vector<uint8_t>& padding,
                                         float scale, const RandomKey& key) {
  const int64_t B = c.B, H = c.H, Lq = c.Lq, Lk = c.Lk, D = c.D;
  std::vector<float> p(B * H * Lq * Lk, 0.0f);
  std::vector<float> s(Lk);
  for (int64_t bh = 0; bh < B * H; ++bh)
    for (int64_t i = 0; i < Lq; ++i) {
      const float* qi = &q[(bh * Lq + i) * D];
      float m = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < Lk; ++j) {
        const bool visible = padding[bh / H * Lk + j] == 0 && !(c.causal && j > i + Lk - Lq);
        float dot = 0.0f;
        for (int64_t d = 0; d < D; ++d) dot += qi[d] * k[(bh * Lk + j) * D + d];
        s[j] = visible ? dot * scale : -std::numeric_limits<float>::infinity();
        m = std::max(m, s[j]);
      }
      if (m == -std::numeric_limits<float>::infinity()) continue;  // sees no key: P = 0, output 0
      float sum = 0.0f;
      for (int64_t j = 0; j < Lk; ++j) sum += std::exp(s[j] - m);
      for (int64_t j = 0; j < Lk; ++j) p[(bh * Lq + i) * Lk + j] = std::exp(s[j] - m) / sum;
    }
  p = values(testing::round_to(Tensor::from_vector(p, {B * H * Lq * Lk}), c.dtype));

  std::vector<float> out(B * H * Lq * D, 0.0f);
  const float keep_scale = 1.0f / (1.0f - c.dropout_p);
  for (int64_t bh = 0; bh < B * H; ++bh)
    for (int64_t i = 0; i < Lq; ++i)
      for (int64_t j = 0; j < Lk; ++j) {
        const int64_t index = (bh * Lq + i) * Lk + j;
        float pj = p[index];
        if (c.dropout_p > 0.0f) pj = ops::dropout_keep(key, index, c.dropout_p) ? pj * keep_scale : 0.0f;
        for (int64_t d = 0; d < D; ++d) out[(bh * Lq + i) * D + d] += pj * v[(bh * Lk + j) * D + d];
      }
  return values(testing::round_to(Tensor::from_vector(out, {B * H * Lq * D}), c.dtype));
}

float max_abs_difference(const std::vector<float>& a, const std::vector<float>& b) {
  float worst = 0.0f;
  for (size_t n = 0; n < a.size(); ++n) {
    const float e = std::fabs(a[n] - b[n]);
    if (!(e <= worst)) worst = e;  // a NaN makes the error NaN, which fails every check
  }
  return worst;
}

kernels::AttentionStrides strides_of(const Tensor& t) { return {t.stride(0), t.stride(1), t.stride(2)}; }

void check_forward(Backend backend, const Case& c, uint32_t seed) {
  INFO(describe(c));
  const int64_t B = c.B, H = c.H, Lq = c.Lq, Lk = c.Lk, D = c.D;
  // A scale larger than 1/sqrt(D) makes the softmax peaked enough that the row max moves between key tiles.
  const float scale = 4.0f / std::sqrt(static_cast<float>(D));
  const RandomKey dropout_key{1234, 7, 3};

  // Inputs as the 16-bit kernel sees them: Q as [B, L, H, D] storage, K and V as [B, H, L, D].
  const Tensor q_blhd = testing::round_to(testing::random_tensor({B, Lq, H, D}, seed), c.dtype);
  const Tensor k = testing::round_to(testing::random_tensor({B, H, Lk, D}, seed + 1), c.dtype);
  const Tensor v = testing::round_to(testing::random_tensor({B, H, Lk, D}, seed + 2), c.dtype);
  const Tensor q = q_blhd.transpose(1, 2);
  const std::vector<uint8_t> padding = padding_mask(c);

  ops::AttentionOptions opt;
  opt.scale = scale;
  opt.causal = c.causal;
  if (c.padding != Padding::None) opt.key_padding = Tensor::from_vector(padding, {B, Lk});
  opt.dropout_p = c.dropout_p;
  opt.dropout_key = dropout_key;
  const ops::AttentionResult reference = ops::attention_forward(q, k, v, opt);
  const std::vector<float> out_ref = values(reference.out), lse_ref = values(reference.lse);
  const std::vector<float> out_plain =
      plain_16bit_attention(c, values(q), values(k), values(v), padding, scale, dropout_key);

  const DType dtype = testing::dtype_of(c.dtype);
  const Device device = testing::backend_device(backend);
  const Tensor q_dev = testing::to_backend(q_blhd, backend, dtype).transpose(1, 2);
  const Tensor k_dev = testing::to_backend(k, backend, dtype);
  const Tensor v_dev = testing::to_backend(v, backend, dtype);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const Tensor out_storage = testing::to_backend(Tensor::full({B, Lq, H, D}, nan), backend, dtype);
  const Tensor out_dev = out_storage.transpose(1, 2);
  const Tensor lse_dev = testing::to_backend(Tensor::full({B, H, Lq}, nan), backend, DType::F32);
  const Tensor padding_dev = opt.key_padding.defined() ? opt.key_padding.to(device) : Tensor();

  kernels::AttentionArgs args;
  args.dtype = c.dtype;
  args.batch = static_cast<int>(B);
  args.heads = static_cast<int>(H);
  args.len_q = static_cast<int>(Lq);
  args.len_k = static_cast<int>(Lk);
  args.head_dim = static_cast<int>(D);
  args.scale = scale;
  args.causal = c.causal;
  args.key_padding = padding_dev.defined() ? padding_dev.data<uint8_t>() : nullptr;
  args.dropout_p = c.dropout_p;
  args.dropout_key = dropout_key;
  args.q = q_dev.raw_data();
  args.k = k_dev.raw_data();
  args.v = v_dev.raw_data();
  args.q_strides = strides_of(q_dev);
  args.k_strides = strides_of(k_dev);
  args.v_strides = strides_of(v_dev);
  args.out = out_dev.raw_data();
  args.out_strides = strides_of(out_dev);
  args.lse = lse_dev.data<float>();
  HEED_RUN_KERNEL(device, attention_forward, args);

  const std::vector<float> out = values(testing::to_host_f32(out_storage).transpose(1, 2));
  const std::vector<float> lse = values(testing::to_host_f32(lse_dev));

  float largest = 0.0f;
  for (float x : out_ref) largest = std::max(largest, std::fabs(x));
  const float floor = 2.0f * std::numeric_limits<float>::epsilon() * largest;
  const float err = max_abs_difference(out, out_ref), err_plain = max_abs_difference(out_plain, out_ref);
  INFO("output error " << err << ", plain 16-bit error " << err_plain << ", floor " << floor);
  CHECK(err <= 2.0f * err_plain + floor);

  for (size_t r = 0; r < lse_ref.size(); ++r) {
    INFO("row " << r << ": lse " << lse[r] << ", reference " << lse_ref[r]);
    if (std::isinf(lse_ref[r])) {
      REQUIRE(lse[r] == lse_ref[r]);
      for (int64_t d = 0; d < D; ++d) REQUIRE(out[r * D + d] == 0.0f);
    } else {
      REQUIRE(std::fabs(lse[r] - lse_ref[r]) <= 5e-5f + 1e-5f * std::fabs(lse_ref[r]));
    }
  }
}

// Every length at D = 64, each of D = 32 and 128 at two shapes, each mask mode and dtype (see the header).
const std::vector<Case> kCases = {
    {1, 2, 1, 1, 64, false, Padding::None, 0.0f, Half::BF16},
    {1, 2, 7, 7, 64, true, Padding::None, 0.0f, Half::FP16},
    {3, 1, 63, 65, 64, false, Padding::SomeAndFullRow, 0.0f, Half::BF16},
    {1, 2, 64, 64, 64, true, Padding::None, 0.2f, Half::BF16},
    {2, 1, 65, 127, 64, true, Padding::Some, 0.0f, Half::FP16},
    {1, 1, 127, 63, 64, true, Padding::None, 0.0f, Half::BF16},
    {1, 1, 200, 200, 64, false, Padding::None, 0.1f, Half::FP16},
    {2, 1, 200, 7, 64, false, Padding::Some, 0.0f, Half::BF16},
    {3, 1, 1, 200, 64, true, Padding::SomeAndFullRow, 0.3f, Half::FP16},
    {1, 2, 65, 200, 32, false, Padding::Some, 0.0f, Half::FP16},
    {1, 1, 7, 63, 32, true, Padding::None, 0.2f, Half::BF16},
    {2, 1, 127, 65, 128, true, Padding::SomeAndFullRow, 0.1f, Half::BF16},
    {2, 1, 64, 1, 128, false, Padding::None, 0.0f, Half::FP16},
};

void check_all_cases(Backend backend) {
  uint32_t seed = 100;
  for (const Case& c : kCases) {
    check_forward(backend, c, seed);
    seed += 10;
  }
}

}  // namespace

TEST_CASE("attention forward kernel matches the CPU op on the simulator", "[kernel][attention]") {
  check_all_cases(Backend::Sim);
}

TEST_CASE("attention forward kernel matches the CPU op on the GPU", "[kernel][attention][gpu]") {
  if (!testing::gpu_or_skip()) return;
  check_all_cases(Backend::Gpu);
}
