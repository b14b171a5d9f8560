#!/bin/bash
# bench_fp8.sh BUILD_DIR: FP8 conversions of a Llama-3-8B-shaped model on
# one rank, in one invocation (docs/performance.md, "FP8"):
#   (1) plain float16 conversion (the baseline);
#   (2) --use_fp8_rowwise, quantized on the GPU (kernels/fp8.cu);
#   (3) --use_fp8_rowwise --quantize_on cpu (quant/fp8.c, the workers);
#   (4) --use_fp8_rowwise --fp8_kv_cache;
# each best of REPEAT (default 2) wall times with peak RSS. The outputs of
# (2) and (3) are compared byte for byte. Model: bench_sq.sh's (LAYERS
# layers, default 32, 15 GB float16), made once under BENCH_DIR.
set -euo pipefail
B=${1:-build}
W=${BENCH_DIR:-/tmp/trtconv-bench}/sq
LAYERS=${LAYERS:-32} REPEAT=${REPEAT:-2} WORKERS=${WORKERS:-8}
mkdir -p "$W"
if [ ! -f "$W/model/config.json" ] || [ "$(cat "$W/layers" 2>/dev/null)" != "$LAYERS" ]; then
    "$B/trtconv-genmodel" --out "$W/model" --layers "$LAYERS" --hidden 4096 --heads 32 --kv_heads 8 \
        --intermediate 14336 --vocab 128256 --dtype float16 --rope_theta 500000 \
        --rope_scaling llama3 --max_pos 131072 --shards 4 >/dev/null
    echo "$LAYERS" >"$W/layers"
fi
sync
run() { # run NAME ARGS...: best wall time of REPEAT runs
    local name=$1 best="" rss="" t
    shift
    for ((i = 0; i < REPEAT; i++)); do
        rm -rf "$W/out-$name"
        /usr/bin/time -f "%e %M" -o "$W/time" mpirun -np 1 --bind-to none "$B/trtconv" \
            --model_dir "$W/model" --output_dir "$W/out-$name" --workers "$WORKERS" --progress none \
            --log_level warning "$@"
        read -r t rss <"$W/time"
        if [ -z "$best" ] || awk "BEGIN{exit !($t < $best)}"; then best=$t; fi
    done
    echo "$name $best $rss"
}
{
    run plain
    run fp8rw_gpu --use_fp8_rowwise
    run fp8rw_cpu --use_fp8_rowwise --quantize_on cpu
    run fp8rw_kv --use_fp8_rowwise --fp8_kv_cache
} >"$W/results"
same=identical
for f in "$W"/out-fp8rw_gpu/rank*.safetensors "$W"/out-fp8rw_gpu/config.json; do
    cmp -s "$f" "$W/out-fp8rw_cpu/$(basename "$f")" || same=DIFFERENT
done
plain=$(awk '$1 == "plain" {print $2}' "$W/results")
echo "| run | seconds (best of $REPEAT) | vs plain | peak RSS (MiB) |"
echo "|---|---|---|---|"
awk -v p="$plain" '{printf "| %s | %.2f | %.2f | %.0f |\n", $1, $2, $2 / p, $3 / 1024}' "$W/results"
echo "GPU and CPU FP8 rowwise outputs: $same"
du -sh "$W/out-plain" "$W/out-fp8rw_gpu"
rm -rf "$W"/out-*
