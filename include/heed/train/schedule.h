// Learning-rate schedules, as functions of the update count so that a resumed run continues exactly.
#pragma once

#include <cstdint>

#include "heed/train/train_config.h"

namespace heed::train {

// The learning rate of update `step` (1-based): a linear warm-up from 0 to `peak` over warmup_steps, then
//   inverse_sqrt: peak * sqrt(warmup / step), the Noam/fairseq decay;
//   linear, cosine: down to min_lr at max_steps;
//   constant: peak.
double learning_rate(const ScheduleConfig& schedule, double peak, int64_t step, int64_t max_steps);

}  // namespace heed::train
