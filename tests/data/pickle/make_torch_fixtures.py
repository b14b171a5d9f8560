#!/usr/bin/env python3
"""make_torch_fixtures.py OUT: writes tiny checkpoints with the real torch.save
(zip + pickle protocol 2) and expected.json describing every tensor, so the
C reader is checked against what PyTorch itself writes. Run once on a machine
with torch; the outputs are committed under tests/data/pickle/. The values
are simple integer ramps so that every dtype holds them exactly."""
import collections, hashlib, io, json, os, sys, zipfile

import torch

out = sys.argv[1]
os.makedirs(out, exist_ok=True)


def ramp(n, dt, start=0):
    return (torch.arange(n, dtype=torch.float32) * 0.25 - 1.5 + start).to(dt)


def tensor_bytes(t):
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


fixtures = {}

# 1. An OrderedDict state_dict of a real module: _metadata, BUILD.
class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2, bias=True)
        self.norm = torch.nn.LayerNorm(3)
torch.manual_seed(0)
m = Tiny()
with torch.no_grad():
    m.lin.weight.copy_(ramp(6, torch.float32).view(2, 3))
    m.lin.bias.copy_(ramp(2, torch.float32, 3))
fixtures["module_state_dict.bin"] = m.state_dict()

# 2. Three dtypes in one OrderedDict.
fixtures["dtypes.bin"] = collections.OrderedDict([
    ("a.f32", ramp(6, torch.float32).view(2, 3)),
    ("b.f16", ramp(4, torch.float16)),
    ("c.bf16", ramp(4, torch.bfloat16).view(2, 2)),
    ("d.scalar", torch.tensor(2.5, dtype=torch.float32)),
])

# 3. A plain dict, as Meta's consolidated.NN.pth.
fixtures["meta_like.pth"] = {
    "layers.0.attention.wq.weight": ramp(8, torch.bfloat16).view(4, 2),
    "norm.weight": ramp(2, torch.bfloat16, 1),
}

# 4. Views sharing one storage, one with a storage offset.
base = ramp(12, torch.float32)
fixtures["shared_storage.bin"] = collections.OrderedDict([
    ("whole", base),
    ("view", base[4:10].view(2, 3)),
])

# 5. A non-contiguous (transposed) tensor.
fixtures["transposed.bin"] = collections.OrderedDict([
    ("t", ramp(6, torch.float16).view(2, 3).t()),
])

expected = {"torch_version": torch.__version__, "files": {}}
for name, sd in fixtures.items():
    path = os.path.join(out, name)
    torch.save(sd, path)
    tensors = {}
    for k, v in sd.items():
        tensors[k] = {
            "dtype": str(v.dtype).replace("torch.", ""),
            "shape": list(v.shape),
            "stride": list(v.stride()),
            "storage_offset": v.storage_offset(),
            "contiguous": v.is_contiguous(),
            "bytes_hex": tensor_bytes(v).hex(),
        }
    with zipfile.ZipFile(path) as z:
        entries = [{"name": i.filename, "compress_type": i.compress_type,
                    "header_offset": i.header_offset, "file_size": i.file_size,
                    "extra_len": len(i.extra)} for i in z.infolist()]
        pkl = [i.filename for i in z.infolist() if i.filename.endswith("data.pkl")][0]
        import pickletools
        buf = io.StringIO()
        pickletools.dis(z.read(pkl), out=buf)
    with open(path + ".dis.txt", "w") as f:
        f.write(buf.getvalue())
    expected["files"][name] = {"tensors": tensors, "zip_entries": entries,
                               "sha256": hashlib.sha256(open(path, "rb").read()).hexdigest()}

# 6. The legacy (pre-1.6, not zip) format, which trtconv refuses.
legacy = os.path.join(out, "legacy.bin")
torch.save({"x": ramp(2, torch.float32)}, legacy, _use_new_zipfile_serialization=False)
expected["files"]["legacy.bin"] = {"legacy": True}

with open(os.path.join(out, "expected.json"), "w") as f:
    json.dump(expected, f, indent=1, sort_keys=True)
print(json.dumps({k: v.get("zip_entries") for k, v in expected["files"].items()}, indent=1))
print("torch", torch.__version__)
