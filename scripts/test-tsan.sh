#!/usr/bin/env bash
# ThreadSanitizer over the CUDA simulator: every simulated kernel test, built with clang-16 and
# -fsanitize=thread, where each CUDA thread is a TSan fiber whose only happens-before edges are the ones
# CUDA guarantees (src/sim/tsan.h). A missing __syncthreads or a prefetch racing its readers is then
# reported at its source line even when the result happens to come out right. Part of scripts/test.sh.
#
# Three checks: the kernels' tests run without a single report, under every schedule of the simulator;
# the two planted races of tests/test_sim.cc ([deliberate-race]) are reported at their lines, so the
# check is known to bite; and every __syncthreads and __syncwarp of kernels/, dropped in turn by the
# simulator (tests/barrier_mutations.py), makes its kernel's tests fail or ThreadSanitizer report a race.
# Debian 12's default clang 14 lacks _Float16 on x86 (include/heed/core/half.h); clang-16 has it.
# OpenMP, and oneDNN's GEMMs with it, run single-threaded here: their runtimes are not instrumented, and
# the threads under test are the simulator's own.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/apt-install.sh test-tsan clang-16 libclang-rt-16-dev libomp-16-dev llvm-16
CC=clang-16 CXX=clang++-16 cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHEED_CUDA=OFF \
  -DCMAKE_C_FLAGS=-fsanitize=thread -DCMAKE_CXX_FLAGS=-fsanitize=thread \
  -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread >/dev/null
cmake --build build-tsan -j "$(nproc)" --target heed_tests
export OMP_NUM_THREADS=1
export TSAN_OPTIONS="external_symbolizer_path=/usr/lib/llvm-16/bin/llvm-symbolizer"

# Under each schedule: the adversarial ones land half of the cp.async copies at issue, the moment a
# prefetch into a buffer that other warps still read races with them.
for schedule in inorder warp-ahead random; do
  echo "test-tsan: the simulated kernels, under ThreadSanitizer, schedule $schedule"
  HEED_SIM_SCHEDULE=$schedule build-tsan/tests/heed_tests "[sim]~[deliberate-race]"
done

echo "test-tsan: the planted races must be reported at their source lines"
log=build-tsan/deliberate-race.log
status=0
build-tsan/tests/heed_tests "[deliberate-race]" >"$log" 2>&1 || status=$?
for kernel in neighbour_sums_kernel pipelined_sums_kernel; do
  if [ "$status" -ne 66 ] ||
    ! grep -q "SUMMARY: ThreadSanitizer: data race .*tests/sim_kernels/sim_test_kernels.cu:[0-9]*:[0-9]* in .*$kernel" "$log"; then
    echo "test-tsan: FAILED: no ThreadSanitizer report for the race planted in $kernel (exit $status); see $log" >&2
    exit 1
  fi
done
grep "SUMMARY: ThreadSanitizer" "$log"

echo "test-tsan: every barrier of kernels/, dropped in turn, must be reported as a race"
python3 tests/barrier_mutations.py --tests build-tsan/tests/heed_tests --mode tsan
echo "test-tsan: passed"
