#!/bin/bash
# gpu_sq_scale.sh: issue 23's SmoothQuant checks and measurements that the
# 8B benchmark (bench_sq.sh) does not cover, in one call on the GPU machine:
#   1. the 8B-shaped model (LAYERS, default 32) calibrated with SmoothQuant
#      per-channel per-token + INT8 KV twice, the second time with the
#      hidden states spilled to host memory (TRTCONV_CALIB_SPILL=1): both
#      timed, their rank files compared byte for byte; and a third time
#      with --workers 2 instead of 8 (the conversion workers' buffers in the
#      peak RSS);
#   2. a Llama-3-70B-shaped model (LAYERS70, default 16: what the disk holds
#      next to its output; 0: none) calibrated with the same flags on one
#      GPU (bench_calib_70b.sh with METHOD).
# Logs under $OUT (bench/gpu_setup.sh builds build-gpu first).
set -uo pipefail
. "$(dirname "$0")/gpu_setup.sh"
. "$(dirname "$0")/bench_lib.sh"
W=/tmp/trtconv-bench/scale
SQ="--smoothquant 0.5 --per_channel --per_token --int8_kv_cache"
mkdir -p "$W"
llama8b_model build-gpu "$W" "${LAYERS:-32}" float16
random_ids 512 512 >"$W/ids.jsonl"
for mode in resident spilled workers2; do
    spill=0 workers=8
    [ $mode = spilled ] && spill=1
    [ $mode = workers2 ] && workers=2
    rm -rf "$W/$mode"
    TRTCONV_CALIB_SPILL=$spill TRTCONV_LOG_ELAPSED=1 /usr/bin/time -f "wall %e s, max RSS %M KiB" \
        mpirun -np 1 --bind-to none -x TRTCONV_CALIB_SPILL -x TRTCONV_LOG_ELAPSED build-gpu/trtconv \
        --model_dir "$W/model" --output_dir "$W/$mode" $SQ --calib_dataset "$W/ids.jsonl" \
        --calib_size 512 --calib_max_seq_length 512 --calib_batch_size 8 --workers $workers \
        --progress none --log_level verbose >"$OUT/sq_$mode.log" 2>&1
    echo "== $mode (rc $?)"
    grep -E "stay in host|SmoothQuant|peak RSS|wall|error" "$OUT/sq_$mode.log"
done
same=1
for f in "$W"/resident/rank*.safetensors; do
    cmp -s "$f" "$W/spilled/$(basename "$f")" || same=0
done
echo "spilled hidden states on the GPU: rank files $([ $same = 1 ] && echo byte-identical || echo DIFFERENT) to the resident run"
rm -rf "$W"
[ "${LAYERS70:-16}" = 0 ] ||
    LAYERS=${LAYERS70:-16} METHOD="$SQ" BENCH_DIR=/tmp/trtconv-bench bash "$(dirname "$0")/bench_calib_70b.sh" build-gpu
