#!/usr/bin/env python3
"""make_expert_amax.py MODEL_DIR LOGITS_JSON OUT_JSON (GPU machine: torch +
transformers): the expert activation maxima NVIDIA ModelOpt's calibration
would record for the fixture Mixtral on the ids of LOGITS_JSON, computed by
transformers' own float16 forward pass, for mpi_moe to hold trtconv's
statistics to (docs/moe.md).

ModelOpt forwards every token to every expert during calibration
(modelopt/torch/quantization/plugins/huggingface.py _QuantSparseMoe), so
for each layer and expert e the maxima are over all tokens:
  x       the MoE block's input (post_attention_layernorm's output), per channel;
  gate_y  |x W1_e^T|, up_y |x W3_e^T|, down_x |silu(x W1_e^T) * x W3_e^T|,
          per channel, each op in float16 as transformers' experts compute it.
The block's input is captured with a forward hook on transformers' model;
the expert products use the checkpoint's per-expert tensors (read by name,
independent of how transformers fuses them in memory)."""
import json, sys

import torch
import torch.nn.functional as F
from safetensors import safe_open
from transformers import MixtralForCausalLM

model_dir, logits_json, out = sys.argv[1:4]
dev = "cuda" if torch.cuda.is_available() else "cpu"
model = MixtralForCausalLM.from_pretrained(model_dir, dtype=torch.float16).to(dev).eval()
ids = torch.tensor(json.load(open(logits_json))["input_ids"], device=dev)
cfg = model.config
seen = {}


def hook(i):
    def f(_m, _inp, outp):
        seen[i] = outp.detach().reshape(-1, cfg.hidden_size)
    return f


for i, layer in enumerate(model.model.layers):
    layer.post_attention_layernorm.register_forward_hook(hook(i))
with torch.no_grad():
    model(ids)
w = {}
with safe_open(f"{model_dir}/model.safetensors", "pt", device=dev) as s:
    for k in s.keys():
        w[k] = s.get_tensor(k)
res = {"transformers_forward": "float16", "input_ids": ids.tolist(), "layers": []}
with torch.no_grad():
    for i in range(cfg.num_hidden_layers):
        x = seen[i]
        ent = {"x": x.abs().amax(0).float().tolist(), "experts": []}
        for e in range(cfg.num_local_experts):
            p = f"model.layers.{i}.block_sparse_moe.experts.{e}."
            g = x @ w[p + "w1.weight"].t()
            u = x @ w[p + "w3.weight"].t()
            a = F.silu(g) * u
            ent["experts"].append({k: v.abs().amax(0).float().tolist()
                                   for k, v in (("gate_y", g), ("up_y", u), ("down_x", a))})
        res["layers"].append(ent)
json.dump(res, open(out, "w"))
print("wrote", out)
