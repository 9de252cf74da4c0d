// Generic pointwise kernels: copies, conversions, fills, and add and mul with broadcasting.
//
// These serve the ops of the tensor glue (copies of transposed views, dtype conversions, broadcasting add
// and mul in autograd), so they take any rank up to kMaxDims, any strides and any dtype pair. Two kernels:
//   - pointwise_dense_kernel, when every operand is dense row-major with out's sizes, 16-byte aligned, and
//     of a floating type (the residual adds and the gradient sums of a training step): a thread owns 8
//     consecutive elements and moves them in 16-byte accesses (one for 16-bit types, two for fp32), so a
//     warp's request covers 512 contiguous bytes and no index arithmetic is done; the last partial group
//     goes element by element;
//   - pointwise_kernel otherwise: one thread per output element in a grid-stride loop, each turning its
//     flat index into per-operand offsets with a div/mod per dimension. The loads of consecutive threads
//     are consecutive whenever an operand's last dimension is dense, so the common cases coalesce. Its
//     grid is capped at 1024 blocks of 256 threads, enough to fill any current GPU.
#include "common/elements.h"
#include "common/launch.h"
#include "elementwise.h"
#include "storage_types.h"

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

// out[oi] = op(a[ai], b[bi]): one element, the body of both kernels.
__device__ __forceinline__ void pointwise_element(const PointwiseArgs& p, int64_t oi, int64_t ai, int64_t bi) {
  const TensorLayout& o = p.out;
  if (p.op == PointwiseOp::Fill) {
    store_element(o.data, oi, o.dtype, p.value);
    return;
  }
  if (p.op == PointwiseOp::Copy && p.a.dtype == o.dtype) {
    copy_bits(o.data, oi, p.a.data, ai, element_bytes(o.dtype));
    return;
  }
  const float a = load_element(p.a.data, ai, p.a.dtype);
  float v = a;
  if (p.op != PointwiseOp::Copy) {
    const float b = load_element(p.b.data, bi, p.b.dtype);
    v = p.op == PointwiseOp::Add ? p.alpha * a + p.beta * b : p.alpha * a * b;
  }
  store_element(o.data, oi, o.dtype, v);
}

__global__ void pointwise_kernel(PointwiseArgs p, int64_t n) {
  const bool binary = p.op == PointwiseOp::Add || p.op == PointwiseOp::Mul;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t oi = strided_offset(i, p.out.dims, p.out.sizes, p.out.strides);
    const int64_t ai = p.op == PointwiseOp::Fill ? 0 : strided_offset(i, p.a.dims, p.a.sizes, p.a.strides);
    const int64_t bi = binary ? strided_offset(i, p.b.dims, p.b.sizes, p.b.strides) : 0;
    pointwise_element(p, oi, ai, bi);
  }
}

constexpr int kDensePerThread = 8;

// Elements first .. first + kDensePerThread - 1 of a dense, 16-byte aligned tensor of a floating type.
__device__ __forceinline__ void load_dense(const TensorLayout& t, int64_t first, float (&v)[kDensePerThread]) {
  switch (t.dtype) {
    case DType::F32: load_floats(static_cast<const float*>(t.data) + first, v); break;
    case DType::BF16: load_floats(static_cast<const __nv_bfloat16*>(t.data) + first, v); break;
    default: load_floats(static_cast<const __half*>(t.data) + first, v); break;
  }
}

__device__ __forceinline__ void store_dense(const TensorLayout& t, int64_t first, const float (&v)[kDensePerThread]) {
  switch (t.dtype) {
    case DType::F32: store_floats(static_cast<float*>(t.data) + first, v); break;
    case DType::BF16: store_floats(static_cast<__nv_bfloat16*>(t.data) + first, v); break;
    default: store_floats(static_cast<__half*>(t.data) + first, v); break;
  }
}

__global__ void pointwise_dense_kernel(PointwiseArgs p, int64_t n) {
  const int64_t first = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * kDensePerThread;
  if (first >= n) return;
  if (first + kDensePerThread > n) {
    for (int64_t i = first; i < n; ++i) pointwise_element(p, i, i, i);
    return;
  }
  const TensorLayout& o = p.out;
  if (p.op == PointwiseOp::Copy && p.a.dtype == o.dtype) {  // bits, 16 bytes at a time
    const int bytes = element_bytes(o.dtype);
    for (int k = 0; k < kDensePerThread * bytes; k += 16)
      store_16(static_cast<char*>(o.data) + first * bytes + k,
               load_16(static_cast<const char*>(p.a.data) + first * bytes + k));
    return;
  }
  float v[kDensePerThread];
  if (p.op == PointwiseOp::Fill) {
    for (int k = 0; k < kDensePerThread; ++k) v[k] = p.value;
  } else {
    load_dense(p.a, first, v);
    if (p.op != PointwiseOp::Copy) {
      float b[kDensePerThread];
      load_dense(p.b, first, b);
      for (int k = 0; k < kDensePerThread; ++k)
        v[k] = p.op == PointwiseOp::Add ? p.alpha * v[k] + p.beta * b[k] : p.alpha * v[k] * b[k];
    }
  }
  store_dense(o, first, v);
}

// Whether the dense kernel may take a layout: row-major without gaps or broadcasts, 16-byte aligned, and a
// floating type (8 elements are then 16 or 32 bytes).
bool dense_16_byte_path(const TensorLayout& t) {
  if (t.dtype != DType::F32 && t.dtype != DType::BF16 && t.dtype != DType::F16) return false;
  int64_t stride = 1;
  for (int d = t.dims - 1; d >= 0; --d) {
    if (t.sizes[d] != 1 && t.strides[d] != stride) return false;
    stride *= t.sizes[d];
  }
  return reinterpret_cast<uintptr_t>(t.data) % 16 == 0;
}

}  // namespace HEED_BACKEND

template <>
void pointwise<kBackend>(const PointwiseArgs& args) {
  using namespace HEED_BACKEND;
  int64_t n = 1;
  for (int d = 0; d < args.out.dims; ++d) n *= args.out.sizes[d];
  if (n == 0) return;
  constexpr int kThreads = 256;
  const bool binary = args.op == PointwiseOp::Add || args.op == PointwiseOp::Mul;
  if (dense_16_byte_path(args.out) && (args.op == PointwiseOp::Fill || dense_16_byte_path(args.a)) &&
      (!binary || dense_16_byte_path(args.b))) {
    const int64_t blocks = (n + kThreads * kDensePerThread - 1) / (kThreads * kDensePerThread);
    launch(pointwise_dense_kernel, dim3(static_cast<unsigned>(blocks)), dim3(kThreads), 0, args.stream, args, n);
    return;
  }
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  launch(pointwise_kernel, dim3(static_cast<unsigned>(blocks < 1024 ? blocks : 1024)), dim3(kThreads), 0, args.stream,
         args, n);
}

}  // namespace heed::kernels
