# Sourced by the scripts that choose what to run from the CPU's instructions (run-main.sh, test.sh,
# bench/compare.sh). Heed decides the same from oneDNN's view of the CPU (src/ops/cpu_gemm_library.cc).

# Whether the CPU has AVX512_BF16, which Heed's bf16 products need (without it, heed train refuses bf16).
cpu_has_bf16() { grep -qw avx512_bf16 /proc/cpuinfo; }
