#!/usr/bin/env bash
# The README's test command: installs everything, builds, and runs the whole test suite with CTest, then
# the simulated kernels under ThreadSanitizer (scripts/test-tsan.sh, a separate clang build). A test that
# skipped fails the run, unless it is a GPU test on a machine without a GPU, or the CPU's bf16 GEMM test
# on a CPU without AVX512_BF16.
# Extra arguments go to CMake (CI passes -DHEED_CUDA=ON so that every CUDA source is compiled).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/setup-python.sh
bash scripts/build.sh "$@"
log=build/ctest.log
(cd build && ctest --output-on-failure -j 2) 2>&1 | tee "$log"
# A skip is not a pass: every test must have run, except the `gpu`-labelled ones on a machine without a GPU
# (HEED_REQUIRE_GPU=1 turns those into failures on a machine that should have one: tests/kernel_testing.h)
# and the `cpu-bf16` ones on a CPU without AVX512_BF16.
allowed=' - gpu:'
source scripts/cpu-features.sh
cpu_has_bf16 || allowed="$allowed\| - cpu-bf16:"
skipped=$(sed -n '/The following tests did not run:/,$p' "$log" | grep '(Skipped)' | grep -v "$allowed" || true)
if [ -n "$skipped" ]; then
  echo "test.sh: FAILED: these tests were skipped, so they proved nothing:" >&2
  echo "$skipped" >&2
  exit 1
fi
bash scripts/test-tsan.sh
