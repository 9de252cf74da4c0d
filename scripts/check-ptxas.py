#!/usr/bin/env python3
"""Fails when a CUDA kernel spills registers or asks for too much static shared memory.

Reads the report that nvcc prints with `-Xptxas -v` (on stderr) and checks every function in it:

  * spill stores and spill loads must be 0 bytes: a spill puts registers in local memory, which in a tiled
    kernel's inner loop costs far more than the occupancy a few saved registers buy;
  * static shared memory (`N bytes smem`) must be at most 48 KiB: that is all a kernel may declare
    statically; the rest must come from the dynamic request that kernels/common/launch.h makes (it opts in
    beyond 48 KiB).

Usage (exit status 0 when every function passes, 1 when one fails or the input holds no ptxas report):

  nvcc -std=c++17 -arch=sm_80 -Xptxas -v -I kernels -I include -I src -c kernels/attention_forward.cu \\
      -o /dev/null 2>&1 | python3 scripts/check-ptxas.py
  python3 scripts/check-ptxas.py build.log            # a saved report
  python3 scripts/check-ptxas.py --run nvcc -std=c++17 -arch=sm_90 ... -c kernels/attention_forward.cu -o x.o
      # runs the compiler itself (adding -Xptxas -v if missing) and checks its report

--kernels REGEX restricts the check to functions whose (demangled, when cu++filt is available) name matches.

--resources ARCH prints, instead of checking, the table of src/sim/kernel_resources.inc: for each kernel
(by name, without namespace and template arguments) the most registers and static shared memory of its
instantiations for ARCH (sm_90), from one or more saved reports. The simulator's cost model reads
occupancy from that table; regenerate it when a kernel changes:

  for f in kernels/*.cu; do nvcc -std=c++17 -arch=sm_90 -Xptxas -v -I kernels -I include -I src -I . \\
      -c $f -o /tmp/k.o 2>&1; done > /tmp/ptxas.log
  python3 scripts/check-ptxas.py --resources sm_90 /tmp/ptxas.log > src/sim/kernel_resources.inc
"""
import argparse
import re
import shutil
import subprocess
import sys

MAX_STATIC_SMEM_BYTES = 48 * 1024

ENTRY = re.compile(r"Compiling entry function '([^']+)' for '([^']+)'")
PROPERTIES = re.compile(r"Function properties for (\S+)")
SPILLS = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
USED = re.compile(r"Used (\d+) registers")
SMEM = re.compile(r"(\d+) bytes smem")


class Function:
    def __init__(self, name, arch):
        self.name, self.arch = name, arch
        self.registers = None
        self.stack = self.spill_stores = self.spill_loads = 0
        self.smem = 0


def parse(text):
    """The functions of a ptxas -v report, in order. A function's properties (stack, spills) follow a
    'Function properties for' line; an entry function's 'Used' line (registers, smem) follows its
    'Compiling entry function' line."""
    functions = {}  # (name, arch) -> Function
    arch = "?"
    current = None  # the function the next 'Used' or spill line belongs to
    for line in text.splitlines():
        if m := ENTRY.search(line):
            arch = m.group(2)
            current = functions.setdefault((m.group(1), arch), Function(m.group(1), arch))
        elif m := PROPERTIES.search(line):
            current = functions.setdefault((m.group(1), arch), Function(m.group(1), arch))
        elif (m := SPILLS.search(line)) and current is not None:
            current.stack, current.spill_stores, current.spill_loads = map(int, m.groups())
        elif (m := USED.search(line)) and current is not None:
            current.registers = int(m.group(1))
            if s := SMEM.search(line):
                current.smem = int(s.group(1))
    return list(functions.values())


def demangle(names):
    tool = shutil.which("cu++filt") or shutil.which("/usr/local/cuda/bin/cu++filt") or shutil.which("c++filt")
    if tool is None or not names:
        return {n: n for n in names}
    out = subprocess.run([tool], input="\n".join(names), capture_output=True, text=True).stdout.splitlines()
    return dict(zip(names, out)) if len(out) == len(names) else {n: n for n in names}


def base_name(name):
    """'void heed::kernels::cuda::f<T, 64>(Args)' -> 'f': as kernel_name() in src/sim/counters.cc."""
    for open_, close in (("(", ")"), ("<", ">")):
        if name.endswith(close):
            depth = 0
            for i in range(len(name) - 1, -1, -1):
                depth += 1 if name[i] == close else -1 if name[i] == open_ else 0
                if depth == 0:
                    name = name[:i]
                    break
    return name.split("::")[-1].split(" ")[-1]


def print_resources(functions, names, arch):
    table = {}
    for f in functions:
        if f.arch != arch or f.registers is None:
            continue
        kernel = base_name(names[f.name])
        registers, smem = table.get(kernel, (0, 0))
        table[kernel] = (max(registers, f.registers), max(smem, f.smem))
    print(f"// Registers and static shared memory per kernel for {arch}, the most over each kernel's instantiations,")
    print("// as ptxas reports them (-Xptxas -v). Generated by scripts/check-ptxas.py --resources; do not edit.")
    for kernel in sorted(table):
        registers, smem = table[kernel]
        print(f'{{"{kernel}", {registers}, {smem}}},')


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kernels", help="check only functions whose name matches this regular expression")
    parser.add_argument("--run", nargs=argparse.REMAINDER, help="compile with this command and check its report")
    parser.add_argument("--resources", metavar="ARCH", help="print the kernel resources table for ARCH (sm_90)")
    parser.add_argument("report", nargs="*", help="saved reports (default: standard input)")
    args = parser.parse_args()

    if args.run:
        command = args.run if "-Xptxas" in " ".join(args.run) else args.run + ["-Xptxas", "-v"]
        done = subprocess.run(command, capture_output=True, text=True)
        sys.stdout.write(done.stdout)
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            print(f"check-ptxas: the compiler failed (exit {done.returncode})", file=sys.stderr)
            return 1
        text = done.stdout + done.stderr
    elif args.report:
        text = ""
        for report in args.report:
            with open(report) as f:
                text += f.read()
    else:
        text = sys.stdin.read()

    functions = parse(text)
    names = demangle(sorted({f.name for f in functions}))
    if args.kernels:
        pattern = re.compile(args.kernels)
        functions = [f for f in functions if pattern.search(names[f.name]) or pattern.search(f.name)]
    if not functions:
        print("check-ptxas: no function found in the input; was it compiled with -Xptxas -v?", file=sys.stderr)
        return 1
    if args.resources:
        print_resources(functions, names, args.resources)
        return 0

    failures = []
    for f in functions:
        name = names[f.name]
        registers = f.registers if f.registers is not None else "?"
        print(f"{f.arch}  {registers:>3} registers  {f.smem:>6} B static smem  "
              f"{f.spill_stores}/{f.spill_loads} B spill stores/loads  {name}")
        if f.spill_stores > 0 or f.spill_loads > 0:
            failures.append(f"{name} ({f.arch}) spills: {f.spill_stores} bytes stores, {f.spill_loads} bytes loads")
        if f.smem > MAX_STATIC_SMEM_BYTES:
            failures.append(f"{name} ({f.arch}) declares {f.smem} bytes of static shared memory, over the "
                            f"{MAX_STATIC_SMEM_BYTES} allowed: request the rest dynamically through launch()")
    for failure in failures:
        print(f"check-ptxas: FAILED: {failure}", file=sys.stderr)
    if not failures:
        print(f"check-ptxas: {len(functions)} functions, no spills, static shared memory within 48 KiB")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
