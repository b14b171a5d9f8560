#!/usr/bin/env python3
"""cmp_logits.py DUMP.safetensors LOGITS.json TOL: the logits trtconv-forward
dumped against transformers' float32 logits of the same ids
(tests/data/moe/logits.json): every |difference| <= TOL (float16 rounding of
values below 1 is 2^-11 .. 2^-12), and the report of the largest."""
import json, os, struct, sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fp8"))
from stread import tensors  # noqa: E402

info, raw = tensors(sys.argv[1])["logits"]
assert info["dtype"] == "F32", info
ours = struct.unpack("<%df" % (len(raw) // 4), raw)
ref = [x for seq in json.load(open(sys.argv[2]))["logits"] for row in seq for x in row]
assert len(ours) == len(ref), (len(ours), len(ref))
worst = max(abs(a - b) for a, b in zip(ours, ref))
print(f"max |logit - transformers| = {worst:.3g} over {len(ref)} logits")
sys.exit(worst > float(sys.argv[3]))
