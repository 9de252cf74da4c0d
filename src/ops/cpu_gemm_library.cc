// Which GEMM library and kernels the CPU products run (heed/ops/matmul.h).
#include <cblas.h>
#include <fmt/format.h>

#include <dlfcn.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <map>

#include "heed/ops/matmul.h"

namespace heed::ops {

namespace {

VectorLevel this_cpu_level() {
  __builtin_cpu_init();
  // OpenBLAS's AVX-512 kernels (SkylakeX and later) use the F, BW, DQ and VL subsets.
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    return VectorLevel::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return VectorLevel::Avx2;
  return VectorLevel::BeforeAvx2;
}

const char* threading_name(int parallel) {
  switch (parallel) {
    case 0: return "single-threaded";
    case 1: return "pthreads";
    case 2: return "OpenMP threads";
  }
  return "unknown threading";
}

// "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Cooperlake MAX_THREADS=64" -> "OpenBLAS 0.3.21".
std::string openblas_version(const std::string& config) {
  const size_t second_space = config.find(' ', config.find(' ') + 1);
  return config.substr(0, second_space);
}

std::string& detected_kernels() {  // set by correct_cpu_gemm_kernels, on main's thread before any other
  static std::string name;
  return name;
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

VectorLevel openblas_kernel_level(const std::string& core_name) {
  // OpenBLAS's x86-64 targets (its TargetList.txt) by the newest extensions their sgemm kernels use.
  static const std::map<std::string, VectorLevel> levels = {
      {"skylakex", VectorLevel::Avx512},   {"cooperlake", VectorLevel::Avx512},
      {"sapphirerapids", VectorLevel::Avx512},
      {"haswell", VectorLevel::Avx2},      {"zen", VectorLevel::Avx2},
      {"sandybridge", VectorLevel::BeforeAvx2}, {"bulldozer", VectorLevel::BeforeAvx2},
      {"piledriver", VectorLevel::BeforeAvx2},  {"steamroller", VectorLevel::BeforeAvx2},
      {"excavator", VectorLevel::BeforeAvx2},   {"nehalem", VectorLevel::BeforeAvx2},
      {"dunnington", VectorLevel::BeforeAvx2},  {"penryn", VectorLevel::BeforeAvx2},
      {"core2", VectorLevel::BeforeAvx2},       {"prescott", VectorLevel::BeforeAvx2},
      {"atom", VectorLevel::BeforeAvx2},        {"barcelona", VectorLevel::BeforeAvx2},
      {"opteron", VectorLevel::BeforeAvx2},     {"opteron_sse3", VectorLevel::BeforeAvx2},
      {"bobcat", VectorLevel::BeforeAvx2},      {"nano", VectorLevel::BeforeAvx2},
      {"katmai", VectorLevel::BeforeAvx2},      {"coppermine", VectorLevel::BeforeAvx2},
      {"northwood", VectorLevel::BeforeAvx2},   {"banias", VectorLevel::BeforeAvx2},
      {"athlon", VectorLevel::BeforeAvx2},
  };
  std::string key = core_name;
  std::transform(key.begin(), key.end(), key.begin(), [](unsigned char c) { return std::tolower(c); });
  const auto it = levels.find(key);
  return it == levels.end() ? VectorLevel::Unknown : it->second;
}

CpuGemmLibrary cpu_gemm_library() {
  CpuGemmLibrary library;
  const std::string core = openblas_get_corename();
  library.kernel_name = core;
  library.kernels = openblas_kernel_level(core);
  library.cpu = this_cpu_level();
  library.description = fmt::format("{}, {} kernels ({}), {}", openblas_version(openblas_get_config()), core,
                                    vector_level_name(library.kernels), threading_name(openblas_get_parallel()));
  library.detected = detected_kernels();
  return library;
}

void correct_cpu_gemm_kernels() {
  const CpuGemmLibrary library = cpu_gemm_library();
  if (!library.falls_back() || std::getenv("OPENBLAS_CORETYPE")) return;
  using Hook = void (*)();
  const auto quit = reinterpret_cast<Hook>(dlsym(RTLD_DEFAULT, "gotoblas_dynamic_quit"));
  const auto init = reinterpret_cast<Hook>(dlsym(RTLD_DEFAULT, "gotoblas_dynamic_init"));
  if (!quit || !init) return;
  // gotoblas_dynamic_init reads OPENBLAS_CORETYPE. The variable goes again afterwards, so that other
  // programs started from this one select for themselves.
  ::setenv("OPENBLAS_CORETYPE", library.cpu == VectorLevel::Avx512 ? "SkylakeX" : "Haswell", 1);
  quit();
  init();
  ::unsetenv("OPENBLAS_CORETYPE");
  detected_kernels() = library.kernel_name;
}

}  // namespace heed::ops
