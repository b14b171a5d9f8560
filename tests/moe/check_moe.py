#!/usr/bin/env python3
"""check_moe.py experts HF_DIR OUT_DIR TP PP MOE_TP MOE_EP
    Every rank's MoE tensors against the Hugging Face source, sliced here
    independently of trtconv (plain conversion in the source's dtype):
    mlp.router.weight = the gate cast to float32; mlp.fc.weight = for each
    of the rank's experts (moe_ep rank q: experts [q E/ep, (q+1) E/ep)) the
    moe_tp slice of w3 then of w1; mlp.proj.weight = w2's column slice.
check_moe.py reads HF_DIR OUT_DIR TP PP MOE_TP MOE_EP LOG
    The "source bytes read per rank" line of LOG equals, for every rank,
    the bytes of exactly its slices (embedding and norms whole, attention,
    lm_head and experts its share, the router whole).
check_moe.py transposed PLAIN_DIR WOQ_DIR
    --disable_weight_only_quant_plugin experts are [E, K, N]: the plain
    [E, N, K] transposed.
check_moe.py fp8 HF_DIR STATS.safetensors OUT_DIR TP PP MOE_TP MOE_EP
    --use_fp8 experts (docs/moe.md) recomputed here: the weight statistics
    (per expert row maxima) from the source weights; weights_scaling_factor
    [E_l, 1] = scale of each expert's whole-weight maximum (w1 and w3
    together for fc); activation_scaling_factor [1] = scale of the maximum
    over all experts' input statistics (trtconv-stats export); every FP8
    byte = E4M3 of fl32(w / its expert's scale) (check_fp8_tensor.py's
    scale and rounding).
check_moe.py amax STATS.safetensors EXPERT_AMAX.json RTOL
    trtconv's expert statistics (x, gate/up y, down x of every expert)
    against transformers' forward pass with ModelOpt's all-tokens-to-all-
    experts calibration (tests/moe/make_expert_amax.py): each within RTOL of
    its maximum; prints the worst.
Plain Python (no numpy)."""
import glob, json, os, re, struct, sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fp8"))
# check_fp8_tensor (its E4M3 rounding and scale) is imported by the fp8 mode.
from stread import floats, tensors  # noqa: E402

ES = {"F16": 2, "BF16": 2, "F32": 4, "I8": 1}


def source(hf):
    t = {}
    for f in sorted(glob.glob(os.path.join(hf, "*.safetensors"))):
        t.update(tensors(f))
    return t, json.load(open(os.path.join(hf, "config.json")))


def rows(raw, shape, r0, n, c0=None, c=None):
    """rows [r0, r0+n) (and columns [c0, c0+c)) of a 2-D tensor's bytes."""
    es = len(raw) // (shape[0] * shape[1])
    w = shape[1] * es
    if c0 is None:
        return raw[r0 * w:(r0 + n) * w]
    return b"".join(raw[r * w + c0 * es: r * w + (c0 + c) * es] for r in range(r0, r0 + n))


def to_f32(info, raw):
    v = floats(info["dtype"], raw)
    return struct.pack("<%df" % len(v), *v)


def rank_layers(out, tp, pp, mtp, mep, L):
    """(file, its tensors, moe_ep rank, moe_tp rank, local layer, global layer)
    for every rank file of OUT and every layer it holds."""
    for f in sorted(glob.glob(os.path.join(out, "rank*.safetensors"))):
        rank = int(re.search(r"rank(\d+)", f).group(1))
        t = tensors(f)
        tr, pr = rank % tp, rank // tp
        for loc in range(L // pp):
            yield f, t, tr % mep, tr // mep, loc, pr * (L // pp) + loc


def experts(hf, out, tp, pp, mtp, mep):
    src, cfg = source(hf)
    L, E, I, H = cfg["num_hidden_layers"], cfg["num_local_experts"], cfg["intermediate_size"], cfg["hidden_size"]
    El, Il = E // mep, I // mtp
    n = 0
    for f, t, qe, qt, loc, g in rank_layers(out, tp, pp, mtp, mep, L):
        pre, hp = f"transformer.layers.{loc}.mlp.", f"model.layers.{g}.block_sparse_moe."
        gi, graw = src[hp + "gate.weight"]
        ri, rraw = t[pre + "router.weight"]
        assert ri["dtype"] == "F32" and ri["shape"] == [E, H] and rraw == to_f32(gi, graw), f"{f} {pre}router"
        fc, pj = b"", b""
        for e in range(qe * El, (qe + 1) * El):
            for w in ("w3", "w1"):
                i, raw = src[f"{hp}experts.{e}.{w}.weight"]
                fc += rows(raw, i["shape"], qt * Il, Il)
            i, raw = src[f"{hp}experts.{e}.w2.weight"]
            pj += rows(raw, i["shape"], 0, H, qt * Il, Il)
        fi, fraw = t[pre + "fc.weight"]
        pi, praw = t[pre + "proj.weight"]
        assert fi["shape"] == [El, 2 * Il, H] and fraw == fc, f"{f} {pre}fc"
        assert pi["shape"] == [El, H, Il] and praw == pj, f"{f} {pre}proj"
        n += 3
    print(f"{n} MoE tensors equal the source's slices")


def reads(hf, out, tp, pp, mtp, mep, log):
    src, cfg = source(hf)
    L, H, V = cfg["num_hidden_layers"], cfg["hidden_size"], cfg["vocab_size"]
    nh, nkv = cfg["num_attention_heads"], cfg.get("num_key_value_heads") or cfg["num_attention_heads"]
    nb = lambda k: len(src[k][1])
    got = re.search(r"source bytes read per rank \(kB\): ([0-9 ]+);", open(log).read())
    assert got, "no 'source bytes read per rank' line"
    kb = [int(x) for x in got.group(1).split()]
    E = cfg["num_local_experts"]
    for rank in range(tp * pp):
        tr, pr = rank % tp, rank // tp
        want = 0
        if pr == 0:
            want += nb("model.embed_tokens.weight")
        if pr == pp - 1:
            want += nb("model.norm.weight") + nb("lm_head.weight") // tp   # vocab divisible here
        for g in range(pr * (L // pp), (pr + 1) * (L // pp)):
            p = f"model.layers.{g}."
            want += nb(p + "input_layernorm.weight") + nb(p + "post_attention_layernorm.weight")
            want += nb(p + "self_attn.q_proj.weight") // tp + nb(p + "self_attn.o_proj.weight") // tp
            share = tp if nkv >= tp else nkv
            want += (nb(p + "self_attn.k_proj.weight") + nb(p + "self_attn.v_proj.weight")) // share
            want += nb(p + "block_sparse_moe.gate.weight")
            ex = sum(nb(f"{p}block_sparse_moe.experts.{e}.{w}.weight") for e in range(E) for w in ("w1", "w2", "w3"))
            want += ex // (mtp * mep)
        assert abs(kb[rank] * 1000 - want) < 1000, f"rank {rank}: read {kb[rank]} kB, its slices are {want} bytes"
    print("each rank read exactly its slices: " + " ".join(f"{k} kB" for k in kb[:tp * pp]))


def fp8(hf, stats_path, out, tp, pp, mtp, mep):
    from check_fp8_tensor import f32, scale, to_e4m3
    src, cfg = source(hf)
    st = {k: floats(i["dtype"], raw) for k, (i, raw) in tensors(stats_path).items()}
    L, E, I, H = cfg["num_hidden_layers"], cfg["num_local_experts"], cfg["intermediate_size"], cfg["hidden_size"]
    El, Il = E // mep, I // mtp
    val = lambda k: floats(src[k][0]["dtype"], src[k][1])
    for g in range(L):  # the statistics' weight maxima are the source's
        hp = f"model.layers.{g}.block_sparse_moe.experts."
        for lin, w, n, k in (("gate_proj", "w1", I, H), ("up_proj", "w3", I, H), ("down_proj", "w2", H, I)):
            want = [max(abs(x) for x in val(f"{hp}{e}.{w}.weight")[r * k:(r + 1) * k]) for e in range(E) for r in range(n)]
            assert st[f"layers.{g}.{lin}.w"] == want, f"layer {g} {lin}.w"
    n = 0
    for f, t, qe, qt, loc, g in rank_layers(out, tp, pp, mtp, mep, L):
        pre, hp = f"transformer.layers.{loc}.mlp.", f"model.layers.{g}.block_sparse_moe.experts."
        for name, ws_of, act in (("fc", ("w3", "w1"), ("gate_proj", "up_proj")), ("proj", ("w2",), ("down_proj",))):
            scales = [scale(max(abs(x) for w in ws_of for x in val(f"{hp}{e}.{w}.weight")))
                      for e in range(qe * El, (qe + 1) * El)]
            wi, wraw = t[pre + name + ".weights_scaling_factor"]
            assert wi["dtype"] == "F32" and wi["shape"] == [El, 1], f"{f} {pre}{name} scale shape"
            assert floats("F32", wraw) == scales, f"{f} {pre}{name}.weights_scaling_factor"
            amax = max(max(st[f"layers.{g}.{a}.x"]) for a in act)
            ai, araw = t[pre + name + ".activation_scaling_factor"]
            assert ai["shape"] == [1] and floats("F32", araw) == [scale(amax)], f"{f} {pre}{name}.activation"
            want = bytearray()
            for j, e in enumerate(range(qe * El, (qe + 1) * El)):
                if name == "fc":
                    sl = [x for w in ws_of for x in val(f"{hp}{e}.{w}.weight")[qt * Il * H:(qt + 1) * Il * H]]
                else:
                    v = val(f"{hp}{e}.w2.weight")
                    sl = [v[r * I + c] for r in range(H) for c in range(qt * Il, (qt + 1) * Il)]
                want += bytes(to_e4m3(f32(x / scales[j])) for x in sl)
            qi, qraw = t[pre + name + ".weight"]
            assert qi["dtype"] == "F8_E4M3" and qraw == bytes(want), f"{f} {pre}{name}.weight bytes"
            n += 3
    print(f"{n} FP8 expert tensors equal the reference")


def amax(stats_path, ref_path, rtol):
    st = {k: floats(i["dtype"], raw) for k, (i, raw) in tensors(stats_path).items()}
    ref = json.load(open(ref_path))
    worst, where, n = 0.0, "", 0
    for g, lay in enumerate(ref["layers"]):
        E = len(lay["experts"])
        for ours, theirs in (("gate_proj.x", "x"), ("up_proj.x", "x"), ("gate_proj.y", "gate_y"),
                             ("up_proj.y", "up_y"), ("down_proj.x", "down_x")):
            got = st[f"layers.{g}.{ours}"]
            per = len(got) // E
            for e in range(E):
                want = lay[theirs] if theirs == "x" else lay["experts"][e][theirs]
                top = max(abs(v) for v in want)
                err = max(abs(a - b) for a, b in zip(got[e * per:(e + 1) * per], want)) / top
                assert len(want) == per and err <= rtol, f"layer {g} expert {e} {ours}: {err:.3g} > {rtol}"
                if err >= worst:
                    worst, where = err, f"layer {g} expert {e} {ours}"
                n += 1
    print(f"{n} expert statistics within {rtol} of transformers' (worst {worst:.2g}, {where})")


def transposed(plain, woq):
    for f in sorted(glob.glob(os.path.join(plain, "rank*.safetensors"))):
        a, b = tensors(f), tensors(os.path.join(woq, os.path.basename(f)))
        for k, (i, raw) in a.items():
            if not (k.endswith("mlp.fc.weight") or k.endswith("mlp.proj.weight")):
                continue
            E, N, K = i["shape"]
            es = ES[i["dtype"]]
            bi, braw = b[k]
            assert bi["shape"] == [E, K, N] and bi["dtype"] == i["dtype"], k
            want = b"".join(raw[(e * N * K + n * K + kk) * es:(e * N * K + n * K + kk + 1) * es]
                            for e in range(E) for kk in range(K) for n in range(N))
            assert braw == want, f"{f} {k}"
    print("non-plugin experts are the plain ones transposed per expert")


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "experts":
        experts(args[0], args[1], *map(int, args[2:6]))
    elif mode == "amax":
        amax(args[0], args[1], float(args[2]))
    elif mode == "fp8":
        fp8(args[0], args[1], args[2], *map(int, args[3:7]))
    elif mode == "reads":
        reads(args[0], args[1], *map(int, args[2:6]), args[6])
    else:
        transposed(args[0], args[1])
