#!/usr/bin/env python3
"""make_dup_kv_model.py SRC_DIR DST_DIR: the model of SRC_DIR (one
model.safetensors, as trtconv-genmodel writes it) with every KV head stored
twice, as Llama-3.1-405B's Hugging Face checkpoint does: k_proj and v_proj
rows of head h become heads 2h and 2h+1, num_key_value_heads doubles.
Converting DST_DIR with --remove_duplicated_kv_heads must give SRC_DIR's
plain conversion. Plain Python, so CI can run it."""
import json, os, shutil, struct, sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fp8"))
import stread  # noqa: E402

src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, exist_ok=True)
raw = open(f"{src}/model.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8:8 + n])
hdr.pop("__metadata__", None)
cfg = json.load(open(f"{src}/config.json"))
d = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
out = {}
for name, info in hdr.items():
    b0, b1 = info["data_offsets"]
    data = raw[8 + n + b0: 8 + n + b1]
    shape = list(info["shape"])
    if name.endswith(("self_attn.k_proj.weight", "self_attn.v_proj.weight")):
        head = d * (b1 - b0) // shape[0]              # bytes of one head
        data = b"".join(data[h * head:(h + 1) * head] * 2 for h in range(shape[0] // d))
        shape[0] *= 2
    out[name] = (info["dtype"], shape, data)
stread.write(f"{dst}/model.safetensors", out)
cfg["num_key_value_heads"] *= 2
json.dump(cfg, open(f"{dst}/config.json", "w"), indent=2)
for f in os.listdir(src):
    if f not in ("model.safetensors", "config.json") and os.path.isfile(f"{src}/{f}"):
        shutil.copy(f"{src}/{f}", f"{dst}/{f}")
