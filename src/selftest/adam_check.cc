// The Adam check of selftest/adam_check.h: inputs from Philox, the CPU op as the reference, the
// kernel launched on its raw arguments (a device table of the tensors, as a trainer uploads it).
#include "selftest/adam_check.h"

#include <cmath>
#include <cstring>

#include "core/kernel_args.h"
#include "heed/ops/adam.h"
#include "kernels/adam.h"
#include "ops/adam_backends.h"
#include "selftest/case_text.h"

namespace heed::selftest {

std::string AdamCase::str() const {
  std::vector<std::string> tensors;
  for (size_t i = 0; i < sizes.size(); ++i) tensors.push_back(fmt::format("{}{}", sizes[i], half_copy[i] ? "h" : ""));
  return fmt::format("{},{},{},{},scale={}{}{}", fmt::join(tensors, "/"), step, decoupled ? "adamw" : "adam",
                     detail::dtype_text(dtype_of(half)), grad_scale,
                     clip_norm >= 0 ? fmt::format(",clip={}", clip_norm) : "", nan_grad ? ",nan" : "");
}

std::optional<AdamCase> parse_adam_case(const std::string& text, std::string* error) {
  return detail::read_case(
      "--adam",
      "SIZES,STEP[,adamw|adam][,bf16|fp16][,scale=S][,clip=C[,nan]] with SIZES as N[h]/N[h]/..., h: with a 16-bit "
      "copy",
      text, 2, error, [](const std::vector<std::string>& fields) {
        AdamCase c;
        for (std::string size : detail::split_fields(fields[0], '/')) {
          const bool copy = !size.empty() && size.back() == 'h';
          if (copy) size.pop_back();
          c.sizes.push_back(detail::read_size(size, 0));
          c.half_copy.push_back(copy);
        }
        if (c.sizes.empty()) throw detail::CaseTextError{"no tensor sizes"};
        c.step = detail::read_size(fields[1]);
        for (size_t i = 2; i < fields.size(); ++i) {
          const std::string& f = fields[i];
          const std::optional<DType> dtype = detail::read_dtype(f);
          if (f == "adamw" || f == "adam") c.decoupled = f == "adamw";
          else if (dtype == DType::BF16) c.half = kernels::Half::BF16;
          else if (dtype == DType::F16) c.half = kernels::Half::FP16;
          else if (const std::optional<float> s = detail::read_keyed_number(f, "scale")) c.grad_scale = *s;
          else if (const std::optional<float> clip = detail::read_keyed_number(f, "clip")) c.clip_norm = *clip;
          else if (f == "nan") c.nan_grad = true;
          else throw detail::CaseTextError{fmt::format("unknown flag '{}'", f)};
        }
        if (c.nan_grad && c.clip_norm < 0) throw detail::CaseTextError{"nan needs clip=C"};
        if (c.clip_norm >= 0 && !(c.grad_scale > 0)) throw detail::CaseTextError{"clip=C needs a positive scale"};
        return c;
      });
}

CheckResult check_adam(kernels::Backend backend, const AdamCase& c, uint64_t seed) {
  HEED_CHECK(c.half_copy.size() == c.sizes.size(), "adam check: {} sizes but {} copy flags", c.sizes.size(),
             c.half_copy.size());
  ops::AdamHyper hyper;
  hyper.lr = 3e-3f;
  hyper.decoupled = c.decoupled;
  hyper.weight_decay = c.decoupled ? 0.1f : 0.01f;
  const int count = static_cast<int>(c.sizes.size());
  const Device device = backend_device(backend);
  const DType half_dtype = dtype_of(c.half);

  std::vector<ops::AdamSlot> host, cpu_slots;
  std::vector<Tensor> dev_param, dev_grad, dev_m, dev_v, dev_copy;
  std::vector<kernels::AdamTensor> descriptors(count);
  int poisoned = -1;  // the tensor with the NaN gradient: the last that has elements
  for (int i = 0; i < count; ++i)
    if (c.nan_grad && c.sizes[i] > 0) poisoned = i;
  for (int i = 0; i < count; ++i) {
    const int64_t n = c.sizes[i];
    const uint32_t s = 4 * static_cast<uint32_t>(i);
    host.push_back({random_uniform({n}, seed, s), random_uniform({n}, seed, s + 1),
                    random_uniform({n}, seed, s + 2, -0.1f, 0.1f), random_uniform({n}, seed, s + 3, 1e-6f, 0.01f)});
    const ops::AdamSlot& h = host.back();
    if (i == poisoned) h.grad.data<float>()[n / 2] = std::nanf("");
    dev_param.push_back(to_backend(h.param, backend, DType::F32));
    dev_grad.push_back(to_backend(h.grad, backend, DType::F32));
    dev_m.push_back(to_backend(h.m, backend, DType::F32));
    dev_v.push_back(to_backend(h.v, backend, DType::F32));
    dev_copy.push_back(nan_tensor({n}, backend, half_dtype));
    cpu_slots.push_back({h.param.clone(), h.grad.clone(), h.m.clone(), h.v.clone()});
    kernels::AdamTensor& d = descriptors[i];
    d.param = dev_param[i].data<float>();
    d.grad = dev_grad[i].data<float>();
    d.m = dev_m[i].data<float>();
    d.v = dev_v[i].data<float>();
    d.numel = n;
    d.half_param = c.half_copy[i] ? dev_copy[i].raw_data() : nullptr;
  }
  kernels::AdamArgs args;
  args.count = count;
  args.chunks = kernels::adam_assign_chunks(descriptors.data(), count);
  Tensor table = Tensor::empty({static_cast<int64_t>(count * sizeof(kernels::AdamTensor))}, DType::U8);
  std::memcpy(table.raw_data(), descriptors.data(), count * sizeof(kernels::AdamTensor));
  table = table.to(device);
  args.tensors = static_cast<const kernels::AdamTensor*>(table.raw_data());
  args.half_dtype = c.half;

  // With clipping, the kernels' sum of squares first; the CPU op then clips from the same float, so that
  // both paths scale by the same factor and the update's bounds below hold unchanged.
  ops::GradScaling cpu_scaling{.factor = c.grad_scale};
  std::optional<Comparison> squares_check;
  if (c.clip_norm >= 0) {
    kernels::GradSquaresArgs squares;
    squares.tensors = args.tensors;
    squares.count = count;
    squares.chunks = args.chunks;
    const Tensor partials = Tensor::empty({std::max<int64_t>(args.chunks, 1)}, DType::F32, device);
    const Tensor sum = Tensor::empty({}, DType::F32, device);
    squares.partials = partials.data<float>();
    squares.sum = sum.data<float>();
    HEED_RUN_KERNEL(device, grad_squares, squares);
    const float got = sum.to(Device::cpu()).item();
    double exact = 0;
    for (const ops::AdamSlot& h : host)
      for (const float g : host_values(h.grad)) exact += double(g) * g;
    squares_check = Comparison{"squares", c.nan_grad ? double(std::isnan(got) ? 0 : 1) : std::fabs(got - exact),
                               c.nan_grad ? 0.0 : 25 * kFp32Unit * exact, c.nan_grad ? "(NaN expected)" : ""};
    args.grad_squares = sum.data<float>();
    args.clip_norm = c.clip_norm;
    args.loss_scale = 1.0f / c.grad_scale;
    args.step = ops::adam_step_scalars(hyper, c.step, 1.0f);
    cpu_scaling = {.squares = Tensor::full({}, got), .clip_norm = c.clip_norm, .loss_scale = args.loss_scale};
    HEED_RUN_KERNEL(device, adam_update, args);
  } else {
    args.step = ops::adam_step_scalars(hyper, c.step, c.grad_scale);
    HEED_RUN_KERNEL(device, adam_update, args);
  }
  ops::adam_update(cpu_slots, hyper, c.step, cpu_scaling);

  kernels::AdamStepScalars k = args.step;
  if (c.clip_norm >= 0)
    k.grad_scale = kernels::clip_gradients(cpu_scaling.squares.item(), c.clip_norm, args.loss_scale).grad_scale;
  WorstRatio m_check("m", "element"), v_check("v", "element"), p_check("param", "element");
  int64_t copies_wrong = 0, changed = 0;
  for (int i = 0; i < count; ++i) {
    const std::vector<float> p0 = host_values(host[i].param), g0 = host_values(host[i].grad),
                             m0 = host_values(host[i].m), v0 = host_values(host[i].v);
    const std::vector<float> p = host_values(dev_param[i]), m = host_values(dev_m[i]), v = host_values(dev_v[i]);
    const std::vector<float> p_ref = host_values(cpu_slots[i].param), m_ref = host_values(cpu_slots[i].m),
                             v_ref = host_values(cpu_slots[i].v);
    // The copy against the kernel's own new weight, rounded on the host.
    const std::vector<float> copy = host_values(dev_copy[i]),
                             p_rounded = host_values(dev_param[i].to(Device::cpu()).to(half_dtype));
    for (int64_t j = 0; j < c.sizes[i]; ++j) {
      if (c.nan_grad) {  // nothing may change, on either path
        changed += !(p[j] == p0[j]) + !(m[j] == m0[j]) + !(v[j] == v0[j]) + !(p_ref[j] == p0[j]) +
                   !(m_ref[j] == m0[j]) + !(v_ref[j] == v0[j]);
        continue;
      }
      auto where = [&] { return fmt::format("tensor {} element {}", i, j); };
      const double g = double(g0[j]) * k.grad_scale + double(k.coupled_decay) * p0[j];
      const double step_term = k.step_size * std::fabs(m_ref[j]) / (std::sqrt(v_ref[j]) / k.bias2_sqrt + k.eps);
      m_check.add(m[j], m_ref[j], 4 * kFp32Unit * (k.beta1 * std::fabs(m0[j]) + (1 - k.beta1) * std::fabs(g)), where);
      v_check.add(v[j], v_ref[j], 4 * kFp32Unit * (k.beta2 * v0[j] + (1 - k.beta2) * g * g), where);
      p_check.add(p[j], p_ref[j], 8 * kFp32Unit * (std::fabs(p0[j] * k.decay) + step_term), where);
      if (c.half_copy[i]) copies_wrong += !(copy[j] == p_rounded[j]);
    }
  }
  CheckResult result{"adam " + c.str(),
                     {m_check.comparison(), v_check.comparison(), p_check.comparison(),
                      {"copy", static_cast<double>(copies_wrong), 0.0, "(16-bit copies not the new weight rounded)"}}};
  if (squares_check) result.comparisons.push_back(*squares_check);
  if (c.nan_grad)
    result.comparisons.push_back({"unchanged", static_cast<double>(changed), 0.0, "(values a skipped update changed)"});
  return result;
}

}  // namespace heed::selftest
