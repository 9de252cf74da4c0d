// Times whole training steps (forward, backward, Adam) of the encoder-decoder Transformer.
//
//   bench_train_step [small|base|big|all] [--steps N] [--threads T] [--device cpu|cuda|cuda:N|sim]
//                    [--precision fp32|bf16|fp16]
//   bench_train_step small|base|big --device sim --estimate h100 [--json] [--tokens N] [--vocab V]
//
// small: d 256, 3+3 layers; base: d 512, 8 heads, ffn 2048, 6+6 layers; big (Transformer-big): d 1024,
// 16 heads, ffn 4096, 6+6 layers. `all` is small and base.
//
// --estimate: no timing, but what the step would take on an H100 SXM by the simulator's cost model
// (src/sim/cost_model.h, docs/cuda.md): the trainer's update step (forward, backward, gradient norm,
// Adam; no log line) runs on the simulator with its counters on at 4 and at 8 sentences, and every count
// is extrapolated, as an affine function of the sentences, to N target tokens (25000; sentences of the
// config's lengths). Prints the estimated step time and MFU, launches, host synchronisations, device
// allocations (after one warm-up step) and the kernels, slowest first; --json as one line.
//
// Prints target tokens/s, achieved GFLOP/s, its ratio to the device's GEMM GFLOP/s (measured in the
// same run with a 1024^3 product through the same path: sgemm on the CPU, or its bf16 GEMM with --precision
// bf16, where the line is headed heed-bf16; cuBLASLt in the compute type on a GPU), and peak memory: RSS on the CPU, the caching allocator's high-water mark on a GPU. The GPU
// default is bf16 mixed precision, as in training; on `sim` it runs (very slowly) to check the path. FLOPs are counted analytically:
// 2 per multiply-add of every matrix product in the forward pass (projections, attention scores and
// values, feed-forward, output layer), times 3 for forward + backward. Token ids come from a fixed seed;
// every sentence is full length (no padding), as in bench/pytorch_train_step.py.
#include <omp.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "heed/core/allocator.h"
#include "heed/core/error.h"
#include "heed/dist/communicator.h"
#include "heed/nn/transformer.h"
#include "heed/ops/matmul.h"
#include "heed/train/optimizer.h"
#include "heed/train/update_step.h"
#include "sim/cost_model.h"
#include "sim/counters.h"

using namespace heed;
using Clock = std::chrono::steady_clock;

namespace {

struct BenchConfig {
  std::string name;
  nn::ModelConfig model;
  int64_t batch, src_len, tgt_len;
  bool in_all = true;  // run by `all`
};

std::vector<BenchConfig> configs() {
  nn::ModelConfig small;
  small.vocab_size = 8000;
  small.d_model = 256;
  small.heads = 4;
  small.ffn_dim = 1024;
  small.encoder_layers = small.decoder_layers = 3;
  small.dropout = 0.1f;
  nn::ModelConfig base = small;
  base.d_model = 512;
  base.heads = 8;
  base.ffn_dim = 2048;
  base.encoder_layers = base.decoder_layers = 6;
  nn::ModelConfig big = base;  // Transformer-big; `all` leaves it out, as a CPU step takes minutes
  big.d_model = 1024;
  big.heads = 16;
  big.ffn_dim = 4096;
  return {{"small", small, 32, 32, 32}, {"base", base, 16, 32, 32}, {"big", big, 16, 32, 32, false}};
}

double step_flops(const BenchConfig& c) {
  const double d = c.model.d_model, f = c.model.ffn_dim, V = c.model.vocab_size;
  const double S = c.batch * c.src_len, T = c.batch * c.tgt_len;
  const double enc = S * (4 * 2 * d * d + 2 * 2 * d * f + 2 * 2 * c.src_len * d);
  const double dec = T * (4 * 2 * d * d + 2 * 2 * d * f + 2 * 2 * c.tgt_len * d)  // self-attention + FFN
                     + T * 2 * 2 * d * d + S * 2 * 2 * d * d + T * 2 * 2 * c.src_len * d;  // cross-attention
  const double out = T * 2 * d * V;
  return 3 * (c.model.encoder_layers * enc + c.model.decoder_layers * dec + out);
}

double gemm_gflops(Device device, DType dtype) {
  const int64_t n = 1024;
  Tensor a = Tensor::full({n, n}, 0.5f).to(dtype).to(device), b = Tensor::full({n, n}, 0.25f).to(dtype).to(device);
  Tensor c = Tensor::empty({n, n}, dtype, device);
  // Half a second of warm-up: after a few calls, an AVX2 AMD EPYC (Zen 3) still ran at about half its later
  // speed (87 GFLOP/s, then 130-170), and the "% of sgemm" column read over 100%.
  for (auto start = Clock::now(); Clock::now() - start < std::chrono::milliseconds(500);) {
    ops::matmul_into(a, b, c);
    synchronize(device);
  }
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    synchronize(device);
    auto t0 = Clock::now();
    ops::matmul_into(a, b, c);
    synchronize(device);
    best = std::max(best, 2.0 * n * n * n / std::chrono::duration<double>(Clock::now() - t0).count() / 1e9);
  }
  return best;
}

Tensor random_ids(std::mt19937& rng, int64_t rows, int64_t cols, int64_t vocab) {
  std::uniform_int_distribution<int32_t> dist(3, static_cast<int32_t>(vocab - 1));  // never pad (0)
  std::vector<int32_t> ids(rows * cols);
  for (auto& id : ids) id = dist(rng);
  return Tensor::from_vector(ids, {rows, cols});
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void run(const BenchConfig& c, int steps, double gemm, Device device, DType compute) {
  nn::ParameterStore store(1);
  nn::Transformer model(c.model, store);
  store.to(device);
  train::AdamOptimizer adam(store, ops::AdamHyper{.lr = 1e-4f});
  std::mt19937 rng(1234);
  data::Batch batch{random_ids(rng, c.batch, c.src_len, c.model.vocab_size),
                  random_ids(rng, c.batch, c.tgt_len, c.model.vocab_size),
                  random_ids(rng, c.batch, c.tgt_len, c.model.vocab_size)};
  std::vector<double> times;
  for (int s = 0; s < steps + 2; ++s) {  // two warm-up steps fill the allocator's caches
    auto t0 = Clock::now();
    if (s == 2) allocator_for(device).reset_peak();
    store.zero_grads();
    nn::ForwardContext ctx{.training = true, .compute = compute, .seed = 1, .step = static_cast<uint64_t>(s)};
    nn::LossResult r = model.loss(batch, ctx);
    autograd::backward(r.loss);
    adam.step();
    synchronize(device);
    if (s >= 2) times.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  const double t = median(times);
  const double tokens = static_cast<double>(c.batch * c.tgt_len);
  const double gflops = step_flops(c) / t / 1e9;
  if (device.is_cpu()) {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    // heed-bf16: bf16 matrix products, against the bf16 GEMM's 1024^3 speed.
    const bool bf16 = ops::cpu_bf16_gemm_on();
    fmt::print("{:<9} {:<6} threads={} params={:.1f}M step={:.1f} ms  {:.0f} tgt tok/s  {:.1f} GFLOP/s  {:.0f}% of {}  "
               "peak RSS {:.0f} MiB\n",
               bf16 ? "heed-bf16" : "heed", c.name, omp_get_max_threads(), store.numel() / 1e6, t * 1e3, tokens / t,
               gflops, 100 * gflops / gemm, bf16 ? "GEMM" : "sgemm", usage.ru_maxrss / 1024.0);
  } else {
    fmt::print("heed  {:<6} {} {} params={:.1f}M step={:.2f} ms  {:.0f} tgt tok/s  {:.1f} TFLOP/s  {:.0f}% of GEMM  "
               "peak memory {:.0f} MiB\n",
               c.name, device.str(), dtype_name(compute), store.numel() / 1e6, t * 1e3, tokens / t, gflops / 1e3,
               100 * gflops / gemm, allocator_for(device).stats().peak_in_use / double(1 << 20));
  }
}

// The simulator's counters for one update step of the trainer at `sentences` sentences of the config's
// lengths, after one uncounted step that fills the allocator's caches.
cuda_sim::StepCounters count_update_step(const BenchConfig& c, int64_t sentences, DType compute) {
  nn::ParameterStore store(1);
  nn::Transformer model(c.model, store);
  store.to(Device::sim());
  train::TrainConfig config;
  config.model = c.model;
  train::AdamOptimizer adam(store, ops::AdamHyper{.lr = 1e-4f});
  train::ExponentialMovingAverage average(store, 0.0);
  train::LossScaler scaler(compute == DType::F16, config.training.loss_scale, config.training.loss_scale_window);
  const std::unique_ptr<dist::Communicator> comm = dist::make_communicator();
  train::UpdateStep update(config, model, store, adam, average, scaler, *comm,
                           nn::ForwardContext{.compute = compute, .seed = 1});
  std::mt19937 rng(1234);
  std::vector<data::LoadedBatch> batches(1);
  data::LoadedBatch& b = batches[0];
  b.batch = {random_ids(rng, sentences, c.src_len, c.model.vocab_size),
             random_ids(rng, sentences, c.tgt_len, c.model.vocab_size),
             random_ids(rng, sentences, c.tgt_len, c.model.vocab_size)};
  b.sentences = sentences;
  b.src_tokens = sentences * c.src_len;
  b.tgt_tokens = sentences * c.tgt_len;
  train::TrainState state;
  update.run(batches, state, false);
  cuda_sim::CountingScope counting;
  update.run(batches, state, false);
  return counting.take();
}

void print_estimate(BenchConfig c, DType compute, int64_t tokens, bool json) {
  HEED_CHECK(cuda_sim::memory_counting_available(),
             "--estimate needs the simulator's memory counters, which this build lacks (GCC without sanitizers)");
  // The simulated sentences: 128 and 256 target tokens at length 32, multiples of the 128-row chunks of
  // the column sums (column_sums.h), so that each count is in the range where it grows affinely.
  constexpr int64_t kSmall = 4, kLarge = 8;
  const cuda_sim::StepCounters small = count_update_step(c, kSmall, compute);
  const cuda_sim::StepCounters large = count_update_step(c, kLarge, compute);
  c.batch = std::max<int64_t>(1, (tokens + c.tgt_len / 2) / c.tgt_len);
  const cuda_sim::GpuModel gpu = cuda_sim::h100_sxm();
  const cuda_sim::StepEstimate e = cuda_sim::estimate_step(
      gpu, cuda_sim::extrapolate(small, kSmall, large, kLarge, static_cast<double>(c.batch)));
  const double mfu = step_flops(c) / e.seconds / gpu.dense_16bit_flops;
  if (json) {
    std::string kernels;
    for (const cuda_sim::KernelTotal& k : e.kernels)
      kernels += fmt::format("{}{{\"name\":\"{}\",\"calls\":{},\"est_ms\":{:.4f},\"bound\":\"{}\"}}",
                             kernels.empty() ? "" : ",", k.name, k.calls, k.seconds * 1e3, k.bound);
    fmt::print("{{\"config\":\"{}\",\"gpu\":\"{}\",\"precision\":\"{}\",\"tokens\":{},\"sentences\":{},"
               "\"simulated_sentences\":[{},{}],\"est_step_ms\":{:.3f},\"est_mfu\":{:.4f},\"launches\":{},"
               "\"host_syncs\":{},\"device_allocs\":{},\"kernels\":[{}]}}\n",
               c.name, gpu.name, dtype_name(compute), c.batch * c.tgt_len, c.batch, kSmall, kLarge, e.seconds * 1e3,
               mfu, e.launches, e.host_syncs, e.device_allocations, kernels);
    return;
  }
  fmt::print("estimate for {} ({}, {} sentences x {} target tokens = {} tokens) on the {} model; counted on the "
             "simulator at {} and {} sentences and extrapolated (docs/cuda.md)\n",
             c.name, dtype_name(compute), c.batch, c.tgt_len, c.batch * c.tgt_len, gpu.name, kSmall, kLarge);
  fmt::print("step {:.2f} ms  MFU {:.1f}%  launches {}  host syncs {}  device allocations {}\n", e.seconds * 1e3,
             100 * mfu, e.launches, e.host_syncs, e.device_allocations);
  fmt::print("{:<40} {:>7} {:>11} {:>6}  {}\n", "kernel", "calls", "est ms", "share", "bound");
  for (const cuda_sim::KernelTotal& k : e.kernels)
    fmt::print("{:<40} {:>7} {:>11.4f} {:>5.1f}%  {}\n", k.name, k.calls, k.seconds * 1e3, 100 * k.seconds / e.seconds,
               k.bound);
}

}  // namespace

int main(int argc, char** argv) {
  std::string which = "all", device_name = "cpu", precision = "auto", estimate;
  int steps = 10;
  bool json = false;
  int64_t tokens = 25000, vocab = 0;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--steps") && i + 1 < argc) steps = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) omp_set_num_threads(std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--device") && i + 1 < argc) device_name = argv[++i];
    else if (!std::strcmp(argv[i], "--precision") && i + 1 < argc) precision = argv[++i];
    else if (!std::strcmp(argv[i], "--estimate") && i + 1 < argc) estimate = argv[++i];
    else if (!std::strcmp(argv[i], "--tokens") && i + 1 < argc) tokens = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--vocab") && i + 1 < argc) vocab = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--json")) json = true;
    else which = argv[i];
  }
  const Device device = resolve_device(device_name, "--device");
  const nn::Precision resolved = nn::resolve_precision(precision, device, "--precision");
  const DType compute = resolved.compute;
  std::optional<ops::CpuBf16GemmScope> bf16_products;  // the CPU's bf16: its products only
  if (resolved.cpu_bf16_gemm) bf16_products.emplace("--precision bf16");
  if (!estimate.empty()) {
    HEED_CHECK(estimate == "h100", "--estimate {}: the only GPU model is h100", estimate);
    HEED_CHECK(device.is_sim(), "--estimate counts on the simulator: give --device sim");
    HEED_CHECK(tokens > 0 && vocab >= 0, "--tokens must be positive and --vocab not negative");
    for (BenchConfig c : configs())
      if (which == c.name) {
        if (vocab > 0) c.model.vocab_size = vocab;
        print_estimate(c, compute, tokens, json);
        return 0;
      }
    HEED_CHECK(false, "--estimate: the config must be small, base or big, got '{}'", which);
  }
  const double gemm = gemm_gflops(device, compute);
  if (device.is_cpu()) {
    const ops::CpuGemmLibrary library = ops::cpu_gemm_library();
    fmt::print("{} 1024^3: {:.1f} GFLOP/s with {} threads ({})\n", bf16_products ? "bf16 GEMM" : "sgemm", gemm,
               omp_get_max_threads(), library.description);
  }
  else
    fmt::print("{} GEMM 1024^3 on {}: {:.1f} TFLOP/s\n", dtype_name(compute), device.str(), gemm / 1e3);
  for (BenchConfig c : configs())
    if (which == "all" ? c.in_all : which == c.name) {
      if (vocab > 0) c.model.vocab_size = vocab;
      run(c, steps, gemm, device, compute);
    }
  return 0;
}
