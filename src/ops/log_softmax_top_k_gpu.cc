// log_softmax_top_k on the GPU path: one launch of kernels/log_softmax_top_k.cu over all rows.
#include "core/kernel_args.h"
#include "kernels/log_softmax_top_k.h"
#include "ops/log_softmax_top_k_backends.h"

namespace heed::ops::gpu {

void log_softmax_top_k(const Tensor& logits, const Tensor& prefix, int64_t exclude, Tensor& scores, Tensor& tokens) {
  kernels::LogSoftmaxTopKArgs args;
  args.rows = logits.size(0);
  args.vocab = logits.size(1);
  args.k = static_cast<int>(scores.size(1));
  args.dtype = logits.dtype();
  args.logits = logits.raw_data();
  args.prefix = prefix.data<float>();
  args.exclude = exclude;
  args.scores = scores.data<float>();
  args.tokens = tokens.data<int32_t>();
  HEED_RUN_KERNEL(logits.device(), log_softmax_top_k, args);
}

}  // namespace heed::ops::gpu
