// Pointwise arithmetic and sums on the GPU path, through the generic kernels of kernels/elementwise.cu
// and kernels/reduce.cu, which read any strides: broadcast operands go in as the stride-0 views
// elementwise.cc makes, with no copies.
#include "core/kernel_args.h"
#include "kernels/elementwise.h"
#include "kernels/reduce.h"
#include "ops/elementwise_backends.h"

namespace heed::ops::gpu {

namespace {

// out = alpha * a + beta * b, or alpha * a * b.
void pointwise(kernels::PointwiseOp op, const Tensor& a, const Tensor& b, Tensor& out, float alpha, float beta) {
  kernels::PointwiseArgs args;
  args.op = op;
  args.out = kernel_layout(out);
  args.a = kernel_layout(a);
  args.b = kernel_layout(b);
  args.alpha = alpha;
  args.beta = beta;
  HEED_RUN_KERNEL(out.device(), pointwise, args);
}

}  // namespace

void binary(const Tensor& a, const Tensor& b, Tensor& out, Binary op) {
  pointwise(op == Binary::Add ? kernels::PointwiseOp::Add : kernels::PointwiseOp::Mul, a, b, out, 1.0f, 1.0f);
}

void scale(const Tensor& x, Tensor& out, float alpha) { pointwise(kernels::PointwiseOp::Add, x, x, out, alpha, 0.0f); }

void axpy(Tensor& dst, const Tensor& src, float alpha) {
  pointwise(kernels::PointwiseOp::Add, dst, src, dst, 1.0f, alpha);
}

void sum_to(const Tensor& grad, const Tensor& out_expanded) {
  kernels::SumToArgs args;
  args.in = kernel_layout(grad);
  // out is contiguous with its own shape; as a tensor of grad's rank it has size 1 wherever it was
  // broadcast (stride 0 in out_expanded), and the same row-major element order.
  args.out = kernel_layout(out_expanded);
  for (int d = 0; d < grad.dim(); ++d)
    if (out_expanded.stride(d) == 0) args.out.sizes[d] = 1;
  HEED_RUN_KERNEL(grad.device(), sum_to, args);
}

void sum_rows(const Tensor& x, Tensor& out) {
  kernels::SumRowsArgs args;
  args.in = x.raw_data();
  args.dtype = x.dtype();
  args.cols = x.size(-1);
  args.rows = args.cols > 0 ? x.numel() / args.cols : 0;
  args.out = static_cast<float*>(out.raw_data());
  const auto bytes = static_cast<int64_t>(kernels::sum_rows_workspace_bytes<kernels::Backend::Sim>(args));
  Tensor workspace = Tensor::empty({std::max<int64_t>(bytes, 1)}, DType::U8, x.device());
  args.workspace = workspace.raw_data();
  HEED_RUN_KERNEL(x.device(), sum_rows, args);
}

void sum(const Tensor& x, Tensor& out) {
  Tensor workspace = Tensor::empty({static_cast<int64_t>(kernels::sum_all_workspace_bytes())}, DType::U8, x.device());
  kernels::SumAllArgs args;
  args.in = kernel_layout(x);
  args.out = static_cast<float*>(out.raw_data());
  args.workspace = workspace.raw_data();
  HEED_RUN_KERNEL(x.device(), sum_all, args);
}

}  // namespace heed::ops::gpu
