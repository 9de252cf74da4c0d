// Checks and dispatch for log_softmax_top_k; the selection is in log_softmax_top_k_cpu.cc and, on the GPU
// path, kernels/log_softmax_top_k.cu.
#include "heed/ops/log_softmax_top_k.h"

#include "ops/dispatch.h"
#include "ops/log_softmax_top_k_backends.h"

namespace heed::ops {

TopK log_softmax_top_k(const Tensor& logits, const std::vector<float>& prefix, int64_t k, int64_t exclude) {
  check_float(logits, "log_softmax_top_k", "logits");
  HEED_CHECK(logits.dim() == 2 && logits.size(1) > 0, "log_softmax_top_k: logits must be [rows, vocab], got {}",
             shape_str(logits.shape()));
  const int64_t rows = logits.size(0), vocab = logits.size(1);
  HEED_CHECK(static_cast<int64_t>(prefix.size()) == rows, "log_softmax_top_k: {} prefix scores for {} rows",
             prefix.size(), rows);
  HEED_CHECK(k >= 1 && k <= (int64_t(1) << 20), "log_softmax_top_k: k must be in [1, 2^20], got {}", k);
  HEED_CHECK(exclude >= -1 && exclude < vocab, "log_softmax_top_k: exclude must be -1 or a token below {}, got {}",
             vocab, exclude);
  const Device device = logits.device();
  const Tensor x = logits.contiguous();
  const Tensor prefix_on_device = Tensor::from_vector(prefix, {rows}).to(device);
  Tensor scores = Tensor::empty({rows, k}, DType::F32, device), tokens = Tensor::empty({rows, k}, DType::I32, device);
  if (rows > 0)
    HEED_DISPATCH(device, "log_softmax_top_k", log_softmax_top_k(x, prefix_on_device, exclude, scores, tokens));
  return {scores.to(Device::cpu()), tokens.to(Device::cpu())};
}

}  // namespace heed::ops
