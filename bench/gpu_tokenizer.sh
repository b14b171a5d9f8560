#!/bin/bash
# gpu_tokenizer.sh: the tokenizer work of the GPU machine in one call
# (issue 10): unpack the carried packages (scripts/prepare-gpu-carry.sh),
# build trtconv-tokenize (CPU only, no CUDA needed), run the ids test
# against the stored fixtures and bench/bench_tokenizer.sh; logs in $OUT.
set -uo pipefail
. "$(dirname "$0")/gpu_deps.sh"
cmake -S . -B build-tok -DTRTCONV_ENABLE_CUDA=OFF -DBUILD_TESTING=OFF -DTRTCONV_WERROR=ON \
    >"$OUT/build.log" 2>&1 && cmake --build build-tok -j"$(nproc)" --target trtconv-tokenize \
    >>"$OUT/build.log" 2>&1 || { echo "build failed"; tail -30 "$OUT/build.log"; exit 1; }
TOKENIZE=build-tok/trtconv-tokenize bash tests/tokenizer/test_tokenizer_ids.sh 2>&1 | tee "$OUT/ids_test.log" | tail -1
bash bench/bench_tokenizer.sh build-tok
