#!/bin/bash
# build.sh BUILD_DIR [cmake options...]: configure and build trtconv.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
shift || true
cuda=()
if [ -x /usr/local/cuda/bin/nvcc ] && [[ " $* " != *TRTCONV_ENABLE_CUDA* ]]; then
    cuda=(-DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc)
fi
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${cuda[@]}" "$@" >"$dir.configure.log" 2>&1 ||
    { cat "$dir.configure.log"; exit 1; }
cmake --build "$dir" -j"$(nproc)"
