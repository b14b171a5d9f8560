#!/bin/bash
# FP8 against TensorRT-LLM v0.12's own output (tests/data/golden/README.md):
#  - --use_fp8_rowwise [--fp8_kv_cache], float16 and bfloat16, tp 1/2 x
#    pp 1/2 (golden-fp8/fp8rw_*, the model with rows past the clamp, zero
#    rows and rows at the scale floor) and the 2-layer model that keeps
#    every layer unquantized: rank files and config.json byte-identical on
#    tp x pp ranks, and on 1 and 3 ranks for a few layouts;
#  - --fp8_kv_cache alone (golden/v012/fp8kv_fp16_tp{1,2}pp1), byte-identical;
#    with --int8_kv_cache as well FP8 wins (no calibration input needed);
#  - trtconv verify accepts every output, and refuses a rowwise weight whose
#    dtype changed; the refused combinations exit 2 naming the flags.
. "$(dirname "$0")/lib.sh"
F=${TRTCONV_GOLDEN_FP8_DIR:-}
V=${TRTCONV_GOLDEN_DIR:-}/v012
G=${TRTCONV_GOLDEN_DIR:-}/sq_mha
[ -d "$F/models/mha4_fp8/hf" ] || { echo "FAIL: FP8 golden files not found: $F"; exit 1; }
export FP8_TOOLS=$(cd "$(dirname "$0")/../fp8" && pwd)   # stread.py

case_args() { # case_args CASE: the upstream command line with the model path made absolute
    python3 - "$F/$1/case.json" "$F" "$G" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
out = []
for a in c["convert_checkpoint_args"]:
    if a.startswith("models/"):
        a = sys.argv[2] + "/" + a
    elif a.startswith("../sq_mha"):
        a = sys.argv[3] + a[len("../sq_mha"):]
    out.append(a)
print(" ".join(out), c["tp"] * c["pp"])
PY
}

for dir in "$F"/fp8rw_*; do
    c=$(basename "$dir")
    read -r -a args <<<"$(case_args "$c")"
    world=${args[-1]}; unset 'args[-1]'
    nps=$world
    case $c in fp8rw_fp16_kv_tp2pp2|fp8rw_bf16_tp2pp1|fp8rw_fp16_tp1pp1) nps="$world 1 3" ;; esac
    for np in $(printf '%s\n' $nps | sort -un); do
        out=$WORK/$c.$np
        if ! run_np "$np" "${args[@]}" --output_dir "$out"; then
            fail "$c on $np rank(s): trtconv failed"; cat "$WORK/last.log"; continue
        fi
        if same_dir "$dir" "$out"; then
            pass "$c on $np rank(s): rank files and config.json byte-identical to v0.12"
        else
            fail "$c on $np rank(s) differs from v0.12"
        fi
        "$TRTCONV" verify "$out" >"$WORK/verify.log" 2>&1 || { fail "verify $c"; cat "$WORK/verify.log"; }
    done
done

for tp in 1 2; do
    for np in $(printf '%s\n' $tp 1 3 | sort -un); do
        out=$WORK/fp8kv_tp$tp.$np
        run_np "$np" --model_dir "$G/hf" --output_dir "$out" --fp8_kv_cache --tp_size "$tp" &&
            same_dir "$V/fp8kv_fp16_tp${tp}pp1" "$out" &&
            "$TRTCONV" verify "$out" >"$WORK/verify.log" 2>&1 &&
            pass "--fp8_kv_cache tp $tp on $np rank(s): byte-identical to v0.12, verify ok" ||
            { fail "--fp8_kv_cache tp $tp np $np"; cat "$WORK/last.log" "$WORK/verify.log"; }
    done
done
run_np 2 --model_dir "$G/hf" --output_dir "$WORK/both" --fp8_kv_cache --int8_kv_cache --tp_size 2 &&
    same_dir "$V/fp8kv_fp16_tp2pp1" "$WORK/both" &&
    pass "--fp8_kv_cache wins over --int8_kv_cache (as args_to_quant_config), no calibration" ||
    { fail "--fp8_kv_cache with --int8_kv_cache"; cat "$WORK/last.log"; }

# --calibrate_fp8_kv_scale (beyond v0.12): each layer's scale is
# max(|k|, |v|) / 448 of the statistics, the same on every layout; checked
# against the upstream statistics (act_range.safetensors) read here.
H5=$(dirname "$0")/../data/sq/golden_act_range.h5
for lay in "1 1 1" "2 1 2" "2 2 3"; do
    set -- $lay
    run_np "$3" --model_dir "$G/hf" --output_dir "$WORK/kvcal_$1$2" --fp8_kv_cache --calibrate_fp8_kv_scale \
        --calib_stats "$H5" --tp_size "$1" --pp_size "$2" ||
        { fail "--calibrate_fp8_kv_scale tp $1 pp $2"; cat "$WORK/last.log"; }
done
python3 - "$G/act_range.safetensors" "$WORK" <<'PY' && pass "calibrated FP8 KV scales = max(|k|,|v|)/448 of the statistics on tp1, tp2, tp2 x pp2 (3 ranks)" || fail "calibrated FP8 KV scales"
import json, os, struct, sys
sys.path.insert(0, os.environ["FP8_TOOLS"])
from stread import tensors, f32s
def r32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]
act = tensors(sys.argv[1])
want = {}
for L in range(2):
    m = max(max(f32s(act[f"model.layers.{L}.self_attn.{p}_proj.y"][1])) for p in "kv")
    want[L] = r32(m * r32(1.0 / 448.0))
bad = 0
for d, tp, pp in (("kvcal_11", 1, 1), ("kvcal_21", 2, 1), ("kvcal_22", 2, 2)):
    for r in range(tp * pp):
        t = tensors(f"{sys.argv[2]}/{d}/rank{r}.safetensors")
        for L in range(2 // pp):
            g = (r // tp) * (2 // pp) + L
            info, raw = t[f"transformer.layers.{L}.attention.kv_cache_scaling_factor"]
            got = f32s(raw)[0]
            if info["dtype"] != "F32" or got != want[g]:
                print(f"{d} rank {r} layer {g}: {got!r}, want {want[g]!r}")
                bad += 1
cfg = json.load(open(f"{sys.argv[2]}/kvcal_21/config.json"))
bad += cfg["quantization"]["kv_cache_quant_algo"] != "FP8"
sys.exit(bad != 0)
PY
rc=0; run_np 1 --model_dir "$G/hf" --output_dir "$WORK/bad" --calibrate_fp8_kv_scale --calib_stats "$H5" || rc=$?
[ $rc -eq 2 ] && grep -q "needs --fp8_kv_cache" "$WORK/last.log" &&
    pass "--calibrate_fp8_kv_scale without --fp8_kv_cache refused" || { fail "calibrate without fp8 rc $rc"; cat "$WORK/last.log"; }

# fbgemm_fp8 input (Llama-3.1-405B-FP8 style): the FP8 MLP weights and their
# weight_scale rows are taken as stored, split like the weights (down_proj's
# scale whole), clamp_val = ±activation_scale_ub, quant_algo
# FP8_PER_CHANNEL_PER_TOKEN without --use_fp8_rowwise; every layout gives the
# input's own bytes.
gen --out "$WORK/fbsrc" --layers 4 --hidden 128 --heads 4 --kv_heads 2 --intermediate 256 \
    --vocab 300 --dtype bfloat16
mkdir -p "$WORK/fb"
python3 "$(dirname "$0")/../fp8/make_fbgemm_model.py" "$WORK/fbsrc" "$WORK/fb" 800.0
for lay in "1 1 1" "2 1 2" "2 2 4" "2 2 3"; do
    set -- $lay
    out=$WORK/fbout_$1$2_$3
    run_np "$3" --model_dir "$WORK/fb" --output_dir "$out" --tp_size "$1" --pp_size "$2" --dtype bfloat16 &&
        "$TRTCONV" verify "$out" >"$WORK/verify.log" 2>&1 ||
        { fail "fbgemm_fp8 tp $1 pp $2 np $3"; cat "$WORK/last.log" "$WORK/verify.log"; continue; }
    python3 - "$WORK/fb" "$out" "$1" "$2" <<'PY' && pass "fbgemm_fp8 input tp $1 pp $2 on $3 rank(s): FP8 weights and scales as stored, clamp_val ±800" || fail "fbgemm_fp8 tp $1 pp $2 np $3"
import json, os, struct, sys
sys.path.insert(0, os.environ["FP8_TOOLS"])
from stread import tensors
src, out, tp, pp = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
s = tensors(f"{src}/model.safetensors")
cfg = json.load(open(f"{out}/config.json"))
q = cfg["quantization"]
bad = int(q["quant_algo"] != "FP8_PER_CHANNEL_PER_TOKEN" or q["clamp_val"] != [-800.0, 800.0])
L, I, H = 4, 256, 128
per = L // pp
for r in range(tp * pp):
    t = tensors(f"{out}/rank{r}.safetensors")
    tr, pr = r % tp, r // tp
    for loc in range(per):
        g = pr * per + loc
        for hf, trt in (("gate_proj", "fc"), ("up_proj", "gate"), ("down_proj", "proj")):
            info, data = t[f"transformer.layers.{loc}.mlp.{trt}.weight"]
            sw, sd = s[f"model.layers.{g}.mlp.{hf}.weight"]
            if not 0 < g < L - 1:
                bad += info["dtype"] != "BF16"
                continue
            N, K = sw["shape"]
            if trt == "proj":   # row-parallel: columns split, scale whole
                w = I // tp
                want = b"".join(sd[n * K + tr * w: n * K + tr * w + w] for n in range(N))
                want_s = s[f"model.layers.{g}.mlp.{hf}.weight_scale"][1]
            else:               # column-parallel: rows split, scale rows split
                rows = N // tp
                want = sd[tr * rows * K: (tr + 1) * rows * K]
                want_s = s[f"model.layers.{g}.mlp.{hf}.weight_scale"][1][tr * rows * 4: (tr + 1) * rows * 4]
            si, sdat = t[f"transformer.layers.{loc}.mlp.{trt}.per_channel_scale"]
            cv = struct.unpack("<2f", t[f"transformer.layers.{loc}.mlp.clamp_val"][1])
            if info["dtype"] != "F8_E4M3" or data != want or si["dtype"] != "F32" or sdat != want_s \
                    or cv != (-800.0, 800.0):
                print(f"rank {r} layer {g} {trt}: dtype {info['dtype']}, bytes equal {data == want}, "
                      f"scale equal {sdat == want_s}, clamp {cv}")
                bad += 1
sys.exit(bad != 0)
PY
done
rc=0; run_np 1 --model_dir "$WORK/fb" --output_dir "$WORK/bad" --fp8_kv_cache --calibrate_fp8_kv_scale \
    --calib_dataset "$(dirname "$0")/../data/sq/golden_calib.jsonl" || rc=$?
[ $rc -eq 2 ] && grep -q "fbgemm_fp8 checkpoint cannot be calibrated" "$WORK/last.log" &&
    pass "calibrating an fbgemm_fp8 checkpoint refused" || { fail "fbgemm calibration rc $rc"; cat "$WORK/last.log"; }
rc=0; run_np 1 --model_dir "$WORK/fb" --output_dir "$WORK/bad" --use_weight_only --target_sm 90 || rc=$?
[ $rc -eq 2 ] && grep -q "fbgemm_fp8 checkpoint" "$WORK/last.log" &&
    pass "fbgemm_fp8 input with --use_weight_only refused" || { fail "fbgemm + woq rc $rc"; cat "$WORK/last.log"; }
# a missing weight_scale is named
python3 - "$WORK/fb/model.safetensors" <<'PY'
import json, struct, sys
p = sys.argv[1]; b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
k = "model.layers.1.mlp.up_proj.weight_scale"
h["model.layers.1.mlp.up_proj.weight_scalX"] = h.pop(k)
j = json.dumps(h, separators=(",", ":")).encode(); j += b" " * ((8 - len(j) % 8) % 8)
open(p, "wb").write(struct.pack("<Q", len(j)) + j + b[8 + n:])
PY
rc=0; run_np 1 --model_dir "$WORK/fb" --output_dir "$WORK/bad2" || rc=$?
[ $rc -eq 3 ] && grep -q "model.layers.1.mlp.up_proj.weight_scale" "$WORK/last.log" &&
    pass "fbgemm_fp8 input without a weight_scale refused, naming it" || { fail "missing weight_scale rc $rc"; cat "$WORK/last.log"; }

# verify notices a rowwise weight stored in another dtype.
out=$WORK/fp8rw_fp16_kv_tp2pp2.4
if [ -d "$out" ]; then
    cp -r "$out" "$WORK/tampered"
    sed -i 's/"F8_E4M3"/"F8_E5M2"/' "$WORK/tampered/rank1.safetensors"
    rc=0; "$TRTCONV" verify --no-hash "$WORK/tampered" >"$WORK/verify.log" 2>&1 || rc=$?
    [ $rc -ne 0 ] && grep -q "mlp.*F8_E4M3" "$WORK/verify.log" &&
        pass "verify refuses an FP8 rowwise weight in another dtype" ||
        { fail "verify missed the dtype change (rc $rc)"; cat "$WORK/verify.log"; }
fi

# --use_meta_fp8_rowwise_recipe (later upstream): the legacy loader applies
# the recipe whatever the flag, so the rank files are v0.12's; config.json
# gains "use_meta_recipe": true after clamp_val, as later QuantConfig writes it.
read -r -a args <<<"$(case_args fp8rw_fp16_kv_tp2pp2)"; unset 'args[-1]'
if run_np 4 "${args[@]}" --output_dir "$WORK/meta_recipe" --use_meta_fp8_rowwise_recipe; then
    ok=1
    same_ranks "$F/fp8rw_fp16_kv_tp2pp2" "$WORK/meta_recipe" || { ok=0; echo "  rank files differ"; }
    python3 -c 'import sys; a = open(sys.argv[1]).read(); sys.exit(a.replace("        \"use_meta_recipe\": true,\n", "", 1) != open(sys.argv[2]).read())' \
        "$WORK/meta_recipe/config.json" "$F/fp8rw_fp16_kv_tp2pp2/config.json" ||
        { ok=0; diff "$WORK/meta_recipe/config.json" "$F/fp8rw_fp16_kv_tp2pp2/config.json"; }
    python3 -c 'import json,sys; q=list(json.load(open(sys.argv[1]))["quantization"]); sys.exit(q[q.index("clamp_val") + 1] != "use_meta_recipe")' \
        "$WORK/meta_recipe/config.json" || { ok=0; echo "  use_meta_recipe not after clamp_val"; }
    [ $ok = 1 ] && pass "--use_meta_fp8_rowwise_recipe: v0.12's rank files, config.json with use_meta_recipe after clamp_val" ||
        fail "--use_meta_fp8_rowwise_recipe output"
else
    fail "--use_meta_fp8_rowwise_recipe: trtconv failed"; cat "$WORK/last.log"
fi

for combo in "--smoothquant 0.5" "--use_weight_only"; do
    rc=0; run_np 1 --model_dir "$G/hf" --output_dir "$WORK/bad" --use_fp8_rowwise $combo || rc=$?
    [ $rc -eq 2 ] && grep -q "use_fp8_rowwise excludes" "$WORK/last.log" &&
        pass "--use_fp8_rowwise with $combo refused" || { fail "--use_fp8_rowwise $combo rc $rc"; cat "$WORK/last.log"; }
done
finish
