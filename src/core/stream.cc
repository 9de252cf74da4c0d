#include "heed/core/stream.h"

#ifdef HEED_WITH_CUDA
#include "core/cuda_runtime.h"
#endif

namespace heed {

Stream Stream::compute(Device device) {
#ifdef HEED_WITH_CUDA
  // The device's own stream lives as long as the process: the handle does not own it.
  if (device.is_cuda())
    return Stream(device, std::shared_ptr<void>(cuda::compute_stream(device.index), [](void*) {}));
#endif
  return Stream(device, nullptr);
}

Stream Stream::create(Device device) {
#ifdef HEED_WITH_CUDA
  if (device.is_cuda()) return Stream(device, std::shared_ptr<void>(cuda::stream_create(device.index), cuda::stream_destroy));
#endif
  return Stream(device, nullptr);
}

Event::Event(Device device) : device_(device) {
#ifdef HEED_WITH_CUDA
  if (device.is_cuda()) handle_ = std::shared_ptr<void>(cuda::event_create(device.index), cuda::event_destroy);
#endif
}

void Event::record(const Stream& stream) {
#ifdef HEED_WITH_CUDA
  if (handle_) cuda::event_record(handle_.get(), stream.handle());
#else
  (void)stream;
#endif
}

bool Event::done() const {
#ifdef HEED_WITH_CUDA
  if (handle_) return cuda::event_done(handle_.get());
#endif
  return true;
}

void Event::order_before(const Stream& stream) const {
#ifdef HEED_WITH_CUDA
  if (handle_) cuda::stream_wait(stream.handle(), handle_.get());
#else
  (void)stream;
#endif
}

}  // namespace heed
