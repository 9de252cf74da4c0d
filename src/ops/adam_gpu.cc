// Adam, the sum of squares, the half copies and the gradient copies on the GPU path: kernels/adam.cu, one
// launch of the update for every slot, two for the sum, one for the half copies and one per 100 gradient
// copies. The first three read a device table of the tensors; it is uploaded only when the tensors changed
// since the last call (a trainer's parameters never move, and its gradients keep their places in one
// buffer, autograd::GradientBuffer), so a training step makes no host-to-device copy for it. The gradient
// copies carry their table in the launch's parameters.
#include <algorithm>
#include <cstring>
#include <mutex>

#include "core/kernel_args.h"
#include "core/per_device.h"
#include "ops/adam_backends.h"

namespace heed::ops::gpu {

namespace {

// The last table uploaded for one kind of call on one device, and its bytes on the host to compare with.
struct UploadedTable {
  std::vector<kernels::AdamTensor> host;
  Tensor device;
};

const kernels::AdamTensor* device_table(UploadedTable& cache, const std::vector<kernels::AdamTensor>& tensors,
                                        Device device) {
  const size_t bytes = tensors.size() * sizeof(kernels::AdamTensor);
  if (!cache.device.defined() || cache.device.device() != device || cache.host.size() != tensors.size() ||
      std::memcmp(cache.host.data(), tensors.data(), bytes) != 0) {
    Tensor host = Tensor::empty({static_cast<int64_t>(bytes)}, DType::U8);
    std::memcpy(host.raw_data(), tensors.data(), bytes);
    cache.device = host.to(device);
    cache.host = tensors;
  }
  return static_cast<const kernels::AdamTensor*>(cache.device.raw_data());
}

}  // namespace

namespace {

// Per device: the tables of the last update, of the last sum and of the last half copies, and the sum's
// scratch.
struct AdamTables {
  std::mutex mutex;
  UploadedTable update, squares, half_copies;
  Tensor partials;
};

AdamTables& tables(Device device) {
  static auto& registry = *new PerDevice<AdamTables>([](int) { return std::make_unique<AdamTables>(); });
  return registry.get(device.index);
}

}  // namespace

void adam_update(const std::vector<AdamSlot>& slots, const kernels::AdamStepScalars& s, const GradScaling& scaling) {
  std::vector<kernels::AdamTensor> tensors(slots.size());
  for (size_t i = 0; i < slots.size(); ++i) {
    tensors[i].param = slots[i].param.data<float>();
    tensors[i].grad = slots[i].grad.data<float>();
    tensors[i].m = slots[i].m.data<float>();
    tensors[i].v = slots[i].v.data<float>();
    tensors[i].numel = slots[i].param.numel();
  }
  kernels::AdamArgs a;
  a.count = static_cast<int>(tensors.size());
  a.chunks = kernels::adam_assign_chunks(tensors.data(), a.count);
  a.step = s;
  if (scaling.squares.defined()) {
    a.grad_squares = scaling.squares.data<float>();
    a.clip_norm = scaling.clip_norm;
    a.loss_scale = scaling.loss_scale;
  }
  if (a.chunks == 0) return;
  const Device device = slots[0].param.device();
  AdamTables& t = tables(device);
  std::lock_guard lock(t.mutex);
  a.tensors = device_table(t.update, tensors, device);
  HEED_RUN_KERNEL(device, adam_update, a);
}

void grad_squares(const std::vector<Tensor>& grads, Tensor& sum) {
  std::vector<kernels::AdamTensor> tensors(grads.size());
  for (size_t i = 0; i < grads.size(); ++i) {
    tensors[i].grad = grads[i].data<float>();
    tensors[i].numel = grads[i].numel();
  }
  kernels::GradSquaresArgs a;
  a.count = static_cast<int>(tensors.size());
  a.chunks = kernels::adam_assign_chunks(tensors.data(), a.count);
  a.sum = sum.data<float>();
  const Device device = sum.device();
  AdamTables& t = tables(device);
  std::lock_guard lock(t.mutex);
  a.tensors = device_table(t.squares, tensors, device);
  if (!t.partials.defined() || t.partials.device() != device || t.partials.numel() < a.chunks)
    t.partials = Tensor::empty({std::max<int64_t>(a.chunks, 1)}, DType::F32, device);
  a.partials = t.partials.data<float>();
  HEED_RUN_KERNEL(device, grad_squares, a);
}

void half_copies(const std::vector<Tensor>& params, const std::vector<Tensor>& copies) {
  std::vector<kernels::AdamTensor> tensors(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    tensors[i].param = params[i].data<float>();
    tensors[i].half_param = copies[i].raw_data();
    tensors[i].numel = params[i].numel();
  }
  kernels::HalfCopiesArgs a;
  a.count = static_cast<int>(tensors.size());
  a.chunks = kernels::adam_assign_chunks(tensors.data(), a.count);
  a.half_dtype = copies[0].dtype() == DType::BF16 ? kernels::Half::BF16 : kernels::Half::FP16;
  if (a.chunks == 0) return;
  const Device device = params[0].device();
  AdamTables& t = tables(device);
  std::lock_guard lock(t.mutex);
  a.tensors = device_table(t.half_copies, tensors, device);
  HEED_RUN_KERNEL(device, half_copies, a);
}

void copy_grads(const std::vector<Tensor>& grads, const std::vector<Tensor>& homes) {
  const Device device = homes[0].device();
  for (size_t first = 0; first < homes.size(); first += kernels::kGradCopiesPerLaunch) {
    kernels::CopyGradsArgs a;
    a.count = static_cast<int>(std::min<size_t>(kernels::kGradCopiesPerLaunch, homes.size() - first));
    for (int i = 0; i < a.count; ++i) {
      const size_t k = first + static_cast<size_t>(i);
      a.copies[i].grad = grads[k].defined() ? grads[k].data<float>() : nullptr;
      a.copies[i].home = homes[k].data<float>();
      a.copies[i].numel = homes[k].numel();
    }
    a.chunks = kernels::adam_assign_chunks(a.copies, a.count);
    HEED_RUN_KERNEL(device, copy_grads, a);
  }
}

}  // namespace heed::ops::gpu
