"""The PyTorch side of bench_train_step: the same training steps, timed the same way.

    python bench/pytorch_train_step.py [small|base|all] [--steps N] [--threads T] [--mode eager|compile|bf16]

--mode picks how PyTorch runs the step: eager (the default), torch.compile (its inductor backend, which
generates C++ for the CPU; the warm-up steps absorb the compilation), or bf16 autocast (the GEMMs in
bf16 through oneDNN where the CPU has AVX512_BF16, fp32 master weights). A line names the mode as
torch-MODE.

The model is what a PyTorch user would write for the same architecture: token embeddings scaled by
sqrt(d) plus sinusoidal positions, torch.nn.Transformer (post-norm, ReLU, dropout 0.1, batch_first),
a tied output projection, label-smoothed cross-entropy and Adam. Token ids come from a fixed seed; every
sentence is full length. FLOPs are counted with the same formula as bench/bench_train_step.cc, and sgemm
is measured in the same process with a 1024^3 torch.mm.
"""
import argparse
import math
import resource
import statistics
import time

import torch
import torch.nn as nn

CONFIGS = {
    # name: (d_model, heads, ffn, layers, vocab, batch, src_len, tgt_len)
    "small": (256, 4, 1024, 3, 8000, 32, 32, 32),
    "base": (512, 8, 2048, 6, 8000, 16, 32, 32),
}


class Seq2Seq(nn.Module):
    def __init__(self, d, heads, ffn, layers, vocab):
        super().__init__()
        self.d = d
        self.embed = nn.Embedding(vocab, d, padding_idx=0)
        self.transformer = nn.Transformer(d, heads, layers, layers, ffn, dropout=0.1, batch_first=True)
        pos = torch.arange(512, dtype=torch.float64)[:, None]
        freq = torch.pow(10000.0, -2.0 * torch.arange(d // 2, dtype=torch.float64) / d)
        self.register_buffer("positions", torch.cat([torch.sin(pos * freq), torch.cos(pos * freq)], 1).float())
        self.dropout = nn.Dropout(0.1)

    def embed_tokens(self, ids):
        return self.dropout(self.embed(ids) * math.sqrt(self.d) + self.positions[: ids.shape[1]])

    def forward(self, src, tgt_in):
        causal = self.transformer.generate_square_subsequent_mask(tgt_in.shape[1])
        h = self.transformer(self.embed_tokens(src), self.embed_tokens(tgt_in), tgt_mask=causal)
        return h @ self.embed.weight.t()


def step_flops(d, ffn, layers, vocab, batch, src_len, tgt_len):
    S, T = batch * src_len, batch * tgt_len
    enc = S * (4 * 2 * d * d + 2 * 2 * d * ffn + 2 * 2 * src_len * d)
    dec = T * (4 * 2 * d * d + 2 * 2 * d * ffn + 2 * 2 * tgt_len * d) + T * 2 * 2 * d * d + S * 2 * 2 * d * d \
        + T * 2 * 2 * src_len * d
    return 3 * (layers * enc + layers * dec + T * 2 * d * vocab)


def sgemm_gflops():
    a, b = torch.full((1024, 1024), 0.5), torch.full((1024, 1024), 0.25)
    torch.mm(a, b)
    best = 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * 1024**3 / (time.perf_counter() - t0) / 1e9)
    return best


def run(name, steps, sgemm, mode):
    d, heads, ffn, layers, vocab, batch, src_len, tgt_len = CONFIGS[name]
    torch.manual_seed(1)
    model = Seq2Seq(d, heads, ffn, layers, vocab).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    forward = torch.compile(model) if mode == "compile" else model
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16")
    loss_fn = nn.CrossEntropyLoss(ignore_index=0, label_smoothing=0.0)
    g = torch.Generator().manual_seed(1234)
    src = torch.randint(3, vocab, (batch, src_len), generator=g)
    tgt_in = torch.randint(3, vocab, (batch, tgt_len), generator=g)
    tgt_out = torch.randint(3, vocab, (batch, tgt_len), generator=g)
    times = []
    for s in range(steps + 2):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with autocast:
            logits = forward(src, tgt_in)
            loss = loss_fn(logits.reshape(-1, vocab), tgt_out.reshape(-1))
        loss.backward()
        opt.step()
        if s >= 2:
            times.append(time.perf_counter() - t0)
    t = statistics.median(times)
    gflops = step_flops(d, ffn, layers, vocab, batch, src_len, tgt_len) / t / 1e9
    params = sum(p.numel() for p in model.parameters()) / 1e6
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"torch-{mode} {name:<6} threads={torch.get_num_threads()} params={params:.1f}M step={t * 1e3:.1f} ms  "
          f"{batch * tgt_len / t:.0f} tgt tok/s  {gflops:.1f} GFLOP/s  {100 * gflops / sgemm:.0f}% of sgemm  "
          f"peak RSS {rss:.0f} MiB", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("which", nargs="?", default="all", choices=["all", *CONFIGS])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--mode", default="eager", choices=["eager", "compile", "bf16"])
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sgemm = sgemm_gflops()
    print(f"sgemm 1024^3: {sgemm:.1f} GFLOP/s with {torch.get_num_threads()} threads (torch {torch.__version__})")
    for name in CONFIGS:
        if args.which in ("all", name):
            run(name, args.steps, sgemm, args.mode)


if __name__ == "__main__":
    main()
