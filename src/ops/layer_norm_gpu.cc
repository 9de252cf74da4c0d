// LayerNorm on the GPU path: kernels/layer_norm.cu over the contiguous rows layer_norm.cc hands over.
#include "core/kernel_args.h"
#include "kernels/layer_norm.h"
#include "ops/layer_norm_backends.h"

namespace heed::ops::gpu {

namespace {

kernels::LayerNormArgs rows_of(const Tensor& x, const Tensor& gamma, const Tensor& mean, const Tensor& rstd) {
  kernels::LayerNormArgs a;
  a.cols = x.size(-1);
  a.rows = x.numel() / a.cols;
  a.dtype = x.dtype();
  a.x = x.raw_data();
  a.gamma = gamma.data<float>();
  a.mean = mean.data<float>();
  a.rstd = rstd.data<float>();
  return a;
}

}  // namespace

void layer_norm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps, Tensor& y,
                        Tensor& mean, Tensor& rstd) {
  kernels::LayerNormArgs a = rows_of(x, gamma, mean, rstd);
  a.eps = eps;
  a.beta = beta.data<float>();
  a.y = y.raw_data();
  HEED_RUN_KERNEL(x.device(), layer_norm_forward, a);
}

void layer_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& mean,
                         const Tensor& rstd, Tensor& dx, Tensor& dgamma, Tensor& dbeta) {
  kernels::LayerNormArgs a = rows_of(x, gamma, mean, rstd);
  a.dy = dy.raw_data();
  a.dx = dx.raw_data();
  HEED_CHECK(dbeta.data<float>() == dgamma.data<float>() + dgamma.numel(),
             "layer_norm_backward: dgamma and dbeta must be the rows of one [2, D] tensor");
  a.param_grads = dgamma.data<float>();
  // The workspace size is host arithmetic, the same in both builds; the simulator's is always linked.
  const Tensor workspace = Tensor::empty(
      {static_cast<int64_t>(kernels::layer_norm_backward_workspace_bytes<kernels::Backend::Sim>(a))}, DType::U8,
      x.device());
  a.workspace = workspace.raw_data();
  HEED_RUN_KERNEL(x.device(), layer_norm_backward, a);
}

}  // namespace heed::ops::gpu
