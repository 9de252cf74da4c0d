// Collectives over NCCL for tensors on a GPU, one process per GPU, bootstrapped over MPI: rank 0 creates
// the NCCL unique id and the MPI communicator broadcasts it. Host values (token counts, loss sums, stop
// votes), host tensors and barriers keep going through MPI.
//
// Streams: the model computes on the default stream; NCCL runs on a stream of its own, so that a bucket's
// all-reduce overlaps the rest of the backward pass. A collective records an event on the default stream
// (the gradients copied into the bucket are final there), makes the NCCL stream wait on it, and records a
// second event after the NCCL call; wait() waits for that event on the host and then orders the default
// stream after it, so the copies back out of the bucket see the sum.
//
// Failures: NCCL reports a dead peer asynchronously, or not at all when a peer hangs. wait() therefore
// polls both the event and ncclCommGetAsyncError, and past the timeout aborts the communicator
// (ncclCommAbort, which frees the stuck kernels) and ends this rank with an error naming the operation;
// the launcher then ends the job, as with MPI.
//
// Built only when CMake finds NCCL (HEED_WITH_NCCL). No GPU has run it yet: the same gradient buckets are
// tested over MPI on the simulated GPU (tests/python/test_data_parallel.py).
#include <cuda_runtime.h>
#include <nccl.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "dist/nccl_communicator.h"
#include "kernels/common/cuda_check.h"

#define HEED_NCCL_CHECK(call)                                                                            \
  do {                                                                                                   \
    ncclResult_t heed_nccl_status_ = (call);                                                             \
    HEED_CHECK(heed_nccl_status_ == ncclSuccess, "NCCL call {} failed at {}:{}: {}", #call, __FILE__,    \
               __LINE__, ncclGetErrorString(heed_nccl_status_));                                         \
  } while (0)

namespace heed::dist {

namespace {

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return ncclSum;
    case ReduceOp::Average: return ncclAvg;
    case ReduceOp::Max: return ncclMax;
  }
  return ncclSum;
}

ncclDataType_t nccl_type(DType dtype) {
  switch (dtype) {
    case DType::F32: return ncclFloat32;
    case DType::BF16: return ncclBfloat16;
    case DType::F16: return ncclFloat16;
    default: return ncclUint8;  // byte-wise: all_gather and broadcast of anything else
  }
}

class NcclPending final : public Pending {
 public:
  NcclPending(ncclComm_t comm, cudaEvent_t done, double timeout_s, int rank, const char* operation)
      : comm_(comm), done_(done), timeout_s_(timeout_s), rank_(rank), operation_(operation) {}
  ~NcclPending() override { cudaEventDestroy(done_); }

  bool test() override {
    ncclResult_t async = ncclSuccess;
    HEED_NCCL_CHECK(ncclCommGetAsyncError(comm_, &async));
    HEED_CHECK(async == ncclSuccess, "rank {}: NCCL {} failed: {} (a peer may have died)", rank_, operation_,
               ncclGetErrorString(async));
    const cudaError_t state = cudaEventQuery(done_);
    if (state == cudaErrorNotReady) return false;
    HEED_CUDA_CHECK(state);
    return true;
  }

  void wait() override {
    const auto start = std::chrono::steady_clock::now();
    while (!test()) {
      if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > timeout_s_) {
        ncclCommAbort(comm_);
        HEED_CHECK(false, "rank {} waited more than {} s for the other ranks in NCCL {} (training.collective_timeout); "
                   "a rank has died or hangs", rank_, timeout_s_, operation_);
      }
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    HEED_CUDA_CHECK(cudaStreamWaitEvent(0, done_, 0));  // later default-stream work reads the result
  }

 private:
  ncclComm_t comm_;
  cudaEvent_t done_;
  double timeout_s_;
  int rank_;
  const char* operation_;
};

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(std::unique_ptr<Communicator> host, int device, double timeout_s)
      : host_(std::move(host)), device_(device), timeout_s_(timeout_s) {
    HEED_CUDA_CHECK(cudaSetDevice(device_));
    ncclUniqueId id;
    Tensor bytes = Tensor::zeros({static_cast<int64_t>(sizeof(id))}, DType::U8);
    if (host_->rank() == 0) {
      HEED_NCCL_CHECK(ncclGetUniqueId(&id));
      std::memcpy(bytes.raw_data(), &id, sizeof(id));
    }
    host_->broadcast(bytes, 0);
    std::memcpy(&id, bytes.raw_data(), sizeof(id));
    HEED_NCCL_CHECK(ncclCommInitRank(&comm_, host_->world(), id, host_->rank()));
    HEED_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  ~NcclCommunicator() override {
    if (comm_) ncclCommDestroy(comm_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  int rank() const override { return host_->rank(); }
  int world() const override { return host_->world(); }
  std::string name() const override {
    return fmt::format("NCCL {}.{}.{} on cuda:{}, bootstrapped over {}", NCCL_MAJOR, NCCL_MINOR, NCCL_PATCH, device_,
                       host_->name());
  }

  void all_reduce(Tensor& t, ReduceOp op) override {
    if (t.device().is_host_memory()) return host_->all_reduce(t, op);
    all_reduce_async(t, op)->wait();
  }
  std::unique_ptr<Pending> all_reduce_async(Tensor& t, ReduceOp op) override {
    if (t.device().is_host_memory()) return host_->all_reduce_async(t, op);
    check_device_tensor(t, "all_reduce");
    return launch("all_reduce", [&] {
      HEED_NCCL_CHECK(ncclAllReduce(t.raw_data(), t.raw_data(), static_cast<size_t>(t.numel()), nccl_type(t.dtype()),
                                    nccl_op(op), comm_, stream_));
    });
  }
  void all_reduce(std::vector<double>& values, ReduceOp op) override { host_->all_reduce(values, op); }
  void broadcast(Tensor& t, int root) override {
    if (t.device().is_host_memory()) return host_->broadcast(t, root);
    check_device_tensor(t, "broadcast");
    launch("broadcast", [&] {
      HEED_NCCL_CHECK(ncclBroadcast(t.raw_data(), t.raw_data(), t.nbytes(), ncclUint8, root, comm_, stream_));
    })->wait();
  }
  Tensor all_gather(const Tensor& t) override {
    if (t.device().is_host_memory()) return host_->all_gather(t);
    const Tensor mine = t.contiguous();
    Shape shape = mine.shape();
    shape.insert(shape.begin(), world());
    Tensor out = Tensor::empty(shape, mine.dtype(), mine.device());
    launch("all_gather", [&] {
      HEED_NCCL_CHECK(ncclAllGather(mine.raw_data(), out.raw_data(), mine.nbytes(), ncclUint8, comm_, stream_));
    })->wait();
    return out;
  }
  Tensor reduce_scatter(const Tensor& t, ReduceOp op) override {
    if (t.device().is_host_memory()) return host_->reduce_scatter(t, op);
    const Tensor all = t.contiguous();
    check_device_tensor(all, "reduce_scatter");
    HEED_CHECK(all.dim() >= 1 && all.size(0) % world() == 0, "reduce_scatter: {} rows do not split over {} ranks",
               all.dim() ? all.size(0) : 0, world());
    Shape shape = all.shape();
    shape[0] /= world();
    Tensor out = Tensor::empty(shape, all.dtype(), all.device());
    launch("reduce_scatter", [&] {
      HEED_NCCL_CHECK(ncclReduceScatter(all.raw_data(), out.raw_data(), static_cast<size_t>(out.numel()),
                                        nccl_type(all.dtype()), nccl_op(op), comm_, stream_));
    })->wait();
    return out;
  }
  void barrier() override { host_->barrier(); }

 private:
  void check_device_tensor(const Tensor& t, const char* operation) const {
    HEED_CHECK(t.is_contiguous() && t.device().is_cuda() && t.device().index == device_,
               "NCCL {}: needs a contiguous tensor on cuda:{}, got one on {}", operation, device_, t.device().str());
  }

  // Orders `call` (an NCCL call on stream_) after the work queued so far on the default stream.
  template <typename F>
  std::unique_ptr<Pending> launch(const char* operation, F&& call) {
    cudaEvent_t ready = nullptr, done = nullptr;
    HEED_CUDA_CHECK(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming));
    HEED_CUDA_CHECK(cudaEventRecord(ready, 0));
    HEED_CUDA_CHECK(cudaStreamWaitEvent(stream_, ready, 0));
    HEED_CUDA_CHECK(cudaEventDestroy(ready));  // released once the wait has been recorded
    call();
    HEED_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
    HEED_CUDA_CHECK(cudaEventRecord(done, stream_));
    return std::make_unique<NcclPending>(comm_, done, timeout_s_, rank(), operation);
  }

  std::unique_ptr<Communicator> host_;
  int device_;
  double timeout_s_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<Communicator> host, int device,
                                                     double timeout_s) {
  return std::make_unique<NcclCommunicator>(std::move(host), device, timeout_s);
}

}  // namespace heed::dist
