// Shape checks and dispatch for matrix products; matmul_cpu.cc and matmul_gpu.cc make the GEMM calls.
#include "heed/ops/matmul.h"

#include "core/gemm.h"
#include "ops/dispatch.h"
#include "ops/matmul_backends.h"

namespace heed::ops {

namespace {

void check_matmul(const Tensor& a, const Tensor& b, const Tensor& out, bool trans_a, bool trans_b) {
  if (a.device().is_cpu()) {
    check_f32(a, "matmul", "a");
    check_f32(b, "matmul", "b");
    check_f32(out, "matmul", "out");
  } else {  // the GPU path multiplies 16-bit inputs with fp32 accumulation
    HEED_CHECK(a.dtype() == b.dtype() && (a.dtype() == DType::F32 || a.dtype() == DType::BF16 || a.dtype() == DType::F16),
               "matmul: operands must share one of F32, BF16, F16, got {} and {}", dtype_name(a.dtype()),
               dtype_name(b.dtype()));
    HEED_CHECK(out.dtype() == DType::F32 || out.dtype() == a.dtype(), "matmul: output {} for {} operands",
               dtype_name(out.dtype()), dtype_name(a.dtype()));
  }
  HEED_CHECK(a.dim() >= 2 && b.dim() >= 2, "matmul needs matrices, got {} and {}", shape_str(a.shape()),
             shape_str(b.shape()));
  HEED_CHECK(b.dim() == 2 || b.dim() == a.dim(), "matmul: b must be 2-d or have a's rank ({} vs {})",
             shape_str(b.shape()), shape_str(a.shape()));
  const int64_t k_a = trans_a ? a.size(-2) : a.size(-1);
  const int64_t k_b = trans_b ? b.size(-1) : b.size(-2);
  HEED_CHECK(k_a == k_b, "matmul: inner dimensions differ: {}{} x {}{}", shape_str(a.shape()), trans_a ? "^T" : "",
             shape_str(b.shape()), trans_b ? "^T" : "");
  Shape expect(a.shape().begin(), a.shape().end() - 2);
  if (b.dim() > 2)
    HEED_CHECK(Shape(b.shape().begin(), b.shape().end() - 2) == expect, "matmul: batch dimensions differ: {} vs {}",
               shape_str(a.shape()), shape_str(b.shape()));
  expect.push_back(trans_a ? a.size(-1) : a.size(-2));
  expect.push_back(trans_b ? b.size(-2) : b.size(-1));
  HEED_CHECK(out.shape() == expect, "matmul: output has shape {}, expected {}", shape_str(out.shape()),
             shape_str(expect));
  HEED_CHECK(out.is_contiguous(), "matmul: output must be contiguous");
  HEED_CHECK(a.device() == b.device() && a.device() == out.device(), "matmul: operands on different devices");
}

// The checks of a Linear layer's input gradient dx = dy . weight.
void check_input_gradient(const Tensor& dy, const Tensor& weight, const Tensor& dx) {
  HEED_CHECK(dy.dim() == 2 && weight.dim() == 2, "linear backward: dy {} and weight {} must be matrices",
             shape_str(dy.shape()), shape_str(weight.shape()));
  check_matmul(dy, weight, dx, false, false);
  HEED_CHECK(dx.dtype() == dy.dtype(), "linear backward: dx is {}, dy {}", dtype_name(dx.dtype()),
             dtype_name(dy.dtype()));
}

// A Linear layer's forward, with the ReLU's mask where relu_mask is given.
Tensor linear_with_mask(const Tensor& x, const Tensor& weight, const Tensor& bias, bool relu, Tensor* relu_mask) {
  HEED_CHECK(x.dim() == 2 && weight.dim() == 2 && bias.dim() == 1 && bias.size(0) == weight.size(0),
             "linear: x {}, weight {} and bias {} do not fit", shape_str(x.shape()), shape_str(weight.shape()),
             shape_str(bias.shape()));
  HEED_CHECK(bias.dtype() == x.dtype() && bias.device() == x.device(), "linear: bias is {} on {}, x {} on {}",
             dtype_name(bias.dtype()), bias.device().str(), dtype_name(x.dtype()), x.device().str());
  Tensor out = Tensor::empty({x.size(0), weight.size(0)}, x.dtype(), x.device());
  check_matmul(x, weight, out, false, true);
  if (relu_mask) *relu_mask = Tensor::empty({x.size(0), relu_mask_bytes(weight.size(0))}, DType::U8, x.device());
  const Tensor bc = bias.contiguous();
  HEED_DISPATCH(x.device(), "linear", linear_forward(x, weight, bc, relu, out, relu_mask));
  return out;
}

}  // namespace

void matmul_into(const Tensor& a, const Tensor& b, Tensor& out, bool trans_a, bool trans_b, float alpha, float beta) {
  check_matmul(a, b, out, trans_a, trans_b);
  HEED_DISPATCH(a.device(), "matmul", matmul_into(a, b, out, trans_a, trans_b, alpha, beta));
}

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b, float alpha) {
  Shape shape(a.shape().begin(), a.shape().end() - 2);
  shape.push_back(trans_a ? a.size(-1) : a.size(-2));
  shape.push_back(trans_b ? b.size(-2) : b.size(-1));
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  matmul_into(a, b, out, trans_a, trans_b, alpha, 0.0f);
  return out;
}

Tensor linear_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, bool relu) {
  return linear_with_mask(x, weight, bias, relu, nullptr);
}

Tensor linear_relu_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor* relu_mask) {
  return linear_with_mask(x, weight, bias, true, relu_mask);
}

int64_t relu_mask_bytes(int64_t features) { return relu_mask_ld(features) / 8; }

void linear_backward_weight(const Tensor& dy, const Tensor& x, Tensor& dw, float beta, Tensor* db) {
  HEED_CHECK(dy.dim() == 2 && x.dim() == 2 && dy.size(0) == x.size(0), "linear backward: dy {} and x {} do not fit",
             shape_str(dy.shape()), shape_str(x.shape()));
  check_f32(dw, "linear backward", "dw");
  check_matmul(dy, x, dw, true, false);
  if (db) {
    check_f32(*db, "linear backward", "db");
    HEED_CHECK(db->shape() == Shape{dy.size(1)} && db->is_contiguous() && db->device() == dy.device(),
               "linear backward: db must be a contiguous [{}] on {}, got {} on {}", dy.size(1), dy.device().str(),
               shape_str(db->shape()), db->device().str());
  }
  HEED_DISPATCH(dy.device(), "linear_backward_weight", linear_backward_weight(dy, x, dw, beta, db));
}

void linear_backward_input(const Tensor& dy, const Tensor& weight, Tensor& dx, const Tensor& prior) {
  check_input_gradient(dy, weight, dx);
  if (prior.defined())
    HEED_CHECK(prior.shape() == dx.shape() && prior.dtype() == dx.dtype() && prior.is_contiguous() &&
                   prior.device() == dx.device(),
               "linear backward: the gradient so far is {} {} on {}, dx {} {} on {}", shape_str(prior.shape()),
               dtype_name(prior.dtype()), prior.device().str(), shape_str(dx.shape()), dtype_name(dx.dtype()),
               dx.device().str());
  HEED_DISPATCH(dy.device(), "linear_backward_input", linear_backward_input(dy, weight, dx, prior));
}

void linear_backward_input_relu(const Tensor& dy, const Tensor& weight, Tensor& dx, const Tensor& relu_mask) {
  check_input_gradient(dy, weight, dx);
  HEED_CHECK(relu_mask.defined() && relu_mask.dtype() == DType::U8 && relu_mask.is_contiguous() &&
                 relu_mask.shape() == Shape({dx.size(0), relu_mask_bytes(dx.size(1))}) &&
                 relu_mask.device() == dx.device(),
             "linear backward: the ReLU mask must be a contiguous U8 [{}, {}] on {}", dx.size(0),
             relu_mask_bytes(dx.size(1)), dx.device().str());
  HEED_DISPATCH(dy.device(), "linear_backward_input_relu", linear_backward_input_relu(dy, weight, dx, relu_mask));
}

}  // namespace heed::ops
