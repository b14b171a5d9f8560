#!/bin/bash
# bench_eval.sh BUILD_DIR: `trtconv eval` of the Llama-3-8B-shaped model on
# one GPU (issue: trtconv eval; docs/performance.md "trtconv eval"):
#   model : trtconv-genmodel, Llama-3-8B shapes, float16, LAYERS layers
#           (default 32); tokens: SEQS x LEN random ids (default 128 x 512)
#   1. converts it unquantized and with int8 weight-only (--target_sm 90),
#      and with EMULATED=1 also SmoothQuant per-channel per-token + INT8 KV
#      and FP8 (calibrated on the same ids);
#   2. times `trtconv eval` of the checkpoints (peak RSS; peak GPU memory by
#      nvidia-smi every 100 ms, minus what was in use before);
#   3. the source perplexity with transformers on the same ids
#      (bench/eval_hf.py) against trtconv's, SKIP_HF=1 leaves it out.
set -euo pipefail
B=${1:-build}
W=${BENCH_DIR:-/tmp/trtconv-bench}/eval
LAYERS=${LAYERS:-32} SEQS=${SEQS:-128} LEN=${LEN:-512} BATCH=${BATCH:-8}
mkdir -p "$W"
. "$(dirname "$0")/bench_lib.sh"
llama8b_model "$B" "$W" "$LAYERS" float16
random_ids "$SEQS" "$LEN" >"$W/ids.jsonl"
rm -rf "$W/plain" "$W/w8" "$W/sq" "$W/fp8"
mpirun -np 1 --bind-to none "$B/trtconv" --model_dir "$W/model" --output_dir "$W/plain" \
    --workers 8 --progress none 2>&1 | grep -E "wrote"
mpirun -np 1 --bind-to none "$B/trtconv" --model_dir "$W/model" --output_dir "$W/w8" \
    --use_weight_only --weight_only_precision int8 --target_sm 90 --workers 8 --progress none 2>&1 |
    grep -E "wrote"
CKPTS=(--checkpoint_dir "$W/plain" --checkpoint_dir "$W/w8")
if [ "${EMULATED:-0}" = 1 ]; then
    for q in "sq --smoothquant 0.5 --per_channel --per_token --int8_kv_cache" "fp8 --use_fp8"; do
        set -- $q
        name=$1
        shift
        mpirun -np 1 --bind-to none "$B/trtconv" --model_dir "$W/model" --output_dir "$W/$name" \
            "$@" --calib_dataset "$W/ids.jsonl" --calib_size "$SEQS" --calib_max_seq_length "$LEN" \
            --workers 8 --progress none 2>&1 | grep -E "wrote"
        CKPTS+=(--checkpoint_dir "$W/$name")
    done
fi
sync
gpu_base=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)
nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 >"$W/smi" &
smi=$!
echo "== trtconv eval: $SEQS x $LEN tokens, micro-batches of $BATCH, $(( ${#CKPTS[@]} / 2 )) checkpoints"
/usr/bin/time -f "wall %e s, max RSS %M KiB" mpirun -np 1 --bind-to none "$B/trtconv" eval \
    --model_dir "$W/model" "${CKPTS[@]}" \
    --dataset "$W/ids.jsonl" --max_samples "$SEQS" --max_seq_length "$LEN" --batch_size "$BATCH" \
    --output_json "$W/eval.json" --plot "$W/eval.svg" 2>&1 | grep -vE "^ +[0-9]+ +[0-9.e+-]+$"
kill $smi; wait $smi 2>/dev/null || true
echo "peak GPU memory in use during eval: $(( $(sort -n "$W/smi" | tail -1) - gpu_base )) MiB"
cp "$W/eval.json" "$W/eval.svg" "${OUT:-$W}/" 2>/dev/null || true
if [ "${SKIP_HF:-0}" != 1 ]; then
    echo "== transformers: the source perplexity on the same ids"
    python3 "$(dirname "$0")/eval_hf.py" "$W/model" "$W/ids.jsonl" "$SEQS" | tee "$W/hf.json"
    python3 - "$W/eval.json" "$W/hf.json" <<'PY'
import json, math, sys
t = json.load(open(sys.argv[1]))["checkpoints"][0]
h = json.load(open(sys.argv[2]))
print("source perplexity: trtconv %.6f, transformers %.6f, log ratio %.2e, tokens %d vs %d"
      % (t["perplexity_source"], h["perplexity"],
         math.log(t["perplexity_source"] / h["perplexity"]), t["predicted_tokens"], h["predicted"]))
PY
fi
