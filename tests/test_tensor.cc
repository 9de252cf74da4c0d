#include <catch2/catch.hpp>

#include <algorithm>
#include <vector>

#include "heed/core/allocator.h"
#include "heed/core/half.h"
#include "heed/core/tensor.h"
#include "heed/ops/matmul.h"
#include "gradcheck.h"
#include "kernel_testing.h"

using namespace heed;

TEST_CASE("views share storage and copy nothing", "[core][tensor]") {
  Tensor t = testing::random_tensor({2, 3, 4}, 1);
  Tensor tr = t.transpose(0, 2);
  CHECK(tr.shares_storage(t));
  CHECK(tr.shape() == Shape{4, 3, 2});
  CHECK_FALSE(tr.is_contiguous());
  Tensor n = t.narrow(1, 1, 2);
  CHECK(n.shares_storage(t));
  Tensor v = t.view({6, -1});
  CHECK(v.shape() == Shape{6, 4});
  CHECK(v.shares_storage(t));
  CHECK(t.contiguous().shares_storage(t));  // already contiguous: no copy
  Tensor c = tr.contiguous();
  CHECK_FALSE(c.shares_storage(t));
  const float* src = t.data<float>();
  const float* dst = c.data<float>();
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 2; ++k) CHECK(dst[(i * 3 + j) * 2 + k] == src[(k * 3 + j) * 4 + i]);
  Tensor s = t.select(0, 1).narrow(1, 2, 2).contiguous();
  CHECK(s.shape() == Shape{3, 2});
  CHECK(s.item(5) == src[12 + 2 * 4 + 3]);
}

TEST_CASE("view of a non-contiguous tensor is refused, reshape copies", "[core][tensor]") {
  Tensor t = testing::random_tensor({3, 4}, 2).transpose(0, 1);
  CHECK_THROWS_WITH(t.view({12}), Catch::Contains("non-contiguous"));
  Tensor r = t.reshape({12});
  CHECK(r.item(1) == t.contiguous().item(1));
  CHECK_THROWS_WITH(t.reshape({5, -1}), Catch::Contains("cannot view"));
}

TEST_CASE("expand broadcasts with zero strides", "[core][tensor]") {
  Tensor b = Tensor::from_vector<float>({1, 2, 3}, {3});
  Tensor e = b.expand({2, 3});
  CHECK(e.strides() == Shape{0, 1});
  Tensor c = e.contiguous();
  CHECK(c.to_vector<float>() == std::vector<float>{1, 2, 3, 1, 2, 3});
  CHECK_THROWS(b.expand({2, 4}));
}

TEST_CASE("bf16 and fp16 conversions round to nearest even", "[core][dtype]") {
  // 1 + 2^-8 lies exactly between two bf16 values (1 and 1 + 2^-7): ties go to the even mantissa, 1.
  CHECK(bf16_bits_to_float(float_to_bf16_bits(1.0f + 1.0f / 256)) == 1.0f);
  CHECK(bf16_bits_to_float(float_to_bf16_bits(1.0f + 3.0f / 256)) == 1.0f + 4.0f / 256);
  CHECK(fp16_bits_to_float(float_to_fp16_bits(1.0f + 1.0f / 2048)) == 1.0f);
  Tensor t = Tensor::from_vector<float>({0.1f, -2.5f, 3.14159f}, {3});
  Tensor back = t.to(DType::BF16).to(DType::F32);
  for (int i = 0; i < 3; ++i) CHECK(std::abs(back.item(i) - t.item(i)) <= std::abs(t.item(i)) / 256);
}

TEST_CASE("the caching allocator reuses freed blocks of the same size class", "[core][allocator]") {
  Allocator& a = allocator_for(Device::cpu());
  CHECK(Allocator::size_class(1000) == 1024);
  CHECK(Allocator::size_class(1025) == 1280);  // four classes per power of two
  void* p = a.allocate(5000);
  a.deallocate(p, 5000);
  void* q = a.allocate(4900);  // same class as 5000
  CHECK(q == p);
  a.deallocate(q, 4900);
}

TEST_CASE("a CUDA tensor without a GPU is a clear error", "[core][device]") {
  CHECK(Device::parse("cuda:3") == Device::cuda(3));
  CHECK_THROWS_WITH(Device::parse("gpu"), Catch::Contains("unknown device 'gpu'"));
  if (cuda_device_count() == 0) {
    CHECK_THROWS(Tensor::empty({4}, DType::F32, Device::cuda(0)));
    CHECK(resolve_device("auto", "device") == Device::cpu());
    CHECK_THROWS_WITH(resolve_device("cuda:1", "training.device"),
                      Catch::Contains("training.device: device cuda:1 requested, but 0 CUDA device(s)"));
  }
  CHECK_THROWS_WITH(resolve_device("gpu", "--device"), Catch::Contains("--device: unknown device 'gpu'"));
}

TEST_CASE("the simulated GPU holds tensors, and copies between devices are what cudaMemcpy can do", "[core][device][sim]") {
  CHECK(Device::parse("sim") == Device::sim());
  CHECK(Device::sim().str() == "sim");
  Tensor host = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor on_sim = host.to(Device::sim());
  CHECK(on_sim.device() == Device::sim());
  CHECK_FALSE(on_sim.shares_storage(host));
  CHECK(on_sim.to(Device::cpu()).to_vector<float>() == host.to_vector<float>());
  // On the device, a kernel copies any strides and converts dtypes (64-bit integers bit for bit).
  CHECK(on_sim.transpose(0, 1).contiguous().to(Device::cpu()).to_vector<float>() ==
        std::vector<float>{1, 4, 2, 5, 3, 6});
  CHECK(on_sim.to(DType::BF16).to(Device::cpu()).to(DType::F32).to_vector<float>() == host.to_vector<float>());
  const int64_t big = (int64_t{1} << 53) + 1;
  Tensor ids = Tensor::from_vector<int64_t>({big, 1, 2, big + 2}, {2, 2}).to(Device::sim());
  CHECK(ids.transpose(0, 1).contiguous().to(Device::cpu()).to_vector<int64_t>() ==
        std::vector<int64_t>{big, 2, 1, big + 2});
  Tensor filled = Tensor::empty({3, 5}, DType::F16, Device::sim());
  filled.fill_(0.25f);
  CHECK(filled.to(Device::cpu()).to(DType::F32).to_vector<float>() == std::vector<float>(15, 0.25f));
  // Between devices, strided or converting copies are refused, as cudaMemcpy would refuse them.
  CHECK_THROWS_WITH(host.transpose(0, 1).to(Device::sim()), Catch::Contains("copies between devices need contiguous"));
  // CPU ops refuse device tensors instead of reading them as host memory.
  CHECK_THROWS_WITH(on_sim.item(0), Catch::Contains("CPU tensor"));
}

TEST_CASE("uploads to a GPU arrive intact through the staging ring, however many and however large",
          "[core][device][gpu]") {
  if (!testing::gpu_or_skip()) return;
  const Device gpu = Device::cuda(0);
  // Products queued first keep the compute stream busy, so the uploads behind them are still in flight
  // while the host refills the ring (16 MiB) three times over with 48 uploads of 1 MiB, overwriting each
  // source at once.
  const Tensor a = Tensor::full({4096, 4096}, 1.0f / 4096).to(DType::BF16).to(gpu);
  Tensor product = a;
  for (int i = 0; i < 8; ++i) product = ops::matmul(product, a);
  Tensor host = Tensor::empty({1 << 18}, DType::I32);
  std::vector<Tensor> uploaded;
  for (int32_t i = 0; i < 48; ++i) {
    std::fill(host.data<int32_t>(), host.data<int32_t>() + host.numel(), i);
    uploaded.push_back(host.to(gpu));
  }
  for (int32_t i = 0; i < 48; ++i) {
    const std::vector<int32_t> back = uploaded[i].to(Device::cpu()).to_vector<int32_t>();
    INFO("upload " << i);
    CHECK(std::count(back.begin(), back.end(), i) == host.numel());
  }
  // One upload longer than the ring goes in chunks.
  Tensor big = Tensor::empty({10'000'000}, DType::I32);
  for (int64_t i = 0; i < big.numel(); ++i) big.data<int32_t>()[i] = static_cast<int32_t>(i * 7);
  CHECK(big.to(gpu).to(Device::cpu()).to_vector<int32_t>() == big.to_vector<int32_t>());
  // A memset is queued after the upload it follows.
  Tensor zeroed = big.to(gpu);
  zeroed.zero_();
  const std::vector<int32_t> zeros = zeroed.to(Device::cpu()).to_vector<int32_t>();
  CHECK(std::count(zeros.begin(), zeros.end(), 0) == big.numel());
}

TEST_CASE("strided copies of 64-bit integers keep every bit", "[core][tensor]") {
  const int64_t big = (int64_t{1} << 53) + 1;  // not representable in fp32 (or even fp64 + 1)
  Tensor t = Tensor::from_vector<int64_t>({big, 1, 2, big + 2}, {2, 2});
  CHECK(t.transpose(0, 1).contiguous().to_vector<int64_t>() == std::vector<int64_t>{big, 2, 1, big + 2});
}
