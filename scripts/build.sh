#!/usr/bin/env bash
# Configures and builds Heed in build/ (Release). Extra arguments go to CMake, e.g. -DHEED_CUDA=ON.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j "$(nproc)"
