# gpu_setup.sh (sourced by the bench/gpu_*.sh scripts): on the GPU machine,
# unpack the carried Debian packages (gpu_deps.sh), record the machine, and
# build build-gpu with CUDA (sm80 + sm90, or CUDA_ARCHS, e.g. 90 for a
# shorter build on an H100) and -Werror; BUILD_TARGETS (space-separated,
# e.g. "trtconv trtconv-genmodel bench_fwd_kernels"): only those, for a
# timing call that runs no tests. Sets OUT (logs) and exits on a failed
# build.
. "$(dirname "${BASH_SOURCE[0]}")/gpu_deps.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    nproc; free -g; mpirun --version | head -1; cmake --version | head -1
} >"$OUT/machine.txt" 2>&1
cmake -S . -B build-gpu -DTRTCONV_ENABLE_CUDA=ON -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc \
    -DTRTCONV_WERROR=ON -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS:-80;90}" >"$OUT/build.log" 2>&1 &&
    cmake --build build-gpu -j"$(nproc)" ${BUILD_TARGETS:+--target $BUILD_TARGETS} >>"$OUT/build.log" 2>&1 ||
    { echo "build failed"; tail -30 "$OUT/build.log"; exit 1; }
grep -E "trtconv: (CUDA|NCCL|HDF5)" "$OUT/build.log"
