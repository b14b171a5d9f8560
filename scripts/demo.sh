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
    --intermediate 688 --vocab 3072 --dtype bfloat16 --shards 2
# Its tokenizer: the LLaMA-2 style test fixture (SentencePiece BPE, 3000 pieces).
cp tests/data/tokenizer/llama2/tokenizer.model tests/data/tokenizer/llama2/tokenizer_config.json "$MODEL/"
mpirun -np 4 build/trtconv --model_dir "$MODEL" --output_dir "$OUT" \
    --tp_size 2 --pp_size 2 --dtype float16
echo
echo "The distributed forward pass (the engine calibration uses) on the same 4-rank layout:"
mpirun -np 4 build/trtconv-forward --model_dir "$MODEL" --input tests/data/forward/ids.jsonl \
    --tp_size 2 --pp_size 2 --batch_size 2 --device cpu
echo
echo "SmoothQuant W8A8 (per channel, per token) + INT8 KV cache, calibrated on the same 4 ranks"
echo "on plain text (data/demo-articles.jsonl, tokenized by the model's tokenizer.model as"
echo "Hugging Face does), statistics kept in HDF5:"
mpirun -np 4 build/trtconv --model_dir "$MODEL" --output_dir "$OUT-sq" --tp_size 2 --pp_size 2 \
    --smoothquant 0.5 --per_channel --per_token --int8_kv_cache \
    --calib_dataset data/demo-articles.jsonl --calib_stats_out demo-output/calib-stats.h5
echo "The first article's token ids (trtconv-tokenize, the calibration text handling):"
head -1 data/demo-articles.jsonl | build/trtconv-tokenize --tokenizer_dir "$MODEL" --calib --max_length 24
echo "The same checkpoint from the stored statistics, on one rank:"
mpirun -np 1 build/trtconv --model_dir "$MODEL" --output_dir "$OUT-sq-reuse" --tp_size 2 --pp_size 2 \
    --smoothquant 0.5 --per_channel --per_token --int8_kv_cache \
    --calib_stats demo-output/calib-stats.h5 --log_level warning
for r in 0 1 2 3; do cmp "$OUT-sq/rank$r.safetensors" "$OUT-sq-reuse/rank$r.safetensors"; done
echo "identical rank files"
echo
echo "Each checkpoint checked against its manifest (digests) and the format (tensors):"
build/trtconv verify "$OUT"
build/trtconv verify "$OUT-sq"
echo
echo "TensorRT-LLM checkpoints written to $(pwd)/$OUT and $(pwd)/$OUT-sq:"
ls -l "$OUT" "$OUT-sq"
echo "Build an engine from it with: trtllm-build --checkpoint_dir $OUT --output_dir engine"
