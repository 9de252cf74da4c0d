// The decoding defaults, written once: the translate commands' options (SearchOptions, TranslateOptions)
// and the training config's validation group (heed/train/train_config.h) both start from them.
#pragma once

#include <cstdint>

namespace heed::decode {

inline constexpr int kDefaultBeamSize = 4;
inline constexpr float kDefaultLengthPenalty = 1.0f;
inline constexpr int64_t kDefaultBatchTokens = 2048;  // source tokens per beam-search batch

}  // namespace heed::decode
