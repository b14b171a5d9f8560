#!/bin/bash
# gpu_fixtures_and_tests.sh: on the GPU machine (device tool, carry [".carry"]):
# regenerate the SmoothQuant alpha fixtures (make_alpha_fixtures.py; the
# archive comes back in $OUT for tests/data/sq/), rebuild so CMake unpacks
# them, then run the GPU and SmoothQuant tests on the CUDA build, where the
# smoothing and int8 quantization run in the CUDA kernels.
set -uo pipefail
. "$(dirname "$0")/../../bench/gpu_setup.sh"
export PYTHONUNBUFFERED=1
rm -rf /tmp/alpha
python3 tests/sq/make_alpha_fixtures.py build-gpu/golden /tmp/alpha 2>&1 | grep -v Loading | tee "$OUT/alpha.log" &&
    rm -rf /tmp/alpha/selfcheck && mv /tmp/alpha/make_alpha_fixtures.log "$OUT/" &&
    tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=2026-12-06 -cJf \
        "$OUT/alpha-fixtures.tar.xz" -C /tmp/alpha . &&
    cp "$OUT/alpha-fixtures.tar.xz" tests/data/sq/alpha-fixtures.tar.xz
cmake build-gpu >/dev/null && cmake --build build-gpu -j"$(nproc)" >>"$OUT/build.log" 2>&1
(cd build-gpu && ctest --output-on-failure -L gpu -R "cuda_" 2>&1; \
    ctest --output-on-failure -R "mpi_sq_alpha|unit_torch_pow" 2>&1; \
    ctest --output-on-failure -R "mpi_sq$|mpi_golden" 2>&1) | tee "$OUT/ctest.log" | \
    grep -E "PASS|FAIL|passed|failed|Test #" | tail -60
