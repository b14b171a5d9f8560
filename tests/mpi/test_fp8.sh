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

for combo in "--smoothquant 0.5" "--use_weight_only"; do
    rc=0; run_np 1 --model_dir "$G/hf" --output_dir "$WORK/bad" --use_fp8_rowwise $combo || rc=$?
    [ $rc -eq 2 ] && grep -q "use_fp8_rowwise excludes" "$WORK/last.log" &&
        pass "--use_fp8_rowwise with $combo refused" || { fail "--use_fp8_rowwise $combo rc $rc"; cat "$WORK/last.log"; }
done
finish
