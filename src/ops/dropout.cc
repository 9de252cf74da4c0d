// Checks and dispatch for dropout; the mask and the loop are in dropout_cpu.cc and, on the GPU path,
// kernels/activation_dropout.cu. Forward and backward are one map (multiply by the mask and 1 / (1 - p)),
// applied to x and to dy; dropout_add adds a residual in the forward map's pass.
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
  HEED_DISPATCH(x.device(), op, dropout_apply(xc, Tensor(), y, p, key));
  return y;
}

}  // namespace

Tensor dropout_forward(const Tensor& x, float p, const RandomKey& key) { return apply(x, p, key, "dropout"); }

Tensor dropout_backward(const Tensor& dy, float p, const RandomKey& key) {
  return apply(dy, p, key, "dropout_backward");
}

Tensor dropout_add_forward(const Tensor& residual, const Tensor& x, float p, const RandomKey& key) {
  check_float(x, "dropout_add", "x");
  HEED_CHECK(p > 0.0f && p < 1.0f, "dropout_add: probability must be in (0, 1), got {}", p);
  HEED_CHECK(residual.shape() == x.shape() && residual.dtype() == x.dtype() && residual.device() == x.device(),
             "dropout_add: residual {} {} on {} for x {} {} on {}", shape_str(residual.shape()),
             dtype_name(residual.dtype()), residual.device().str(), shape_str(x.shape()), dtype_name(x.dtype()),
             x.device().str());
  Tensor xc = x.contiguous(), rc = residual.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  HEED_DISPATCH(x.device(), "dropout_add", dropout_apply(xc, rc, y, p, key));
  return y;
}

}  // namespace heed::ops
