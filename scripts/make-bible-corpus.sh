#!/usr/bin/env bash
# Builds the English-Spanish parallel corpus (World English Bible / Reina-Valera 1909, one verse
# pair a line) from Debian's SWORD modules: OUT_DIR/{train,valid,test}.{en,es}.
# Valid = Joshua + Romans, test = Daniel + Mark, train = the other books.
# Usage: scripts/make-bible-corpus.sh [OUT_DIR]   (default: data/bible-en-es in the repo)
#
# Idempotent: the output carries a stamp of the scripts and package versions, written last, so a
# complete, current corpus is left alone and an interrupted build is redone from scratch.
# Parsing and alignment live in bible_corpus.py (Debian's python3, standard library only).
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out_dir="$(realpath -m "${1:-$script_dir/../data/bible-en-es}")"
python=/usr/bin/python3
builder="$script_dir/bible_corpus.py"
files=(train.en train.es valid.en valid.es test.en test.es)

packages=(
  sword-text-web     # World English Bible (engWEB2015eb)
  sword-text-sparv   # Reina-Valera 1909 (spaRV1909eb)
  libsword-utils     # mod2imp: raw OSIS export
  python3            # /usr/bin/python3 for bible_corpus.py
)
bash "$script_dir/apt-install.sh" make-bible-corpus "${packages[@]}"

# What the output depends on: this script, the builder, and the module and tool versions.
stamp="$(cat "${BASH_SOURCE[0]}" "$builder" | sha256sum | cut -d' ' -f1) $(dpkg-query -W \
  -f='${Package}=${Version} ' sword-text-web sword-text-sparv libsword-utils)"
complete=true
for f in "${files[@]}" summary.txt .stamp; do
  [ -f "$out_dir/$f" ] || complete=false
done
if $complete && [ "$(cat "$out_dir/.stamp")" = "$stamp" ]; then
  echo "make-bible-corpus: $out_dir is up to date"
  cat "$out_dir/summary.txt"
  exit 0
fi

mkdir -p "$out_dir"
# A sibling of the output, so that the final moves are renames within one file system.
tmp="$(mktemp -d "$out_dir.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

echo "make-bible-corpus: building $out_dir"
"$python" "$builder" "$tmp" | tee "$tmp/summary.txt"
for split in train valid test; do
  en_lines=$(wc -l <"$tmp/$split.en")
  es_lines=$(wc -l <"$tmp/$split.es")
  if [ "$en_lines" -ne "$es_lines" ] || [ "$en_lines" -eq 0 ]; then
    echo "make-bible-corpus: $split.en has $en_lines lines but $split.es has $es_lines;" \
      "expected the same non-zero count" >&2
    exit 1
  fi
done

rm -f "$out_dir/.stamp"
for f in "${files[@]}" summary.txt; do
  mv -f "$tmp/$f" "$out_dir/$f"
done
echo "$stamp" >"$tmp/.stamp"
mv -f "$tmp/.stamp" "$out_dir/.stamp"
echo "make-bible-corpus: done"
