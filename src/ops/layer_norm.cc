// Shape checks and dispatch for LayerNorm; the math is in layer_norm_cpu.cc and, on the GPU path,
// kernels/layer_norm.cu.
#include "heed/ops/layer_norm.h"

#include "ops/dispatch.h"
#include "ops/layer_norm_backends.h"

namespace heed::ops {

namespace {

void check_param(const Tensor& p, const Tensor& x, const char* op, const char* what) {
  check_f32(p, op, what);
  HEED_CHECK(p.dim() == 1 && p.size(0) == x.size(-1), "{}: {} has shape {}, expected [{}] for x of shape {}", op,
             what, shape_str(p.shape()), x.size(-1), shape_str(x.shape()));
  HEED_CHECK(p.device() == x.device(), "{}: {} on {}, x on {}", op, what, p.device().str(), x.device().str());
}

int64_t rows_of(const Tensor& x) { return x.size(-1) ? x.numel() / x.size(-1) : 0; }

}  // namespace

LayerNormResult layer_norm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) {
  check_float(x, "layer_norm", "x");
  HEED_CHECK(x.dim() >= 1 && x.size(-1) > 0, "layer_norm: x must have a non-empty last dimension, got {}",
             shape_str(x.shape()));
  check_param(gamma, x, "layer_norm", "gamma");
  check_param(beta, x, "layer_norm", "beta");
  HEED_CHECK(eps >= 0.0f, "layer_norm: eps must be non-negative, got {}", eps);
  const Tensor xc = x.contiguous(), gc = gamma.contiguous(), bc = beta.contiguous();
  const int64_t rows = rows_of(x);
  LayerNormResult r{Tensor::empty(x.shape(), x.dtype(), x.device()), Tensor::empty({rows}, DType::F32, x.device()),
                    Tensor::empty({rows}, DType::F32, x.device())};
  HEED_DISPATCH(x.device(), "layer_norm", layer_norm_forward(xc, gc, bc, eps, r.y, r.mean, r.rstd));
  return r;
}

LayerNormGrads layer_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& mean,
                                   const Tensor& rstd) {
  check_float(dy, "layer_norm_backward", "dy");
  check_float(x, "layer_norm_backward", "x");
  HEED_CHECK(dy.dtype() == x.dtype(), "layer_norm_backward: dy is {}, x is {}", dtype_name(dy.dtype()),
             dtype_name(x.dtype()));
  HEED_CHECK(x.dim() >= 1 && x.size(-1) > 0, "layer_norm_backward: x must have a non-empty last dimension, got {}",
             shape_str(x.shape()));
  HEED_CHECK(dy.shape() == x.shape(), "layer_norm_backward: dy has shape {}, expected x's shape {}",
             shape_str(dy.shape()), shape_str(x.shape()));
  HEED_CHECK(dy.device() == x.device(), "layer_norm_backward: dy on {}, x on {}", dy.device().str(),
             x.device().str());
  check_param(gamma, x, "layer_norm_backward", "gamma");
  const int64_t rows = rows_of(x);
  for (const auto& [t, what] : {std::pair{&mean, "mean"}, std::pair{&rstd, "rstd"}}) {
    check_f32(*t, "layer_norm_backward", what);
    HEED_CHECK(t->dim() == 1 && t->size(0) == rows, "layer_norm_backward: {} has shape {}, expected [{}]", what,
               shape_str(t->shape()), rows);
    HEED_CHECK(t->device() == x.device(), "layer_norm_backward: {} on {}, x on {}", what, t->device().str(),
               x.device().str());
  }
  const Tensor dyc = dy.contiguous(), xc = x.contiguous(), gc = gamma.contiguous(), mc = mean.contiguous(),
               rc = rstd.contiguous();
  // dgamma and dbeta are the rows of one [2, D] tensor, which the GPU path sums in one launch.
  const int64_t d = x.size(-1);
  const Tensor param_grads = Tensor::empty({2, d}, DType::F32, x.device());
  LayerNormGrads g{Tensor::empty(x.shape(), x.dtype(), x.device()), param_grads.narrow(0, 0, 1).view({d}),
                   param_grads.narrow(0, 1, 1).view({d})};
  HEED_DISPATCH(x.device(), "layer_norm_backward", layer_norm_backward(dyc, xc, gc, mc, rc, g.dx, g.dgamma, g.dbeta));
  return g;
}

}  // namespace heed::ops
