#!/bin/bash
# gpu_moe.sh: the MoE work of the GPU machine in one call (docs/moe.md):
# build (bench/gpu_setup.sh), mpi_moe on the CUDA build (weight-only experts
# quantized on the GPU against v0.12's bytes), then bench/bench_moe.sh
# unless SKIP_BENCH=1 (CTEST_RE widens the ctest selection).
set -uo pipefail
. "$(dirname "$0")/../../bench/gpu_setup.sh"
# The expert statistics fixture (transformers' forward pass; mpi_moe reads
# it): made here when absent, and returned under $OUT to be committed.
if [ ! -f tests/data/moe/expert_amax.json ]; then
    python3 tests/moe/make_expert_amax.py tests/data/moe/hf_mixtral_tf5 tests/data/moe/logits.json \
        tests/data/moe/expert_amax.json >"$OUT/make_amax.log" 2>&1 && cp tests/data/moe/expert_amax.json "$OUT/"
    echo "expert_amax fixture: rc $? $(tail -1 "$OUT/make_amax.log")"
fi
(cd build-gpu && ctest -j8 -R "${CTEST_RE:-mpi_moe}" --output-on-failure) >"$OUT/ctest.log" 2>&1
echo "ctest: $(grep -E 'tests passed|tests failed' "$OUT/ctest.log" | tr '\n' ' ')"
grep -E "^[0-9/]+ Test" "$OUT/ctest.log" | head -40
if [ "${SKIP_BENCH:-0}" != 1 ]; then
    BENCH_DIR=/tmp/trtconv-bench REPEAT=${REPEAT:-3} bash bench/bench_moe.sh build-gpu >"$OUT/bench_moe.log" 2>&1
    echo "bench rc=$?"; cat "$OUT/bench_moe.log"
fi
