#!/usr/bin/env bash
# Prepares .venv, the Python that the parity tests run against (CTest's HEED_PYTHON).
#
# PyTorch comes from Debian (python3-torch 1.13, CPU) rather than PyPI: it is already on the machine, it
# is small, and a venv with --system-site-packages sees it. Everything pip adds is pinned, to versions
# whose code runs on torch 1.13 (transformers 4.44.2 leaves torch unpinned and its MarianMT runs on 1.13,
# as the parity tests show), so every machine compares Heed with the same references. A stamp file
# records the pins: when they match, the script does nothing and returns at once.
set -euo pipefail
cd "$(dirname "$0")/.."

pins=(
  transformers==4.44.2
  tokenizers==0.19.1
  huggingface-hub==0.24.7
  safetensors==0.4.5
  sacrebleu==2.4.3
)
venv=.venv
stamp="$venv/.heed-pins"

debs=(python3-venv python3-torch python3-numpy python3-yaml)
bash scripts/apt-install.sh setup-python "${debs[@]}"

if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "${pins[*]}" ]; then
  exit 0
fi

echo "setup-python: preparing $venv (${pins[*]})"
/usr/bin/python3 -m venv --system-site-packages "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}"
"$venv/bin/python" -c "import torch, transformers, safetensors, sacrebleu, yaml
from transformers import MarianMTModel, MarianConfig
print(f'setup-python: torch {torch.__version__}, transformers {transformers.__version__}, '
      f'safetensors {safetensors.__version__}, sacrebleu {sacrebleu.__version__}')"
echo "${pins[*]}" >"$stamp"
