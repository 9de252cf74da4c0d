#!/usr/bin/env bash
# The last BLEU points of one training config, side by side on the test set: the last step checkpoint's raw
# weights, its moving average (optimizer.ema_decay), the average of the last N step checkpoints (heed
# average --weights training) and an ensemble of two runs that differ only in their seed. It trains nothing:
# train the two runs first, with EMA on and enough step checkpoints kept, e.g.
#
#   for seed in 1 2; do
#     build/heed train configs/bible-en-es.yaml --set run_dir=runs/tricks-seed$seed --set training.seed=$seed \
#       --set optimizer.ema_decay=0.995 --set checkpoints.every=250 --set checkpoints.keep_last=4
#   done
#   bash bench/translation_tricks.sh runs/tricks-seed1 runs/tricks-seed2 [AVERAGE_N=4]
#
# Prints a Markdown table (sacreBLEU-compatible BLEU and chrF2 of `heed score`) of the test books (Daniel +
# Mark) and leaves every model and translation under RUN/tricks/.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: $0 RUN_DIR_SEED_A RUN_DIR_SEED_B [AVERAGE_N]" >&2; exit 2; }
run_a=$1 run_b=$2 average_n=${3:-4}
heed=build/heed
src=data/bible-en-es/test.en ref=data/bible-en-es/test.es

last_checkpoint() { ls -d "$1"/checkpoints/step-* | sort | tail -n 1; }

# Model directories of one run, made once: the last checkpoint's raw weights (an "average" of one checkpoint
# with --weights training) and the raw average of its last N checkpoints. The last checkpoint itself holds
# the moving average.
prepare_run() {
  local run=$1 out=$1/tricks
  mkdir -p "$out"
  [ -d "$out/last-raw" ] || "$heed" average --weights training --out "$out/last-raw" "$(last_checkpoint "$run")"
  [ -d "$out/average-$average_n" ] ||
    "$heed" average --weights training --last "$average_n" --out "$out/average-$average_n" "$run"
}

# score NAME HYP: one table row
score() {
  "$heed" score --hyp "$2" --ref "$ref" --json |
    python3 -c 'import json, sys; s = json.load(sys.stdin)
print("| %s | %.1f | %.1f |" % (sys.argv[1], s["bleu"]["score"], s["chrf"]["score"]))' "$1"
}

# translate NAME OUT MODEL_DIR...: translates the test set once (kept), then scores it
translate() {
  local name=$1 hyp=$2
  shift 2
  local models=()
  for m in "$@"; do models+=(--model "$m"); done
  [ -s "$hyp" ] || "$heed" translate "${models[@]}" --input "$src" --output "$hyp" 2>/dev/null
  score "$name" "$hyp"
}

prepare_run "$run_a"
prepare_run "$run_b"
echo "| $(wc -l < "$src") test verses, beam 4 | BLEU | chrF2 |"
echo "| --- | ---: | ---: |"
for run in "$run_a" "$run_b"; do
  seed=$(sed -n 's/^ *seed: *//p' "$run/config.yaml" | head -n 1)
  decay=$(sed -n 's/^ *ema_decay: *//p' "$run/config.yaml" | head -n 1)
  translate "seed $seed: last checkpoint, raw weights" "$run/tricks/last-raw.hyp" "$run/tricks/last-raw"
  translate "seed $seed: last checkpoint, EMA (decay $decay)" "$run/tricks/ema.hyp" "$(last_checkpoint "$run")"
  translate "seed $seed: average of the last $average_n checkpoints (raw weights)" \
    "$run/tricks/average-$average_n.hyp" "$run/tricks/average-$average_n"
done
translate "ensemble of both seeds' last checkpoints, raw weights" "$run_a/tricks/ensemble-raw.hyp" \
  "$run_a/tricks/last-raw" "$run_b/tricks/last-raw"
translate "ensemble of both seeds' EMA" "$run_a/tricks/ensemble-ema.hyp" \
  "$(last_checkpoint "$run_a")" "$(last_checkpoint "$run_b")"
translate "ensemble of both seeds' averages of $average_n" "$run_a/tricks/ensemble-average.hyp" \
  "$run_a/tricks/average-$average_n" "$run_b/tricks/average-$average_n"
