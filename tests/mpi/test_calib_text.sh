#!/bin/bash
# test_calib_text.sh: calibration from plain text (issue 10, docs/tokenizer.md).
#  1. A text calibration file ({"article"/"text": ...} lines) calibrates to
#     the same statistics and rank files, bit for bit, as the ids Hugging
#     Face made of the same lines under the Python tool's text handling
#     (tests/data/tokenizer/expected/calib_*_32.jsonl): LLaMA-3 style
#     tokenizer.json in the model directory (tp 2), LLaMA-2 style
#     tokenizer.model through --tokenizer_dir (pp 2), on 2 ranks.
#  2. Changing the tokenizer changes the run's input fingerprint.
#  3. Errors: no tokenizer, ids outside the model's vocabulary, an
#     unsupported tokenizer, invalid UTF-8.
source "$(dirname "$0")/lib.sh"
: "${STATS:?}"
T=$(cd "$(dirname "$0")/../data/tokenizer" && pwd)
ARTICLES=$T/calib_articles.jsonl
SQ=(--smoothquant 0.5 --per_channel --per_token --int8_kv_cache --calib_max_seq_length 32
    --calib_batch_size 4)

gen --out "$WORK/m" --vocab 3072 --layers 2 --hidden 64 --heads 4 --kv_heads 2 --intermediate 128
gen --out "$WORK/m3" --vocab 3072 --layers 2 --hidden 64 --heads 4 --kv_heads 2 --intermediate 128
cp "$T/llama3/tokenizer.json" "$T/llama3/tokenizer_config.json" "$WORK/m3/"

ids_file() { sed 's/^{"ids"/{"input_ids"/' "$1" >"$2"; }
ids_file "$T/expected/calib_llama3_32.jsonl" "$WORK/ids3.jsonl"
ids_file "$T/expected/calib_llama2_32.jsonl" "$WORK/ids2.jsonl"

pair() { # NAME MODEL IDS [extra...]: text run vs ids run
    local name=$1 model=$2 ids=$3
    shift 3
    if ! run_np 2 --model_dir "$model" --output_dir "$WORK/$name.text" "${SQ[@]}" \
        --calib_dataset "$ARTICLES" --calib_stats_out "$WORK/$name.text.h5" "$@"; then
        fail "$name: text calibration failed"; cat "$WORK/last.log"; return
    fi
    grep -q "calibrating on 12 samples" "$WORK/last.log" || { fail "$name: not 12 samples"; return; }
    if ! run_np 2 --model_dir "$model" --output_dir "$WORK/$name.ids" "${SQ[@]}" \
        --calib_dataset "$ids" --calib_stats_out "$WORK/$name.ids.h5" "$@"; then
        fail "$name: ids calibration failed"; cat "$WORK/last.log"; return
    fi
    "$STATS" compare "$WORK/$name.text.h5" "$WORK/$name.ids.h5" --model_dir "$model" >/dev/null &&
        same_dir "$WORK/$name.text" "$WORK/$name.ids" &&
        pass "$name: text calibration == Hugging Face's ids (statistics and rank files bit for bit)" ||
        fail "$name: text and ids calibrations differ"
}
pair llama3_tp2 "$WORK/m3" "$WORK/ids3.jsonl" --tp_size 2
pair llama2_pp2 "$WORK/m" "$WORK/ids2.jsonl" --pp_size 2 --tokenizer_dir "$T/llama2"

# 2. --resume refuses rank files made with another tokenizer.
mkdir -p "$WORK/m3b"
cp "$WORK/m3/"* "$WORK/m3b/"
run_np 2 --model_dir "$WORK/m3b" --output_dir "$WORK/fp" "${SQ[@]}" --calib_dataset "$ARTICLES" &&
    sed -i 's/"add_bos_token"/"x_add_bos_token"/; s/"backend"/"add_bos_token": false, "backend"/' \
        "$WORK/m3b/tokenizer_config.json" &&
    rm "$WORK/fp/config.json" &&
    run_np 2 --model_dir "$WORK/m3b" --output_dir "$WORK/fp" "${SQ[@]}" --calib_dataset "$ARTICLES" \
        --resume && grep -q "rewriting rank0.safetensors" "$WORK/last.log" &&
    pass "a changed tokenizer_config.json changes the fingerprint: --resume rewrites" ||
    { fail "tokenizer fingerprint"; cat "$WORK/last.log"; }

# 3. errors
expect_err() { # NAME CODE PATTERN trtconv-args...
    local name=$1 code=$2 pat=$3
    shift 3
    local rc=0
    run_np 2 "$@" || rc=$?
    if [ $rc -eq "$code" ] && grep -q -- "$pat" "$WORK/last.log"; then
        pass "$name (exit $rc)"
    else
        fail "$name: exit $rc"; cat "$WORK/last.log"
    fi
}
expect_err "text lines and no tokenizer" 3 "no tokenizer in $WORK/m" \
    --model_dir "$WORK/m" --output_dir "$WORK/e1" "${SQ[@]}" --calib_dataset "$ARTICLES"
gen --out "$WORK/small" --vocab 512 --layers 2 --hidden 64 --heads 4 --intermediate 128
expect_err "tokenizer ids outside vocab_size" 3 "outside the model's vocab_size 512" \
    --model_dir "$WORK/small" --output_dir "$WORK/e2" "${SQ[@]}" --calib_dataset "$ARTICLES" \
    --tokenizer_dir "$T/llama3"
mkdir -p "$WORK/uni"
printf '{"model": {"type": "Unigram", "vocab": []}}' >"$WORK/uni/tokenizer.json"
expect_err "unsupported tokenizer model" 3 'model type "Unigram" is not supported' \
    --model_dir "$WORK/m" --output_dir "$WORK/e3" "${SQ[@]}" --calib_dataset "$ARTICLES" \
    --tokenizer_dir "$WORK/uni"
printf '{"text": "caf\xe9 au lait"}\n' >"$WORK/bad_utf8.jsonl"
expect_err "invalid UTF-8 text" 3 "bad_utf8.jsonl:1" \
    --model_dir "$WORK/m3" --output_dir "$WORK/e4" "${SQ[@]}" --calib_dataset "$WORK/bad_utf8.jsonl"
[ ! -e "$WORK/e1/config.json" ] && [ ! -e "$WORK/e4/config.json" ] &&
    pass "no config.json after the errors" || fail "config.json left behind"
finish
