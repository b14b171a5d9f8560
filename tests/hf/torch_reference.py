#!/usr/bin/env python3
"""torch_reference.py SRC_MODEL OUT_DIR STATS.safetensors|- [--ids N] [--device cuda]

GPU-machine check of trtconv's --output_format hf (docs/hf-output.md):

1. Exactness: the quantized tensors of OUT_DIR (FP8, FP8_PER_CHANNEL_PER_TOKEN
   or NVFP4, from its hf_quant_config.json) against the statements NVIDIA
   ModelOpt's export runs (5a4242fa: unified_export_hf._export_quantized_weight,
   quant_utils.to_quantized_weight / get_scaling_factor / postprocess_state_dict,
   qtensor/nvfp4_tensor.NVFP4QTensor), evaluated by PyTorch on the device with
   the same amax values: the weights' maxima from the source weights, the
   activation and KV maxima from trtconv's statistics (STATS, exported with
   `trtconv-stats export`). Reports, per tensor kind, how many bytes differ.
2. Loading: the checkpoint dequantized the way the loaders compute with it
   (weight * scale; NVFP4: E2M1 value * block scale * weight_scale_2), loaded
   into transformers' LlamaForCausalLM, logits on N random sequences against
   the source model's: relative error and top-1 agreement.

Needs torch, transformers and safetensors (the GPU machine has them; trtconv
does not depend on them). Prints a summary; exit 1 when a byte differs."""
import json
import os
import sys

import torch
from safetensors import safe_open


def load_dir(d):
    idx = os.path.join(d, "model.safetensors.index.json")
    files = sorted(set(json.load(open(idx))["weight_map"].values())) if os.path.exists(idx) else \
        [f for f in os.listdir(d) if f.endswith(".safetensors")]
    out = {}
    for f in files:
        with safe_open(os.path.join(d, f), framework="pt") as h:
            for k in h.keys():
                out[k] = h.get_tensor(k)
    return out


GROUPS = {"q_proj": ("q_proj", "k_proj", "v_proj"), "k_proj": ("q_proj", "k_proj", "v_proj"),
          "v_proj": ("q_proj", "k_proj", "v_proj"), "gate_proj": ("gate_proj", "up_proj"),
          "up_proj": ("gate_proj", "up_proj"), "o_proj": ("o_proj",), "down_proj": ("down_proj",)}
SUB = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn",
       "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}


def export_amax(amax, maxbound):
    # TensorQuantizer.export_amax: zeros become maxbound, then clamped.
    amax = amax.clone()
    amax[amax == 0] = maxbound
    return amax.clamp(min=torch.finfo(amax.dtype).tiny, max=torch.finfo(amax.dtype).max)


def cast_fp4(x):
    # NVFP4QTensor._cast_fp4: searchsorted over the midpoints, the ties at
    # 0.75, 1.75, 3.5 moved up (round half to even on the grid).
    sign = (x < 0).to(torch.uint8)
    a = x.abs()
    bounds = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0], device=x.device)
    ordv = torch.searchsorted(bounds, a, out_int32=True).to(torch.uint8)
    round_up = torch.any(a.unsqueeze(-1) == bounds[[1, 3, 5]], dim=-1)
    ordv = ordv + round_up.to(torch.uint8)
    return sign * 8 + ordv


E2M1 = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]


def main():
    src_dir, out_dir, stats_path = sys.argv[1:4]
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    n_ids = int(sys.argv[sys.argv.index("--ids") + 1]) if "--ids" in sys.argv else 4
    hq = json.load(open(os.path.join(out_dir, "hf_quant_config.json")))["quantization"] \
        if os.path.exists(os.path.join(out_dir, "hf_quant_config.json")) else {}
    algo, kv = hq.get("quant_algo"), hq.get("kv_cache_quant_algo")
    src = load_dir(src_dir)
    out = load_dir(out_dir)
    stats = load_dir_stats(stats_path) if stats_path != "-" else {}
    cfg = json.load(open(os.path.join(out_dir, "config.json")))
    dt = getattr(torch, cfg.get("torch_dtype", cfg.get("dtype")))
    diffs = {}

    def count(kind, a, b):
        same_shape = a.shape == b.shape and a.dtype == b.dtype
        n = int((a.reshape(-1).view(torch.uint8) != b.reshape(-1).view(torch.uint8)).sum()) \
            if same_shape else -1
        if not same_shape:
            print("shape/dtype: %s %s %s against %s %s" % (kind, a.dtype, tuple(a.shape), b.dtype,
                                                          tuple(b.shape)))
        d = diffs.setdefault(kind, [0, 0])
        d[0] += n if n >= 0 else a.numel()
        d[1] += a.numel()

    for name, w in src.items():
        parts = name.split(".")
        if not (name.startswith("model.layers.") and len(parts) == 6 and parts[-1] == "weight"):
            continue
        lin, g, mod = parts[4], parts[2], name[:-len(".weight")]
        if algo is None or mod + ".weight_scale" not in out:
            continue
        weight = w.to(dev).to(dt)
        grp = torch.stack([src["model.layers.%s.%s.%s.weight" % (g, SUB[x], x)].to(dev).to(dt)
                           .abs().amax().float() for x in GROUPS[lin]]).amax()
        x_amax = max(float(stats["layers.%s.%s.x" % (g, x)].max()) for x in GROUPS[lin]) if stats else 0.0
        if algo == "FP8":
            wsf = torch.tensor(grp.item() / 448.0)               # _export_quantized_weight
            q = (weight / wsf.to(weight.device)).to(torch.float8_e4m3fn)   # to_quantized_weight
            ia = export_amax(torch.tensor([x_amax], device=dev, dtype=torch.float32), 448.0)
            isf = (ia.float() / 448.0).squeeze()                 # get_scaling_factor
            count("FP8 weight", q.cpu(), out[name])
            count("FP8 weight_scale", wsf.float().reshape(()), out[mod + ".weight_scale"])
            count("FP8 input_scale", isf.cpu(), out[mod + ".input_scale"])
        elif algo == "FP8_PER_CHANNEL_PER_TOKEN":
            amax = export_amax(weight.abs().amax(dim=1).float(), 448.0)
            wsf = amax.float() / 448.0
            q = (weight / wsf[:, None]).to(torch.float8_e4m3fn)
            count("FP8_PC_PT weight", q.cpu(), out[name])
            count("FP8_PC_PT weight_scale", wsf.cpu(), out[mod + ".weight_scale"])
        elif algo == "NVFP4":
            s2 = grp.float() / (6.0 * 448.0)                     # weights_scaling_factor_2
            blocks = weight.view(weight.shape[0], -1, 16)
            bamax = blocks.abs().amax(dim=-1).float()
            bs = bamax / (6.0 * s2)
            bs[bs == 0] = 1.0
            bs8 = bs.to(torch.float8_e4m3fn)
            scaled = blocks / (bs8.to(torch.float32) * s2).unsqueeze(-1)
            codes = cast_fp4(scaled.view(weight.shape))
            packed = (codes[..., 1::2] << 4) | codes[..., 0::2]
            ia = export_amax(torch.tensor([x_amax], device=dev, dtype=torch.float32), 6.0)
            isf = (ia.float() / (6.0 * 448.0)).squeeze()
            count("NVFP4 weight", packed.cpu(), out[name])
            count("NVFP4 weight_scale", bs8.cpu(), out[mod + ".weight_scale"])
            count("NVFP4 weight_scale_2", s2.reshape(()).cpu(), out[mod + ".weight_scale_2"])
            count("NVFP4 input_scale", isf.cpu(), out[mod + ".input_scale"])
    if kv == "FP8":
        for g in range(cfg["num_hidden_layers"]):
            for x, s in (("k_proj", "k_scale"), ("v_proj", "v_scale")):
                amax = torch.tensor(float(stats["layers.%d.%s.y" % (g, x)].max()), device=dev)
                v = (amax.float() / 448.0).clamp(min=1.0)        # postprocess_state_dict
                count("KV " + s, v.cpu(), out["model.layers.%d.self_attn.%s.%s" % (g, x, s)])
    bad = 0
    for kind, (d, n) in sorted(diffs.items()):
        print("exact: %-24s %d of %d elements differ" % (kind, d, n))
        bad += d
    logits_check(src_dir, out_dir, out, algo, dt, dev, n_ids, cfg)
    sys.exit(1 if bad else 0)


def load_dir_stats(path):
    with safe_open(path, framework="pt") as h:
        return {k: h.get_tensor(k) for k in h.keys()}


def dequantize(out, algo, dt):
    sd = {}
    for k, v in out.items():
        if k.endswith(("_scale", "_scale_2")) and not k.endswith("layernorm.weight"):
            continue
        mod = k[:-len(".weight")] if k.endswith(".weight") else None
        if mod and mod + ".weight_scale" in out and algo in ("FP8", "FP8_PER_CHANNEL_PER_TOKEN"):
            s = out[mod + ".weight_scale"].float()
            w = v.float() * (s[:, None] if s.dim() == 1 else s)
            sd[k] = w.to(dt)
        elif mod and mod + ".weight_scale_2" in out:
            lut = torch.tensor(E2M1 + [-x for x in E2M1])
            lo, hi = (v & 15).long(), (v >> 4).long()
            codes = torch.stack([lo, hi], dim=-1).view(v.shape[0], -1)
            vals = lut[codes].view(v.shape[0], -1, 16)
            bs = out[mod + ".weight_scale"].float().unsqueeze(-1)
            sd[k] = (vals * bs * out[mod + ".weight_scale_2"].float()).view(v.shape[0], -1).to(dt)
        else:
            sd[k] = v
    return sd


def logits_check(src_dir, out_dir, out, algo, dt, dev, n, cfg):
    from transformers import AutoModelForCausalLM
    ref = AutoModelForCausalLM.from_pretrained(src_dir, dtype=dt).to(dev).eval()
    got = AutoModelForCausalLM.from_pretrained(src_dir, dtype=dt).to(dev).eval()
    missing, unexpected = got.load_state_dict(dequantize(out, algo, dt), strict=False)
    missing = [m for m in missing if not m.endswith("rotary_emb.inv_freq")]
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, cfg["vocab_size"], (n, 128), generator=g).to(dev)
    with torch.no_grad():
        a, b = ref(ids).logits.float(), got(ids).logits.float()
    rel = float((a - b).norm() / a.norm())
    top1 = float((a.argmax(-1) == b.argmax(-1)).float().mean())
    print("load: %s dequantized into LlamaForCausalLM (missing %s, unexpected %s): logits "
          "relative error %.4g, top-1 agreement %.2f%% over %d x 128 tokens"
          % (algo or "unquantized", missing or "none", unexpected or "none", rel, 100 * top1, n))


main()
