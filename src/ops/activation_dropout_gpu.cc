// The GPU path of the activation and dropout ops: the kernels of kernels/activation_dropout.cu with only
// the activation, or only the dropout, switched on. Tensors are contiguous, so the dropout index of an
// element is its flat index, as on the CPU.
#include "core/kernel_args.h"
#include "kernels/activation_dropout.h"
#include "ops/activation_backends.h"
#include "ops/dropout_backends.h"

namespace heed::ops::gpu {

namespace {

kernels::ActivationDropoutArgs elements_of(const Tensor& x) {
  kernels::ActivationDropoutArgs a;
  a.n = x.numel();
  a.dtype = x.dtype();
  a.x = x.raw_data();
  return a;
}

kernels::Activation kernel_activation(Activation act) {
  switch (act) {
    case Activation::ReLU: return kernels::Activation::ReLU;
    case Activation::GELU: return kernels::Activation::GELU;
    case Activation::SiLU: return kernels::Activation::SiLU;
  }
  HEED_CHECK(false, "activation {} has no GPU kernel", static_cast<int>(act));
}

}  // namespace

void activation_forward(const Tensor& x, Tensor& y, Activation act) {
  kernels::ActivationDropoutArgs a = elements_of(x);
  a.act = kernel_activation(act);
  a.y = y.raw_data();
  HEED_RUN_KERNEL(x.device(), activation_dropout_forward, a);
}

void activation_backward(const Tensor& dy, const Tensor& x, Tensor& dx, Activation act, float dropout_p,
                         const RandomKey& dropout_key) {
  kernels::ActivationDropoutArgs a = elements_of(x);
  a.act = kernel_activation(act);
  a.dropout_p = dropout_p;
  a.dropout_key = dropout_key;
  a.dy = dy.raw_data();
  a.dx = dx.raw_data();
  HEED_RUN_KERNEL(x.device(), activation_dropout_backward, a);
}

void dropout_apply(const Tensor& x, const Tensor& residual, Tensor& y, float p, const RandomKey& key) {
  kernels::ActivationDropoutArgs a = elements_of(x);
  a.dropout_p = p;
  a.dropout_key = key;
  a.y = y.raw_data();
  if (residual.defined()) a.residual = residual.raw_data();
  HEED_RUN_KERNEL(x.device(), activation_dropout_forward, a);
}

}  // namespace heed::ops::gpu
