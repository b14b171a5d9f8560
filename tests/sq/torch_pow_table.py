#!/usr/bin/env python3
"""Tables of PyTorch's Tensor.pow(Scalar) on CUDA for tc-powcheck.

    python3 tests/sq/torch_pow_table.py OUT.bin float16|bfloat16 [all | ALPHA ...]

For each exponent, w.pow(e) of a CUDA tensor w holding every non-negative
bit pattern of the dtype (0 .. +inf), as smooth_gemm computes
weight_scales.pow(1 - alpha). With ALPHAs the exponents are 1 - alpha (a
Python float, as upstream passes it); with "all", every value of the dtype
in (0, 1), each as an exact Python float, so every exponent the float
branch of the kernel can see is covered.

File (little endian): "TCPOW1\\0\\0", uint32 dtype (0 float16, 1 bfloat16),
uint32 n_inputs (bit patterns 0 .. n_inputs-1), uint32 n_exponents,
uint32 0; then per exponent: float64 e, uint16 result[n_inputs].
"""
import struct
import sys

import torch


def main():
    out, dt = sys.argv[1], sys.argv[2]
    dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}[dt]
    n_in = 0x7C01 if dtype == torch.float16 else 0x7F81
    bits = torch.arange(0, n_in, dtype=torch.int32).to(torch.int16)
    w = bits.view(dtype).cuda()
    if sys.argv[3] == "all":
        one = 0x3C00 if dtype == torch.float16 else 0x3F80
        exps = [float(v) for v in torch.arange(1, one, dtype=torch.int32).to(torch.int16).view(dtype)]
    else:
        exps = [1 - float(a) for a in sys.argv[3:]]
    with open(out, "wb") as f:
        f.write(b"TCPOW1\0\0" + struct.pack("<IIII", 0 if dtype == torch.float16 else 1, n_in,
                                            len(exps), 0))
        for e in exps:
            r = w.pow(e).view(torch.int16).cpu().numpy().astype("<u2")
            f.write(struct.pack("<d", e) + r.tobytes())
    print(f"{out}: {dt}, {len(exps)} exponents x {n_in} inputs, torch {torch.__version__}, "
          f"{torch.cuda.get_device_name()}")


if __name__ == "__main__":
    main()
