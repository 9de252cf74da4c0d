#include "heed/train/gradient_sync.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace heed::train {

struct GradientSync::Bucket {
  std::vector<nn::Variable> params;
  Tensor flat;             // their gradients: a slice of the store's gradient buffer
  size_t ready_after = 0;  // tape nodes after which every gradient in the bucket is complete
  std::unique_ptr<dist::Pending> pending;
};

GradientSync::GradientSync(const nn::ParameterStore& store, dist::Communicator& comm, int64_t bucket_bytes)
    : store_(store), comm_(comm), bucket_bytes_(bucket_bytes) {}

GradientSync::~GradientSync() = default;

void GradientSync::lay_out_buckets() {
  const autograd::GradientBuffer& buffer = store_.grad_buffer();
  HEED_CHECK(buffer.defined(), "data-parallel backward without a gradient buffer: the parameter store's "
             "zero_grads() lays it out before a step");
  // laid_out_ keeps the buffer it was cut from alive, so no other buffer can have its address.
  if (laid_out_.defined() && laid_out_.raw_data() == buffer.flat().raw_data()) return;
  laid_out_ = buffer.flat();
  buckets_.clear();
  learned_ = false;
  int64_t begin = 0;
  auto close_bucket = [&](int64_t end) {
    if (!buckets_.empty()) buckets_.back().flat = laid_out_.narrow(0, begin, end - begin);
    begin = end;
  };
  for (size_t i = 0; i < buffer.vars().size(); ++i) {
    if (buckets_.empty() || (buffer.offset(i) - begin) * 4 >= bucket_bytes_) {
      close_bucket(buffer.offset(i));
      buckets_.emplace_back();
    }
    buckets_.back().params.push_back(buffer.vars()[i]);
  }
  close_bucket(laid_out_.numel());
}

// Parameters without a gradient on this rank take part with zeros, so all ranks send the same layout.
void GradientSync::start(Bucket& b) {
  autograd::settle_grads(b.params, /*zero_missing=*/true);
  b.pending = comm_.all_reduce_async(b.flat, dist::ReduceOp::Sum);
}

void GradientSync::backward_and_reduce(const nn::Variable& loss, float seed) {
  if (comm_.world() == 1) {
    autograd::backward(loss, seed);
    return;
  }
  lay_out_buckets();
  if (!learned_) {
    const std::vector<nn::Variable>& params = store_.grad_buffer().vars();
    std::vector<uint64_t> version(params.size());
    std::vector<size_t> last_change(params.size(), 0);
    size_t nodes = 0;
    for (size_t i = 0; i < params.size(); ++i) version[i] = params[i].grad_version();
    autograd::backward(loss, seed, [&](size_t done) {
      nodes = done;
      for (size_t i = 0; i < params.size(); ++i) {
        if (params[i].grad_version() != version[i]) {
          version[i] = params[i].grad_version();
          last_change[i] = done;
        }
      }
    });
    size_t i = 0;
    for (Bucket& b : buckets_) {
      for (size_t k = 0; k < b.params.size(); ++k, ++i) b.ready_after = std::max(b.ready_after, last_change[i]);
    }
    const size_t first = std::min_element(buckets_.begin(), buckets_.end(), [](const Bucket& a, const Bucket& b) {
                           return a.ready_after < b.ready_after;
                         })->ready_after;
    spdlog::info("gradients: {} all-reduce buckets; the first can start after {} of {} backward nodes",
                 buckets_.size(), first, nodes);
    learned_ = true;
  } else {
    autograd::backward(loss, seed, [&](size_t done) {
      for (Bucket& b : buckets_) {
        if (!b.pending && b.ready_after <= done) start(b);
        if (b.pending) b.pending->test();  // MPI progresses a non-blocking collective only inside MPI calls
      }
    });
  }
  for (Bucket& b : buckets_)
    if (!b.pending) start(b);
  for (Bucket& b : buckets_) {
    b.pending->wait();
    b.pending.reset();
  }
}

}  // namespace heed::train
