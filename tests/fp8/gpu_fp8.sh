#!/bin/bash
# gpu_fp8.sh: the FP8 work of the GPU machine in one call (docs/fp8.md):
#   1. build (bench/gpu_setup.sh);
#   2. PyTorch's float8_e4m3fn conversion on the GPU as fixtures
#      (make_e4m3_fixtures.py -> $OUT/fp8/) and tc_f32_to_e4m3fn against them;
#   3. test_fp8_cuda (kernel vs CPU reference) and mpi_fp8 on the CUDA build
#      (rowwise quantized on the GPU against upstream's files; CTEST_RE
#      widens the ctest selection);
#   4. bench/bench_fp8.sh unless SKIP_BENCH=1.
set -uo pipefail
. "$(dirname "$0")/../../bench/gpu_setup.sh"
{ cat "$OUT/machine.txt"; tail -3 "$OUT/build.log"; } >"$OUT/gpu.log"; rm -f "$OUT/machine.txt" "$OUT/build.log"
python3 tests/fp8/make_e4m3_fixtures.py "$OUT/fp8" >>"$OUT/gpu.log" 2>&1; echo "fixtures rc=$?"
build-gpu/tests/tc-e4m3check "$OUT/fp8" >>"$OUT/gpu.log" 2>&1; echo "e4m3check rc=$?"
build-gpu/tests/test_fp8_cuda >"$OUT/test_fp8_cuda.log" 2>&1; echo "test_fp8_cuda rc=$?: $(tail -1 "$OUT/test_fp8_cuda.log")"
(cd build-gpu && ctest -j8 -R "${CTEST_RE:-mpi_fp8}" --output-on-failure) >"$OUT/ctest.log" 2>&1
echo "ctest: $(grep -E 'tests passed|tests failed' "$OUT/ctest.log" | tr '\n' ' ')"
tail -8 "$OUT/gpu.log"
if [ "${SKIP_BENCH:-0}" != 1 ]; then
    BENCH_DIR=/tmp/trtconv-bench REPEAT=${REPEAT:-1} bash bench/bench_fp8.sh build-gpu >"$OUT/bench_fp8.log" 2>&1
    echo "bench rc=$?"; cat "$OUT/bench_fp8.log"
fi
