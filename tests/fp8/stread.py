"""stread.py: a plain-Python safetensors reader and writer for the tests (no
numpy, so CI can run it). tensors(path) -> {name: (header entry, raw bytes)};
floats(dtype, raw) decodes F32/F16/BF16;
write(path, {name: (dtype, shape, raw bytes)}) writes them sorted by name."""
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


def floats(dtype, raw):
    """The values of F32, F16 or BF16 bytes as Python floats (exact)."""
    if dtype == "F32":
        return list(f32s(raw))
    if dtype == "F16":
        return list(struct.unpack("<%de" % (len(raw) // 2), raw))
    if dtype == "BF16":
        return [struct.unpack("<f", struct.pack("<I", u << 16))[0]
                for u in struct.unpack("<%dH" % (len(raw) // 2), raw)]
    raise ValueError("not a float dtype: " + dtype)


def write(path, out):
    meta, blob, off = {}, b"", 0
    for name in sorted(out):
        dt, shape, data = out[name]
        meta[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(data)]}
        blob += data
        off += len(data)
    h = json.dumps(meta, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + blob)
