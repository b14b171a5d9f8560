#!/bin/bash
# gpu_profile.sh: where the calibration's time goes on the GPU machine, in
# one call: build (gpu_setup.sh), the Llama-3-8B-shaped model with LAYERS
# layers (default 8), SEQS x LEN random ids (512 x 512), then SmoothQuant
# per-channel per-token + INT8 KV calibration with TRTCONV_FWD_PROFILE=1
# (every operation synchronised and timed: the shares, not the total) and
# once without it (the total). With CTEST_RE, that ctest selection of the
# CUDA build runs first; with .carry/old-src.tar.gz (scripts/prepare-gpu-carry.sh
# with OLD_REV), that commit is built too and its plain run and profile
# follow, on the same machine. Logs under $OUT.
set -uo pipefail
. "$(dirname "$0")/gpu_setup.sh"
if [ -n "${CTEST_RE:-}" ]; then
    (cd build-gpu && ctest -j4 -R "$CTEST_RE" --output-on-failure) >"$OUT/ctest.log" 2>&1
    echo "ctest: $(grep -E 'tests passed|tests failed' "$OUT/ctest.log" | tr '\n' ' ')"
    grep -E "FAIL|Failed|\*\*\*" "$OUT/ctest.log" | head -20
fi
W=/tmp/trtconv-bench/prof
LAYERS=${LAYERS:-8} SEQS=${SEQS:-512} LEN=${LEN:-512}
mkdir -p "$W"
. "$(dirname "$0")/bench_lib.sh"
llama8b_model build-gpu "$W" "$LAYERS" float16
random_ids "$SEQS" "$LEN" >"$W/ids.jsonl"
B=build-gpu
sq() {
    rm -rf "$W/out"
    /usr/bin/time -f "wall %e s, max RSS %M KiB" mpirun -np 1 --bind-to none $B/trtconv \
        --model_dir "$W/model" --output_dir "$W/out" --smoothquant 0.5 --per_channel --per_token \
        --int8_kv_cache --calib_dataset "$W/ids.jsonl" --calib_size "$SEQS" \
        --calib_max_seq_length "$LEN" --calib_batch_size 8 --workers 8 --progress none "$@" 2>&1
}
echo "== profile (synchronised)"; TRTCONV_FWD_PROFILE=1 sq | tee "$OUT/profile.log" | grep -E "profile|calibrat|wall|error"
echo "== plain run"; TRTCONV_LOG_ELAPSED=1 sq --log_level verbose | tee "$OUT/plain.log" | grep -E "calibrat|SmoothQuant|wrote|wall|error"
if [ -f .carry/old-src.tar.gz ]; then
    rm -rf /tmp/old && mkdir -p /tmp/old && tar -xzf .carry/old-src.tar.gz -C /tmp/old
    (cd /tmp/old && cmake -S . -B build -DTRTCONV_ENABLE_CUDA=ON \
        -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc -DBUILD_TESTING=OFF >/dev/null 2>&1 &&
        cmake --build build -j"$(nproc)" >/dev/null 2>&1) || { echo "old build failed"; exit 1; }
    B=/tmp/old/build
    echo "== old: profile (synchronised)"; TRTCONV_FWD_PROFILE=1 sq | tee "$OUT/old_profile.log" | grep -E "profile|calibrat|wall|error"
    echo "== old: plain run"; sq --log_level verbose | tee "$OUT/old_plain.log" | grep -E "calibrat|SmoothQuant|wrote|wall|error"
    B=build-gpu
    echo "== new: plain run again"; sq --log_level verbose | grep -E "SmoothQuant|wrote|wall|error"
fi
