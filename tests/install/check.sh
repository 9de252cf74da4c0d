#!/usr/bin/env bash
# Installs the build in BUILD_DIR into a temporary prefix, then configures, builds and runs a program
# outside Heed against it (tests/install): the installed headers must compile with only
# the installed headers on the include path, and heed::heed must link.
#   check.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
mkdir -p "$work/build"
headers=$(cd "$work/prefix/include" && find heed -name '*.h' | sort)
[ -n "$headers" ] || { echo "install check: no headers under $work/prefix/include/heed" >&2; exit 1; }
for header in $headers; do echo "#include \"$header\""; done >"$work/build/every_header.cc"
compiler=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt")
cmake -S "$here" -B "$work/build" -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_CXX_COMPILER="$compiler" >/dev/null
cmake --build "$work/build" -j 2
"$work/build/heed_consumer"
