// Deterministic sums: a tensor down to a broadcast shape, the rows of a matrix, and a tensor down to one number.
//
// sum_to gives each output element to one thread, which walks the reduced dimensions in row-major order:
// a fixed order, so the same bits on every run. Its parallelism is the output size, and each thread's
// loads follow one another: fine for the small broadcasts of the autograd glue, and far too serial for
// a bias gradient, where 512 threads would each walk every token of the batch.
//
// sum_rows is that bias gradient ([rows, N] down to [N], in fp32 whatever the input's type), where the
// weight-gradient GEMM does not give it from its epilogue (a frozen weight, a broadcast add), as the column
// sums of column_sums.h: column tiles of 32 x row chunks of 128 rows, each warp summing every 8th row of
// its chunk for 32 consecutive columns (each load instruction reads a contiguous row segment), the
// warps' sums added in warp order into one partial per chunk, then the chunks added in order in double.
// No atomics, so the same bits on every run, and no thread adds more than 16 rows and the chunk count.
//
// sum_all runs in two stages: kPartials blocks each sum a contiguous range of flat indices (threads in a
// strided loop, then a tree over shared memory, all in double), and one block adds the kPartials partial
// sums in index order. Double keeps a loss or a gradient norm over millions of terms exact to fp32.
#include "column_sums.h"
#include "common/elements.h"
#include "common/launch.h"
#include "reduce.h"
#include "storage_types.h"

namespace heed::kernels {

namespace {
constexpr int kThreads = 256;
constexpr int kPartials = kSumAllPartials;
}  // namespace

namespace HEED_BACKEND {

__global__ void sum_to_kernel(SumToArgs p, int64_t n_out, int64_t n_reduced) {
  // The reduced dimensions, as a shape of their own, and their strides in `in`.
  int64_t red_sizes[kMaxDims], red_strides[kMaxDims];
  int red_dims = 0;
  for (int d = 0; d < p.in.dims; ++d)
    if (p.out.sizes[d] == 1 && p.in.sizes[d] != 1) {
      red_sizes[red_dims] = p.in.sizes[d];
      red_strides[red_dims++] = p.in.strides[d];
    }
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < n_out; j += int64_t(gridDim.x) * blockDim.x) {
    const int64_t base = strided_offset(j, p.out.dims, p.out.sizes, p.in.strides);
    float sum = 0.0f;
    for (int64_t r = 0; r < n_reduced; ++r)
      sum += load_element(p.in.data, base + strided_offset(r, red_dims, red_sizes, red_strides), p.in.dtype);
    store_element(p.out.data, j, p.out.dtype, sum);
  }
}

// Stage 1 of sum_rows: this block's column sums over its row chunk, into the chunk's row of `partials`.
template <typename T>
__global__ void __launch_bounds__(kColumnThreads)
    sum_rows_partials_kernel(const T* in, int64_t rows, int64_t cols, float* partials) {
  __shared__ float scratch[kColumnThreads];
  const ColumnSlice s = column_slice<1>(rows);
  float sum = 0.0f;
  if (s.col < cols)
    for (int64_t row = s.row; row < s.row_end; row += kColumnWarps) sum += to_float(in[row * cols + s.col]);
  store_column_partial<1>({sum}, s, cols, partials + int64_t(blockIdx.y) * cols, scratch);
}

// Sums `value` over the block's threads; thread 0 gets the total. Fixed pairing, so deterministic.
__device__ __forceinline__ double block_sum_double(double value, double* scratch) {
  scratch[threadIdx.x] = value;
  __syncthreads();
  for (unsigned half = kThreads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) scratch[threadIdx.x] += scratch[threadIdx.x + half];
    __syncthreads();
  }
  return scratch[0];
}

__global__ void __launch_bounds__(kThreads) sum_partials_kernel(TensorLayout in, int64_t n, double* partials) {
  __shared__ double scratch[kThreads];
  const int64_t chunk = (n + gridDim.x - 1) / gridDim.x;
  const int64_t begin = blockIdx.x * chunk, end = begin + chunk < n ? begin + chunk : n;
  double sum = 0.0;
  for (int64_t i = begin + threadIdx.x; i < end; i += kThreads)
    sum += load_element(in.data, strided_offset(i, in.dims, in.sizes, in.strides), in.dtype);
  const double total = block_sum_double(sum, scratch);
  if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

__global__ void __launch_bounds__(kThreads) sum_final_kernel(const double* partials, float* out) {
  __shared__ double scratch[kThreads];
  double sum = 0.0;
  for (int i = threadIdx.x; i < kPartials; i += kThreads) sum += partials[i];
  const double total = block_sum_double(sum, scratch);
  if (threadIdx.x == 0) *out = static_cast<float>(total);
}

}  // namespace HEED_BACKEND

template <>
void sum_to<kBackend>(const SumToArgs& args) {
  int64_t n_out = 1, n_reduced = 1;
  for (int d = 0; d < args.in.dims; ++d) {
    HEED_CHECK(args.out.sizes[d] == args.in.sizes[d] || args.out.sizes[d] == 1,
               "sum_to: dimension {} of size {} cannot be summed to {}", d, args.in.sizes[d], args.out.sizes[d]);
    n_out *= args.out.sizes[d];
    if (args.out.sizes[d] != args.in.sizes[d]) n_reduced *= args.in.sizes[d];
  }
  if (n_out == 0) return;
  const int64_t blocks = (n_out + kThreads - 1) / kThreads;
  HEED_BACKEND::launch(HEED_BACKEND::sum_to_kernel, dim3(static_cast<unsigned>(blocks < 1024 ? blocks : 1024)),
                       dim3(kThreads), 0, args.stream, args, n_out, n_reduced);
}

template <>
size_t sum_rows_workspace_bytes<kBackend>(const SumRowsArgs& args) {
  return static_cast<size_t>(HEED_BACKEND::column_partial_count(args.rows) * args.cols) * sizeof(float);
}

template <>
void sum_rows<kBackend>(const SumRowsArgs& args) {
  using namespace HEED_BACKEND;
  if (args.cols == 0) return;
  float* partials = static_cast<float*>(args.workspace);
  if (args.rows > 0)
    with_storage_type(args.dtype, "sum_rows", [&](auto storage) {
      using T = decltype(storage);
      launch(sum_rows_partials_kernel<T>, column_partials_grid<1>(args.rows, args.cols), dim3(kColumnThreads), 0,
             args.stream, static_cast<const T*>(args.in), args.rows, args.cols, partials);
    });
  sum_column_partials(partials, column_partial_count(args.rows), args.cols, args.cols, args.out, args.stream);
}

template <>
void sum_all<kBackend>(const SumAllArgs& args) {
  int64_t n = 1;
  for (int d = 0; d < args.in.dims; ++d) n *= args.in.sizes[d];
  double* partials = static_cast<double*>(args.workspace);
  HEED_BACKEND::launch(HEED_BACKEND::sum_partials_kernel, dim3(kPartials), dim3(kThreads), 0, args.stream, args.in, n,
                       partials);
  HEED_BACKEND::launch(HEED_BACKEND::sum_final_kernel, dim3(1), dim3(kThreads), 0, args.stream, partials, args.out);
}

}  // namespace heed::kernels
