#!/usr/bin/env python3
"""SmoothQuant expectations for alphas other than 0.5 (tests/data/sq/alpha/).

Run on the GPU machine (PyTorch, transformers, safetensors; nothing of
trtconv):   python3 tests/sq/make_alpha_fixtures.py GOLDEN_DIR OUT_DIR
GOLDEN_DIR is the unpacked tests/data/golden archive (<build>/golden).

What it computes: the rank file of a tp 1 x pp 1 SmoothQuant conversion,
written with PyTorch on the GPU as TensorRT-LLM's LLaMA converter computes
it (tensorrt_llm/models/llama/convert.py at v0.12, commit be9cd719:
smooth_gemm, smooth_gemm_fc1_gate, smooth_llama_model, generate_int8,
get_tllm_linear_sq_weight and the SmoothQuant branch of
load_weights_from_hf_model). The expressions are the same torch operations
on the same float16 tensors, so PyTorch itself decides every rounding
(the float16 exponent of weight_scales.pow(1 - alpha), the 0-d tensor that
does not promote, float64 smoothers). Nothing here is derived from trtconv.

Before writing anything the script reproduces TensorRT-LLM's own files:
alpha 0.5 (golden/sq_mha/{pt_pt,pc_pt,pt_tok,pc_tok_kv}_tp1pp1) and alpha 0.8
(golden/v012/sq08_*_tp1pp1) must come out byte for byte, or it stops.

Cases written (each a folder with rank0.safetensors and case.json), for
each variant V of pt_pt, pc_pt, pt_tok, pc_tok_kv:
  mha_a{030,095}_V                   golden MHA model, its act_range
  mha_a080_V_{bf16,f32}              --dtype bfloat16 / float32, alpha 0.8
  gqa_a{030,080,095}_V               a GQA model made here (8 heads, 2
                                     KV heads) with statistics captured here
                                     by upstream's hooks (act_range)
  mha_bf16src_a080_pc_tok_kv         the golden model saved in bfloat16
                                     (SmoothQuant loads it as float16)
"""
import json
import os
import sys
from collections import defaultdict

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

DEV = "cuda"


# ---------------------------------------------------------------- statistics

def load_act_range(path):
    """act_range.safetensors (model.layers.L.self_attn.q_proj.x ...) as the
    nested dict upstream keeps: act[name]["x"|"y"|"w"], on the GPU."""
    flat = load_file(path, device=DEV)
    act = defaultdict(lambda: {"x": None, "y": None, "w": None})
    for k, v in flat.items():
        name, stat = k.rsplit(".", 1)
        act[name][stat] = v
    return act


@torch.no_grad()
def capture_act_range(model, samples):
    """Forward hooks on every nn.Linear, one sample a forward pass: per
    channel max |input|, max |output| (float32) and the row maxima of the
    weight (its dtype), as capture_activation_range records them."""
    act = defaultdict(lambda: {"x": None, "y": None, "w": None})

    def stat(name, t, key):
        m = t.view(-1, t.shape[-1]).abs().detach().max(dim=0)[0].float()
        act[name][key] = m if act[name][key] is None else torch.max(act[name][key], m)

    def hook(mod, x, y, name):
        stat(name, x[0] if isinstance(x, tuple) else x, "x")
        stat(name, y, "y")
        if act[name]["w"] is None:
            act[name]["w"] = mod.weight.abs().clip(1e-8, None).max(dim=1)[0]

    hs = [m.register_forward_hook(lambda mod, x, y, n=n: hook(mod, x, y, n))
          for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    model.eval()
    for ids in samples:
        model(torch.tensor([ids], device=DEV))
    for h in hs:
        h.remove()
    return act


# ---------------------------------------------------------------- smoothing

@torch.no_grad()
def smoothing_scales(weights, act_x, alpha):
    """smooth_gemm's scales for the [out, in] weights sharing one input."""
    ws = torch.cat([w.abs().max(dim=0, keepdim=True)[0] for w in weights], dim=0).max(dim=0)[0]
    return (act_x.to(weights[0].device).to(float).pow(alpha) / ws.pow(1 - alpha)).clamp(min=1e-5)


@torch.no_grad()
def smooth_apply(scales, weights, norm=None):
    if norm is not None:
        norm.div_(scales)
    for w in weights:
        w.mul_(scales.view(1, -1))


@torch.no_grad()
def smooth_model(model, act, alpha):
    """smooth_llama_model: returns qkv_para and the dense/proj smoothers;
    updates act with the qkv entry and the smoothed x/w statistics."""
    qkv_para, smoother = {}, {}
    for i, layer in enumerate(model.model.layers):
        p = f"model.layers.{i}."
        at = layer.self_attn
        w = torch.cat([at.q_proj.weight, at.k_proj.weight, at.v_proj.weight], dim=0)
        s = smoothing_scales([w], act[p + "self_attn.q_proj"]["x"], alpha)
        smooth_apply(s, [w], layer.input_layernorm.weight)
        q = p + "self_attn.qkv_proj"
        act[q]["x"] = act[p + "self_attn.q_proj"]["x"] / s
        act[q]["w"] = w.abs().max(dim=1)[0]
        act[q]["y"] = torch.cat([act[p + "self_attn." + n + "_proj"]["y"] for n in "qkv"], dim=0)
        qkv_para[q] = w.transpose(0, 1)

        o = p + "self_attn.o_proj"
        s = smoothing_scales([at.o_proj.weight], act[o]["x"], alpha)
        smooth_apply(s, [at.o_proj.weight])
        smoother[o] = s.float()
        act[o]["x"] = act[o]["x"] / s
        act[o]["w"] = at.o_proj.weight.abs().max(dim=1)[0]

        g, u = p + "mlp.gate_proj", p + "mlp.up_proj"
        mlp = layer.mlp
        s = smoothing_scales([torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight], dim=0)],
                             act[g]["x"], alpha)
        smooth_apply(s, [mlp.gate_proj.weight, mlp.up_proj.weight],
                     layer.post_attention_layernorm.weight)
        act[g]["x"] = act[g]["x"] / s
        act[g]["w"] = mlp.gate_proj.weight.abs().max(dim=1)[0]
        act[u]["x"] = act[u]["x"] / s
        act[u]["w"] = mlp.up_proj.weight.abs().max(dim=1)[0]

        d = p + "mlp.down_proj"
        s = smoothing_scales([mlp.down_proj.weight], act[d]["x"], alpha)
        smooth_apply(s, [mlp.down_proj.weight])
        smoother[d] = s.float()
        act[d]["x"] = act[d]["x"] / s
        act[d]["w"] = mlp.down_proj.weight.abs().max(dim=1)[0]
    return qkv_para, smoother


# ---------------------------------------------------------------- int8

def int8_scales(wt, a, is_qkv=False, mq=False):
    """generate_int8 for the transposed weight wt and its statistics a."""
    if is_qkv and not mq:
        wq_t = 127. / a["w"].reshape(3, -1).max(dim=-1, keepdims=True)[0]
        wq_c = 127. / a["w"].reshape(3, -1)
    elif is_qkv:
        hd = wt.shape[0]
        kv = (a["w"].shape[0] - hd) // 2
        parts = [a["w"][0:hd], a["w"][hd:hd + kv], a["w"][-kv:]]
        wq_t = 127. / torch.concat([t.max(dim=0, keepdim=True)[0] for t in parts])
        wq_c = 127. / a["w"]
    else:
        wq_t = 127. / a["w"].max()
        wq_c = 127. / a["w"]
    wo_t, wo_c = 1.0 / wq_t, 1.0 / wq_c
    wq_c, wq_t = wq_c.to(torch.float32), wq_t.to(torch.float32)
    sx = 127. / a["x"].max()
    sy = 127. / a["y"].max()
    sy_q = a["y"].max() / 127.
    acc_t = sy / (sx * wq_t)
    acc_c = sy / (sx * wq_c)
    if is_qkv and not mq:
        acc_t = torch.broadcast_to(acc_t, wq_c.shape)
        wo_t = torch.broadcast_to(wo_t, wq_c.shape)
    if is_qkv and mq:
        shapes = [parts[0].shape, parts[1].shape, parts[2].shape]
        acc_t = torch.concat([torch.broadcast_to(acc_t[i], shapes[i]) for i in range(3)])
        wo_t = torch.concat([torch.broadcast_to(wo_t[i], shapes[i]) for i in range(3)])

    def to_i8(x):
        return x.round().clip(-127, 127).to(torch.int8)

    return {
        "weight.int8": to_i8(wt / wo_t) if (is_qkv and mq) else to_i8(wt * wq_t),
        "weight.int8.col": to_i8(wt * wq_c),
        "scale_x_orig_quant": sx.to(torch.float32),
        "scale_w_quant_orig": wo_t.to(torch.float32),
        "scale_w_quant_orig.col": wo_c.to(torch.float32),
        "scale_y_accum_quant": acc_t.to(torch.float32),
        "scale_y_accum_quant.col": acc_c.to(torch.float32),
        "scale_y_quant_orig": sy_q.to(torch.float32),
    }


def sq_tensors(v, prefix, shape, is_qkv, per_token, per_channel, last, smoother=None,
               smoother_shape=None):
    """get_tllm_linear_sq_weight for tp 1 (rank 0 of 1: no split)."""
    out = {}
    col_shape = shape if (is_qkv or per_channel) else [1, 1]
    w = torch.Tensor(v["weight.int8.col" if per_channel else "weight.int8"]).cuda()
    if is_qkv:
        w = w.reshape(w.shape[0], -1)
    out[prefix + "weight"] = w.t().contiguous()
    if per_token:
        if smoother is None:
            out[last] = torch.Tensor([1.0]).to(torch.float32).cuda()
        pc = v["scale_w_quant_orig.col"] if per_channel else v["scale_w_quant_orig"]
        out[prefix + "per_channel_scale"] = pc.reshape(col_shape).contiguous()
    else:
        pc = v["scale_y_accum_quant.col"] if per_channel else v["scale_y_accum_quant"]
        out[prefix + "per_channel_scale"] = torch.Tensor(pc).to(torch.float32).reshape(
            col_shape).contiguous().cuda()
        out[prefix + "act_scale"] = torch.Tensor([[v["scale_y_quant_orig"]]]).to(
            torch.float32).contiguous().cuda()
        out[last] = torch.Tensor([v["scale_x_orig_quant"]]).to(torch.float32).contiguous().cuda()
    if smoother is not None:
        out[prefix + "smoother"] = smoother.reshape(smoother_shape).contiguous().to(torch.float32)
    return out


@torch.no_grad()
def rank_file(model, act, qkv_para, smoother, dtype, per_token, per_channel, int8_kv):
    """The SmoothQuant branch of load_weights_from_hf_model, tp 1, pp 1."""
    cfg = model.config
    H, I = cfg.hidden_size, cfg.intermediate_size
    mha = cfg.num_key_value_heads == cfg.num_attention_heads
    params = dict(model.named_parameters())

    def get_weight(name):  # converts the module's weight in place, as upstream does
        if params[name + ".weight"].dtype != dtype:
            params[name + ".weight"].data = params[name + ".weight"].to(dtype)
        return params[name + ".weight"].detach()

    w = {}
    for i in range(cfg.num_hidden_layers):
        p, t = f"model.layers.{i}.", f"transformer.layers.{i}."
        for n in "qkv":
            get_weight(p + f"self_attn.{n}_proj")
        qkv = qkv_para[p + "self_attn.qkv_proj"]
        out_dim = qkv.shape[1]
        qkv = qkv.reshape(qkv.shape[0], -1) if not mha else qkv.reshape(H, 3, H)
        v = int8_scales(qkv, act[p + "self_attn.qkv_proj"], True, not mha)
        w.update(sq_tensors(v, t + "attention.qkv.", [1, out_dim], True, per_token, per_channel,
                            t + "input_layernorm.scale_to_int"))
        if int8_kv:
            y = torch.cat([act[p + f"self_attn.{n}_proj"]["y"] for n in "qkv"], dim=0)
            w[t + "attention.kv_cache_scaling_factor"] = (y.max() / 127.).reshape([1])
        dense = get_weight(p + "self_attn.o_proj").t()
        v = int8_scales(dense, act[p + "self_attn.o_proj"])
        w.update(sq_tensors(v, t + "attention.dense.", [1, H], False, per_token, per_channel,
                            t + "attention.quantization_scaling_factor",
                            smoother[p + "self_attn.o_proj"], [1, dense.shape[0]]))
        for hf, trt in (("up_proj", "gate"), ("gate_proj", "fc")):
            m = get_weight(p + "mlp." + hf).t()
            v = int8_scales(m, act[p + "mlp." + hf])
            w.update(sq_tensors(v, t + f"mlp.{trt}.", [1, I], False, per_token, per_channel,
                                t + "post_layernorm.scale_to_int"))
        m = get_weight(p + "mlp.down_proj").t()
        v = int8_scales(m, act[p + "mlp.down_proj"])
        w.update(sq_tensors(v, t + "mlp.proj.", [1, H], False, per_token, per_channel,
                            t + "mlp.quantization_scaling_factor", smoother[p + "mlp.down_proj"],
                            [1, I]))
        w[t + "input_layernorm.weight"] = get_weight(p + "input_layernorm")
        w[t + "post_layernorm.weight"] = get_weight(p + "post_attention_layernorm")
    w["transformer.vocab_embedding.weight"] = get_weight("model.embed_tokens")
    w["lm_head.weight"] = get_weight("lm_head")
    w["transformer.ln_f.weight"] = get_weight("model.norm")
    return {k: x.contiguous() for k, x in w.items()}


# variant: (per_channel, per_token, int8 KV), and its trtconv flags
VARIANTS = {"pt_pt": (False, False, False), "pc_pt": (True, False, False),
            "pt_tok": (False, True, False), "pc_tok_kv": (True, True, True)}
VARIANT_FLAGS = {"pt_pt": "", "pc_pt": " --per_channel", "pt_tok": " --per_token",
                 "pc_tok_kv": " --per_channel --per_token --int8_kv_cache"}


def convert(model_dir, act_path_or_dict, alpha, variant, dtype):
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float16).to(DEV)
    act = load_act_range(act_path_or_dict) if isinstance(act_path_or_dict, str) else \
        clone_act(act_path_or_dict)
    per_channel, per_token, kv = VARIANTS[variant]
    qkv_para, smoother = smooth_model(model, act, alpha)
    return rank_file(model, act, qkv_para, smoother, dtype, per_token, per_channel, kv)


def clone_act(act):
    c = defaultdict(lambda: {"x": None, "y": None, "w": None})
    for k, v in act.items():
        c[k] = {s: (t.clone() if t is not None else None) for s, t in v.items()}
    return c


def write(out_dir, name, tensors, meta):
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "rank0.safetensors")
    save_file({k: v.cpu() for k, v in tensors.items()}, path)
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(meta, f, indent=2)
    return path


def same_bytes(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read() == fb.read()


def save_act(act, path):
    flat = {}
    for name, st in act.items():
        for k in "xyw":
            if st[k] is not None:
                flat[f"{name}.{k}"] = st[k].contiguous().cpu()
    save_file(flat, path)


def make_gqa(out_dir, samples):
    """A small GQA LLaMA (8 heads, 2 KV heads) with outlier channels in two
    input norms, float16, and its statistics from upstream's hooks."""
    torch.manual_seed(7)
    cfg = LlamaConfig(vocab_size=512, hidden_size=128, intermediate_size=256,
                      num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=2,
                      max_position_embeddings=512, rms_norm_eps=1e-5, tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg).to(torch.float16)
    with torch.no_grad():
        for i, layer in enumerate(model.model.layers):
            layer.input_layernorm.weight.uniform_(0.5, 1.5)
            layer.post_attention_layernorm.weight.uniform_(0.5, 1.5)
            layer.input_layernorm.weight[3 + i] = 12.0
            layer.post_attention_layernorm.weight[7 + i] = 9.0
        model.model.norm.weight.uniform_(0.5, 1.5)
    d = os.path.join(out_dir, "gqa_model")
    model.save_pretrained(d)
    model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float16).to(DEV)
    act = capture_act_range(model, samples)
    save_act(act, os.path.join(d, "act_range.safetensors"))
    return d, act


def main():
    golden, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    mha = os.path.join(golden, "sq_mha", "hf")
    mha_act = os.path.join(golden, "sq_mha", "act_range.safetensors")
    log = []

    # 1. reproduce upstream's own files first
    checks = [(0.5, v, mha_act, os.path.join(golden, "sq_mha", f"{v}_tp1pp1", "rank0.safetensors"))
              for v in VARIANTS]
    checks += [(0.8, v, os.path.join(golden, "v012", f"sq08_{v}_tp1pp1", "act_range.safetensors"),
                os.path.join(golden, "v012", f"sq08_{v}_tp1pp1", "rank0.safetensors"))
               for v in ("pt_pt", "pc_tok_kv")]
    for alpha, v, act, ref in checks:
        t = convert(mha, act, alpha, v, torch.float16)
        p = write(out, "selfcheck", t, {})
        ok = same_bytes(p, ref)
        log.append(f"self-check alpha {alpha} {v}: {'byte-identical to' if ok else 'DIFFERS from'} {ref}")
        print(log[-1], flush=True)
        if not ok:
            sys.exit(1)

    # 2. the expectations
    def case(name, model_dir, act, alpha, v, dtype, model_note, act_note):
        t = convert(model_dir, act, alpha, v, dtype)
        meta = {"alpha": alpha, "variant": v, "dtype": str(dtype).replace("torch.", ""),
                "tp": 1, "pp": 1, "model": model_note, "statistics": act_note,
                "flags": f"--smoothquant {alpha}" + VARIANT_FLAGS[v]
                + ("" if dtype == torch.float16 else
                   " --dtype " + str(dtype).replace("torch.", "")),
                "torch": torch.__version__, "gpu": torch.cuda.get_device_name()}
        write(out, name, t, meta)
        log.append(f"wrote {name}")
        print(log[-1], flush=True)

    for alpha in (0.3, 0.95):
        for v in VARIANTS:
            case(f"mha_a{int(round(alpha * 100)):03d}_{v}", mha, mha_act, alpha, v, torch.float16,
                 "golden/sq_mha/hf", "golden/sq_mha/act_range.safetensors")
    sq08_act = os.path.join(golden, "v012", "sq08_pc_tok_kv_tp1pp1", "act_range.safetensors")
    # --dtype bfloat16 / float32: get_weight casts dense/fc/gate/proj first
    for v in VARIANTS:
        for dt, tag in ((torch.bfloat16, "bf16"), (torch.float32, "f32")):
            case(f"mha_a080_{v}_{tag}", mha, sq08_act, 0.8, v, dt, "golden/sq_mha/hf",
                 "golden/v012/sq08_pc_tok_kv_tp1pp1/act_range.safetensors")

    samples = [json.loads(l)["input_ids"] for l in open(os.path.join(golden, "sq_mha", "calib.jsonl"))]
    gqa_dir, gqa_act = make_gqa(out, samples)
    for alpha in (0.3, 0.8, 0.95):
        for v in VARIANTS:
            case(f"gqa_a{int(round(alpha * 100)):03d}_{v}", gqa_dir, gqa_act, alpha, v,
                 torch.float16, "gqa_model", "gqa_model/act_range.safetensors")

    # the golden model stored in bfloat16: SmoothQuant loads it as float16
    src = AutoModelForCausalLM.from_pretrained(mha, dtype=torch.bfloat16)
    bdir = os.path.join(out, "mha_bf16_model")
    src.save_pretrained(bdir)
    case("mha_bf16src_a080_pc_tok_kv", bdir, sq08_act, 0.8, "pc_tok_kv", torch.float16,
         "mha_bf16_model (golden/sq_mha/hf saved in bfloat16)",
         "golden/v012/sq08_pc_tok_kv_tp1pp1/act_range.safetensors")
    case("mha_bf16src_a080_pc_tok_kv_bf16", bdir, sq08_act, 0.8, "pc_tok_kv", torch.bfloat16,
         "mha_bf16_model (golden/sq_mha/hf saved in bfloat16)",
         "golden/v012/sq08_pc_tok_kv_tp1pp1/act_range.safetensors")
    with open(os.path.join(out, "make_alpha_fixtures.log"), "w") as f:
        f.write("\n".join(log) + "\n")


if __name__ == "__main__":
    main()
