"""What the command-line tests share: the heed binary, a scratch directory, and checks that print one line
each and count failures, so that one run reports every problem instead of stopping at the first."""
import argparse
import json
import os
import struct
import subprocess
import tempfile


class Checks:
    def __init__(self, heed, tmp):
        self.heed, self.tmp, self.failures = heed, tmp, 0

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def write(self, name, content):
        """Writes text, or anything else as JSON, into the scratch directory; returns the path."""
        with open(self.path(name), "w", encoding="utf-8") as f:
            f.write(content if isinstance(content, str) else json.dumps(content))
        return self.path(name)

    def heed_run(self, *args, stdin=None, env=None):
        """env: variables to set for this run, over the test's own environment."""
        return subprocess.run([self.heed, *args], capture_output=True, text=True, encoding="utf-8", input=stdin,
                              env=None if env is None else {**os.environ, **env})

    def check(self, label, ok, detail=""):
        print(f"{'ok  ' if ok else 'FAIL'} {label}" + ("" if ok else f"\n     {detail}"))
        if not ok:
            self.failures += 1

    def expect_error(self, label, result, *fragments):
        ok = result.returncode != 0 and all(f in result.stderr for f in fragments)
        self.check(f"{label}: {result.stderr.strip().splitlines()[-1:]}", ok,
                   f"expected non-zero exit and {fragments} in stderr:\n{result.stderr}")

    def exit_code(self):
        print(f"{self.failures} check(s) failed" if self.failures else "all checks passed")
        return 1 if self.failures else 0


def read_safetensors(path):
    """(header without __metadata__, data bytes), read by hand from the format's spec."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    header.pop("__metadata__", None)
    return header, data


def run(checks, runner=Checks):
    """The main of a command-line test: parses --heed, runs checks(r) with r a `runner` over a fresh scratch
    directory, and returns the exit code (1 when any check failed)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--heed", required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        r = runner(args.heed, tmp)
        checks(r)
        return r.exit_code()
