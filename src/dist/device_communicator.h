// Collectives for a job whose ranks each train on one device (a GPU, or the simulated GPU), kept out of the
// public headers so that nothing else includes a collective library's headers.
//
// DeviceCommunicator (device_communicator.cc) holds what does not depend on the library: the ordering of
// each collective after the compute stream's work through events, its own stream so that all-reduces
// overlap backward, waiting with a timeout, and the MPI communicator that bootstraps the library and keeps
// carrying host values. The library behind it moves the bytes: NCCL on GPUs (nccl_collectives.cu), and on
// the simulated GPU, MPI on its host memory, standing in for NCCL so that CI runs the rest unchanged.
#pragma once

#include <memory>
#include <string>

#include "heed/core/stream.h"
#include "heed/dist/communicator.h"

namespace heed::dist {

class DeviceCollectives {
 public:
  virtual ~DeviceCollectives() = default;
  virtual std::string name() const = 0;
  // Queue the collective on `stream`; tensors are contiguous and on the communicator's device.
  virtual void all_reduce(Tensor& t, ReduceOp op, const Stream& stream) = 0;
  virtual void broadcast(Tensor& t, int root, const Stream& stream) = 0;
  virtual void all_gather(const Tensor& mine, Tensor& out, const Stream& stream) = 0;
  virtual void reduce_scatter(const Tensor& all, Tensor& out, ReduceOp op, const Stream& stream) = 0;
  // Throws, naming the failure, when the library has seen one asynchronously (a peer died).
  virtual void check() = 0;
  // Frees work stuck on a peer that will never answer, before this rank gives up.
  virtual void abort() = 0;
};

#ifdef HEED_WITH_NCCL
// NCCL on cuda:`device`, bootstrapped over `host` (rank 0's unique id is broadcast over MPI).
std::unique_ptr<DeviceCollectives> make_nccl_collectives(Communicator& host, int device);
#endif

}  // namespace heed::dist
