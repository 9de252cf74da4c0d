// Embedding lookup and its scatter-add backward (embedding.cu): the GPU path of heed/ops/embedding.h, with
// its conventions: out = scale * weight[ids]; dweight[v] = scale * (sum of dy over the positions whose id
// is v), with row pad_id left at zero (pass pad_id < 0 for none). Ids must lie in [0, vocab): the CPU op
// checks them on the host, where the batch comes from, and the kernels do not check them again.
#pragma once

#include <cstdint>

#include "common/backend.h"
#include "heed/core/dtype.h"

namespace heed::kernels {

struct EmbeddingArgs {
  int64_t positions = 0;  // ids.numel(): rows of out and dy
  int64_t vocab = 0, dim = 0;
  float scale = 1.0f;
  const int32_t* ids = nullptr;  // [positions]

  // Forward: weight [vocab, dim] and out [positions, dim], both in dtype (F32, BF16 or F16).
  DType dtype = DType::BF16;
  const void* weight = nullptr;
  void* out = nullptr;

  // Backward: dy [positions, dim] in dtype; dweight [vocab, dim] fp32, overwritten, or with `accumulate`
  // added to in the rows of the ids present (the others are not touched).
  const void* dy = nullptr;
  float* dweight = nullptr;
  bool accumulate = false;
  int64_t pad_id = -1;
  // Optional, for a deterministic backward: the positions grouped by id (embedding_group_positions), in
  // device memory. Without them the backward scatters with float atomicAdd, so that the order in which a
  // frequent id's rows are added, and the last bits of its gradient, vary from run to run.
  const int32_t* id_starts = nullptr;       // [vocab + 1]: id v's positions are order[id_starts[v] ..]
  const int32_t* positions_by_id = nullptr;  // [positions], increasing within each id

  Stream stream = nullptr;
};

// The grouping of a deterministic backward, on the host (where the batch's ids are made): a stable
// counting sort, as the CPU op's. id_starts holds vocab + 1 entries, positions_by_id `positions`.
inline void embedding_group_positions(const int32_t* ids, int64_t positions, int64_t vocab, int32_t* id_starts,
                                      int32_t* positions_by_id) {
  for (int64_t v = 0; v <= vocab; ++v) id_starts[v] = 0;
  for (int64_t i = 0; i < positions; ++i) ++id_starts[ids[i] + 1];
  for (int64_t v = 0; v < vocab; ++v) id_starts[v + 1] += id_starts[v];
  // id_starts[v] serves as id v's cursor while filling, and is restored to its start afterwards.
  for (int64_t i = 0; i < positions; ++i) positions_by_id[id_starts[ids[i]]++] = static_cast<int32_t>(i);
  for (int64_t v = vocab; v > 0; --v) id_starts[v] = id_starts[v - 1];
  id_starts[0] = 0;
}

template <Backend B>
void embedding_forward(const EmbeddingArgs& args);
template <Backend B>
void embedding_backward(const EmbeddingArgs& args);

}  // namespace heed::kernels
