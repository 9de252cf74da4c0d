// Wiring of ops into the tape. Each function is forward, then the closure that backward() will call;
// the math of both lives in the op (src/ops/), so a reader sees the pairing here and the arithmetic there.
#include "heed/autograd/functions.h"

#include <algorithm>
#include <array>
#include <unordered_map>

#include "heed/ops/adam.h"
#include "heed/ops/cross_entropy.h"
#include "heed/ops/dropout.h"
#include "heed/ops/elementwise.h"
#include "heed/ops/embedding.h"
#include "heed/ops/layer_norm.h"
#include "heed/ops/matmul.h"
#include "heed/ops/softmax.h"

namespace heed::autograd {

namespace {

// A Linear layer's weight and bias gradients from its output gradient dy2 [N, out] and input x2 [N, in]:
// one GEMM, the bias gradient from its epilogue. The epilogue writes: straight into the bias's gradient
// while that holds nothing yet, else into a fresh buffer added after.
void linear_parameter_grads(const Variable& weight, const Variable& bias, const Tensor& dy2, const Tensor& x2) {
  const bool bias_grad = bias.defined() && bias.requires_grad();
  if (!weight.requires_grad()) {
    if (bias_grad) bias.accumulate_grad(ops::sum_rows(dy2));
    return;
  }
  float beta;
  Tensor& dw = weight.grad_for_gemm(&beta);
  float bias_beta = 0.0f;
  Tensor* bias_buffer = bias_grad ? &bias.grad_for_gemm(&bias_beta) : nullptr;
  Tensor fresh;
  if (bias_beta != 0.0f) fresh = Tensor::empty(bias.shape(), DType::F32, dy2.device());
  ops::linear_backward_weight(dy2, x2, dw, beta, fresh.defined() ? &fresh : bias_buffer);
  if (fresh.defined()) ops::axpy_(*bias_buffer, fresh);
}

// Its input gradient, added to the input's gradient so far by the GEMM itself.
void linear_input_grad(const Variable& x, const Tensor& weight, const Tensor& dy2, const Shape& x2_shape) {
  if (!x.requires_grad()) return;
  Tensor prior;
  if (Tensor* sum = x.grad_for_sum(&prior)) {
    Tensor dx = sum->view(x2_shape);
    ops::linear_backward_input(dy2, weight, dx, prior.defined() ? prior.reshape(x2_shape) : prior);
  } else {
    x.accumulate_grad(ops::matmul(dy2, weight).view(x.shape()));
  }
}

// `parts` stacked along dimension 0: the active CastParametersScope's view when they lie end to end in its
// copies, else a copy.
Tensor stack_rows(const std::vector<Tensor>& parts) {
  if (Tensor view = CastParametersScope::stacked_view(parts); view.defined()) return view;
  Shape shape = parts.front().shape();
  shape[0] = 0;
  for (const Tensor& p : parts) shape[0] += p.size(0);
  Tensor stacked = Tensor::empty(shape, parts.front().dtype(), parts.front().device());
  int64_t row = 0;
  for (const Tensor& p : parts) {
    stacked.narrow(0, row, p.size(0)).copy_from(p);
    row += p.size(0);
  }
  return stacked;
}

// x . weight^T (+ bias), then max(0, .) when `relu`: one GEMM pass either way (ops::linear_forward). ReLU's
// derivative is read from the output (y > 0 exactly where the pre-activation is), so the fused form keeps
// no tensor the plain one does not. With dropout after the ReLU, the dropped output d is what is kept, and
// the backward of both is one pass: where the mask keeps an element, d > 0 exactly where y > 0, and where
// it drops one the gradient is 0 whatever the slope.
Variable linear_impl(const Variable& x, const Variable& weight, const Variable& bias, bool relu,
                     float dropout_p = 0.0f, const RandomKey& dropout_key = {}) {
  const int64_t in = weight.size(1), out_features = weight.size(0);
  HEED_CHECK(x.value().dim() >= 1 && x.size(-1) == in, "linear: input {} does not fit weight {}",
             shape_str(x.shape()), shape_str(weight.shape()));
  HEED_CHECK(!relu || bias.defined(), "linear_relu: needs a bias (the fused epilogue adds it)");
  const Tensor x2 = x.value().reshape({-1, in});
  Tensor y = bias.defined() ? ops::linear_forward(x2, weight.value(), bias.value(), relu)
                            : ops::matmul(x2, weight.value(), false, true);
  if (dropout_p > 0.0f) y = ops::dropout_forward(y, dropout_p, dropout_key);
  Shape out_shape = x.shape();
  out_shape.back() = out_features;
  Variable result(y.view(out_shape));
  if (needs_grad({&x, &weight, &bias})) {
    record(result, [x, weight, bias, x2, y, relu, dropout_p, dropout_key](const Tensor& dy) {
      Tensor dy2 = dy.reshape({-1, dy.size(-1)});
      if (relu) dy2 = ops::activation_backward(dy2, y, ops::Activation::ReLU, dropout_p, dropout_key);
      linear_parameter_grads(weight, bias, dy2, x2);
      linear_input_grad(x, weight.value(), dy2, x2.shape());
    });
  }
  return result;
}

}  // namespace

Variable linear(const Variable& x, const Variable& weight, const Variable& bias) {
  return linear_impl(x, weight, bias, false);
}

Variable linear_relu(const Variable& x, const Variable& weight, const Variable& bias) {
  return linear_impl(x, weight, bias, true);
}

Variable linear_relu_dropout(const Variable& x, const Variable& weight, const Variable& bias, float p,
                             const RandomKey& key) {
  HEED_CHECK(p > 0.0f && p < 1.0f, "linear_relu_dropout: probability must be in (0, 1), got {}", p);
  return linear_impl(x, weight, bias, true, p, key);
}

Variable feed_forward_relu(const Variable& x, const Variable& w1, const Variable& b1, const Variable& w2,
                           const Variable& b2) {
  const int64_t d = x.size(-1);
  HEED_CHECK(w1.value().dim() == 2 && w1.size(1) == d && w2.value().dim() == 2 && w2.size(1) == w1.size(0) &&
                 b1.defined() && b2.defined(),
             "feed_forward_relu: input {}, fc1 {} and fc2 {} with their biases do not fit", shape_str(x.shape()),
             shape_str(w1.shape()), shape_str(w2.shape()));
  const Tensor x2 = x.value().reshape({-1, d});
  const bool grads = needs_grad({&x, &w1, &b1, &w2, &b2});
  Tensor relu_mask;
  const Tensor hidden = grads ? ops::linear_relu_forward(x2, w1.value(), b1.value(), &relu_mask)
                              : ops::linear_forward(x2, w1.value(), b1.value(), true);
  const Tensor y = ops::linear_forward(hidden, w2.value(), b2.value());
  Shape out_shape = x.shape();
  out_shape.back() = w2.size(0);
  Variable result(y.view(out_shape));
  if (grads) {
    record(result, [x, w1, b1, w2, b2, x2, hidden, relu_mask](const Tensor& dy) {
      const Tensor dy2 = dy.reshape({-1, dy.size(-1)});
      linear_parameter_grads(w2, b2, dy2, hidden);
      // The gradient of fc1's output before the ReLU, from fc2's input-gradient GEMM and the mask.
      Tensor dz = Tensor::empty(hidden.shape(), dy2.dtype(), dy2.device());
      ops::linear_backward_input_relu(dy2, w2.value(), dz, relu_mask);
      linear_parameter_grads(w1, b1, dz, x2);
      linear_input_grad(x, w1.value(), dz, x2.shape());
    });
  }
  return result;
}

Variable linear_stacked(const Variable& x, const std::vector<Variable>& weights, const std::vector<Variable>& biases) {
  HEED_CHECK(!weights.empty() && (biases.empty() || biases.size() == weights.size()),
             "linear_stacked: {} weights with {} biases (all layers have a bias, or none)", weights.size(),
             biases.size());
  const int64_t in = x.size(-1);
  std::vector<Tensor> weight_values, bias_values;
  for (size_t i = 0; i < weights.size(); ++i) {
    HEED_CHECK(weights[i].value().dim() == 2 && weights[i].size(1) == in &&
                   (biases.empty() || biases[i].shape() == Shape{weights[i].size(0)}),
               "linear_stacked: input {} does not fit layer {}'s weight {}{}", shape_str(x.shape()), i,
               shape_str(weights[i].shape()), biases.empty() ? "" : " and bias " + shape_str(biases[i].shape()));
    weight_values.push_back(weights[i].value());
    if (!biases.empty()) bias_values.push_back(biases[i].value());
  }
  const Tensor weight = stack_rows(weight_values);
  const Tensor x2 = x.value().reshape({-1, in});
  const Tensor y = biases.empty() ? ops::matmul(x2, weight, false, true)
                                  : ops::linear_forward(x2, weight, stack_rows(bias_values));
  Shape out_shape = x.shape();
  out_shape.back() = weight.size(0);
  Variable result(y.view(out_shape));
  bool grads = needs_grad({&x});
  for (size_t i = 0; i < weights.size(); ++i)
    grads = grads || needs_grad({&weights[i], i < biases.size() ? &biases[i] : nullptr});
  if (grads) {
    record(result, [x, weights, biases, x2, weight](const Tensor& dy) {
      const Tensor dy2 = dy.reshape({-1, dy.size(-1)});
      int64_t first = 0;
      for (size_t i = 0; i < weights.size(); ++i) {
        const int64_t out_features = weights[i].size(0);
        linear_parameter_grads(weights[i], biases.empty() ? Variable() : biases[i], dy2.narrow(1, first, out_features),
                               x2);
        first += out_features;
      }
      linear_input_grad(x, weight, dy2, x2.shape());
    });
  }
  return result;
}

Variable add(const Variable& a, const Variable& b) {
  Variable result(ops::add(a.value(), b.value()));
  if (needs_grad({&a, &b})) {
    record(result, [a, b](const Tensor& dy) {
      if (a.requires_grad()) a.accumulate_grad(ops::sum_to(dy, a.shape()));
      if (b.requires_grad()) b.accumulate_grad(ops::sum_to(dy, b.shape()));
    });
  }
  return result;
}

Variable mul(const Variable& a, const Variable& b) {
  Variable result(ops::mul(a.value(), b.value()));
  if (needs_grad({&a, &b})) {
    record(result, [a, b](const Tensor& dy) {
      if (a.requires_grad()) a.accumulate_grad(ops::sum_to(ops::mul(dy, b.value()), a.shape()));
      if (b.requires_grad()) b.accumulate_grad(ops::sum_to(ops::mul(dy, a.value()), b.shape()));
    });
  }
  return result;
}

Variable sum(const Variable& x) {
  Variable result(ops::sum(x.value()));
  if (needs_grad({&x})) {
    // clone: for a one-element x, contiguous() would alias dy, and later accumulation would write into it.
    record(result, [x](const Tensor& dy) { x.accumulate_grad(dy.expand(x.shape()).clone()); });
  }
  return result;
}

Variable add_constant(const Variable& a, const Tensor& c) {
  Variable result(ops::add(a.value(), c));
  HEED_CHECK(result.shape() == a.shape(), "add_constant: {} does not broadcast into {}", shape_str(c.shape()),
             shape_str(a.shape()));
  if (needs_grad({&a})) record(result, [a](const Tensor& dy) { a.accumulate_grad(dy); });
  return result;
}

Variable activation(const Variable& x, ops::Activation act) {
  Variable result(ops::activation_forward(x.value(), act));
  if (needs_grad({&x})) {
    record(result, [x, act](const Tensor& dy) {
      x.accumulate_grad(ops::activation_backward(dy, x.value(), act));
    });
  }
  return result;
}

Variable dropout(const Variable& x, float p, const RandomKey& key) {
  if (p == 0.0f) return x;
  Variable result(ops::dropout_forward(x.value(), p, key));
  if (needs_grad({&x})) {
    record(result, [x, p, key](const Tensor& dy) {
      x.accumulate_grad(ops::dropout_backward(dy, p, key));
    });
  }
  return result;
}

Variable dropout_add(const Variable& residual, const Variable& x, float p, const RandomKey& key) {
  if (p == 0.0f) return add(residual, x);
  Variable result(ops::dropout_add_forward(residual.value(), x.value(), p, key));
  if (needs_grad({&residual, &x})) {
    record(result, [residual, x, p, key](const Tensor& dy) {
      if (residual.requires_grad()) residual.accumulate_grad(dy);
      if (x.requires_grad()) x.accumulate_grad(ops::dropout_backward(dy, p, key));
    });
  }
  return result;
}

Variable embedding(const Tensor& ids, const Variable& weight, float scale, int64_t pad_id) {
  Variable result(ops::embedding_forward(ids, weight.value(), scale));
  if (needs_grad({&weight})) {
    record(result, [ids, weight, scale, pad_id](const Tensor& dy) {
      // Added to the gradient in the rows of the ids present when it holds one already (a tied output
      // layer's), else written whole.
      float beta;
      Tensor& dweight = weight.grad_for_gemm(&beta);
      ops::embedding_backward_into(dy, ids, dweight, beta != 0.0f, pad_id, scale);
    });
  }
  return result;
}

Variable layer_norm(const Variable& x, const Variable& gamma, const Variable& beta, float eps) {
  ops::LayerNormResult fwd = ops::layer_norm_forward(x.value(), gamma.value(), beta.value(), eps);
  Variable result(fwd.y);
  if (needs_grad({&x, &gamma, &beta})) {
    record(result, [x, gamma, beta, mean = fwd.mean, rstd = fwd.rstd](const Tensor& dy) {
      ops::LayerNormGrads g = ops::layer_norm_backward(dy, x.value(), gamma.value(), mean, rstd);
      if (x.requires_grad()) x.accumulate_grad(g.dx);
      if (gamma.requires_grad()) gamma.accumulate_grad(g.dgamma);
      if (beta.requires_grad()) beta.accumulate_grad(g.dbeta);
    });
  }
  return result;
}

Variable softmax(const Variable& x) {
  Variable result(ops::softmax_forward(x.value()));
  if (needs_grad({&x})) {
    record(result, [x, y = result.value()](const Tensor& dy) {
      x.accumulate_grad(ops::softmax_backward(dy, y));
    });
  }
  return result;
}

Variable reshape(const Variable& x, const Shape& shape) {
  Variable result(x.value().reshape(shape));
  if (needs_grad({&x})) {
    record(result, [x](const Tensor& dy) { x.accumulate_grad(dy.reshape(x.shape())); });
  }
  return result;
}

namespace {

// The copies of the thread's CastParametersScope, by the address of each parameter's value.
struct ActiveCopies {
  const ParameterCopies* copies = nullptr;
  std::unordered_map<const void*, size_t> index;
};
thread_local ActiveCopies active_copies;

}  // namespace

ParameterCopies::ParameterCopies(std::vector<Variable> params, DType dtype) : params_(std::move(params)), dtype_(dtype) {
  HEED_CHECK(dtype == DType::BF16 || dtype == DType::F16, "parameter copies are BF16 or F16, got {}",
             dtype_name(dtype));
  if (params_.empty()) return;
  std::stable_partition(params_.begin(), params_.end(), [](const Variable& p) { return p.value().dim() >= 2; });
  // Each copy starts on a 16-byte boundary, as the GEMMs' operands must; a copy whose size is a multiple
  // of 8 elements (every weight of a model with d % 8 == 0) leaves no gap before the next.
  constexpr int64_t kAlign = 16 / 2;
  std::vector<int64_t> offsets;
  int64_t total = 0;
  for (const Variable& p : params_) {
    offsets.push_back(total);
    total += (p.value().numel() + kAlign - 1) / kAlign * kAlign;
  }
  buffer_ = Tensor::empty({total}, dtype, params_.front().value().device());
  for (size_t i = 0; i < params_.size(); ++i)
    copies_.push_back(buffer_.narrow(0, offsets[i], params_[i].value().numel()).view(params_[i].shape()));
}

Tensor ParameterCopies::stacked_view(const std::vector<Tensor>& parts) const {
  if (parts.empty() || !buffer_.defined()) return {};
  const size_t element = dtype_size(dtype_);
  const char* const base = static_cast<const char*>(buffer_.raw_data());
  const char* next = static_cast<const char*>(parts.front().raw_data());
  Shape shape = parts.front().shape();
  shape[0] = 0;
  for (const Tensor& p : parts) {
    const bool follows = p.shares_storage(buffer_) && p.dtype() == dtype_ && p.is_contiguous() && p.dim() >= 1 &&
                         p.dim() == static_cast<int>(shape.size()) &&
                         std::equal(shape.begin() + 1, shape.end(), p.shape().begin() + 1) &&
                         static_cast<const char*>(p.raw_data()) == next;
    if (!follows) return {};
    next += p.nbytes();
    shape[0] += p.size(0);
  }
  const int64_t first = (static_cast<const char*>(parts.front().raw_data()) - base) / static_cast<int64_t>(element);
  return buffer_.narrow(0, first, shape_numel(shape)).view(shape);
}

CastParametersScope::CastParametersScope(ParameterCopies& copies) {
  HEED_CHECK(!active_copies.copies, "a CastParametersScope is already active on this thread");
  std::vector<Tensor> values;
  for (size_t i = 0; i < copies.params_.size(); ++i) {
    values.push_back(copies.params_[i].value());
    active_copies.index[values.back().raw_data()] = i;
  }
  ops::half_copies(values, copies.copies_);
  active_copies.copies = &copies;
}

CastParametersScope::~CastParametersScope() { active_copies = {}; }

Tensor CastParametersScope::copy_of(const Variable& x, DType dtype) {
  const ParameterCopies* copies = active_copies.copies;
  if (!copies || copies->dtype_ != dtype) return {};
  const auto found = active_copies.index.find(x.value().raw_data());
  if (found == active_copies.index.end() || !copies->params_[found->second].same(x)) return {};
  return copies->copies_[found->second];
}

Tensor CastParametersScope::stacked_view(const std::vector<Tensor>& parts) {
  return active_copies.copies ? active_copies.copies->stacked_view(parts) : Tensor();
}

Variable cast(const Variable& x, DType dtype) {
  if (x.value().dtype() == dtype) return x;
  const Tensor copy = CastParametersScope::copy_of(x, dtype);
  Variable result(copy.defined() ? copy : x.value().to(dtype));
  if (needs_grad({&x})) {
    if (copy.defined())
      result.send_grad_to(x);  // a GEMM writes the weight gradient straight into the parameter's home
    else
      record(result, [x](const Tensor& dy) { x.accumulate_grad(dy.to(x.value().dtype())); });
  }
  return result;
}

namespace {

// Where q, k or v lies: the column range [first, first + d) of input `source`.
struct Columns {
  size_t source;
  int64_t first;
};

// Attention whose q, k and v are column ranges of `sources` ([B, L, n * d] each, n ranges side by side).
Variable attention_of(const std::vector<Variable>& sources, const std::array<Columns, 3>& qkv, int64_t d,
                      int64_t heads, const ops::AttentionOptions& options) {
  for (const Variable& s : sources)
    HEED_CHECK(s.value().dim() == 3 && d % heads == 0 && s.size(-1) % d == 0,
               "attention: projections {} cannot be split into {} heads of width {}", shape_str(s.shape()), heads, d);
  // [B, L, n*d] -> [B, L, n*H, Dh] -> the H heads of the range -> [B, H, L, Dh]: a strided view that the op
  // reads directly.
  const int64_t head_dim = d / heads;
  auto heads_of = [heads, head_dim](const Tensor& t, int64_t first) {
    return t.view({t.size(0), t.size(1), t.size(2) / head_dim, head_dim})
        .narrow(2, first / head_dim, heads)
        .transpose(1, 2);
  };
  std::vector<Tensor> values;
  for (const Variable& s : sources) values.push_back(s.value().contiguous());
  std::array<Tensor, 3> in;
  for (size_t i = 0; i < 3; ++i) in[i] = heads_of(values[qkv[i].source], qkv[i].first);
  const ops::AttentionResult fwd = ops::attention_forward(in[0], in[1], in[2], options);
  Variable result(fwd.out.transpose(1, 2).reshape({in[0].size(0), in[0].size(2), d}));
  bool grads = false;
  for (const Variable& s : sources) grads = grads || needs_grad({&s});
  if (grads) {
    record(result, [sources, qkv, in, fwd, options, heads_of](const Tensor& dy) {
      // Every input's gradient is one buffer that the op writes by column ranges, and that buffer is the
      // gradient: no range is left unwritten, since q, k and v cover each input's columns.
      std::vector<Tensor> buffers;
      for (const Variable& s : sources) buffers.push_back(Tensor::empty(s.shape(), s.value().dtype(), dy.device()));
      const ops::AttentionGrads g{heads_of(buffers[qkv[0].source], qkv[0].first),
                                  heads_of(buffers[qkv[1].source], qkv[1].first),
                                  heads_of(buffers[qkv[2].source], qkv[2].first)};
      ops::attention_backward_into(heads_of(dy.contiguous(), 0), in[0], in[1], in[2], fwd, options, g);
      for (size_t i = 0; i < sources.size(); ++i)
        if (sources[i].requires_grad()) sources[i].accumulate_grad(buffers[i]);
    });
  }
  return result;
}

}  // namespace

Variable self_attention(const Variable& qkv, int64_t heads, const ops::AttentionOptions& options) {
  HEED_CHECK(qkv.value().dim() == 3 && qkv.size(-1) % 3 == 0,
             "self_attention: q, k and v side by side must be [B, L, 3d], got {}", shape_str(qkv.shape()));
  const int64_t d = qkv.size(-1) / 3;
  return attention_of({qkv}, {Columns{0, 0}, Columns{0, d}, Columns{0, 2 * d}}, d, heads, options);
}

Variable cross_attention(const Variable& q, const Variable& kv, int64_t heads, const ops::AttentionOptions& options) {
  const int64_t d = q.size(-1);
  HEED_CHECK(q.value().dim() == 3 && kv.value().dim() == 3 && kv.size(-1) == 2 * d && kv.size(0) == q.size(0),
             "cross_attention: k and v side by side must be [B={}, Lk, {}] for q {}, got {}", q.size(0), 2 * d,
             shape_str(q.shape()), shape_str(kv.shape()));
  return attention_of({q, kv}, {Columns{0, 0}, Columns{1, 0}, Columns{1, d}}, d, heads, options);
}

CrossEntropy cross_entropy(const Variable& logits, const Tensor& targets, int64_t ignore_index, float smoothing,
                           double normalizer) {
  ops::CrossEntropyResult fwd = ops::cross_entropy_forward(logits.value(), targets, ignore_index, smoothing);
  const double norm = normalizer > 0 ? normalizer : static_cast<double>(std::max<int64_t>(fwd.count, 1));
  CrossEntropy out;
  out.count = fwd.count;
  // The sums stay where the logits are: reading them on the host would make every training step wait.
  out.nll_sum = fwd.nll_sum;
  const auto inverse_norm = static_cast<float>(1.0 / norm);
  out.loss = Variable(ops::scale(fwd.loss_sum, inverse_norm));
  if (needs_grad({&logits})) {
    record(out.loss, [logits, targets, lse = fwd.lse, ignore_index, smoothing, inverse_norm](const Tensor& dy) {
      logits.accumulate_grad(
          ops::cross_entropy_backward(logits.value(), targets, lse, ignore_index, smoothing, inverse_norm, dy));
    });
  }
  return out;
}

}  // namespace heed::autograd
