// Collectives between the processes of one training job. One interface, chosen at start-up:
//   - a single process (world size 1) needs no MPI at run time: every collective is the identity;
//   - processes started by mpirun or srun talk through MPI (Open MPI), on tensors in host memory (the CPU's
//     and the simulated GPU's);
//   - processes that each train on a GPU use NCCL for device tensors, on a stream of their own, bootstrapped
//     over MPI, which still carries host values (make_device_communicator).
//
// Every rank must call the same collectives in the same order with the same shapes; the trainer keeps
// its decisions (when to stop, validate, save) identical on all ranks by deriving them from reduced values.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "heed/core/tensor.h"

namespace heed::dist {

enum class ReduceOp { Sum, Average, Max };

// A collective in flight: test() lets it progress and says whether it is done; wait() completes it.
class Pending {
 public:
  virtual ~Pending() = default;
  virtual bool test() = 0;
  virtual void wait() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world() const = 0;
  virtual std::string name() const = 0;

  // In place; `t` must be a contiguous fp32 tensor.
  virtual void all_reduce(Tensor& t, ReduceOp op) = 0;
  // Starts an all-reduce of `t` in place (Sum or Max) and returns at once; `t` must live until wait().
  virtual std::unique_ptr<Pending> all_reduce_async(Tensor& t, ReduceOp op) = 0;
  // Host values: token counts, loss sums, flags.
  virtual void all_reduce(std::vector<double>& values, ReduceOp op) = 0;
  virtual void broadcast(Tensor& t, int root) = 0;
  // Every rank's `t` (same shape on all ranks), stacked along a new first dimension of size world().
  virtual Tensor all_gather(const Tensor& t) = 0;
  // `t` [world * n, ...] is reduced across ranks; rank r keeps rows [r * n, (r + 1) * n).
  virtual Tensor reduce_scatter(const Tensor& t, ReduceOp op) = 0;
  virtual void barrier() = 0;
};

// MPI when this process was started by a launcher (mpirun, srun) with more than one process, else the
// single-process communicator. The MPI communicator finalises MPI when the process exits. A collective
// that waits longer than `timeout_s` for the other ranks (one has died or hangs) ends this process with an
// error naming the rank and the operation; the launcher then ends the job.
std::unique_ptr<Communicator> make_communicator(double timeout_s = 1800);

// This process's index among the processes of its node, as the launcher says (Open MPI, Slurm, PMI); 0
// without a launcher. Picks the GPU of a rank when a config names just `cuda`.
int local_rank();

// For a job whose ranks each train on `device`: collectives on device tensors, with `host` (the MPI
// communicator of make_communicator) bootstrapping them and carrying host values. NCCL on a GPU (an error
// when Heed was built without it); on the simulated GPU, MPI on its host memory in NCCL's place. `host`
// itself for the CPU or a single process.
std::unique_ptr<Communicator> make_device_communicator(std::unique_ptr<Communicator> host, Device device,
                                                       double timeout_s);

// After an error on this rank: ends every process of an MPI job, so the others do not wait forever in a
// collective. Does nothing when MPI is not in use.
void abort_job(int code);

// Every rank's strings, in rank order (for gathering translations).
std::vector<std::vector<std::string>> all_gather_strings(Communicator& comm, const std::vector<std::string>& mine);

}  // namespace heed::dist
