// Which GEMM library and kernels the CPU products run (heed/ops/matmul.h).
#include <fmt/format.h>
#include <oneapi/dnnl/dnnl.h>

#include <atomic>

#include "heed/core/error.h"
#include "heed/ops/matmul.h"

namespace heed::ops {

namespace {

VectorLevel this_cpu_level() {
  __builtin_cpu_init();
  // oneDNN's avx512_core, the lowest of its AVX-512 levels for GEMMs, needs the F, BW, DQ and VL subsets.
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    return VectorLevel::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return VectorLevel::Avx2;
  return VectorLevel::BeforeAvx2;
}

std::atomic<int> bf16_gemm_scopes{0};

}  // namespace

const char* vector_level_name(VectorLevel level) {
  switch (level) {
    case VectorLevel::Unknown: return "unknown";
    case VectorLevel::BeforeAvx2: return "SSE/AVX, no AVX2";
    case VectorLevel::Avx2: return "AVX2";
    case VectorLevel::Avx512: return "AVX-512";
  }
  return "unknown";
}

OnednnIsa onednn_isa(int isa) {
  switch (isa) {
    case dnnl_cpu_isa_sse41: return {"sse41", VectorLevel::BeforeAvx2};
    case dnnl_cpu_isa_avx: return {"avx", VectorLevel::BeforeAvx2};
    case dnnl_cpu_isa_avx2: return {"avx2", VectorLevel::Avx2};
    case dnnl_cpu_isa_avx2_vnni: return {"avx2_vnni", VectorLevel::Avx2};
    case dnnl_cpu_isa_avx512_core: return {"avx512_core", VectorLevel::Avx512};
    case dnnl_cpu_isa_avx512_core_vnni: return {"avx512_core_vnni", VectorLevel::Avx512};
    case dnnl_cpu_isa_avx512_core_bf16: return {"avx512_core_bf16", VectorLevel::Avx512, true};
    case dnnl_cpu_isa_avx512_core_amx: return {"avx512_core_amx", VectorLevel::Avx512, true};
  }
  return {"unknown", VectorLevel::Unknown};  // the Xeon Phi levels, or one newer than this table
}

CpuGemmLibrary cpu_gemm_library() {
  CpuGemmLibrary library;
  const OnednnIsa isa = onednn_isa(dnnl_get_effective_cpu_isa());
  library.kernel_name = isa.name;
  library.kernels = isa.level;
  library.cpu = this_cpu_level();
  const dnnl_version_t* v = dnnl_version();
  library.description = fmt::format("oneDNN {}.{}.{}, {} kernels ({}), OpenMP threads", v->major, v->minor, v->patch,
                                    isa.name, vector_level_name(isa.level));
  return library;
}

bool cpu_has_bf16_gemm() { return onednn_isa(dnnl_get_effective_cpu_isa()).bf16; }

bool cpu_bf16_gemm_on() { return bf16_gemm_scopes.load(std::memory_order_relaxed) > 0; }

void require_cpu_bf16_gemm(const std::string& what) {
  if (cpu_has_bf16_gemm()) return;
  const CpuGemmLibrary library = cpu_gemm_library();
  HEED_CHECK(false,
             "{}: bf16 products on the CPU need AVX512_BF16 instructions, and oneDNN's kernels here are {} (this "
             "CPU: {}); without them oneDNN would emulate bf16, slower than fp32. Use fp32",
             what, library.kernel_name, vector_level_name(library.cpu));
}

CpuBf16GemmScope::CpuBf16GemmScope(const std::string& what) {
  require_cpu_bf16_gemm(what);
  bf16_gemm_scopes.fetch_add(1, std::memory_order_relaxed);
}

CpuBf16GemmScope::~CpuBf16GemmScope() { bf16_gemm_scopes.fetch_sub(1, std::memory_order_relaxed); }

}  // namespace heed::ops
