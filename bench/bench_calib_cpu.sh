#!/bin/bash
# bench_calib_cpu.sh OLD_BUILD NEW_BUILD: the demo's SmoothQuant calibration
# on the CPU (scripts/demo.sh: 4-layer, 256-wide model, 16 articles, 6,130
# tokens) with both builds in one invocation, pinned to CORES cores
# (default 0,1: the 2-core machine of issue 23) with taskset: 4 ranks
# (tp 2 x pp 2, oversubscribed) and 1 rank (tp 1), REPEAT runs each
# (default 3), the median "statistics" seconds each run logs.
set -euo pipefail
OLD=$1 NEW=$2
CORES=${CORES:-0,1} REPEAT=${REPEAT:-3}
W=${BENCH_DIR:-/tmp/trtconv-bench}/calib-cpu
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
M=$W/model
mkdir -p "$W"
if [ ! -f "$M/config.json" ]; then
    "$NEW/trtconv-genmodel" --out "$M" --layers 4 --hidden 256 --heads 8 --kv_heads 2 \
        --intermediate 688 --vocab 3072 --dtype bfloat16 --shards 2 >/dev/null
    cp tests/data/tokenizer/llama2/tokenizer.model tests/data/tokenizer/llama2/tokenizer_config.json "$M/"
fi
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
run() { # BUILD NP TP PP
    local i all=()
    for ((i = 0; i < REPEAT; i++)); do
        rm -rf "$W/out"
        all+=("$(taskset -c "$CORES" mpirun -np "$2" --bind-to none "$1/trtconv" --model_dir "$M" \
            --output_dir "$W/out" --tp_size "$3" --pp_size "$4" --smoothquant 0.5 --per_channel \
            --per_token --int8_kv_cache --calib_dataset data/demo-articles.jsonl --progress none \
            --quantize_on cpu 2>&1 | grep -o 'statistics [0-9.]* s' | awk '{print $2}')")
    done
    printf '%s\n' "${all[@]}" | median
}
echo "| build | 4 ranks, tp 2 x pp 2 (s) | 1 rank, tp 1 (s) |"
echo "|---|---|---|"
for b in "$OLD" "$NEW"; do
    echo "| $b | $(run "$b" 4 2 2) | $(run "$b" 1 1 1) |"
done
