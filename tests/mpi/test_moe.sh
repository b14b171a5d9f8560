#!/bin/bash
# Mixture of experts (Mixtral; docs/moe.md):
#  - TensorRT-LLM v0.12's own outputs (tests/data/golden/README.md:
#    mixtral_fp16_tp2_moetp2, _moeep2, mixtral_wo_int8_tp1) byte-identical,
#    rank files and config.json, on tp ranks, 1 and 3 ranks;
#  - every rank reads exactly its slices (experts: its share), from the
#    run's "source bytes read per rank" line;
#  - the Mixtral transformers 5.17 saved itself (tests/data/moe), and a
#    generated 8-expert model on tp 4 = moe_tp 2 x moe_ep 2 and with pp 2:
#    router, stacked experts checked against the source in plain Python
#    (tests/moe/check_moe.py); int4 weight-only and the non-plugin path;
#  - --use_fp8 of the experts: statistics against transformers' forward
#    pass (tests/data/moe/expert_amax.json), every scale and FP8 byte against
#    the plain-Python reference, the statistics of moe_tp and moe_ep within
#    float16 rounding of each other (the expert outputs are summed in another
#    order), bit-identical when reused;
#  - refused: SmoothQuant, FP8 rowwise; moe_tp x moe_ep != tp, experts not
#    divisible by moe_ep.
. "$(dirname "$0")/lib.sh"
M=${TRTCONV_GOLDEN_MOE_DIR:-}
export FP8_TOOLS=$(cd "$(dirname "$0")/../fp8" && pwd)   # stread.py
[ -d "$M/models/mixtral/hf" ] || { echo "FAIL: MoE golden files not found: $M"; exit 1; }
CHECK=$(dirname "$0")/../moe/check_moe.py
HF=$M/models/mixtral/hf

golden() { # golden CASE NP ARGS...
    local c=$1 np=$2 out=$WORK/$1.$2.$#
    shift 2
    if ! run_np "$np" --model_dir "$HF" --output_dir "$out" "$@"; then
        fail "$c on $np rank(s) ($*): trtconv failed"; cat "$WORK/last.log"; return
    fi
    same_dir "$M/$c" "$out" && "$TRTCONV" verify "$out" >"$WORK/verify.log" 2>&1 &&
        pass "$c on $np rank(s) ($*): rank files and config.json byte-identical to v0.12, verify ok" ||
        { fail "$c on $np rank(s) ($*)"; cat "$WORK/verify.log"; }
}
for np in 2 1 3; do
    golden mixtral_fp16_tp2_moetp2 $np --tp_size 2 --moe_tp_size 2 --moe_ep_size 1
    golden mixtral_fp16_tp2_moeep2 $np --tp_size 2 --moe_tp_size 1 --moe_ep_size 2
done
for np in 1 3; do
    golden mixtral_wo_int8_tp1 $np --use_weight_only --weight_only_precision int8 --target_sm 90
done
# Defaults as convert_checkpoint.py derives them: -1/-1 is moe_tp = tp.
golden mixtral_fp16_tp2_moetp2 2 --tp_size 2
golden mixtral_fp16_tp2_moeep2 2 --tp_size 2 --moe_ep_size 2

run_np 2 --model_dir "$HF" --output_dir "$WORK/rd_ep" --tp_size 2 --moe_ep_size 2 &&
    python3 "$CHECK" reads "$HF" "$WORK/rd_ep" 2 1 1 2 "$WORK/last.log" >"$WORK/chk.log" 2>&1 &&
    pass "moe_ep 2: $(cat "$WORK/chk.log")" || { fail "bytes read, moe_ep 2"; cat "$WORK/chk.log"; }
run_np 4 --model_dir "$HF" --output_dir "$WORK/rd_tp" --tp_size 2 --pp_size 2 --moe_tp_size 2 &&
    python3 "$CHECK" reads "$HF" "$WORK/rd_tp" 2 2 2 1 "$WORK/last.log" >"$WORK/chk.log" 2>&1 &&
    pass "tp 2 x pp 2, moe_tp 2: $(cat "$WORK/chk.log")" || { fail "bytes read, moe_tp 2 pp 2"; cat "$WORK/chk.log"; }

# The checkpoint transformers 5.17 wrote itself.
TF=$(dirname "$0")/../data/moe/hf_mixtral_tf5
run_np 2 --model_dir "$TF" --output_dir "$WORK/tf" --tp_size 2 --moe_ep_size 2 &&
    "$TRTCONV" verify "$WORK/tf" >"$WORK/verify.log" 2>&1 &&
    python3 "$CHECK" experts "$TF" "$WORK/tf" 2 1 1 2 >"$WORK/chk.log" 2>&1 &&
    python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); m=c["moe"]; sys.exit(not (m["num_experts"]==4 and m["top_k"]==2 and m["normalization_mode"]==1 and c["hidden_act"]=="swiglu" and c["dtype"]=="float16" and c["mapping"]["moe_ep_size"]==2))' "$WORK/tf/config.json" &&
    pass "transformers 5.17's own Mixtral: $(cat "$WORK/chk.log"), moe object and swiglu in config.json" ||
    { fail "transformers' Mixtral"; cat "$WORK/last.log" "$WORK/verify.log" "$WORK/chk.log"; }

# The MoE forward pass against transformers' Mixtral (its float32 logits of
# 2 x 16 ids, made on the GPU machine with the fixture): within float16
# rounding in every expert layout, and the calibration it serves.
python3 - "$TF/../logits.json" >"$WORK/ids.jsonl" <<'PY'
import json, sys
for ids in json.load(open(sys.argv[1]))["input_ids"]:
    print(json.dumps({"input_ids": ids}))
PY
for lay in "1 1 -1 -1" "2 2 2 1" "2 2 1 2" "4 2 1 2"; do
    set -- $lay
    timeout 300 "$MPIEXEC" -np $1 "$FORWARD" --model_dir "$TF" --input "$WORK/ids.jsonl" --tp_size $2 \
        --moe_tp_size $3 --moe_ep_size $4 --dtype float16 --dump "$WORK/fwd.safetensors" \
        >"$WORK/fwd.log" 2>&1 &&
        python3 "$(dirname "$0")/../moe/cmp_logits.py" "$WORK/fwd.safetensors" "$TF/../logits.json" 0.001 \
            >"$WORK/cmp.log" 2>&1 &&
        pass "MoE forward, $1 rank(s) tp $2 moe_tp $3 moe_ep $4: $(cat "$WORK/cmp.log")" ||
        { fail "MoE forward tp $2 moe_tp $3 moe_ep $4"; cat "$WORK/fwd.log" "$WORK/cmp.log"; }
done
for kv in "--int8_kv_cache" "--fp8_kv_cache --calibrate_fp8_kv_scale"; do
    run_np 2 --model_dir "$TF" --output_dir "$WORK/kv1" --tp_size 2 --moe_ep_size 2 $kv \
        --calib_dataset "$WORK/ids.jsonl" --calib_stats_out "$WORK/kv1.h5" </dev/null &&
        run_np 1 --model_dir "$TF" --output_dir "$WORK/kv2" --tp_size 2 --moe_tp_size 2 $kv \
            --calib_stats "$WORK/kv1.h5" </dev/null &&
        "$TRTCONV" verify "$WORK/kv1" >"$WORK/verify.log" 2>&1 &&
        python3 - "$WORK/kv1" "$WORK/kv2" <<'PY' &&
import os, sys
sys.path.insert(0, os.environ["FP8_TOOLS"])
from stread import tensors
for r in (0, 1):
    a = tensors(f"{sys.argv[1]}/rank{r}.safetensors")
    b = tensors(f"{sys.argv[2]}/rank{r}.safetensors")
    for k in a:
        if "kv_cache_scaling_factor" in k:
            assert a[k][1] == b[k][1] and a[k][1] != b"\0\0\0\0", k
PY
        pass "calibrated MoE ($kv): moe_ep 2 on 2 ranks, its statistics reused with moe_tp 2 give the same KV scales" ||
        { fail "MoE calibration $kv"; cat "$WORK/last.log" "$WORK/verify.log"; }
    rm -rf "$WORK/kv1" "$WORK/kv2" "$WORK/kv1.h5"
done

# --use_fp8 (per tensor) of the experts, as NVIDIA ModelOpt calibrates and
# exports them (docs/moe.md): calibrated with moe_ep 2 on 2 ranks and with
# moe_tp 2 and dp 2 on 4 ranks, the statistics reused with moe_ep 2 on 3 ranks.
STATS_TOOL=${STATS:?}
run_np 2 --model_dir "$TF" --output_dir "$WORK/f8a" --tp_size 2 --moe_ep_size 2 --use_fp8 \
    --calib_dataset "$WORK/ids.jsonl" --calib_stats_out "$WORK/f8a.h5" </dev/null &&
    "$STATS_TOOL" export "$WORK/f8a.h5" --model_dir "$TF" --out "$WORK/f8a.safetensors" &&
    python3 "$CHECK" amax "$WORK/f8a.safetensors" "$TF/../expert_amax.json" 0.004 >"$WORK/amax.log" 2>&1 &&
    python3 "$CHECK" fp8 "$TF" "$WORK/f8a.safetensors" "$WORK/f8a" 2 1 1 2 >"$WORK/chk.log" 2>&1 &&
    "$TRTCONV" verify "$WORK/f8a" >"$WORK/verify.log" 2>&1 &&
    pass "FP8 experts, moe_ep 2: $(cat "$WORK/amax.log"); $(cat "$WORK/chk.log"); verify ok" ||
    { fail "FP8 experts moe_ep 2"; cat "$WORK/last.log" "$WORK/amax.log" "$WORK/chk.log" "$WORK/verify.log"; }
run_np 4 --model_dir "$TF" --output_dir "$WORK/f8b" --tp_size 2 --moe_tp_size 2 --use_fp8 \
    --calib_dataset "$WORK/ids.jsonl" --calib_stats_out "$WORK/f8b.h5" </dev/null &&
    "$STATS_TOOL" compare "$WORK/f8b.h5" "$WORK/f8a.h5" --model_dir "$TF" --rtol 0.002 >"$WORK/cmp.log" 2>&1 &&
    "$STATS_TOOL" export "$WORK/f8b.h5" --model_dir "$TF" --out "$WORK/f8b.safetensors" &&
    python3 "$CHECK" fp8 "$TF" "$WORK/f8b.safetensors" "$WORK/f8b" 2 1 2 1 >"$WORK/chk.log" 2>&1 &&
    pass "FP8 experts, moe_tp 2 with dp 2 on 4 ranks: $(cat "$WORK/chk.log"); statistics vs moe_ep 2's: $(tail -1 "$WORK/cmp.log")" ||
    { fail "FP8 experts moe_tp 2"; cat "$WORK/last.log" "$WORK/cmp.log" "$WORK/chk.log"; }
run_np 3 --model_dir "$TF" --output_dir "$WORK/f8c" --tp_size 2 --moe_ep_size 2 --use_fp8 \
    --calib_stats "$WORK/f8a.h5" </dev/null &&
    python3 "$CHECK" fp8 "$TF" "$WORK/f8a.safetensors" "$WORK/f8c" 2 1 1 2 >"$WORK/chk.log" 2>&1 &&
    cmp "$WORK/f8a/rank0.safetensors" "$WORK/f8c/rank0.safetensors" &&
    cmp "$WORK/f8a/rank1.safetensors" "$WORK/f8c/rank1.safetensors" &&
    pass "FP8 experts from the saved statistics on 3 ranks: the same bytes" ||
    { fail "FP8 experts from --calib_stats"; cat "$WORK/last.log" "$WORK/chk.log"; }
rm -rf "$WORK/f8a" "$WORK/f8b" "$WORK/f8c"

# A generated 8-expert model in wider layouts.
gen --out "$WORK/g8" --experts 8 --top_k 2 --layers 4 --hidden 128 --heads 8 --kv_heads 4 \
    --intermediate 192 --vocab 300 --dtype float16 --shards 3
for lay in "4 1 2 2 4" "4 1 1 4 3" "2 2 2 1 4" "2 2 1 2 3"; do
    set -- $lay
    out=$WORK/g8_$1$2$3$4_$5
    run_np "$5" --model_dir "$WORK/g8" --output_dir "$out" --tp_size $1 --pp_size $2 \
        --moe_tp_size $3 --moe_ep_size $4 && "$TRTCONV" verify "$out" >"$WORK/verify.log" 2>&1 &&
        python3 "$CHECK" experts "$WORK/g8" "$out" $1 $2 $3 $4 >"$WORK/chk.log" 2>&1 &&
        pass "8 experts, tp $1 pp $2 moe_tp $3 moe_ep $4 on $5 rank(s): $(cat "$WORK/chk.log"), verify ok" ||
        { fail "8 experts tp $1 pp $2 moe_tp $3 moe_ep $4"; cat "$WORK/last.log" "$WORK/verify.log" "$WORK/chk.log"; }
done
# bfloat16 in, bfloat16 out (upstream's rules are dtype-blind; the slices are
# compared byte for byte).
gen --out "$WORK/g8b" --experts 8 --top_k 2 --layers 2 --hidden 128 --heads 8 --kv_heads 4 \
    --intermediate 192 --vocab 300 --dtype bfloat16
for lay in "2 1 2 1 2" "2 1 1 2 3"; do
    set -- $lay
    out=$WORK/g8b_$1$3$4_$5
    run_np "$5" --model_dir "$WORK/g8b" --output_dir "$out" --tp_size $1 --pp_size $2 \
        --moe_tp_size $3 --moe_ep_size $4 --dtype bfloat16 &&
        python3 "$CHECK" experts "$WORK/g8b" "$out" $1 $2 $3 $4 >"$WORK/chk.log" 2>&1 &&
        pass "bfloat16, tp $1 moe_tp $3 moe_ep $4 on $5 rank(s): $(cat "$WORK/chk.log")" ||
        { fail "bfloat16 MoE tp $1 moe_tp $3 moe_ep $4"; cat "$WORK/last.log" "$WORK/chk.log"; }
done
run_np 2 --model_dir "$WORK/g8" --output_dir "$WORK/g8_plain2" --tp_size 2 --moe_ep_size 2 &&
    run_np 2 --model_dir "$WORK/g8" --output_dir "$WORK/g8_np" --tp_size 2 --moe_ep_size 2 \
        --use_weight_only --disable_weight_only_quant_plugin &&
    grep -q "does not run the experts as weight-only" "$WORK/last.log" &&
    python3 "$CHECK" transposed "$WORK/g8_plain2" "$WORK/g8_np" >"$WORK/chk.log" 2>&1 &&
    "$TRTCONV" verify "$WORK/g8_np" >"$WORK/verify.log" 2>&1 &&
    pass "weight-only without the plugin: written as v0.12 writes it, with the warning: $(cat "$WORK/chk.log")" ||
    { fail "non-plugin MoE"; cat "$WORK/last.log" "$WORK/chk.log"; }
run_np 2 --model_dir "$WORK/g8" --output_dir "$WORK/g8_w4" --tp_size 2 --moe_ep_size 2 \
    --use_weight_only --weight_only_precision int4 --target_sm 90 &&
    "$TRTCONV" verify "$WORK/g8_w4" >"$WORK/verify.log" 2>&1 &&
    pass "int4 weight-only experts (SM 80 layout for SM 90, as v0.12): verify ok" ||
    { fail "int4 MoE"; cat "$WORK/last.log" "$WORK/verify.log"; }

refuse() { # refuse WHAT PATTERN ARGS...
    local what=$1 pat=$2 rc=0
    shift 2
    run_np 1 --model_dir "$WORK/g8" --output_dir "$WORK/bad" "$@" || rc=$?
    [ $rc -eq 2 ] || [ $rc -eq 3 ]
    [ $? -eq 0 ] && grep -q -- "$pat" "$WORK/last.log" && [ ! -e "$WORK/bad/config.json" ] &&
        pass "refused: $what" || { fail "$what (rc $rc)"; cat "$WORK/last.log"; }
}
refuse "SmoothQuant (as v0.12 cannot)" "smooth_llama_model reads mlp.gate_proj" --smoothquant 0.5
refuse "FP8 rowwise of experts (as TensorRT-LLM refuses)" "MOE Does not support FP8 rowwise" --use_fp8_rowwise
refuse "moe_tp x moe_ep != tp" "must equal --tp_size 2" --tp_size 2 --moe_tp_size 2 --moe_ep_size 2
gen --out "$WORK/g6" --experts 6 --top_k 2 --layers 1 --hidden 64 --heads 4 --intermediate 64 --vocab 64
rc=0; run_np 1 --model_dir "$WORK/g6" --output_dir "$WORK/bad" --tp_size 4 --moe_ep_size 4 || rc=$?
[ $rc -eq 3 ] && grep -q "num_local_experts = 6 is not divisible by moe_ep_size = 4" "$WORK/last.log" &&
    pass "refused: experts not divisible by moe_ep" || { fail "experts % moe_ep (rc $rc)"; cat "$WORK/last.log"; }
finish
