// A batch of sentence pairs as token ids: what the batcher produces and the model's loss consumes.
#pragma once

#include "heed/core/tensor.h"

namespace heed::data {

// One batch of sentence pairs as token ids, right-padded with pad_id.
struct Batch {
  Tensor src;      // int32 [B, Ls]
  Tensor tgt_in;   // int32 [B, Lt]: decoder inputs (start token, then the target shifted right)
  Tensor tgt_out;  // int32 [B, Lt]: the tokens to predict; pad positions are not counted
};

}  // namespace heed::data
