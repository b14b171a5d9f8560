#!/bin/bash
# bench_forward.sh BUILD_DIR: forward-pass throughput of trtconv-forward on
# the GPU against transformers' forward on the same GPU, same model, same
# tokens, in one invocation (docs/performance.md, "Forward pass").
#   model : trtconv-genmodel, Llama-3-8B layer shapes (hidden 4096, 32 heads,
#           8 KV heads, intermediate 14336, vocab 128256, llama3 rope),
#           LAYERS layers (default 8), bfloat16
#   tokens: SEQS sequences x LEN tokens (default 512 x 512), random ids
# Prints trtconv's and transformers' tokens/s (batch 1, as the calibration
# of convert_checkpoint.py runs, and batch HF_BATCH) and the FLOP floor at
# 798 TFLOP/s (the bf16 GEMM rate measured on the H100 test VM).
set -euo pipefail
B=${1:-build}
W=${BENCH_DIR:-/tmp/trtconv-bench}/forward
LAYERS=${LAYERS:-8} SEQS=${SEQS:-512} LEN=${LEN:-512}
TC_BATCHES=${TC_BATCHES:-"4 8 16"} HF_BATCHES=${HF_BATCHES:-"1 8"}
mkdir -p "$W"
. "$(dirname "$0")/bench_lib.sh"
llama8b_model "$B" "$W" "$LAYERS" bfloat16
random_ids "$SEQS" "$LEN" >"$W/ids.jsonl"
echo "model: $LAYERS layers of Llama-3-8B shape, bf16; tokens: $SEQS x $LEN"
for bs in $TC_BATCHES; do
    mpirun -np 1 --bind-to none "$B/trtconv-forward" --model_dir "$W/model" --input "$W/ids.jsonl" \
        --max_seq_length "$LEN" --batch_size "$bs" --device gpu 2>&1 | sed "s/^/trtconv batch $bs: /"
done
python3 "$(dirname "$0")/forward_hf.py" "$W/model" "$W/ids.jsonl" $HF_BATCHES
python3 - "$LAYERS" "$SEQS" "$LEN" <<'PY'
import sys
L, n, T = map(int, sys.argv[1:])
H, I, V, kv, d = 4096, 14336, 128256, 8, 128
per_layer = H * (H + 2 * kv * d) + H * H + 3 * H * I
flop_tok = 2 * (L * per_layer + V * H) + L * 2 * 2 * (T / 2) * H  # causal attention, useful half
print("FLOP floor: %.3e FLOP/token -> %.0f tokens/s at 798 TFLOP/s" % (flop_tok, 798e12 / flop_tok))
PY
