// Streams and events of a device, for work that should overlap (NCCL's all-reduces with backward).
//
// On a GPU they are CUDA streams and events. Every kernel, GEMM, memset and copy is queued on the device's
// compute stream, a non-blocking stream of Heed's own (one per device, made on first use), in program
// order; so CUDA Graphs could capture a step. Stream::create makes one that runs beside it, and an Event
// recorded on one stream orders later work on another, or tells the host when it has been reached.
//
// The simulated GPU runs each launch to completion when it is made, so there the stand-ins are trivial: a
// stream is a name, and an event is reached as soon as it is recorded. Code that orders its work with
// streams and events therefore runs unchanged on `sim`, which is how CI exercises it. The CPU takes the
// same stand-ins.
#pragma once

#include <memory>

#include "heed/core/device.h"

namespace heed {

class Stream {
 public:
  // The stream every op's work goes to.
  static Stream compute(Device device);
  // A new stream that does not wait for the compute stream unless told to with an Event.
  static Stream create(Device device);

  Device device() const { return device_; }
  void* handle() const { return handle_.get(); }  // cudaStream_t on a GPU; null on the simulated GPU and the CPU

 private:
  Stream(Device device, std::shared_ptr<void> handle) : device_(device), handle_(std::move(handle)) {}
  Device device_;
  std::shared_ptr<void> handle_;
};

class Event {
 public:
  explicit Event(Device device);

  // Marks the point reached by the work queued on `stream` so far.
  void record(const Stream& stream);
  // Whether that point has been reached (at once on the simulated GPU and the CPU).
  bool done() const;
  // Makes later work on `stream` wait until the point is reached, without blocking the host.
  void order_before(const Stream& stream) const;

 private:
  Device device_;
  std::shared_ptr<void> handle_;  // cudaEvent_t on a GPU
};

}  // namespace heed
