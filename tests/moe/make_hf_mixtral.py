#!/usr/bin/env python3
"""make_hf_mixtral.py OUT_DIR: a tiny Mixtral made by transformers itself
(GPU machine: torch + transformers), saved with save_pretrained as a test
fixture, plus what the loaders need to know about it:
  OUT_DIR/model/          the checkpoint (config.json, model.safetensors)
  OUT_DIR/keys.txt        every tensor name, dtype and shape as saved
  OUT_DIR/logits.json     token ids and transformers' float32 logits of a
                          forward pass (for the MoE forward pass check)
Seeded: the same bytes on every run with the same versions."""
import json, os, sys

import torch
import transformers
from safetensors import safe_open
from transformers import MixtralConfig, MixtralForCausalLM

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.manual_seed(20)
cfg = MixtralConfig(vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, num_local_experts=4,
                    num_experts_per_tok=2, max_position_embeddings=256, rope_theta=1e6,
                    rms_norm_eps=1e-5, sliding_window=None, tie_word_embeddings=False)
model = MixtralForCausalLM(cfg).to(torch.float16).eval()
model.save_pretrained(f"{out}/model", safe_serialization=True)
with open(f"{out}/keys.txt", "w") as f:
    f.write(f"transformers {transformers.__version__} torch {torch.__version__}\n")
    for name in sorted(os.listdir(f"{out}/model")):
        if name.endswith(".safetensors"):
            with safe_open(f"{out}/model/{name}", "pt") as s:
                for k in sorted(s.keys()):
                    t = s.get_slice(k)
                    f.write(f"{k} {t.get_dtype()} {t.get_shape()}\n")
ids = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(3))
model = model.to("cuda" if torch.cuda.is_available() else "cpu")
with torch.no_grad():
    logits = model(ids.to(model.device)).logits.float().cpu()
json.dump({"input_ids": ids.tolist(), "logits": logits.tolist(),
           "transformers": transformers.__version__, "torch": torch.__version__},
          open(f"{out}/logits.json", "w"))
print(open(f"{out}/keys.txt").read())
