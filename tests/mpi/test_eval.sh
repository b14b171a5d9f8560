#!/bin/bash
# trtconv eval (docs/eval.md), on the CPU backend:
#  - the source model's perplexity equals the one computed here from
#    transformers' own logits (tests/data/forward, made on the GPU machine)
#    within what the stored bound on those logits allows;
#  - a checkpoint converted without quantization: every layer error exactly
#    0, perplexity ratio 1, top-1 agreement 1, KL 0, in 1 rank, tp 2,
#    pp 2, tp 2 x pp 2 and dp 2;
#  - weight-only: int8's error below int4's at every layer (the ordering,
#    not a number); the numbers do not depend on the number of replicas;
#  - a checkpoint with one scale multiplied by 10 (layer 2's mlp.proj
#    per_channel_scale) has exactly that layer flagged, the intact one none;
#    given the source's inputs, its other layers' errors equal the intact
#    checkpoint's exactly;
#  - the JSON holds every number, the SVG two lines per checkpoint;
#  - --eval on a conversion run evaluates the checkpoint it wrote (int8
#    weight-only, SmoothQuant + INT8 KV); with a quantization eval does not
#    emulate it is refused before converting;
#  - SmoothQuant (per token and per tensor, tp 2 with an INT8 KV cache),
#    FP8 per tensor (with a calibrated FP8 KV cache), FP8 rowwise and an
#    INT8 KV cache alone, on a model with outlier channels: their stored weights round-
#    trip to the source within a quantization step; every layer's error is
#    positive and finite and nothing is flagged; per-token activations beat
#    per-tensor ones, the KV cache adds error; SmoothQuant (alpha 0.5)
#    beats per-tensor W8A8 without smoothing (made with statistics that
#    give every channel the same smoother);
#    FP8 rowwise (pp 2): the first and last layers, which TensorRT-LLM's
#    recipe leaves in float, add exactly nothing;
#  - refusals: no config.json, a quantization eval does not emulate
#    (weights stored without the plugin), a weight-only checkpoint without
#    its target SM.
. "$(dirname "$0")/lib.sh"
DATA=$(cd "$(dirname "$0")/../data/forward" && pwd)
ev() { # ev NP ARGS...: trtconv eval, log in $WORK/last.log
    local np=$1
    shift
    timeout 300 "$MPIEXEC" -np "$np" "$TRTCONV" eval "$@" </dev/null >"$WORK/last.log" 2>&1
}
jq_py() { python3 - "$@"; }

# ---- the source perplexity against transformers' logits ----
args=$(awk '$1 == "gen_gqa_f16" { $1 = ""; print }' "$DATA/cases.txt")
# shellcheck disable=SC2086
gen --out "$WORK/ref" $args
run_np 1 --model_dir "$WORK/ref" --output_dir "$WORK/ref16" </dev/null || { cat "$WORK/last.log"; }
if ev 1 --model_dir "$WORK/ref" --checkpoint_dir "$WORK/ref16" --dataset "$DATA/ids.jsonl" \
    --max_samples 1000 --max_seq_length 4096 --batch_size 2 --output_json "$WORK/ref.json"; then
    jq_py "$DATA/gen_gqa_f16.ref.safetensors" "$DATA/reference-summary.json" "$WORK/ref.json" <<'PY' &&
import json, math, struct, sys
ref, summary, got = sys.argv[1:4]
with open(ref, "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    head = json.loads(f.read(n))
    data = f.read()
def tensor(name):
    t = head[name]
    b, e = t["data_offsets"]
    fmt = {"F32": "f", "I32": "i", "I64": "q"}[t["dtype"]]
    return list(struct.unpack("<%d%s" % ((e - b) // struct.calcsize(fmt), fmt), data[b:e])), t["shape"]
ids, _ = tensor("input_ids")
offs, _ = tensor("seq_offsets")
logits, shape = tensor("logits")
V = shape[1]
nll, n, top = 0.0, 0, 0.0
for s in range(len(offs) - 1):
    for t in range(offs[s], offs[s + 1] - 1):
        row = logits[t * V:(t + 1) * V]
        m = max(row)
        top = max(top, max(abs(x) for x in row))
        nll += m + math.log(sum(math.exp(x - m) for x in row)) - row[ids[t + 1]]
        n += 1
bound = json.load(open(summary))["cases"]["gen_gqa_f16"]["tensors"]["logits"]["bound"]
# Each logit is within bound * max|logit| of transformers': the negative
# log-likelihood of a token moves by at most twice that.
slack = 2 * bound * top
r = json.load(open(got))["checkpoints"][0]
want = math.exp(nll / n)
ok = r["predicted_tokens"] == n and abs(math.log(r["perplexity_source"] / want)) <= slack
print("source perplexity %.6f, from transformers' logits %.6f (%d tokens, allowed log ratio %.2g)"
      % (r["perplexity_source"], want, n, slack))
sys.exit(0 if ok else 1)
PY
        pass "source perplexity equals transformers' (gen_gqa_f16)" ||
        fail "source perplexity differs from transformers'"
else
    fail "eval of the reference model"; tail -20 "$WORK/last.log"
fi

# ---- a 4-layer model: unquantized, int8, int4, corrupted ----
gen --out "$WORK/m" --layers 4 --hidden 128 --heads 8 --kv_heads 4 --intermediate 256 --vocab 300 \
    --dtype float16 --seed 5
python3 - >"$WORK/ids.jsonl" <<'PY'
import json, random
r = random.Random(7)
for _ in range(16):
    print(json.dumps({"input_ids": [r.randrange(300) for _ in range(r.randrange(10, 48))]}))
PY
zero_case() { # zero_case NP TP PP
    local np=$1 tp=$2 pp=$3 o=$WORK/p_$2_$3
    rm -rf "$o"
    run_np 1 --model_dir "$WORK/m" --output_dir "$o" --tp_size "$tp" --pp_size "$pp" </dev/null &&
        ev "$np" --model_dir "$WORK/m" --checkpoint_dir "$o" --dataset "$WORK/ids.jsonl" \
            --batch_size 3 --output_json "$WORK/z.json" &&
        jq_py "$WORK/z.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["checkpoints"][0]
ok = (r["perplexity_ratio"] == 1.0 and r["top1_agreement"] == 1.0 and r["kl_mean"] == 0.0 and
      all(l["hidden_rel_error"] == 0.0 and l["local_rel_error"] == 0.0 for l in r["layers"])
      and r["final_norm_rel_error"] == 0.0
      and all(v == 0.0 for l in r["layers"] for v in l["linear_rel_error"].values())
      and all(len(l["linear_rel_error"]) == 5 for l in r["layers"])
      and not r["flagged_layers"] and r["predicted_tokens"] > 0)
sys.exit(0 if ok else 1)
PY
}
for lay in "1 1 1" "2 2 1" "2 1 2" "4 2 2" "2 1 1"; do
    set -- $lay
    if zero_case "$@"; then
        pass "unquantized checkpoint, $1 rank(s) tp $2 pp $3: error 0 (hidden states and every linear), ratio 1, top-1 1, KL 0"
    else
        fail "unquantized checkpoint, $1 rank(s) tp $2 pp $3"; tail -20 "$WORK/last.log"
    fi
done

run_np 1 --model_dir "$WORK/m" --output_dir "$WORK/w8" --use_weight_only \
    --weight_only_precision int8 --target_sm 80 </dev/null || cat "$WORK/last.log"
run_np 2 --model_dir "$WORK/m" --output_dir "$WORK/w4" --use_weight_only \
    --weight_only_precision int4 --target_sm 90 --tp_size 2 </dev/null || cat "$WORK/last.log"
# times10 FILE TENSOR: multiply an F16 or F32 tensor of a rank file by 10 in place.
times10() {
    python3 - "$1" "$2" <<'PY'
import json, struct, sys
path, name = sys.argv[1:3]
with open(path, "r+b") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    t = json.loads(f.read(n))[name]
    fmt, size = {"F16": ("e", 2), "F32": ("f", 4)}[t["dtype"]]
    b, e = t["data_offsets"]
    f.seek(8 + n + b)
    vals = struct.unpack("<%d%s" % ((e - b) // size, fmt), f.read(e - b))
    f.seek(8 + n + b)
    f.write(struct.pack("<%d%s" % (len(vals), fmt), *[v * 10 for v in vals]))
PY
}
# The same int8 checkpoint with layer 2's down_proj scales x 10.
cp -r "$WORK/w8" "$WORK/bad"
times10 "$WORK/bad/rank0.safetensors" transformer.layers.2.mlp.proj.per_channel_scale
# 2 ranks: w4 is tp 2; w8 and bad run as 2 replicas.
if ev 2 --model_dir "$WORK/m" --checkpoint_dir "$WORK/w8" --checkpoint_dir "$WORK/w4" \
    --checkpoint_dir "$WORK/bad" --dataset "$WORK/ids.jsonl" --batch_size 2 \
    --output_json "$WORK/q.json" --plot "$WORK/q.svg"; then
    jq_py "$WORK/q.json" <<'PY' && pass "int8 weight-only error below int4's at every layer" ||
import json, sys
c = json.load(open(sys.argv[1]))["checkpoints"]
e8 = [l["hidden_rel_error"] for l in c[0]["layers"]] + [c[0]["final_norm_rel_error"]]
e4 = [l["hidden_rel_error"] for l in c[1]["layers"]] + [c[1]["final_norm_rel_error"]]
print("int8", e8, "int4", e4)
sys.exit(0 if all(0 < a < b for a, b in zip(e8, e4)) and c[0]["top1_agreement"] > c[1]["top1_agreement"] else 1)
PY
        fail "int8 vs int4 ordering"
    jq_py "$WORK/q.json" <<'PY' && pass "each linear's output error: int8 below int4 (tp 2) for every linear at every layer" ||
import json, sys
c = json.load(open(sys.argv[1]))["checkpoints"]
ok = True
for l8, l4 in zip(c[0]["layers"], c[1]["layers"]):
    a, b = l8["linear_rel_error"], l4["linear_rel_error"]
    print(l8["layer"], {k: "%.3g < %.3g" % (a[k], b[k]) for k in a})
    ok = ok and sorted(a) == sorted(b) == ["dense", "fc", "gate", "proj", "qkv"]
    ok = ok and all(0 < a[k] < b[k] for k in a)
sys.exit(0 if ok else 1)
PY
        fail "per-linear errors of int8 vs int4"
    jq_py "$WORK/q.json" <<'PY' && pass "scale x 10 on layer 2's mlp.proj: that linear's error alone differs from the intact checkpoint's, every other linear's is equal" ||
import json, sys
c = json.load(open(sys.argv[1]))["checkpoints"]
ok = True
for lg, lb in zip(c[0]["layers"], c[2]["layers"]):
    for k, g in lg["linear_rel_error"].items():
        b = lb["linear_rel_error"][k]
        if lg["layer"] == 2 and k == "proj":
            print("layer 2 proj: intact %.4g, corrupted %.4g" % (g, b))
            ok = ok and b > 5.0 and b > 100 * g
        else:
            ok = ok and b == g
sys.exit(0 if ok else 1)
PY
        fail "per-linear errors of the corrupted checkpoint"
    jq_py "$WORK/q.json" <<'PY' && pass "scale x 10 in layer 2: layer 2 flagged, the intact checkpoints not" ||
import json, sys
c = json.load(open(sys.argv[1]))["checkpoints"]
print([x["flagged_layers"] for x in c])
sys.exit(0 if c[0]["flagged_layers"] == [] and c[1]["flagged_layers"] == [] and c[2]["flagged_layers"] == [2] else 1)
PY
        fail "corrupted scale not flagged as layer 2"
    grep -q "layer(s) flagged" "$WORK/last.log" && pass "the table names the flagged layer" ||
        fail "no flag in the table"
    python3 -c "
import sys, xml.etree.ElementTree as E
r = E.parse(sys.argv[1]).getroot()
sys.exit(0 if len(r.findall('{http://www.w3.org/2000/svg}polyline')) == 6 + 5 * 3 else 1)" "$WORK/q.svg" &&
        pass "the SVG is well formed: two lines per checkpoint, and one per checkpoint in each linear's panel" || fail "SVG"
    grep -q "linear output relative error" "$WORK/last.log" && pass "the table has the per-linear errors" ||
        fail "no per-linear table"
    jq_py "$WORK/q.json" <<'PY' && pass "on the source's inputs the corruption shows in layer 2 alone: layers 0, 1, 3 equal the intact checkpoint's" ||
import json, sys
c = json.load(open(sys.argv[1]))["checkpoints"]
good = [l["local_rel_error"] for l in c[0]["layers"]]
bad = [l["local_rel_error"] for l in c[2]["layers"]]
print("local, intact int8", good, "corrupted", bad)
same = all(abs(bad[i] - good[i]) <= 1e-12 * good[i] for i in (0, 1, 3))
sys.exit(0 if same and bad[2] > 10 * good[2] else 1)
PY
        fail "local errors of the corrupted checkpoint"
else
    fail "eval of the weight-only checkpoints"; tail -20 "$WORK/last.log"
fi
# Weights stored without the plugin (float [K, N] with their scales) are
# quantized by the engine at build as the plugin's would have been: the
# same weights, the same numbers to within the odd value rounded the other
# way (the converter's division against the engine's).
run_np 1 --model_dir "$WORK/m" --output_dir "$WORK/nopl" --use_weight_only \
    --disable_weight_only_quant_plugin </dev/null || cat "$WORK/last.log"
if ev 1 --model_dir "$WORK/m" --checkpoint_dir "$WORK/w8" --checkpoint_dir "$WORK/nopl" \
    --dataset "$WORK/ids.jsonl" --batch_size 2 --output_json "$WORK/np.json"; then
    jq_py "$WORK/np.json" <<'PY' && pass "int8 weights stored without the plugin: the plugin checkpoint's numbers within 1%" ||
import json, sys
a, b = json.load(open(sys.argv[1]))["checkpoints"]
ea = [l["hidden_rel_error"] for l in a["layers"]]
eb = [l["hidden_rel_error"] for l in b["layers"]]
print("plugin", ea, "no plugin", eb)
# The plugin's weights were quantized by the converter, these by the
# engine's own division: a last-bit difference in a few rounded values.
sys.exit(0 if all(x > 0 and abs(x - y) <= 0.01 * x for x, y in zip(ea, eb)) else 1)
PY
        fail "no-plugin weights"
else
    fail "eval of the no-plugin checkpoint"; tail -10 "$WORK/last.log"
fi

# ---- SmoothQuant, FP8 and the quantized KV cache, emulated ----
# A model whose norms have 4 outlier channels (gain 30): activation
# outliers, what SmoothQuant is for.
gen --out "$WORK/mo" --layers 4 --hidden 128 --heads 8 --kv_heads 4 --intermediate 256 \
    --vocab 300 --dtype float16 --seed 5 --outlier_channels 4 --outlier_gain 30
conv_q() { # conv_q NAME NP [flags...]
    local name=$1 np=$2
    shift 2
    run_np "$np" --model_dir "$WORK/mo" --output_dir "$WORK/$name" --calib_dataset "$WORK/ids.jsonl" \
        "$@" </dev/null || { fail "converting $name"; cat "$WORK/last.log"; }
}
conv_q sq_tok 1 --smoothquant 0.5 --per_channel --per_token
conv_q sq_tens 1 --smoothquant 0.5 --per_channel --calib_stats_out "$WORK/sqs.h5"
conv_q sq_kv 2 --smoothquant 0.5 --per_channel --per_token --int8_kv_cache --tp_size 2
conv_q fp8 1 --use_fp8
conv_q kv8 1 --int8_kv_cache
conv_q fp8kv 1 --use_fp8 --fp8_kv_cache --calibrate_fp8_kv_scale
conv_q fp8rw 2 --use_fp8_rowwise --pp_size 2
# Every format's stored weights against the source they came from, within
# its quantization step (the product the emulated GEMM forms): SmoothQuant
# int8 x per_channel_scale against the smoothed float16 weight (dense and
# proj carry their smoothers), FP8 E4M3 x weights_scaling_factor against the
# weight.
python3 - "$WORK/mo/model.safetensors" "$WORK/sq_tok/rank0.safetensors" \
    "$WORK/fp8/rank0.safetensors" <<'PY' && pass "stored SmoothQuant and FP8 weights round-trip to the source within their quantization step" ||
import json, struct, sys
def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n)), f.read(), 8 + n
def get(st, name):
    head, data, _ = st
    t = head[name]
    b, e = t["data_offsets"]
    raw = data[b:e]
    if t["dtype"] == "F16":
        return list(struct.unpack("<%de" % (len(raw) // 2), raw)), t["shape"]
    if t["dtype"] == "F32":
        return list(struct.unpack("<%df" % (len(raw) // 4), raw)), t["shape"]
    if t["dtype"] == "I8":
        return list(struct.unpack("<%db" % len(raw), raw)), t["shape"]
    if t["dtype"] == "F8_E4M3":
        def e4m3(b):
            s = -1.0 if b & 0x80 else 1.0
            e, m = (b >> 3) & 15, b & 7
            return s * (m * 2.0 ** -9 if e == 0 else (1 + m / 8.0) * 2.0 ** (e - 7))
        return [e4m3(b) for b in raw], t["shape"]
    raise SystemExit("dtype " + t["dtype"])
def f16(x):
    return struct.unpack("<e", struct.pack("<e", x))[0]
hf, sq, fp8 = load(sys.argv[1]), load(sys.argv[2]), load(sys.argv[3])
worst = 0.0
for L in range(4):
    for trt, src in (("attention.dense", "self_attn.o_proj"), ("mlp.proj", "mlp.down_proj")):
        w, (N, K) = get(hf, "model.layers.%d.%s.weight" % (L, src))
        q, _ = get(sq, "transformer.layers.%d.%s.weight" % (L, trt))
        pcs, _ = get(sq, "transformer.layers.%d.%s.per_channel_scale" % (L, trt))
        sm, _ = get(sq, "transformer.layers.%d.%s.smoother" % (L, trt))
        for n in range(N):
            for k in range(K):
                ws = f16(w[n * K + k] * sm[k])          # the smoothed float16 weight
                err = abs(q[n * K + k] * pcs[n] - ws)
                # Half a step, plus the stored scale being float16(1 / (127 / max)).
                if err > 0.5 * pcs[n] * 1.001 + abs(q[n * K + k]) * pcs[n] * 2.0 ** -10 + 1e-7:
                    raise SystemExit("SmoothQuant L%d %s [%d, %d]: %g vs %g (scale %g)"
                                     % (L, trt, n, k, q[n * K + k] * pcs[n], ws, pcs[n]))
                worst = max(worst, err / pcs[n])
    for trt, src in (("attention.dense", "self_attn.o_proj"), ("mlp.fc", "mlp.gate_proj")):
        w, (N, K) = get(hf, "model.layers.%d.%s.weight" % (L, src))
        q, _ = get(fp8, "transformer.layers.%d.%s.weight" % (L, trt))
        s, _ = get(fp8, "transformer.layers.%d.%s.weights_scaling_factor" % (L, trt))
        for i in range(N * K):
            if abs(q[i] * s[0] - w[i]) > max(abs(w[i]) / 16.0, s[0] * 2.0 ** -10) * 1.001:
                raise SystemExit("FP8 L%d %s [%d]: %g vs %g" % (L, trt, i, q[i] * s[0], w[i]))
print("SmoothQuant worst error %.3f of a step; FP8 within half an E4M3 step" % worst)
PY
    fail "stored weights do not round-trip"
if ev 2 --model_dir "$WORK/mo" --checkpoint_dir "$WORK/sq_tok" --checkpoint_dir "$WORK/sq_tens" \
    --checkpoint_dir "$WORK/sq_kv" --checkpoint_dir "$WORK/fp8" --checkpoint_dir "$WORK/kv8" \
    --checkpoint_dir "$WORK/fp8kv" --checkpoint_dir "$WORK/fp8rw" --dataset "$WORK/ids.jsonl" \
    --batch_size 2 --output_json "$WORK/s.json"; then
    jq_py "$WORK/s.json" <<'PY' && pass "emulated SmoothQuant (per token / per tensor, tp 2 with INT8 KV), FP8 (with FP8 KV), FP8 rowwise and INT8 KV alone: every layer's error positive and finite, nothing flagged" ||
import json, math, sys
c = json.load(open(sys.argv[1]))["checkpoints"]
for x in c:
    errs = [l["hidden_rel_error"] for l in x["layers"]] + [x["final_norm_rel_error"]]
    print(x["checkpoint_dir"], ["%.4f" % e for e in errs], "KL %.4g" % x["kl_mean"])
    # FP8 rowwise leaves layer 0 in float: its accumulated error is 0.
    first = 1 if x["checkpoint_dir"].endswith("fp8rw") else 0
    if not all(0 <= e < 1 and math.isfinite(e) for e in errs) or x["flagged_layers"]:
        sys.exit(1)
    if not all(e > 0 for e in errs[first:]):
        sys.exit(1)
    if not (math.isfinite(x["perplexity_ratio"]) and x["kl_mean"] > 0):
        sys.exit(1)
PY
        fail "emulated quantizations"
    jq_py "$WORK/s.json" <<'PY' && pass "per-token activations beat per-tensor ones; the INT8 KV cache adds error; the KV cache alone costs less than SmoothQuant" ||
import json, sys
c = {x["checkpoint_dir"].rsplit("/", 1)[-1]: x for x in json.load(open(sys.argv[1]))["checkpoints"]}
fin = {k: v["final_norm_rel_error"] for k, v in c.items()}
kl = {k: v["kl_mean"] for k, v in c.items()}
print(fin, kl)
ok = (fin["sq_tok"] < fin["sq_tens"] and kl["sq_tok"] < kl["sq_tens"] and
      fin["sq_kv"] > fin["sq_tok"] and fin["kv8"] < fin["sq_tok"] and fin["fp8kv"] > fin["fp8"])
sys.exit(0 if ok else 1)
PY
        fail "ordering of the emulated quantizations"
    jq_py "$WORK/s.json" <<'PY' && pass "FP8 rowwise (pp 2): the first and last layers, left in float by TensorRT-LLM's recipe, add exactly nothing; layers 1 and 2 do" ||
import json, sys
c = {x["checkpoint_dir"].rsplit("/", 1)[-1]: x for x in json.load(open(sys.argv[1]))["checkpoints"]}
loc = [l["local_rel_error"] for l in c["fp8rw"]["layers"]]
print("FP8 rowwise, error on the source's inputs per layer:", loc)
sys.exit(0 if loc[0] == 0.0 and loc[3] == 0.0 and loc[1] > 0 and loc[2] > 0 else 1)
PY
        fail "FP8 rowwise layers"
    jq_py "$WORK/s.json" <<'PY' && pass "FP8 rowwise per linear: only the MLP of layers 1 and 2 (fc, gate, proj) has error; attention and the float layers have none" ||
import json, sys
c = {x["checkpoint_dir"].rsplit("/", 1)[-1]: x for x in json.load(open(sys.argv[1]))["checkpoints"]}
ok = True
for l in c["fp8rw"]["layers"]:
    e = l["linear_rel_error"]
    print(l["layer"], e)
    quantized = l["layer"] in (1, 2)
    ok = ok and e["qkv"] == 0.0 and e["dense"] == 0.0
    ok = ok and all((e[k] > 0) == quantized for k in ("fc", "gate", "proj"))
sys.exit(0 if ok else 1)
PY
        fail "FP8 rowwise per-linear errors"
else
    fail "eval of the SmoothQuant / FP8 / KV checkpoints"; tail -20 "$WORK/last.log"
fi

# SmoothQuant against W8A8 without smoothing (per-channel int8 weights,
# per-tensor static int8 activations). trtconv writes no unsmoothed W8A8,
# so the test makes one with the SmoothQuant writer itself: statistics whose
# input maxima are k x each column's weight maximum (k = true input max /
# largest column max, per linear) give alpha 0.5 the same smoother sqrt(k)
# on every channel, which is no smoothing at all (a uniform factor moves
# into the per-tensor activation scale and the per-channel weight scales),
# and the activation scale that of the true maxima.
STATS_TOOL=${STATS:?}
"$STATS_TOOL" export "$WORK/sqs.h5" --model_dir "$WORK/mo" --out "$WORK/sqs.safetensors" &&
python3 - "$WORK/mo/model.safetensors" "$WORK/sqs.safetensors" "$WORK/uns.safetensors" <<'PY' &&
import json, struct, sys
def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n)), f.read()
def get(st, name):
    head, data = st
    t = head[name]
    b, e = t["data_offsets"]
    fmt = {"F16": "e", "F32": "f"}[t["dtype"]]
    return list(struct.unpack("<%d%s" % ((e - b) // struct.calcsize(fmt), fmt), data[b:e])), t["shape"]
hf, st = load(sys.argv[1]), load(sys.argv[2])
def colmax(names):
    m = None
    for nm in names:
        w, (N, K) = get(hf, nm)
        c = [max(abs(w[n * K + k]) for n in range(N)) for k in range(K)]
        m = c if m is None else [max(a, b) for a, b in zip(m, c)]
    return m
out = {}
L = 4
mods = {"q_proj": "self_attn.q_proj", "k_proj": "self_attn.k_proj", "v_proj": "self_attn.v_proj",
        "o_proj": "self_attn.o_proj", "gate_proj": "mlp.gate_proj", "up_proj": "mlp.up_proj",
        "down_proj": "mlp.down_proj"}
for l in range(L):
    p = "model.layers.%d." % l
    cm = {"q_proj": colmax([p + m + ".weight" for m in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")]),
          "o_proj": colmax([p + "self_attn.o_proj.weight"]),
          "gate_proj": colmax([p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight"]),
          "down_proj": colmax([p + "mlp.down_proj.weight"])}
    for short, mod in mods.items():
        for kind in "xyw":
            v, _ = get(st, "layers.%d.%s.%s" % (l, short, kind))
            if kind == "x":
                c = cm[{"k_proj": "q_proj", "v_proj": "q_proj", "up_proj": "gate_proj"}.get(short, short)]
                k = max(v) / max(c)
                v = [k * a for a in c]
            out["model.layers.%d.%s.%s" % (l, mod, kind)] = v
head, blob, off = {}, b"", 0
for name, v in out.items():
    raw = struct.pack("<%df" % len(v), *v)
    head[name] = {"dtype": "F32", "shape": [len(v)], "data_offsets": [off, off + len(raw)]}
    blob += raw
    off += len(raw)
h = json.dumps(head).encode()
h += b" " * (-len(h) % 8)
with open(sys.argv[3], "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + blob)
PY
"$STATS_TOOL" import "$WORK/uns.safetensors" --model_dir "$WORK/mo" --out "$WORK/uns.h5" >/dev/null &&
run_np 1 --model_dir "$WORK/mo" --output_dir "$WORK/w8a8" --smoothquant 0.5 --per_channel \
    --calib_stats "$WORK/uns.h5" </dev/null ||
    { fail "making the unsmoothed W8A8 checkpoint"; tail -5 "$WORK/last.log"; }
python3 - "$WORK/w8a8/rank0.safetensors" <<'PY' && pass "the W8A8 checkpoint made for the comparison is unsmoothed (every smoother uniform)" ||
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    head = json.loads(f.read(n))
    data = f.read()
worst = 1.0
for name, t in head.items():
    if name.endswith(".smoother"):
        b, e = t["data_offsets"]
        v = struct.unpack("<%df" % ((e - b) // 4), data[b:e])
        worst = max(worst, max(v) / min(v))
print("largest smoother spread %.5f" % worst)
sys.exit(0 if worst < 1.01 else 1)
PY
    fail "the W8A8 checkpoint is smoothed"
if ev 1 --model_dir "$WORK/mo" --checkpoint_dir "$WORK/sq_tens" --checkpoint_dir "$WORK/w8a8" \
    --dataset "$WORK/ids.jsonl" --batch_size 2 --output_json "$WORK/u.json"; then
    jq_py "$WORK/u.json" <<'PY' && pass "SmoothQuant (alpha 0.5) beats per-tensor W8A8 without smoothing on outlier channels" ||
import json, sys
sq, plain = json.load(open(sys.argv[1]))["checkpoints"]
print("SmoothQuant final %.4f KL %.4g ratio %.4f; unsmoothed final %.4f KL %.4g ratio %.4f" % (
    sq["final_norm_rel_error"], sq["kl_mean"], sq["perplexity_ratio"],
    plain["final_norm_rel_error"], plain["kl_mean"], plain["perplexity_ratio"]))
sys.exit(0 if sq["final_norm_rel_error"] < plain["final_norm_rel_error"] and sq["kl_mean"] < plain["kl_mean"] else 1)
PY
        fail "SmoothQuant against unsmoothed W8A8"
else
    fail "eval of SmoothQuant against W8A8"; tail -10 "$WORK/last.log"
fi

# Replicas share the sequences: the same numbers on 3 ranks (dp 3).
if ev 3 --model_dir "$WORK/m" --checkpoint_dir "$WORK/w8" --dataset "$WORK/ids.jsonl" \
    --batch_size 2 --output_json "$WORK/q3.json"; then
    jq_py "$WORK/q.json" "$WORK/q3.json" <<'PY' && pass "dp 3 gives the numbers of 1 rank" ||
import json, sys
a = json.load(open(sys.argv[1]))["checkpoints"][0]
b = json.load(open(sys.argv[2]))["checkpoints"][0]
keys = ["perplexity_source", "perplexity_converted", "top1_agreement", "kl_mean", "final_norm_rel_error"]
close = lambda x, y: abs(x - y) <= 1e-9 * max(abs(x), abs(y), 1e-30)
ok = all(close(a[k], b[k]) for k in keys) and all(
    close(x["hidden_rel_error"], y["hidden_rel_error"]) for x, y in zip(a["layers"], b["layers"]))
sys.exit(0 if ok else 1)
PY
        fail "dp 3 differs from 1 rank"
else
    fail "eval on 3 ranks"; tail -20 "$WORK/last.log"
fi

# The logits compared on the GPU (a CUDA build with a device) and on the
# host (TRTCONV_EVAL_HOST_LOGITS=1) give the same numbers: top-1 exactly,
# perplexities to 1e-6, the KL divergence to 1e-6 absolute (CUDA's expf
# against the host's); the CPU build compares on the host both times.
if ev 2 --model_dir "$WORK/m" --checkpoint_dir "$WORK/w8" --checkpoint_dir "$WORK/w4" \
    --dataset "$WORK/ids.jsonl" --batch_size 2 --output_json "$WORK/dev.json" &&
    where=$(grep -o -m1 "logits compared on the [A-Za-z]*" "$WORK/last.log" | head -1) &&
    TRTCONV_EVAL_HOST_LOGITS=1 timeout 300 "$MPIEXEC" -x TRTCONV_EVAL_HOST_LOGITS -np 2 "$TRTCONV" \
        eval --model_dir "$WORK/m" --checkpoint_dir "$WORK/w8" --checkpoint_dir "$WORK/w4" \
        --dataset "$WORK/ids.jsonl" --batch_size 2 --output_json "$WORK/host.json" \
        </dev/null >"$WORK/last.log" 2>&1 &&
    grep -q "logits compared on the host" "$WORK/last.log"; then
    jq_py "$WORK/dev.json" "$WORK/host.json" <<'PY' && pass "eval's ${where} by default and on the host (TRTCONV_EVAL_HOST_LOGITS=1): the same top-1, perplexities and KL" ||
import json, sys
a = json.load(open(sys.argv[1]))["checkpoints"]
b = json.load(open(sys.argv[2]))["checkpoints"]
rel = lambda x, y: abs(x - y) <= 1e-6 * max(abs(x), abs(y))
ok = True
for x, y in zip(a, b):
    ok = ok and x["top1_agreement"] == y["top1_agreement"] and x["predicted_tokens"] == y["predicted_tokens"]
    ok = ok and rel(x["perplexity_source"], y["perplexity_source"]) and rel(x["perplexity_converted"], y["perplexity_converted"])
    ok = ok and abs(x["kl_mean"] - y["kl_mean"]) <= 1e-6
    print("top-1 %.6f / %.6f, ppl %.8f / %.8f, KL %.3e / %.3e" % (x["top1_agreement"], y["top1_agreement"],
          x["perplexity_converted"], y["perplexity_converted"], x["kl_mean"], y["kl_mean"]))
sys.exit(0 if ok and len(a) == len(b) == 2 else 1)
PY
        fail "device and host logits comparisons differ"
else
    fail "eval with the logits on the host"; tail -20 "$WORK/last.log"
fi

# Pipeline stages: the int8 checkpoint converted for pp 2 holds the same
# weights, so every number (the errors on the source's inputs included,
# which a later stage takes from the stage before) equals pp 1's.
run_np 2 --model_dir "$WORK/m" --output_dir "$WORK/w8pp" --use_weight_only \
    --weight_only_precision int8 --target_sm 80 --pp_size 2 </dev/null || cat "$WORK/last.log"
if ev 2 --model_dir "$WORK/m" --checkpoint_dir "$WORK/w8pp" --dataset "$WORK/ids.jsonl" \
    --batch_size 2 --output_json "$WORK/qpp.json"; then
    jq_py "$WORK/q.json" "$WORK/qpp.json" <<'PY' && pass "pp 2 gives the numbers of pp 1, local errors included" ||
import json, sys
a = json.load(open(sys.argv[1]))["checkpoints"][0]
b = json.load(open(sys.argv[2]))["checkpoints"][0]
close = lambda x, y: abs(x - y) <= 1e-9 * max(abs(x), abs(y), 1e-30)
ok = all(close(a[k], b[k]) for k in ["perplexity_converted", "kl_mean", "final_norm_rel_error"]) and all(
    close(x[k], y[k]) for x, y in zip(a["layers"], b["layers"]) for k in ["hidden_rel_error", "local_rel_error"])
sys.exit(0 if ok else 1)
PY
        fail "pp 2 differs from pp 1"
else
    fail "eval of the pp 2 checkpoint"; tail -20 "$WORK/last.log"
fi

# ---- --eval on a conversion run ----
# (a mixture of experts, here and in the refusals below)
gen --out "$WORK/moe" --layers 2 --hidden 64 --heads 4 --kv_heads 2 --intermediate 128 \
    --vocab 300 --experts 4 --top_k 2 --dtype float16 --seed 3
rm -rf "$WORK/e8"
if run_np 2 --model_dir "$WORK/m" --output_dir "$WORK/e8" --use_weight_only \
    --weight_only_precision int8 --target_sm 80 --tp_size 2 --eval "$WORK/ids.jsonl" </dev/null &&
    [ -f "$WORK/e8/config.json" ] && grep -q "trtconv eval: $WORK/e8" "$WORK/last.log" &&
    grep -q "top-1 agreement" "$WORK/last.log"; then
    pass "--eval: the checkpoint written, then evaluated on the same ranks"
else
    fail "--eval after a conversion"; tail -20 "$WORK/last.log"
fi
rm -rf "$WORK/ef"
rc=0; run_np 1 --model_dir "$WORK/moe" --output_dir "$WORK/ef" --use_weight_only \
    --weight_only_precision int8 --disable_weight_only_quant_plugin --eval "$WORK/ids.jsonl" \
    </dev/null || rc=$?
[ $rc -ne 0 ] && grep -q -- "--eval: of the quantized experts of a mixture-of-experts model" "$WORK/last.log" &&
    [ ! -f "$WORK/ef/config.json" ] && [ -z "$(ls -A "$WORK/ef" 2>/dev/null | grep rank)" ] &&
    pass "--eval with weight-only experts stored without the plugin refused before converting" ||
    { fail "--eval with quantized experts (rc $rc)"; tail -5 "$WORK/last.log"; }
# Such a checkpoint (v0.12 writes it; its MoE plugin takes int8 experts only)
# has no engine to emulate: trtconv eval says so, naming the tensor.
rc=0; run_np 1 --model_dir "$WORK/moe" --output_dir "$WORK/ef" --use_weight_only \
    --weight_only_precision int8 --disable_weight_only_quant_plugin </dev/null || rc=$?
[ $rc -eq 0 ] && { ev 1 --model_dir "$WORK/moe" --checkpoint_dir "$WORK/ef" \
    --dataset "$WORK/ids.jsonl" || rc=$?; }
[ $rc -ne 0 ] && grep -q "experts.*stored without the plugin have no engine to emulate" "$WORK/last.log" &&
    pass "trtconv eval of weight-only experts stored without the plugin: refused with the reason" ||
    { fail "eval of non-plugin experts (rc $rc)"; tail -5 "$WORK/last.log"; }
rm -rf "$WORK/es"
if run_np 1 --model_dir "$WORK/mo" --output_dir "$WORK/es" --smoothquant 0.5 --per_channel \
    --per_token --int8_kv_cache --calib_dataset "$WORK/ids.jsonl" --eval "$WORK/ids.jsonl" </dev/null &&
    grep -q "trtconv eval: $WORK/es" "$WORK/last.log"; then
    pass "--eval after a SmoothQuant + INT8 KV conversion"
else
    fail "--eval after SmoothQuant"; tail -20 "$WORK/last.log"
fi

rm -rf "$WORK/et"
rc=0; run_np 1 --model_dir "$WORK/m" --output_dir "$WORK/et" --tp_size 2 \
    --eval "$WORK/ids.jsonl" </dev/null || rc=$?
[ $rc -ne 0 ] && grep -q "must be a multiple of tp_size x pp_size = 2" "$WORK/last.log" &&
    [ ! -f "$WORK/et/config.json" ] &&
    pass "--eval on fewer ranks than cells refused before converting" ||
    { fail "--eval with 1 rank for tp 2 (rc $rc)"; tail -5 "$WORK/last.log"; }

# ---- refusals ----
refuse() { # refuse WHAT PATTERN ARGS...
    local what=$1 pat=$2
    shift 2
    if ev 1 "$@"; then
        fail "$what: exit 0"
    elif grep -q -- "$pat" "$WORK/last.log"; then
        pass "$what refused"
    else
        fail "$what: no \"$pat\" in:"; tail -5 "$WORK/last.log"
    fi
}
mkdir -p "$WORK/empty"
refuse "a directory without config.json" "config.json: missing" --model_dir "$WORK/m" \
    --checkpoint_dir "$WORK/empty" --dataset "$WORK/ids.jsonl"
run_np 1 --model_dir "$WORK/moe" --output_dir "$WORK/moew8" --use_weight_only \
    --weight_only_precision int8 --target_sm 90 </dev/null || cat "$WORK/last.log"
run_np 1 --model_dir "$WORK/moe" --output_dir "$WORK/moew4" --use_weight_only \
    --weight_only_precision int4 --target_sm 80 </dev/null || cat "$WORK/last.log"
gen --out "$WORK/moeb" --layers 2 --hidden 128 --heads 4 --kv_heads 2 --intermediate 128 \
    --vocab 300 --experts 4 --top_k 2 --dtype float16 --seed 4
run_np 2 --model_dir "$WORK/moeb" --output_dir "$WORK/moebw8" --use_weight_only \
    --weight_only_precision int8 --target_sm 80 --tp_size 2 --moe_ep_size 2 </dev/null ||
    cat "$WORK/last.log"
run_np 1 --model_dir "$WORK/moe" --output_dir "$WORK/moef8" --use_fp8 \
    --calib_dataset "$WORK/ids.jsonl" </dev/null || cat "$WORK/last.log"
# FP8 experts: one static input scale for all experts, a weight scale per
# expert; a x 10 weight scale on layer 1's experts shows in layer 1 alone
# (two layers are too few for the median rule that flags a layer).
cp -r "$WORK/moef8" "$WORK/moef8bad"
times10 "$WORK/moef8bad/rank0.safetensors" transformer.layers.1.mlp.fc.weights_scaling_factor
ev 1 --model_dir "$WORK/moe" --checkpoint_dir "$WORK/moef8" --checkpoint_dir "$WORK/moew8" \
    --checkpoint_dir "$WORK/moef8bad" --dataset "$WORK/ids.jsonl" --output_json "$WORK/moef.json" &&
    jq_py "$WORK/moef.json" <<'PY' &&
import json, sys
f8, w8, bad = json.load(open(sys.argv[1]))["checkpoints"]
e = [l["local_rel_error"] for l in f8["layers"]] + [f8["final_norm_rel_error"]]
print("FP8 experts", e, "int8 weight-only", w8["final_norm_rel_error"],
      "x 10 in layer 1", [l["local_rel_error"] for l in bad["layers"]])
ok = all(0 < x < 0.5 for x in e) and f8["final_norm_rel_error"] > w8["final_norm_rel_error"]
ok &= bad["layers"][1]["local_rel_error"] > 10 * f8["layers"][1]["local_rel_error"]
ok &= bad["layers"][0]["local_rel_error"] == f8["layers"][0]["local_rel_error"]
sys.exit(0 if ok else 1)
PY
    pass "FP8 experts emulated: errors above int8 weight-only's; a x 10 expert weight scale in layer 1 raises layer 1's error on the source's inputs over 10x, layer 0 unchanged" ||
    { fail "FP8 experts"; tail -5 "$WORK/last.log"; }
# Weight-only experts: read back expert by expert (int8 for SM 90 stored in
# SM 80's layout, as v0.12 stores stacked experts), int8 below int4; and a
# tp 2 x moe_ep 2 checkpoint, each rank two whole experts.
ev 2 --model_dir "$WORK/moe" --checkpoint_dir "$WORK/moew8" --checkpoint_dir "$WORK/moew4" \
    --dataset "$WORK/ids.jsonl" --output_json "$WORK/moeq.json" && jq_py "$WORK/moeq.json" <<'PY' &&
import json, math, sys
a, b = json.load(open(sys.argv[1]))["checkpoints"]
e8 = [l["local_rel_error"] for l in a["layers"]] + [a["final_norm_rel_error"]]
e4 = [l["local_rel_error"] for l in b["layers"]] + [b["final_norm_rel_error"]]
print("int8 experts (SM 90)", e8, "int4 experts (SM 80)", e4)
sys.exit(0 if all(0 < x < y < 0.5 for x, y in zip(e8, e4)) and a["top1_agreement"] > 0.9 else 1)
PY
    pass "weight-only experts emulated: int8 (SM 90, experts in SM 80's layout) below int4 at every layer, int8 top-1 above 90%" ||
    { fail "weight-only experts"; tail -5 "$WORK/last.log"; }
ev 2 --model_dir "$WORK/moeb" --checkpoint_dir "$WORK/moebw8" --dataset "$WORK/ids.jsonl" \
    --output_json "$WORK/moeb.json" && jq_py "$WORK/moeb.json" <<'PY' &&
import json, math, sys
r = json.load(open(sys.argv[1]))["checkpoints"][0]
e = [l["local_rel_error"] for l in r["layers"]] + [r["final_norm_rel_error"]]
print("int8 experts, tp 2 x moe_ep 2", e)
sys.exit(0 if all(0 < x < 0.5 for x in e) and r["top1_agreement"] > 0.9 else 1)
PY
    pass "weight-only experts in tp 2 as moe_ep 2: each rank's experts read back, errors small and positive" ||
    { fail "weight-only experts, tp 2 x moe_ep 2"; tail -5 "$WORK/last.log"; }
# A mixture of experts unquantized: its layout read from the mapping
# (moe_tp_size, moe_ep_size; this crashed before), error 0.
run_np 1 --model_dir "$WORK/moe" --output_dir "$WORK/moep" --tp_size 2 --moe_ep_size 2 \
    </dev/null || cat "$WORK/last.log"
ev 2 --model_dir "$WORK/moe" --checkpoint_dir "$WORK/moep" --dataset "$WORK/ids.jsonl" \
    --output_json "$WORK/moe.json" && jq_py "$WORK/moe.json" <<'PY' &&
import json, sys
r = json.load(open(sys.argv[1]))["checkpoints"][0]
lin = [l["linear_rel_error"] for l in r["layers"]]
print(lin)
sys.exit(0 if r["perplexity_ratio"] == 1.0 and all(l["hidden_rel_error"] == 0.0 for l in r["layers"])
         and all(e["qkv"] == 0.0 and e["dense"] == 0.0 and e["fc"] is None and e["proj"] is None
                 for e in lin) else 1)
PY
    pass "an unquantized mixture of experts (tp 2 as moe_ep 2): error 0; attention linears measured, the experts not (null)" ||
    { fail "mixture-of-experts eval"; tail -5 "$WORK/last.log"; }
cp -r "$WORK/w8" "$WORK/nomani" && rm "$WORK/nomani/trtconv-manifest.json"
refuse "weight-only without its SM" "pass --target_sm" --model_dir "$WORK/m" \
    --checkpoint_dir "$WORK/nomani" --dataset "$WORK/ids.jsonl"
ev 1 --model_dir "$WORK/m" --checkpoint_dir "$WORK/nomani" --dataset "$WORK/ids.jsonl" --target_sm 80 \
    && pass "weight-only without a manifest, with --target_sm" || { fail "--target_sm"; tail -5 "$WORK/last.log"; }
refuse "a missing --dataset" "are required" --model_dir "$WORK/m" --checkpoint_dir "$WORK/w8"
# Hostile rank files: a checkpoint of another model (intermediate 192, not
# 256) in the same layout, unquantized and int8: the tensor and the rule
# named, nothing read beyond the header.
gen --out "$WORK/m2" --layers 4 --hidden 128 --heads 8 --kv_heads 4 --intermediate 192 --vocab 300 \
    --dtype float16 --seed 5
run_np 1 --model_dir "$WORK/m2" --output_dir "$WORK/o2" </dev/null || cat "$WORK/last.log"
run_np 1 --model_dir "$WORK/m2" --output_dir "$WORK/o2w" --use_weight_only \
    --weight_only_precision int8 --target_sm 80 </dev/null || cat "$WORK/last.log"
refuse "another model's rank file" "rank0.safetensors: transformer.layers.0.mlp.fc.weight has 24576 elements, the model needs \[256, 128\]" \
    --model_dir "$WORK/m" --checkpoint_dir "$WORK/o2" --dataset "$WORK/ids.jsonl"
refuse "another model's int8 weights" "transformer.layers.0.mlp.fc.weight: a W8A16 weight of 1 \[256, 128\] linear(s) must be I8 \[128, 256\]" \
    --model_dir "$WORK/m" --checkpoint_dir "$WORK/o2w" --dataset "$WORK/ids.jsonl"
finish
