#!/bin/bash
# --use_fp8 (FP8 per-tensor W8A8, quant_algo FP8; docs/fp8.md):
#  - from stored statistics (TensorRT-LLM's own capture_activation_range
#    output of the golden MHA model, tests/data/sq/golden_act_range.h5), on
#    tp 1, tp 2 and tp 2 x pp 2 on 3 ranks: every scale and every FP8 weight
#    byte equals an independent reference computed in the test
#    (tests/fp8/check_fp8_tensor.py: plain Python from the Hugging Face
#    weights and the safetensors statistics, E4M3 by search over the codes);
#  - calibrated in 5 layouts (tp, pp, dp): every scale bit-identical, and dp
#    rank files byte-identical;
#  - with --fp8_kv_cache: v0.12's constant 1.0 per layer; with
#    --calibrate_fp8_kv_scale: max(|k|,|v|)/448;
#  - verify accepts every output and refuses a changed scale shape;
#  - refused: with --smoothquant, --use_weight_only, --use_fp8_rowwise,
#    --int8_kv_cache; statistics of another forward dtype.
. "$(dirname "$0")/lib.sh"
G=${TRTCONV_GOLDEN_DIR:-}/sq_mha
[ -d "$G/hf" ] || { echo "FAIL: golden model not found: $G"; exit 1; }
H5=$(dirname "$0")/../data/sq/golden_act_range.h5
CALIB=$(dirname "$0")/../data/sq/golden_calib.jsonl
CHECK=$(dirname "$0")/../fp8/check_fp8_tensor.py

for lay in "1 1 1" "2 1 2" "2 2 3"; do
    set -- $lay
    out=$WORK/st_$1$2_$3
    run_np "$3" --model_dir "$G/hf" --output_dir "$out" --use_fp8 --calib_stats "$H5" \
        --tp_size "$1" --pp_size "$2" ||
        { fail "--use_fp8 tp $1 pp $2 np $3"; cat "$WORK/last.log"; continue; }
    python3 "$CHECK" ref "$G/act_range.safetensors" "$G/hf" "$out" "$1" "$2" >"$WORK/ref.log" 2>&1 &&
        "$TRTCONV" verify "$out" >"$WORK/verify.log" 2>&1 &&
        python3 -c 'import json,sys; q=json.load(open(sys.argv[1]))["quantization"]; sys.exit(q["quant_algo"] != "FP8" or q["kv_cache_quant_algo"] is not None)' "$out/config.json" &&
        pass "--use_fp8 tp $1 pp $2 on $3 rank(s): scales and FP8 bytes equal the reference ($(cat "$WORK/ref.log")), verify ok" ||
        { fail "--use_fp8 tp $1 pp $2 np $3 against the reference"; cat "$WORK/ref.log" "$WORK/verify.log"; }
done

# Calibration in five layouts: the statistics are model-form maxima, so the
# scales must not depend on the layout.
for lay in "a 1 1 1" "tp2 2 2 1" "pp2 2 1 2" "tp2pp2 4 2 2" "dp2 2 1 1"; do
    set -- $lay
    run_np "$2" --model_dir "$G/hf" --output_dir "$WORK/c_$1" --use_fp8 --fp8_kv_cache \
        --calibrate_fp8_kv_scale --calib_dataset "$CALIB" --calib_batch_size 3 \
        --tp_size "$3" --pp_size "$4" --calib_stats_out "$WORK/c_$1.h5" </dev/null &&
        "$TRTCONV" verify "$WORK/c_$1" >"$WORK/verify.log" 2>&1 ||
        { fail "calibrated --use_fp8 $1"; cat "$WORK/last.log" "$WORK/verify.log"; continue; }
    [ "$1" = a ] && continue
    python3 "$CHECK" same "$WORK/c_a" 1 1 "$WORK/c_$1" "$3" "$4" >"$WORK/same.log" 2>&1 &&
        pass "calibrated --use_fp8 $1 (np $2 tp $3 pp $4): $(cat "$WORK/same.log") with tp 1 on 1 rank" ||
        { fail "calibrated --use_fp8 $1: scales differ from tp 1"; cat "$WORK/same.log"; }
done
same_ranks "$WORK/c_a" "$WORK/c_dp2" && pass "dp 2: rank files byte-identical to 1 rank" ||
    fail "dp 2 rank files differ"
# The calibrated run's own statistics give the same checkpoint again.
run_np 2 --model_dir "$G/hf" --output_dir "$WORK/r_tp2" --use_fp8 --fp8_kv_cache \
    --calibrate_fp8_kv_scale --calib_stats "$WORK/c_a.h5" --tp_size 2 &&
    same_ranks "$WORK/c_tp2" "$WORK/r_tp2" && pass "--calib_stats from a tp 1 calibration reproduces tp 2" ||
    { fail "--calib_stats reuse for --use_fp8"; cat "$WORK/last.log"; }

# FP8 KV cache with --use_fp8: v0.12's constant, or calibrated.
run_np 1 --model_dir "$G/hf" --output_dir "$WORK/kv1" --use_fp8 --fp8_kv_cache --calib_stats "$H5" &&
    run_np 1 --model_dir "$G/hf" --output_dir "$WORK/kvcal" --use_fp8 --fp8_kv_cache \
        --calibrate_fp8_kv_scale --calib_stats "$H5" ||
    { fail "--use_fp8 with --fp8_kv_cache"; cat "$WORK/last.log"; }
FP8_TOOLS=$(cd "$(dirname "$0")/../fp8" && pwd) python3 - "$G/act_range.safetensors" "$WORK" <<'PY' && pass "FP8 KV with --use_fp8: constant 1.0, or max(|k|,|v|)/448 of the statistics with --calibrate_fp8_kv_scale" || fail "FP8 KV scales with --use_fp8"
import json, os, struct, sys
sys.path.insert(0, os.environ["FP8_TOOLS"])
from stread import tensors, f32s
r32 = lambda x: struct.unpack("<f", struct.pack("<f", x))[0]
act = tensors(sys.argv[1])
bad = 0
for d in ("kv1", "kvcal"):
    t = tensors(f"{sys.argv[2]}/{d}/rank0.safetensors")
    bad += json.load(open(f"{sys.argv[2]}/{d}/config.json"))["quantization"]["kv_cache_quant_algo"] != "FP8"
    for L in range(2):
        got = f32s(t[f"transformer.layers.{L}.attention.kv_cache_scaling_factor"][1])
        m = max(max(f32s(act[f"model.layers.{L}.self_attn.{p}_proj.y"][1])) for p in "kv")
        want = (1.0,) if d == "kv1" else (r32(m * r32(1.0 / 448.0)),)
        if got != want:
            print(d, L, got, want)
            bad += 1
sys.exit(bad != 0)
PY

# verify refuses a per-tensor scale of the wrong shape.
cp -r "$WORK/kv1" "$WORK/tampered"
python3 - "$WORK/tampered/rank0.safetensors" <<'PY'
import json, struct, sys
p = sys.argv[1]; b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
h["transformer.layers.1.mlp.proj.weights_scaling_factor"]["shape"] = [1, 1]
j = json.dumps(h, separators=(",", ":")).encode(); j += b" " * (n - len(j))
open(p, "wb").write(struct.pack("<Q", n) + j + b[8 + n:])
PY
rc=0; "$TRTCONV" verify --no-hash "$WORK/tampered" >"$WORK/verify.log" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "mlp.proj.weights_scaling_factor" "$WORK/verify.log" &&
    pass "verify refuses a per-tensor FP8 scale of another shape" ||
    { fail "verify missed the scale shape (rc $rc)"; cat "$WORK/verify.log"; }

for combo in "--smoothquant 0.5" "--use_weight_only" "--use_fp8_rowwise" "--int8_kv_cache"; do
    rc=0; run_np 1 --model_dir "$G/hf" --output_dir "$WORK/bad" --use_fp8 --calib_stats "$H5" $combo || rc=$?
    [ $rc -eq 2 ] && grep -q -- "--use_fp8 \(excludes\|with --int8\)" "$WORK/last.log" &&
        pass "--use_fp8 with $combo refused" || { fail "--use_fp8 $combo rc $rc"; cat "$WORK/last.log"; }
done
rc=0; run_np 1 --model_dir "$G/hf" --output_dir "$WORK/bad" --use_fp8 --calib_stats "$H5" --dtype bfloat16 || rc=$?
[ $rc -eq 2 ] && grep -q "float16 forward pass" "$WORK/last.log" && [ ! -e "$WORK/bad/config.json" ] &&
    pass "--use_fp8 --dtype bfloat16 with float16 statistics refused, nothing committed" ||
    { fail "dtype mismatch rc $rc"; cat "$WORK/last.log"; }
finish
