#include "heed/train/optimizer.h"

namespace heed::train {

AdamOptimizer::AdamOptimizer(const nn::ParameterStore& params, ops::AdamHyper hyper) : hyper_(hyper) {
  for (const auto& [name, p] : params.all()) {
    if (!p.requires_grad()) continue;
    const Device device = p.value().device();
    slots_.push_back({p, Tensor::zeros(p.shape(), DType::F32, device), Tensor::zeros(p.shape(), DType::F32, device)});
  }
}

void AdamOptimizer::step(float grad_scale) {
  ++step_;
  std::vector<ops::AdamSlot> batch;
  batch.reserve(slots_.size());
  for (const Slot& s : slots_)
    if (s.param.grad().defined()) batch.push_back({s.param.value(), s.param.grad(), s.m, s.v});
  ops::adam_update(batch, hyper_, step_, grad_scale);
}

}  // namespace heed::train
