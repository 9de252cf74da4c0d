// The cross-entropy check of selftest/cross_entropy_check.h: inputs from Philox, the CPU op as the
// reference, the kernels launched on their raw arguments.
#include "selftest/cross_entropy_check.h"

#include <cmath>

#include "core/kernel_args.h"
#include "heed/ops/cross_entropy.h"
#include "kernels/cross_entropy.h"
#include "selftest/case_text.h"

namespace heed::selftest {

namespace {

constexpr int64_t kIgnore = -100;

Tensor make_targets(const CrossEntropyCase& c) {
  std::vector<int32_t> t(c.rows);
  for (int64_t i = 0; i < c.rows; ++i)
    t[i] = (c.ignore_all || i % 4 == 2)
               ? static_cast<int32_t>(kIgnore)
               : static_cast<int32_t>((c.classes - 1 - i * 7919 % c.classes + c.classes) % c.classes);
  return Tensor::from_vector(t, {c.rows});
}

}  // namespace

std::string CrossEntropyCase::str() const {
  return fmt::format("{},{},{},smoothing={}{}", rows, classes, detail::dtype_text(dtype), smoothing,
                     ignore_all ? ",ignoreall" : "");
}

std::optional<CrossEntropyCase> parse_cross_entropy_case(const std::string& text, std::string* error) {
  return detail::read_case(
      "--xent", "ROWS,CLASSES[,bf16|fp16|fp32][,smoothing=S][,ignoreall]", text, 2, error,
      [](const std::vector<std::string>& fields) {
        CrossEntropyCase c;
        c.rows = detail::read_size(fields[0]);
        c.classes = detail::read_size(fields[1]);
        for (size_t i = 2; i < fields.size(); ++i) {
          if (const std::optional<DType> dtype = detail::read_dtype(fields[i])) {
            c.dtype = *dtype;
          } else if (const std::optional<float> s = detail::read_keyed_number(fields[i], "smoothing")) {
            if (!(*s >= 0.0f && *s <= 1.0f)) throw detail::CaseTextError{"smoothing must lie in [0, 1]"};
            c.smoothing = *s;
          } else if (fields[i] == "ignoreall") {
            c.ignore_all = true;
          } else {
            throw detail::CaseTextError{fmt::format("unknown flag '{}'", fields[i])};
          }
        }
        return c;
      });
}

CheckResult check_cross_entropy(kernels::Backend backend, const CrossEntropyCase& c, uint64_t seed) {
  const int64_t rows = c.rows, classes = c.classes;
  const Tensor logits = random_uniform({rows, classes}, seed, 0, -6.0f, 6.0f).to(c.dtype).to(DType::F32);
  const Tensor targets = make_targets(c);
  const ops::CrossEntropyResult ref = ops::cross_entropy_forward(logits, targets, kIgnore, c.smoothing);
  const float grad_scale = ref.count > 0 ? 1.0f / static_cast<float>(ref.count) : 1.0f;
  const Tensor ref_dlogits = ops::cross_entropy_backward(logits, targets, ref.lse, kIgnore, c.smoothing, grad_scale);

  const Device device = backend_device(backend);
  const Tensor logits_dev = to_backend(logits, backend, c.dtype), targets_dev = targets.to(device);
  const Tensor loss = nan_tensor({rows}, backend, DType::F32), nll = nan_tensor({rows}, backend, DType::F32);
  const Tensor lse = nan_tensor({rows}, backend, DType::F32);
  const Tensor ref_lse_dev = ref.lse.to(device);
  const Tensor dlogits = nan_tensor({rows, classes}, backend, c.dtype);

  kernels::CrossEntropyArgs args;
  args.rows = rows;
  args.classes = classes;
  args.dtype = c.dtype;
  args.logits = logits_dev.raw_data();
  args.targets = targets_dev.data<int32_t>();
  args.ignore_index = kIgnore;
  args.smoothing = c.smoothing;
  args.loss = loss.data<float>();
  args.nll = nll.data<float>();
  args.lse = lse.data<float>();
  HEED_RUN_KERNEL(device, cross_entropy_forward, args);

  // The scale in two factors, as a training step has it: 2 on the host and grad_scale / 2 in device memory
  // (the gradient that reached the loss); their product is grad_scale exactly.
  args.lse = ref_lse_dev.data<float>();
  args.grad_scale = 2.0f;
  const Tensor dloss = Tensor::full({}, grad_scale / 2).to(device);
  args.dloss = dloss.data<float>();
  args.dlogits = dlogits.raw_data();
  HEED_RUN_KERNEL(device, cross_entropy_backward, args);

  const std::vector<float> lse_got = host_values(lse), lse_want = host_values(ref.lse), loss_got = host_values(loss),
                           nll_got = host_values(nll), x = host_values(logits);
  const int32_t* t = targets.data<int32_t>();
  const double sum_bound = (static_cast<double>(classes) / 128 + 64) * kFp32Unit;
  double loss_sum = 0, nll_sum = 0, loss_bound = 0, nll_bound = 0;
  int64_t ignored_wrong = 0;
  WorstRatio lse_check("lse", "row");
  for (int64_t i = 0; i < rows; ++i) {
    if (t[i] == kIgnore) {
      ignored_wrong += !(lse_got[i] == 0.0f && loss_got[i] == 0.0f && nll_got[i] == 0.0f);
      continue;
    }
    const double lse_bound = sum_bound + 4 * kFp32Unit * std::fabs(lse_want[i]);
    lse_check.add(lse_got[i], lse_want[i], lse_bound, [&] { return fmt::format("row {}", i); });
    double abs_x = 0;
    for (int64_t j = 0; j < classes; ++j) abs_x += std::fabs(x[i * classes + j]);
    loss_sum += loss_got[i];
    nll_sum += nll_got[i];
    nll_bound += lse_bound + 2 * kFp32Unit * std::fabs(nll_got[i]);
    loss_bound += lse_bound + 2 * kFp32Unit * std::fabs(loss_got[i]) +
                  c.smoothing * (static_cast<double>(classes) / 256 + 16) * kFp32Unit * abs_x / classes;
  }
  CheckResult result{"xent " + c.str(), {}};
  result.comparisons.push_back({"ignored rows", static_cast<double>(ignored_wrong), 0.0, "(lse, loss or nll not 0)"});
  result.comparisons.push_back(lse_check.comparison());
  result.comparisons.push_back({"loss_sum", std::fabs(loss_sum - ref.loss_sum.item()), loss_bound, ""});
  result.comparisons.push_back({"nll_sum", std::fabs(nll_sum - ref.nll_sum.item()), nll_bound, ""});
  result.comparisons.push_back(within_twice_plain("dlogits", dlogits, ref_dlogits, c.dtype,
                                                  std::fabs(grad_scale) * (sum_bound + 4 * kFp32Unit)));
  return result;
}

}  // namespace heed::selftest
