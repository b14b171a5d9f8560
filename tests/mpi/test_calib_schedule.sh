#!/bin/bash
# The two calibration schedules (fwd_stream.c; docs/calibration-memory.md):
# layer by layer (the default: one decoder layer resident, the hidden
# states of the whole set in one buffer) and micro-batch by micro-batch
# (--calib_schedule batch) give bit-identical statistics and rank files:
#  - SmoothQuant per-channel per-token + INT8 KV, and FP8 per tensor with a
#    calibrated FP8 KV scale, on 1 rank, tp 2, pp 2, tp 2 x pp 2 and
#    pp 2 x dp 2 (4 ranks), micro-batches of 3 sequences of uneven length;
#  - an 8-expert MoE model with --use_fp8 on moe_ep 2 and moe_tp 2 x dp 2;
#  - FP8 per tensor, SmoothQuant (each layer smoothed, quantized and
#    written in the calibration's per-layer hook) and a calibrated INT8 KV
#    cache alone write while they calibrate in the layer schedule
#    (calib_overlap.c): the log says so, and a calibration that meets NaN
#    activations stops the waiting writers: non-zero exit, nothing committed;
#  - SmoothQuant overlapped with --resume keeping one tp rank's file
#    rewrites the other with the same bytes;
#  - the hidden states kept in host memory (TRTCONV_CALIB_SPILL=1, what
#    happens when they do not fit on the device): the same bytes;
#  - a full disk under the writes of SmoothQuant's per-layer hook stops the
#    job with nothing committed;
#  - profiling (TRTCONV_FWD_PROFILE) changes no byte and reports its classes;
#  - an unknown schedule is refused.
. "$(dirname "$0")/lib.sh"
STATS_TOOL=${STATS:?}
gen --out "$WORK/m" --layers 4 --hidden 128 --heads 8 --kv_heads 4 --intermediate 256 --vocab 300 \
    --dtype float16
gen --out "$WORK/moe" --experts 8 --top_k 2 --layers 2 --hidden 128 --heads 8 --kv_heads 4 \
    --intermediate 192 --vocab 300 --dtype float16
python3 - >"$WORK/ids.jsonl" <<'PY'
import json, random
r = random.Random(1)
for _ in range(13):
    print(json.dumps({"input_ids": [r.randrange(300) for _ in range(r.randrange(5, 40))]}))
PY
both() { # both NAME MODEL NP ARGS...: each schedule; statistics and rank files compared
    local name=$1 model=$2 np=$3 sch ok=1
    shift 3
    for sch in layer batch; do
        run_np "$np" --model_dir "$model" --output_dir "$WORK/o_$sch" --calib_dataset "$WORK/ids.jsonl" \
            --calib_batch_size 3 --calib_stats_out "$WORK/s_$sch.h5" --calib_schedule $sch \
            --overwrite --log_level info "$@" </dev/null || { ok=0; cat "$WORK/last.log"; }
        [ $sch = layer ] && ! grep -q "layer by layer" "$WORK/last.log" && ok=0
        [ $sch = layer ] && [ -n "${TRTCONV_CALIB_SPILL:-}" ] &&
            ! grep -q "stay in host memory" "$WORK/last.log" && { ok=0; echo "not spilled"; }
        # FP8 per tensor, SmoothQuant, or a KV cache alone (passed first),
        # overlaps.
        [ $sch = layer ] && [[ " $* " == *" --use_fp8 "* || " $* " == *" --smoothquant "* ||
                              "$1" == --int8_kv_cache ]] &&
            ! grep -q "with the writing overlapped" "$WORK/last.log" && { ok=0; echo "no overlap"; }
    done
    [ $ok = 1 ] && "$STATS_TOOL" compare "$WORK/s_layer.h5" "$WORK/s_batch.h5" --model_dir "$model" \
        >"$WORK/cmp.log" 2>&1 && same_ranks "$WORK/o_batch" "$WORK/o_layer" &&
        pass "$name: statistics and rank files bit-identical in both schedules" ||
        { fail "$name"; cat "$WORK/cmp.log"; }
    rm -rf "$WORK/o_layer" "$WORK/o_batch" "$WORK"/s_*.h5
}
SQ="--smoothquant 0.5 --per_channel --per_token --int8_kv_cache"
FP8="--use_fp8 --fp8_kv_cache --calibrate_fp8_kv_scale"
for lay in "1 1 1" "2 2 1" "2 1 2" "4 2 2" "4 1 2"; do
    set -- $lay
    both "SmoothQuant, $1 rank(s) tp $2 pp $3" "$WORK/m" $1 --tp_size $2 --pp_size $3 $SQ
    both "FP8, $1 rank(s) tp $2 pp $3" "$WORK/m" $1 --tp_size $2 --pp_size $3 $FP8
done
for lay in "1 1 1" "4 2 2" "4 1 2"; do
    set -- $lay
    both "INT8 KV alone (written while calibrating), $1 rank(s) tp $2 pp $3" "$WORK/m" $1 \
        --int8_kv_cache --tp_size $2 --pp_size $3
done
# The hidden states kept in host memory (as when they do not fit on the
# device), forced: the same bytes.
export TRTCONV_CALIB_SPILL=1
both "hidden states in host memory: SmoothQuant, tp 2 x pp 2" "$WORK/m" 4 --tp_size 2 --pp_size 2 $SQ
both "hidden states in host memory: FP8, pp 2 x dp 2" "$WORK/m" 4 --tp_size 1 --pp_size 2 $FP8
unset TRTCONV_CALIB_SPILL
both "MoE FP8, moe_ep 2" "$WORK/moe" 2 --tp_size 2 --moe_ep_size 2 --use_fp8
both "MoE FP8, moe_tp 2 x dp 2" "$WORK/moe" 4 --tp_size 2 --moe_tp_size 2 --use_fp8
# --resume keeping one tp rank's file: the kept rank still smooths its
# slices while calibrating (the tp group reduces over both), so the other
# file is rewritten with the same bytes.
rm -rf "$WORK/r"
run_np 2 --model_dir "$WORK/m" --output_dir "$WORK/r" --tp_size 2 $SQ \
    --calib_dataset "$WORK/ids.jsonl" --calib_batch_size 3 </dev/null || cat "$WORK/last.log"
cp "$WORK/r/rank1.safetensors" "$WORK/rank1.want"
rm -f "$WORK/r/config.json" "$WORK/r/rank1.safetensors"
run_np 2 --model_dir "$WORK/m" --output_dir "$WORK/r" --tp_size 2 $SQ \
    --calib_dataset "$WORK/ids.jsonl" --calib_batch_size 3 --resume </dev/null &&
    grep -q "keeping rank0.safetensors" "$WORK/last.log" &&
    grep -q "with the writing overlapped" "$WORK/last.log" &&
    cmp -s "$WORK/r/rank1.safetensors" "$WORK/rank1.want" &&
    pass "SmoothQuant overlapped with --resume keeping rank 0's file: rank 1 rewritten identical" ||
    { fail "SmoothQuant overlapped --resume"; tail -5 "$WORK/last.log"; }
# A write that fails inside SmoothQuant's layer hook (the disk full under the writer
# threads, rank 0's file) stops the job: non-zero exit naming it, nothing
# committed, no rank left waiting.
rm -rf "$WORK/f"
# (The 7th write of the file is the first layer's, from the hook; the ones
# before are the conversion workers'.)
rc=0; LD_PRELOAD=$FAULT_SHIM TC_FAULT_OP=pwrite TC_FAULT_PATH=.partial TC_FAULT_AFTER=6 \
    TC_FAULT_ACTION=enospc run_np 1 --model_dir "$WORK/m" \
    --output_dir "$WORK/f" $SQ --calib_dataset "$WORK/ids.jsonl" --calib_batch_size 3 </dev/null ||
    rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "fault_shim:" "$WORK/last.log" &&
    grep -qi "no space left" "$WORK/last.log" &&
    grep -q "calibration forward pass failed" "$WORK/last.log" && [ ! -f "$WORK/f/config.json" ] &&
    [ -z "$(ls -A "$WORK/f" 2>/dev/null | grep '^rank')" ] &&
    pass "SmoothQuant layer hook: a full disk under its writes stops the job (exit $rc), nothing committed" ||
    { fail "SmoothQuant layer hook, full disk (rc $rc)"; tail -8 "$WORK/last.log"; ls -la "$WORK/f"; }
# Profiling (TRTCONV_FWD_PROFILE=events; the CPU backend falls back to the
# synchronised profile) changes no byte, and reports every operation class
# and the layer loop's host steps.
rm -rf "$WORK/p"
TRTCONV_FWD_PROFILE=events run_np 2 --model_dir "$WORK/m" --output_dir "$WORK/p" --tp_size 2 $SQ \
    --calib_dataset "$WORK/ids.jsonl" --calib_batch_size 3 --log_level verbose </dev/null &&
    same_ranks "$WORK/r" "$WORK/p" >/dev/null &&
    grep -qE "profile: qkv gemm +[0-9.]+ s" "$WORK/last.log" &&
    grep -qE "profile: attention +[0-9.]+ s" "$WORK/last.log" &&
    grep -qE "profile: host, layer by layer: wait for the GPU +[0-9.]+ s" "$WORK/last.log" &&
    grep -q "profile: every layer done" "$WORK/last.log" &&
    pass "TRTCONV_FWD_PROFILE=events: the same bytes, operation classes and host steps reported" ||
    { fail "profiled run"; tail -20 "$WORK/last.log"; }
# Its FLOP count, per tp rank: 4 layers x (2 x 73,728 weights of the rank's
# linears per token + causal attention 4 x 64 x L (L + 1) / 2 per sequence).
flop=$(python3 -c '
import json, sys
lens = [len(json.loads(l)["input_ids"]) for l in open(sys.argv[1])]
print("%.3g" % (4 * (2 * 73728 * sum(lens) + sum(4 * 64 * L * (L + 1) / 2 for L in lens))))' \
    "$WORK/ids.jsonl")
grep -F "profile: $flop FLOP in the linears and attention" "$WORK/last.log" | grep -qE ": [0-9.e+-]+ TFLOP/s" &&
    pass "TRTCONV_FWD_PROFILE: the linears' and attention's FLOP counted ($flop per rank)" ||
    { fail "profile FLOP count (want $flop)"; grep "FLOP" "$WORK/last.log"; }
gen --out "$WORK/nan" --special_values
rc=0; run_np 2 --model_dir "$WORK/nan" --output_dir "$WORK/e" --tp_size 2 --use_fp8 \
    --calib_dataset "$WORK/ids.jsonl" </dev/null || rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "NaN or Inf in the activations" "$WORK/last.log" &&
    [ ! -f "$WORK/e/config.json" ] && [ -z "$(ls -A "$WORK/e" 2>/dev/null | grep rank)" ] &&
    pass "FP8 overlapped: NaN activations stop the writers (exit $rc), nothing committed" ||
    { fail "FP8 overlapped with NaN (rc $rc)"; cat "$WORK/last.log"; ls -la "$WORK/e"; }
rm -rf "$WORK/e"
rc=0; run_np 1 --model_dir "$WORK/nan" --output_dir "$WORK/e" $SQ \
    --calib_dataset "$WORK/ids.jsonl" </dev/null || rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "NaN or Inf in the activations" "$WORK/last.log" &&
    [ ! -f "$WORK/e/config.json" ] && [ -z "$(ls -A "$WORK/e" 2>/dev/null | grep rank)" ] &&
    pass "SmoothQuant overlapped: NaN activations stop the writers (exit $rc), nothing committed" ||
    { fail "SmoothQuant overlapped with NaN (rc $rc)"; cat "$WORK/last.log"; ls -la "$WORK/e"; }
rc=0; run_np 1 --model_dir "$WORK/m" --output_dir "$WORK/bad" --int8_kv_cache \
    --calib_dataset "$WORK/ids.jsonl" --calib_schedule sideways || rc=$?
[ $rc -eq 2 ] && grep -q "choose from layer, batch" "$WORK/last.log" &&
    pass "an unknown --calib_schedule is refused" || { fail "--calib_schedule sideways (rc $rc)"; cat "$WORK/last.log"; }
finish
