// Data-parallel gradient synchronisation: every gradient is summed over the ranks in buckets of about
// 25 MiB, and each bucket's all-reduce starts as soon as the backward pass has finished writing all of its
// gradients, so that communication overlaps the rest of the backward pass (PyTorch DDP's scheme).
//
// When is a gradient finished? The tape runs the same nodes in the same order every step (the model's
// graph does not depend on the batch), so the first step watches each parameter's gradient version after
// every node and learns the node after which it last changes. That step reduces all buckets after
// backward; later steps start a bucket right after the last node that writes into it. Buckets hold the
// parameters in reverse creation order, which is about the order in which backward finishes them.
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
  // the sum over the ranks. With one rank, a plain backward pass.
  void backward_and_reduce(const nn::Variable& loss, float seed = 1.0f);

 private:
  struct Bucket;
  void start(Bucket& bucket);
  void finish(Bucket& bucket);

  dist::Communicator& comm_;
  std::vector<nn::Variable> params_;  // trainable, in reverse creation order
  std::vector<Bucket> buckets_;
  bool learned_ = false;  // whether each bucket knows the node after which it is complete
};

}  // namespace heed::train
