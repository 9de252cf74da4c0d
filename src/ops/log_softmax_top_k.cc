// Checks and dispatch for log_softmax_top_k; the selection is in log_softmax_top_k_cpu.cc and, on the GPU
// path, kernels/log_softmax_top_k.cu.
#include "heed/ops/log_softmax_top_k.h"

#include <cmath>

#include "ops/dispatch.h"
#include "ops/log_softmax_top_k_backends.h"

namespace heed::ops {

TopK log_softmax_top_k(const Tensor& logits, const std::vector<float>& prefix, int64_t k, int64_t exclude) {
  return log_softmax_top_k(std::vector<Tensor>{logits}, {1.0}, prefix, k, exclude);
}

TopK log_softmax_top_k(const std::vector<Tensor>& logits, const std::vector<double>& weights,
                       const std::vector<float>& prefix, int64_t k, int64_t exclude) {
  const int64_t models = static_cast<int64_t>(logits.size());
  HEED_CHECK(models >= 1 && models <= kMaxTopKModels, "log_softmax_top_k: {} logits tensors, expected 1 to {}",
             models, kMaxTopKModels);
  HEED_CHECK(weights.size() == logits.size(), "log_softmax_top_k: {} weights for {} logits tensors", weights.size(),
             logits.size());
  for (size_t m = 0; m < weights.size(); ++m)
    HEED_CHECK(std::isfinite(weights[m]) && weights[m] > 0,
               "log_softmax_top_k: weight {} is {}, expected a positive finite number", m, weights[m]);
  check_float(logits[0], "log_softmax_top_k", "logits");
  HEED_CHECK(logits[0].dim() == 2 && logits[0].size(1) > 0, "log_softmax_top_k: logits must be [rows, vocab], got {}",
             shape_str(logits[0].shape()));
  for (int64_t m = 1; m < models; ++m) {
    const Tensor& t = logits[m];
    HEED_CHECK(t.defined(), "log_softmax_top_k: logits {} is undefined", m);
    HEED_CHECK(t.shape() == logits[0].shape() && t.dtype() == logits[0].dtype() && t.device() == logits[0].device(),
               "log_softmax_top_k: logits {} is {} {} on {}, logits 0 is {} {} on {}", m, shape_str(t.shape()),
               dtype_name(t.dtype()), t.device().str(), shape_str(logits[0].shape()), dtype_name(logits[0].dtype()),
               logits[0].device().str());
  }
  const int64_t rows = logits[0].size(0), vocab = logits[0].size(1);
  HEED_CHECK(static_cast<int64_t>(prefix.size()) == rows, "log_softmax_top_k: {} prefix scores for {} rows",
             prefix.size(), rows);
  HEED_CHECK(k >= 1 && k <= (int64_t(1) << 20), "log_softmax_top_k: k must be in [1, 2^20], got {}", k);
  HEED_CHECK(exclude >= -1 && exclude < vocab, "log_softmax_top_k: exclude must be -1 or a token below {}, got {}",
             vocab, exclude);
  const Device device = logits[0].device();
  std::vector<Tensor> xs;
  for (const Tensor& t : logits) xs.push_back(t.contiguous());
  const Tensor prefix_on_device = Tensor::from_vector(prefix, {rows}).to(device);
  Tensor scores = Tensor::empty({rows, k}, DType::F32, device), tokens = Tensor::empty({rows, k}, DType::I32, device);
  if (rows > 0)
    HEED_DISPATCH(device, "log_softmax_top_k",
                  log_softmax_top_k(xs, weights, prefix_on_device, exclude, scores, tokens));
  return {scores.to(Device::cpu()), tokens.to(Device::cpu())};
}

}  // namespace heed::ops
