// Adam on the GPU path: one launch of kernels/adam.cu updates every slot. The tensor descriptors go to the
// device with each call (a few bytes per parameter tensor); keeping them there across steps is the
// trainer's to do once it holds its slots on the device.
#include <cstring>

#include "core/kernel_args.h"
#include "ops/adam_backends.h"

namespace heed::ops::gpu {

void adam_update(const std::vector<AdamSlot>& slots, const kernels::AdamStepScalars& s) {
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
  if (a.chunks == 0) return;
  const Device device = slots[0].param.device();
  Tensor host = Tensor::empty({static_cast<int64_t>(tensors.size() * sizeof(kernels::AdamTensor))}, DType::U8);
  std::memcpy(host.raw_data(), tensors.data(), host.nbytes());
  const Tensor on_device = host.to(device);
  a.tensors = static_cast<const kernels::AdamTensor*>(on_device.raw_data());
  HEED_RUN_KERNEL(device, adam_update, a);
}

}  // namespace heed::ops::gpu
