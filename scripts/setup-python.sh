#!/usr/bin/env bash
# Prepares the two Pythons that the parity tests run against (CTest's HEED_PYTHON and HEED_PYTHON_HF5).
#
# .venv: PyTorch comes from Debian (python3-torch 1.13, CPU) rather than PyPI: it is already on the
# machine, it is small, and a venv with --system-site-packages sees it. Everything pip adds is pinned, to
# versions whose code runs on torch 1.13 (transformers 4.44.2 leaves torch unpinned and its MarianMT runs
# on 1.13, as the parity tests show), so every machine compares Heed with the same references.
#
# .venv-hf5: a current transformers 5.x, so that import-hf meets what today's save_pretrained writes. It
# needs torch >= 2.6, which Debian lacks, so torch comes from PyPI, in a venv of its own. PyPI's Linux
# torch is a CUDA build that links the CUDA libraries (cuDNN, cuBLAS, NCCL, ...) and cannot be imported
# without them, even on a machine without a GPU, so those wheels are installed too (3 GB; torch itself
# is 1.2 GB). Its compiler, triton (1 GB), is needed only by torch.compile and is left out: torch is
# installed without dependencies, then its requirements less triton and cuda-bindings, as listed in
# torch 2.15.0's metadata (pip warns that they are missing). In all about 4.5 GB and five minutes; the
# tests then run offline.
#
# Each venv has a stamp file that records its pins. The import check runs every time (seconds); when the
# stamp differs or the check fails, the venv is built afresh, so a broken venv cannot go unnoticed.
set -euo pipefail
cd "$(dirname "$0")/.."

debian_pins=(
  transformers==4.44.2
  tokenizers==0.19.1
  huggingface-hub==0.24.7
  safetensors==0.4.5
  sacrebleu==2.4.3
  sentencepiece==0.2.0  # MarianTokenizer (test_export_ctranslate2.py)
  ctranslate2==4.6.2    # the last whose converter runs on transformers 4.44 (4.6.3 passes dtype=)
)
debian_check="import torch, transformers, safetensors, sacrebleu, yaml, sentencepiece, ctranslate2
from transformers import MarianMTModel, MarianConfig
print(f'setup-python: .venv: torch {torch.__version__}, transformers {transformers.__version__}, '
      f'safetensors {safetensors.__version__}, sacrebleu {sacrebleu.__version__}')"

hf5_torch=torch==2.15.0
hf5_torch_requirements=(
  filelock 'typing-extensions>=4.13.0' 'setuptools>=77.0.3' 'sympy>=1.13.3' 'networkx>=2.5.1' jinja2 'fsspec>=0.8.5'
  'cuda-toolkit[cublas,cudart,cufft,cufile,cupti,cusolver,cusparse,nvjitlink,nvrtc,nvtx]==13.2.2'
  nvidia-cudnn-cu13==9.26.0.51
  nvidia-cusparselt-cu13==0.8.1
  nvidia-nccl-cu13==2.30.7
  nvidia-nvshmem-cu13==3.7.2
)
hf5_pins=(
  transformers==5.25.0
  tokenizers==0.23.3
  huggingface-hub==2.4.0
  safetensors==0.8.0
  numpy==2.4.6
  pyyaml==6.0.4
  sentencepiece==0.2.0  # MarianTokenizer (test_export_ctranslate2.py)
  ctranslate2==4.8.5    # the newest; its converter passes dtype=, which transformers 5 takes
)
hf5_check="import torch, transformers, safetensors, yaml, sentencepiece, ctranslate2
from transformers import MarianMTModel, MarianConfig
print(f'setup-python: .venv-hf5: torch {torch.__version__}, transformers {transformers.__version__}, '
      f'safetensors {safetensors.__version__}')"

pip_install() {
  "$1/bin/python" -m pip install --quiet --disable-pip-version-check "${@:2}"
}

install_debian() {
  /usr/bin/python3 -m venv --system-site-packages "$1"
  pip_install "$1" "${debian_pins[@]}"
}

install_hf5() {
  /usr/bin/python3 -m venv "$1"
  pip_install "$1" --no-deps "$hf5_torch"
  pip_install "$1" "${hf5_torch_requirements[@]}" "${hf5_pins[@]}"
}

# prepare VENV PINS CHECK INSTALL: runs CHECK (Python code) in VENV; unless VENV was built with PINS and
# CHECK passes, builds it afresh with the function INSTALL, checks it again and stamps it.
prepare() {
  local venv=$1 pins=$2 check=$3 install=$4
  local stamp="$venv/.heed-pins"
  if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$pins" ]; then
    if "$venv/bin/python" -c "$check"; then
      return
    fi
    echo "setup-python: $venv fails its import check; rebuilding it"
  fi
  echo "setup-python: preparing $venv ($pins)"
  rm -rf "$venv"
  "$install" "$venv"
  "$venv/bin/python" -c "$check"
  echo "$pins" >"$stamp"
}

bash scripts/apt-install.sh setup-python python3-venv python3-torch python3-numpy python3-yaml
prepare .venv "${debian_pins[*]}" "$debian_check" install_debian
prepare .venv-hf5 "$hf5_torch ${hf5_torch_requirements[*]} ${hf5_pins[*]}" "$hf5_check" install_hf5
