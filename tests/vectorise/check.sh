#!/usr/bin/env bash
# Fails unless every probe_* function of the probe object (probe.cc) holds packed single-precision
# multiplies (mulps, on xmm, ymm or zmm registers): a loop left scalar has only mulss.
#   check.sh OBJECT
set -euo pipefail
object=$1
status=0
for probe in probe_exp_sum probe_exp_store probe_gelu; do
  body=$(objdump -d --no-show-raw-insn "$object" | awk -v name="$probe" '
    /^[0-9a-f]+ <.*>:$/ { inside = index($2, "<_Z" length(name) name) == 1 }
    inside')
  if [ -z "$body" ]; then
    echo "FAILED: $probe is not in $object" >&2
    status=1
  elif ! grep -q 'mulps' <<<"$body"; then
    echo "FAILED: $probe is scalar: the loops over exp_approx and normal_cdf no longer vectorise" >&2
    status=1
  else
    echo "$probe: vectorised ($(grep -c 'ps ' <<<"$body") packed instructions)"
  fi
done
exit $status
