// Checks and dispatch for the fused label-smoothed cross-entropy; the math is in cross_entropy_cpu.cc and,
// on the GPU path, kernels/cross_entropy.cu.
// Targets are validated here, on the host, where a bad one can be reported by value and row. Targets may
// come on the host for logits on a GPU (a training step's batch does): then they are checked there and
// uploaded, where targets already on the GPU are read back for the check, a host synchronisation.
#include "heed/ops/cross_entropy.h"

#include "ops/cross_entropy_backends.h"
#include "ops/dispatch.h"

namespace heed::ops {

namespace {

void check_logits(const Tensor& logits, const char* op) {
  check_float(logits, op, "logits");
  HEED_CHECK(logits.dim() == 2 && logits.size(1) > 0, "{}: logits must be [N, V] with V > 0, got {}", op,
             shape_str(logits.shape()));
}

// Returns the targets as a contiguous tensor on the logits' device, and in `count` the rows not equal to
// ignore_index, after checking that every other target is a class index.
Tensor checked_targets(const Tensor& targets, const Tensor& logits, int64_t ignore_index, const char* op,
                       int64_t& count) {
  HEED_CHECK(targets.defined(), "{}: targets are undefined", op);
  HEED_CHECK(targets.dtype() == DType::I32, "{}: targets must be I32, got {}", op, dtype_name(targets.dtype()));
  HEED_CHECK(targets.dim() == 1 && targets.size(0) == logits.size(0),
             "{}: targets have shape {}, expected [{}] for logits of shape {}", op, shape_str(targets.shape()),
             logits.size(0), shape_str(logits.shape()));
  HEED_CHECK(targets.device() == logits.device() || targets.device().is_cpu(),
             "{}: targets on {}, expected the logits' device ({}) or the CPU", op, targets.device().str(),
             logits.device().str());
  Tensor tc = targets.contiguous();
  const Tensor host = tc.to(Device::cpu());
  const int32_t* p = host.data<int32_t>();
  const int64_t classes = logits.size(1);
  count = 0;
  for (int64_t i = 0; i < host.numel(); ++i) {
    if (p[i] == ignore_index) continue;
    HEED_CHECK(p[i] >= 0 && p[i] < classes, "{}: target {} at row {} is outside [0, {}) and is not ignore_index ({})",
               op, p[i], i, classes, ignore_index);
    ++count;
  }
  return tc.to(logits.device());
}

void check_smoothing(float smoothing, const char* op) {
  HEED_CHECK(smoothing >= 0.0f && smoothing <= 1.0f, "{}: label smoothing must be in [0, 1], got {}", op,
             smoothing);
}

}  // namespace

CrossEntropyResult cross_entropy_forward(const Tensor& logits, const Tensor& targets, int64_t ignore_index,
                                         float smoothing) {
  check_logits(logits, "cross_entropy");
  check_smoothing(smoothing, "cross_entropy");
  CrossEntropyResult r;
  const Tensor tc = checked_targets(targets, logits, ignore_index, "cross_entropy", r.count);
  const Tensor lc = logits.contiguous();
  r.lse = Tensor::empty({logits.size(0)}, DType::F32, logits.device());
  r.loss_sum = Tensor::empty({}, DType::F32, logits.device());
  r.nll_sum = Tensor::empty({}, DType::F32, logits.device());
  HEED_DISPATCH(logits.device(), "cross_entropy",
                cross_entropy_forward(lc, tc, ignore_index, smoothing, r.lse, r.loss_sum, r.nll_sum));
  return r;
}

Tensor cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse, int64_t ignore_index,
                              float smoothing, float grad_scale, const Tensor& dloss) {
  check_logits(logits, "cross_entropy_backward");
  check_smoothing(smoothing, "cross_entropy_backward");
  int64_t count = 0;
  const Tensor tc = checked_targets(targets, logits, ignore_index, "cross_entropy_backward", count);
  check_f32(lse, "cross_entropy_backward", "lse");
  HEED_CHECK(lse.dim() == 1 && lse.size(0) == logits.size(0),
             "cross_entropy_backward: lse has shape {}, expected [{}]", shape_str(lse.shape()), logits.size(0));
  HEED_CHECK(lse.device() == logits.device(), "cross_entropy_backward: lse on {}, logits on {}", lse.device().str(),
             logits.device().str());
  if (dloss.defined()) {
    HEED_CHECK(dloss.dtype() == DType::F32 && dloss.numel() == 1 && dloss.device() == logits.device(),
               "cross_entropy_backward: dloss must be one F32 value on {}, got {} of shape {} on {}",
               logits.device().str(), dtype_name(dloss.dtype()), shape_str(dloss.shape()), dloss.device().str());
  }
  const Tensor lc = logits.contiguous(), lsec = lse.contiguous();
  Tensor dlogits = Tensor::empty(logits.shape(), logits.dtype(), logits.device());
  HEED_DISPATCH(logits.device(), "cross_entropy_backward",
                cross_entropy_backward(lc, tc, lsec, ignore_index, smoothing, grad_scale, dloss, dlogits));
  return dlogits;
}

}  // namespace heed::ops
