#!/bin/bash
# bench_moe.sh [BUILD_DIR]: Mixtral conversion against copying the files,
# in one invocation (docs/performance.md, "Mixture of experts").
#   model: trtconv-genmodel, Mixtral-8x7B shapes (hidden 4096, 32 heads,
#          8 KV heads, 8 experts, top-2, intermediate 14336, vocab 32000),
#          LAYERS layers (default 4, ~11.6 GB bfloat16 in 5 shards)
#   runs : cp -r, cp -r + sync (trtconv fsyncs what it writes), then
#          trtconv tp 4 = moe_tp 2 x moe_ep 2 on 4 ranks, tp 4 = moe_ep 4 on
#          4 ranks and tp 2 = moe_tp 2 on 2 ranks,
# each the median of REPEAT (default 3) with the page cache warm, with
# trtconv's peak RSS and source bytes read per rank (its own counters).
set -euo pipefail
B=${1:-build}
W=${BENCH_DIR:-/tmp/trtconv-bench}/moe
LAYERS=${LAYERS:-4} REPEAT=${REPEAT:-3} WORKERS=${WORKERS:-4}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
M=$W/model
mkdir -p "$W"
if [ ! -f "$M/config.json" ] || [ "$(cat "$W/layers" 2>/dev/null)" != "$LAYERS" ]; then
    rm -rf "$M"
    "$B/trtconv-genmodel" --out "$M" --experts 8 --top_k 2 --layers "$LAYERS" --hidden 4096 \
        --heads 32 --kv_heads 8 --intermediate 14336 --vocab 32000 --dtype bfloat16 --shards 5 \
        --rope_theta 1000000 >/dev/null
    echo "$LAYERS" >"$W/layers"
fi
SIZE=$(du -sb "$M" | cut -f1)
cat "$M"/*.safetensors >/dev/null
BENCH_OUT=$W/out BENCH_LOG=$W/last.log
. "$(dirname "$0")/bench_lib.sh"
cp_only() { cp -r "$M" "$W/out"; }
cp_sync() { cp -r "$M" "$W/out" && sync -f "$W/out"; }
trt() { # np tp moe_tp moe_ep
    mpirun -np "$1" --bind-to none "$B/trtconv" --model_dir "$M" --output_dir "$W/out" \
        --tp_size "$2" --moe_tp_size "$3" --moe_ep_size "$4" --dtype bfloat16 \
        --workers "$WORKERS" --progress none
}
per_rank() { grep -o "$1 per rank ([^)]*): [^;]*" "$W/last.log" | sed 's/.*: //'; }
echo "model: Mixtral-8x7B shapes, $LAYERS layers, $(awk "BEGIN{printf \"%.2f\", $SIZE/1e9}") GB; repeat $REPEAT (median)"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM"
T_CP=$(run_n cp_only)
T_CPS=$(run_n cp_sync)
rows=()
for lay in "4 4 2 2" "4 4 1 4" "2 2 2 1"; do
    set -- $lay
    t=$(run_n trt "$@")
    rows+=("| trtconv tp $2 (moe_tp $3 x moe_ep $4), $1 ranks | $(printf %.2f "$t") | $(awk "BEGIN{printf \"%.2f\", $t/$T_CP}") | $(awk "BEGIN{printf \"%.2f\", $t/$T_CPS}") | $(per_rank 'peak RSS') | $(per_rank 'source bytes read' | awk '{for(i=1;i<=NF;i++) printf "%s%.2f", (i>1?" ":""), $i/1e6}') |")
done
echo
echo "| run | seconds | vs cp | vs cp + sync | peak RSS per rank (MiB) | source GB read per rank |"
echo "|---|---|---|---|---|---|"
printf '| cp -r | %.2f | 1.00 | | | |\n' "$T_CP"
printf '| cp -r + sync | %.2f | | 1.00 | | |\n' "$T_CPS"
printf '%s\n' "${rows[@]}"
