#!/bin/bash
# fuzz.sh [SECONDS]: build the libFuzzer targets (clang, ASan + UBSan) in
# build-fuzz and run each for SECONDS (default 30) from its seed corpus in
# tests/fuzz/corpus. scripts/test.sh runs it with the default; longer runs
# are recorded in docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
CC=clang ./scripts/build.sh build-fuzz -DTRTCONV_FUZZ=ON -DTRTCONV_ENABLE_CUDA=OFF \
    -DTRTCONV_FUZZ_SECONDS="$seconds" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cd build-fuzz
ctest --output-on-failure -L fuzz -j"$(nproc)" --timeout $((seconds * 3 + 600))
