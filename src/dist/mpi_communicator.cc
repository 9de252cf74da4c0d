// Collectives over MPI (Open MPI from Debian) for CPU tensors. MPI is initialised on first use and
// finalised at process exit; errors come back as return codes (MPI_ERRORS_RETURN) so that each failure
// names the call and MPI's reason instead of aborting inside the library.
//
// MPI has no timeouts: a rank that dies inside a collective is noticed by the launcher, but one that hangs
// (a stuck filesystem, a deadlocked GPU) leaves the others waiting forever. A watchdog thread therefore
// times every collective; past the timeout it logs which rank waited in which operation and ends the
// process, and the launcher (mpirun, srun --kill-on-bad-exit) then ends the job.
#include <mpi.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

#include "dist/mpi_communicator.h"
#include "heed/core/error.h"

#define HEED_MPI_CHECK(call) HEED_CHECK_CALL("MPI", #call, call, MPI_SUCCESS, mpi_error_text)

namespace heed::dist {

namespace {

// MPI's text for an error code, for HEED_MPI_CHECK's message.
std::string mpi_error_text(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) return fmt::format("MPI error code {}", code);
  return std::string(text, static_cast<size_t>(length));
}

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

// The simulated GPU's memory is host memory, so MPI carries its tensors as they are: data parallelism on
// `sim` runs the GPU path's gradient buckets over MPI, which is how CI tests them without NCCL.
void check_fp32(const Tensor& t, const char* what) {
  HEED_CHECK(t.dtype() == DType::F32 && t.is_contiguous() && t.device().is_host_memory(),
             "{} over MPI needs a contiguous fp32 tensor in host memory, got {} on {}", what, dtype_name(t.dtype()),
             t.device().str());
}

class Watchdog {
 public:
  Watchdog(int rank, double timeout_s) : rank_(rank), timeout_(timeout_s), thread_([this] { watch(); }) {}
  ~Watchdog() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }
  // Times one collective for as long as the returned guard lives.
  auto time(const char* operation) {
    {
      std::lock_guard lock(mutex_);
      operation_ = operation;
      since_ = std::chrono::steady_clock::now();
    }
    auto finish = [this](void*) {
      std::lock_guard lock(mutex_);
      operation_ = nullptr;
    };
    return std::unique_ptr<void, decltype(finish)>(this, finish);
  }

 private:
  void watch() {
    std::unique_lock lock(mutex_);
    while (!done_) {
      changed_.wait_for(lock, std::chrono::milliseconds(200));
      if (operation_ == nullptr) continue;
      const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - since_).count();
      if (waited > timeout_) {
        spdlog::error("rank {} waited {:.1f} s in {} for the other ranks (training.collective_timeout {} s): a rank "
                      "has died or hangs; ending the job",
                      rank_, waited, operation_, timeout_);
        std::_Exit(1);  // MPI_Abort is not callable from this thread; the launcher ends the other ranks
      }
    }
  }

  const int rank_;
  const double timeout_;
  std::mutex mutex_;
  std::condition_variable changed_;
  const char* operation_ = nullptr;
  std::chrono::steady_clock::time_point since_;
  bool done_ = false;
  std::thread thread_;
};

struct MpiPending final : Pending {
  explicit MpiPending(Watchdog& watchdog) : watchdog(watchdog) {}
  ~MpiPending() override {
    if (request != MPI_REQUEST_NULL) MPI_Wait(&request, MPI_STATUS_IGNORE);
  }
  bool test() override {
    int done = 0;
    HEED_MPI_CHECK(MPI_Test(&request, &done, MPI_STATUS_IGNORE));
    return done != 0;
  }
  void wait() override {
    const auto timed = watchdog.time("all_reduce (gradient bucket)");
    HEED_MPI_CHECK(MPI_Wait(&request, MPI_STATUS_IGNORE));
  }
  Watchdog& watchdog;
  MPI_Request request = MPI_REQUEST_NULL;
};

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(double timeout_s) {
    MpiSession::get();
    HEED_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
    HEED_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &world_));
    watchdog_ = std::make_unique<Watchdog>(rank_, timeout_s);
  }
  int rank() const override { return rank_; }
  int world() const override { return world_; }
  std::string name() const override { return fmt::format("MPI, {} processes", world_); }

  void all_reduce(Tensor& t, ReduceOp op) override {
    check_fp32(t, "all_reduce");
    const auto timed = watchdog_->time("all_reduce (tensor)");
    HEED_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, t.data<float>(), static_cast<int>(t.numel()), MPI_FLOAT, mpi_op(op),
                                 MPI_COMM_WORLD));
    if (op == ReduceOp::Average) scale(t.data<float>(), t.numel());
  }
  std::unique_ptr<Pending> all_reduce_async(Tensor& t, ReduceOp op) override {
    check_fp32(t, "all_reduce_async");
    HEED_CHECK(op != ReduceOp::Average, "all_reduce_async supports Sum and Max");
    auto pending = std::make_unique<MpiPending>(*watchdog_);
    HEED_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, t.data<float>(), static_cast<int>(t.numel()), MPI_FLOAT, mpi_op(op),
                                  MPI_COMM_WORLD, &pending->request));
    return pending;
  }
  void all_reduce(std::vector<double>& values, ReduceOp op) override {
    const auto timed = watchdog_->time("all_reduce (values)");
    HEED_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_DOUBLE,
                                 mpi_op(op), MPI_COMM_WORLD));
    if (op == ReduceOp::Average)
      for (double& v : values) v /= world_;
  }
  void broadcast(Tensor& t, int root) override {
    HEED_CHECK(t.is_contiguous() && t.device().is_host_memory(),
               "broadcast over MPI needs a contiguous tensor in host memory");
    const auto timed = watchdog_->time("broadcast");
    HEED_MPI_CHECK(MPI_Bcast(t.raw_data(), static_cast<int>(t.nbytes()), MPI_BYTE, root, MPI_COMM_WORLD));
  }
  Tensor all_gather(const Tensor& t) override {
    const Tensor mine = t.contiguous();
    HEED_CHECK(mine.device().is_host_memory(), "all_gather over MPI needs a tensor in host memory, got one on {}",
               mine.device().str());
    Shape shape = mine.shape();
    shape.insert(shape.begin(), world_);
    Tensor out = Tensor::empty(shape, mine.dtype(), mine.device());
    const auto timed = watchdog_->time("all_gather");
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
    Tensor out = Tensor::empty(shape, DType::F32, all.device());
    const auto timed = watchdog_->time("reduce_scatter");
    HEED_MPI_CHECK(MPI_Reduce_scatter_block(all.data<float>(), out.data<float>(), static_cast<int>(out.numel()),
                                            MPI_FLOAT, mpi_op(op), MPI_COMM_WORLD));
    if (op == ReduceOp::Average) scale(out.data<float>(), out.numel());
    return out;
  }
  void barrier() override {
    const auto timed = watchdog_->time("barrier");
    HEED_MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
  }

 private:
  void scale(float* p, int64_t n) const {
    const float inv = 1.0f / static_cast<float>(world_);
    for (int64_t i = 0; i < n; ++i) p[i] *= inv;
  }
  int rank_ = 0, world_ = 1;
  std::unique_ptr<Watchdog> watchdog_;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(double timeout_s) {
  return std::make_unique<MpiCommunicator>(timeout_s);
}

void abort_job(int code) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Abort(MPI_COMM_WORLD, code);
}

}  // namespace heed::dist
