#!/bin/bash
# install-deps.sh: Debian 12 packages trtconv needs to build and test.
# clang + libclang-rt-14-dev: the libFuzzer targets (scripts/fuzz.sh).
# Installs only what is missing (needs root or sudo). CUDA is optional: when
# /usr/local/cuda/bin/nvcc exists the build also compiles kernels/.
set -euo pipefail
PKGS=(build-essential cmake pkg-config git libopenmpi-dev openmpi-bin libcjson-dev libpcre2-dev check
      libhdf5-openmpi-dev hdf5-tools ca-certificates clang libclang-rt-14-dev bc iproute2
      python3-yaml python3-jsonschema python3-kubernetes)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all packages present"
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
