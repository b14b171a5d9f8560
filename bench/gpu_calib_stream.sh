#!/bin/bash
# gpu_calib_stream.sh: the layer-streamed calibration work of the GPU machine
# in one call: build (gpu_setup.sh), the ctest selection CTEST_RE (default
# mpi_moe|mpi_fp8_tensor) on the CUDA build, then bench_calib_stream.sh
# unless SKIP_BENCH=1. Logs under $OUT.
set -uo pipefail
. "$(dirname "$0")/gpu_setup.sh"
(cd build-gpu && ctest -j8 -R "${CTEST_RE:-mpi_moe|mpi_fp8_tensor}" --output-on-failure) >"$OUT/ctest.log" 2>&1
echo "ctest: $(grep -E 'tests passed|tests failed' "$OUT/ctest.log" | tr '\n' ' ')"
grep -E "^FAIL" "$OUT/ctest.log" | head
if [ "${SKIP_BENCH:-0}" != 1 ]; then
    BENCH_DIR=/tmp/trtconv-bench bash bench/bench_calib_stream.sh build-gpu >"$OUT/bench_stream.log" 2>&1
    echo "bench rc=$?"; cat "$OUT/bench_stream.log"
fi
