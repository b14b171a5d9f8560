#!/usr/bin/env python3
"""make_reference.py: reference values of Hugging Face transformers'
LlamaForCausalLM for trtconv's forward pass (runs on the GPU machine, where
torch and transformers are installed; see docs/forward.md).

For each case it writes CASE/model (a Hugging Face model directory) and
CASE.ref.safetensors holding, for the token sequences of ids.jsonl run in
micro-batches of --batch_size with right padding and an attention mask
(float32 widenings of the model-dtype activations, packed tokens):
    input_ids I32 [T], seq_offsets I64 [n+1],
    embed [T,H], layer.N [T,H] (output of decoder layer N), norm [T,H],
    logits [T,V],
    tol.X (scalar): the bound tc-fwdcompare applies to X:
        max(3 * e32(X), floor),  e32(X) = max|hf - hf_fp32| / max|hf_fp32|,
    i.e. three times the error of transformers' own half-precision run
    against the same model in float32, and never below `floor` (4 units in
    the last place of the model dtype at the tensor's scale: 2^-9 for
    float16, 2^-6 for bfloat16).

Cases: 'hf_gqa_bias' (save_pretrained of a random LlamaConfig: GQA,
attention biases, llama3 rope, float16), and three models from
trtconv-genmodel: 'gen_gqa_f16' (GQA, llama3 rope), 'gen_mha_bf16_dynamic'
(MHA, bfloat16, dynamic NTK rope that triggers past 16 tokens, transformers
4 config style), 'gen_mqa_tied_linear' (one KV head, tied embeddings,
linear rope); their generator arguments are in tests/data/forward/cases.txt.

usage: make_reference.py --genmodel PATH --out DIR [--ids FILE] [--case NAME]...
"""
import argparse
import json
import os
import random
import subprocess
import sys

import torch
import transformers
from safetensors.torch import save_file

CASES_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "forward",
                          "cases.txt")
GEN_CASES = {line.split()[0]: line.split()[1:] for line in open(CASES_FILE)
             if line.strip() and not line.startswith("#")}
SEQ_LENS = [7, 16, 11, 3, 20, 24]


def make_hf_case(path):
    llama3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
              "high_freq_factor": 4.0, "original_max_position_embeddings": 16}
    kw = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
              attention_bias=True, tie_word_embeddings=False, rms_norm_eps=1e-5)
    if int(transformers.__version__.split(".")[0]) >= 5:
        kw["rope_parameters"] = dict(llama3, rope_theta=10000.0)
    else:
        kw["rope_theta"] = 10000.0
        kw["rope_scaling"] = llama3
    cfg = transformers.LlamaConfig(**kw)
    torch.manual_seed(7)
    model = transformers.LlamaForCausalLM(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.9, 1.1)
            else:
                p.normal_(0.0, 0.05)
    model = model.to(torch.float16)
    model.save_pretrained(path, safe_serialization=True)


def load(path, dtype):
    try:
        m = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except TypeError:
        m = transformers.AutoModelForCausalLM.from_pretrained(path, torch_dtype=dtype)
    return m.to("cuda").eval()


def reset_dynamic_rope(model):
    """transformers grows dynamic-NTK frequencies and keeps them for later
    batches; trtconv computes them per micro-batch. Reset between batches."""
    re = getattr(model.model, "rotary_emb", None)
    if re is not None and hasattr(re, "original_inv_freq"):
        re.inv_freq = re.original_inv_freq.clone().to(re.inv_freq.device)
        if hasattr(re, "original_max_seq_len"):
            re.max_seq_len_cached = re.original_max_seq_len


def run(model, seqs, batch_size):
    """Packed activations (float32) of every valid token."""
    outs = {}
    captured = {}

    def hook(name):
        def f(_m, _i, o):
            captured[name] = (o[0] if isinstance(o, tuple) else o).detach()
        return f

    hs = [model.model.embed_tokens.register_forward_hook(hook("embed")),
          model.model.norm.register_forward_hook(hook("norm"))]
    for i, layer in enumerate(model.model.layers):
        hs.append(layer.register_forward_hook(hook("layer.%d" % i)))
    for b in range(0, len(seqs), batch_size):
        batch = seqs[b:b + batch_size]
        L = max(len(s) for s in batch)
        ids = torch.zeros((len(batch), L), dtype=torch.long)
        mask = torch.zeros((len(batch), L), dtype=torch.long)
        for j, s in enumerate(batch):
            ids[j, :len(s)] = torch.tensor(s)
            mask[j, :len(s)] = 1
        reset_dynamic_rope(model)
        captured.clear()
        with torch.no_grad():
            out = model(input_ids=ids.cuda(), attention_mask=mask.cuda())
        captured["logits"] = out.logits.detach()
        for name, t in captured.items():
            rows = torch.cat([t[j, :len(s)] for j, s in enumerate(batch)]).float().cpu()
            outs.setdefault(name, []).append(rows)
    for h in hs:
        h.remove()
    return {k: torch.cat(v).contiguous() for k, v in outs.items()}


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--genmodel", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--ids", help="token file to use (default: write OUT/ids.jsonl)")
    ap.add_argument("--case", action="append")
    ap.add_argument("--batch_size", type=int, default=2)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    ids_path = a.ids or os.path.join(a.out, "ids.jsonl")
    if not a.ids:
        rnd = random.Random(2026)
        with open(ids_path, "w") as f:
            for n in SEQ_LENS:
                f.write(json.dumps({"input_ids": [rnd.randrange(200) for _ in range(n)]}) + "\n")
    seqs = [json.loads(l)["input_ids"] for l in open(ids_path) if l.strip()]
    cases = a.case or ["hf_gqa_bias"] + list(GEN_CASES)
    summary = {"transformers": transformers.__version__, "torch": torch.__version__,
               "device": torch.cuda.get_device_name(0), "cases": {}}
    for case in cases:
        mdir = os.path.join(a.out, case, "model")
        if case == "hf_gqa_bias":
            make_hf_case(mdir)
        else:
            subprocess.run([a.genmodel, "--out", mdir] + GEN_CASES[case], check=True,
                           stdout=subprocess.DEVNULL)
        cfg = json.load(open(os.path.join(mdir, "config.json")))
        name = cfg.get("dtype") or cfg.get("torch_dtype") or "float16"
        dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}[name]
        low = run(load(mdir, dtype), seqs, a.batch_size)
        ref32 = run(load(mdir, torch.float32), seqs, a.batch_size)
        floor = 2.0 ** -9 if dtype == torch.float16 else 2.0 ** -6
        tensors = {}
        info = {}
        for k, v in low.items():
            e = rel(v, ref32[k])
            tensors[k] = v
            tensors["tol." + k] = torch.tensor([max(3.0 * e, floor)], dtype=torch.float32)
            info[k] = {"hf_lowp_vs_fp32": e, "bound": max(3.0 * e, floor)}
        tensors["input_ids"] = torch.tensor([t for s in seqs for t in s], dtype=torch.int32)
        offs = [0]
        for s in seqs:
            offs.append(offs[-1] + len(s))
        tensors["seq_offsets"] = torch.tensor(offs, dtype=torch.int64)
        save_file(tensors, os.path.join(a.out, case + ".ref.safetensors"))
        summary["cases"][case] = {"dtype": name, "tensors": info}
        print(case, json.dumps(info), flush=True)
    json.dump(summary, open(os.path.join(a.out, "reference-summary.json"), "w"), indent=1)


if __name__ == "__main__":
    sys.exit(main())
