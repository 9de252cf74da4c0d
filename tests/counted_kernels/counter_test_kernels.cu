// The counters' test kernels (see the header).
#include "common/device.h"
#include "common/launch.h"
#include "counter_test_kernels.h"
#include "storage_types.h"

namespace heed::kernels::HEED_BACKEND {

__global__ void strided_load_kernel(const float* in, float* out, int stride) {
  out[threadIdx.x] = in[threadIdx.x * stride];
}

__global__ void shared_access_kernel(float* out, int stride) {
  __shared__ float words[32 * 33];
  words[threadIdx.x * stride] = static_cast<float>(threadIdx.x);
  __syncwarp();
  out[threadIdx.x] = words[threadIdx.x * stride];
}

__global__ void load_16_kernel(const __nv_bfloat16* in, float* out) {
  float v[8];
  load_floats(in + 8 * threadIdx.x, v);
  out[threadIdx.x] = v[0] + v[7];
}

__global__ void warp_sum_kernel(const float* in, float* out) {
  float v = in[threadIdx.x];
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  out[threadIdx.x] = __ballot_sync(0xffffffffu, v > 0.0f) == 0xffffffffu ? v : -v;
}

__global__ void barriers_kernel(int barriers) {
  for (int i = 0; i < barriers; ++i) __syncthreads();
}

}  // namespace heed::kernels::HEED_BACKEND

namespace heed::counter_tests {

using kernels::HEED_BACKEND::launch;

void strided_load(const float* in, float* out, int stride) {
  launch(kernels::HEED_BACKEND::strided_load_kernel, dim3(1), dim3(32), 0, nullptr, in, out, stride);
}

void shared_access(float* out, int stride) {
  launch(kernels::HEED_BACKEND::shared_access_kernel, dim3(1), dim3(32), 0, nullptr, out, stride);
}

void load_16(const uint16_t* in, float* out) {
  launch(kernels::HEED_BACKEND::load_16_kernel, dim3(1), dim3(32), 0, nullptr,
         reinterpret_cast<const __nv_bfloat16*>(in), out);
}

void warp_sum(const float* in, float* out) {
  launch(kernels::HEED_BACKEND::warp_sum_kernel, dim3(1), dim3(32), 0, nullptr, in, out);
}

void barriers(int blocks, int barriers) {
  launch(kernels::HEED_BACKEND::barriers_kernel, dim3(blocks), dim3(64), 0, nullptr, barriers);
}

}  // namespace heed::counter_tests
