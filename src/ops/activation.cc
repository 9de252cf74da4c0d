// Names, checks and dispatch for the feed-forward activations; the loops are in activation_cpu.cc and, on
// the GPU path, kernels/activation_dropout.cu.
#include "heed/ops/activation.h"

#include "ops/activation_backends.h"
#include "ops/dispatch.h"

namespace heed::ops {

Activation parse_activation(const std::string& name) {
  if (name == "relu") return Activation::ReLU;
  if (name == "gelu") return Activation::GELU;
  HEED_CHECK(name == "swish" || name == "silu", "unknown activation '{}': expected relu, gelu, swish or silu", name);
  return Activation::SiLU;
}

std::string activation_name(Activation act) {
  switch (act) {
    case Activation::ReLU: return "relu";
    case Activation::GELU: return "gelu";
    case Activation::SiLU: return "swish";
  }
  return "unknown";
}

Tensor activation_forward(const Tensor& x, Activation act) {
  check_float(x, "activation", "x");
  Tensor xc = x.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  HEED_DISPATCH(x.device(), "activation", activation_forward(xc, y, act));
  return y;
}

Tensor activation_backward(const Tensor& dy, const Tensor& x, Activation act, float dropout_p,
                           const RandomKey& dropout_key) {
  check_float(dy, "activation_backward", "dy");
  check_float(x, "activation_backward", "x");
  HEED_CHECK(dy.dtype() == x.dtype(), "activation_backward: dy is {}, x is {}", dtype_name(dy.dtype()),
             dtype_name(x.dtype()));
  HEED_CHECK(dy.shape() == x.shape(), "activation_backward: dy has shape {}, expected x's shape {}",
             shape_str(dy.shape()), shape_str(x.shape()));
  HEED_CHECK(dy.device() == x.device(), "activation_backward: dy on {}, x on {}", dy.device().str(),
             x.device().str());
  Tensor dyc = dy.contiguous(), xc = x.contiguous();
  Tensor dx = Tensor::empty(x.shape(), x.dtype(), x.device());
  HEED_CHECK(dropout_p >= 0.0f && dropout_p < 1.0f, "activation_backward: dropout_p must be in [0, 1), got {}",
             dropout_p);
  HEED_DISPATCH(x.device(), "activation_backward", activation_backward(dyc, xc, dx, act, dropout_p, dropout_key));
  return dx;
}

}  // namespace heed::ops
