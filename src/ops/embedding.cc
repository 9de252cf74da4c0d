// Checks and dispatch for the embedding lookup and its scatter-add backward; the loops are in
// embedding_cpu.cc and, on the GPU path, kernels/embedding.cu. Ids are validated here, once, on the
// host: a bad id names itself and its position rather than reading outside the table. Ids may come on the
// host for a table on a GPU (a training step's batch does): then they are checked there and uploaded,
// where ids already on the GPU are read back for the check, a host synchronisation.
#include "heed/ops/embedding.h"

#include "ops/dispatch.h"
#include "ops/embedding_backends.h"

namespace heed::ops {

namespace {

// Flat index i of a tensor of `shape` as a multi-index, e.g. "[1, 7]".
std::string position_str(const Shape& shape, int64_t i) {
  Shape index(shape.size());
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
    index[d] = i % shape[d];
    i /= shape[d];
  }
  return shape_str(index);
}

// Returns ids as a contiguous tensor (on their device) after checking their dtype, that they are on the
// CPU or on `device`, and that every id lies in [0, vocab).
Tensor checked_ids(const Tensor& ids, int64_t vocab, Device device, const char* op) {
  HEED_CHECK(ids.defined(), "{}: ids are undefined", op);
  HEED_CHECK(ids.dtype() == DType::I32, "{}: ids must be I32, got {}", op, dtype_name(ids.dtype()));
  HEED_CHECK(ids.device() == device || ids.device().is_cpu(), "{}: ids on {}, expected {} or the CPU", op,
             ids.device().str(), device.str());
  Tensor idc = ids.contiguous();
  const Tensor host = idc.to(Device::cpu());
  const int32_t* p = host.data<int32_t>();
  for (int64_t i = 0; i < host.numel(); ++i)
    HEED_CHECK(p[i] >= 0 && p[i] < vocab, "{}: id {} at position {} of ids {} is outside the vocabulary [0, {})",
               op, p[i], position_str(ids.shape(), i), shape_str(ids.shape()), vocab);
  return idc;
}

}  // namespace

Tensor embedding_forward(const Tensor& ids, const Tensor& weight, float scale) {
  check_float(weight, "embedding", "weight");
  HEED_CHECK(weight.dim() == 2, "embedding: weight must be [V, D], got {}", shape_str(weight.shape()));
  const Tensor idc = checked_ids(ids, weight.size(0), weight.device(), "embedding").to(weight.device());
  const Tensor wc = weight.contiguous();
  Shape shape = ids.shape();
  shape.push_back(weight.size(1));
  Tensor out = Tensor::empty(shape, weight.dtype(), weight.device());
  HEED_DISPATCH(weight.device(), "embedding", embedding_forward(idc, wc, out, scale));
  return out;
}

Tensor embedding_backward(const Tensor& dy, const Tensor& ids, int64_t vocab_size, int64_t pad_id, float scale) {
  HEED_CHECK(vocab_size > 0, "embedding_backward: vocab_size must be positive, got {}", vocab_size);
  Tensor dweight = Tensor::empty({vocab_size, dy.dim() > 0 ? dy.size(-1) : 0}, DType::F32, dy.device());
  embedding_backward_into(dy, ids, dweight, false, pad_id, scale);
  return dweight;
}

void embedding_backward_into(const Tensor& dy, const Tensor& ids, Tensor& dweight, bool accumulate, int64_t pad_id,
                             float scale) {
  check_float(dy, "embedding_backward", "dy");
  check_f32(dweight, "embedding_backward", "dweight");
  const int64_t vocab_size = dweight.dim() == 2 ? dweight.size(0) : 0;
  HEED_CHECK(vocab_size > 0 && dweight.size(1) == dy.size(-1) && dweight.is_contiguous() &&
                 dweight.device() == dy.device(),
             "embedding_backward: dweight must be a contiguous [V, {}] on {}, got {} on {}", dy.size(-1),
             dy.device().str(), shape_str(dweight.shape()), dweight.device().str());
  HEED_CHECK(pad_id >= -1 && pad_id < vocab_size, "embedding_backward: pad_id must be -1 or in [0, {}), got {}",
             vocab_size, pad_id);
  HEED_CHECK(ids.defined() && dy.dim() == ids.dim() + 1 &&
                 Shape(dy.shape().begin(), dy.shape().end() - 1) == ids.shape(),
             "embedding_backward: dy has shape {}, expected ids' shape {} plus one dimension",
             shape_str(dy.shape()), ids.defined() ? shape_str(ids.shape()) : "(undefined)");
  // The backends take the ids where they are: the GPU path groups them by id on the host.
  const Tensor idc = checked_ids(ids, vocab_size, dy.device(), "embedding_backward");
  const Tensor dyc = dy.contiguous();
  HEED_DISPATCH(dy.device(), "embedding_backward", embedding_backward(dyc, idc, dweight, accumulate, pad_id, scale));
}

}  // namespace heed::ops
