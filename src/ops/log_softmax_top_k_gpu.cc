// log_softmax_top_k on the GPU path: one launch of kernels/log_softmax_top_k.cu over all rows, of the
// single-model kernel for one tensor of weight 1 and of the ensemble kernel otherwise.
#include "core/kernel_args.h"
#include "heed/ops/log_softmax_top_k.h"
#include "kernels/log_softmax_top_k.h"
#include "ops/log_softmax_top_k_backends.h"

namespace heed::ops::gpu {

static_assert(kMaxTopKModels == kernels::kMaxTopKModels, "the op and its kernel must agree on the ensemble limit");

void log_softmax_top_k(const std::vector<Tensor>& logits, const std::vector<double>& weights, const Tensor& prefix,
                       int64_t exclude, Tensor& scores, Tensor& tokens) {
  kernels::LogSoftmaxTopKArgs args;
  args.rows = logits[0].size(0);
  args.vocab = logits[0].size(1);
  args.k = static_cast<int>(scores.size(1));
  args.dtype = logits[0].dtype();
  args.logits = logits[0].raw_data();
  args.prefix = prefix.data<float>();
  args.exclude = exclude;
  args.scores = scores.data<float>();
  args.tokens = tokens.data<int32_t>();
  if (logits.size() == 1 && weights[0] == 1.0) {
    HEED_RUN_KERNEL(logits[0].device(), log_softmax_top_k, args);
    return;
  }
  kernels::EnsembleLogSoftmaxTopKArgs ensemble;
  ensemble.row = args;
  ensemble.models = static_cast<int>(logits.size());
  for (size_t m = 0; m < logits.size(); ++m) {
    ensemble.logits[m] = logits[m].raw_data();
    ensemble.weights[m] = weights[m];
  }
  HEED_RUN_KERNEL(logits[0].device(), ensemble_log_softmax_top_k, ensemble);
}

}  // namespace heed::ops::gpu
