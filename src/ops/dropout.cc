// Checks and dispatch for dropout; the mask and the loop are in dropout_cpu.cc and, on the GPU path,
// kernels/activation_dropout.cu. Forward and backward are one map (multiply by the mask and 1 / (1 - p)),
// applied to x and to dy.
#include "heed/ops/dropout.h"

#include "ops/dispatch.h"
#include "ops/dropout_backends.h"

namespace heed::ops {

namespace {

Tensor apply(const Tensor& x, float p, const RandomKey& key, const char* op) {
  check_float(x, op, "input");
  HEED_CHECK(p >= 0.0f && p < 1.0f, "{}: probability must be in [0, 1), got {}", op, p);
  if (p == 0.0f) return x;
  Tensor xc = x.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  HEED_DISPATCH(x.device(), op, dropout_apply(xc, y, p, key));
  return y;
}

}  // namespace

Tensor dropout_forward(const Tensor& x, float p, const RandomKey& key) { return apply(x, p, key, "dropout"); }

Tensor dropout_backward(const Tensor& dy, float p, const RandomKey& key) {
  return apply(dy, p, key, "dropout_backward");
}

}  // namespace heed::ops
