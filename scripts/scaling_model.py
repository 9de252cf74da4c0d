#!/usr/bin/env python3
"""The step-time model of docs/scaling.md: data-parallel training of the base and big Transformer on N GPUs.

    python3 scripts/scaling_model.py [--tflops 400] [--tokens 8192] [--nvlink 360] [--ib 45]

step(N) = compute + exposed communication, where
  compute = 6 * (encoder + decoder + output-layer parameters) * tokens / throughput   (forward + backward)
  allreduce(N) = alpha * 2(N-1) + 2(N-1)/N * gradient bytes / beta   (ring; beta = bus bandwidth per GPU:
                 NVLink within a node of 8, InfiniBand once the ring leaves it)
  exposed = max(last bucket, allreduce - 2/3 * compute)   (buckets overlap the backward pass, which is two
                 thirds of the compute; the last bucket always waits); with update_freq k the compute of k
                 batches shares one all-reduce, which overlaps only the last batch's backward
efficiency(N) = compute / step(N). Every input is an assumption printed with the table; none is measured.
"""
import argparse

MODELS = {  # d_model, ffn, layers (encoder = decoder), vocabulary (shared, tied)
    "base": (512, 2048, 6, 32000),
    "big": (1024, 4096, 6, 32000),
}


def parameters(d, ffn, layers, vocab):
    encoder = layers * (4 * d * d + 2 * d * ffn)
    decoder = layers * (8 * d * d + 2 * d * ffn)
    return encoder, decoder, d * vocab


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tflops", type=float, default=400, help="achieved bf16 TFLOP/s per GPU for the whole step")
    p.add_argument("--tokens", type=int, default=8192, help="target tokens per GPU per step (source about the same)")
    p.add_argument("--nvlink", type=float, default=360, help="all-reduce bus bandwidth within a node, GB/s")
    p.add_argument("--ib", type=float, default=45, help="all-reduce bus bandwidth across nodes, GB/s per GPU")
    p.add_argument("--alpha-us", type=float, default=5, help="latency per ring step, microseconds")
    p.add_argument("--bucket-mb", type=float, default=25)
    p.add_argument("--update-freq", type=int, default=1, help="batches accumulated per update (one all-reduce)")
    a = p.parse_args()
    print(f"assumptions: {a.tflops:g} TFLOP/s per GPU, {a.tokens} target tokens per GPU, fp32 gradients, "
          f"NVLink {a.nvlink:g} GB/s within 8-GPU nodes, InfiniBand {a.ib:g} GB/s per GPU across them, "
          f"alpha {a.alpha_us:g} us, {a.bucket_mb:g} MB buckets, update_freq {a.update_freq}\n")
    print(f"| model | params | GPUs | compute ms | all-reduce ms | exposed ms | step ms | efficiency |")
    print(f"| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, dims in MODELS.items():
        enc, dec, out = parameters(*dims)
        total = enc + dec + out
        compute = 6 * total * a.tokens * a.update_freq / (a.tflops * 1e12)
        grad_bytes = 4 * total
        for n in (1, 2, 8, 16, 32, 64):
            if n == 1:
                ring, exposed = 0.0, 0.0
            else:
                beta = (a.nvlink if n <= 8 else a.ib) * 1e9
                ring = a.alpha_us * 1e-6 * 2 * (n - 1) + 2 * (n - 1) / n * grad_bytes / beta
                last = ring * min(1.0, a.bucket_mb * 1e6 / grad_bytes)
                exposed = max(last, ring - 2 / 3 * compute / a.update_freq)
            step = compute + exposed
            print(f"| {name} | {total / 1e6:.0f}M | {n} | {compute * 1e3:.1f} | {ring * 1e3:.1f} | {exposed * 1e3:.1f} "
                  f"| {step * 1e3:.1f} | {compute / step:.0%} |")


if __name__ == "__main__":
    main()
