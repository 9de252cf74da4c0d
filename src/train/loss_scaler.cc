#include "heed/train/loss_scaler.h"

#include <cmath>

#include "heed/core/error.h"

namespace heed::train {

namespace {

// Keeps the scale a power of two (exact in every float format) within fp32's normal range.
constexpr double kMinScale = 1.0 / (1 << 24), kMaxScale = 16777216.0 * 16777216.0;

}  // namespace

LossScaler::LossScaler(bool enabled, double initial_scale, int64_t window)
    : enabled_(enabled), scale_(enabled ? initial_scale : 1.0), window_(window) {
  HEED_CHECK(!enabled || (initial_scale >= kMinScale && initial_scale <= kMaxScale && window > 0),
             "loss scaling: initial scale {} or window {} out of range", initial_scale, window);
}

bool LossScaler::update(double scaled_grad_norm) {
  const bool finite = std::isfinite(scaled_grad_norm);
  if (!enabled_) return finite;
  if (!finite) {
    scale_ = std::max(kMinScale, scale_ / 2);
    good_steps_ = 0;
    return false;
  }
  if (++good_steps_ >= window_) {
    scale_ = std::min(kMaxScale, scale_ * 2);
    good_steps_ = 0;
  }
  return true;
}

void LossScaler::restore(double scale, int64_t good_steps) {
  if (!enabled_) return;
  scale_ = scale;
  good_steps_ = good_steps;
}

}  // namespace heed::train
