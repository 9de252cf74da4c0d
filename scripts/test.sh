#!/usr/bin/env bash
# The README's test command: installs everything, builds, and runs the whole test suite with CTest, then
# the simulated kernels under ThreadSanitizer (scripts/test-tsan.sh, a separate clang build).
# Extra arguments go to CMake (CI passes -DHEED_CUDA=ON so that every CUDA source is compiled).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/setup-python.sh
bash scripts/build.sh "$@"
(cd build && ctest --output-on-failure -j 2)
bash scripts/test-tsan.sh
