// The multi-tensor Adam kernel (kernels/adam.cu) against the CPU op, on the simulator and, when there is
// one, on the GPU.
//
// One launch updates six tensors: sizes 37, 0 (an empty tensor between others, which the chunk search must
// pass over), exactly one chunk (4096), 1, several chunks with a partial last one (9000), and one element
// past a chunk (4097); four of them also get a 16-bit copy of the new weights. AdamW and Adam (coupled
// decay), at step 1 (the largest bias correction) and step 7, with grad_scale != 1, in bf16 and fp16 copies.
// Every input is random and non-zero: weights and gradients in [-1, 1], m in [-0.1, 0.1], v in (0, 0.01].
//
// Tolerances. The kernel's arithmetic is the CPU op's, operation for operation, except that nvcc may fuse
// a multiply and an add (one rounding instead of two); each result is a few such operations from its
// inputs, so it is within 4 u of the sum of the magnitudes of the terms that form it (u = 2^-24):
// m within 4 u (|beta1 m| + |(1 - beta1) g|), v likewise, and the new weight within 8 u (|p decay| +
// |step|), the step's quotient carrying the relative errors of m and v (about 2 u each) on top of its own.
// The simulator computes with the host's fp32 arithmetic, so there it matches the CPU exactly whenever
// the host compiler does not contract either. The 16-bit copy must be exactly the kernel's own new fp32
// weight rounded to nearest even.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <vector>

#include "core/kernel_args.h"
#include "gradcheck.h"
#include "heed/ops/adam.h"
#include "kernel_testing.h"
#include "sim/cuda_sim.h"
#include "kernels/adam.h"
#include "ops/adam_kernels.h"

using namespace heed;
using heed::kernels::Backend;
using heed::kernels::Half;

namespace {


// A backend fp32 tensor brought to the host and rounded to `dtype` there.
Tensor values_tensor_rounded(const Tensor& t, DType dtype) { return testing::to_host_f32(t).to(dtype); }

struct HostState {
  Tensor param, grad, m, v;
};

void check_adam(Backend backend, const ops::AdamHyper& hyper, int64_t step, float grad_scale, Half half,
                uint32_t seed) {
  INFO("decoupled " << hyper.decoupled << " step " << step << " copies " << (half == Half::BF16 ? "bf16" : "fp16"));
  const std::vector<int64_t> sizes = {37, 0, 4096, 1, 9000, 4097};
  const std::vector<bool> with_copy = {true, true, false, true, false, true};
  const int count = static_cast<int>(sizes.size());
  const Device device = testing::backend_device(backend);
  const DType half_dtype = testing::dtype_of(half);

  std::vector<HostState> host;
  std::vector<ops::AdamSlot> cpu_slots;
  std::vector<Tensor> dev_param, dev_grad, dev_m, dev_v, dev_copy;
  std::vector<kernels::AdamTensor> descriptors(count);
  for (int i = 0; i < count; ++i) {
    const int64_t n = sizes[i];
    const uint32_t s = seed + 10 * i;
    HostState h{testing::random_tensor({n}, s), testing::random_tensor({n}, s + 1),
                testing::random_tensor({n}, s + 2, -0.1f, 0.1f), testing::random_tensor({n}, s + 3, 1e-6f, 0.01f)};
    dev_param.push_back(testing::to_backend(h.param, backend, DType::F32));
    dev_grad.push_back(testing::to_backend(h.grad, backend, DType::F32));
    dev_m.push_back(testing::to_backend(h.m, backend, DType::F32));
    dev_v.push_back(testing::to_backend(h.v, backend, DType::F32));
    dev_copy.push_back(testing::to_backend(Tensor::full({n}, std::nanf("")), backend, half_dtype));
    cpu_slots.push_back({h.param.clone(), h.grad.clone(), h.m.clone(), h.v.clone()});
    host.push_back(h);
    kernels::AdamTensor& d = descriptors[i];
    d.param = dev_param[i].data<float>();
    d.grad = dev_grad[i].data<float>();
    d.m = dev_m[i].data<float>();
    d.v = dev_v[i].data<float>();
    d.numel = n;
    d.half_param = with_copy[i] ? dev_copy[i].raw_data() : nullptr;
  }
  ops::adam_update(cpu_slots, hyper, step, grad_scale);

  kernels::AdamArgs args;
  args.count = count;
  args.chunks = kernels::adam_assign_chunks(descriptors.data(), count);
  Tensor table = Tensor::empty({static_cast<int64_t>(count * sizeof(kernels::AdamTensor))}, DType::U8);
  std::memcpy(table.raw_data(), descriptors.data(), count * sizeof(kernels::AdamTensor));
  table = table.to(device);
  args.tensors = static_cast<const kernels::AdamTensor*>(table.raw_data());
  args.step = ops::adam_step_scalars(hyper, step, grad_scale);
  args.half_dtype = half;
  HEED_RUN_KERNEL(device, adam_update, args);

  const kernels::AdamStepScalars& k = args.step;
  for (int i = 0; i < count; ++i) {
    INFO("tensor " << i << " of " << sizes[i] << " elements");
    const std::vector<float> p0 = testing::values(host[i].param), g0 = testing::values(host[i].grad), m0 = testing::values(host[i].m),
                             v0 = testing::values(host[i].v);
    const std::vector<float> p = testing::values(dev_param[i]), m = testing::values(dev_m[i]), v = testing::values(dev_v[i]);
    const std::vector<float> p_ref = testing::values(cpu_slots[i].param), m_ref = testing::values(cpu_slots[i].m),
                             v_ref = testing::values(cpu_slots[i].v);
    const std::vector<float> copy = testing::values(dev_copy[i]), p_rounded = testing::values(values_tensor_rounded(dev_param[i], half_dtype));
    for (int64_t j = 0; j < sizes[i]; ++j) {
      const double g = double(g0[j]) * k.grad_scale + double(k.coupled_decay) * p0[j];
      const double step_term = k.step_size * std::fabs(m_ref[j]) / (std::sqrt(v_ref[j]) / k.bias2_sqrt + k.eps);
      INFO("element " << j << ": p " << p[j] << " vs " << p_ref[j] << ", m " << m[j] << " vs " << m_ref[j]
                      << ", v " << v[j] << " vs " << v_ref[j]);
      CHECK(std::fabs(double(m[j]) - m_ref[j]) <= 4 * testing::kFp32Unit * (k.beta1 * std::fabs(m0[j]) + (1 - k.beta1) * std::fabs(g)));
      CHECK(std::fabs(double(v[j]) - v_ref[j]) <= 4 * testing::kFp32Unit * (k.beta2 * v0[j] + (1 - k.beta2) * g * g));
      CHECK(std::fabs(double(p[j]) - p_ref[j]) <= 8 * testing::kFp32Unit * (std::fabs(p0[j] * k.decay) + step_term));
      if (with_copy[i]) CHECK(copy[j] == p_rounded[j]);
    }
  }
}

void check_all(Backend backend) {
  ops::AdamHyper adamw;
  adamw.lr = 3e-3f;
  adamw.weight_decay = 0.1f;
  ops::AdamHyper adam = adamw;
  adam.decoupled = false;
  adam.weight_decay = 0.01f;
  check_adam(backend, adamw, 1, 0.5f, Half::BF16, 11);
  check_adam(backend, adamw, 7, 1.0f, Half::FP16, 21);
  check_adam(backend, adam, 1, 0.25f, Half::FP16, 31);
  check_adam(backend, adam, 7, 2.0f, Half::BF16, 41);
}

}  // namespace

TEST_CASE("adam kernel matches the CPU op on the simulator", "[kernel][adam]") {
  // In order, then under the adversarial schedules, which let one warp run ahead (a missing barrier then
  // gives a wrong result) and shuffle the order of blocks.
  using cuda_sim::Schedule;
  for (Schedule schedule : {Schedule::InOrder, Schedule::WarpAhead, Schedule::Random}) {
    const cuda_sim::ScheduleScope scope(schedule, 17);
    check_all(Backend::Sim);
  }
}

TEST_CASE("adam kernel matches the CPU op on the GPU", "[kernel][adam][gpu]") {
  if (!testing::gpu_or_skip()) return;
  check_all(Backend::Gpu);
}
