// The host-side CUDA runtime calls Heed makes outside the kernels: device discovery, memory and copies.
// Defined in cuda_runtime.cu when Heed is built with CUDA; every call is checked with HEED_CUDA_CHECK,
// which names the call, the file and the line.
#pragma once

#include <cstddef>
#include <string>

#include "heed/core/device.h"

namespace heed::cuda {

// Usable devices; when there are none, *why says what the runtime answered.
int device_count(std::string* why);
void* malloc(size_t nbytes, int device);
void free(void* ptr, int device);
// The device's compute stream (a cudaStream_t), on which every kernel, GEMM, memset and copy of Heed is
// queued: one non-blocking stream per device, made on first use (thread-safe) and never destroyed.
void* compute_stream(int device);
// Copies between any two of host and device memory, in order with the compute streams' work:
//   - host to device: the bytes go into a pinned staging ring and are queued from there with
//     cudaMemcpyAsync; the call returns at once, and `src` may be freed or overwritten;
//   - device to host: queued, then the host waits for the compute stream (a host synchronisation);
//   - device to device: waits for both devices' compute streams (no training step makes one).
void memcpy(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes);
void memset_zero(void* ptr, size_t nbytes, int device);  // queued on the compute stream
// Waits for all work queued on the device; benchmarks time whole launches with it.
void synchronize(int device);
// Streams and events (include/heed/core/stream.h wraps them). A created stream is non-blocking, like the
// compute stream: the two order against each other only through events.
void* stream_create(int device);
void stream_destroy(void* stream);
void* event_create(int device);
void event_destroy(void* event);
void event_record(void* event, void* stream);
bool event_done(void* event);              // cudaEventQuery
void stream_wait(void* stream, void* event);  // later work on `stream` waits for `event`
// "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs)", for benchmark headers.
std::string describe(int device);

}  // namespace heed::cuda
