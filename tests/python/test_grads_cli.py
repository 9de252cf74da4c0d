"""`heed grads`: bad input gets a clear error and a non-zero exit; good input prints the JSON line.

Standard library only (safetensors files are read and written by hand from the format's spec), so
this test never skips.
"""
import json
import struct
import sys

from cli_check import Checks, read_safetensors, run

MODEL_YAML = """vocab_size: 20
pad_id: 0
d_model: 8
heads: 2
ffn_dim: 16
encoder_layers: 1
decoder_layers: 1
"""

GOOD_BATCH = {"src": [[5, 6, 7], [8, 9, 0]], "tgt_in": [[0, 3, 4], [0, 5, 0]], "tgt_out": [[3, 4, 2], [5, 2, 0]]}


def write_safetensors(path, tensors):
    """tensors: name -> (dtype, shape, raw bytes), laid out back to back as the format requires."""
    header, data = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


def tensors_of(header, data):
    return {k: (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in header.items()}


class Runner(Checks):
    def grads(self, *args):
        return self.heed_run("grads", *args, "--out", self.path("g.safetensors"))


def checks(r):
    model = r.write("m.yaml", MODEL_YAML)
    weights = r.path("w.safetensors")
    good = r.grads("--model-config", model, "--seed", "3", "--save-weights", weights, "--batch",
                   r.write("good.json", GOOD_BATCH))
    line = good.stdout.strip().splitlines()[-1] if good.stdout.strip() else ""
    result = json.loads(line) if line.startswith("{") else {}
    r.check(f"good batch: {line}", good.returncode == 0 and result.get("tokens") == 5 and result.get("loss", 0) > 0,
            f"exit {good.returncode}, stdout {good.stdout!r}, stderr {good.stderr}")

    batch = lambda **kw: r.write("bad.json", {**GOOD_BATCH, **kw})
    r.expect_error("ragged rows", r.grads("--model-config", model, "--batch", batch(src=[[5, 6, 7], [8]])),
                   "\"src\" row 1 has 1 ids but row 0 has 3")
    r.expect_error("id out of range", r.grads("--model-config", model, "--batch", batch(tgt_out=[[3, 4, 2], [5, 20, 0]])),
                   "batch.tgt_out[1][1] = 20 is outside the vocabulary [0, 20)")
    r.expect_error("negative id", r.grads("--model-config", model, "--batch", batch(src=[[5, -1, 7], [8, 9, 0]])),
                   "batch.src[0][1] = -1")
    r.expect_error("tgt_in and tgt_out shapes differ",
                   r.grads("--model-config", model, "--batch", batch(tgt_in=[[0, 3], [0, 5]])), "differ in shape")
    r.expect_error("missing field", r.grads("--model-config", model, "--batch", r.write("b.json", {"src": [[1]]})),
                   "missing \"tgt_in\"")
    r.expect_error("not JSON", r.grads("--model-config", model, "--batch", r.write("b.json", "{src: ")), "invalid JSON")
    r.expect_error("unknown model key", r.grads("--model-config", r.write("m2.yaml", MODEL_YAML + "d_modle: 4\n"),
                                                "--batch", r.write("good.json", GOOD_BATCH)),
                   "m2.yaml:8: unknown config key 'd_modle'; did you mean 'd_model'?")
    r.expect_error("inconsistent model", r.grads("--model-config", r.write("m3.yaml", MODEL_YAML.replace("heads: 2", "heads: 3")),
                                                 "--batch", r.write("good.json", GOOD_BATCH)),
                   "divisible by model.heads")

    tensors = tensors_of(*read_safetensors(weights))
    name = "encoder.layers.0.fc1.bias"
    write_safetensors(r.path("extra.safetensors"), {**tensors, "encoder.layers.7.fc1.bias": tensors[name]})
    r.expect_error("extra parameter", r.grads("--model-config", model, "--weights", r.path("extra.safetensors"),
                                              "--batch", r.write("good.json", GOOD_BATCH)),
                   "unexpected parameters: encoder.layers.7.fc1.bias")
    write_safetensors(r.path("missing.safetensors"), {k: v for k, v in tensors.items() if k != name})
    r.expect_error("missing parameter", r.grads("--model-config", model, "--weights", r.path("missing.safetensors"),
                                                "--batch", r.write("good.json", GOOD_BATCH)),
                   f"missing parameters: {name}")
    dtype, _, raw = tensors[name]
    write_safetensors(r.path("wrong.safetensors"), {**tensors, name: (dtype, [4, 4], raw)})
    r.expect_error("wrong shape", r.grads("--model-config", model, "--weights", r.path("wrong.safetensors"),
                                          "--batch", r.write("good.json", GOOD_BATCH)),
                   f"{name} has shape [4, 4], expected [16]")


if __name__ == "__main__":
    sys.exit(run(checks, Runner))
