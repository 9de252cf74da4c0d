#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "heed/train/loss_scaler.h"

using heed::train::LossScaler;

TEST_CASE("the fp16 loss scale halves on overflow and doubles after a window of good updates", "[train]") {
  LossScaler s(true, 1024, 3);
  CHECK(s.scale() == 1024.0f);
  CHECK_FALSE(s.update(std::numeric_limits<double>::infinity()));
  CHECK(s.scale() == 512.0f);
  CHECK_FALSE(s.update(std::nan("")));
  CHECK(s.scale() == 256.0f);
  CHECK(s.update(10.0));
  CHECK(s.update(10.0));
  CHECK(s.scale() == 256.0f);
  CHECK(s.update(10.0));  // the third good update in a row
  CHECK(s.scale() == 512.0f);
  CHECK(s.update(10.0));
  CHECK_FALSE(s.update(INFINITY));  // an overflow restarts the window
  CHECK(s.scale() == 256.0f);
  CHECK(s.update(1.0));
  CHECK(s.update(1.0));
  CHECK(s.scale() == 256.0f);

  LossScaler resumed(true, 1024, 3);
  resumed.restore(s.saved_scale(), s.saved_good_steps());
  CHECK(resumed.update(1.0));
  CHECK(resumed.scale() == 512.0f);  // continues the saved window
}

TEST_CASE("without fp16 the loss scale stays 1 and only reports whether the gradients are finite", "[train]") {
  LossScaler s(false, 65536, 2000);
  CHECK(s.scale() == 1.0f);
  CHECK_FALSE(s.update(INFINITY));
  CHECK(s.scale() == 1.0f);
  CHECK(s.update(3.0));
  CHECK(s.scale() == 1.0f);
}
