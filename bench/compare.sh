#!/usr/bin/env bash
# Heed and PyTorch 2.x training steps side by side, in one run, alternating, with medians over rounds.
#
#   bash bench/compare.sh [ROUNDS] [THREADS]      (defaults: 3 rounds, 2 threads)
#
# PyTorch is 2.x from PyPI, pinned, in the venv that scripts/setup-python.sh makes (.venv-hf5), with its
# own MKL and oneDNN and jemalloc preloaded, in each of its CPU setups: eager, torch.compile and bf16
# autocast (bench/pytorch_train_step.py --mode). Heed runs in fp32 and with bf16 matrix products (heed-bf16;
# --precision bf16); the bf16 runs of both are left out on a CPU without AVX512_BF16. The table gives each,
# and each config's ratios: Heed's best to PyTorch's best setup, and Heed's fp32 to PyTorch's best fp32
# setup. The machine is noisy, so each round runs every program on both configs, and the table reports the
# medians.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
threads=${2:-2}
bench=build/bench/bench_train_step
[ -x "$bench" ] || { echo "build first: bash scripts/build.sh" >&2; exit 1; }
python=.venv-hf5/bin/python
[ -x "$python" ] || { echo "PyTorch 2.x is missing: bash scripts/setup-python.sh" >&2; exit 1; }
bash scripts/apt-install.sh compare libjemalloc2
jemalloc=$(ls /usr/lib/*/libjemalloc.so.2 | head -n 1)
modes=(eager compile bf16)
# Without AVX512_BF16, PyTorch's bf16 autocast emulates bf16 (58 tok/s on small on an AVX2 AMD EPYC, 17 s
# a step) and Heed refuses it: neither is anyone's best setup there, so both are left out.
source scripts/cpu-features.sh
bf16_cpu=$(cpu_has_bf16 && echo yes || echo no)
if [ "$bf16_cpu" = no ]; then
  modes=(eager compile)
  echo "this CPU has no AVX512_BF16: Heed and PyTorch run fp32 only"
fi

log=$(mktemp)
for ((r = 1; r <= rounds; r++)); do
  "$bench" all --threads "$threads" | tee -a "$log"
  [ "$bf16_cpu" = no ] || "$bench" all --threads "$threads" --precision bf16 | tee -a "$log"
  for mode in "${modes[@]}"; do
    LD_PRELOAD="$jemalloc" "$python" bench/pytorch_train_step.py all --threads "$threads" --mode "$mode" | tee -a "$log"
  done
done

echo
echo "medians over $rounds rounds, $threads threads, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs):"
"$python" - "$log" <<'PY'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    m = re.match(r"(heed(?:-bf16)?|torch-\w+)\s+(\w+) .* ([\d.]+) tgt tok/s\s+([\d.]+) GFLOP/s\s+(\d+)% of \w+\s+peak RSS (\d+)", line)
    if m:
        rows.setdefault((m[1], m[2]), []).append((float(m[3]), float(m[4]), float(m[5]), float(m[6])))
# "% GEMM": of the 1024^3 product in the row's own precision (sgemm, or the bf16 GEMM for the bf16 rows).
print(f"{'':14} {'config':6} {'tgt tok/s':>10} {'GFLOP/s':>8} {'% GEMM':>8} {'RSS MiB':>8}")
for (prog, cfg), v in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    med = [statistics.median(x[i] for x in v) for i in range(4)]
    print(f"{prog:14} {cfg:6} {med[0]:10.0f} {med[1]:8.1f} {med[2]:8.0f} {med[3]:8.0f}")
tokens = {key: statistics.median(x[0] for x in v) for key, v in rows.items()}
for cfg in sorted({c for _, c in rows}):
    torch_modes = {p: t for (p, c), t in tokens.items() if c == cfg and p.startswith("torch-")}
    fp32_modes = {p: t for p, t in torch_modes.items() if p != "torch-bf16"}
    heed_modes = {p: t for (p, c), t in tokens.items() if c == cfg and p.startswith("heed")}
    if "heed" not in heed_modes or not fp32_modes:
        continue
    best, best_fp32 = max(torch_modes, key=torch_modes.get), max(fp32_modes, key=fp32_modes.get)
    heed_best = max(heed_modes, key=heed_modes.get)
    print(f"{cfg}: {heed_best} / {best} (the best of each) = {heed_modes[heed_best] / torch_modes[best]:.2f}x, "
          f"heed / {best_fp32} (fp32) = {heed_modes['heed'] / fp32_modes[best_fp32]:.2f}x")
PY
