#!/bin/bash
# Plain float16 conversion of the golden model (a transformers 5 config)
# against the rank files written by TensorRT-LLM's own converter. The golden
# kv_only_* files hold the plain float16 weights plus INT8 KV scales, which
# a plain conversion does not write: those are ignored.
. "$(dirname "$0")/lib.sh"
G=${TRTCONV_GOLDEN_DIR:-}/sq_mha
[ -d "$G/hf" ] || { echo "FAIL: golden directory not found: $G (TRTCONV_GOLDEN_DIR)"; exit 1; }

for layout in "1 1" "2 1" "1 2" "2 2"; do
    set -- $layout
    tp=$1 pp=$2 world=$((tp * pp))
    for np in $world 1; do
        out=$WORK/tp${tp}pp${pp}_np$np
        if ! run_np "$np" --model_dir "$G/hf" --output_dir "$out" --overwrite --tp_size "$tp" --pp_size "$pp" \
            --dtype float16; then
            fail "tp$tp pp$pp np$np: trtconv failed"; cat "$WORK/last.log"; continue
        fi
        ok=1
        for ((r = 0; r < world; r++)); do
            "$STCOMPARE" --ignore kv_cache_scaling_factor "$G/kv_only_tp${tp}pp${pp}/rank$r.safetensors" \
                "$out/rank$r.safetensors" >"$WORK/cmp.log" || { ok=0; cat "$WORK/cmp.log"; }
        done
        grep -q "\"world_size\": $world" "$out/config.json" || ok=0
        grep -q '"rotary_base": 10000.0' "$out/config.json" || ok=0
        grep -q '"norm_epsilon": 1e-05' "$out/config.json" || ok=0
        [ $ok = 1 ] && pass "tp$tp pp$pp on $np rank(s) equals upstream" || fail "tp$tp pp$pp np$np differs"
    done
done
finish
