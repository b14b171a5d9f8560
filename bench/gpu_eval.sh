#!/bin/bash
# gpu_eval.sh: the trtconv eval work of the GPU machine in one call: build
# (gpu_setup.sh), the ctest selection CTEST_RE (default mpi_eval, which runs
# on the GPU backend there) on the CUDA build, then bench_eval.sh (with
# transformers' perplexity of the same model and ids). Logs under $OUT.
set -uo pipefail
. "$(dirname "$0")/gpu_setup.sh"
(cd build-gpu && ctest -j4 -R "${CTEST_RE:-mpi_eval}" --output-on-failure) >"$OUT/ctest.log" 2>&1
echo "ctest: $(grep -E 'tests passed|tests failed' "$OUT/ctest.log" | tr '\n' ' ')"
grep -E "^(PASS|FAIL)|source perplexity" "$OUT/ctest.log" | head -30
BENCH_DIR=/tmp/trtconv-bench bash bench/bench_eval.sh build-gpu >"$OUT/bench_eval.log" 2>&1
echo "bench rc=$?"; cat "$OUT/bench_eval.log"
