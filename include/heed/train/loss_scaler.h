// Dynamic loss scaling for fp16 training (Micikevicius et al., "Mixed Precision Training"; PyTorch's
// GradScaler and fairseq's --fp16-scale-window work the same way).
//
// fp16 keeps only 5 exponent bits, so small activation gradients underflow to zero. The loss is multiplied
// by `scale()` before backward, which lifts the gradients into fp16's range; the optimizer divides it out
// again. A scale that is too large overflows instead: then the step's gradients hold inf or NaN, the update
// is skipped and the scale halves. After `window` updates in a row without overflow it doubles again, so
// it settles just below the largest scale that does not overflow. bf16 and fp32 have fp32's exponent range
// and need none of this: there the scaler is disabled and its scale stays 1.
#pragma once

#include <cstdint>

namespace heed::train {

class LossScaler {
 public:
  LossScaler(bool enabled, double initial_scale, int64_t window);

  bool enabled() const { return enabled_; }
  float scale() const { return static_cast<float>(scale_); }
  // Called with the norm of the scaled gradients after backward. Returns false when they overflowed (the
  // update must be skipped); updates the scale either way.
  bool update(double scaled_grad_norm);

  // For checkpoints, so that a resumed run scales as the uninterrupted one would.
  double saved_scale() const { return scale_; }
  int64_t saved_good_steps() const { return good_steps_; }
  void restore(double scale, int64_t good_steps);

 private:
  bool enabled_;
  double scale_;
  int64_t window_;
  int64_t good_steps_ = 0;  // updates since the last overflow or growth
};

}  // namespace heed::train
