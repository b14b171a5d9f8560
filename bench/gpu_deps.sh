# gpu_deps.sh (sourced by gpu_setup.sh and gpu_tokenizer.sh): on the GPU
# machine, unpack the carried Debian packages (.carry/debs, see
# scripts/prepare-gpu-carry.sh) into a prefix that pkg-config and the loader
# see, and set OUT (logs).
OUT=${OUT:-$(pwd)/gpu-run-logs}
mkdir -p "$OUT"
P=/tmp/trtconv-deps
for f in .carry/debs/*.deb; do dpkg -x "$f" "$P"; done
export PKG_CONFIG_PATH=$P/usr/lib/x86_64-linux-gnu/pkgconfig PKG_CONFIG_SYSROOT_DIR=$P
export LD_LIBRARY_PATH=$P/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
