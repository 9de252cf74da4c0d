"""A plain PyTorch reference for the model of docs/model.md, addressed by Heed's parameter names.

The parity tests compare Heed's loss and gradients with this file, so it is written to be checked by
eye against docs/model.md rather than to be fast: the model is a function of a dict {name: tensor},
every parameter is looked up by the name the contract gives it (no nn.Module renaming, no
nn.Transformer), and each line is one line of the math. Dropout is left out: the parity tests run
with it off. It runs in whatever dtype the parameters have; the tests use float64 so that the
reference's own rounding is negligible next to Heed's fp32.

    cfg = load_config("model.yaml")
    params = load_weights("model.safetensors", cfg, dtype=torch.float64)
    loss, tokens = model_loss(cfg, params, src, tgt_in, tgt_out)
"""
import math

import torch
import torch.nn.functional as F
import yaml

# include/heed/nn/model_config.h, field by field.
DEFAULTS = {
    "vocab_size": 8000,
    "pad_id": 0,
    "eos_id": 2,
    "decoder_start_id": 0,
    "d_model": 256,
    "heads": 4,
    "ffn_dim": 1024,
    "encoder_layers": 3,
    "decoder_layers": 3,
    "norm": "post",
    "activation": "relu",
    "tie_embeddings": "all",
    "final_logits_bias": False,
    "scale_embedding": True,
    "label_smoothing": 0.0,
    "dropout": 0.1,
    "attention_dropout": 0.0,
    "activation_dropout": 0.0,
    "layer_norm_eps": 1e-5,
}


def load_config(path):
    with open(path) as f:
        given = yaml.safe_load(f) or {}
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"{path}: unknown model keys {unknown}")
    cfg = {**DEFAULTS, **given}
    if "decoder_start_id" not in given:
        cfg["decoder_start_id"] = cfg["pad_id"]
    return cfg


def parameter_shapes(cfg):
    """{name: shape} of every parameter, per the table in docs/model.md."""
    V, d, ffn = cfg["vocab_size"], cfg["d_model"], cfg["ffn_dim"]
    shapes = {}
    if cfg["tie_embeddings"] == "all":
        shapes["shared.weight"] = [V, d]
    else:
        shapes["encoder.embed_tokens.weight"] = [V, d]
        shapes["decoder.embed_tokens.weight"] = [V, d]
        if cfg["tie_embeddings"] == "none":
            shapes["lm_head.weight"] = [V, d]
    if cfg["final_logits_bias"]:
        shapes["final_logits_bias"] = [V]

    def attention(prefix):
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            shapes[f"{prefix}.{proj}.weight"] = [d, d]
            shapes[f"{prefix}.{proj}.bias"] = [d]

    def norm(prefix):
        shapes[f"{prefix}.weight"] = [d]
        shapes[f"{prefix}.bias"] = [d]

    def feed_forward(prefix):
        shapes[f"{prefix}.fc1.weight"] = [ffn, d]
        shapes[f"{prefix}.fc1.bias"] = [ffn]
        shapes[f"{prefix}.fc2.weight"] = [d, ffn]
        shapes[f"{prefix}.fc2.bias"] = [d]

    for i in range(cfg["encoder_layers"]):
        p = f"encoder.layers.{i}"
        attention(f"{p}.self_attn")
        norm(f"{p}.self_attn_layer_norm")
        feed_forward(p)
        norm(f"{p}.final_layer_norm")
    for i in range(cfg["decoder_layers"]):
        p = f"decoder.layers.{i}"
        attention(f"{p}.self_attn")
        norm(f"{p}.self_attn_layer_norm")
        attention(f"{p}.encoder_attn")
        norm(f"{p}.encoder_attn_layer_norm")
        feed_forward(p)
        norm(f"{p}.final_layer_norm")
    if cfg["norm"] == "pre":
        norm("encoder.layer_norm")
        norm("decoder.layer_norm")
    return shapes


def load_weights(path, cfg, dtype=torch.float64):
    """Leaf tensors (requires_grad) by name; the names and shapes must be exactly those of the config."""
    from safetensors.torch import load_file

    tensors = load_file(path)
    expected = parameter_shapes(cfg)
    missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or extra:
        raise ValueError(f"{path}: missing parameters {missing}, unexpected parameters {extra}")
    for name, shape in expected.items():
        if list(tensors[name].shape) != shape:
            raise ValueError(f"{path}: {name} has shape {list(tensors[name].shape)}, expected {shape}")
    return {name: tensors[name].to(dtype).requires_grad_() for name in expected}


def sinusoidal_positions(length, d, dtype):
    """HF MarianMT's table: sin in columns [0, d/2), cos in [d/2, d); float64 math rounded to fp32."""
    pos = torch.arange(length, dtype=torch.float64)[:, None]
    j = torch.arange(d // 2, dtype=torch.float64)[None, :]
    angle = pos / torch.pow(10000.0, 2.0 * j / d)
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=1).float().to(dtype)


def embed(cfg, ids, table):
    scale = math.sqrt(cfg["d_model"]) if cfg["scale_embedding"] else 1.0
    # padding_idx: the pad row is read as stored, but receives no gradient.
    x = F.embedding(ids, table, padding_idx=cfg["pad_id"]) * scale
    return x + sinusoidal_positions(ids.shape[1], cfg["d_model"], table.dtype)


def attention(cfg, P, prefix, x_q, x_kv, mask):
    """mask: bool, True where a query may not attend to a key, broadcastable to [B, heads, Lq, Lk]."""
    B, Lq, d = x_q.shape
    Lk, h = x_kv.shape[1], cfg["heads"]
    dh = d // h

    def project(name, x, L):
        y = F.linear(x, P[f"{prefix}.{name}.weight"], P[f"{prefix}.{name}.bias"])
        return y.view(B, L, h, dh).transpose(1, 2)  # [B, h, L, dh]

    q, k, v = project("q_proj", x_q, Lq), project("k_proj", x_kv, Lk), project("v_proj", x_kv, Lk)
    scores = q @ k.transpose(-1, -2) / math.sqrt(dh)
    scores = scores.masked_fill(mask, float("-inf"))
    o = torch.softmax(scores, dim=-1) @ v  # [B, h, Lq, dh]
    o = o.transpose(1, 2).reshape(B, Lq, d)
    return F.linear(o, P[f"{prefix}.out_proj.weight"], P[f"{prefix}.out_proj.bias"])


ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu, "swish": F.silu, "silu": F.silu}  # gelu: the erf form


def feed_forward(cfg, P, prefix, x):
    h = ACTIVATIONS[cfg["activation"]](F.linear(x, P[f"{prefix}.fc1.weight"], P[f"{prefix}.fc1.bias"]))
    return F.linear(h, P[f"{prefix}.fc2.weight"], P[f"{prefix}.fc2.bias"])


def layer_norm(cfg, P, prefix, x):
    return F.layer_norm(x, x.shape[-1:], P[f"{prefix}.weight"], P[f"{prefix}.bias"], cfg["layer_norm_eps"])


def residual(cfg, P, norm_prefix, x, f):
    """Post-norm: LN(x + f(x)). Pre-norm: x + f(LN(x))."""
    if cfg["norm"] == "pre":
        return x + f(layer_norm(cfg, P, norm_prefix, x))
    return layer_norm(cfg, P, norm_prefix, x + f(x))


def embedding_tables(cfg, P):
    """(source, target input, output) matrices per tie_embeddings."""
    if cfg["tie_embeddings"] == "all":
        return P["shared.weight"], P["shared.weight"], P["shared.weight"]
    tgt = P["decoder.embed_tokens.weight"]
    out = P["lm_head.weight"] if cfg["tie_embeddings"] == "none" else tgt
    return P["encoder.embed_tokens.weight"], tgt, out


def encode(cfg, P, src):
    src_table, _, _ = embedding_tables(cfg, P)
    key_padding = (src == cfg["pad_id"])[:, None, None, :]  # [B, 1, 1, Ls]
    x = embed(cfg, src, src_table)
    for i in range(cfg["encoder_layers"]):
        p = f"encoder.layers.{i}"
        x = residual(cfg, P, f"{p}.self_attn_layer_norm", x,
                     lambda h: attention(cfg, P, f"{p}.self_attn", h, h, key_padding))
        x = residual(cfg, P, f"{p}.final_layer_norm", x, lambda h: feed_forward(cfg, P, p, h))
    if cfg["norm"] == "pre":
        x = layer_norm(cfg, P, "encoder.layer_norm", x)
    return x, key_padding


def decode(cfg, P, tgt_in, memory, key_padding):
    _, tgt_table, _ = embedding_tables(cfg, P)
    Lt = tgt_in.shape[1]
    # Causal mask only: target padding is not masked (docs/model.md).
    causal = torch.ones(Lt, Lt, dtype=torch.bool).triu(diagonal=1)
    y = embed(cfg, tgt_in, tgt_table)
    for i in range(cfg["decoder_layers"]):
        p = f"decoder.layers.{i}"
        y = residual(cfg, P, f"{p}.self_attn_layer_norm", y,
                     lambda h: attention(cfg, P, f"{p}.self_attn", h, h, causal))
        y = residual(cfg, P, f"{p}.encoder_attn_layer_norm", y,
                     lambda h: attention(cfg, P, f"{p}.encoder_attn", h, memory, key_padding))
        y = residual(cfg, P, f"{p}.final_layer_norm", y, lambda h: feed_forward(cfg, P, p, h))
    if cfg["norm"] == "pre":
        y = layer_norm(cfg, P, "decoder.layer_norm", y)
    return y


def model_loss(cfg, P, src, tgt_in, tgt_out):
    """(mean label-smoothed cross-entropy over non-pad targets, number of those targets)."""
    memory, key_padding = encode(cfg, P, src)
    y = decode(cfg, P, tgt_in, memory, key_padding)
    _, _, out_table = embedding_tables(cfg, P)
    logits = F.linear(y, out_table, P.get("final_logits_bias"))
    loss = F.cross_entropy(logits.reshape(-1, cfg["vocab_size"]), tgt_out.reshape(-1), ignore_index=cfg["pad_id"],
                           label_smoothing=cfg["label_smoothing"], reduction="mean")
    return loss, int((tgt_out != cfg["pad_id"]).sum())
