#!/usr/bin/env bash
# The one prepared run for a machine with an NVIDIA GPU (written for one H100 and 16 cores, under 10
# minutes): builds Heed with CUDA for that GPU alone, runs the GPU tests, the kernel self-test, the
# attention benchmark against cuDNN and the base training step, trains the quick config for 200 updates on
# the GPU, and writes every figure into OUT_DIR:
#
#   bash scripts/gpu-check.sh OUT_DIR
#
#   OUT_DIR/summary.md        what ran, each step's exit status and time, and the figures below
#   OUT_DIR/<step>.log        each step's whole output
#   OUT_DIR/ctest-gpu.xml     the GPU tests, as JUnit
#   OUT_DIR/quick-cuda/       the quick config's run directory (metrics.jsonl, train.log)
#
# Every step runs under its own time limit and a failing step does not stop the next: one run on a
# borrowed machine should bring back everything it can. The machine may have no network, so nothing is
# installed: the build needs what scripts/install-deps.sh installs, and the Bible corpus
# (data/bible-en-es, from scripts/make-bible-corpus.sh) must come along with the tree. The MFU beside each
# step time is model FLOPs / time / 989 TFLOP/s (the H100 SXM's dense bf16 peak, docs/cuda.md), printed
# next to the simulator's estimate for the same step (bench_train_step --device sim --estimate h100).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
[ $# -eq 1 ] || { echo "usage: $0 OUT_DIR" >&2; exit 2; }
out=$1
mkdir -p "$out"
out=$(cd "$out" && pwd)
export PATH="/usr/local/cuda/bin:$PATH"
build="build-gpu"
summary=$out/summary.md
failures=0

{
  echo "# scripts/gpu-check.sh on $(hostname), $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ', with local changes')"
  echo "- GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -n 1)"
  echo "- CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
  echo
  echo "| step | exit | seconds |"
  echo "| --- | ---: | ---: |"
} > "$summary"

# step NAME SECONDS COMMAND...: runs COMMAND with its output in NAME.log and a row in the summary.
step() {
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS
  echo "== $name: $*"
  timeout --kill-after=10 "$limit" "$@" > "$out/$name.log" 2>&1
  local status=$?
  [ $status -eq 0 ] || failures=$((failures + 1))
  echo "| $name | $status$([ $status -eq 124 ] && echo ' (time limit)') | $((SECONDS - start)) |" >> "$summary"
  tail -n 3 "$out/$name.log"
}

# The GPU's own architecture only (e.g. 90): CI already builds sm_80 and sm_90, and one architecture
# halves the nvcc time of this run.
arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d '.')
step build 200 bash -c "cmake -S . -B $build -DCMAKE_BUILD_TYPE=Release -DHEED_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES=${arch:-90} >/dev/null && cmake --build $build -j $(nproc)"
# The simulator's estimate of the same base step needs only CPUs (minutes of them): it runs beside the GPU
# steps and is waited for at the end.
estimate_start=$SECONDS
timeout --kill-after=10 300 "$build/bench/bench_train_step" base --device sim --estimate h100 --vocab 32000 \
  > "$out/estimate.log" 2>&1 &
estimate_pid=$!
step ctest-gpu 90 ctest --test-dir "$build" -L gpu --output-on-failure --output-junit "$out/ctest-gpu.xml"
step selftest 40 "$build/heed" selftest --device cuda
step attention 60 "$build/bench/bench_attention_gpu" --iters 20 --max-len 4096
# Transformer-base with a 32k vocabulary, as estimated.
step train-step 40 "$build/bench/bench_train_step" base --device cuda --steps 20 --vocab 32000
if [ -s data/bible-en-es/train.en ]; then
  step train-quick 90 "$build/heed" train configs/bible-en-es-quick.yaml --run-dir "$out/quick-cuda" --overwrite \
    --set training.device=cuda --set training.max_steps=200 --set validation.every=200 --set checkpoints.every=200
else
  echo "| train-quick | not run: data/bible-en-es is missing (scripts/make-bible-corpus.sh) | |" >> "$summary"
  failures=$((failures + 1))
fi

wait "$estimate_pid"
estimate_status=$?
[ $estimate_status -eq 0 ] || failures=$((failures + 1))
echo "| estimate (beside the steps above) | $estimate_status | $((SECONDS - estimate_start)) |" >> "$summary"

# The figures, pulled out of the logs.
measured_tflops=$(sed -n 's/.*step=[0-9.]* ms.* \([0-9.]*\) TFLOP\/s .*/\1/p' "$out/train-step.log" | head -n 1)
{
  echo
  echo "## Figures"
  echo
  echo '```'
  grep -E '^heed|GEMM 1024' "$out/train-step.log"
  [ -n "$measured_tflops" ] &&
    awk -v t="$measured_tflops" 'BEGIN { printf "measured MFU, base step: %.1f%% of 989 TFLOP/s\n", 100 * t / 989 }'
  sed -n 's/^step \(.*MFU.*\)/estimated on the H100 model, base step: \1/p' "$out/estimate.log"
  grep -E 'tgt tok/s' "$out/train-quick.log" | tail -n 1
  grep -iE 'BLEU' "$out/train-quick.log" | tail -n 1
  echo '```'
  echo
  echo "Attention (Heed vs cuDNN): attention.log. Kernel self-test: selftest.log. GPU tests: ctest-gpu.log."
} >> "$summary" 2>/dev/null
echo "$failures step(s) failed; summary: $summary"
[ $failures -eq 0 ]
