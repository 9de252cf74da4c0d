"""GFLOP/s of the CPU GEMM libraries Heed could use, side by side in one run, on a training step's shapes.

    .venv-hf5/bin/python bench/gemm_libraries.py [THREADS]      (default 2)

Each library runs in a process of its own (their OpenMP runtimes and thread pools stay apart), on the same
row-major fp32 operands:
- oneDNN's dnnl_sgemm, which Heed's CPU products call (Debian's libdnnl2), and its bf16 x bf16 -> fp32 GEMM
  (dnnl_gemm_bf16bf16f32, exported but in no public header), the candidate for a CPU bf16 path;
- Debian's OpenBLAS (the OpenMP build), which Heed used before, where it is installed;
- PyTorch's torch.mm in fp32 (MKL, linked into the wheel) and in bf16 (oneDNN): the yardstick of issue 17.
Each figure is the median of 12 timed calls after one warm-up. docs/cpu.md gives the results and the choice.
"""
import ctypes
import os
import subprocess
import sys
import time

SHAPES = [  # M, N, K, op(A), op(B): a square product, then a base layer's feed-forward GEMMs forward and backward
    (1024, 1024, 1024, "N", "N"),
    (4096, 2048, 512, "N", "T"),
    (4096, 512, 2048, "N", "N"),
    (512, 2048, 4096, "T", "N"),
]
ONEDNN = "/usr/lib/x86_64-linux-gnu/libdnnl.so.2"
OPENBLAS = "/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0"


def gflops(call, flops, reps=12):
    call()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return flops / sorted(times)[reps // 2] / 1e9


def operands(m, n, k, ta, tb):
    import numpy as np
    rng = np.random.default_rng(0)
    a = rng.standard_normal((k, m) if ta == "T" else (m, k), dtype=np.float32)
    b = rng.standard_normal((n, k) if tb == "T" else (k, n), dtype=np.float32)
    return a, b, np.zeros((m, n), dtype=np.float32)


def run_library(name, threads):
    import numpy as np
    P, I = ctypes.c_void_p, ctypes.c_int64
    for m, n, k, ta, tb in SHAPES:
        a, b, c = operands(m, n, k, ta, tb)
        shape, flops = f"{m}x{n}x{k} {ta}{tb}", 2.0 * m * n * k
        if name == "onednn":
            lib = ctypes.CDLL(ONEDNN)
            for fn in (lib.dnnl_sgemm, lib.dnnl_gemm_bf16bf16f32):
                fn.argtypes = [ctypes.c_char, ctypes.c_char, I, I, I, ctypes.c_float, P, I, P, I, ctypes.c_float, P, I]
                fn.restype = ctypes.c_int  # dnnl_status_t
            # bf16 operands: the upper halves of the fp32 values (rounding does not matter for timing).
            ab, bb = (a.view(np.uint32) >> 16).astype(np.uint16), (b.view(np.uint32) >> 16).astype(np.uint16)
            for label, fn, x, y in (("oneDNN sgemm", lib.dnnl_sgemm, a, b),
                                    ("oneDNN bf16 gemm", lib.dnnl_gemm_bf16bf16f32, ab, bb)):
                call = lambda: fn(ta.encode(), tb.encode(), m, n, k, 1.0, x.ctypes.data, a.shape[1], y.ctypes.data,
                                  b.shape[1], 0.0, c.ctypes.data, n)
                # Below AVX512_BF16 the bf16 GEMM returns dnnl_unimplemented at once and leaves C as it was.
                status = call()
                result = f"{gflops(call, flops):7.0f}" if status == 0 else f"not run: oneDNN status {status} on this CPU"
                print(f"{label:22} {shape:20} {result}", flush=True)
        elif name == "openblas":
            lib = ctypes.CDLL(OPENBLAS)
            lib.cblas_sgemm.argtypes = [ctypes.c_int] * 6 + [ctypes.c_float, P, ctypes.c_int, P, ctypes.c_int,
                                                             ctypes.c_float, P, ctypes.c_int]
            trans = {"N": 111, "T": 112}
            call = lambda: lib.cblas_sgemm(101, trans[ta], trans[tb], m, n, k, 1.0, a.ctypes.data, a.shape[1],
                                           b.ctypes.data, b.shape[1], 0.0, c.ctypes.data, n)
            print(f"{'OpenBLAS sgemm':22} {shape:20} {gflops(call, flops):7.0f}", flush=True)
        else:
            import torch
            torch.set_num_threads(threads)
            x, y = torch.from_numpy(a), torch.from_numpy(b)
            x, y = (x.t() if ta == "T" else x), (y.t() if tb == "T" else y)
            out = torch.from_numpy(c)
            print(f"{'torch mm fp32 (MKL)':22} {shape:20} {gflops(lambda: torch.mm(x, y, out=out), flops):7.0f}")
            xb, yb = x.bfloat16(), y.bfloat16()
            print(f"{'torch mm bf16 (oneDNN)':22} {shape:20} {gflops(lambda: torch.mm(xb, yb), flops):7.0f}",
                  flush=True)


def main():
    if len(sys.argv) > 2:  # a child: one library
        run_library(sys.argv[2], int(sys.argv[1]))
        return
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    env.pop("OPENBLAS_CORETYPE", None)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"GFLOP/s, {threads} threads, {cpu}")
    for name, path in (("onednn", ONEDNN), ("openblas", OPENBLAS), ("torch", None)):
        if path and not os.path.exists(path):
            print(f"{name}: not installed ({path})")
            continue
        subprocess.run([sys.executable, __file__, str(threads), name], env=env, check=True)


if __name__ == "__main__":
    main()
