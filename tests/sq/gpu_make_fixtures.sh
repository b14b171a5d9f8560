#!/bin/bash
# gpu_make_fixtures.sh: on the GPU machine (device tool, carry [".carry"]),
# make the SmoothQuant fixtures of tests/data/sq (README there) with PyTorch:
#  - torch_pow_{f16,bf16}.bin: Tensor.pow(1 - alpha) on CUDA for every
#    non-negative input, 7 alphas (CI holds tc_torch_pow_scalar to them);
#  - the exhaustive comparison over every exponent of the dtype in (0, 1)
#    (tables too large to keep: checked there, the summary kept);
#  - alpha/: rank files computed with upstream's torch expressions
#    (make_alpha_fixtures.py), after reproducing upstream's own files.
# Logs and results under $OUT.
set -uo pipefail
. "$(dirname "$0")/../../bench/gpu_setup.sh"
export PYTHONUNBUFFERED=1
A="0.1 0.3 0.5 0.7 0.8 0.9 0.95"
python3 tests/sq/torch_pow_table.py "$OUT/torch_pow_f16.bin" float16 $A
python3 tests/sq/torch_pow_table.py "$OUT/torch_pow_bf16.bin" bfloat16 $A
build-gpu/tests/tc-powcheck "$OUT/torch_pow_f16.bin" "$OUT/torch_pow_bf16.bin"
for dt in float16 bfloat16; do
    python3 tests/sq/torch_pow_table.py "/tmp/pow_all_$dt.bin" $dt all &&
        build-gpu/tests/tc-powcheck "/tmp/pow_all_$dt.bin"
    rm -f "/tmp/pow_all_$dt.bin"
done 2>&1 | tee "$OUT/powcheck_all.txt"
rm -rf /tmp/alpha
python3 tests/sq/make_alpha_fixtures.py build-gpu/golden /tmp/alpha 2>&1 | tee "$OUT/alpha.log" &&
    rm -rf /tmp/alpha/selfcheck && tar -C /tmp -cJf "$OUT/alpha.tar.xz" alpha

# Rope buffers against numpy (tests/rope/numpy_rope.py) on large tables:
# LLaMA-3.1-like (theta 500000, llama3, 131072 positions, head 128) and the
# other scaling types; the ulp distance per buffer is recorded.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
for spec in "llama3 500000 131072" "linear 10000 16384" "dynamic 10000 8192" "none 10000 4096"; do
    set -- $spec
    rm -rf "/tmp/rope_$1" "/tmp/rope_out_$1"
    build-gpu/trtconv-genmodel --out "/tmp/rope_$1" --layers 1 --hidden 256 --heads 2 \
        --intermediate 64 --vocab 16 --rope_scaling "$1" --rope_theta "$2" --max_pos "$3" >/dev/null &&
        mpirun -np 1 build-gpu/trtconv --progress none --model_dir "/tmp/rope_$1" \
            --output_dir "/tmp/rope_out_$1" >/dev/null &&
        python3 tests/rope/numpy_rope.py "/tmp/rope_out_$1" "/tmp/rope_np_$1.safetensors" &&
        build-gpu/tests/tc-stcompare --ignore transformer --ignore lm_head \
            --f32_ulp embed_positions=4 --f32_ulp rotary_inv_freq=0 \
            "/tmp/rope_np_$1.safetensors" "/tmp/rope_out_$1/rank0.safetensors"
    echo "rope $1: rc=$?"
done 2>&1 | tee "$OUT/rope_numpy.txt"
lscpu | grep -E "Model name|Flags" | cut -c1-300 >"$OUT/cpu.txt"
python3 -c "import numpy; numpy.show_runtime()" >>"$OUT/cpu.txt" 2>&1
