// Generic pointwise kernels: one thread per output element, in a grid-stride loop.
//
// These serve the ops whose speed does not matter much next to the GEMMs and the fused kernels (copies
// of transposed views, dtype conversions, broadcasting add and mul in the autograd glue), so they favour
// generality: any rank up to kMaxDims, any strides, any dtype pair. Each thread turns its flat output
// index into per-operand offsets with a div/mod per dimension; the loads of consecutive threads are
// consecutive whenever the operand's last dimension is dense, so the common cases coalesce. The grid is
// capped at 1024 blocks of 256 threads, enough to fill any current GPU, and the loop covers the rest.
#include "common/elements.h"
#include "common/launch.h"
#include "elementwise.h"

namespace heed::kernels {

namespace HEED_BACKEND {

__device__ __forceinline__ void copy_bits(void* dst, int64_t di, const void* src, int64_t si, int bytes) {
  switch (bytes) {
    case 1: static_cast<uint8_t*>(dst)[di] = static_cast<const uint8_t*>(src)[si]; break;
    case 2: static_cast<uint16_t*>(dst)[di] = static_cast<const uint16_t*>(src)[si]; break;
    case 4: static_cast<uint32_t*>(dst)[di] = static_cast<const uint32_t*>(src)[si]; break;
    default: static_cast<uint64_t*>(dst)[di] = static_cast<const uint64_t*>(src)[si]; break;
  }
}

__device__ __forceinline__ int element_bytes(DType t) {
  switch (t) {
    case DType::U8: return 1;
    case DType::BF16:
    case DType::F16: return 2;
    case DType::F32:
    case DType::I32: return 4;
    default: return 8;
  }
}

__global__ void pointwise_kernel(PointwiseArgs p, int64_t n) {
  const TensorLayout& o = p.out;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t oi = strided_offset(i, o.dims, o.sizes, o.strides);
    if (p.op == PointwiseOp::Fill) {
      store_element(o.data, oi, o.dtype, p.value);
      continue;
    }
    const int64_t ai = strided_offset(i, p.a.dims, p.a.sizes, p.a.strides);
    if (p.op == PointwiseOp::Copy && p.a.dtype == o.dtype) {
      copy_bits(o.data, oi, p.a.data, ai, element_bytes(o.dtype));
      continue;
    }
    const float a = load_element(p.a.data, ai, p.a.dtype);
    float v = a;
    if (p.op != PointwiseOp::Copy) {
      const float b = load_element(p.b.data, strided_offset(i, p.b.dims, p.b.sizes, p.b.strides), p.b.dtype);
      v = p.op == PointwiseOp::Add ? p.alpha * a + p.beta * b : p.alpha * a * b;
    }
    store_element(o.data, oi, o.dtype, v);
  }
}

}  // namespace HEED_BACKEND

template <>
void pointwise<kBackend>(const PointwiseArgs& args) {
  int64_t n = 1;
  for (int d = 0; d < args.out.dims; ++d) n *= args.out.sizes[d];
  if (n == 0) return;
  constexpr int kThreads = 256;
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  HEED_BACKEND::launch(HEED_BACKEND::pointwise_kernel, dim3(static_cast<unsigned>(blocks < 1024 ? blocks : 1024)),
                       dim3(kThreads), 0, args.stream, args, n);
}

}  // namespace heed::kernels
