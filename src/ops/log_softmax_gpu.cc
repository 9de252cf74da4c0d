// Log-softmax on the GPU path: kernels/softmax.cu's log_softmax over the contiguous rows log_softmax.cc
// hands over.
#include "core/kernel_args.h"
#include "kernels/softmax.h"
#include "ops/log_softmax_backends.h"

namespace heed::ops::gpu {

void log_softmax(const Tensor& x, Tensor& y) {
  kernels::SoftmaxArgs args;
  args.cols = x.size(-1);
  args.rows = x.numel() / args.cols;
  args.dtype = x.dtype();
  args.x = x.raw_data();
  args.out = y.raw_data();
  HEED_RUN_KERNEL(x.device(), log_softmax, args);
}

}  // namespace heed::ops::gpu
