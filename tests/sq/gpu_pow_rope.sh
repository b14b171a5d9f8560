#!/bin/bash
# gpu_pow_rope.sh: on the GPU machine (device tool, carry [".carry"]):
#  - every mismatch between tc_torch_pow_scalar without its fix-up table and
#    PyTorch's CUDA pow, over every exponent of float16 / bfloat16 in (0, 1)
#    and every non-negative input (TC_POW_NO_FIXUPS=1), dumped for
#    tests/sq/make_pow_fixups.py; then the same check with the table;
#  - the 7-alpha tables CI keeps (tests/data/sq/torch_pow_*.bin);
#  - the rope buffers against numpy on large tables.
set -uo pipefail
. "$(dirname "$0")/../../bench/gpu_setup.sh"
export PYTHONUNBUFFERED=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
A="0.1 0.3 0.5 0.7 0.8 0.9 0.95"
python3 tests/sq/torch_pow_table.py "$OUT/torch_pow_f16.bin" float16 $A
python3 tests/sq/torch_pow_table.py "$OUT/torch_pow_bf16.bin" bfloat16 $A
: >"$OUT/pow_mismatches.txt"
for dt in float16 bfloat16; do
    python3 tests/sq/torch_pow_table.py "/tmp/pow_all_$dt.bin" $dt all &&
        TC_POW_NO_FIXUPS=1 build-gpu/tests/tc-powcheck --dump "$OUT/pow_mismatches.txt" "/tmp/pow_all_$dt.bin"
    build-gpu/tests/tc-powcheck "/tmp/pow_all_$dt.bin"
    rm -f "/tmp/pow_all_$dt.bin"
done 2>&1 | tee "$OUT/powcheck_all.txt"
build-gpu/tests/tc-powcheck "$OUT/torch_pow_f16.bin" "$OUT/torch_pow_bf16.bin" | tee -a "$OUT/powcheck_all.txt"
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
