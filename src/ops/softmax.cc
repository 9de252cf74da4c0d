// Checks and dispatch for softmax over the last dimension; the loops are in softmax_cpu.cc and
// softmax_gpu.cc.
#include "heed/ops/softmax.h"

#include "ops/dispatch.h"
#include "ops/softmax_backends.h"

namespace heed::ops {

Tensor softmax_forward(const Tensor& x) {
  check_float(x, "softmax", "x");
  HEED_CHECK(x.dim() >= 1 && x.size(-1) > 0, "softmax: x must have a non-empty last dimension, got {}",
             shape_str(x.shape()));
  const Tensor xc = x.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  HEED_DISPATCH(x.device(), "softmax", softmax_forward(xc, y));
  return y;
}

Tensor softmax_backward(const Tensor& dy, const Tensor& y) {
  check_float(dy, "softmax_backward", "dy");
  check_float(y, "softmax_backward", "y");
  HEED_CHECK(dy.dtype() == y.dtype(), "softmax_backward: dy is {}, y is {}", dtype_name(dy.dtype()), dtype_name(y.dtype()));
  HEED_CHECK(dy.shape() == y.shape(), "softmax_backward: dy has shape {}, expected y's shape {}",
             shape_str(dy.shape()), shape_str(y.shape()));
  HEED_CHECK(y.dim() >= 1 && y.size(-1) > 0, "softmax_backward: y must have a non-empty last dimension, got {}",
             shape_str(y.shape()));
  HEED_CHECK(dy.device() == y.device(), "softmax_backward: dy on {}, y on {}", dy.device().str(), y.device().str());
  const Tensor dyc = dy.contiguous(), yc = y.contiguous();
  Tensor dx = Tensor::empty(y.shape(), y.dtype(), y.device());
  HEED_DISPATCH(y.device(), "softmax_backward", softmax_backward(dyc, yc, dx));
  return dx;
}

}  // namespace heed::ops
