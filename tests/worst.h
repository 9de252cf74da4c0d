// The largest error of a comparison, kept so that a NaN cannot hide.
//
// std::max(worst, e) keeps worst when e is NaN, so an all-NaN output would pass `worst <= bound`.
// raise_worst() takes a NaN error and keeps it against every later error (a later finite error must not
// replace it), so that the check on the result fails.
#pragma once

#include <cmath>

namespace heed::testing {

// Raises worst to e when e is larger or NaN; returns whether it did (so callers can note where).
inline bool raise_worst(double& worst, double e) {
  if (std::isnan(worst) || e <= worst) return false;
  worst = e;
  return true;
}

}  // namespace heed::testing
