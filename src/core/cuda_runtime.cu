// The CUDA runtime calls of cuda_runtime.h. Everything Heed queues on a device goes to that device's one
// compute stream, in program order, which is what keeps it simple:
//   - the caching allocator (heed/core/allocator.h) hands a freed block out again at once, before the
//     kernels that used it may have run; that is safe because whatever uses it next is queued on the same
//     stream, after them. (A second stream, such as the communicator's, orders itself with events and
//     keeps its tensors alive until it is done.)
//   - the stream is non-blocking, so the legacy default stream (a plain cudaMemcpy, a launch without a
//     stream) would not wait for it: every copy and memset here is queued on it instead.
//   - one stream is what a CUDA Graph can capture.
#include <memory>
#include <mutex>

#include "core/cuda_runtime.h"
#include "core/per_device.h"
#include "kernels/common/cuda_check.h"

namespace heed::cuda {

namespace {

struct ComputeStream {
  cudaStream_t stream = nullptr;
};

cudaStream_t stream_of(int device) {
  static auto& streams = *new PerDevice<ComputeStream>([](int index) {
    auto s = std::make_unique<ComputeStream>();
    HEED_CUDA_CHECK(cudaSetDevice(index));
    HEED_CUDA_CHECK(cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking));
    return s;
  });
  return streams.get(device).stream;
}

}  // namespace

void* compute_stream(int device) { return stream_of(device); }

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
  if (nbytes == 0) return;
  if (!src_device.is_cuda()) {  // host to device: from pageable memory, so the host waits
    const cudaStream_t stream = stream_of(dst_device.index);
    HEED_CUDA_CHECK(cudaSetDevice(dst_device.index));
    HEED_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyHostToDevice, stream));
    HEED_CUDA_CHECK(cudaStreamSynchronize(stream));
    return;
  }
  const cudaStream_t src_stream = stream_of(src_device.index);
  HEED_CUDA_CHECK(cudaSetDevice(src_device.index));
  if (!dst_device.is_cuda()) {  // device to host: the caller reads dst when this returns
    HEED_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToHost, src_stream));
    HEED_CUDA_CHECK(cudaStreamSynchronize(src_stream));
    return;
  }
  // Between devices: src is final once its stream is drained, and dst's stream may reuse src's memory
  // only after the copy, so both wait on the host. Simple, and outside any training step.
  const cudaStream_t dst_stream = stream_of(dst_device.index);
  HEED_CUDA_CHECK(cudaStreamSynchronize(src_stream));
  HEED_CUDA_CHECK(cudaSetDevice(dst_device.index));
  HEED_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDefault, dst_stream));
  HEED_CUDA_CHECK(cudaStreamSynchronize(dst_stream));
}

void memset_zero(void* ptr, size_t nbytes, int device) {
  HEED_CUDA_CHECK(cudaSetDevice(device));
  HEED_CUDA_CHECK(cudaMemsetAsync(ptr, 0, nbytes, stream_of(device)));
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
