#include "heed/dist/communicator.h"

#include <cstdlib>
#include <cstring>

#include "dist/mpi_communicator.h"
#include "heed/core/error.h"

namespace heed::dist {

namespace {

class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int world() const override { return 1; }
  std::string name() const override { return "single process"; }
  void all_reduce(Tensor&, ReduceOp) override {}
  std::unique_ptr<Pending> all_reduce_async(Tensor&, ReduceOp) override {
    struct Done final : Pending {
      bool test() override { return true; }
      void wait() override {}
    };
    return std::make_unique<Done>();
  }
  void all_reduce(std::vector<double>&, ReduceOp) override {}
  void broadcast(Tensor&, int) override {}
  Tensor all_gather(const Tensor& t) override {
    Shape shape = t.shape();
    shape.insert(shape.begin(), 1);
    return t.contiguous().clone().view(shape);
  }
  Tensor reduce_scatter(const Tensor& t, ReduceOp) override { return t.contiguous().clone(); }
  void barrier() override {}
};

// The launchers say how many processes they started: Open MPI's mpirun, PMI (MPICH, Intel MPI), and srun
// for the tasks of a job step.
int launched_world_size() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"}) {
    if (const char* v = std::getenv(var)) return std::atoi(v);
  }
  return 1;
}

}  // namespace

std::unique_ptr<Communicator> make_communicator(double timeout_s) {
  if (launched_world_size() > 1) return make_mpi_communicator(timeout_s);
  return std::make_unique<SingleProcess>();
}

int local_rank() {
  for (const char* var : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID", "PMI_LOCAL_RANK"}) {
    if (const char* v = std::getenv(var)) return std::atoi(v);
  }
  return 0;
}

std::vector<std::vector<std::string>> all_gather_strings(Communicator& comm, const std::vector<std::string>& mine) {
  // Serialised as [count, length_1, ..., length_n] (as int64 in a float-free byte tensor) plus the bytes,
  // padded to the longest rank so that the collective sees one shape everywhere.
  std::string bytes;
  std::vector<int64_t> header{static_cast<int64_t>(mine.size())};
  for (const std::string& s : mine) {
    header.push_back(static_cast<int64_t>(s.size()));
    bytes += s;
  }
  std::vector<double> sizes(2 * static_cast<size_t>(comm.world()), 0.0);
  sizes[2 * comm.rank()] = static_cast<double>(header.size());
  sizes[2 * comm.rank() + 1] = static_cast<double>(bytes.size());
  comm.all_reduce(sizes, ReduceOp::Sum);
  int64_t longest = 0;
  for (int r = 0; r < comm.world(); ++r)
    longest = std::max<int64_t>(longest, 8 * static_cast<int64_t>(sizes[2 * r]) + static_cast<int64_t>(sizes[2 * r + 1]));
  Tensor packed = Tensor::zeros({longest}, DType::U8);
  std::memcpy(packed.data<uint8_t>(), header.data(), 8 * header.size());
  std::memcpy(packed.data<uint8_t>() + 8 * header.size(), bytes.data(), bytes.size());
  const Tensor all = comm.all_gather(packed);
  std::vector<std::vector<std::string>> out(static_cast<size_t>(comm.world()));
  for (int r = 0; r < comm.world(); ++r) {
    const uint8_t* p = all.data<uint8_t>() + r * longest;
    int64_t count = 0;
    std::memcpy(&count, p, 8);
    const uint8_t* text = p + 8 * (count + 1);
    for (int64_t i = 0; i < count; ++i) {
      int64_t length = 0;
      std::memcpy(&length, p + 8 * (i + 1), 8);
      out[static_cast<size_t>(r)].emplace_back(reinterpret_cast<const char*>(text), static_cast<size_t>(length));
      text += length;
    }
  }
  return out;
}

}  // namespace heed::dist
