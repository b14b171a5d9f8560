#!/usr/bin/env python3
"""The three rope buffers of a v0.12 rank file, computed with numpy.

    python3 tests/rope/numpy_rope.py CHECKPOINT_DIR OUT.safetensors

Reads the TensorRT-LLM config.json trtconv wrote and computes what
Attention.create_attention_const_params (tensorrt_llm/layers/attention.py,
v0.12 commit be9cd719) registers, with the numpy arithmetic of
RopeEmbeddingUtils.create_sinusoidal_positions,
create_sinusoidal_positions_for_attention_plugin and apply_llama3_scaling
(tensorrt_llm/functional.py): float32 arrays, Python scalars next to them,
numpy's own float32 sin/cos. Used on the GPU machine (numpy 2.5) to hold
trtconv's tables to numpy over large position counts; nothing of trtconv.
"""
import json
import math
import sys

import numpy as np
from safetensors.numpy import save_file


def llama3(inv_freqs, cfg):
    factor = cfg.get("factor", 8.0)
    low = cfg.get("low_freq_factor", 1.0)
    high = cfg.get("high_freq_factor", 4.0)
    old = cfg.get("original_max_position_embeddings", 8192)
    low_wavelen, high_wavelen = old / low, old / high
    out = []
    for f in inv_freqs:                     # numpy float32 scalars
        wavelen = 2 * math.pi / f
        if wavelen < high_wavelen:
            out.append(f)
        elif wavelen > low_wavelen:
            out.append(f / factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            out.append((1 - smooth) * f / factor + smooth * f)
    return np.array(out, dtype=inv_freqs.dtype)


def main():
    cfg = json.load(open(sys.argv[1] + "/config.json"))
    P, D = cfg["max_position_embeddings"], cfg["head_size"]
    theta = cfg.get("rotary_base", 10000.0)
    rs = cfg.get("rotary_scaling")
    f32 = np.float32
    # create_sinusoidal_positions(P, D): theta 10000
    inv = 1.0 / (10000.0 ** (np.arange(0, D, 2) / D)).astype(f32)
    x = np.einsum("i , j -> i j", np.arange(P, dtype=f32), inv, dtype=f32)
    embed = np.expand_dims(np.concatenate((np.sin(x), np.cos(x)), axis=1), axis=0).astype(f32)
    # create_sinusoidal_positions_for_attention_plugin
    kind, scale = "none", 1.0
    if rs is not None:
        kind = rs.get("type", rs.get("rope_type"))
        scale = rs.get("factor", 1.0)
    if kind == "linear":
        scale = 1.0 / scale
    if kind == "llama3":
        g = llama3(1.0 / (theta ** (np.arange(0, D, 2) / D)).astype(f32), rs)
    else:
        g = scale / (theta ** (np.arange(0, D, 2) / D)).astype(f32)
    y = np.expand_dims(np.einsum("i , j -> i j", np.arange(P, dtype=f32), g, dtype=f32), axis=-1)
    attn = np.concatenate((np.cos(y), np.sin(y)), axis=-1).reshape(1, -1).astype(f32)
    save_file({"embed_positions": np.ascontiguousarray(embed),
               "rotary_inv_freq": np.ascontiguousarray(g.astype(f32)),
               "embed_positions_for_gpt_attention": np.ascontiguousarray(attn)}, sys.argv[2])
    print(f"{sys.argv[2]}: P {P} D {D} theta {theta} scaling {kind}, numpy {np.__version__}")


if __name__ == "__main__":
    main()
