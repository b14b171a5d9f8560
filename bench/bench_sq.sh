#!/bin/bash
# bench_sq.sh BUILD_DIR: SmoothQuant conversion on one GPU against
# transformers' calibration with the same hooks, in one invocation
# (docs/performance.md, "SmoothQuant").
#   model : trtconv-genmodel, Llama-3-8B shapes (32 layers, hidden 4096, 32
#           heads, 8 KV heads, intermediate 14336, vocab 128256), float16,
#           LAYERS layers (default 32)
#   tokens: SEQS samples x LEN tokens (default 512 x 512), random ids
# Runs: (1) plain float16 conversion (baseline); (2) trtconv --smoothquant
# 0.5 --per_channel --per_token --int8_kv_cache, calibrating, with its phase
# times and peak RSS, then again writing the statistics file (with PROFILE=1
# once more, every operation timed); (3) transformers' calibration (bench/sq_hf.py), whose
# statistics are compared with trtconv's (trtconv-stats compare; SKIP_HF=1
# leaves it out); with TEXT=1 also (4) the SmoothQuant run calibrating from
# plain text through the model's tokenizer (docs/tokenizer.md).
set -euo pipefail
B=${1:-build}
W=${BENCH_DIR:-/tmp/trtconv-bench}/sq
LAYERS=${LAYERS:-32} SEQS=${SEQS:-512} LEN=${LEN:-512} BATCH=${BATCH:-8}
mkdir -p "$W"
. "$(dirname "$0")/bench_lib.sh"
t0=$(date +%s)
llama8b_model "$B" "$W" "$LAYERS" float16
echo "model ready after $(( $(date +%s) - t0 )) s: $(du -sh "$W/model" | cut -f1)"
random_ids "$SEQS" "$LEN" >"$W/ids.jsonl"
sync
echo "== plain float16 conversion (baseline)"
rm -rf "$W/plain"
/usr/bin/time -f "wall %e s, max RSS %M KiB" mpirun -np 1 --bind-to none "$B/trtconv" \
    --model_dir "$W/model" --output_dir "$W/plain" --workers 8 --progress none 2>&1 | grep -E "wrote|wall|peak"
rm -rf "$W/plain"
# One SmoothQuant run: LABEL, then extra flags. Full log (every line stamped
# with its time, TRTCONV_LOG_ELAPSED) in $W/LABEL.log, or under $LOGS.
sq_run() {
    local label=$1
    shift
    rm -rf "$W/sq"
    sync
    # Peak GPU memory: nvidia-smi every 100 ms, minus what was in use before.
    gpu_base=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null | head -1)
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 >"$W/smi" 2>/dev/null &
    smi=$!
    TRTCONV_LOG_ELAPSED=1 /usr/bin/time -f "wall %e s, max RSS %M KiB" mpirun -np 1 --bind-to none \
        -x TRTCONV_LOG_ELAPSED -x TRTCONV_FWD_PROFILE "$B/trtconv" \
        --model_dir "$W/model" --output_dir "$W/sq" --smoothquant 0.5 --per_channel --per_token \
        --int8_kv_cache --calib_dataset "$W/ids.jsonl" --calib_size "$SEQS" \
        --calib_max_seq_length "$LEN" --calib_batch_size "$BATCH" --workers 8 --progress none \
        --log_level verbose "$@" >"${LOGS:-$W}/$label.log" 2>&1
    grep -E "calibrating|SmoothQuant|wrote|wall|peak|error|profile" "${LOGS:-$W}/$label.log"
    kill $smi 2>/dev/null; wait $smi 2>/dev/null
    [ -n "$gpu_base" ] && echo "peak GPU memory in use during the run: $(( $(sort -n "$W/smi" | tail -1) - gpu_base )) MiB"
    du -sh "$W/sq"
    rm -rf "$W/sq"
}
echo "== trtconv SmoothQuant (calibrating $SEQS x $LEN, micro-batches of $BATCH)"
TRTCONV_FWD_PROFILE=0 sq_run sq
echo "== the same writing the statistics file (--calib_stats_out: lm_head calibrated too)"
TRTCONV_FWD_PROFILE=0 sq_run sq_stats --calib_stats_out "$W/sq.h5"
if [ "${PROFILE:-0}" = 1 ]; then
    echo "== the same with every operation synchronised and timed (TRTCONV_FWD_PROFILE=1)"
    TRTCONV_FWD_PROFILE=1 sq_run sq_profile
fi
if [ "${TEXT:-0}" = 1 ]; then
    # Calibration from plain text (docs/tokenizer.md): SEQS articles the
    # byte-level tokenizer of bench/tokenizer_hf.py was not trained on, in
    # the model directory as tokenizer.json, each cut to LEN tokens.
    T=${BENCH_DIR:-/tmp/trtconv-bench}/tok
    [ -f "$T/texts.jsonl" ] || python3 "$(dirname "$0")/tokenizer_hf.py" prepare "$T" >/dev/null
    cp "$T/llama3/tokenizer.json" "$T/llama3/tokenizer_config.json" "$W/model/"
    head -n "$SEQS" "$T/texts.jsonl" >"$W/texts.jsonl"
    echo "== trtconv SmoothQuant calibrating from text ($(wc -l <"$W/texts.jsonl") articles, $(du -h "$W/texts.jsonl" | cut -f1), the model's tokenizer.json)"
    rm -rf "$W/sq-text"
    /usr/bin/time -f "wall %e s, max RSS %M KiB" mpirun -np 1 --bind-to none "$B/trtconv" \
        --model_dir "$W/model" --output_dir "$W/sq-text" --smoothquant 0.5 --per_channel --per_token \
        --int8_kv_cache --calib_dataset "$W/texts.jsonl" --calib_size "$SEQS" \
        --calib_max_seq_length "$LEN" --calib_batch_size "$BATCH" --workers 8 --progress none \
        --log_level verbose 2>&1 | grep -E "tokenizer:|calibrating|SmoothQuant|wrote|wall|peak|error"
    rm -rf "$W/sq-text" "$W/model/tokenizer.json" "$W/model/tokenizer_config.json"
fi
if [ "${SKIP_HF:-0}" != 1 ]; then
    echo "== transformers calibration (hooks, batch 1)"
    python3 "$(dirname "$0")/sq_hf.py" "$W/model" "$W/ids.jsonl" "$W/hf_act_range.safetensors"
    echo "== statistics: trtconv vs transformers"
    "$B/trtconv-stats" compare "$W/sq.h5" "$W/hf_act_range.safetensors" --model_dir "$W/model" \
        --rtol 0.00390625 | tail -12 || true
fi
