// The fused cross-entropy on the GPU path: kernels/cross_entropy.cu per row, then the rows' losses summed
// by the deterministic sum kernel (in double), so the result is the same on every run.
#include "core/kernel_args.h"
#include "kernels/cross_entropy.h"
#include "ops/cross_entropy_backends.h"
#include "ops/elementwise_backends.h"

namespace heed::ops::gpu {

namespace {

kernels::CrossEntropyArgs rows_of(const Tensor& logits, const Tensor& targets, int64_t ignore_index, float smoothing) {
  kernels::CrossEntropyArgs a;
  a.rows = logits.size(0);
  a.classes = logits.size(1);
  a.dtype = logits.dtype();
  a.logits = logits.raw_data();
  a.targets = targets.data<int32_t>();
  a.ignore_index = ignore_index;
  a.smoothing = smoothing;
  return a;
}

}  // namespace

void cross_entropy_forward(const Tensor& logits, const Tensor& targets, int64_t ignore_index, float smoothing,
                           Tensor& lse, Tensor& loss_sum, Tensor& nll_sum) {
  const Device device = logits.device();
  Tensor loss = Tensor::empty({logits.size(0)}, DType::F32, device);
  Tensor nll = Tensor::empty({logits.size(0)}, DType::F32, device);
  kernels::CrossEntropyArgs a = rows_of(logits, targets, ignore_index, smoothing);
  a.loss = loss.data<float>();
  a.nll = nll.data<float>();
  a.lse = lse.data<float>();
  HEED_RUN_KERNEL(device, cross_entropy_forward, a);
  sum(loss, loss_sum);
  sum(nll, nll_sum);
}

void cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse, int64_t ignore_index,
                            float smoothing, float grad_scale, const Tensor& dloss, Tensor& dlogits) {
  kernels::CrossEntropyArgs a = rows_of(logits, targets, ignore_index, smoothing);
  a.lse = const_cast<float*>(lse.data<float>());  // read only by the backward pass
  a.grad_scale = grad_scale;
  a.dloss = dloss.defined() ? dloss.data<float>() : nullptr;
  a.dlogits = dlogits.raw_data();
  HEED_RUN_KERNEL(logits.device(), cross_entropy_backward, a);
}

}  // namespace heed::ops::gpu
