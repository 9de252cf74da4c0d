// Collectives over MPI (Open MPI from Debian) for CPU tensors. MPI is initialised on first use and
// finalised at process exit; errors come back as return codes (MPI_ERRORS_RETURN) so that each failure
// names the call, file and line instead of aborting inside the library.
#include <mpi.h>

#include <spdlog/spdlog.h>

#include "dist/mpi_communicator.h"
#include "heed/core/error.h"

#define HEED_MPI_CHECK(call)                                                               \
  do {                                                                                     \
    const int heed_mpi_rc = (call);                                                        \
    if (heed_mpi_rc != MPI_SUCCESS) {                                                      \
      char heed_mpi_text[MPI_MAX_ERROR_STRING];                                            \
      int heed_mpi_length = 0;                                                             \
      MPI_Error_string(heed_mpi_rc, heed_mpi_text, &heed_mpi_length);                      \
      HEED_CHECK(false, "{} failed at {}:{}: {}", #call, __FILE__, __LINE__, heed_mpi_text); \
    }                                                                                      \
  } while (0)

namespace heed::dist {

namespace {

// Process-wide: MPI may be initialised once and must be finalised before exit.
struct MpiSession {
  MpiSession() {
    int provided = 0;
    HEED_MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided));
    HEED_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  }
  ~MpiSession() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
  static MpiSession& get() {
    static MpiSession session;
    return session;
  }
};

MPI_Op mpi_op(ReduceOp op) { return op == ReduceOp::Max ? MPI_MAX : MPI_SUM; }

void check_fp32(const Tensor& t, const char* what) {
  HEED_CHECK(t.dtype() == DType::F32 && t.is_contiguous() && t.device().is_cpu(),
             "{} over MPI needs a contiguous fp32 CPU tensor, got {} on {}", what, dtype_name(t.dtype()),
             t.device().str());
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    MpiSession::get();
    HEED_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
    HEED_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &world_));
  }
  int rank() const override { return rank_; }
  int world() const override { return world_; }
  std::string name() const override { return fmt::format("MPI, {} processes", world_); }

  void all_reduce(Tensor& t, ReduceOp op) override {
    check_fp32(t, "all_reduce");
    HEED_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, t.data<float>(), static_cast<int>(t.numel()), MPI_FLOAT, mpi_op(op),
                                 MPI_COMM_WORLD));
    if (op == ReduceOp::Average) scale(t.data<float>(), t.numel());
  }
  void all_reduce(std::vector<double>& values, ReduceOp op) override {
    HEED_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_DOUBLE,
                                 mpi_op(op), MPI_COMM_WORLD));
    if (op == ReduceOp::Average)
      for (double& v : values) v /= world_;
  }
  void broadcast(Tensor& t, int root) override {
    HEED_CHECK(t.is_contiguous() && t.device().is_cpu(), "broadcast over MPI needs a contiguous CPU tensor");
    HEED_MPI_CHECK(MPI_Bcast(t.raw_data(), static_cast<int>(t.nbytes()), MPI_BYTE, root, MPI_COMM_WORLD));
  }
  Tensor all_gather(const Tensor& t) override {
    const Tensor mine = t.contiguous();
    Shape shape = mine.shape();
    shape.insert(shape.begin(), world_);
    Tensor out = Tensor::empty(shape, mine.dtype());
    HEED_MPI_CHECK(MPI_Allgather(mine.raw_data(), static_cast<int>(mine.nbytes()), MPI_BYTE, out.raw_data(),
                                 static_cast<int>(mine.nbytes()), MPI_BYTE, MPI_COMM_WORLD));
    return out;
  }
  Tensor reduce_scatter(const Tensor& t, ReduceOp op) override {
    const Tensor all = t.contiguous();
    check_fp32(all, "reduce_scatter");
    HEED_CHECK(all.dim() >= 1 && all.size(0) % world_ == 0, "reduce_scatter: {} rows do not split over {} ranks",
               all.dim() ? all.size(0) : 0, world_);
    Shape shape = all.shape();
    shape[0] /= world_;
    Tensor out = Tensor::empty(shape);
    HEED_MPI_CHECK(MPI_Reduce_scatter_block(all.data<float>(), out.data<float>(), static_cast<int>(out.numel()),
                                            MPI_FLOAT, mpi_op(op), MPI_COMM_WORLD));
    if (op == ReduceOp::Average) scale(out.data<float>(), out.numel());
    return out;
  }
  void barrier() override { HEED_MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD)); }

 private:
  void scale(float* p, int64_t n) const {
    const float inv = 1.0f / static_cast<float>(world_);
    for (int64_t i = 0; i < n; ++i) p[i] *= inv;
  }
  int rank_ = 0, world_ = 1;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator() { return std::make_unique<MpiCommunicator>(); }

void abort_job(int code) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Abort(MPI_COMM_WORLD, code);
}

}  // namespace heed::dist
