#!/bin/bash
# bench_woq.sh: weight-only quantization, in one run.
#   1. CPU fast path GB/s (bench_woq_cpu: 14336 x 4096, 1..THREADS threads);
#   2. end to end on the bench model (bench_convert.sh's 8-layer
#      Llama-3-8B shape, 5.59 GB bf16): plain fp16 conversion, then int8 and
#      int4 for TARGET_SM quantized on the CPU and (when the rank has a GPU)
#      on the GPU, REPEAT times each (median), with the ratio to plain fp16;
#   3. CPU and GPU outputs compared byte for byte.
# GPU kernel time and slice-in to bytes-out time come from
# build/tests/test_woq_cuda (see docs/gpu-tests.md).
# usage: bench/bench_woq.sh [BUILD_DIR]; env BENCH_DIR, REPEAT, WORKERS, THREADS, TARGET_SM
set -euo pipefail
BUILD=${1:-build}
BENCH_DIR=${BENCH_DIR:-/tmp/trtconv-bench}
REPEAT=${REPEAT:-3}
WORKERS=${WORKERS:-4}
THREADS=${THREADS:-4}
SM=${TARGET_SM:-90}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
M=$BENCH_DIR/model
mkdir -p "$BENCH_DIR"
[ -f "$M/config.json" ] || "$BUILD/trtconv-genmodel" --out "$M" --layers 8 --hidden 4096 --heads 32 \
    --kv_heads 8 --intermediate 14336 --vocab 128256 --dtype bfloat16 --shards 5 >/dev/null
cat "$M"/*.safetensors >/dev/null

echo "== CPU fast path"
"$BUILD/bench_woq_cpu" "$THREADS"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
conv() { # out_name args...: median seconds
    local name=$1 i t0 t1 all=()
    shift
    for ((i = 0; i < REPEAT; i++)); do
        rm -rf "$BENCH_DIR/$name"; sync
        t0=$(date +%s.%N)
        mpirun -np 1 --bind-to none "$BUILD/trtconv" --model_dir "$M" --output_dir "$BENCH_DIR/$name" \
            --dtype float16 --workers "$WORKERS" --progress none "$@" >"$BENCH_DIR/$name.log" 2>&1
        t1=$(date +%s.%N)
        all+=("$(awk "BEGIN { print $t1 - $t0 }")")
    done
    printf '%s\n' "${all[@]}" | median
}
has_gpu=0
command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 && has_gpu=1

echo "== end to end, $(nproc) cores, --workers $WORKERS, sm$SM, repeat $REPEAT (median)"
T_PLAIN=$(conv plain)
rm -rf "$BENCH_DIR/plain"
echo "| run | seconds | vs plain fp16 | output GB |"
echo "|---|---|---|---|"
printf '| plain fp16 | %.2f | 1.00 | %s |\n' "$T_PLAIN" "$(awk "BEGIN{printf \"%.2f\", 5591146496/1e9}")"
for bits in int8 int4; do
    for on in cpu gpu; do
        [ $on = gpu ] && [ $has_gpu = 0 ] && continue
        t=$(conv "${bits}_$on" --use_weight_only --weight_only_precision $bits --target_sm "$SM" --quantize_on $on)
        gb=$(du -sb "$BENCH_DIR/${bits}_$on" | awk '{printf "%.2f", $1/1e9}')
        printf '| %s on %s | %.2f | %.2f | %s |\n' "$bits" "$on" "$t" "$(awk "BEGIN{printf \"%.2f\", $t/$T_PLAIN}")" "$gb"
    done
    if [ $has_gpu = 1 ]; then
        if cmp -s "$BENCH_DIR/${bits}_cpu/rank0.safetensors" "$BENCH_DIR/${bits}_gpu/rank0.safetensors" &&
            cmp -s "$BENCH_DIR/${bits}_cpu/config.json" "$BENCH_DIR/${bits}_gpu/config.json"; then
            echo "$bits: CPU and GPU outputs byte-identical"
        else
            echo "$bits: CPU and GPU outputs DIFFER"
        fi
    fi
    rm -rf "$BENCH_DIR/${bits}_cpu" "$BENCH_DIR/${bits}_gpu"
done
