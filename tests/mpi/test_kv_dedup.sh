#!/bin/bash
# --remove_duplicated_kv_heads (TensorRT-LLM v0.12, Llama-3.1-405B's Hugging
# Face checkpoint stores every KV head twice; docs/fp8.md): a generated GQA
# model (8 heads, 2 KV heads) and the same model with each KV head stored
# twice (tests/tools/make_dup_kv_model.py). Converting the doubled model with
# the flag must give the original's conversion byte for byte, config.json
# differing only in "remove_duplicated_kv_heads": true:
#  - plain bfloat16 on tp 1, 2 and 4 (4 > the 2 KV heads: duplicated per
#    rank again) and tp 2 x pp 2 on 3 ranks; int8 weight-only; FP8 rowwise;
#  - calibrated (--use_fp8 --fp8_kv_cache --calibrate_fp8_kv_scale, and
#    --int8_kv_cache): the forward pass of the deduplicated model is the
#    original's, so statistics and rank files are identical;
#  - two copies that differ are refused naming the file, tensor and heads;
#    an odd KV head count is refused; --save_config_only records the flag
#    and keeps the count (v0.12 halves it only when converting weights).
. "$(dirname "$0")/lib.sh"
CALIB=$(dirname "$0")/../data/sq/golden_calib.jsonl
gen --out "$WORK/orig" --layers 4 --hidden 128 --heads 8 --kv_heads 2 --intermediate 256 \
    --vocab 512 --dtype bfloat16   # vocab: the calibration ids are < 512
python3 "$(dirname "$0")/../tools/make_dup_kv_model.py" "$WORK/orig" "$WORK/dup"

same_but_flag() { # same_but_flag ORIG_OUT DUP_OUT
    same_ranks "$1" "$2" || return 1
    sed 's/"remove_duplicated_kv_heads": false/"remove_duplicated_kv_heads": true/' "$1/config.json" |
        cmp -s - "$2/config.json" || { echo "  config.json differs beyond the flag"; diff "$1/config.json" "$2/config.json" | head; return 1; }
}
check() { # check NAME NP ARGS...: orig plain vs dup with the flag
    local name=$1 np=$2
    shift 2
    run_np "$np" --model_dir "$WORK/orig" --output_dir "$WORK/o_$name" "$@" </dev/null &&
        run_np "$np" --model_dir "$WORK/dup" --output_dir "$WORK/d_$name" --remove_duplicated_kv_heads "$@" </dev/null &&
        "$TRTCONV" verify "$WORK/d_$name" >"$WORK/verify.log" 2>&1 ||
        { fail "$name: exit $?"; cat "$WORK/last.log" "$WORK/verify.log"; return; }
    same_but_flag "$WORK/o_$name" "$WORK/d_$name" &&
        pass "$name: the doubled model with the flag gives the original's rank files; config.json differs only in the flag" ||
        fail "$name"
}
check tp1 1
check tp2 2 --tp_size 2
check tp4 4 --tp_size 4
check tp2pp2 3 --tp_size 2 --pp_size 2
check woq8_tp2 2 --tp_size 2 --use_weight_only --target_sm 90
check fp8rw 1 --use_fp8_rowwise
check fp8_calibrated 2 --tp_size 2 --use_fp8 --fp8_kv_cache --calibrate_fp8_kv_scale \
    --calib_dataset "$CALIB" --calib_batch_size 3
check int8kv 2 --tp_size 2 --int8_kv_cache --calib_dataset "$CALIB" --calib_batch_size 3
python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); sys.exit(c["num_key_value_heads"] != 2 or not c["remove_duplicated_kv_heads"])' "$WORK/d_tp2/config.json" &&
    pass "config.json: num_key_value_heads halved to 2, remove_duplicated_kv_heads true" ||
    fail "config.json of the deduplicated model"

# Copies that differ: head 3 of layer 2's v_proj changed in one byte.
cp -r "$WORK/dup" "$WORK/bad"
python3 - "$WORK/bad/model.safetensors" <<'PY'
import json, struct, sys
p = sys.argv[1]; b = bytearray(open(p, "rb").read()); n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n]); t = h["model.layers.2.self_attn.v_proj.weight"]
rows, cols = t["shape"]; row = 2 * cols; d = rows // 4
b[8 + n + t["data_offsets"][0] + 3 * d * row + 5] ^= 1
open(p, "wb").write(b)
PY
rc=0; run_np 2 --model_dir "$WORK/bad" --output_dir "$WORK/bad_out" --remove_duplicated_kv_heads --tp_size 2 || rc=$?
[ $rc -eq 3 ] && grep -q "model.layers.2.self_attn.v_proj.weight': stored KV heads 2 and 3 differ" "$WORK/last.log" &&
    [ ! -e "$WORK/bad_out/config.json" ] && pass "differing copies refused, naming the tensor and the heads; nothing committed" ||
    { fail "differing copies rc $rc"; cat "$WORK/last.log"; }
gen --out "$WORK/odd" --layers 2 --hidden 128 --heads 8 --kv_heads 1 --intermediate 256 --vocab 300
rc=0; run_np 1 --model_dir "$WORK/odd" --output_dir "$WORK/odd_out" --remove_duplicated_kv_heads || rc=$?
[ $rc -eq 3 ] && grep -q "needs an even num_key_value_heads" "$WORK/last.log" &&
    pass "an odd KV head count refused" || { fail "odd kv heads rc $rc"; cat "$WORK/last.log"; }
run_np 1 --model_dir "$WORK/dup" --output_dir "$WORK/cfg_only" --remove_duplicated_kv_heads --save_config_only &&
    python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); sys.exit(c["num_key_value_heads"] != 4 or not c["remove_duplicated_kv_heads"])' "$WORK/cfg_only/config.json" &&
    pass "--save_config_only records the flag and keeps num_key_value_heads (as v0.12)" ||
    { fail "--save_config_only with the flag"; cat "$WORK/last.log"; }
finish
