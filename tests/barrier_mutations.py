"""Mutation testing of the kernels' barriers: each __syncthreads and __syncwarp written in kernels/, dropped
one at a time, must make that kernel's simulator tests fail. The simulator drops the barrier itself
(HEED_SIM_DROP_BARRIER=FILE:LINE, src/sim/cuda_sim.h), so no mutant is rebuilt.

  --mode schedules  the tests run under the schedule that lets one warp run ahead, then under the random
                    one; the barrier is shown to be needed when either run fails (CTest runs this).
  --mode tsan       the same with a ThreadSanitizer build of heed_tests, where a race report counts too,
                    even when the results come out right (scripts/test-tsan.sh runs this). The adversarial
                    schedules matter here as well: they land half of the cp.async copies at issue, which
                    is when a prefetch into a buffer that other warps still read races with them.

A barrier whose removal no test notices is a test that is missing (or a barrier that is not needed): the
run fails and names it. Some races cannot show in the simulator's results: a cp.async copy that another
warp issued lands at that warp's own wait, and when no barrier or warp collective stands between its issue
and that wait, no schedule can interleave it with a reader. A barrier against such a race says so on its
line, with the words "only ThreadSanitizer", and the schedules mode leaves it to the tsan mode. Every file of kernels/ that holds a barrier needs an entry in TESTS_OF, so a new
kernel cannot slip past.
"""
import argparse
import os
import re
import subprocess
import sys
import time

# The Catch2 test specs (a comma means "or") whose simulator cases run each file's barriers.
TESTS_OF = {
    "kernels/attention_forward.cu": "[kernel][sim][attention]",
    "kernels/attention_backward.cu": "[kernel][sim][attention]",
    "kernels/log_softmax_top_k.cu": "[kernel][sim][top_k]",
    "kernels/adam.cu": "[kernel][sim][adam]",
    "kernels/reduce.cu": "[sim][elementwise]",
    "kernels/column_sums.h": "[kernel][sim][layer_norm]",
    "kernels/layer_norm.cu": "[kernel][sim][layer_norm]",
    "kernels/common/reductions.h": "[kernel][sim][layer_norm],[kernel][sim][cross_entropy],[sim][softmax],"
                                   "[kernel][sim][top_k]",
}

BARRIER = re.compile(r"\b(__syncthreads|__syncwarp)\s*\(")
TSAN_ONLY = "only ThreadSanitizer"


def barriers(source_dir):
    """(file relative to the source tree, line, text) of every barrier call outside a comment."""
    found = []
    for root, _, files in os.walk(os.path.join(source_dir, "kernels")):
        for name in sorted(files):
            if not name.endswith((".cu", ".h", ".cuh")):
                continue
            path = os.path.join(root, name)
            rel = os.path.relpath(path, source_dir)
            with open(path, encoding="utf-8") as f:
                for number, line in enumerate(f, 1):
                    code = line.split("//", 1)[0]
                    if BARRIER.search(code):
                        found.append((rel, number, line.strip()))
    return sorted(found)


def run_tests(binary, spec, env, timeout):
    started = time.monotonic()
    try:
        out = subprocess.run([binary, spec, "-a"], env=env, capture_output=True, text=True, timeout=timeout,
                             errors="replace")
        return out.returncode, out.stdout + out.stderr, time.monotonic() - started
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout} s", time.monotonic() - started


def caught(binary, spec, site, mode, timeout):
    """(whether dropping the barrier at `site` failed the tests, how)."""
    env = dict(os.environ, HEED_SIM_DROP_BARRIER=site)
    if mode == "tsan":
        env["TSAN_OPTIONS"] = (env.get("TSAN_OPTIONS", "") + " halt_on_error=1").strip()
    for schedule in ("warp-ahead", "random"):
        env["HEED_SIM_SCHEDULE"] = schedule
        code, text, seconds = run_tests(binary, spec, env, timeout)
        if code is None:
            return False, f"{schedule}: {text}"
        if "ThreadSanitizer: data race" in text:
            return True, f"ThreadSanitizer reported a race under {schedule} ({seconds:.0f} s)"
        if code != 0:
            return True, f"failed under {schedule} ({seconds:.0f} s)"
    return False, "the tests passed under warp-ahead and random" + (", with no race report" if mode == "tsan" else "")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tests", required=True, help="the heed_tests binary")
    parser.add_argument("--source-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    parser.add_argument("--mode", choices=("schedules", "tsan"), default="schedules")
    parser.add_argument("--timeout", type=int, default=600, help="seconds for one run of a kernel's tests")
    args = parser.parse_args()

    sites = barriers(args.source_dir)
    passed = failed = 0
    for rel in sorted({rel for rel, _, _ in sites} - TESTS_OF.keys()):
        print(f"FAIL {rel} holds barriers, but TESTS_OF in {__file__} names no tests for it")
        failed += 1
    for rel, line, text in sites:
        if rel not in TESTS_OF:
            continue
        site = f"{rel}:{line}"
        if args.mode == "schedules" and TSAN_ONLY in text:
            print(f"ok   {site} ({text}): left to the tsan mode")
            passed += 1
            continue
        ok, how = caught(args.tests, TESTS_OF[rel], site, args.mode, args.timeout)
        print(f"{'ok  ' if ok else 'FAIL'} {site} dropped ({text}): {how}", flush=True)
        passed, failed = passed + ok, failed + (not ok)
    print(f"barrier mutations: {passed} caught, {failed} not")
    return 1 if failed or not sites else 0


if __name__ == "__main__":
    sys.exit(main())
