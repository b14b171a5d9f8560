#!/bin/bash
# gpu_sq.sh: the SmoothQuant work of the GPU machine in one call
# (docs/smoothquant.md):
#   1. build (bench/gpu_setup.sh), the unit tests and the GPU tests
#      (test_sq_cuda: kernels against the CPU backend, bit for bit);
#   2. the golden files on the GPU path: 5 variants x tp 1/2 x pp 1/2 from the
#      upstream statistics, byte-identical to TensorRT-LLM's files;
#   3. GPU calibration of the golden model in 5 layouts against the
#      statistics of transformers' hooks (2^-8 of each maximum), and the GPU
#      and CPU quantization of the same statistics byte-identical;
#   4. the benchmark (bench/bench_sq.sh) unless SKIP_BENCH=1.
set -uo pipefail
. "$(dirname "$0")/gpu_setup.sh"
# CTEST_RE: that selection instead of every unit and GPU test.
if [ -n "${CTEST_RE:-}" ]; then
    (cd build-gpu && ctest -j4 -R "$CTEST_RE" --output-on-failure >"$OUT/ctest.log" 2>&1)
else
    (cd build-gpu && ctest -L 'unit|gpu' --output-on-failure >"$OUT/ctest.log" 2>&1)
fi
echo "ctest rc=$?"; grep -E "tests passed|tests failed|Failed|\*\*\*" "$OUT/ctest.log" | head
build-gpu/tests/test_sq_cuda >"$OUT/test_sq_cuda.log" 2>&1; echo "test_sq_cuda rc=$?: $(tail -1 "$OUT/test_sq_cuda.log")"
G=build-gpu/golden/sq_mha
H5=tests/data/sq/golden_act_range.h5
W=/tmp/trtconv-sq; rm -rf "$W"; mkdir -p "$W"
declare -A FLAGS=([pt_pt]="--smoothquant 0.5" [pc_pt]="--smoothquant 0.5 --per_channel"
    [pt_tok]="--smoothquant 0.5 --per_token"
    [pc_tok_kv]="--smoothquant 0.5 --per_channel --per_token --int8_kv_cache" [kv_only]="--int8_kv_cache")
ok=0; bad=0
for v in pt_pt pc_pt pt_tok pc_tok_kv kv_only; do for tp in 1 2; do for pp in 1 2; do
    o=$W/g_${v}_$tp$pp
    mpirun -np $((tp * pp)) --bind-to none build-gpu/trtconv --model_dir $G/hf --output_dir $o ${FLAGS[$v]} \
        --tp_size $tp --pp_size $pp --calib_stats $H5 --progress none >"$OUT/golden_${v}_$tp$pp.log" 2>&1
    same=1
    for f in $G/${v}_tp${tp}pp${pp}/rank*.safetensors; do cmp -s "$f" "$o/$(basename "$f")" || same=0; done
    [ $same = 1 ] && ok=$((ok + 1)) || { bad=$((bad + 1)); echo "golden differs: $v tp$tp pp$pp"; }
done; done; done
grep -h "quantiz\|GPU\|gpu" "$OUT/golden_pc_tok_kv_11.log" | head -3
echo "golden on the GPU path: $ok identical, $bad different"
for layout in "1 1 1" "2 2 1" "2 1 2" "4 2 2" "2 1 1"; do
    set -- $layout
    n=np$1tp$2pp$3
    mpirun -np $1 --bind-to none build-gpu/trtconv --model_dir $G/hf --output_dir $W/c_$n \
        ${FLAGS[pc_tok_kv]} --tp_size $2 --pp_size $3 --calib_dataset $G/calib.jsonl --calib_batch_size 3 \
        --calib_stats_out $W/c_$n.h5 --progress none >"$OUT/calib_$n.log" 2>&1
    echo "GPU calibration $n rc=$?: $(build-gpu/trtconv-stats compare $W/c_$n.h5 $G/act_range.safetensors \
        --model_dir $G/hf --rtol 0.00390625 | tail -1)"
    mpirun -np $1 --bind-to none build-gpu/trtconv --model_dir $G/hf --output_dir $W/cpu_$n \
        ${FLAGS[pc_tok_kv]} --tp_size $2 --pp_size $3 --calib_stats $W/c_$n.h5 --quantize_on cpu \
        --progress none >"$OUT/cpu_$n.log" 2>&1
    same=1
    for f in $W/c_$n/rank*.safetensors; do cmp -s "$f" "$W/cpu_$n/$(basename "$f")" || same=0; done
    echo "  GPU-calibrated output vs CPU quantization of its statistics: $([ $same = 1 ] && echo identical || echo DIFFERENT)"
done
grep -h "calibrating\|SmoothQuant" "$OUT/calib_np1tp1pp1.log" | head -3
if [ "${SKIP_BENCH:-0}" != 1 ]; then
    BENCH_DIR=/tmp/trtconv-bench bench/bench_sq.sh build-gpu >"$OUT/bench_sq.log" 2>&1
    echo "bench_sq rc=$?"; cat "$OUT/bench_sq.log"
fi
