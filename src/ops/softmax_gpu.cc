// Softmax on the GPU path: kernels/softmax.cu over the contiguous rows softmax.cc hands over.
#include "core/kernel_args.h"
#include "kernels/softmax.h"
#include "ops/softmax_backends.h"

namespace heed::ops::gpu {

namespace {

kernels::SoftmaxArgs rows_of(const Tensor& t) {
  kernels::SoftmaxArgs args;
  args.cols = t.size(-1);
  args.rows = t.numel() / args.cols;
  args.dtype = t.dtype();
  return args;
}

}  // namespace

void softmax_forward(const Tensor& x, Tensor& y) {
  kernels::SoftmaxArgs args = rows_of(x);
  args.x = x.raw_data();
  args.out = y.raw_data();
  HEED_RUN_KERNEL(x.device(), softmax_forward, args);
}

void softmax_backward(const Tensor& dy, const Tensor& y, Tensor& dx) {
  kernels::SoftmaxArgs args = rows_of(y);
  args.y = y.raw_data();
  args.dy = dy.raw_data();
  args.out = dx.raw_data();
  HEED_RUN_KERNEL(y.device(), softmax_backward, args);
}

}  // namespace heed::ops::gpu
