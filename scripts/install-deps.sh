#!/usr/bin/env bash
# Installs Heed's build and run dependencies from Debian 12's packages. Idempotent; needs root (or sudo).
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libdnnl-dev              # oneDNN: the CPU's GEMMs, on GNU OpenMP like Heed
  libyaml-cpp-dev nlohmann-json3-dev libcli11-dev libfmt-dev libspdlog-dev
  libsentencepiece-dev     # tokenizer (C++ API)
  libopenmpi-dev openmpi-bin  # data-parallel training on CPUs (mpirun)
  catch2                   # v2, for the C++ tests
  chromium                 # headless, for the test that opens heed translate's attention index.html
)

bash "$(dirname "$0")/apt-install.sh" install-deps "${packages[@]}"
