#!/bin/bash
# test_sq.sh: SmoothQuant W8A8 and INT8 KV cache (docs/smoothquant.md).
#  1. Given the upstream statistics (tests/data/sq/golden_act_range.h5, made
#     by `trtconv-stats import` from golden/sq_mha/act_range), every
#     rank file of the 5 variants x tp 1/2 x pp 1/2 is byte-identical to
#     TensorRT-LLM's own output, on 1 rank, on tp*pp ranks and on 3 ranks.
#  2. Calibration (CPU path) in 6 layouts (tp, pp, dp) against the statistics
#     transformers' hooks captured on the GPU: within 2^-8 of each
#     statistic's maximum; data parallelism changes no bit; --calib_stats
#     reuse in other layouts and rank counts gives the same bytes.
#  3. Errors: rank count, KV heads < tp, calibration data, NaN activations.
source "$(dirname "$0")/lib.sh"
DATA=$(cd "$(dirname "$0")/../data/sq" && pwd)
STATS_TOOL=${STATS:?}
G=${TRTCONV_GOLDEN_DIR:-}/sq_mha
[ -d "$G" ] || { echo "FAIL: golden files not found in '$G' (TRTCONV_GOLDEN_DIR)"; exit 1; }
H5=$DATA/golden_act_range.h5
CALIB=$DATA/golden_calib.jsonl

declare -A FLAGS=(
    [pt_pt]="--smoothquant 0.5"
    [pc_pt]="--smoothquant 0.5 --per_channel"
    [pt_tok]="--smoothquant 0.5 --per_token"
    [pc_tok_kv]="--smoothquant 0.5 --per_channel --per_token --int8_kv_cache"
    [kv_only]="--int8_kv_cache")
declare -A ALGO=(
    [pt_pt]=W8A8_SQ_PER_TENSOR_PLUGIN [pc_pt]=W8A8_SQ_PER_CHANNEL_PER_TENSOR_PLUGIN
    [pt_tok]=W8A8_SQ_PER_TENSOR_PER_TOKEN_PLUGIN [pc_tok_kv]=W8A8_SQ_PER_CHANNEL_PER_TOKEN_PLUGIN)

# ---- 1. upstream bytes from the same statistics ----
"$STATS_TOOL" compare "$H5" "$G/act_range.safetensors" --model_dir "$G/hf" >/dev/null &&
    pass "stored HDF5 statistics equal the upstream act_range bit for bit" ||
    fail "stored HDF5 statistics differ from act_range"
for v in pt_pt pc_pt pt_tok pc_tok_kv kv_only; do
    for tp in 1 2; do
        for pp in 1 2; do
            for np in 1 $((tp * pp)) 3; do
                out=$WORK/g_${v}_${tp}${pp}_$np
                if ! run_np "$np" --model_dir "$G/hf" --output_dir "$out" --overwrite ${FLAGS[$v]} \
                        --tp_size $tp --pp_size $pp --calib_stats "$H5" </dev/null; then
                    fail "$v tp$tp pp$pp np$np: exit $?"; cat "$WORK/last.log"; continue
                fi
                if same_ranks "$G/${v}_tp${tp}pp${pp}" "$out" &&
                    "$TRTCONV" verify "$out" >"$WORK/verify.log"; then
                    pass "$v tp$tp pp$pp on $np rank(s): byte-identical to TensorRT-LLM"
                else
                    fail "$v tp$tp pp$pp on $np rank(s)"
                fi
            done
        done
    done
    cfg=$WORK/g_${v}_11_1/config.json
    if [ "$v" = kv_only ]; then
        grep -q '"quant_algo": null' "$cfg" && grep -q '"kv_cache_quant_algo": "INT8"' "$cfg" &&
            grep -q '"smoothquant_val": null' "$cfg" && pass "$v: config.json quantization" ||
            fail "$v: config.json quantization"
    else
        kv=null; [ "$v" = pc_tok_kv ] && kv='"INT8"'
        grep -q "\"quant_algo\": \"${ALGO[$v]}\"" "$cfg" && grep -q "\"kv_cache_quant_algo\": $kv" "$cfg" &&
            grep -q '"smoothquant_val": 0.5' "$cfg" && pass "$v: config.json quantization" ||
            fail "$v: config.json quantization"
    fi
done

# ---- 1b. alpha 0.8: TensorRT-LLM v0.12's own output with its statistics ----
# (golden/v012/sq08_*). Every pow of a float16 tensor by 1 - alpha rounds
# the exponent to float16 first (docs/smoothquant.md): alpha 0.5 hides it.
for c in pt_pt_tp1pp1 pt_pt_tp2pp1 pc_tok_kv_tp1pp1 pc_tok_kv_tp2pp1; do
    V=$TRTCONV_GOLDEN_DIR/v012/sq08_$c
    v=${c%_tp*}; tp=${c#*_tp}; tp=${tp%pp*}
    "$STATS_TOOL" import "$V/act_range.safetensors" --model_dir "$G/hf" --out "$WORK/sq08_$c.h5" \
        >/dev/null || { fail "sq08 $c: import of upstream statistics"; continue; }
    for np in $(printf '%s\n' 1 $tp 3 | sort -un); do
        out=$WORK/sq08_${c}_$np
        if ! run_np "$np" --model_dir "$G/hf" --output_dir "$out" \
                ${FLAGS[$v]/--smoothquant 0.5/--smoothquant 0.8} --tp_size $tp \
                --calib_stats "$WORK/sq08_$c.h5" </dev/null; then
            fail "sq08 $c on $np rank(s): exit $?"; cat "$WORK/last.log"; continue
        fi
        same_ranks "$V" "$out" && cmp -s "$V/config.json" "$out/config.json" &&
            pass "alpha 0.8 $c on $np rank(s): rank files and config.json byte-identical to v0.12" ||
            fail "alpha 0.8 $c on $np rank(s) differs from v0.12"
    done
done

# ---- 2. calibration ----
TOL=0.00390625   # 2^-8 of each statistic's maximum: float16 rounding of a
                 # different GEMM summation order, over 2 layers
calib() { # NAME NP TP PP [extra...]
    local name=$1 np=$2 tp=$3 pp=$4
    shift 4
    run_np "$np" --model_dir "$G/hf" --output_dir "$WORK/c_$name" --tp_size $tp --pp_size $pp \
        ${FLAGS[pc_tok_kv]} --calib_dataset "$CALIB" --calib_batch_size 3 \
        --calib_stats_out "$WORK/c_$name.h5" "$@" </dev/null
}
for layout in "a 1 1 1" "tp2 2 2 1" "pp2 2 1 2" "tp2pp2 4 2 2" "dp2 2 1 1" "dp2tp2 4 2 1"; do
    set -- $layout
    if calib "$@"; then
        "$STATS_TOOL" compare "$WORK/c_$1.h5" "$G/act_range.safetensors" --model_dir "$G/hf" \
            --rtol $TOL >"$WORK/cmp.log" && pass "calibration $1 (np $2 tp $3 pp $4): statistics \
within 2^-8 of transformers' hooks ($(sed -n 's/^worst: //p' "$WORK/cmp.log"))" ||
            { fail "calibration $1 statistics"; cat "$WORK/cmp.log"; }
    else
        fail "calibration $1: exit $?"; cat "$WORK/last.log"
    fi
done
if ! command -v h5dump >/dev/null; then
    echo "SKIP: h5dump not installed (hdf5-tools): statistics file not dumped"
else
h5dump -H "$WORK/c_a.h5" >"$WORK/h5.txt" 2>&1 && grep -q 'DATASET "x"' "$WORK/h5.txt" &&
    h5dump -a /samples "$WORK/c_a.h5" >"$WORK/h5a.txt" 2>&1 && grep -q '(0): 16' "$WORK/h5a.txt" && pass "statistics file readable with h5dump (16 samples recorded)" ||
    fail "h5dump of the statistics file"
fi
"$STATS_TOOL" compare "$WORK/c_dp2.h5" "$WORK/c_a.h5" --model_dir "$G/hf" >/dev/null &&
    same_ranks "$WORK/c_a" "$WORK/c_dp2" &&
    pass "data parallel calibration (dp 2): same statistics and rank files bit for bit" ||
    fail "dp 2 differs from dp 1"
"$STATS_TOOL" compare "$WORK/c_dp2tp2.h5" "$WORK/c_tp2.h5" --model_dir "$G/hf" >/dev/null &&
    same_ranks "$WORK/c_tp2" "$WORK/c_dp2tp2" &&
    pass "dp 2 x tp 2 equals tp 2 bit for bit" || fail "dp 2 x tp 2 differs from tp 2"
run_np 2 --model_dir "$G/hf" --output_dir "$WORK/r_a" ${FLAGS[pc_tok_kv]} --calib_stats "$WORK/c_a.h5" &&
    same_ranks "$WORK/c_a" "$WORK/r_a" && pass "--calib_stats reuse on 2 ranks equals calibrating" ||
    fail "--calib_stats reuse differs"
run_np 4 --model_dir "$G/hf" --output_dir "$WORK/r_tp2pp2" ${FLAGS[pc_tok_kv]} --tp_size 2 --pp_size 2 \
    --calib_stats "$WORK/c_tp2pp2.h5" && same_ranks "$WORK/c_tp2pp2" "$WORK/r_tp2pp2" &&
    run_np 1 --model_dir "$G/hf" --output_dir "$WORK/r_tp2pp2_1" ${FLAGS[pc_tok_kv]} --tp_size 2 \
        --pp_size 2 --calib_stats "$WORK/c_tp2pp2.h5" && same_ranks "$WORK/c_tp2pp2" "$WORK/r_tp2pp2_1" &&
    pass "tp 2 x pp 2 statistics reused on 4 and on 1 rank(s): same bytes as calibrating" ||
    fail "tp2pp2 reuse differs"

# Without --calib_stats_out the calibration skips lm_head (no method
# quantizes it): the same rank files.
for layout in "a 1 1 1" "tp2pp2 4 2 2"; do
    set -- $layout
    if run_np "$2" --model_dir "$G/hf" --output_dir "$WORK/nh_$1" --tp_size $3 --pp_size $4 \
        ${FLAGS[pc_tok_kv]} --calib_dataset "$CALIB" --calib_batch_size 3 </dev/null; then
        same_ranks "$WORK/c_$1" "$WORK/nh_$1" && cmp -s "$WORK/c_$1/config.json" "$WORK/nh_$1/config.json" &&
            pass "calibration $1 without lm_head (no --calib_stats_out): rank files byte-identical" ||
            fail "calibration $1 without lm_head differs"
    else
        fail "calibration $1 without --calib_stats_out: exit $?"; cat "$WORK/last.log"
    fi
done

# --resume with SmoothQuant: the smoothing passes still see every cell (their
# maxima are global), only the kept rank files are not rewritten.
if [ -n "${FAULT_SHIM:-}" ]; then
    out=$WORK/r_resume
    rc=0
    timeout 120 "$MPIEXEC" -np 4 -x LD_PRELOAD="$FAULT_SHIM" -x TC_FAULT_OP=rename \
        -x TC_FAULT_PATH=.trtconv-rank1.json.tmp -x TC_FAULT_RANK=1 "$TRTCONV" --progress none \
        --model_dir "$G/hf" --output_dir "$out" ${FLAGS[pc_tok_kv]} --tp_size 2 --pp_size 2 \
        --calib_stats "$WORK/c_tp2pp2.h5" >"$WORK/last.log" 2>&1 || rc=$?
    [ $rc -ne 0 ] && [ ! -e "$out/config.json" ] &&
        run_np 3 --model_dir "$G/hf" --output_dir "$out" ${FLAGS[pc_tok_kv]} --tp_size 2 --pp_size 2 \
            --calib_stats "$WORK/c_tp2pp2.h5" --resume &&
        grep -q "rewriting rank1.safetensors" "$WORK/last.log" &&
        same_ranks "$WORK/c_tp2pp2" "$out" && "$TRTCONV" verify "$out" >/dev/null &&
        pass "SmoothQuant killed before rank 1's record, --resume on 3 ranks: $(grep -c 'resume: keeping' \
            "$WORK/last.log") files kept, bytes as calibrating, verify OK" ||
        { fail "SmoothQuant --resume"; cat "$WORK/last.log"; }
fi

# ---- 3. errors ----
expect_error() { # WHAT NEEDLE ARGS...
    local what=$1 needle=$2
    shift 2
    local rc=0
    run_np "$@" </dev/null || rc=$?
    if [ $rc -ne 0 ] && grep -q -- "$needle" "$WORK/last.log" && [ ! -f "$WORK/e/config.json" ]; then
        pass "$what: exit $rc, \"$needle\""
    else
        fail "$what: exit $rc"; cat "$WORK/last.log"
    fi
    rm -rf "$WORK/e"
}
SQ=(--model_dir "$G/hf" --output_dir "$WORK/e" --smoothquant 0.5)
expect_error "3 ranks for tp 2" "must be a multiple of tp_size x pp_size" 3 "${SQ[@]}" --tp_size 2 \
    --calib_dataset "$CALIB"
gen --out "$WORK/gqa" --heads 8 --kv_heads 2 --hidden 128 --vocab 512
expect_error "GQA with 2 KV heads on tp 4" "num_key_value_heads = 2 < tp_size = 4" 4 \
    --model_dir "$WORK/gqa" --output_dir "$WORK/e" --smoothquant 0.5 --tp_size 4 --calib_dataset "$CALIB"
expect_error "missing calibration file" "no such file" 1 "${SQ[@]}" --calib_dataset "$WORK/none.jsonl"
expect_error "default dataset name" "ccdv/cnn_dailymail: no such file" 1 "${SQ[@]}"
: >"$WORK/empty.jsonl"
expect_error "empty calibration file" "empty.jsonl" 1 "${SQ[@]}" --calib_dataset "$WORK/empty.jsonl"
echo '{"input_ids": [1, 2, 512]}' >"$WORK/oov.jsonl"
expect_error "token id outside the vocabulary" "512" 1 "${SQ[@]}" --calib_dataset "$WORK/oov.jsonl"
echo '{"text": "hello"}' >"$WORK/text.jsonl"
expect_error "text lines, no tokenizer in the model directory" "no tokenizer in" 1 "${SQ[@]}" --calib_dataset "$WORK/text.jsonl"
gen --out "$WORK/nan" --special_values
expect_error "Inf/NaN weights" "NaN or Inf in the activations of layer 0 self_attn.q_proj" 2 \
    --model_dir "$WORK/nan" --output_dir "$WORK/e" --int8_kv_cache --calib_dataset "$CALIB"
expect_error "statistics of another model" "statistics of another model" 1 \
    --model_dir "$WORK/gqa" --output_dir "$WORK/e" --smoothquant 0.5 --calib_stats "$H5"
echo garbage >"$WORK/bad.h5"
expect_error "not an HDF5 file" "not an HDF5 file" 1 "${SQ[@]}" --calib_stats "$WORK/bad.h5"
finish
