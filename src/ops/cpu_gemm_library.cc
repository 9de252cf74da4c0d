// Which GEMM library and kernels the CPU products run (heed/ops/matmul.h).
#include <fmt/format.h>
#include <oneapi/dnnl/dnnl.h>

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
    case dnnl_cpu_isa_avx512_core_bf16: return {"avx512_core_bf16", VectorLevel::Avx512};
    case dnnl_cpu_isa_avx512_core_amx: return {"avx512_core_amx", VectorLevel::Avx512};
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

}  // namespace heed::ops
