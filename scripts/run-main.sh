#!/usr/bin/env bash
# The README's main job. For now (engine core): install, build, and benchmark whole training steps of
# Heed against PyTorch on this machine's CPU. Translation training replaces this in the next issue.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/setup-python.sh
bash scripts/build.sh
bash bench/compare.sh 3 "$(nproc)"
