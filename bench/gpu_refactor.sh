#!/bin/bash
# gpu_refactor.sh PART: issue 18's GPU checks in one device call, the
# baseline built from the commit before the restructuring (carried as
# .carry/old-src.tar.gz by scripts/prepare-gpu-carry.sh OLD_REV) and run in
# the same invocation:
#   PART=bench  bench/bench_convert.sh and bench/bench_sq.sh (SKIP_HF=1) on
#               the old build, then on the new one, same machine, same model;
#   PART=tests  the unit, GPU and MPI tests on the CUDA build, test_sq_cuda,
#               test_woq_cuda, and the SmoothQuant golden files on the GPU.
# Logs in $OUT (at most 8 files come back).
set -uo pipefail
PART=${1:-bench}
. "$(dirname "$0")/gpu_setup.sh"
if [ "$PART" = bench ]; then
    rm -rf /tmp/old && mkdir -p /tmp/old && tar -xzf .carry/old-src.tar.gz -C /tmp/old
    (cd /tmp/old && cmake -S . -B build -DTRTCONV_ENABLE_CUDA=ON \
        -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc -DBUILD_TESTING=OFF >/dev/null 2>&1 &&
        cmake --build build -j"$(nproc)" >/dev/null 2>&1) || { echo "old build failed"; exit 1; }
    cp bench/*.sh bench/*.py /tmp/old/bench/ 2>/dev/null   # same benchmark scripts for both
    {
        for b in old new; do
            B=build-gpu; [ $b = old ] && B=/tmp/old/build
            echo "######## $b ($B) bench_convert"
            BENCH_DIR=/tmp/trtconv-bench LAYERS=8 REPEAT=3 WORKERS=4 bench/bench_convert.sh "$B" 2>&1
        done
    } >"$OUT/bench_convert.log" 2>&1
    grep -E "^####|^\| " "$OUT/bench_convert.log" | head -40
    {
        for b in old new; do
            B=build-gpu; [ $b = old ] && B=/tmp/old/build
            echo "######## $b ($B) bench_sq"
            SKIP_HF=1 BENCH_DIR=/tmp/trtconv-bench bash bench/bench_sq.sh "$B" 2>&1
        done
    } >"$OUT/bench_sq.log" 2>&1
    grep -E "^####|==|total|wall|SmoothQuant" "$OUT/bench_sq.log" | head -40
else
    (cd build-gpu && ctest -j8 -E 'mpi_slurm|mpi_mpijob|mpi_multihost' --output-on-failure) \
        >"$OUT/ctest.log" 2>&1
    echo "ctest rc=$?"; grep -E "tests passed|Failed|\*\*\*|Skipped|Not Run" "$OUT/ctest.log" | head
    build-gpu/tests/test_sq_cuda >"$OUT/test_sq_cuda.log" 2>&1
    echo "test_sq_cuda rc=$?: $(tail -1 "$OUT/test_sq_cuda.log")"
    build-gpu/tests/test_woq_cuda >"$OUT/test_woq_cuda.log" 2>&1
    echo "test_woq_cuda rc=$?: $(grep -E "Checks|passed|fail" "$OUT/test_woq_cuda.log" | tail -2)"
    build-gpu/tests/test_cast >"$OUT/test_cast.log" 2>&1
    echo "test_cast rc=$?: $(tail -1 "$OUT/test_cast.log")"
fi
