// DeviceCommunicator: collectives on device tensors, one device per rank (device_communicator.h).
//
// Ordering. The model queues its work on the compute stream. A collective records an event there (the
// bucket's gradients are final at that point), makes the communicator's own stream wait for it, queues the
// library's call on that stream, and records a second event after it. So a bucket's all-reduce runs while
// backward goes on computing the next gradients. wait() waits on the host for the second event, polling
// the library's asynchronous errors, and then orders the compute stream after it, so the copies out of the
// bucket read the sum.
//
// Failures. A peer that hangs never completes the collective. Past the timeout, wait() aborts the library's
// communicator (which frees the stuck kernels) and ends this rank with an error naming the operation; the
// launcher then ends the job, as with MPI.
//
// On the simulated GPU the library is MPI on the device's host memory, and streams and events are the
// simulator's stand-ins (heed/core/stream.h), so everything here but the NCCL calls runs in CI.
#include "dist/device_communicator.h"

#include <chrono>
#include <thread>

#include "heed/core/error.h"

namespace heed::dist {

namespace {

// NCCL's stand-in on the simulated GPU: its memory is host memory, which MPI reads directly. Launches
// there complete when they are made, so running the collective at once is what a stream would do.
class HostMemoryCollectives final : public DeviceCollectives {
 public:
  explicit HostMemoryCollectives(Communicator& host) : host_(host) {}
  std::string name() const override { return "MPI on the simulated GPU's memory (standing in for NCCL)"; }
  void all_reduce(Tensor& t, ReduceOp op, const Stream&) override { host_.all_reduce(t, op); }
  void broadcast(Tensor& t, int root, const Stream&) override { host_.broadcast(t, root); }
  void all_gather(const Tensor& mine, Tensor& out, const Stream&) override { out.copy_from(host_.all_gather(mine)); }
  void reduce_scatter(const Tensor& all, Tensor& out, ReduceOp op, const Stream&) override {
    out.copy_from(host_.reduce_scatter(all, op));
  }
  void check() override {}
  void abort() override {}

 private:
  Communicator& host_;
};

class DevicePending final : public Pending {
 public:
  DevicePending(DeviceCollectives& collectives, Event done, Stream compute, double timeout_s, int rank,
                const char* operation)
      : collectives_(collectives), done_(std::move(done)), compute_(std::move(compute)), timeout_s_(timeout_s),
        rank_(rank), operation_(operation) {}

  bool test() override {
    collectives_.check();
    return done_.done();
  }

  void wait() override {
    const auto start = std::chrono::steady_clock::now();
    while (!test()) {
      if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > timeout_s_) {
        collectives_.abort();
        HEED_CHECK(false, "rank {} waited more than {} s for the other ranks in {} over {} "
                   "(training.collective_timeout): a rank has died or hangs", rank_, timeout_s_, operation_,
                   collectives_.name());
      }
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    done_.order_before(compute_);
  }

 private:
  DeviceCollectives& collectives_;
  Event done_;
  Stream compute_;
  double timeout_s_;
  int rank_;
  const char* operation_;
};

class DeviceCommunicator final : public Communicator {
 public:
  DeviceCommunicator(std::unique_ptr<Communicator> host, Device device,
                     std::unique_ptr<DeviceCollectives> collectives, double timeout_s)
      : host_(std::move(host)), device_(device), collectives_(std::move(collectives)), timeout_s_(timeout_s),
        compute_(Stream::compute(device)), own_(Stream::create(device)) {}

  int rank() const override { return host_->rank(); }
  int world() const override { return host_->world(); }
  std::string name() const override {
    return fmt::format("{} on {}, bootstrapped over {}", collectives_->name(), device_.str(), host_->name());
  }

  void all_reduce(Tensor& t, ReduceOp op) override {
    if (t.device().is_cpu()) return host_->all_reduce(t, op);
    all_reduce_async(t, op)->wait();
  }
  std::unique_ptr<Pending> all_reduce_async(Tensor& t, ReduceOp op) override {
    if (t.device().is_cpu()) return host_->all_reduce_async(t, op);
    check_on_device(t, "all_reduce");
    return queue("all_reduce", [&] { collectives_->all_reduce(t, op, own_); });
  }
  void all_reduce(std::vector<double>& values, ReduceOp op) override { host_->all_reduce(values, op); }
  void broadcast(Tensor& t, int root) override {
    if (t.device().is_cpu()) return host_->broadcast(t, root);
    check_on_device(t, "broadcast");
    queue("broadcast", [&] { collectives_->broadcast(t, root, own_); })->wait();
  }
  Tensor all_gather(const Tensor& t) override {
    if (t.device().is_cpu()) return host_->all_gather(t);
    const Tensor mine = t.contiguous();
    check_on_device(mine, "all_gather");
    Shape shape = mine.shape();
    shape.insert(shape.begin(), world());
    Tensor out = Tensor::empty(shape, mine.dtype(), device_);
    queue("all_gather", [&] { collectives_->all_gather(mine, out, own_); })->wait();
    return out;
  }
  Tensor reduce_scatter(const Tensor& t, ReduceOp op) override {
    if (t.device().is_cpu()) return host_->reduce_scatter(t, op);
    const Tensor all = t.contiguous();
    check_on_device(all, "reduce_scatter");
    HEED_CHECK(all.dim() >= 1 && all.size(0) % world() == 0, "reduce_scatter: {} rows do not split over {} ranks",
               all.dim() ? all.size(0) : 0, world());
    Shape shape = all.shape();
    shape[0] /= world();
    Tensor out = Tensor::empty(shape, all.dtype(), device_);
    queue("reduce_scatter", [&] { collectives_->reduce_scatter(all, out, op, own_); })->wait();
    return out;
  }
  void barrier() override { host_->barrier(); }

 private:
  void check_on_device(const Tensor& t, const char* operation) const {
    HEED_CHECK(t.is_contiguous() && t.device() == device_, "{} over {}: needs a contiguous tensor on {}, got one on {}",
               operation, collectives_->name(), device_.str(), t.device().str());
  }

  // Queues `call` on the own stream after the compute stream's work so far; the pending collective
  // completes with an event after it.
  template <typename F>
  std::unique_ptr<Pending> queue(const char* operation, F&& call) {
    Event ready(device_);
    ready.record(compute_);
    ready.order_before(own_);
    call();
    Event done(device_);
    done.record(own_);
    return std::make_unique<DevicePending>(*collectives_, std::move(done), compute_, timeout_s_, rank(), operation);
  }

  std::unique_ptr<Communicator> host_;
  Device device_;
  std::unique_ptr<DeviceCollectives> collectives_;
  double timeout_s_;
  Stream compute_, own_;
};

}  // namespace

std::unique_ptr<Communicator> make_device_communicator(std::unique_ptr<Communicator> host, Device device,
                                                       double timeout_s) {
  if (host->world() == 1 || device.is_cpu()) return host;
  std::unique_ptr<DeviceCollectives> collectives;
  if (device.is_sim()) {
    collectives = std::make_unique<HostMemoryCollectives>(*host);
  } else {
#ifdef HEED_WITH_NCCL
    collectives = make_nccl_collectives(*host, device.index);
#else
    HEED_CHECK(false, "{} processes on GPUs need NCCL, and this build of Heed has none (CMake did not find nccl.h "
               "and libnccl)", host->world());
#endif
  }
  return std::make_unique<DeviceCommunicator>(std::move(host), device, std::move(collectives), timeout_s);
}

}  // namespace heed::dist
