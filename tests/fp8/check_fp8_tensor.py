#!/usr/bin/env python3
"""Independent reference for --use_fp8 (FP8 per tensor, docs/fp8.md).

check_fp8_tensor.py ref ACT_RANGE.safetensors HF_DIR OUT_DIR TP PP
    Recomputes every scale of OUT_DIR's rank files from the statistics (x, w
    maxima as dumped by TensorRT-LLM's capture_activation_range) and every
    FP8 weight byte from the Hugging Face weights, with nothing of trtconv:
    scale = fl32(amax * fl32(1/448)) (amax 0 -> 448), q = E4M3 of
    fl32(w / s), rounded to the nearest E4M3 value (ties to the even code)
    by search over the 256 codes.
check_fp8_tensor.py same DIR_A TP_A PP_A DIR_B TP_B PP_B
    The scale tensors of two outputs, by global layer, are bit-identical.
"""
import bisect
import glob
import json
import math
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stread import floats, tensors  # noqa: E402


def read_tensors(path):
    """{name: (dtype, shape, values)}: floats, or the raw bytes of F8/I8."""
    out = {}
    for name, (h, raw) in tensors(path).items():
        dt = h["dtype"]
        v = floats(dt, raw) if dt in ("F32", "F16", "BF16") else raw
        out[name] = (dt, h["shape"], v)
    return out


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def e4m3_values():
    vals = []
    for code in range(128):
        e, m = code >> 3, code & 7
        if code == 0x7F:
            continue  # NaN
        v = (m / 8.0) * 2.0 ** -6 if e == 0 else (1 + m / 8.0) * 2.0 ** (e - 7)
        vals.append((v, code))
    return vals


E4M3 = e4m3_values()


E4M3_SORTED = sorted(E4M3)
E4M3_KEYS = [v for v, _ in E4M3_SORTED]


def to_e4m3(x):
    """Nearest E4M3 code (ties: the even code) by search over the table."""
    if math.isnan(x) or abs(x) >= 464.0:
        raise ValueError("value %r outside the per-tensor range" % x)
    a = abs(x)
    i = bisect.bisect_left(E4M3_KEYS, a)
    cand = [E4M3_SORTED[j] for j in (i - 1, i) if 0 <= j < len(E4M3_SORTED)]
    best = min(cand, key=lambda vc: (abs(vc[0] - a), vc[1] & 1))
    return best[1] | (0x80 if math.copysign(1.0, x) < 0 else 0)


INV448 = f32(1.0 / 448.0)


def scale(amax):
    a = 448.0 if amax == 0.0 else amax
    return f32(a * INV448)


LINEARS = {  # TensorRT-LLM prefix: (HF linears of the weight scale, of the activation scale)
    "attention.qkv": ("q_proj k_proj v_proj", "q_proj k_proj v_proj"),
    "attention.dense": ("o_proj", "o_proj"),
    "mlp.fc": ("gate_proj up_proj", "gate_proj up_proj"),
    "mlp.gate": ("gate_proj up_proj", "gate_proj up_proj"),
    "mlp.proj": ("down_proj", "down_proj"),
}
HF = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn",
      "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}


def rank_tensors(out_dir):
    res = {}
    for f in sorted(glob.glob(os.path.join(out_dir, "rank*.safetensors"))):
        rank = int(os.path.basename(f)[4:-12])
        res[rank] = read_tensors(f)
    return res


def global_name(name, rank, tp, pp, layers):
    if not name.startswith("transformer.layers."):
        return name
    rest = name[len("transformer.layers."):]
    local, tail = rest.split(".", 1)
    return "L%d.%s" % ((rank // tp) * (layers // pp) + int(local), tail)


def ref(act_path, hf_dir, out_dir, tp, pp):
    stats = read_tensors(act_path)
    hf = {}
    for f in glob.glob(os.path.join(hf_dir, "*.safetensors")):
        hf.update(read_tensors(f))
    cfg = json.load(open(os.path.join(hf_dir, "config.json")))
    L, H = cfg["num_hidden_layers"], cfg["hidden_size"]
    nh, nkv = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    d = H // nh
    checked = 0
    for rank, ts in rank_tensors(out_dir).items():
        tpr = rank % tp
        for name, (dt, shape, vals) in ts.items():
            if not name.startswith("transformer.layers.") or "scaling_factor" not in name and dt != "F8_E4M3":
                continue
            g = global_name(name, rank, tp, pp, L)
            layer = int(g[1:].split(".")[0])
            tail = g.split(".", 1)[1]
            if tail == "attention.kv_cache_scaling_factor":
                continue
            prefix, leaf = tail.rsplit(".", 1)
            wl, al = LINEARS[prefix]
            st = lambda lin, k: stats["model.layers.%d.%s.%s.%s" % (layer, HF[lin], lin, k)][2]
            ws = scale(max(max(st(lin, "w")) for lin in wl.split()))
            as_ = scale(max(max(st(lin, "x")) for lin in al.split()))
            if leaf == "weights_scaling_factor":
                assert vals == [ws], (name, vals, ws)
            elif leaf == "activation_scaling_factor":
                assert vals == [as_], (name, vals, as_)
            elif leaf == "weight":
                w = lambda lin: hf["model.layers.%d.%s.%s.weight" % (layer, HF[lin], lin)]
                if prefix == "attention.qkv":
                    assert nkv % tp == 0, "the test models have kv heads divisible by tp"
                    rows = []
                    for lin, heads in (("q_proj", nh), ("k_proj", nkv), ("v_proj", nkv)):
                        _, (n, k), v = w(lin)
                        per = heads // tp * d
                        rows += [v[r * k:(r + 1) * k] for r in range(tpr * per, (tpr + 1) * per)]
                    src = [x for r in rows for x in r]
                else:
                    lin = {"attention.dense": "o_proj", "mlp.fc": "gate_proj", "mlp.gate": "up_proj",
                           "mlp.proj": "down_proj"}[prefix]
                    _, (n, k), v = w(lin)
                    if prefix in ("mlp.fc", "mlp.gate"):
                        per = n // tp
                        src = v[tpr * per * k:(tpr + 1) * per * k]
                    else:
                        per = k // tp
                        src = [v[r * k + c] for r in range(n) for c in range(tpr * per, (tpr + 1) * per)]
                want = bytes(to_e4m3(f32(x / ws)) for x in src)
                assert bytes(vals) == want, "%s (rank %d): FP8 bytes differ from the reference" % (name, rank)
            checked += 1
    assert checked > 0
    print("checked %d tensors" % checked)


def scales(out_dir, tp, pp, layers):
    res = {}
    for rank, ts in rank_tensors(out_dir).items():
        for name, (dt, shape, vals) in ts.items():
            if "scaling_factor" in name:
                res[global_name(name, rank, tp, pp, layers)] = struct.pack("<%df" % len(vals), *vals)
    return res


def same(a, tpa, ppa, b, tpb, ppb):
    layers = json.load(open(os.path.join(a, "config.json")))["num_hidden_layers"]
    sa, sb = scales(a, tpa, ppa, layers), scales(b, tpb, ppb, layers)
    assert sa.keys() == sb.keys() and sa, "different scale tensors"
    diff = [k for k in sa if sa[k] != sb[k]]
    assert not diff, "scales differ: %s" % ", ".join(sorted(diff)[:5])
    print("%d scale tensors bit-identical" % len(sa))


if __name__ == "__main__":
    if sys.argv[1] == "ref":
        ref(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]))
    else:
        same(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], int(sys.argv[6]), int(sys.argv[7]))
