#!/bin/bash
# bench_tokenizer.sh BUILD_DIR: tokens per second of trtconv's tokenizer
# against Hugging Face's fast tokenizer on the same text in the same run
# (issue 10; docs/tokenizer.md, docs/performance.md). Needs python3 with
# transformers, tokenizers and sentencepiece (the GPU machine has them).
#   1. bench/tokenizer_hf.py prepare: LLaMA-sized tokenizers (SentencePiece
#      BPE 32000, byte-level BPE up to 128000) and ~2500 articles of text
#      they were not trained on;
#   2. per tokenizer: Hugging Face (single-thread loop of the raw Rust
#      tokenizer; transformers' batch call on all cores), then
#      trtconv-tokenize on 1 thread and on all cores (best of 3 repeats),
#      and the ids of both compared line by line.
set -uo pipefail
B=${1:-build}
W=${BENCH_DIR:-/tmp/trtconv-tokbench}
LOG=${OUT:-$W}/bench_tokenizer.log
mkdir -p "$W" "$(dirname "$LOG")"
T=$B/trtconv-tokenize
N=$(nproc)
{
echo "== $(date -u +%FT%TZ) $(uname -n), $N CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
[ -f "$W/texts.jsonl" ] || python3 bench/tokenizer_hf.py prepare "$W" || exit 1
for fx in llama2 llama3; do
    for src in auto json; do
        [ $fx = llama3 ] && [ $src = json ] && continue
        echo "-- $fx ($src)"
        [ $src = auto ] && [ -z "${SKIP_HF:-}" ] && python3 bench/tokenizer_hf.py run "$W/$fx" "$W/texts.jsonl" "$W/hf_$fx.jsonl"
        "$T" --tokenizer_dir "$W/$fx" --source $src --input "$W/texts.jsonl" --output "$W/trt_$fx.jsonl" --describe
        for th in 1 "$N"; do
            for r in 1 2 3; do
                line=$("$T" --tokenizer_dir "$W/$fx" --source $src --input "$W/texts.jsonl" --output none \
                    --repeat 1 --threads "$th" 2>&1 | grep 'tokens/s')
                echo "   $line"
            done
        done
        if cmp -s "$W/hf_$fx.jsonl" "$W/trt_$fx.jsonl"; then
            echo "   ids: all $(wc -l <"$W/hf_$fx.jsonl") articles equal Hugging Face's"
        else
            bad=$(paste -d'\n' "$W/trt_$fx.jsonl" "$W/hf_$fx.jsonl" | awk 'NR%2{a=$0;next} a!=$0{n++} END{print n+0}')
            echo "   ids: $bad of $(wc -l <"$W/hf_$fx.jsonl") articles DIFFER from Hugging Face's"
        fi
    done
done
} 2>&1 | tee "$LOG"
