#!/usr/bin/env bash
# Installs whichever of the named Debian packages are missing, with apt-get (as root, or through sudo).
# Idempotent and quiet when there is nothing to do. Every script that needs packages goes through it.
#
#   bash scripts/apt-install.sh CALLER PACKAGE...    (CALLER names the script in the one line it prints)
set -euo pipefail
caller=$1
shift
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]})) || exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "$caller: installing ${missing[*]}"
$sudo apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
