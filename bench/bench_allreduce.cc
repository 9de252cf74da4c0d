// Bus bandwidth of Heed's gradient all-reduce, as nccl-tests reports it, through the same communicator the
// trainer uses: MPI on the CPU (and the simulated GPU), NCCL on GPUs.
//
//   mpirun -np N bench_allreduce [--device cpu|cuda|sim] [--min-bytes B] [--max-bytes B] [--iters K]
//
// For each size (doubling from min to max) it times K fp32 all-reduces (sum, in place) after a warm-up and
// prints, on rank 0, the time per call, the algorithm bandwidth (bytes / time) and the bus bandwidth,
// algbw * 2(N-1)/N: what each link carries in a ring all-reduce, comparable across rank counts and with
// nccl-tests' busbw. With --device cuda each rank uses the GPU of its local rank.
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>

#include "heed/dist/communicator.h"

using namespace heed;

int main(int argc, char** argv) {
  std::string device_name = "cpu";
  int64_t min_bytes = 1 << 10, max_bytes = int64_t(256) << 20;
  int iters = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--device")) device_name = argv[i + 1];
    else if (!std::strcmp(argv[i], "--min-bytes")) min_bytes = std::atoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--max-bytes")) max_bytes = std::atoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--iters")) iters = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  try {
    std::unique_ptr<dist::Communicator> comm = dist::make_communicator();
    Device device = Device::parse(device_name);
    if (device.is_cuda()) device = Device::cuda(dist::local_rank());
    comm = dist::make_device_communicator(std::move(comm), device, 600);
    const int n = comm->world();
    if (comm->rank() == 0)
      fmt::print("all-reduce (sum, fp32, in place) over {}, {} iterations per size\n{:>12} {:>12} {:>12} {:>12}\n",
                 comm->name(), iters, "bytes", "time us", "algbw GB/s", "busbw GB/s");
    for (int64_t bytes = min_bytes; bytes <= max_bytes; bytes *= 2) {
      Tensor t = Tensor::full({bytes / 4}, 1.0f, device);
      comm->all_reduce(t, dist::ReduceOp::Sum);  // warm-up: connections, buffers
      comm->barrier();
      const auto start = std::chrono::steady_clock::now();
      for (int k = 0; k < iters; ++k) comm->all_reduce(t, dist::ReduceOp::Sum);
      synchronize(device);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / iters;
      std::vector<double> worst{seconds};  // the slowest rank sets the pace
      comm->all_reduce(worst, dist::ReduceOp::Max);
      const double algbw = static_cast<double>(bytes) / worst[0] / 1e9;
      if (comm->rank() == 0)
        fmt::print("{:>12} {:>12.1f} {:>12.2f} {:>12.2f}\n", bytes, worst[0] * 1e6, algbw, algbw * 2.0 * (n - 1) / n);
    }
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    dist::abort_job(1);
    return 1;
  }
  return 0;
}
