#!/usr/bin/env python3
"""forward_hf.py: transformers' LlamaForCausalLM forward throughput on the
same model and tokens as bench/bench_forward.sh gives trtconv-forward.

usage: forward_hf.py MODEL_DIR IDS.jsonl BATCH [BATCH ...]
Prints one JSON line per batch size: tokens, seconds, tokens/s. Each batch
size runs the whole token set once after one warm-up batch; sequences of a
batch have equal length here (no padding). dtype: the config's; attention:
transformers' default (sdpa)."""
import json
import sys
import time

import torch
import transformers


def main():
    model_dir, ids_path = sys.argv[1], sys.argv[2]
    batches = [int(b) for b in sys.argv[3:]]
    seqs = [json.loads(l)["input_ids"] for l in open(ids_path) if l.strip()]
    cfg = json.load(open(model_dir + "/config.json"))
    dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}[cfg.get("dtype") or cfg.get("torch_dtype")]
    t0 = time.time()
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    except TypeError:
        model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=dtype)
    model = model.to("cuda").eval()
    load = time.time() - t0
    for bs in batches:
        def go(chunk):
            ids = torch.tensor(chunk, dtype=torch.long, device="cuda")
            with torch.no_grad():
                out = model(input_ids=ids)
            return out.logits
        go(seqs[:bs])
        torch.cuda.synchronize()
        t0 = time.time()
        n = 0
        for b in range(0, len(seqs), bs):
            chunk = seqs[b:b + bs]
            go(chunk)
            n += sum(len(s) for s in chunk)
        torch.cuda.synchronize()
        sec = time.time() - t0
        print(json.dumps({"impl": "transformers " + transformers.__version__, "batch": bs,
                          "tokens": n, "seconds": round(sec, 3), "tokens_per_s": round(n / sec, 1),
                          "load_seconds": round(load, 1)}), flush=True)


if __name__ == "__main__":
    main()
