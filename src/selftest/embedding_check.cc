// The embedding check of selftest/embedding_check.h: inputs from Philox, the CPU op as the
// reference, the kernels launched on their raw arguments.
#include "selftest/embedding_check.h"

#include <cmath>

#include "core/kernel_args.h"
#include "heed/ops/embedding.h"
#include "kernels/embedding.h"
#include "selftest/case_text.h"

namespace heed::selftest {

namespace {

// Elements whose bits differ: the count, against a bound of 0.
Comparison bitwise(const std::string& name, const std::vector<float>& got, const std::vector<float>& want,
                   const std::string& detail) {
  int64_t mismatches = 0;
  for (size_t i = 0; i < got.size(); ++i) mismatches += !(got[i] == want[i]);
  return {name, static_cast<double>(mismatches), 0.0, detail};
}

}  // namespace

std::string EmbeddingCase::str() const {
  return fmt::format("{},{},{}{},scale={},{}", positions, vocab, dim, pad_id >= 0 ? fmt::format(",pad={}", pad_id) : "",
                     scale, detail::dtype_text(dtype));
}

std::optional<EmbeddingCase> parse_embedding_case(const std::string& text, std::string* error) {
  return detail::read_case(
      "--embedding", "POSITIONS,VOCAB,DIM[,pad=ID][,scale=S|sqrt][,bf16|fp16|fp32]", text, 3, error,
      [](const std::vector<std::string>& fields) {
        EmbeddingCase c;
        c.positions = detail::read_size(fields[0]);
        c.vocab = detail::read_size(fields[1]);
        c.dim = detail::read_size(fields[2]);
        for (size_t i = 3; i < fields.size(); ++i) {
          const std::string& f = fields[i];
          if (const std::optional<DType> dtype = detail::read_dtype(f)) {
            c.dtype = *dtype;
          } else if (f.rfind("pad=", 0) == 0) {
            c.pad_id = detail::read_size(f.substr(4), 0);
            if (c.pad_id >= c.vocab) throw detail::CaseTextError{"the pad id must be below VOCAB"};
          } else if (f == "scale=sqrt") {
            c.scale = std::sqrt(static_cast<float>(c.dim));
          } else if (const std::optional<float> s = detail::read_keyed_number(f, "scale")) {
            c.scale = *s;
          } else {
            throw detail::CaseTextError{fmt::format("unknown flag '{}'", f)};
          }
        }
        return c;
      });
}

CheckResult check_embedding(kernels::Backend backend, const EmbeddingCase& c, uint64_t seed) {
  std::vector<int32_t> id_values(c.positions);
  for (int64_t i = 0; i < c.positions; ++i)
    id_values[i] = static_cast<int32_t>((i * 2654435761u + seed) % static_cast<uint64_t>(c.vocab));
  const Tensor ids = Tensor::from_vector(id_values, {c.positions});
  const Tensor weight = random_uniform({c.vocab, c.dim}, seed, 0).to(c.dtype).to(DType::F32);
  const Tensor dy = random_uniform({c.positions, c.dim}, seed, 1).to(c.dtype).to(DType::F32);
  const Tensor out_ref = ops::embedding_forward(ids, weight, c.scale);
  const Tensor dweight_ref = ops::embedding_backward(dy, ids, c.vocab, c.pad_id, c.scale);

  const Device device = backend_device(backend);
  const Tensor ids_dev = ids.to(device);
  const Tensor weight_dev = to_backend(weight, backend, c.dtype), dy_dev = to_backend(dy, backend, c.dtype);
  const Tensor out = nan_tensor({c.positions, c.dim}, backend, c.dtype);

  kernels::EmbeddingArgs args;
  args.positions = c.positions;
  args.vocab = c.vocab;
  args.dim = c.dim;
  args.scale = c.scale;
  args.ids = ids_dev.data<int32_t>();
  args.dtype = c.dtype;
  args.weight = weight_dev.raw_data();
  args.out = out.raw_data();
  HEED_RUN_KERNEL(device, embedding_forward, args);
  CheckResult result{"embedding " + c.str(), {}};
  result.comparisons.push_back(bitwise("out", host_values(out), host_values(out_ref.to(c.dtype)),
                                       "(elements not the CPU op's, rounded to the storage type)"));

  args.dy = dy_dev.raw_data();
  args.pad_id = c.pad_id;
  const std::vector<float> want = host_values(dweight_ref), dy_v = host_values(dy);

  // Deterministic: the CPU op's bits.
  std::vector<int32_t> starts(c.vocab + 1), order(c.positions);
  kernels::embedding_group_positions(id_values.data(), c.positions, c.vocab, starts.data(), order.data());
  const Tensor starts_dev = Tensor::from_vector(starts, {c.vocab + 1}).to(device);
  const Tensor order_dev = Tensor::from_vector(order, {c.positions}).to(device);
  const Tensor dweight_deterministic = nan_tensor({c.vocab, c.dim}, backend, DType::F32);
  args.id_starts = starts_dev.data<int32_t>();
  args.positions_by_id = order_dev.data<int32_t>();
  args.dweight = dweight_deterministic.data<float>();
  HEED_RUN_KERNEL(device, embedding_backward, args);
  result.comparisons.push_back(bitwise("dweight deterministic", host_values(dweight_deterministic), want,
                                       "(elements not the CPU op's bits)"));

  // Atomic: within the summation bound.
  args.id_starts = nullptr;
  args.positions_by_id = nullptr;
  const Tensor dweight_atomic = nan_tensor({c.vocab, c.dim}, backend, DType::F32);
  args.dweight = dweight_atomic.data<float>();
  HEED_RUN_KERNEL(device, embedding_backward, args);
  const std::vector<float> got = host_values(dweight_atomic);
  std::vector<int64_t> count(c.vocab, 0);
  std::vector<double> abs_sum(c.vocab * c.dim, 0.0);
  for (int64_t i = 0; i < c.positions; ++i) {
    ++count[id_values[i]];
    for (int64_t j = 0; j < c.dim; ++j) abs_sum[id_values[i] * c.dim + j] += std::fabs(dy_v[i * c.dim + j]);
  }
  WorstRatio atomic("dweight atomic", "element");
  for (int64_t v = 0; v < c.vocab; ++v)
    for (int64_t j = 0; j < c.dim; ++j) {
      const int64_t e = v * c.dim + j;
      atomic.add(got[e], want[e], (count[v] + 1) * kFp32Unit * c.scale * abs_sum[e],
                 [&] { return fmt::format("dweight[{}][{}]", v, j); });
    }
  result.comparisons.push_back(atomic.comparison());
  return result;
}

}  // namespace heed::selftest
