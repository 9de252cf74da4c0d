#include "heed/train/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace heed::train {

double learning_rate(const ScheduleConfig& schedule, double peak, int64_t step, int64_t max_steps) {
  const double s = static_cast<double>(std::max<int64_t>(step, 1));
  const double warmup = static_cast<double>(schedule.warmup_steps);
  if (s < warmup) return peak * s / warmup;
  if (schedule.type == "constant") return peak;
  if (schedule.type == "inverse_sqrt") return warmup > 0 ? peak * std::sqrt(warmup / s) : peak / std::sqrt(s);
  const double span = std::max(1.0, static_cast<double>(max_steps) - warmup);
  const double progress = std::clamp((s - warmup) / span, 0.0, 1.0);
  const double decay = schedule.type == "linear" ? 1.0 - progress : 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
  return schedule.min_lr + (peak - schedule.min_lr) * decay;
}

}  // namespace heed::train
