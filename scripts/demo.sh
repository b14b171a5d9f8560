#!/bin/bash
# demo.sh: install dependencies, build, generate the built-in demo model and
# convert it with mpirun on 4 ranks (tp 2 x pp 2). One command, from a clean
# clone on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh build >/dev/null
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1   # containers run as root
export OMPI_MCA_rmaps_base_oversubscribe=1                          # 4 ranks on fewer cores
MODEL=demo-output/model OUT=demo-output/tllm_checkpoint
rm -rf demo-output
# The demo model: LLaMA-shaped, 4 layers, GQA (8 heads, 2 KV heads), 2 shards.
build/trtconv-genmodel --out "$MODEL" --layers 4 --hidden 256 --heads 8 --kv_heads 2 \
    --intermediate 688 --vocab 1000 --dtype bfloat16 --shards 2
mpirun -np 4 build/trtconv --model_dir "$MODEL" --output_dir "$OUT" \
    --tp_size 2 --pp_size 2 --dtype float16
echo
echo "The distributed forward pass (the engine calibration uses) on the same 4-rank layout:"
mpirun -np 4 build/trtconv-forward --model_dir "$MODEL" --input tests/data/forward/ids.jsonl \
    --tp_size 2 --pp_size 2 --batch_size 2 --device cpu
echo
echo "TensorRT-LLM checkpoint written to $(pwd)/$OUT:"
ls -l "$OUT"
echo "Build an engine from it with: trtllm-build --checkpoint_dir $OUT --output_dir engine"
