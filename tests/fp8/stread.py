"""stread.py: a plain-Python safetensors reader for the FP8 tests (no numpy,
so CI can run it). tensors(path) -> {name: (header entry, raw bytes)}."""
import json
import struct


def tensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    h.pop("__metadata__", None)
    return {k: (v, b[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]])
            for k, v in h.items()}


def f32s(raw):
    return struct.unpack("<%df" % (len(raw) // 4), raw)
