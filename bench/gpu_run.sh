#!/bin/bash
# gpu_run.sh: everything this project runs on the GPU machine, in one call
# (Ubuntu 24.04, CUDA 13, Open MPI 4.1.6; no cJSON/Check there, so Debian's
# packages are carried in .carry/debs and unpacked into a prefix).
#   1. CUDA build (sm80 + sm90) with -Werror;
#   2. every test, the GPU ones included (cuda_cast runs for real there);
#   3. the conversion benchmark (bench/bench_convert.sh);
#   4. the weight-only GPU test with its kernel benchmark and the weight-only
#      benchmark (bench/bench_woq.sh).
# Logs go to $OUT (or ./gpu-run-logs).
set -uo pipefail
. "$(dirname "$0")/gpu_setup.sh"
(cd build-gpu && ctest -j8 --output-on-failure -E cuda_woq) >"$OUT/ctest.log" 2>&1
echo "ctest rc=$?"; grep -E "tests passed|Failed|Skipped|Not Run" "$OUT/ctest.log"
build-gpu/tests/test_cast >"$OUT/test_cast.log" 2>&1
echo "test_cast rc=$?"; tail -4 "$OUT/test_cast.log"
build-gpu/tests/test_woq_cuda >"$OUT/test_woq_cuda.log" 2>&1
echo "test_woq_cuda rc=$?"; grep -iE "bench|fail|passed" "$OUT/test_woq_cuda.log" | tail -30
if [ "${SKIP_BENCH:-0}" != 1 ]; then
    BENCH_DIR=/tmp/trtconv-bench LAYERS=${LAYERS:-8} REPEAT=${REPEAT:-3} WORKERS=${WORKERS:-4} \
        bench/bench_convert.sh build-gpu >"$OUT/bench.log" 2>&1
    echo "bench rc=$?"; cat "$OUT/bench.log"
fi
if [ "${SKIP_WOQ_BENCH:-0}" != 1 ]; then
    BENCH_DIR=/tmp/trtconv-bench REPEAT=${REPEAT:-3} WORKERS=${WORKERS:-4} THREADS=8 TARGET_SM=90 \
        bench/bench_woq.sh build-gpu >"$OUT/bench_woq.log" 2>&1
    echo "bench_woq rc=$?"; cat "$OUT/bench_woq.log"
fi
