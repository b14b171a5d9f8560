#!/bin/bash
# test.sh: install dependencies, build and run every test. One command, from
# a clean clone on Debian 12; .ci/run calls it.
#  1. CPU-only build (-Werror): all unit and MPI integration tests.
#  2. AddressSanitizer + UBSan build: the unit tests.
#  3. libFuzzer build (clang, ASan + UBSan): every fuzz target for
#     FUZZ_SECONDS (default 30) from its seed corpus.
#  4. With nvcc: the CUDA build (-Werror); GPU tests skip without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
status=0

echo "== CPU-only build, all tests"
./scripts/build.sh build-cpu -DTRTCONV_ENABLE_CUDA=OFF -DTRTCONV_WERROR=ON >/dev/null
(cd build-cpu && ctest --output-on-failure -j2) || status=1

echo "== ASan + UBSan build, unit tests"
./scripts/build.sh build-asan -DTRTCONV_SANITIZE=ON -DTRTCONV_WERROR=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -L unit -j2) || status=1

echo "== libFuzzer targets, ${FUZZ_SECONDS:-30} s each"
./scripts/fuzz.sh "${FUZZ_SECONDS:-30}" || status=1

if [ -x /usr/local/cuda/bin/nvcc ]; then
    echo "== CUDA build (kernels for sm80 and sm90), unit and GPU tests"
    ./scripts/build.sh build-cuda -DTRTCONV_ENABLE_CUDA=ON -DTRTCONV_WERROR=ON >/dev/null
    (cd build-cuda && ctest --output-on-failure -L 'unit|gpu' -j2) || status=1
else
    echo "== no nvcc: CUDA build skipped"
fi
[ $status -eq 0 ] && echo "all test suites passed" || echo "some tests FAILED"
exit $status
