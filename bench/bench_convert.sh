#!/bin/bash
# bench_convert.sh: plain conversion against copying the files, in one run.
#
# Generates a LLaMA-3-8B-shaped model with fewer layers (default 8 layers:
# ~5.6 GB of bfloat16 in 5 shards), warms the page cache, then times
#   cp -r (and cp -r + sync, since trtconv fsyncs what it writes),
#   trtconv tp 1 on 1 rank (bfloat16 -> bfloat16 and -> float16),
#   trtconv tp 2 on 2 ranks (every run hashes its output for the manifest),
#   trtconv verify, sha256sum and a --resume that keeps every file,
# each REPEAT times (median reported), and prints trtconv's peak RSS per rank.
#
# usage: bench/bench_convert.sh [BUILD_DIR] ; env: BENCH_DIR, LAYERS, REPEAT,
#        WORKERS (trtconv --workers, default 2)
set -euo pipefail
BUILD=${1:-build}
BENCH_DIR=${BENCH_DIR:-/tmp/trtconv-bench}
LAYERS=${LAYERS:-8}
REPEAT=${REPEAT:-3}
WORKERS=${WORKERS:-2}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
M=$BENCH_DIR/model
mkdir -p "$BENCH_DIR"
if [ ! -f "$M/config.json" ]; then
    "$BUILD/trtconv-genmodel" --out "$M" --layers "$LAYERS" --hidden 4096 --heads 32 --kv_heads 8 \
        --intermediate 14336 --vocab 128256 --dtype bfloat16 --shards 5 --rope_theta 500000
fi
SIZE=$(du -sb "$M" | cut -f1)
cat "$M"/*.safetensors >/dev/null # warm page cache

BENCH_OUT=$BENCH_DIR/out BENCH_LOG=$BENCH_DIR/last.log
. "$(dirname "$0")/bench_lib.sh"

cp_only() { cp -r "$M" "$BENCH_DIR/out"; }
cp_sync() { cp -r "$M" "$BENCH_DIR/out" && sync -f "$BENCH_DIR/out"; }
trt() { # np tp dtype
    # --bind-to none: Open MPI binds a rank to one core by default, which would
    # put all --workers threads of the rank on that core.
    mpirun -np "$1" --bind-to none "$BUILD/trtconv" --model_dir "$M" --output_dir "$BENCH_DIR/out" \
        --tp_size "$2" --dtype "$3" --workers "$WORKERS" --progress none
}

echo "model: $M, $(awk "BEGIN { printf \"%.2f\", $SIZE / 1e9 }") GB, $LAYERS layers; repeat $REPEAT (median)"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(uname -r)"
T_CP=$(run_n cp_only)
T_CPS=$(run_n cp_sync)
T_1=$(run_n trt 1 1 bfloat16)
RSS_1=$(grep -o 'peak RSS per rank (MiB): [^;]*' "$BENCH_DIR/last.log" | sed 's/.*: //')
T_1H=$(run_n trt 1 1 float16)
RSS_1H=$(grep -o 'peak RSS per rank (MiB): [^;]*' "$BENCH_DIR/last.log" | sed 's/.*: //')
T_2=$(run_n trt 2 2 bfloat16)
RSS_2=$(grep -o 'peak RSS per rank (MiB): [^;]*' "$BENCH_DIR/last.log" | sed 's/.*: //')
# The tp 2 checkpoint is still there: check it, hash it, and resume it with
# every rank file kept (the commit marker removed as after a kill).
T_VER=$(timeit "$BUILD/trtconv" verify "$BENCH_DIR/out")
grep -q ": OK:" "$BENCH_DIR/last.log" || { echo "verify failed"; cat "$BENCH_DIR/last.log"; exit 1; }
T_SHA=$(timeit sha256sum "$BENCH_DIR/out"/rank0.safetensors "$BENCH_DIR/out"/rank1.safetensors)
rm "$BENCH_DIR/out/config.json"
T_RES=$(timeit mpirun -np 2 --bind-to none "$BUILD/trtconv" --model_dir "$M" --output_dir \
    "$BENCH_DIR/out" --tp_size 2 --dtype bfloat16 --workers "$WORKERS" --progress none --resume)
KEPT=$(grep -c "resume: keeping" "$BENCH_DIR/last.log" || true)
rm -rf "$BENCH_DIR/out"

gbs() { awk "BEGIN { printf \"%.2f\", $SIZE / 1e9 / $1 }"; }
ratio() { awk "BEGIN { printf \"%.2f\", $1 / $2 }"; }
echo
echo "| run | seconds | GB/s | vs cp | vs cp+sync | peak RSS per rank (MiB) |"
echo "|---|---|---|---|---|---|"
printf '| cp -r | %.2f | %s | 1.00 | | |\n' "$T_CP" "$(gbs "$T_CP")"
printf '| cp -r + sync | %.2f | %s | | 1.00 | |\n' "$T_CPS" "$(gbs "$T_CPS")"
printf '| trtconv tp 1, np 1, bf16 -> bf16 | %.2f | %s | %s | %s | %s |\n' "$T_1" "$(gbs "$T_1")" \
    "$(ratio "$T_1" "$T_CP")" "$(ratio "$T_1" "$T_CPS")" "$RSS_1"
printf '| trtconv tp 1, np 1, bf16 -> fp16 | %.2f | %s | %s | %s | %s |\n' "$T_1H" "$(gbs "$T_1H")" \
    "$(ratio "$T_1H" "$T_CP")" "$(ratio "$T_1H" "$T_CPS")" "$RSS_1H"
printf '| trtconv tp 2, np 2, bf16 -> bf16 | %.2f | %s | %s | %s | %s |\n' "$T_2" "$(gbs "$T_2")" \
    "$(ratio "$T_2" "$T_CP")" "$(ratio "$T_2" "$T_CPS")" "$RSS_2"
echo
echo "Integrity of the tp 2 checkpoint (one run each):"
printf '| trtconv verify (2 files, SHA-256 + headers + tensors) | %.2f s | %s GB/s |\n' "$T_VER" "$(gbs "$T_VER")"
printf '| sha256sum of the same 2 files (coreutils, one process) | %.2f s | %s GB/s |\n' "$T_SHA" "$(gbs "$T_SHA")"
printf '| trtconv --resume, %s of 2 rank files kept (hash check only) | %.2f s | |\n' "$KEPT" "$T_RES"
