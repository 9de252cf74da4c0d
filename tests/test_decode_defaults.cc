// The decoding defaults (heed/decode/defaults.h) are written once: validation during training decodes as
// `heed translate` does unless the config says otherwise.
#include <catch2/catch.hpp>

#include "heed/decode/translator.h"
#include "heed/train/train_config.h"

using namespace heed;

TEST_CASE("validation decodes with the translate defaults", "[decode][train_config]") {
  const decode::TranslateOptions translate;
  const train::ValidationConfig validation;
  CHECK(validation.beam_size == translate.search.beam_size);
  CHECK(validation.length_penalty == translate.search.length_penalty);
  CHECK(validation.batch_tokens == translate.batch_tokens);
}
