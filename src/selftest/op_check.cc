// The op checks of selftest/op_check.h: inputs from Philox, the CPU op as the reference, the device op
// compared output by output under the header's rule.
#include "selftest/op_check.h"

#include <algorithm>
#include <cmath>

#include "heed/ops/activation.h"
#include "heed/ops/adam.h"
#include "heed/ops/cross_entropy.h"
#include "heed/ops/dropout.h"
#include "heed/ops/embedding.h"
#include "heed/ops/layer_norm.h"
#include "heed/ops/log_softmax_top_k.h"
#include "heed/ops/softmax.h"
#include "selftest/case_text.h"

namespace heed::selftest {

namespace {

// The header's rule for one output, against the fp32 reference.
constexpr auto compare = within_twice_plain;

// The fp32 allowances of the header: an output computed from a row of n values (n + 16 roundings, each
// relative to the largest value involved), and a sum of n terms (the same count of roundings, relative to
// the sum of their magnitudes, at most n times the largest).
double row_allowance(double n, double largest) { return (n + 16) * kFp32Unit * largest; }
double sum_allowance(double n, double largest) { return (n + 16) * kFp32Unit * n * largest; }


CheckResult layer_norm(kernels::Backend backend, const OpCase& c, uint64_t seed) {
  const Device device = backend_device(backend);
  const Tensor x = round_to(random_uniform({c.rows, c.cols}, seed, 0, 1.0f, 3.0f), c.dtype);
  const Tensor dy = round_to(random_uniform({c.rows, c.cols}, seed, 1), c.dtype);
  const Tensor gamma = random_uniform({c.cols}, seed, 2, 0.5f, 1.5f), beta = random_uniform({c.cols}, seed, 3);
  const ops::LayerNormResult want = ops::layer_norm_forward(x, gamma, beta, 1e-5f);
  const ops::LayerNormGrads want_grads = ops::layer_norm_backward(dy, x, gamma, want.mean, want.rstd);
  const Tensor xd = to_backend(x, backend, c.dtype), dyd = to_backend(dy, backend, c.dtype);
  const ops::LayerNormResult got = ops::layer_norm_forward(xd, gamma.to(device), beta.to(device), 1e-5f);
  const ops::LayerNormGrads got_grads = ops::layer_norm_backward(dyd, xd, gamma.to(device), got.mean, got.rstd);
  // A normalised value is at most sqrt(cols); dgamma and dbeta sum a term per row.
  const double cols = static_cast<double>(c.cols), rows = static_cast<double>(c.rows), xhat = std::sqrt(cols);
  return {"op " + c.str(),
          {compare("y", got.y, want.y, c.dtype, row_allowance(cols, max_abs(host_values(want.y)))),
           compare("mean", got.mean, want.mean, DType::F32, row_allowance(cols, 3.0)),
           compare("rstd", got.rstd, want.rstd, DType::F32, row_allowance(cols, max_abs(host_values(want.rstd)))),
           compare("dx", got_grads.dx, want_grads.dx, c.dtype, row_allowance(cols, max_abs(host_values(want_grads.dx)))),
           compare("dgamma", got_grads.dgamma, want_grads.dgamma, DType::F32, sum_allowance(rows, xhat)),
           compare("dbeta", got_grads.dbeta, want_grads.dbeta, DType::F32, sum_allowance(rows, 1.0))}};
}

CheckResult cross_entropy(kernels::Backend backend, const OpCase& c, uint64_t seed) {
  const Device device = backend_device(backend);
  constexpr int64_t kIgnore = 0;
  constexpr float kSmoothing = 0.1f;
  const Tensor logits = round_to(random_uniform({c.rows, c.cols}, seed, 0, -4.0f, 4.0f), c.dtype);
  std::vector<int32_t> targets(static_cast<size_t>(c.rows));
  const std::vector<float> draw = host_values(random_uniform({c.rows}, seed, 1, 0.0f, 1.0f));
  for (int64_t i = 0; i < c.rows; ++i)  // every fifth row is padding
    targets[i] = i % 5 == 4 ? kIgnore : static_cast<int32_t>(draw[i] * static_cast<float>(c.cols)) % c.cols;
  const Tensor t = Tensor::from_vector(targets, {c.rows});
  const float grad_scale = 1.0f / static_cast<float>(c.rows);
  const ops::CrossEntropyResult want = ops::cross_entropy_forward(logits, t, kIgnore, kSmoothing);
  const Tensor want_grad = ops::cross_entropy_backward(logits, t, want.lse, kIgnore, kSmoothing, grad_scale);
  const Tensor ld = to_backend(logits, backend, c.dtype), td = t.to(device);
  const ops::CrossEntropyResult got = ops::cross_entropy_forward(ld, td, kIgnore, kSmoothing);
  const Tensor got_grad = ops::cross_entropy_backward(ld, td, got.lse, kIgnore, kSmoothing, grad_scale);
  // A row's loss averages cols terms of at most |logit| + lse; the total adds the rows' losses.
  const double per_row = 4.0 + max_abs(host_values(want.lse)), cols = static_cast<double>(c.cols);
  return {"op " + c.str(),
          {compare("lse", got.lse, want.lse, DType::F32, row_allowance(cols, per_row)),
           compare("loss", got.loss_sum, want.loss_sum, DType::F32,
                   static_cast<double>(c.rows) * row_allowance(cols, per_row) +
                       sum_allowance(static_cast<double>(c.rows), per_row)),
           compare("dlogits", got_grad, want_grad, c.dtype, row_allowance(cols, grad_scale))}};
}

CheckResult activation_and_dropout(kernels::Backend backend, const OpCase& c, uint64_t seed) {
  const Tensor x = round_to(random_uniform({c.rows, c.cols}, seed, 0, -3.0f, 3.0f), c.dtype);
  const Tensor dy = round_to(random_uniform({c.rows, c.cols}, seed, 1), c.dtype);
  const RandomKey key{seed, 11, 2};
  const Tensor xd = to_backend(x, backend, c.dtype), dyd = to_backend(dy, backend, c.dtype);
  // One element: a handful of roundings in the GELU polynomial, allowed as 16 of a value of size 3.
  return {"op " + c.str(),
          {compare("gelu", ops::activation_forward(xd, ops::Activation::GELU),
                   ops::activation_forward(x, ops::Activation::GELU), c.dtype, row_allowance(0, 3.0)),
           compare("dgelu", ops::activation_backward(dyd, xd, ops::Activation::GELU),
                   ops::activation_backward(dy, x, ops::Activation::GELU), c.dtype, row_allowance(0, 3.0)),
           compare("dropout", ops::dropout_forward(xd, 0.1f, key), ops::dropout_forward(x, 0.1f, key), c.dtype,
                   row_allowance(0, 3.4))}};
}

CheckResult embedding(kernels::Backend backend, const OpCase& c, uint64_t seed) {
  const Device device = backend_device(backend);
  // rows positions over a vocabulary of 37 (ids repeat, the pad id 0 among them), cols = the width.
  constexpr int64_t kVocab = 37;
  std::vector<int32_t> ids(static_cast<size_t>(c.rows));
  for (int64_t i = 0; i < c.rows; ++i) ids[i] = static_cast<int32_t>((i * 2654435761u + seed) % kVocab);
  const Tensor id = Tensor::from_vector(ids, {c.rows});
  const Tensor weight = round_to(random_uniform({kVocab, c.cols}, seed, 0), c.dtype);
  const Tensor dy = round_to(random_uniform({c.rows, c.cols}, seed, 1), c.dtype);
  const float scale = std::sqrt(static_cast<float>(c.cols));
  const Tensor idd = id.to(device);
  return {"op " + c.str(),
          {compare("out", ops::embedding_forward(idd, to_backend(weight, backend, c.dtype), scale),
                   ops::embedding_forward(id, weight, scale), c.dtype, row_allowance(0, scale)),
           compare("dweight", ops::embedding_backward(to_backend(dy, backend, c.dtype), idd, kVocab, 0, scale),
                   ops::embedding_backward(dy, id, kVocab, 0, scale), DType::F32,
                   sum_allowance(static_cast<double>(c.rows), scale))}};
}

CheckResult adam(kernels::Backend backend, const OpCase& c, uint64_t seed) {
  const Device device = backend_device(backend);
  // Three AdamW steps over two tensors of rows x cols: the update is elementwise fp32, the same operations
  // in the same order, so only sqrt and the division may differ in their last bit.
  const ops::AdamHyper hyper{.lr = 1e-2f, .weight_decay = 0.01f};
  std::vector<ops::AdamSlot> cpu, dev;
  for (uint32_t t = 0; t < 2; ++t) {
    const Tensor p = random_uniform({c.rows, c.cols}, seed, 4 * t);
    cpu.push_back({p.clone(), random_uniform({c.rows, c.cols}, seed, 4 * t + 1), Tensor::zeros(p.shape()),
                   Tensor::zeros(p.shape())});
    dev.push_back({p.to(device), cpu.back().grad.to(device), Tensor::zeros(p.shape(), DType::F32, device),
                   Tensor::zeros(p.shape(), DType::F32, device)});
  }
  for (int64_t step = 1; step <= 3; ++step) {
    ops::adam_update(cpu, hyper, step);
    ops::adam_update(dev, hyper, step);
  }
  CheckResult r{"op " + c.str(), {}};
  for (size_t t = 0; t < cpu.size(); ++t) {
    const std::string n = std::to_string(t);
    r.comparisons.push_back(compare("param" + n, dev[t].param, cpu[t].param, DType::F32, row_allowance(0, 1.1)));
    r.comparisons.push_back(compare("m" + n, dev[t].m, cpu[t].m, DType::F32, row_allowance(0, 1.0)));
    r.comparisons.push_back(compare("v" + n, dev[t].v, cpu[t].v, DType::F32, row_allowance(0, 1.0)));
  }
  return r;
}

CheckResult softmax(kernels::Backend backend, const OpCase& c, uint64_t seed) {
  const Tensor x = round_to(random_uniform({c.rows, c.cols}, seed, 0, -4.0f, 4.0f), c.dtype);
  const Tensor dy = round_to(random_uniform({c.rows, c.cols}, seed, 1), c.dtype);
  const Tensor want = ops::softmax_forward(x), got = ops::softmax_forward(to_backend(x, backend, c.dtype));
  const Tensor got_dx = ops::softmax_backward(to_backend(dy, backend, c.dtype), to_backend(want, backend, c.dtype));
  // The backward reads y in the storage type: its reference is the CPU op on that rounded y.
  const Tensor want_dx_rounded = ops::softmax_backward(dy, round_to(want, c.dtype));
  const double cols = static_cast<double>(c.cols);
  return {"op " + c.str(),
          {compare("y", got, want, c.dtype, row_allowance(cols, 1.0)),
           compare("dx", got_dx, want_dx_rounded, c.dtype, row_allowance(cols, 1.0))}};
}

CheckResult top_k(kernels::Backend backend, const OpCase& c, uint64_t seed) {
  // A shuffled ladder of logits 6/cols apart, so the ranking is never within rounding; tokens must match.
  constexpr int64_t kK = 8;
  const std::vector<float> draw = host_values(random_uniform({c.rows, c.cols}, seed, 0, 0.0f, 1.0f));
  std::vector<float> ladder(draw.size());
  for (int64_t r = 0; r < c.rows; ++r) {
    std::vector<int64_t> order(static_cast<size_t>(c.cols));
    for (int64_t v = 0; v < c.cols; ++v) order[v] = v;
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return draw[r * c.cols + a] < draw[r * c.cols + b]; });
    for (int64_t v = 0; v < c.cols; ++v)
      ladder[r * c.cols + order[v]] = 6.0f * (static_cast<float>(v) / static_cast<float>(c.cols) - 0.5f);
  }
  const Tensor logits = round_to(Tensor::from_vector(ladder, {c.rows, c.cols}), c.dtype);
  std::vector<float> prefix(static_cast<size_t>(c.rows));
  for (int64_t r = 0; r < c.rows; ++r) prefix[r] = -0.5f * static_cast<float>(r);
  const ops::TopK want = ops::log_softmax_top_k(logits, prefix, kK, 0);
  const ops::TopK got = ops::log_softmax_top_k(to_backend(logits, backend, c.dtype), prefix, kK, 0);
  const std::vector<float> wt = host_values(want.tokens.to(DType::F32)), gt = host_values(got.tokens.to(DType::F32));
  int64_t mismatched = 0;
  for (size_t i = 0; i < wt.size(); ++i) mismatched += wt[i] != gt[i];
  // Both sides' log-sum-exp add cols terms of at most 1; a score's own roundings are relative to its size.
  const double largest = max_abs(host_values(want.scores));
  const Comparison scores = compare("scores", got.scores, want.scores, DType::F32,
                                    row_allowance(2.0 * static_cast<double>(c.cols), 1.0) + 4 * kFp32Unit * largest);
  return {"op " + c.str(),
          {Comparison{"tokens", static_cast<double>(mismatched), 0.0, "mismatched ranks"}, scores}};
}

using Check = CheckResult (*)(kernels::Backend, const OpCase&, uint64_t);

const std::vector<std::pair<std::string, Check>>& checks() {
  static const std::vector<std::pair<std::string, Check>> all = {
      {"layernorm", layer_norm}, {"xent", cross_entropy}, {"act", activation_and_dropout}, {"embedding", embedding},
      {"adam", adam},            {"softmax", softmax},    {"topk", top_k}};
  return all;
}

}  // namespace

std::string OpCase::str() const { return fmt::format("{},{},{},{}", op, rows, cols, detail::dtype_text(dtype)); }

const std::vector<std::string>& op_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& [name, check] : checks()) n.push_back(name);
    return n;
  }();
  return names;
}

std::optional<OpCase> parse_op_case(const std::string& text, std::string* error) {
  return detail::read_case(
      "--op", fmt::format("OP,ROWS,COLS[,bf16|fp16|fp32] with OP one of {}", fmt::join(op_names(), ", ")), text, 3,
      error, [](const std::vector<std::string>& fields) {
        if (fields.size() > 4) throw detail::CaseTextError{"at most 4 fields"};
        OpCase c;
        c.op = fields[0];
        if (std::find(op_names().begin(), op_names().end(), c.op) == op_names().end())
          throw detail::CaseTextError{fmt::format("unknown op '{}'", c.op)};
        c.rows = detail::read_size(fields[1]);
        c.cols = detail::read_size(fields[2]);
        if (fields.size() == 4) {
          const std::optional<DType> dtype = detail::read_dtype(fields[3]);
          if (!dtype) throw detail::CaseTextError{fmt::format("unknown type '{}'", fields[3])};
          c.dtype = *dtype;
        }
        return c;
      });
}

CheckResult check_op(kernels::Backend backend, const OpCase& c, uint64_t seed) {
  for (const auto& [name, check] : checks())
    if (name == c.op) return check(backend, c, seed);
  HEED_CHECK(false, "selftest: unknown op '{}'", c.op);
  return {};
}

}  // namespace heed::selftest
