#!/bin/bash
# bench_calib_stream.sh BUILD_DIR: layer-streamed calibration against the
# micro-batch schedule (docs/calibration-memory.md), one rank on the GPU, in
# one invocation. For each of
#   fp8  --use_fp8 --fp8_kv_cache
#   sq   --smoothquant 0.5 --per_channel --per_token --int8_kv_cache
# and each schedule (--calib_schedule layer | batch): wall seconds, the
# phases the run logs, peak host RSS and peak GPU memory in use (nvidia-smi
# sampled every 100 ms; the baseline before the run subtracted). Model:
# the Llama-3-8B shape with LAYERS layers (default 32; bench_lib.sh),
# SEQS x LEN random ids (default 512 x 512). SMALL_LAYERS (default 8) adds
# the fp8 layer-schedule run on a model of that depth: GPU memory should
# not grow with depth.
set -euo pipefail
B=${1:-build}
W=${BENCH_DIR:-/tmp/trtconv-bench}/stream
LAYERS=${LAYERS:-32} SEQS=${SEQS:-512} LEN=${LEN:-512} SMALL_LAYERS=${SMALL_LAYERS:-8}
mkdir -p "$W"
. "$(dirname "$0")/bench_lib.sh"
random_ids "$SEQS" "$LEN" >"$W/ids.jsonl"
gpu_used() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1; }
run() { # run NAME MODEL_DIR ARGS...
    local name=$1 model=$2 base t0 t1 rss
    shift 2
    rm -rf "$W/out"
    sync
    base=$(gpu_used)
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 >"$W/smi-$name" &
    local smi=$!
    t0=$(date +%s.%N)
    /usr/bin/time -f "%M" -o "$W/rss" mpirun -np 1 --bind-to none "$B/trtconv" --model_dir "$model" \
        --output_dir "$W/out" --progress none --calib_dataset "$W/ids.jsonl" --calib_size "$SEQS" \
        --calib_max_seq_length "$LEN" --calib_batch_size 8 "$@" >"$W/log-$name" 2>&1 ||
        { kill $smi; cat "$W/log-$name" >&2; exit 1; }
    t1=$(date +%s.%N)
    kill $smi; wait $smi 2>/dev/null || true
    rss=$(cat "$W/rss")
    local peak
    peak=$(sort -n "$W/smi-$name" | tail -1)
    printf "| %s | %.2f | %.0f | %d |\n" "$name" "$(awk "BEGIN{print $t1 - $t0}")" \
        "$(awk "BEGIN{print $rss / 1024}")" "$((peak - base))"
    grep -E "statistics [0-9.]+ s|FP8 per tensor|calibration forward" "$W/log-$name" | sed 's/^trtconv[^:]*: /    /' | head -3
}
llama8b_model "$B" "$W" "$LAYERS" float16
echo "model: $LAYERS layers of Llama-3-8B shape, float16; $SEQS x $LEN tokens"
echo "| run | seconds | peak RSS (MiB) | peak GPU memory (MiB) |"
echo "|---|---|---|---|"
for sch in layer batch; do
    run "fp8-$sch" "$W/model" --use_fp8 --fp8_kv_cache --calib_schedule $sch --log_level info
done
for sch in layer batch; do
    run "sq-$sch" "$W/model" --smoothquant 0.5 --per_channel --per_token --int8_kv_cache \
        --calib_schedule $sch --log_level info
done
if [ "$SMALL_LAYERS" -gt 0 ]; then
    mkdir -p "$W/small"
    llama8b_model "$B" "$W/small" "$SMALL_LAYERS" float16
    run "fp8-layer-${SMALL_LAYERS}L" "$W/small/model" --use_fp8 --fp8_kv_cache --calib_schedule layer --log_level info
    run "fp8-batch-${SMALL_LAYERS}L" "$W/small/model" --use_fp8 --fp8_kv_cache --calib_schedule batch --log_level info
fi
rm -rf "$W/out"
