#!/usr/bin/env python3
"""sq_hf.py: the calibration of TensorRT-LLM's convert_checkpoint.py
(capture_activation_range, trtllm-checkpoint.md §5.2) with transformers on
the GPU: the model loaded in float16, forward hooks on every nn.Linear
recording per-channel max |x|, max |y| and the weight row maxima, one sample
per forward (batch 1, as upstream). The hook bodies follow the description
in the spec; no upstream code is copied.

usage: sq_hf.py MODEL_DIR IDS.jsonl [ACT_RANGE_OUT.safetensors]
Prints one JSON line: samples, tokens, load seconds, calibration seconds,
tokens/s. With an output path, saves the statistics as
"model.layers.L.self_attn.q_proj.x" etc. (trtconv-stats reads them)."""
import json
import sys
import time

import torch
import transformers
from safetensors.torch import save_file


def main():
    model_dir, ids_path = sys.argv[1], sys.argv[2]
    out = sys.argv[3] if len(sys.argv) > 3 else None
    seqs = [json.loads(l)["input_ids"] for l in open(ids_path) if l.strip()]
    t0 = time.time()
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float16)
    except TypeError:
        model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float16)
    model = model.to("cuda").eval()
    torch.cuda.synchronize()
    load = time.time() - t0
    stats = {}

    def hook(name):
        def fn(m, args, y):
            x = args[0] if isinstance(args, tuple) else args
            xs = x.reshape(-1, x.shape[-1]).abs().max(dim=0)[0].float()
            ys = y.reshape(-1, y.shape[-1]).abs().max(dim=0)[0].float()
            s = stats.get(name)
            if s is None:
                stats[name] = {"x": xs, "y": ys,
                               "w": m.weight.abs().clip(1e-8, None).max(dim=1)[0]}
            else:
                s["x"] = torch.maximum(s["x"], xs)
                s["y"] = torch.maximum(s["y"], ys)
        return fn

    hooks = [m.register_forward_hook(hook(n)) for n, m in model.named_modules()
             if isinstance(m, torch.nn.Linear)]
    torch.cuda.synchronize()
    t0 = time.time()
    tokens = 0
    with torch.no_grad():
        for s in seqs:
            model(torch.tensor([s], dtype=torch.long, device="cuda"))
            tokens += len(s)
    torch.cuda.synchronize()
    sec = time.time() - t0
    for h in hooks:
        h.remove()
    print(json.dumps({"impl": "transformers " + transformers.__version__ + " hooks, batch 1",
                      "samples": len(seqs), "tokens": tokens, "load_seconds": round(load, 2),
                      "calib_seconds": round(sec, 2), "tokens_per_s": round(tokens / sec, 1)}),
          flush=True)
    if out:
        flat = {}
        for name, s in stats.items():
            for k, v in s.items():
                flat[name + "." + k] = v.contiguous().cpu()
        save_file(flat, out)


if __name__ == "__main__":
    main()
