// Checks and dispatch for fused attention; the kernels are in attention_cpu.cc and, on the GPU path,
// kernels/attention_forward.cu and attention_backward.cu (through attention_gpu.cc).
//
// q, k, v and dout are not copied: the model hands in transposed views of [B, L, H, D] projections, and
// the kernels read any row strides as long as each row of D values is contiguous. Only the small key
// padding mask and the lse are made contiguous here, so the kernels index them directly.
#include "heed/ops/attention.h"

#include <cmath>
#include <tuple>

#include "ops/attention_backends.h"
#include "ops/dispatch.h"

namespace heed::ops {

namespace {

void check_rows(const Tensor& t, const char* op, const char* what) {
  if (t.device().is_cpu()) {
    check_f32(t, op, what);
  } else {
    HEED_CHECK(t.dtype() == DType::BF16 || t.dtype() == DType::F16,
               "{}: on the GPU path {} must be BF16 or F16 (the tensor-core kernels' inputs), got {}", op, what,
               dtype_name(t.dtype()));
  }
  HEED_CHECK(t.dim() == 4, "{}: {} must be 4-d [B, H, L, D], got shape {}", op, what, shape_str(t.shape()));
  for (int d = 0; d < 4; ++d)
    HEED_CHECK(t.size(d) > 0, "{}: {} must have no empty dimension, got shape {}", op, what, shape_str(t.shape()));
  HEED_CHECK(t.stride(3) == 1 || t.size(3) == 1, "{}: {} must have unit stride in its last dimension, got strides {}",
             op, what, shape_str(t.strides()));
}

// Checks q, k, v and the options; returns the options with a contiguous key padding mask.
AttentionOptions check_inputs(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& opt,
                              const char* op) {
  check_rows(q, op, "q");
  check_rows(k, op, "k");
  check_rows(v, op, "v");
  const int64_t B = q.size(0), H = q.size(1), D = q.size(3), Lk = k.size(2);
  HEED_CHECK(k.size(0) == B && k.size(1) == H && k.size(3) == D,
             "{}: k must be [B={}, H={}, Lk, D={}] like q {}, got {}", op, B, H, D, shape_str(q.shape()),
             shape_str(k.shape()));
  HEED_CHECK(v.shape() == k.shape(), "{}: v must have k's shape {}, got {}", op, shape_str(k.shape()),
             shape_str(v.shape()));
  HEED_CHECK(k.device() == q.device() && v.device() == q.device(), "{}: q on {}, k on {}, v on {}", op,
             q.device().str(), k.device().str(), v.device().str());
  HEED_CHECK(k.dtype() == q.dtype() && v.dtype() == q.dtype(), "{}: q is {}, k {}, v {}", op, dtype_name(q.dtype()),
             dtype_name(k.dtype()), dtype_name(v.dtype()));
  HEED_CHECK(std::isfinite(opt.scale) && opt.scale > 0.0f, "{}: scale must be positive and finite, got {}", op,
             opt.scale);
  HEED_CHECK(opt.dropout_p >= 0.0f && opt.dropout_p < 1.0f, "{}: dropout_p must be in [0, 1), got {}", op,
             opt.dropout_p);
  AttentionOptions checked = opt;
  if (opt.key_padding.defined()) {
    const Tensor& m = opt.key_padding;
    HEED_CHECK(m.dtype() == DType::U8, "{}: key_padding must be U8, got {}", op, dtype_name(m.dtype()));
    HEED_CHECK(m.shape() == Shape({B, Lk}), "{}: key_padding must be [B={}, Lk={}], got {}", op, B, Lk,
               shape_str(m.shape()));
    HEED_CHECK(m.device() == q.device(), "{}: key_padding on {}, q on {}", op, m.device().str(), q.device().str());
    checked.key_padding = m.contiguous();
  }
  return checked;
}

}  // namespace

AttentionResult attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& opt) {
  const AttentionOptions checked = check_inputs(q, k, v, opt, "attention_forward");
  return HEED_DISPATCH(q.device(), "attention_forward", attention_forward(q, k, v, checked));
}

AttentionGrads attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                  const AttentionResult& fwd, const AttentionOptions& opt) {
  // [B, H, L, D] views of [B, L, H, D] storage, as the forward's output.
  auto heads_like = [](const Tensor& t) {
    return Tensor::empty({t.size(0), t.size(2), t.size(1), t.size(3)}, t.dtype(), t.device()).transpose(1, 2);
  };
  const AttentionGrads grads{heads_like(q), heads_like(k), heads_like(v)};
  attention_backward_into(dout, q, k, v, fwd, opt, grads);
  return grads;
}

void attention_backward_into(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                             const AttentionResult& fwd, const AttentionOptions& opt, const AttentionGrads& grads) {
  const char* op = "attention_backward";
  const AttentionOptions checked = check_inputs(q, k, v, opt, op);
  check_rows(dout, op, "dout");
  HEED_CHECK(dout.shape() == q.shape(), "{}: dout must have q's shape {}, got {}", op, shape_str(q.shape()),
             shape_str(dout.shape()));
  check_rows(fwd.out, op, "the forward output");
  HEED_CHECK(fwd.out.shape() == q.shape(), "{}: the forward output must have q's shape {}, got {}", op,
             shape_str(q.shape()), shape_str(fwd.out.shape()));
  check_f32(fwd.lse, op, "lse");
  const Shape lse_shape{q.size(0), q.size(1), q.size(2)};
  HEED_CHECK(fwd.lse.shape() == lse_shape, "{}: lse must be {}, got {}", op, shape_str(lse_shape),
             shape_str(fwd.lse.shape()));
  for (const Tensor* t : {&dout, &fwd.out, &fwd.lse})
    HEED_CHECK(t->device() == q.device(), "{}: all tensors must be on {}, got one on {}", op, q.device().str(),
               t->device().str());
  for (auto [grad, input, what] : {std::tuple{&grads.dq, &q, "dq"}, {&grads.dk, &k, "dk"}, {&grads.dv, &v, "dv"}}) {
    check_rows(*grad, op, what);
    HEED_CHECK(grad->shape() == input->shape() && grad->dtype() == input->dtype() && grad->device() == input->device(),
               "{}: {} must be {} {} on {} like its input, got {} {} on {}", op, what, dtype_name(input->dtype()),
               shape_str(input->shape()), input->device().str(), dtype_name(grad->dtype()), shape_str(grad->shape()),
               grad->device().str());
  }
  const AttentionResult saved{fwd.out, fwd.lse.contiguous()};
  HEED_DISPATCH(q.device(), op, attention_backward(dout, q, k, v, saved, checked, grads));
}

Tensor attention_probabilities(const Tensor& q, const Tensor& k, const Tensor& lse, const AttentionOptions& opt) {
  const char* op = "attention_probabilities";
  // v only has to look like k here: the probabilities never read it.
  const AttentionOptions checked = check_inputs(q, k, k, opt, op);
  check_f32(lse, op, "lse");
  const Shape lse_shape{q.size(0), q.size(1), q.size(2)};
  HEED_CHECK(lse.shape() == lse_shape, "{}: lse must be {}, got {}", op, shape_str(lse_shape), shape_str(lse.shape()));
  HEED_CHECK(lse.device() == q.device(), "{}: lse on {}, q on {}", op, lse.device().str(), q.device().str());
  return HEED_DISPATCH(q.device(), op, attention_probabilities(q, k, lse.contiguous(), checked));
}

}  // namespace heed::ops
