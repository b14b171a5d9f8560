#!/usr/bin/env python3
"""make_fbgemm_model.py SRC_DIR DST_DIR UB: turn a float16/bfloat16 Hugging
Face LLaMA checkpoint (one model.safetensors, as trtconv-genmodel writes) into
an fbgemm_fp8-style one like Llama-3.1-405B-FP8: the MLP weights of every
layer but the first and the last become F8_E4M3 bytes (deterministic, no NaN)
with `weight_scale` F32 [N, 1]; config.json gains quantization_config
{quant_method: fbgemm_fp8, activation_scale_ub: UB}. Plain Python (no
numpy), so CI can run it."""
import json, os, struct, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stread  # noqa: E402

src, dst, ub = sys.argv[1], sys.argv[2], float(sys.argv[3])
raw = open(f"{src}/model.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8:8 + n])
hdr.pop("__metadata__", None)
cfg = json.load(open(f"{src}/config.json"))
L = cfg["num_hidden_layers"]
out = {}
state = 0x5EED
def rnd():
    global state
    state = (state * 6364136223846793005 + 1442695040888963407) % (1 << 64)
    return state >> 33
for name, info in hdr.items():
    b0, b1 = info["data_offsets"]
    data = raw[8 + n + b0: 8 + n + b1]
    parts = name.split(".")
    if (name.startswith("model.layers.") and ".mlp." in name and name.endswith(".weight")
            and 0 < int(parts[2]) < L - 1):
        N, K = info["shape"]
        q = bytes((rnd() % 0x7E) | (0x80 if rnd() & 1 else 0) for _ in range(N * K))
        out[name] = ("F8_E4M3", [N, K], q)
        s = struct.pack("<%df" % N, *[(1 + rnd() % 1000) / 4096.0 for _ in range(N)])
        out[name + "_scale"] = ("F32", [N, 1], s)
    else:
        out[name] = (info["dtype"], info["shape"], data)
stread.write(f"{dst}/model.safetensors", out)
cfg["quantization_config"] = {"quant_method": "fbgemm_fp8", "activation_scale_ub": ub,
                              "modules_to_not_convert": ["lm_head"]}
json.dump(cfg, open(f"{dst}/config.json", "w"), indent=2)
