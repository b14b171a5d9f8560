#!/bin/bash
# bench_fp8.sh BUILD_DIR: FP8 conversions of a Llama-3-8B-shaped model on
# one rank, in one invocation (docs/performance.md, "FP8"):
#   (1) plain float16 conversion (the baseline);
#   (2) --use_fp8_rowwise, quantized on the GPU (kernels/fp8.cu);
#   (3) --use_fp8_rowwise --quantize_on cpu (quant/fp8.c, the workers);
#   (4) --use_fp8_rowwise --fp8_kv_cache;
#   (5) --use_fp8 --fp8_kv_cache (per tensor), calibrating on the GPU from
#       SEQS x LEN random token ids (default 512 x 512), with its phases;
# each best of REPEAT (default 2) wall times with peak RSS. The outputs of
# (2) and (3) are compared byte for byte. Model: bench_sq.sh's (LAYERS
# layers, default 32, 15 GB float16), made once under BENCH_DIR.
set -euo pipefail
B=${1:-build}
W=${BENCH_DIR:-/tmp/trtconv-bench}/sq
LAYERS=${LAYERS:-32} REPEAT=${REPEAT:-2} WORKERS=${WORKERS:-8} SEQS=${SEQS:-512} LEN=${LEN:-512}
mkdir -p "$W"
. "$(dirname "$0")/bench_lib.sh"
llama8b_model "$B" "$W" "$LAYERS" float16
random_ids "$SEQS" "$LEN" >"$W/ids.jsonl"
sync
run() { # run NAME ARGS...: best wall time of REPEAT runs
    local name=$1 best="" rss="" t
    shift
    for ((i = 0; i < REPEAT; i++)); do
        rm -rf "$W/out-$name"
        /usr/bin/time -f "%e %M" -o "$W/time" mpirun -np 1 --bind-to none "$B/trtconv" \
            --model_dir "$W/model" --output_dir "$W/out-$name" --workers "$WORKERS" --progress none \
            --log_level warning "$@" 2>"$W/log-$name" || { cat "$W/log-$name" >&2; exit 1; }
        read -r t rss <"$W/time"
        if [ -z "$best" ] || awk "BEGIN{exit !($t < $best)}"; then best=$t; fi
    done
    echo "$name $best $rss"
}
same=identical
{
    run plain
    rm -rf "$W/out-plain"
    run fp8rw_gpu --use_fp8_rowwise
    run fp8rw_cpu --use_fp8_rowwise --quantize_on cpu
    for f in "$W"/out-fp8rw_gpu/rank*.safetensors "$W"/out-fp8rw_gpu/config.json; do
        cmp -s "$f" "$W/out-fp8rw_cpu/$(basename "$f")" || same=DIFFERENT
    done
    du -sh "$W/out-fp8rw_gpu" >"$W/size"
    rm -rf "$W"/out-*
    run fp8rw_kv --use_fp8_rowwise --fp8_kv_cache
    rm -rf "$W"/out-*
    run fp8_tensor_kv --use_fp8 --fp8_kv_cache --calib_dataset "$W/ids.jsonl" --calib_size "$SEQS" \
        --calib_max_seq_length "$LEN" --calib_batch_size 8 --log_level info
    du -sh "$W/out-fp8_tensor_kv" >>"$W/size"
} >"$W/results"
plain=$(awk '$1 == "plain" {print $2}' "$W/results")
echo "| run | seconds (best of $REPEAT) | vs plain | peak RSS (MiB) |"
echo "|---|---|---|---|"
awk -v p="$plain" '{printf "| %s | %.2f | %.2f | %.0f |\n", $1, $2, $2 / p, $3 / 1024}' "$W/results"
echo "GPU and CPU FP8 rowwise outputs: $same"
grep -E "calibrating|statistics|peak RSS" "$W/log-fp8_tensor_kv" | sed 's/^trtconv[^:]*: //'
cat "$W/size"
rm -rf "$W"/out-*
