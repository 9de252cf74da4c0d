#include "core/cuda_runtime.h"

#include "kernels/common/cuda_check.h"

namespace heed::cuda {

int device_count(std::string* why) {
  int count = 0;
  cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    if (why) *why = cudaGetErrorString(status);
    cudaGetLastError();  // clear the sticky error so later calls report their own
    return 0;
  }
  if (count == 0 && why) *why = "no CUDA device found";
  return count;
}

void* malloc(size_t nbytes, int device) {
  void* ptr = nullptr;
  HEED_CUDA_CHECK(cudaSetDevice(device));
  HEED_CUDA_CHECK(cudaMalloc(&ptr, nbytes));
  return ptr;
}

void free(void* ptr, int device) {
  HEED_CUDA_CHECK(cudaSetDevice(device));
  HEED_CUDA_CHECK(cudaFree(ptr));
}

void memcpy(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes) {
  if (dst_device.is_cuda()) HEED_CUDA_CHECK(cudaSetDevice(dst_device.index));
  else if (src_device.is_cuda()) HEED_CUDA_CHECK(cudaSetDevice(src_device.index));
  HEED_CUDA_CHECK(cudaMemcpy(dst, src, nbytes, cudaMemcpyDefault));
}

void memset_zero(void* ptr, size_t nbytes, int device) {
  HEED_CUDA_CHECK(cudaSetDevice(device));
  HEED_CUDA_CHECK(cudaMemset(ptr, 0, nbytes));
}

void synchronize(int device) {
  HEED_CUDA_CHECK(cudaSetDevice(device));
  HEED_CUDA_CHECK(cudaDeviceSynchronize());
}

void* stream_create(int device) {
  cudaStream_t stream = nullptr;
  HEED_CUDA_CHECK(cudaSetDevice(device));
  HEED_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  return stream;
}

void stream_destroy(void* stream) { cudaStreamDestroy(static_cast<cudaStream_t>(stream)); }

void* event_create(int device) {
  cudaEvent_t event = nullptr;
  HEED_CUDA_CHECK(cudaSetDevice(device));
  HEED_CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
  return event;
}

void event_destroy(void* event) { cudaEventDestroy(static_cast<cudaEvent_t>(event)); }

void event_record(void* event, void* stream) {
  HEED_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(event), static_cast<cudaStream_t>(stream)));
}

bool event_done(void* event) {
  const cudaError_t state = cudaEventQuery(static_cast<cudaEvent_t>(event));
  if (state == cudaErrorNotReady) return false;
  HEED_CUDA_CHECK(state);
  return true;
}

void stream_wait(void* stream, void* event) {
  HEED_CUDA_CHECK(cudaStreamWaitEvent(static_cast<cudaStream_t>(stream), static_cast<cudaEvent_t>(event), 0));
}

std::string describe(int device) {
  cudaDeviceProp prop{};
  HEED_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  return std::string(prop.name) + " (sm_" + std::to_string(prop.major * 10 + prop.minor) + ", " +
         std::to_string(prop.multiProcessorCount) + " SMs)";
}

}  // namespace heed::cuda
