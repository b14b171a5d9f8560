#!/bin/bash
# bench_calib_70b.sh BUILD_DIR: a Llama-3-70B-shaped model (hidden 8192, 64
# heads, 8 KV heads, intermediate 28672, vocab 128256, llama3 rope) with
# LAYERS decoder layers (default 8: what the GPU machine's 64 GB disk holds
# with the model and its output), calibrated and converted on ONE GPU with
# --use_fp8 --fp8_kv_cache (or the flags in METHOD, e.g. METHOD="--smoothquant
# 0.5 --per_channel --per_token --int8_kv_cache") in the layer-streamed schedule, SEQS x LEN random
# ids (default 512 x 512). Reports the wall time, the statistics phase, the
# time per layer and the statistics extrapolated to 80 layers (per-layer
# time x 80: the embedding and lm_head are counted in every layer's share,
# so this is an upper bound), peak host RSS and peak GPU memory in use
# (nvidia-smi every 100 ms, minus what was in use before). PROFILE=events:
# the run with TRTCONV_FWD_PROFILE=events, its per-class GPU time and the
# layer loop's span printed (the span over LAYERS is the per-layer time
# without the setup, embedding and lm_head). OUTPUT_DIR: where the
# checkpoint goes (default under BENCH_DIR; e.g. /dev/shm/x to time the
# calibration without the disk).
set -euo pipefail
B=${1:-build}
W=${BENCH_DIR:-/tmp/trtconv-bench}/70b
LAYERS=${LAYERS:-8} SEQS=${SEQS:-512} LEN=${LEN:-512}
METHOD=${METHOD:---use_fp8 --fp8_kv_cache}
OD=${OUTPUT_DIR:-$W/out}
mkdir -p "$W"
. "$(dirname "$0")/bench_lib.sh"
if [ ! -f "$W/model/config.json" ] || [ "$(cat "$W/layers" 2>/dev/null)" != "$LAYERS" ]; then
    "$B/trtconv-genmodel" --out "$W/model" --layers "$LAYERS" --hidden 8192 --heads 64 --kv_heads 8 \
        --intermediate 28672 --vocab 128256 --dtype float16 --rope_theta 500000 \
        --rope_scaling llama3 --max_pos 131072 --shards 8 >/dev/null
    echo "$LAYERS" >"$W/layers"
fi
random_ids "$SEQS" "$LEN" >"$W/ids.jsonl"
echo "model: $LAYERS layers of Llama-3-70B shape, float16, $(du -sh "$W/model" | cut -f1); $SEQS x $LEN tokens; $METHOD"
rm -rf "$OD"
sync
base=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)
nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 >"$W/smi" &
smi=$!
t0=$(date +%s.%N)
TRTCONV_FWD_PROFILE=${PROFILE:-0} /usr/bin/time -f "%M" -o "$W/rss" mpirun -np 1 --bind-to none \
    -x TRTCONV_FWD_PROFILE "$B/trtconv" --model_dir "$W/model" \
    --output_dir "$OD" --progress none --calib_batch_size 8 $METHOD --calib_dataset "$W/ids.jsonl" \
    --calib_size "$SEQS" --calib_max_seq_length "$LEN" --log_level verbose \
    >"$W/log" 2>&1 || { kill $smi; cat "$W/log" >&2; exit 1; }
t1=$(date +%s.%N)
kill $smi; wait $smi 2>/dev/null || true
peak=$(sort -n "$W/smi" | tail -1)
stats=$(grep -oE "statistics [0-9.]+ s" "$W/log" | head -1 | awk '{print $2}')
printf "wall %.2f s; statistics %s s; per layer %.3f s; statistics extrapolated to 80 layers %.1f s\n" \
    "$(awk "BEGIN{print $t1 - $t0}")" "$stats" "$(awk "BEGIN{print $stats / $LAYERS}")" \
    "$(awk "BEGIN{print $stats / $LAYERS * 80}")"
echo "peak RSS $(awk "BEGIN{printf \"%.0f\", $(cat "$W/rss") / 1024}") MiB; peak GPU memory in use $((peak - base)) MiB (before: $base MiB)"
grep -E "calibrating|statistics|layer loop|peak RSS|wrote" "$W/log" | sed 's/^trtconv[^:]*: /    /'
grep -E "profile: .*(gemm|rmsnorm|rope|attention|residual|silu|host|span|between|FLOP)|SmoothQuant while" "$W/log" |
    sed -E 's/^trtconv[^:]*: (profile: )?/  /' | tr -s ' ' | cut -c1-190 || true # (none: FP8 unprofiled)
du -sh "$OD"
# The full log too, when a GPU-machine call collects logs under $OUT (its
# output may be filtered or cut; session 17 lost a profile that way).
[ -n "${OUT:-}" ] && [ -d "$OUT" ] &&
    { echo "######## $LAYERS layers, $B: $METHOD"; cat "$W/log"; } >>"$OUT/runs70.log"
rm -rf "$OD"
# The model (30 GB at 16 layers) would leave too little of the 64 GB disk
# for the next benchmark of the same call: kept only with KEEP_MODEL=1.
[ "${KEEP_MODEL:-0}" = 1 ] || rm -rf "$W"
