// NCCL behind DeviceCommunicator (device_communicator.h): one communicator per process and GPU, created
// from a unique id that rank 0 makes and MPI broadcasts. Every call is checked with HEED_NCCL_CHECK.
//
// Built only when CMake finds NCCL (HEED_WITH_NCCL). No GPU has run it yet: CI runs DeviceCommunicator on
// the simulated GPU with MPI in NCCL's place (tests/python/test_data_parallel.py).
#include <cuda_runtime.h>
#include <nccl.h>

#include <cstring>

#include "dist/device_communicator.h"
#include "kernels/common/cuda_check.h"

#define HEED_NCCL_CHECK(call) HEED_CHECK_CALL("NCCL", #call, call, ncclSuccess, ncclGetErrorString)

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
    default: HEED_CHECK(false, "NCCL reduction of {} tensors", dtype_name(dtype));
  }
}

cudaStream_t cuda_stream(const Stream& stream) { return static_cast<cudaStream_t>(stream.handle()); }

class NcclCollectives final : public DeviceCollectives {
 public:
  NcclCollectives(Communicator& host, int device) {
    HEED_CUDA_CHECK(cudaSetDevice(device));
    ncclUniqueId id;
    Tensor bytes = Tensor::zeros({static_cast<int64_t>(sizeof(id))}, DType::U8);
    if (host.rank() == 0) {
      HEED_NCCL_CHECK(ncclGetUniqueId(&id));
      std::memcpy(bytes.raw_data(), &id, sizeof(id));
    }
    host.broadcast(bytes, 0);
    std::memcpy(&id, bytes.raw_data(), sizeof(id));
    HEED_NCCL_CHECK(ncclCommInitRank(&comm_, host.world(), id, host.rank()));
  }
  ~NcclCollectives() override {
    if (comm_) ncclCommDestroy(comm_);
  }

  std::string name() const override { return fmt::format("NCCL {}.{}.{}", NCCL_MAJOR, NCCL_MINOR, NCCL_PATCH); }

  void all_reduce(Tensor& t, ReduceOp op, const Stream& stream) override {
    HEED_NCCL_CHECK(ncclAllReduce(t.raw_data(), t.raw_data(), static_cast<size_t>(t.numel()), nccl_type(t.dtype()),
                                  nccl_op(op), comm_, cuda_stream(stream)));
  }
  void broadcast(Tensor& t, int root, const Stream& stream) override {
    HEED_NCCL_CHECK(ncclBroadcast(t.raw_data(), t.raw_data(), t.nbytes(), ncclUint8, root, comm_, cuda_stream(stream)));
  }
  void all_gather(const Tensor& mine, Tensor& out, const Stream& stream) override {
    HEED_NCCL_CHECK(ncclAllGather(mine.raw_data(), out.raw_data(), mine.nbytes(), ncclUint8, comm_, cuda_stream(stream)));
  }
  void reduce_scatter(const Tensor& all, Tensor& out, ReduceOp op, const Stream& stream) override {
    HEED_NCCL_CHECK(ncclReduceScatter(all.raw_data(), out.raw_data(), static_cast<size_t>(out.numel()),
                                      nccl_type(all.dtype()), nccl_op(op), comm_, cuda_stream(stream)));
  }
  void check() override {
    ncclResult_t async = ncclSuccess;
    HEED_NCCL_CHECK(ncclCommGetAsyncError(comm_, &async));
    HEED_CHECK(async == ncclSuccess, "NCCL reported an asynchronous failure: {} (a peer may have died)",
               ncclGetErrorString(async));
  }
  void abort() override {
    if (comm_) ncclCommAbort(comm_);
    comm_ = nullptr;
  }

 private:
  ncclComm_t comm_ = nullptr;
};

}  // namespace

std::unique_ptr<DeviceCollectives> make_nccl_collectives(Communicator& host, int device) {
  return std::make_unique<NcclCollectives>(host, device);
}

}  // namespace heed::dist
