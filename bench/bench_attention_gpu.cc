// Attention on a GPU: Heed's fused FlashAttention-2 kernels against cuDNN's fused attention (in a build
// with cuDNN; its graphs are in src/ops/attention_cudnn.cu) and the unfused path (a cuBLASLt GEMM for the
// scores, the softmax kernel, a GEMM for the values: what Marian runs), forward and backward.
//
//   bench_attention_gpu [--dtype bf16|fp16] [--device N] [--max-len L] [--iters N]
//
// The shapes follow FlashAttention's benchmarks: 16k tokens per batch (B = 16384 / L), hidden size 2048
// (H = 2048 / D), head dims 64 and 128, lengths 128 to 16k, causal and not. FLOPs: 4 B H L^2 D for the
// forward pass (halved when causal), 2.5 times that for the backward pass, as FlashAttention counts them.
// Times are wall-clock over --iters launches after a warm-up, between device synchronisations. The
// unfused path materialises the L x L scores and probabilities; it runs non-causal only, and is skipped
// where they would not fit in memory. cuDNN reads [B, L, H, D] storage (the layout of Heed's projections),
// the others [B, H, L, D]; its first call per shape builds a plan, which the warm-up absorbs. Peak memory is
// the caching allocator's high-water mark.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>

#include "core/cuda_runtime.h"
#include "core/gemm.h"
#include "heed/core/allocator.h"
#include "heed/core/stream.h"
#include "heed/core/tensor.h"
#include "kernels/attention.h"
#include "kernels/softmax.h"
#ifdef HEED_WITH_CUDNN
#include "ops/attention_cudnn.h"
#endif

using namespace heed;
using kernels::Backend;

namespace {

struct Options {
  DType dtype = DType::BF16;
  int device = 0;
  int64_t max_len = 16384;
  int iters = 10;
};

double time_ms(int device, int iters, const std::function<void()>& run) {
  run();
  cuda::synchronize(device);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) run();
  cuda::synchronize(device);
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() / iters;
}

Tensor random_device(const Shape& shape, DType dtype, Device device, uint32_t seed) {
  Tensor host = Tensor::empty(shape);
  uint32_t state = seed * 2654435761u + 1;
  float* p = host.data<float>();
  for (int64_t i = 0; i < host.numel(); ++i) {
    state = state * 1664525u + 1013904223u;
    p[i] = static_cast<float>(state >> 8) / 16777216.0f - 0.5f;
  }
  return host.to(dtype).to(device);
}

// One batched GEMM over [batch, rows, cols] contiguous operands.
void batched_gemm(Device device, const Tensor& a, bool ta, const Tensor& b, bool tb, Tensor& out, float alpha) {
  GemmDesc d;
  d.batch = out.size(0);
  d.m = out.size(1);
  d.n = out.size(2);
  d.k = ta ? a.size(1) : a.size(2);
  d.a = {a.raw_data(), a.dtype(), ta, a.size(2), a.size(1) * a.size(2)};
  d.b = {b.raw_data(), b.dtype(), tb, b.size(2), b.size(1) * b.size(2)};
  d.out = out.raw_data();
  d.out_dtype = out.dtype();
  d.ldo = d.n;
  d.out_batch_stride = d.m * d.n;
  d.alpha = alpha;
  gemm(device, d);
}

void run(const Options& opt) {
  const Device device = Device::cuda(opt.device);
  const kernels::Half half = opt.dtype == DType::BF16 ? kernels::Half::BF16 : kernels::Half::FP16;
  std::printf("%s, %s\n", cuda::describe(opt.device).c_str(), std::string(dtype_name(opt.dtype)).c_str());
  std::printf("%4s %6s %6s %3s %4s | %9s %9s | %9s %9s | %9s %9s | %9s\n", "D", "causal", "L", "B", "H", "fused fwd",
              "fused bwd", "cudnn fwd", "cudnn bwd", "naive fwd", "naive bwd", "peak GiB");
  for (int64_t d : {64, 128})
    for (bool causal : {false, true})
      for (int64_t len = 128; len <= opt.max_len; len *= 2) {
        const int64_t batch = std::max<int64_t>(1, 16384 / len), heads = 2048 / d;
        Allocator& alloc = allocator_for(device);
        alloc.release_cached();
        alloc.reset_peak();
        const Shape shape{batch, heads, len, d};
        Tensor q = random_device(shape, opt.dtype, device, 1), k = random_device(shape, opt.dtype, device, 2);
        Tensor v = random_device(shape, opt.dtype, device, 3), dout = random_device(shape, opt.dtype, device, 4);
        Tensor out = Tensor::empty(shape, opt.dtype, device), lse = Tensor::empty({batch, heads, len}, DType::F32, device);
        Tensor dq = Tensor::empty(shape, opt.dtype, device), dk = Tensor::empty(shape, opt.dtype, device);
        Tensor dv = Tensor::empty(shape, opt.dtype, device);
        const kernels::AttentionStrides strides{heads * len * d, len * d, d};
        kernels::AttentionArgs a;
        a.dtype = half;
        a.batch = static_cast<int>(batch), a.heads = static_cast<int>(heads);
        a.len_q = a.len_k = static_cast<int>(len), a.head_dim = static_cast<int>(d);
        a.scale = 1.0f / std::sqrt(static_cast<float>(d));
        a.causal = causal;
        a.q = q.raw_data(), a.k = k.raw_data(), a.v = v.raw_data(), a.out = out.raw_data();
        a.lse = lse.data<float>();
        a.dout = dout.raw_data(), a.dq = dq.raw_data(), a.dk = dk.raw_data(), a.dv = dv.raw_data();
        a.q_strides = a.k_strides = a.v_strides = a.out_strides = a.dout_strides = strides;
        a.dq_strides = a.dk_strides = a.dv_strides = strides;
        Tensor workspace = Tensor::empty(
            {static_cast<int64_t>(kernels::attention_backward_workspace_bytes<Backend::Cuda>(a))}, DType::U8, device);
        a.workspace = workspace.raw_data();
        a.stream = Stream::compute(device).handle();  // after the inputs' uploads, as ops' launches are

        const double fwd_flops = 4.0 * batch * heads * len * len * d * (causal ? 0.5 : 1.0);
        const double fused_fwd = time_ms(opt.device, opt.iters, [&] { kernels::attention_forward<Backend::Cuda>(a); });
        const double fused_bwd = time_ms(opt.device, opt.iters, [&] { kernels::attention_backward<Backend::Cuda>(a); });
        auto tflops = [](double flops, double ms) { return flops / (ms * 1e-3) / 1e12; };
        std::string cudnn_fwd = "-", cudnn_bwd = "-";
#ifdef HEED_WITH_CUDNN
        {
          const Shape stored{batch, len, heads, d};
          auto heads_view = [&](uint32_t seed) { return random_device(stored, opt.dtype, device, seed).transpose(1, 2); };
          const Tensor qs = heads_view(5), ks = heads_view(6), vs = heads_view(7), ds = heads_view(8);
          ops::AttentionOptions o;
          o.scale = a.scale;
          o.causal = causal;
          ops::AttentionResult r;
          const double cf = time_ms(opt.device, opt.iters, [&] { r = ops::cudnn::attention_forward(qs, ks, vs, o); });
          const ops::AttentionGrads g{heads_view(9), heads_view(10), heads_view(11)};
          const double cb =
              time_ms(opt.device, opt.iters, [&] { ops::cudnn::attention_backward(ds, qs, ks, vs, r, o, g); });
          cudnn_fwd = fmt::format("{:9.1f}", tflops(fwd_flops, cf));
          cudnn_bwd = fmt::format("{:9.1f}", tflops(2.5 * fwd_flops, cb));
        }
#endif
        std::string naive_fwd = "-", naive_bwd = "-";
        const double score_bytes = 2.0 * batch * heads * len * len * dtype_size(opt.dtype);
        if (!causal && score_bytes < 24e9) {
          const Shape flat{batch * heads, len, d}, scores{batch * heads, len, len};
          Tensor qf = q.view(flat), kf = k.view(flat), vf = v.view(flat), of = out.view(flat), dof = dout.view(flat);
          Tensor s = Tensor::empty(scores, opt.dtype, device), p = Tensor::empty(scores, opt.dtype, device);
          Tensor dqf = dq.view(flat), dkf = dk.view(flat), dvf = dv.view(flat);
          kernels::SoftmaxArgs sm;
          sm.rows = batch * heads * len, sm.cols = len, sm.dtype = opt.dtype;
          sm.stream = a.stream;
          const double nf = time_ms(opt.device, opt.iters, [&] {
            batched_gemm(device, qf, false, kf, true, s, a.scale);
            sm.x = s.raw_data(), sm.out = p.raw_data();
            kernels::softmax_forward<Backend::Cuda>(sm);
            batched_gemm(device, p, false, vf, false, of, 1.0f);
          });
          const double nb = time_ms(opt.device, opt.iters, [&] {
            batched_gemm(device, p, true, dof, false, dvf, 1.0f);   // dV = P^T dO
            batched_gemm(device, dof, false, vf, true, s, 1.0f);    // dP = dO V^T
            sm.y = p.raw_data(), sm.dy = s.raw_data(), sm.out = s.raw_data();
            kernels::softmax_backward<Backend::Cuda>(sm);             // dS, in place of dP
            batched_gemm(device, s, false, kf, false, dqf, a.scale);  // dQ = dS K
            batched_gemm(device, s, true, qf, false, dkf, a.scale);   // dK = dS^T Q
          });
          naive_fwd = fmt::format("{:9.1f}", tflops(fwd_flops, nf));
          naive_bwd = fmt::format("{:9.1f}", tflops(2.5 * fwd_flops, nb));
        }
        std::printf("%4ld %6s %6ld %3ld %4ld | %9.1f %9.1f | %9s %9s | %9s %9s | %9.2f\n", static_cast<long>(d),
                    causal ? "yes" : "no", static_cast<long>(len), static_cast<long>(batch), static_cast<long>(heads),
                    tflops(fwd_flops, fused_fwd), tflops(2.5 * fwd_flops, fused_bwd), cudnn_fwd.c_str(),
                    cudnn_bwd.c_str(), naive_fwd.c_str(), naive_bwd.c_str(), alloc.stats().peak_in_use / double(1 << 30));
      }
  std::printf("(TFLOP/s)\n");
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&] {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return std::string(argv[++i]);
    };
    if (arg == "--dtype") {
      const std::string v = value();
      if (v != "bf16" && v != "fp16") {
        std::fprintf(stderr, "--dtype: expected bf16 or fp16, got %s\n", v.c_str());
        return 2;
      }
      opt.dtype = v == "bf16" ? DType::BF16 : DType::F16;
    } else if (arg == "--device") {
      opt.device = std::stoi(value());
    } else if (arg == "--max-len") {
      opt.max_len = std::stoll(value());
    } else if (arg == "--iters") {
      opt.iters = std::stoi(value());
    } else {
      std::fprintf(stderr, "usage: bench_attention_gpu [--dtype bf16|fp16] [--device N] [--max-len L] [--iters N]\n");
      return 2;
    }
  }
  if (cuda_device_count() <= opt.device) {
    std::fprintf(stderr, "bench_attention_gpu needs a CUDA device; cuda:%d is not usable here\n", opt.device);
    return 1;
  }
  try {
    run(opt);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
