#!/bin/bash
# gpu_hf.sh: issue 22 (--output_format hf) on the GPU machine, in one call:
#   1. build (gpu_setup.sh), then mpi_hf and cuda_nvfp4 on the CUDA build
#      (SKIP_CTEST=1: not);
#   2. a small bfloat16 model (4 layers, hidden 512) converted to FP8 + FP8
#      KV, FP8 per channel and NVFP4, each checked by
#      tests/hf/torch_reference.py: every quantized tensor against the
#      statements of ModelOpt's export run by torch on the GPU (bytes that
#      differ, per kind), and the checkpoint dequantized into transformers'
#      LlamaForCausalLM: logits against the source's;
#      Before them (TORCH=0: only this), NVFP4 quantized on the GPU and on
#      the CPU from the same statistics compared byte for byte;
#   3. unless BENCH=0, the issue's benchmark: the Llama-3-8B shape (LAYERS,
#      default 32), FP8 (+ FP8 KV) and NVFP4 (BENCH_FORMATS, default
#      "fp8 nvfp4") with 512 x 512 calibration on one rank: total time,
#      statistics, peak RSS (QUANTIZE_ON: --quantize_on, default auto: NVFP4
#      quantized on the GPU, FP8 on the CPU behind the calibration).
# Logs under $OUT (few files: the device tool returns about 8).
set -uo pipefail
. "$(dirname "$0")/gpu_setup.sh"
. "$(dirname "$0")/bench_lib.sh"
if [ "${SKIP_CTEST:-0}" != 1 ]; then
    (cd build-gpu && ctest -R "mpi_hf|cuda_nvfp4" --output-on-failure) >"$OUT/ctest_hf.log" 2>&1
    echo "ctest rc=$?"
    grep -E "^(PASS|FAIL)|tests passed|tests failed" "$OUT/ctest_hf.log" | tail -30
fi
W=/tmp/trtconv-bench/hf
mkdir -p "$W"
B=build-gpu
"$B/trtconv-genmodel" --out "$W/small" --layers 4 --hidden 512 --heads 8 --kv_heads 4 \
    --intermediate 1408 --vocab 2048 --dtype bfloat16 --outlier_channels 4 >/dev/null
python3 - >"$W/ids.jsonl" <<'PY'
import json, random
r = random.Random(3)
for _ in range(64):
    print(json.dumps({"input_ids": [r.randrange(2048) for _ in range(128)]}))
PY
{
    # NVFP4 quantized on the GPU and on the CPU from the same statistics
    # (--quantize_on cpu also calibrates on the CPU, whose arithmetic can
    # move a maximum by an ulp; session 13 compared two calibrations and saw
    # one input scale differ, every weight byte equal): the same bytes.
    same=1
    mpirun -np 1 --bind-to none "$B/trtconv" --model_dir "$W/small" --output_dir "$W/id_cal" \
        --output_format hf --use_nvfp4 --calib_dataset "$W/ids.jsonl" --calib_stats_out "$W/id.h5" \
        --progress none --log_level warning || { echo "NVFP4 calibration failed"; same=0; }
    for q in cpu gpu; do
        mpirun -np 1 --bind-to none "$B/trtconv" --model_dir "$W/small" --output_dir "$W/id_$q" \
            --output_format hf --use_nvfp4 --calib_stats "$W/id.h5" --quantize_on $q \
            --progress none --log_level warning || { echo "NVFP4 --quantize_on $q failed"; same=0; }
    done
    for f in "$W"/id_cpu/model-*.safetensors; do
        cmp -s "$f" "$W/id_gpu/$(basename "$f")" || same=0
    done
    echo "NVFP4 quantized on the GPU: shards $([ $same = 1 ] && echo byte-identical || echo DIFFERENT) to the CPU's"
    [ "${TORCH:-1}" = 0 ] ||
    for fmt in "fp8kv --use_fp8 --fp8_kv_cache" "fp8pc --use_fp8_rowwise" "nvfp4 --use_nvfp4"; do
        set -- $fmt
        name=$1
        shift
        rm -rf "$W/$name"
        st=-
        cal=()
        if [ "$name" != fp8pc ]; then  # FP8 per channel does not calibrate
            st=$W/$name.st
            cal=(--calib_dataset "$W/ids.jsonl" --calib_stats_out "$W/$name.h5")
        fi
        mpirun -np 1 --bind-to none "$B/trtconv" --model_dir "$W/small" --output_dir "$W/$name" \
            --output_format hf "$@" "${cal[@]}" --progress none --log_level warning ||
            { echo "$name: conversion failed"; continue; }
        [ "$st" = - ] ||
            "$B/trtconv-stats" export "$W/$name.h5" --model_dir "$W/small" --out "$st" >/dev/null
        echo "== $name"
        python3 tests/hf/torch_reference.py "$W/small" "$W/$name" "$st" --ids 8 2>&1 |
            grep -vE "Warning|warn\(" | tail -12
        echo "torch_reference rc=${PIPESTATUS[0]}"
    done
} >"$OUT/torch_reference.log" 2>&1
cat "$OUT/torch_reference.log"
rm -rf "$W"
[ "${BENCH:-1}" = 0 ] && exit 0
W=/tmp/trtconv-bench/hf8b
mkdir -p "$W"
llama8b_model "$B" "$W" "${LAYERS:-32}" bfloat16
random_ids 512 512 >"$W/ids.jsonl"
{
    echo "model: $(cat "$W/layers") layers of Llama-3-8B shape, bfloat16, $(du -sh "$W/model" | cut -f1); 512 x 512 calibration tokens; one rank"
    for fmt in ${BENCH_FORMATS:-fp8 nvfp4}; do
        case $fmt in
        fp8) set -- fp8 --use_fp8 --fp8_kv_cache ;;
        *) set -- nvfp4 --use_nvfp4 ;;
        esac
        name=$1
        shift
        rm -rf "$W/out"
        sync
        /usr/bin/time -f "wall %e s, peak RSS %M KiB" mpirun -np 1 --bind-to none "$B/trtconv" \
            --model_dir "$W/model" --output_dir "$W/out" --output_format hf "$@" \
            --calib_dataset "$W/ids.jsonl" --calib_size 512 --calib_max_seq_length 512 \
            --calib_batch_size 8 --workers "${WORKERS:-16}" --quantize_on "${QUANTIZE_ON:-auto}" \
            --progress none >"$W/log" 2>&1
        echo "== $name (rc $?)"
        grep -E "calibrating|statistics|wrote|peak RSS|wall|error" "$W/log" | sed 's/^trtconv[^:]*: /    /'
        du -sh "$W/out" | sed 's/^/    output /'
    done
} >"$OUT/bench_hf.log" 2>&1
cat "$OUT/bench_hf.log"
rm -rf "$W"
