#!/bin/bash
# gpu_rss.sh: where a GPU rank's host memory goes (issue 23: "host RSS per
# rank stays flat, under 1 GiB"), in one call on the GPU machine:
#   1. bench/rss_probe.c: the resident memory the CUDA runtime and cuBLAS
#      take before any work (the floor under every GPU rank);
#   2. the 8B-shaped SmoothQuant run of bench_sq.sh (LAYERS, default 32;
#      per-channel per-token + INT8 KV, 512 x 512 ids, one rank) with
#      TRTCONV_LOG_ELAPSED=1: each log line carries the rank's resident and
#      peak RSS; the lines where the peak rose by 8 MiB or more are printed
#      (the run's memory timeline); with the write queue's default 8
#      buffers of 16 MiB, with 4, and with 4 and glibc's mmap threshold
#      fixed (RUNS).
# Logs under $OUT (bench/gpu_setup.sh builds build-gpu first).
set -uo pipefail
. "$(dirname "$0")/gpu_setup.sh"
. "$(dirname "$0")/bench_lib.sh"
cc -std=c11 -O2 bench/rss_probe.c -I/usr/local/cuda/include -L/usr/local/cuda/lib64 \
    -lcublas -lcudart -o /tmp/rss_probe && /tmp/rss_probe 2>&1 | tee "$OUT/rss_probe.log"
W=/tmp/trtconv-bench/rss
mkdir -p "$W"
llama8b_model build-gpu "$W" "${LAYERS:-32}" float16
random_ids 512 512 >"$W/ids.jsonl"
# RUNS: write-queue buffer counts (TRTCONV_SQ_WQ_BUFFERS; 4 is the default, 8 was until session 13;
# each run's log line says how long the layers waited for the queue), with
# ":mmap" glibc's mmap threshold fixed at 1 MiB (MALLOC_MMAP_THRESHOLD_:
# large freed buffers go back to the system instead of staying in the
# threads' arenas).
for run in ${RUNS:-8 4 4:mmap}; do
    wq=${run%%:*}
    mmap=
    [ "${run#*:}" = mmap ] && mmap=1048576
    workers=${WORKERS:-8}
    rm -rf "$W/out"
    env ${mmap:+MALLOC_MMAP_THRESHOLD_=$mmap} TRTCONV_SQ_WQ_BUFFERS=$wq TRTCONV_LOG_ELAPSED=1 \
        /usr/bin/time -f "wall %e s, max RSS %M KiB" \
        mpirun -np 1 --bind-to none -x TRTCONV_LOG_ELAPSED -x TRTCONV_SQ_WQ_BUFFERS \
        ${mmap:+-x MALLOC_MMAP_THRESHOLD_} build-gpu/trtconv \
        --model_dir "$W/model" --output_dir "$W/out" --smoothquant 0.5 --per_channel --per_token \
        --int8_kv_cache --calib_dataset "$W/ids.jsonl" --calib_size 512 --calib_max_seq_length 512 \
        --calib_batch_size 8 --workers "$workers" --progress none --log_level verbose \
        >"$OUT/sq_rss_${run/:/_}.log" 2>&1
    echo "== SmoothQuant, --workers $workers, $wq write-queue buffers${mmap:+, mmap threshold 1 MiB} (rc $?): the lines where the peak RSS rose by >= 8 MiB"
    awk '/ rss [0-9]+\/[0-9]+ MiB /{
            match($0, / rss [0-9]+\/[0-9]+ MiB /); split(substr($0, RSTART + 5), a, /[\/ ]/);
            if (a[2] - peak >= 8 || NR == 1) { print; peak = a[2] } }
         /wall|peak RSS|error|waiting for the writer/' "$OUT/sq_rss_${run/:/_}.log" | cut -c1-220
done
rm -rf "$W"
