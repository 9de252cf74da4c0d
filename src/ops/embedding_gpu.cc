// The embedding op on the GPU path: kernels/embedding.cu.
#include "core/kernel_args.h"
#include "kernels/embedding.h"
#include "ops/embedding_backends.h"

namespace heed::ops::gpu {

namespace {

// What both directions share: the ids and the table's shape ([vocab, dim], as `table`), and the type of
// the activations (`values`: the output forward, the incoming gradient backward).
kernels::EmbeddingArgs shared_args(const Tensor& ids, const Tensor& table, const Tensor& values, float scale) {
  kernels::EmbeddingArgs a;
  a.positions = ids.numel();
  a.vocab = table.size(0);
  a.dim = table.size(1);
  a.scale = scale;
  a.ids = ids.device().is_cpu() ? nullptr : ids.data<int32_t>();  // the grouped backward needs none
  a.dtype = values.dtype();
  return a;
}

}  // namespace

void embedding_forward(const Tensor& ids, const Tensor& weight, Tensor& out, float scale) {
  kernels::EmbeddingArgs a = shared_args(ids, weight, weight, scale);
  a.weight = weight.raw_data();
  a.out = out.raw_data();
  HEED_RUN_KERNEL(weight.device(), embedding_forward, a);
}

void embedding_backward(const Tensor& dy, const Tensor& ids, Tensor& dweight, bool accumulate, int64_t pad_id,
                        float scale) {
  kernels::EmbeddingArgs a = shared_args(ids, dweight, dy, scale);
  a.dy = dy.raw_data();
  a.dweight = dweight.data<float>();
  a.accumulate = accumulate;
  a.pad_id = pad_id;
  // Grouping the positions by id on the host (ids are one per token, few) makes the scatter-add
  // deterministic: each vocabulary row adds its positions in order, as the CPU op does. Ids given on the
  // host need no read-back; the starts and the order go up in one copy.
  const Tensor host_ids = ids.to(Device::cpu());
  Tensor grouping = Tensor::empty({a.vocab + 1 + a.positions}, DType::I32);
  int32_t* starts = grouping.data<int32_t>();
  kernels::embedding_group_positions(host_ids.data<int32_t>(), a.positions, a.vocab, starts, starts + a.vocab + 1);
  const Tensor grouping_dev = grouping.to(dy.device());
  a.id_starts = grouping_dev.data<int32_t>();
  a.positions_by_id = a.id_starts + a.vocab + 1;
  HEED_RUN_KERNEL(dy.device(), embedding_backward, a);
}

}  // namespace heed::ops::gpu
