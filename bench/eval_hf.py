#!/usr/bin/env python3
"""eval_hf.py: the source model's perplexity with transformers on the GPU,
the check of `trtconv eval`'s (docs/eval.md): the model in float16, each
sequence alone (no padding), logits widened to float32, the mean of
-log_softmax at the next token over every predicted token.

usage: eval_hf.py MODEL_DIR IDS.jsonl [MAX_SAMPLES]
Prints one JSON line: perplexity, nll, predicted tokens, seconds."""
import json
import math
import sys
import time

import torch
import transformers


def main():
    model_dir, ids_path = sys.argv[1], sys.argv[2]
    limit = int(sys.argv[3]) if len(sys.argv) > 3 else None
    seqs = [json.loads(l)["input_ids"] for l in open(ids_path) if l.strip()][:limit]
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float16)
    except TypeError:
        model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float16)
    model = model.to("cuda").eval()
    t0 = time.time()
    nll, n = 0.0, 0
    with torch.no_grad():
        for s in seqs:
            ids = torch.tensor([s], device="cuda")
            logits = model(ids).logits[0].float()
            lp = torch.log_softmax(logits[:-1], dim=-1)
            nll -= lp.gather(1, ids[0, 1:, None]).sum().item()
            n += len(s) - 1
    torch.cuda.synchronize()
    print(json.dumps({"impl": "transformers %s" % transformers.__version__, "perplexity":
                      math.exp(nll / n), "nll": nll / n, "predicted": n,
                      "seconds": round(time.time() - t0, 2)}))


if __name__ == "__main__":
    main()
