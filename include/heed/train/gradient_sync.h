// Data-parallel gradient synchronisation: every gradient is summed over the ranks in buckets of about
// 25 MiB, and each bucket's all-reduce starts as soon as the backward pass has finished writing all of its
// gradients, so that communication overlaps the rest of the backward pass (PyTorch DDP's scheme).
//
// When is a gradient finished? The tape runs the same nodes in the same order every step (the model's
// graph does not depend on the batch), so the first step watches each parameter's gradient version after
// every node and learns the node after which it last changes. That step reduces all buckets after
// backward; later steps start a bucket right after the last node that writes into it. Buckets hold the
// parameters in reverse creation order, which is about the order in which backward finishes them.
//
// A bucket is a slice of the store's gradient buffer (ParameterStore::grad_buffer, which lays the
// gradients out in that order), all-reduced in place: starting one costs at most one launch, which moves
// first contributions still held elsewhere into their slices and zeroes the slices of parameters without
// a gradient on this rank (autograd::settle_grads), and nothing is copied back.
#pragma once

#include <memory>
#include <vector>

#include "heed/dist/communicator.h"
#include "heed/nn/parameters.h"

namespace heed::train {

class GradientSync {
 public:
  GradientSync(const nn::ParameterStore& store, dist::Communicator& comm, int64_t bucket_bytes = 25 << 20);
  ~GradientSync();

  // backward() from `loss`, seeded with `seed` (the fp16 loss scale); on return every trainable gradient is
  // the sum over the ranks. With one rank, a plain backward pass. The store's zero_grads() must have laid
  // out its gradient buffer.
  void backward_and_reduce(const nn::Variable& loss, float seed = 1.0f);

 private:
  struct Bucket;
  // Cuts the store's gradient buffer into buckets (again, if the buffer changed).
  void lay_out_buckets();
  void start(Bucket& bucket);

  const nn::ParameterStore& store_;
  dist::Communicator& comm_;
  int64_t bucket_bytes_;
  Tensor laid_out_;  // the gradient buffer the buckets are slices of
  std::vector<Bucket> buckets_;
  bool learned_ = false;  // whether each bucket knows the node after which it is complete
};

}  // namespace heed::train
