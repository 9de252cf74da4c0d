// Checks and dispatch for log_softmax over the last dimension; the loops are in log_softmax_cpu.cc and, on
// the GPU path, kernels/softmax.cu.
#include "heed/ops/log_softmax.h"

#include "ops/dispatch.h"
#include "ops/log_softmax_backends.h"

namespace heed::ops {

Tensor log_softmax(const Tensor& x) {
  check_float(x, "log_softmax", "x");
  HEED_CHECK(x.dim() >= 1 && x.size(-1) > 0, "log_softmax: x must have a non-empty last dimension, got {}",
             shape_str(x.shape()));
  const Tensor xc = x.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  HEED_DISPATCH(x.device(), "log_softmax", log_softmax(xc, y));
  return y;
}

}  // namespace heed::ops
