// Broadcasting rules and dispatch for pointwise arithmetic; the loops are in elementwise_cpu.cc and
// elementwise_gpu.cc.
#include "heed/ops/elementwise.h"

#include "ops/dispatch.h"
#include "ops/elementwise_backends.h"

namespace heed::ops {

namespace {

Shape broadcast_shape(const Shape& a, const Shape& b) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    HEED_CHECK(da == db || da == 1 || db == 1, "shapes {} and {} do not broadcast", shape_str(a), shape_str(b));
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Tensor binary(const Tensor& a, const Tensor& b, Binary op, const char* name) {
  check_float(a, name, "a");
  check_float(b, name, "b");
  HEED_CHECK(a.device() == b.device(), "{}: operands on {} and {}", name, a.device().str(), b.device().str());
  HEED_CHECK(a.dtype() == b.dtype(), "{}: operands of {} and {}", name, dtype_name(a.dtype()), dtype_name(b.dtype()));
  const Shape shape = broadcast_shape(a.shape(), b.shape());
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  HEED_DISPATCH(a.device(), name, binary(a.expand(shape), b.expand(shape), out, op));
  return out;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return binary(a, b, Binary::Add, "add"); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary(a, b, Binary::Mul, "mul"); }

Tensor add_bias(const Tensor& x, const Tensor& bias) {
  HEED_CHECK(bias.dim() == 1 && x.dim() >= 1 && bias.size(0) == x.size(-1), "add_bias: bias {} does not fit x {}",
             shape_str(bias.shape()), shape_str(x.shape()));
  return add(x, bias);
}

Tensor scale(const Tensor& x, float alpha) {
  check_float(x, "scale", "x");
  Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  HEED_DISPATCH(x.device(), "scale", scale(xc, out, alpha));
  return out;
}

void axpy_(Tensor& dst, const Tensor& src, float alpha) {
  check_float(dst, "axpy", "dst");
  check_float(src, "axpy", "src");
  HEED_CHECK(dst.shape() == src.shape(), "axpy: shapes {} and {} differ", shape_str(dst.shape()),
             shape_str(src.shape()));
  HEED_CHECK(dst.is_contiguous(), "axpy: destination must be contiguous");
  Tensor sc = src.contiguous();
  HEED_DISPATCH(dst.device(), "axpy", axpy(dst, sc, alpha));
}

Tensor sum_to(const Tensor& grad, const Shape& shape) {
  if (grad.shape() == shape) return grad;
  check_float(grad, "sum_to", "grad");
  if (shape.size() == 1 && grad.dim() >= 1 && shape[0] == grad.size(-1)) return sum_rows(grad).to(grad.dtype());
  Tensor out = Tensor::zeros(shape, grad.dtype(), grad.device());
  HEED_DISPATCH(grad.device(), "sum_to", sum_to(grad, out.expand(grad.shape())));
  return out;
}

Tensor sum(const Tensor& x) {
  check_float(x, "sum", "x");
  Tensor out = Tensor::empty({}, DType::F32, x.device());
  HEED_DISPATCH(x.device(), "sum", sum(x.contiguous(), out));
  return out;
}

Tensor sum_rows(const Tensor& x) {
  check_float(x, "sum_rows", "x");
  HEED_CHECK(x.dim() >= 1, "sum_rows needs at least one dimension");
  Tensor out = Tensor::empty({x.size(-1)}, DType::F32, x.device());
  Tensor xc = x.contiguous();
  HEED_DISPATCH(x.device(), "sum_rows", sum_rows(xc, out));
  return out;
}

}  // namespace heed::ops
