// cuDNN's fused attention path (src/ops/attention_cudnn.cu), checked without a GPU: for every variant
// Heed builds (forward and backward; bf16 and fp16; head dims 64 and 128; causal, padding and dropout in
// every combination; cross-attention lengths), cuDNN's heuristics must offer at least one engine
// configuration on an H100 (sm_90) and an A100 (sm_80) described by cuDNN's device-properties JSON. cuDNN
// recognises a graph as fused attention only when it has the exact shape of its pattern (a reduction that
// takes the minimum instead of the maximum, or the log of the scores instead of their exp, gets no
// configuration at all), so this checks the graphs Heed builds; what it cannot check is the numbers, which
// the [gpu] case compares with the CPU op on a real GPU.
//
// cuDNN loads libcuda.so.1 even for this; tests/CMakeLists.txt runs these cases with the toolkit's stub
// library on the path (test "cudnn: deviceless engine check"), never in the process of the GPU tests.
#include <catch2/catch.hpp>

#ifdef HEED_WITH_CUDNN

#include <string>

#include "gradcheck.h"
#include "heed/ops/attention.h"
#include "kernel_testing.h"
#include "ops/attention_cudnn.h"
#include "worst.h"

using namespace heed;
using ops::cudnn::SdpaProblem;

namespace {

// Device properties as cuDNN's JSON spells them (the keys are those its parser asks for), with the
// published figures of an H100 SXM and an A100 SXM.
std::string device_json(int sm, int sms, int shared_optin, int64_t memory, int l2) {
  return fmt::format(
      R"({{"maxGridSize": [2147483647, 65535, 65535], "maxBlockSize": [1024, 1024, 64], "regsPerBlock": 65536, )"
      R"("multiProcessorCount": {}, "warpSize": 32, "maxSharedMemoryPerBlock": 49152, )"
      R"("maxSharedMemoryPerBlockOptin": {}, "reservedSharedMemoryPerBlock": 1024, "maxRegistersPerSM": 65536, )"
      R"("maxCtasPerSM": 32, "maxThreadsPerBlock": 1024, "maxThreadsPerSM": 2048, "pciDeviceId": 0, )"
      R"("isTccDriver": 0, "supportCoopLaunch": 1, "totalGlobalMem": {}, "smClockRateKHz": 1410000, )"
      R"("memClockRateKHz": 1593000, "l2CacheSize": {}, "cudaDeviceId": 0, "deviceVer": {}, "driverVer": 12080, )"
      R"("deviceName": "sm_{}"}})",
      sms, shared_optin, memory, l2, sm * 10, sm);
}

const std::string kH100 = device_json(90, 132, 232448, 85520809984, 52428800);
const std::string kA100 = device_json(80, 108, 166912, 85031714816, 41943040);

}  // namespace

TEST_CASE("cuDNN offers an engine for every attention graph Heed builds", "[cudnn]") {
  for (const std::string* device : {&kH100, &kA100})
    for (const DType dtype : {DType::BF16, DType::F16})
      for (const int64_t head_dim : {64, 128})
        for (int variant = 0; variant < 8; ++variant)
          for (const bool backward : {false, true}) {
            SdpaProblem p{2, 4, 128, 128, head_dim, dtype, (variant & 1) != 0, (variant & 2) != 0, (variant & 4) != 0};
            INFO((device == &kH100 ? "sm_90 " : "sm_80 ") << (backward ? "backward " : "forward ") << dtype_name(dtype)
                 << " D=" << head_dim << (p.causal ? " causal" : "") << (p.padding ? " padding" : "")
                 << (p.dropout ? " dropout" : ""));
            CHECK(ops::cudnn::deviceless_engine_configs(p, backward, *device) > 0);
          }
  // Cross-attention: queries and keys of different lengths, not multiples of a tile, with padding.
  for (const bool backward : {false, true}) {
    const SdpaProblem p{3, 2, 37, 201, 64, DType::BF16, false, true, true};
    INFO((backward ? "backward" : "forward") << " Lq=37 Lk=201");
    CHECK(ops::cudnn::deviceless_engine_configs(p, backward, kH100) > 0);
  }
}

TEST_CASE("cuDNN refuses an attention graph beyond its fused engines", "[cudnn]") {
  // The negative control: the check above can fail. Head dim 512 is beyond the fused backward engines of
  // both architectures (a forward pass of that size still finds one).
  const SdpaProblem p{2, 4, 128, 128, 512, DType::BF16, true, false, false};
  for (const std::string* device : {&kH100, &kA100}) {
    INFO((device == &kH100 ? "sm_90" : "sm_80"));
    CHECK(ops::cudnn::deviceless_engine_configs(p, true, *device) == 0);
  }
}

TEST_CASE("cuDNN's attention matches the CPU op as closely as Heed's kernels do", "[gpu][cudnn_gpu]") {
  // On a real GPU: the same inputs through the CPU op in fp32 (on the 16-bit-rounded values), Heed's
  // kernels and cuDNN. cuDNN's worst error must stay within twice the kernels' (itself within twice a
  // plain 16-bit implementation's, tests/test_kernel_attention.cc), plus one 16-bit unit of the largest
  // output for the case where the kernels happen to be exact. No dropout: the two draw different masks.
  if (!testing::gpu_or_skip()) return;
  for (const bool causal : {false, true})
    for (const bool padding : {false, true}) {
      INFO((causal ? "causal" : "") << (padding ? " padding" : ""));
      const int64_t B = 2, H = 4, L = 96, D = 64;
      auto heads = [&](uint32_t seed) {  // [B, L, H, D] storage seen as [B, H, L, D], as the projections give
        return testing::random_tensor({B, L, H, D}, seed).to(DType::BF16).to(DType::F32).transpose(1, 2);
      };
      const Tensor q = heads(1), k = heads(2), v = heads(3), dout = heads(4);
      ops::AttentionOptions opt;
      opt.scale = 0.125f;
      opt.causal = causal;
      if (padding) {
        std::vector<uint8_t> pad(B * L, 0);
        for (int64_t j = L - 17; j < L; ++j) pad[L + j] = 1;  // batch row 1: its last 17 keys
        opt.key_padding = Tensor::from_vector(pad, {B, L});
      }
      const ops::AttentionResult ref = ops::attention_forward(q, k, v, opt);
      const ops::AttentionGrads ref_grads = ops::attention_backward(dout, q, k, v, ref, opt);
      auto on_gpu = [&](const Tensor& t) { return t.to(DType::BF16).contiguous().to(Device::cuda()); };
      auto run = [&](ops::AttentionBackend backend) {
        ops::AttentionOptions o = opt;
        o.backend = backend;
        if (padding) o.key_padding = opt.key_padding.to(Device::cuda());
        const Tensor gq = on_gpu(q.transpose(1, 2)).transpose(1, 2), gk = on_gpu(k.transpose(1, 2)).transpose(1, 2),
                     gv = on_gpu(v.transpose(1, 2)).transpose(1, 2), gd = on_gpu(dout.transpose(1, 2)).transpose(1, 2);
        const ops::AttentionResult r = ops::attention_forward(gq, gk, gv, o);
        const ops::AttentionGrads g = ops::attention_backward(gd, gq, gk, gv, r, o);
        return std::vector<Tensor>{r.out, g.dq, g.dk, g.dv};
      };
      const std::vector<Tensor> want = {ref.out, ref_grads.dq, ref_grads.dk, ref_grads.dv};
      const std::vector<Tensor> fused = run(ops::AttentionBackend::Fused), cudnn = run(ops::AttentionBackend::Cudnn);
      const char* names[] = {"out", "dq", "dk", "dv"};
      for (size_t i = 0; i < want.size(); ++i) {
        const std::vector<float> w = testing::values(want[i]), f = testing::values(fused[i]), c = testing::values(cudnn[i]);
        double fused_error = 0, cudnn_error = 0, largest = 0;
        for (size_t j = 0; j < w.size(); ++j) {
          testing::raise_worst(fused_error, std::abs(double(f[j]) - w[j]));
          testing::raise_worst(cudnn_error, std::abs(double(c[j]) - w[j]));
          largest = std::max(largest, std::abs(double(w[j])));
        }
        INFO(names[i] << ": cuDNN error " << cudnn_error << ", kernels' " << fused_error);
        CHECK(cudnn_error <= 2 * fused_error + largest / 256);
      }
    }
}

#endif  // HEED_WITH_CUDNN
