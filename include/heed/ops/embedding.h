// Embedding lookup, with the scatter-add backward.
#pragma once

#include "heed/core/tensor.h"

namespace heed::ops {

// ids: int32 of any shape, weight: [V, D]. Returns scale * weight[ids], shaped ids.shape + [D].
// An id outside [0, V) is an error that names it.
Tensor embedding_forward(const Tensor& ids, const Tensor& weight, float scale = 1.0f);
// dweight[v] = scale * sum of dy over the positions whose id is v, shaped [V, D]. Row pad_id gets no
// gradient (pass -1 to disable), as torch.nn.Embedding(padding_idx=pad) does.
Tensor embedding_backward(const Tensor& dy, const Tensor& ids, int64_t vocab_size, int64_t pad_id,
                          float scale = 1.0f);
// The same into dweight (fp32 [V, D], contiguous), or, with `accumulate`, added to what dweight holds:
// then only the rows of ids present are read and written, so a gradient that another product filled (the
// output layer's, for a tied embedding) takes this one's rows with no dense pass and no add of its own.
void embedding_backward_into(const Tensor& dy, const Tensor& ids, Tensor& dweight, bool accumulate, int64_t pad_id,
                             float scale = 1.0f);

}  // namespace heed::ops
