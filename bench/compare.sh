#!/usr/bin/env bash
# Heed and PyTorch training steps side by side, in one run, alternating, with medians over rounds.
#
#   bash bench/compare.sh [ROUNDS] [THREADS]      (defaults: 3 rounds, 2 threads)
#
# PyTorch runs in its best setup here: Debian's python3-torch with jemalloc preloaded. The machine is
# noisy, so each round runs both programs on both configs, and the table reports the medians.
#
# Both programs use the same OpenBLAS, on the kernels it picks for this CPU: the script unsets
# OPENBLAS_CORETYPE, which the development environment sets to Haswell (AVX2 kernels, about half of
# sgemm's speed on an AVX-512 CPU; tests and CI keep it). HEED_BENCH_KEEP_CORETYPE=1 keeps it.
set -euo pipefail
[ "${HEED_BENCH_KEEP_CORETYPE:-0}" = 1 ] || unset OPENBLAS_CORETYPE
cd "$(dirname "$0")/.."
rounds=${1:-3}
threads=${2:-2}
bench=build/bench/bench_train_step
[ -x "$bench" ] || { echo "build first: bash scripts/build.sh" >&2; exit 1; }
bash scripts/apt-install.sh compare libjemalloc2
jemalloc=$(ls /usr/lib/*/libjemalloc.so.2 | head -n 1)
python=/usr/bin/python3
[ -x .venv/bin/python ] && python=.venv/bin/python

log=$(mktemp)
for ((r = 1; r <= rounds; r++)); do
  "$bench" all --threads "$threads" | tee -a "$log"
  LD_PRELOAD="$jemalloc" "$python" bench/pytorch_train_step.py all --threads "$threads" | tee -a "$log"
done

echo
echo "medians over $rounds rounds, $threads threads, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
  "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}:"
"$python" - "$log" <<'PY'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    m = re.match(r"(heed|torch)\s+(\w+) .* ([\d.]+) tgt tok/s\s+([\d.]+) GFLOP/s\s+(\d+)% of sgemm\s+peak RSS (\d+)", line)
    if m:
        rows.setdefault((m[1], m[2]), []).append((float(m[3]), float(m[4]), float(m[5]), float(m[6])))
print(f"{'':6} {'config':6} {'tgt tok/s':>10} {'GFLOP/s':>8} {'% sgemm':>8} {'RSS MiB':>8}")
for (prog, cfg), v in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    med = [statistics.median(x[i] for x in v) for i in range(4)]
    print(f"{prog:6} {cfg:6} {med[0]:10.0f} {med[1]:8.1f} {med[2]:8.0f} {med[3]:8.0f}")
for cfg in sorted({c for _, c in rows}):
    if ("heed", cfg) in rows and ("torch", cfg) in rows:
        h = statistics.median(x[0] for x in rows[("heed", cfg)])
        t = statistics.median(x[0] for x in rows[("torch", cfg)])
        print(f"{cfg}: heed / torch tokens/s = {h / t:.2f}x")
PY
