#!/usr/bin/env bash
# Installs Heed's build and run dependencies from Debian 12's packages. Idempotent; needs root (or sudo).
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libopenblas-openmp-dev   # GEMM; the OpenMP build shares Heed's thread pool
  libyaml-cpp-dev nlohmann-json3-dev libcli11-dev libfmt-dev libspdlog-dev
  libsentencepiece-dev     # tokenizer (C++ API)
  catch2                   # v2, for the C++ tests
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "install-deps: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
