#include "heed/train/ema.h"

#include <spdlog/spdlog.h>

#include "heed/core/error.h"
#include "heed/ops/elementwise.h"

namespace heed::train {

ExponentialMovingAverage::ExponentialMovingAverage(const nn::ParameterStore& store, double decay)
    : store_(store), complement_(static_cast<float>(1.0 - decay)) {
  HEED_CHECK(decay >= 0 && decay < 1, "optimizer.ema_decay must be in [0, 1), got {}", decay);
  if (decay == 0) return;
  int64_t values = 0;
  for (const auto& [name, p] : store.all()) {
    if (!p.requires_grad()) continue;
    slots_.push_back({name, p, p.value().clone()});
    values += p.value().numel();
  }
  spdlog::info("moving average of the {} trainable values, decay {}: validation and the checkpoints' model files "
               "use it", values, decay);
}

void ExponentialMovingAverage::update() {
  for (Slot& s : slots_) {
    Tensor step = s.param.value().clone();
    ops::axpy_(step, s.average, -1.0f);  // weights - average, exact but for one rounding
    ops::axpy_(s.average, step, complement_);
  }
}

io::TensorMap ExponentialMovingAverage::values() const {
  io::TensorMap out = store_.values();
  for (const Slot& s : slots_) out[s.name] = s.average;
  return out;
}

void ExponentialMovingAverage::load(const io::TensorMap& averaged, const std::string& source) {
  for (Slot& s : slots_) {
    const auto it = averaged.find(s.name);
    HEED_CHECK(it != averaged.end(), "{}: no averaged weights for {}", source, s.name);
    HEED_CHECK(it->second.shape() == s.param.shape(), "{}: the average of {} has shape {}, expected {}", source,
               s.name, shape_str(it->second.shape()), shape_str(s.param.shape()));
    s.average.copy_from(it->second.to(DType::F32));
  }
}

void ExponentialMovingAverage::swap() {
  for (Slot& s : slots_) {
    Tensor weights = s.param.value();
    s.param.set_value(s.average);
    s.average = std::move(weights);
  }
}

}  // namespace heed::train
