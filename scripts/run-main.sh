#!/usr/bin/env bash
# The README's main job, from a fresh Debian 12 machine: install, build, build the Bible corpus, train an
# English->Spanish model on the CPU, translate the test books (Daniel + Mark) and score them.
#
#   bash scripts/run-main.sh [CONFIG]     (default: configs/bible-en-es.yaml, about 30 minutes on 2 cores;
#                                          configs/bible-en-es-quick.yaml takes a few minutes)
# Re-running continues: a finished run is not trained again, an interrupted one resumes, and one stopped
# before its first checkpoint (nothing to resume) starts over.
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-configs/bible-en-es.yaml}
bash scripts/install-deps.sh
bash scripts/build.sh
bash scripts/make-bible-corpus.sh data/bible-en-es

heed=build/heed
# The main config trains with bf16 matrix products, which need AVX512_BF16 (both CPU families the README
# reports have it); a CPU without it trains in fp32, about 1.4 times as long.
settings=()
if ! grep -qw avx512_bf16 /proc/cpuinfo; then
  echo "this CPU has no AVX512_BF16: training in fp32 (training.precision=fp32), which takes longer" >&2
  settings=(--set training.precision=fp32)
fi
run_dir=$("$heed" train "$config" --dump-config | sed -n 's/^run_dir: *//p' | tr -d '"')
start=$(date +%s)
if [ -d "$run_dir/checkpoints" ] && ls "$run_dir"/checkpoints/step-* >/dev/null 2>&1; then
  "$heed" train "$config" --resume "$run_dir" "${settings[@]}"
else
  # heed train refuses a run directory that holds a run; without a step checkpoint there is nothing here to
  # resume or to keep (at most the logs of a few first updates), so this replaces it.
  "$heed" train "$config" --overwrite "${settings[@]}"
fi
echo "training: $(( $(date +%s) - start )) s"

"$heed" translate --model "$run_dir" --input data/bible-en-es/test.en --output "$run_dir/test.hyp.es"
echo "test set (Daniel + Mark), $(wc -l < data/bible-en-es/test.en) verses:"
"$heed" score --hyp "$run_dir/test.hyp.es" --ref data/bible-en-es/test.es | tee "$run_dir/test.score"
"$heed" plot "$run_dir"
