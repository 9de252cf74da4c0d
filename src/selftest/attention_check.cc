// The attention checks of selftest/attention_check.h: inputs from Philox, the CPU op as the reference
// and the plain 16-bit implementations that set the bounds, the kernels launched on their raw arguments.
#include "selftest/attention_check.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/kernel_args.h"
#include "heed/core/half.h"
#include "heed/ops/attention.h"
#include "heed/ops/dropout.h"
#include "kernels/attention.h"
#include "selftest/case_text.h"

namespace heed::selftest {

namespace {

using kernels::AttentionStrides;
using kernels::Half;

constexpr float kInf = std::numeric_limits<float>::infinity();

std::vector<uint8_t> padding_mask(const AttentionCase& c) {
  std::vector<uint8_t> m(static_cast<size_t>(c.batch) * c.len_k, 0);
  if (c.padding == KeyPadding::None) return m;
  for (int b = 0; b < c.batch; ++b)
    for (int j = 0; j < c.len_k; ++j)
      m[b * c.len_k + j] = j >= c.len_k - 3 * b || (b % 2 == 1 && j % 5 == 2) ||
                           (c.padding == KeyPadding::SomeAndFullRow && b == c.batch - 1);
  return m;
}

bool visible(const AttentionCase& c, const std::vector<uint8_t>& padding, int b, int i, int j) {
  return padding[b * c.len_k + j] == 0 && !(c.causal && j > i + c.len_k - c.len_q);
}

float dropout_factor(const AttentionCase& c, const RandomKey& key, uint64_t index) {
  if (c.dropout == 0.0f) return 1.0f;
  return ops::dropout_keep(key, index, c.dropout) ? 1.0f / (1.0f - c.dropout) : 0.0f;
}

float round16(float x, Half dtype) {
  return dtype == Half::BF16 ? bf16_bits_to_float(float_to_bf16_bits(x)) : fp16_bits_to_float(float_to_fp16_bits(x));
}

// A [B, H, L, D] tensor in the backend's memory and the 16-bit type, stored as [B, L, H, D] (the heads of a
// projection) or contiguously.
struct Heads {
  Tensor storage;
  AttentionStrides strides{};
  bool row_major = false;

  Heads(const Tensor& x, kernels::Backend backend, Half dtype, bool row_major_) : row_major(row_major_) {
    const int64_t H = x.size(1), L = x.size(2), D = x.size(3);
    storage = (row_major ? x.transpose(1, 2) : x).to(dtype_of(dtype)).contiguous().to(backend_device(backend));
    strides = row_major ? AttentionStrides{L * H * D, D, H * D} : AttentionStrides{H * L * D, L * D, D};
  }
  // NaN everywhere: the kernel must write every element.
  static Heads output(const Shape& shape, kernels::Backend backend, Half dtype, bool row_major) {
    return Heads(Tensor::full(shape, std::numeric_limits<float>::quiet_NaN()), backend, dtype, row_major);
  }
  std::vector<float> values() const {
    const Tensor f = storage.to(Device::cpu()).to(DType::F32);
    return host_values(row_major ? f.transpose(1, 2) : f);
  }
  std::vector<uint8_t> bytes() const {
    const Tensor host = storage.to(Device::cpu());
    const auto* p = static_cast<const uint8_t*>(host.raw_data());
    return std::vector<uint8_t>(p, p + host.nbytes());
  }
};

struct Inputs {
  Tensor q, k, v, dout;  // fp32 [B, H, L, D], rounded to the 16-bit type
  ops::AttentionOptions opt;
  std::vector<uint8_t> padding;
};

Inputs make_inputs(const AttentionCase& c, uint64_t seed, float scale) {
  Inputs in;
  in.q = round_to(random_uniform({c.batch, c.heads, c.len_q, c.head_dim}, seed, 0), c.dtype);
  in.k = round_to(random_uniform({c.batch, c.heads, c.len_k, c.head_dim}, seed, 1), c.dtype);
  in.v = round_to(random_uniform({c.batch, c.heads, c.len_k, c.head_dim}, seed, 2), c.dtype);
  in.dout = round_to(random_uniform({c.batch, c.heads, c.len_q, c.head_dim}, seed, 3), c.dtype);
  in.padding = padding_mask(c);
  in.opt.scale = scale;
  in.opt.causal = c.causal;
  if (c.padding != KeyPadding::None) in.opt.key_padding = Tensor::from_vector(in.padding, {c.batch, c.len_k});
  in.opt.dropout_p = c.dropout;
  in.opt.dropout_key = RandomKey{seed, 7, 3};
  return in;
}

kernels::AttentionArgs kernel_args(const AttentionCase& c, const Inputs& in, const Tensor& padding_on_device) {
  kernels::AttentionArgs a;
  a.dtype = c.dtype;
  a.batch = c.batch;
  a.heads = c.heads;
  a.len_q = c.len_q;
  a.len_k = c.len_k;
  a.head_dim = c.head_dim;
  a.scale = in.opt.scale;
  a.causal = c.causal;
  a.key_padding = padding_on_device.defined() ? padding_on_device.data<uint8_t>() : nullptr;
  a.dropout_p = c.dropout;
  a.dropout_key = in.opt.dropout_key;
  return a;
}

// Plain 16-bit forward (see the header): softmax in fp32 from the rounded inputs, P rounded, P V in fp32,
// the output rounded. [B, H, Lq, D] row-major.
std::vector<float> plain_forward(const AttentionCase& c, const Inputs& in) {
  const std::vector<float> q = host_values(in.q), k = host_values(in.k), v = host_values(in.v);
  const int Lq = c.len_q, Lk = c.len_k, D = c.head_dim;
  std::vector<float> out(q.size(), 0.0f), s(Lk);
  for (int bh = 0; bh < c.batch * c.heads; ++bh)
    for (int i = 0; i < Lq; ++i) {
      float m = -kInf;
      for (int j = 0; j < Lk; ++j) {
        float dot = 0.0f;
        for (int d = 0; d < D; ++d) dot += q[(int64_t(bh) * Lq + i) * D + d] * k[(int64_t(bh) * Lk + j) * D + d];
        s[j] = visible(c, in.padding, bh / c.heads, i, j) ? dot * in.opt.scale : -kInf;
        m = std::max(m, s[j]);
      }
      if (m == -kInf) continue;  // sees no key: output 0
      float sum = 0.0f;
      for (int j = 0; j < Lk; ++j) sum += std::exp(s[j] - m);
      for (int j = 0; j < Lk; ++j) {
        const uint64_t index = (uint64_t(bh) * Lq + i) * Lk + j;
        const float p = round16(std::exp(s[j] - m) / sum, c.dtype) * dropout_factor(c, in.opt.dropout_key, index);
        for (int d = 0; d < D; ++d) out[(int64_t(bh) * Lq + i) * D + d] += p * v[(int64_t(bh) * Lk + j) * D + d];
      }
    }
  for (float& x : out) x = round16(x, c.dtype);
  return out;
}

struct Grads {
  std::vector<float> dq, dk, dv;  // [B, H, L, D] row-major
};

// Plain 16-bit backward (see the header): the textbook pass over the materialised scores, fp32 products,
// every intermediate rounded to 16 bits.
Grads plain_backward(const AttentionCase& c, const Inputs& in) {
  const std::vector<float> q = host_values(in.q), k = host_values(in.k), v = host_values(in.v),
                           dout = host_values(in.dout);
  const int Lq = c.len_q, Lk = c.len_k, D = c.head_dim;
  auto r = [&](float x) { return round16(x, c.dtype); };
  Grads g{std::vector<float>(q.size()), std::vector<float>(k.size()), std::vector<float>(v.size())};
  std::vector<float> p(size_t(Lq) * Lk), pd(p.size()), ds(p.size()), f(Lk), dp(Lk);
  for (int bh = 0; bh < c.batch * c.heads; ++bh) {
    const float* qh = &q[int64_t(bh) * Lq * D];
    const float* doh = &dout[int64_t(bh) * Lq * D];
    const float* kh = &k[int64_t(bh) * Lk * D];
    const float* vh = &v[int64_t(bh) * Lk * D];
    for (int i = 0; i < Lq; ++i) {
      float* pi = &p[size_t(i) * Lk];
      float mx = -kInf;
      for (int j = 0; j < Lk; ++j) {
        float s = 0.0f;
        for (int d = 0; d < D; ++d) s += qh[i * D + d] * kh[j * D + d];
        pi[j] = visible(c, in.padding, bh / c.heads, i, j) ? r(r(s) * in.opt.scale) : -kInf;
        mx = std::max(mx, pi[j]);
      }
      float sum = 0.0f;
      for (int j = 0; j < Lk; ++j) {
        pi[j] = mx == -kInf ? 0.0f : std::exp(pi[j] - mx);
        sum += pi[j];
      }
      for (int j = 0; j < Lk; ++j) {
        pi[j] = sum > 0.0f ? r(pi[j] / sum) : 0.0f;
        f[j] = dropout_factor(c, in.opt.dropout_key, (uint64_t(bh) * Lq + i) * Lk + j);
        pd[size_t(i) * Lk + j] = r(pi[j] * f[j]);
      }
      // dP, then dS = P (dP - rowsum(P dP)), the softmax backward.
      float dot = 0.0f;
      for (int j = 0; j < Lk; ++j) {
        float s = 0.0f;
        for (int d = 0; d < D; ++d) s += doh[i * D + d] * vh[j * D + d];
        dp[j] = r(r(s) * f[j]);
        dot += pi[j] * dp[j];
      }
      for (int j = 0; j < Lk; ++j) ds[size_t(i) * Lk + j] = r(r(pi[j] * (dp[j] - dot)) * in.opt.scale);
    }
    for (int i = 0; i < Lq; ++i)
      for (int d = 0; d < D; ++d) {
        float s = 0.0f;
        for (int j = 0; j < Lk; ++j) s += ds[size_t(i) * Lk + j] * kh[j * D + d];
        g.dq[(int64_t(bh) * Lq + i) * D + d] = r(s);
      }
    for (int j = 0; j < Lk; ++j)
      for (int d = 0; d < D; ++d) {
        float sk = 0.0f, sv = 0.0f;
        for (int i = 0; i < Lq; ++i) {
          sk += ds[size_t(i) * Lk + j] * qh[i * D + d];
          sv += pd[size_t(i) * Lk + j] * doh[i * D + d];
        }
        g.dk[(int64_t(bh) * Lk + j) * D + d] = r(sk);
        g.dv[(int64_t(bh) * Lk + j) * D + d] = r(sv);
      }
  }
  return g;
}

}  // namespace

std::string AttentionCase::str() const {
  static const char* const kPadding[] = {"", ",pad", ",padrow"};
  return fmt::format("{},{},{},{},{}{}{}{},{}{}", batch, heads, len_q, len_k, head_dim, causal ? ",causal" : "",
                     kPadding[static_cast<int>(padding)], dropout > 0 ? fmt::format(",dropout={}", dropout) : "",
                     dtype == Half::BF16 ? "bf16" : "fp16", deterministic ? ",deterministic" : "");
}

std::optional<AttentionCase> parse_attention_case(const std::string& text, std::string* error) {
  return detail::read_case(
      "--attn", "B,H,Lq,Lk,D[,causal][,pad|padrow][,dropout=P][,bf16|fp16][,deterministic]", text, 5, error,
      [](const std::vector<std::string>& fields) {
        AttentionCase c;
        int* sizes[] = {&c.batch, &c.heads, &c.len_q, &c.len_k, &c.head_dim};
        for (int i = 0; i < 5; ++i) {
          const int64_t n = detail::read_size(fields[i]);
          if (n > std::numeric_limits<int>::max())
            throw detail::CaseTextError{fmt::format("'{}' is too large", fields[i])};
          *sizes[i] = static_cast<int>(n);
        }
        if (c.head_dim != 32 && c.head_dim != 64 && c.head_dim != 128)
          throw detail::CaseTextError{"the head dim must be 32, 64 or 128"};
        for (size_t i = 5; i < fields.size(); ++i) {
          const std::string& p = fields[i];
          if (p == "causal") c.causal = true;
          else if (p == "pad") c.padding = KeyPadding::Some;
          else if (p == "padrow") c.padding = KeyPadding::SomeAndFullRow;
          else if (p == "bf16") c.dtype = Half::BF16;
          else if (p == "fp16") c.dtype = Half::FP16;
          else if (p == "deterministic") c.deterministic = true;
          else if (const std::optional<float> dropout = detail::read_dropout(p)) c.dropout = *dropout;
          else throw detail::CaseTextError{fmt::format("unknown flag '{}'", p)};
        }
        return c;
      });
}

CheckResult check_attention_forward(kernels::Backend backend, const AttentionCase& c, uint64_t seed) {
  // A scale above 1/sqrt(D) makes the softmax peaked enough that the row max moves between key tiles.
  const Inputs in = make_inputs(c, seed, 4.0f / std::sqrt(static_cast<float>(c.head_dim)));
  const ops::AttentionResult ref = ops::attention_forward(in.q, in.k, in.v, in.opt);
  const std::vector<float> out_ref = host_values(ref.out), lse_ref = host_values(ref.lse);
  const std::vector<float> out_plain = plain_forward(c, in);

  const Device device = backend_device(backend);
  const Heads q(in.q, backend, c.dtype, true), k(in.k, backend, c.dtype, false), v(in.v, backend, c.dtype, false);
  const Heads out = Heads::output({c.batch, c.heads, c.len_q, c.head_dim}, backend, c.dtype, true);
  const Tensor lse = Tensor::full({c.batch, c.heads, c.len_q}, std::numeric_limits<float>::quiet_NaN()).to(device);
  const Tensor padding = in.opt.key_padding.defined() ? in.opt.key_padding.to(device) : Tensor();
  kernels::AttentionArgs a = kernel_args(c, in, padding);
  a.q = q.storage.raw_data(), a.k = k.storage.raw_data(), a.v = v.storage.raw_data(), a.out = out.storage.raw_data();
  a.q_strides = q.strides, a.k_strides = k.strides, a.v_strides = v.strides, a.out_strides = out.strides;
  a.lse = static_cast<float*>(lse.raw_data());
  HEED_RUN_KERNEL(device, attention_forward, a);
  const std::vector<float> out_got = out.values(), lse_got = host_values(lse);

  CheckResult result{"attention forward " + c.str(), {}};
  // FlashAttention's floor: two fp32 ulps of the largest output, for cases where both errors are fp32 noise.
  const double floor = 2.0 * std::numeric_limits<float>::epsilon() * max_abs(out_ref);
  const double plain = max_abs_difference(out_plain, out_ref);
  result.comparisons.push_back({"out", max_abs_difference(out_got, out_ref), 2.0 * plain + floor,
                                fmt::format("(2 x plain 16-bit error {:.3g} + {:.2g})", plain, floor)});
  // lse is fp32 in both, from the same inputs: they differ by the order of the D products of each score
  // and a few ulps of exp and log, far below 5e-5 + 1e-5 |lse|; a wrong mask or rescale moves it by 1e-2.
  double lse_error = 0;
  int64_t unseen_wrong = 0;
  for (size_t r = 0; r < lse_ref.size(); ++r) {
    if (std::isinf(lse_ref[r])) {  // a row that sees no key: lse = -inf and an output of exactly 0
      bool right = lse_got[r] == lse_ref[r];
      for (int d = 0; d < c.head_dim; ++d) right = right && out_got[r * c.head_dim + d] == 0.0f;
      unseen_wrong += !right;
      continue;
    }
    const double e = std::abs(double(lse_got[r]) - lse_ref[r]) / (5e-5 + 1e-5 * std::abs(lse_ref[r]));
    lse_error = std::isnan(e) ? std::numeric_limits<double>::infinity() : std::max(lse_error, e);
  }
  result.comparisons.push_back({"lse", lse_error, 1.0, "(in units of 5e-5 + 1e-5 |lse|)"});
  result.comparisons.push_back({"rows without keys", double(unseen_wrong), 0.0, "(wrong lse or output)"});
  return result;
}

CheckResult check_attention_backward(kernels::Backend backend, const AttentionCase& c, uint64_t seed) {
  const Inputs in = make_inputs(c, seed, 1.0f / std::sqrt(static_cast<float>(c.head_dim)));
  const ops::AttentionResult fwd = ops::attention_forward(in.q, in.k, in.v, in.opt);
  const ops::AttentionGrads ref = ops::attention_backward(in.dout, in.q, in.k, in.v, fwd, in.opt);
  const Grads plain = plain_backward(c, in);

  const Device device = backend_device(backend);
  const Heads q(in.q, backend, c.dtype, true), k(in.k, backend, c.dtype, false), v(in.v, backend, c.dtype, false);
  const Heads out(fwd.out, backend, c.dtype, true), dout(in.dout, backend, c.dtype, true);
  const Tensor lse = fwd.lse.contiguous().to(device);
  const Tensor padding = in.opt.key_padding.defined() ? in.opt.key_padding.to(device) : Tensor();
  kernels::AttentionArgs a = kernel_args(c, in, padding);
  a.q = q.storage.raw_data(), a.k = k.storage.raw_data(), a.v = v.storage.raw_data();
  a.out = out.storage.raw_data(), a.dout = dout.storage.raw_data();
  a.q_strides = q.strides, a.k_strides = k.strides, a.v_strides = v.strides;
  a.out_strides = out.strides, a.dout_strides = dout.strides;
  a.lse = static_cast<float*>(lse.raw_data());
  a.deterministic = c.deterministic;
  // The workspace size is host arithmetic, the same in both builds; the simulator's is always linked.
  const Tensor workspace = Tensor::empty(
      {static_cast<int64_t>(kernels::attention_backward_workspace_bytes<kernels::Backend::Sim>(a))}, DType::U8, device);
  a.workspace = workspace.raw_data();
  auto run = [&] {
    std::vector<Heads> grads{Heads::output({c.batch, c.heads, c.len_q, c.head_dim}, backend, c.dtype, true),
                             Heads::output({c.batch, c.heads, c.len_k, c.head_dim}, backend, c.dtype, false),
                             Heads::output({c.batch, c.heads, c.len_k, c.head_dim}, backend, c.dtype, false)};
    kernels::AttentionArgs args = a;
    args.dq = grads[0].storage.raw_data(), args.dk = grads[1].storage.raw_data(), args.dv = grads[2].storage.raw_data();
    args.dq_strides = grads[0].strides, args.dk_strides = grads[1].strides, args.dv_strides = grads[2].strides;
    HEED_RUN_KERNEL(device, attention_backward, args);
    return grads;
  };
  const std::vector<Heads> grads = run();

  CheckResult result{"attention backward " + c.str(), {}};
  const char* names[] = {"dq", "dk", "dv"};
  const std::vector<float>* plains[] = {&plain.dq, &plain.dk, &plain.dv};
  const Tensor* refs[] = {&ref.dq, &ref.dk, &ref.dv};
  for (int n = 0; n < 3; ++n) {
    const std::vector<float> want = host_values(*refs[n]);
    // The fp32 reference's own accuracy (sums of at most a few hundred O(1) terms): below it neither error
    // means anything. It matters where the exact gradient is 0 (one key makes dq and dk vanish).
    const double floor = 1e-6 * std::max(1.0, max_abs(want));
    const double plain_error = max_abs_difference(*plains[n], want);
    result.comparisons.push_back({names[n], max_abs_difference(grads[n].values(), want), 2.0 * plain_error + floor,
                                  fmt::format("(2 x plain 16-bit error {:.3g} + {:.2g})", plain_error, floor)});
  }
  if (c.deterministic) {
    const std::vector<Heads> again = run();
    int64_t differing = 0;
    for (int n = 0; n < 3; ++n) differing += again[n].bytes() != grads[n].bytes();
    result.comparisons.push_back({"repeat", double(differing), 0.0, "(gradients whose bits differ on a second run)"});
  }
  return result;
}

}  // namespace heed::selftest
