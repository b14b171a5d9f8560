#!/usr/bin/env python3
"""make_e4m3_fixtures.py OUT_DIR: PyTorch's float -> torch.float8_e4m3fn
conversion on the GPU, as fixtures for tests/tools/e4m3check.c (unit_e4m3):

  f16.bin   65536 bytes: the E4M3 byte of every float16 bit pattern
  bf16.bin  65536 bytes: the same for every bfloat16 bit pattern
  f32.txt   N, seed and the SHA-256 of the E4M3 bytes of N float32 values
            made by a counter-based splitmix64 (the C test makes the same):
            z_i = mix64(seed + (i + 1) * 0x9E3779B97F4A7C15); even i: the
            float32 with bits z_i >> 32 (every pattern: NaN, Inf, subnormal);
            odd i: those bits with the exponent field set to
            0x70 + ((z_i & 0xFFFF) % 0x19), i.e. 2^-15 .. 2^9 (where E4M3's
            rounding happens)
Run on the GPU machine (torch with CUDA); the conversion runs on cuda:0.
"""
import hashlib, os, sys
import numpy as np
import torch

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
dev = "cuda"

def fp8_bytes(t):
    return t.to(dev).to(torch.float8_e4m3fn).view(torch.uint8).cpu().numpy().tobytes()

pat = np.arange(65536, dtype=np.uint32).astype(np.uint16)
open(f"{out}/f16.bin", "wb").write(fp8_bytes(torch.from_numpy(pat.view(np.float16).copy())))
bf = torch.from_numpy(pat.view(np.int16).copy()).view(torch.bfloat16)
open(f"{out}/bf16.bin", "wb").write(fp8_bytes(bf))

N, SEED = 10_000_000, 0x5EED
M = np.uint64(0xFFFFFFFFFFFFFFFF)
with np.errstate(over="ignore"):
    i = np.arange(N, dtype=np.uint64)
    z = np.uint64(SEED) + (i + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
bits = (z >> np.uint64(32)).astype(np.uint32)
exp = (np.uint32(0x70) + ((z & np.uint64(0xFFFF)) % np.uint64(0x19)).astype(np.uint32)) << np.uint32(23)
odd = (i & np.uint64(1)).astype(bool)
bits[odd] = (bits[odd] & np.uint32(0x807FFFFF)) | exp[odd]
b = fp8_bytes(torch.from_numpy(bits.view(np.float32).copy()))
with open(f"{out}/f32.txt", "w") as f:
    f.write(f"n {N}\nseed {SEED}\nsha256 {hashlib.sha256(b).hexdigest()}\n")
    f.write(f"torch {torch.__version__} cuda {torch.version.cuda} device {torch.cuda.get_device_name(0)}\n")
print(open(f"{out}/f32.txt").read())
