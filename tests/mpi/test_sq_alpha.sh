#!/bin/bash
# test_sq_alpha.sh: SmoothQuant at alphas other than 0.5, and --dtype
# bfloat16 / float32, against rank files PyTorch computed on the GPU machine
# with upstream's expressions (tests/sq/make_alpha_fixtures.py, which first
# reproduces TensorRT-LLM's own alpha 0.5 and 0.8 files byte for byte;
# tests/data/sq/README.md). Each case: the statistics it was made from are
# imported (trtconv-stats), the conversion runs from them on 1 and 3 ranks,
# and rank0.safetensors must be the same bytes. Cases: MHA golden model at
# alpha 0.3 / 0.95, a GQA model (8 heads, 2 KV heads) at 0.3 / 0.8 / 0.95,
# each in the four variants (per tensor / per channel weights x per tensor /
# per token activations, the last with INT8 KV); --dtype bfloat16 and
# float32 at 0.8 in all four; a bfloat16 source model (SmoothQuant loads it
# as float16). 30 cases.
source "$(dirname "$0")/lib.sh"
A=${TRTCONV_SQ_ALPHA_DIR:?}
G=${TRTCONV_GOLDEN_DIR:?}
STATS_TOOL=${STATS:?}
[ -d "$A" ] || { echo "FAIL: $A missing"; exit 1; }

field() { sed -n "s/^  \"$2\": \"\\(.*\\)\",\\{0,1\\}$/\\1/p" "$1"; }
path_of() { case $1 in golden/*) echo "$G/${1#golden/}" ;; *) echo "$A/${1%% *}" ;; esac; }

n=0
for case_json in "$A"/*/case.json; do
    c=$(basename "$(dirname "$case_json")")
    model=$(path_of "$(field "$case_json" model)")
    stats=$(path_of "$(field "$case_json" statistics)")
    flags=$(field "$case_json" flags)
    [ -d "$model" ] && [ -f "$stats" ] && [ -n "$flags" ] || { fail "$c: bad case.json"; continue; }
    "$STATS_TOOL" import "$stats" --model_dir "$model" --out "$WORK/$c.h5" >/dev/null ||
        { fail "$c: import of its statistics"; continue; }
    for np in 1 3; do
        out=$WORK/${c}_$np
        if ! run_np $np --model_dir "$model" --output_dir "$out" $flags --calib_stats "$WORK/$c.h5" \
                </dev/null; then
            fail "$c on $np rank(s): exit $?"; cat "$WORK/last.log"; continue
        fi
        if cmp -s "$A/$c/rank0.safetensors" "$out/rank0.safetensors" &&
            "$TRTCONV" verify "$out" >/dev/null; then
            pass "$c ($flags) on $np rank(s): byte-identical to PyTorch's upstream expressions"
        else
            fail "$c on $np rank(s)"; "$STCOMPARE" "$A/$c/rank0.safetensors" "$out/rank0.safetensors"
        fi
    done
    n=$((n + 1))
done
[ "$n" -ge 30 ] && pass "$n cases checked" || fail "only $n cases found in $A"
finish
