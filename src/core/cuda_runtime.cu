// The CUDA runtime calls of cuda_runtime.h. Everything Heed queues on a device goes to that device's one
// compute stream, in program order, which is what keeps it simple:
//   - the caching allocator (heed/core/allocator.h) hands a freed block out again at once, before the
//     kernels that used it may have run; that is safe because whatever uses it next is queued on the same
//     stream, after them. (A second stream, such as the communicator's, orders itself with events and
//     keeps its tensors alive until it is done.)
//   - the stream is non-blocking, so the legacy default stream (a plain cudaMemcpy, a launch without a
//     stream) would not wait for it: every copy and memset here is queued on it instead.
//   - one stream is what a CUDA Graph can capture.
#include <algorithm>
#include <cstring>
#include <deque>
#include <iterator>
#include <memory>
#include <mutex>
#include <vector>

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

// Host-to-device copies without a host synchronisation. A cudaMemcpy from pageable memory returns only
// when the device has the bytes, which waits for everything queued before it; cudaMemcpyAsync is
// asynchronous only from pinned memory. So an upload first copies the bytes into this pinned ring
// (cudaHostAlloc'd once per device) and queues the copy from there on the compute stream, with an event
// after it. Ring bytes are written again only once the event of every copy that reads them has
// completed, so the host never overwrites bytes still in flight; it waits then only if it has run a whole
// ring ahead of the device. An upload longer than a chunk goes in chunks, so that any size passes (a
// checkpoint's weights, at load) and a long one pipelines the host's memcpy with the DMA.
class StagingRing {
 public:
  static constexpr size_t kBytes = 16u << 20;      // a base step uploads well under 1 MiB
  static constexpr size_t kChunkBytes = 4u << 20;  // at most a quarter of the ring in one piece
  static constexpr size_t kAlignment = 256;        // of each copy's bytes in the ring

  explicit StagingRing(int device) {
    HEED_CUDA_CHECK(cudaSetDevice(device));
    void* pinned = nullptr;
    HEED_CUDA_CHECK(cudaHostAlloc(&pinned, kBytes, cudaHostAllocDefault));
    pinned_ = static_cast<char*>(pinned);
  }

  void upload(char* dst, const char* src, size_t nbytes, cudaStream_t stream) {
    std::lock_guard lock(mutex_);
    retire_completed();
    for (size_t done = 0; done < nbytes;) {
      const size_t n = std::min(nbytes - done, kChunkBytes);
      const size_t reserved = (n + kAlignment - 1) / kAlignment * kAlignment;
      if (head_ + reserved > kBytes) head_ = 0;
      wait_until_free(head_, head_ + reserved);
      std::memcpy(pinned_ + head_, src + done, n);
      HEED_CUDA_CHECK(cudaMemcpyAsync(dst + done, pinned_ + head_, n, cudaMemcpyHostToDevice, stream));
      const cudaEvent_t copied = take_event();
      HEED_CUDA_CHECK(cudaEventRecord(copied, stream));
      in_flight_.push_back({head_, head_ + reserved, copied});
      head_ += reserved;
      done += n;
    }
  }

 private:
  struct InFlight {
    size_t begin, end;  // the ring bytes the copy reads
    cudaEvent_t copied;
  };

  // Forgets the copies that have completed, oldest first, so that the list holds those still in flight
  // (a few, unless the host runs far ahead of the device).
  void retire_completed() {
    while (!in_flight_.empty()) {
      const cudaError_t state = cudaEventQuery(in_flight_.front().copied);
      if (state == cudaErrorNotReady) return;
      HEED_CUDA_CHECK(state);
      spare_events_.push_back(in_flight_.front().copied);
      in_flight_.pop_front();
    }
  }

  // Waits until no copy in flight reads ring bytes [begin, end). The copies complete in the order they
  // were queued (one stream), so once the newest that overlaps is done, all before it are too.
  void wait_until_free(size_t begin, size_t end) {
    auto newest = in_flight_.end();
    for (auto it = in_flight_.begin(); it != in_flight_.end(); ++it)
      if (it->begin < end && begin < it->end) newest = it;
    if (newest == in_flight_.end()) return;
    HEED_CUDA_CHECK(cudaEventSynchronize(newest->copied));
    for (auto it = in_flight_.begin(); it != std::next(newest); ++it) spare_events_.push_back(it->copied);
    in_flight_.erase(in_flight_.begin(), std::next(newest));
  }

  cudaEvent_t take_event() {
    if (spare_events_.empty()) {
      cudaEvent_t event = nullptr;
      HEED_CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
      return event;
    }
    const cudaEvent_t event = spare_events_.back();
    spare_events_.pop_back();
    return event;
  }

  std::mutex mutex_;
  char* pinned_ = nullptr;
  size_t head_ = 0;                 // where the next copy's bytes go
  std::deque<InFlight> in_flight_;  // oldest first
  std::vector<cudaEvent_t> spare_events_;
};

StagingRing& staging_ring(int device) {
  static auto& rings = *new PerDevice<StagingRing>([](int index) { return std::make_unique<StagingRing>(index); });
  return rings.get(device);
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
  if (!src_device.is_cuda()) {  // host to device
    HEED_CUDA_CHECK(cudaSetDevice(dst_device.index));
    staging_ring(dst_device.index)
        .upload(static_cast<char*>(dst), static_cast<const char*>(src), nbytes, stream_of(dst_device.index));
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
