#!/usr/bin/env bash
# The mid-size corpus of issue 15 for bench/prepare_speed.py: the Bible training set repeated 100 times,
# 2,893,700 pairs (about 375 MB + 366 MB of text), with the Bible's validation set.
# Usage: scripts/make-bible-100x.sh [BIBLE_DIR [OUT_DIR]]
#   (defaults: data/bible-en-es, built by scripts/make-bible-corpus.sh, and data/bible-en-es-100x)
# Written to temporary files and renamed, so an interrupted run leaves no corpus that looks complete.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bible="$(realpath -m "${1:-$script_dir/../data/bible-en-es}")"
out="$(realpath -m "${2:-$script_dir/../data/bible-en-es-100x}")"
copies=100

for f in train.en train.es valid.en valid.es; do
  [[ -s "$bible/$f" ]] || { echo "error: $bible/$f is missing: run scripts/make-bible-corpus.sh first" >&2; exit 1; }
done
mkdir -p "$out"
for side in en es; do
  if [[ -s "$out/train.$side" ]] &&
     (( $(wc -l < "$out/train.$side") == copies * $(wc -l < "$bible/train.$side") )); then
    continue
  fi
  tmp="$out/.train.$side.tmp.$$"
  for ((i = 0; i < copies; i++)); do cat "$bible/train.$side"; done > "$tmp"
  mv "$tmp" "$out/train.$side"
done
cp "$bible/valid.en" "$bible/valid.es" "$out/"
echo "$out: $(wc -l < "$out/train.en") training pairs ($(du -h "$out/train.en" | cut -f1) + $(du -h "$out/train.es" | cut -f1))"
