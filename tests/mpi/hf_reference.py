#!/usr/bin/env python3
"""hf_reference.py MODEL_DIR OUT_DIR ALGO KV [STATS.safetensors] [EXCLUDE,...]

An independent plain-Python reference of trtconv's --output_format hf
(docs/hf-output.md, after NVIDIA ModelOpt's export_hf_checkpoint): every
tensor the output should hold is computed here from the source weights (and,
for activation and KV cache scales, the calibration statistics exported with
`trtconv-stats export`) and compared byte for byte with the shards the index
names. ALGO: none, FP8, FP8_PER_CHANNEL_PER_TOKEN, NVFP4; KV: none or FP8.
float32 arithmetic is emulated by rounding every double result to float32
(exact for one +, *, / of two float32 values). Exit 0 when every tensor
matches, 1 otherwise (the first mismatches printed)."""
import fnmatch
import json
import math
import os
import struct
import sys


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def read_st(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        data = f.read()
    head.pop("__metadata__", None)
    return head, data


def values(dtype, raw):
    if dtype == "F32":
        return list(struct.unpack("<%df" % (len(raw) // 4), raw))
    if dtype == "F16":
        return list(struct.unpack("<%de" % (len(raw) // 2), raw))
    if dtype == "BF16":
        u = struct.unpack("<%dH" % (len(raw) // 2), raw)
        return [struct.unpack("<f", struct.pack("<I", v << 16))[0] for v in u]
    raise SystemExit("dtype " + dtype)


def to_dtype(dtype, x):
    """x (a float32 value) rounded to dtype, as float."""
    if dtype == "F32":
        return f32(x)
    if dtype == "F16":
        return struct.unpack("<e", struct.pack("<e", x))[0]
    b = struct.unpack("<I", struct.pack("<f", x))[0]
    if math.isnan(x):
        return x
    b = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
    return struct.unpack("<f", struct.pack("<I", b << 16))[0]


def pack(dtype, vals):
    if dtype == "F32":
        return struct.pack("<%df" % len(vals), *vals)
    if dtype == "F16":
        return struct.pack("<%de" % len(vals), *vals)
    out = bytearray()
    for v in vals:
        out += struct.pack("<H", struct.unpack("<I", struct.pack("<f", v))[0] >> 16)
    return bytes(out)


def e4m3_value(c):
    e, m = (c >> 3) & 15, c & 7
    v = m / 8 * 2.0 ** -6 if e == 0 else (1 + m / 8) * 2.0 ** (e - 7)
    return -v if c & 0x80 else v


E4M3 = [(e4m3_value(c), c) for c in range(0x7F)]  # 0x7F is NaN


def e4m3(x):
    """Round to nearest E4M3FN value, ties to the even code (torch)."""
    if math.isnan(x):
        return 0x7F
    a = abs(x)
    best = None
    for v, c in E4M3:
        d = abs(a - v)
        if best is None or d < best[0] or (d == best[0] and c % 2 == 0):
            best = (d, c)
    code = best[1]
    return code | (0x80 if math.copysign(1.0, x) < 0 else 0)


E2M1 = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]


def e2m1(x):
    a = min(abs(x), 6.0)
    best = None
    for i, v in enumerate(E2M1):
        d = abs(a - v)
        if best is None or d < best[0] or (d == best[0] and i % 2 == 0):
            best = (d, i)
    return best[1] | (8 if x < 0 else 0)  # ModelOpt: sign bit for x < 0, -0 is +0


R448, R2688 = f32(1.0 / 448.0), f32(1.0 / 2688.0)


def act_scale(amax):  # export_amax, then a CUDA tensor over a Python scalar
    a = 448.0 if amax == 0 else amax
    return f32(a * R448)


def main():
    model, out, algo, kv = sys.argv[1:5]
    stats_path = sys.argv[5] if len(sys.argv) > 5 and sys.argv[5] else None
    exclude = [p for p in (sys.argv[6].split(",") if len(sys.argv) > 6 else []) if p]
    src = {}
    for name in os.listdir(model):
        if name.endswith(".safetensors"):
            head, data = read_st(os.path.join(model, name))
            for k, t in head.items():
                src[k] = (t["dtype"], t["shape"], data[t["data_offsets"][0]:t["data_offsets"][1]])
    stats = {}
    if stats_path:
        head, data = read_st(stats_path)
        for k, t in head.items():
            stats[k] = values("F32", data[t["data_offsets"][0]:t["data_offsets"][1]])
    cfg = json.load(open(os.path.join(out, "config.json")))
    dt = {"bfloat16": "BF16", "float16": "F16", "float32": "F32"}[cfg.get("torch_dtype", cfg.get("dtype"))]
    index = json.load(open(os.path.join(out, "model.safetensors.index.json")))["weight_map"]
    got = {}
    for f in set(index.values()):
        head, data = read_st(os.path.join(out, f))
        for k, t in head.items():
            assert index[k] == f, k
            got[k] = (t["dtype"], t["shape"], data[t["data_offsets"][0]:t["data_offsets"][1]])

    def w(name):
        d, shape, raw = src[name]
        return [to_dtype(dt, v) for v in values(d, raw)], shape

    groups = {"q_proj": ("q_proj", "k_proj", "v_proj"), "k_proj": ("q_proj", "k_proj", "v_proj"),
              "v_proj": ("q_proj", "k_proj", "v_proj"), "gate_proj": ("gate_proj", "up_proj"),
              "up_proj": ("gate_proj", "up_proj"), "o_proj": ("o_proj",),
              "down_proj": ("down_proj",)}
    sub = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn",
           "o_proj": "self_attn", "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}
    want = {}
    for name in src:
        vals, shape = w(name)
        parts = name.split(".")
        lin = parts[4] if name.startswith("model.layers.") and len(parts) == 6 else None
        module = name[: -len(".weight")]
        if (algo == "none" or lin is None or parts[-1] != "weight"
                or any(fnmatch.fnmatch(module, p) for p in exclude)):
            want[name] = (dt, shape, pack(dt, vals))
            continue
        g = parts[2]
        N, K = shape
        grp = [max(abs(v) for v in w("model.layers.%s.%s.%s.weight" % (g, sub[x], x))[0])
               for x in groups[lin]]
        w_amax = max(grp)
        x_amax = max(max(stats["layers.%s.%s.x" % (g, x)]) for x in groups[lin]) if stats else None
        if algo == "FP8":
            s = f32(w_amax / 448.0) if w_amax > 0 else 1.0
            s_dt = to_dtype(dt, s)
            q = bytes(e4m3(to_dtype(dt, f32(v / s_dt))) for v in vals)
            want[name] = ("F8_E4M3", shape, q)
            want[module + ".weight_scale"] = ("F32", [], struct.pack("<f", s))
            want[module + ".input_scale"] = ("F32", [], struct.pack("<f", act_scale(x_amax)))
        elif algo == "FP8_PER_CHANNEL_PER_TOKEN":
            q, scales = bytearray(), []
            for r in range(N):
                row = vals[r * K:(r + 1) * K]
                s = act_scale(max(abs(v) for v in row))
                scales.append(s)
                q += bytes(e4m3(f32(v / s)) for v in row)
            want[name] = ("F8_E4M3", shape, bytes(q))
            want[module + ".weight_scale"] = ("F32", [N], struct.pack("<%df" % N, *scales))
        else:  # NVFP4
            s2 = f32(w_amax * R2688)
            six = f32(6.0 * s2)
            q, bsc = bytearray(), bytearray()
            for r in range(N):
                for b0 in range(0, K, 16):
                    blk = vals[r * K + b0:r * K + b0 + 16]
                    bs = f32(max(abs(v) for v in blk) / six)
                    e = e4m3(1.0 if bs == 0 else bs)
                    bsc.append(e)
                    d = f32(e4m3_value(e) * s2)
                    codes = [e2m1(f32(v / d)) for v in blk]
                    q += bytes(codes[i] | codes[i + 1] << 4 for i in range(0, 16, 2))
            want[name] = ("U8", [N, K // 2], bytes(q))
            want[module + ".weight_scale"] = ("F8_E4M3", [N, K // 16], bytes(bsc))
            want[module + ".weight_scale_2"] = ("F32", [], struct.pack("<f", s2))
            a = 6.0 if x_amax == 0 else x_amax
            want[module + ".input_scale"] = ("F32", [], struct.pack("<f", f32(a * R2688)))
    if kv == "FP8":
        for g in range(cfg["num_hidden_layers"]):
            for x, s in (("k_proj", "k_scale"), ("v_proj", "v_scale")):
                m = max(stats["layers.%d.%s.y" % (g, x)])
                want["model.layers.%d.self_attn.%s.%s" % (g, x, s)] = (
                    "F32", [], struct.pack("<f", max(1.0, f32(m * R448))))
    bad = 0
    for k in sorted(set(want) | set(got)):
        if k not in got or k not in want:
            print("%s: %s" % (k, "missing from the output" if k in want else "not expected"))
            bad += 1
        elif want[k][0] != got[k][0] or list(want[k][1]) != list(got[k][1]):
            print("%s: %s %s, expected %s %s" % (k, got[k][0], got[k][1], want[k][0], want[k][1]))
            bad += 1
        elif want[k][2] != got[k][2]:
            diff = sum(a != b for a, b in zip(want[k][2], got[k][2]))
            print("%s: %d of %d bytes differ" % (k, diff, len(want[k][2])))
            bad += 1
    print("%d tensors compared, %d differ" % (len(want), bad))
    sys.exit(1 if bad else 0)


main()
