#include "heed/train/gradient_sync.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace heed::train {

struct GradientSync::Bucket {
  std::vector<const nn::Variable*> params;
  int64_t floats = 0;
  size_t ready_after = 0;  // tape nodes after which every gradient in the bucket is complete
  Tensor flat;
  std::unique_ptr<dist::Pending> pending;
};

GradientSync::GradientSync(const nn::ParameterStore& store, dist::Communicator& comm, int64_t bucket_bytes)
    : comm_(comm) {
  for (const auto& [name, p] : store.all())
    if (p.requires_grad()) params_.push_back(p);
  std::reverse(params_.begin(), params_.end());
  for (const nn::Variable& p : params_) {
    if (buckets_.empty() || buckets_.back().floats * 4 >= bucket_bytes) buckets_.emplace_back();
    buckets_.back().params.push_back(&p);
    buckets_.back().floats += p.value().numel();
  }
}

GradientSync::~GradientSync() = default;

// Parameters without a gradient on this rank take part with zeros, so all ranks send the same layout.
void GradientSync::start(Bucket& b) {
  b.flat = Tensor::empty({b.floats}, DType::F32, b.params.front()->value().device());
  int64_t offset = 0;
  for (const nn::Variable* p : b.params) {
    Tensor slice = b.flat.narrow(0, offset, p->value().numel()).view(p->shape());
    if (p->grad().defined())
      slice.copy_from(p->grad());
    else
      slice.fill_(0.0f);
    offset += p->value().numel();
  }
  b.pending = comm_.all_reduce_async(b.flat, dist::ReduceOp::Sum);
}

void GradientSync::finish(Bucket& b) {
  b.pending->wait();
  b.pending.reset();
  int64_t offset = 0;
  for (const nn::Variable* p : b.params) {
    const Tensor slice = b.flat.narrow(0, offset, p->value().numel()).view(p->shape());
    if (Tensor grad = p->grad(); grad.defined())
      grad.copy_from(slice);
    else
      p->accumulate_grad(slice.clone());
    offset += p->value().numel();
  }
  b.flat = Tensor();
}

void GradientSync::backward_and_reduce(const nn::Variable& loss, float seed) {
  if (comm_.world() == 1) {
    autograd::backward(loss, seed);
    return;
  }
  if (!learned_) {
    std::vector<uint64_t> version(params_.size());
    std::vector<size_t> last_change(params_.size(), 0);
    size_t nodes = 0;
    for (size_t i = 0; i < params_.size(); ++i) version[i] = params_[i].grad_version();
    autograd::backward(loss, seed, [&](size_t done) {
      nodes = done;
      for (size_t i = 0; i < params_.size(); ++i) {
        if (params_[i].grad_version() != version[i]) {
          version[i] = params_[i].grad_version();
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
        if (!b.pending && !b.flat.defined() && b.ready_after <= done) start(b);
        if (b.pending) b.pending->test();  // MPI progresses a non-blocking collective only inside MPI calls
      }
    });
  }
  for (Bucket& b : buckets_)
    if (!b.pending) start(b);
  for (Bucket& b : buckets_) finish(b);
}

}  // namespace heed::train
