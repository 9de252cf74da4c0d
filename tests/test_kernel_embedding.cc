// The embedding kernels (kernels/embedding.cu) against the CPU op, on the simulator and, when there is
// one, on the GPU.
//
// Ids repeat heavily (vocabularies of 1, 7 and 33 under 50-64 positions) and sparsely (1000 under 300),
// and some cases have a pad id that occurs in the batch; D is 1, 37, 64 and 129 (not a multiple of a
// warp); scale is 1 and sqrt(D). Weights and gradients are random and non-zero; dweight starts as NaN, so
// a row the kernel fails to write (an id no position uses, the pad row) cannot pass.
//
// Tolerances. The forward pass computes fl(scale * w) from the same (rounded) weight as the CPU op and
// rounds it once to the storage type, so it must equal the CPU result rounded to that type, bit for bit.
// The deterministic backward adds the same fp32 values in the same order (positions in increasing order)
// and scales the sum as the CPU op does, so it must match bit for bit too. The atomic backward adds
// scale * dy in an order that varies, scaling each term first: each element is within (k + 1) u
// scale * sum|dy| of the reference, for the k positions of its id (the summation bound), u = 2^-24.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "core/kernel_args.h"
#include "gradcheck.h"
#include "heed/ops/embedding.h"
#include "kernel_testing.h"
#include "sim/cuda_sim.h"
#include "kernels/embedding.h"

using namespace heed;
using heed::kernels::Backend;

namespace {


struct Case {
  int64_t positions, vocab, dim;
  int64_t pad_id;
  float scale;
};

void check_embedding(Backend backend, DType dtype, const Case& c, uint32_t seed) {
  INFO("positions " << c.positions << " vocab " << c.vocab << " dim " << c.dim << " pad " << c.pad_id << " scale "
                    << c.scale << " " << testing::dtype_label(dtype));
  std::vector<int32_t> id_values(c.positions);
  for (int64_t i = 0; i < c.positions; ++i)
    id_values[i] = static_cast<int32_t>((i * 2654435761u + seed) % static_cast<uint64_t>(c.vocab));
  const Tensor ids = Tensor::from_vector(id_values, {c.positions});
  const Tensor weight = testing::random_tensor({c.vocab, c.dim}, seed).to(dtype).to(DType::F32);
  const Tensor dy = testing::random_tensor({c.positions, c.dim}, seed + 1).to(dtype).to(DType::F32);
  const Tensor out_ref = ops::embedding_forward(ids, weight, c.scale);
  const Tensor dweight_ref = ops::embedding_backward(dy, ids, c.vocab, c.pad_id, c.scale);

  const Device device = testing::backend_device(backend);
  const Tensor ids_dev = ids.to(device);
  const Tensor weight_dev = testing::to_backend(weight, backend, dtype), dy_dev = testing::to_backend(dy, backend, dtype);
  const Tensor out = testing::nan_tensor({c.positions, c.dim}, backend, dtype);

  kernels::EmbeddingArgs args;
  args.positions = c.positions;
  args.vocab = c.vocab;
  args.dim = c.dim;
  args.scale = c.scale;
  args.ids = ids_dev.data<int32_t>();
  args.dtype = dtype;
  args.weight = weight_dev.raw_data();
  args.out = out.raw_data();
  HEED_RUN_KERNEL(device, embedding_forward, args);
  {
    const std::vector<float> got = testing::values(out), want = testing::values(out_ref.to(dtype));
    int mismatches = 0;
    for (size_t i = 0; i < got.size(); ++i) mismatches += got[i] != want[i];
    CHECK(mismatches == 0);
  }

  args.dy = dy_dev.raw_data();
  args.pad_id = c.pad_id;
  const std::vector<float> want = testing::values(dweight_ref), dy_v = testing::values(dy);

  {
    INFO("deterministic backward: the CPU op's bits");
    std::vector<int32_t> starts(c.vocab + 1), order(c.positions);
    kernels::embedding_group_positions(id_values.data(), c.positions, c.vocab, starts.data(), order.data());
    const Tensor starts_dev = Tensor::from_vector(starts, {c.vocab + 1}).to(device);
    const Tensor order_dev = Tensor::from_vector(order, {c.positions}).to(device);
    const Tensor dweight = testing::nan_tensor({c.vocab, c.dim}, backend, DType::F32);
    args.id_starts = starts_dev.data<int32_t>();
    args.positions_by_id = order_dev.data<int32_t>();
    args.dweight = dweight.data<float>();
    HEED_RUN_KERNEL(device, embedding_backward, args);
    const std::vector<float> got = testing::values(dweight);
    int mismatches = 0;
    for (size_t i = 0; i < got.size(); ++i) mismatches += got[i] != want[i];
    CHECK(mismatches == 0);
  }

  {
    INFO("atomic backward: within the summation bound");
    args.id_starts = nullptr;
    args.positions_by_id = nullptr;
    const Tensor dweight = testing::nan_tensor({c.vocab, c.dim}, backend, DType::F32);
    args.dweight = dweight.data<float>();
    HEED_RUN_KERNEL(device, embedding_backward, args);
    const std::vector<float> got = testing::values(dweight);
    std::vector<int64_t> count(c.vocab, 0);
    std::vector<double> abs_sum(c.vocab * c.dim, 0.0);
    for (int64_t i = 0; i < c.positions; ++i) {
      ++count[id_values[i]];
      for (int64_t j = 0; j < c.dim; ++j) abs_sum[id_values[i] * c.dim + j] += std::fabs(dy_v[i * c.dim + j]);
    }
    for (int64_t v = 0; v < c.vocab; ++v)
      for (int64_t j = 0; j < c.dim; ++j) {
        const int64_t e = v * c.dim + j;
        const double bound = (count[v] + 1) * testing::kFp32Unit * c.scale * abs_sum[e];
        INFO("dweight[" << v << "][" << j << "] " << got[e] << " vs " << want[e]);
        if (!(std::fabs(double(got[e]) - want[e]) <= bound)) CHECK(std::fabs(double(got[e]) - want[e]) <= bound);
      }
  }
}

void check_all(Backend backend) {
  const Case cases[] = {{5, 1, 1, -1, 1.0f},      {50, 7, 37, 3, std::sqrt(37.0f)}, {300, 1000, 64, -1, 8.0f},
                        {64, 33, 129, 0, 1.0f}};
  uint32_t seed = 1300;
  for (DType dtype : {DType::F32, DType::BF16, DType::F16})
    for (const Case& c : cases) check_embedding(backend, dtype, c, seed += 10);
}

}  // namespace

TEST_CASE("embedding kernels match the CPU op on the simulator", "[kernel][embedding]") {
  // In order, then under the adversarial schedules, which let one warp run ahead (a missing barrier then
  // gives a wrong result) and shuffle the order of blocks.
  using cuda_sim::Schedule;
  for (Schedule schedule : {Schedule::InOrder, Schedule::WarpAhead, Schedule::Random}) {
    const cuda_sim::ScheduleScope scope(schedule, 17);
    check_all(Backend::Sim);
  }
}

TEST_CASE("embedding kernels match the CPU op on the GPU", "[kernel][embedding][gpu]") {
  if (!testing::gpu_or_skip()) return;
  check_all(Backend::Gpu);
}
