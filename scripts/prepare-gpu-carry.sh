#!/bin/bash
# prepare-gpu-carry.sh: fill .carry/ (git-ignored) with what bench/gpu_run.sh
# needs on the GPU machine, which has no cJSON, no Check and no network:
# Debian bookworm packages (unpacked there with dpkg -x into a prefix). The
# golden files travel in the repository (tests/data/golden). With OLD_REV
# (a commit), also the sources of that commit as .carry/old-src.tar.gz, the
# baseline bench/gpu_refactor.sh builds and benchmarks in the same call.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .carry/debs
(cd .carry/debs && apt-get download libcjson1 libcjson-dev check libsubunit0 libsubunit-dev libpcre2-8-0 libpcre2-dev libpcre2-16-0 libpcre2-32-0 libpcre2-posix3)
if [ -n "${OLD_REV:-}" ]; then
    git archive --format=tar.gz -o .carry/old-src.tar.gz "$OLD_REV" \
        CMakeLists.txt src include mpi kernels bench slurm k8s
fi
du -sh .carry
