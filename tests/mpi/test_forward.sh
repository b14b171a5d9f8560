#!/bin/bash
# test_forward.sh: the CPU forward pass (trtconv-forward --device cpu)
# against transformers' reference values stored in tests/data/forward (made
# on the GPU machine by tests/forward/make_reference.py; the bound of each
# tensor is stored next to it), in every tp/pp/dp layout; bit identity where
# the arithmetic is the same (pipeline stages, data-parallel replicas,
# --workers); and the forward pass's input errors.
. "$(dirname "$0")/lib.sh"
: "${FORWARD:?}" "${FWDCOMPARE:?}" "${COLLCHECK:?}"
DATA=$(cd "$(dirname "$0")/../data/forward" && pwd)
IDS=$DATA/ids.jsonl

fwd() { # fwd NP ARGS...: trtconv-forward on NP ranks, log in $WORK/last.log
    local np=$1
    shift
    timeout 300 "$MPIEXEC" -np "$np" "$FORWARD" --device cpu "$@" </dev/null >"$WORK/last.log" 2>&1
}

# The collectives layer itself: member-order sums, max, gather, ring.
for np in 1 2 3 5; do
    if timeout 120 "$MPIEXEC" -np "$np" "$COLLCHECK" </dev/null >"$WORK/last.log" 2>&1; then
        pass "collectives on $np ranks"
    else
        fail "collectives on $np ranks"; tail -5 "$WORK/last.log"
    fi
done

while read -r name args; do
    case $name in ''|'#'*) continue ;; esac
    # shellcheck disable=SC2086
    gen --out "$WORK/$name" $args
    for layout in "1 1 1" "2 2 1" "4 4 1" "2 1 2" "4 2 2" "2 1 1" "8 2 2"; do
        set -- $layout
        np=$1 tp=$2 pp=$3
        [ "$name" = gen_mha_bf16_dynamic ] && [ "$tp" = 4 ] && continue
        d=$WORK/$name.np$np.tp$tp.pp$pp.safetensors
        if fwd "$np" --model_dir "$WORK/$name" --input "$IDS" --tp_size "$tp" --pp_size "$pp" \
            --batch_size 2 --dump "$d" && "$FWDCOMPARE" "$d" "$DATA/$name.ref.safetensors" >"$WORK/cmp.log"; then
            pass "$name np$np tp$tp pp$pp matches transformers"
        else
            fail "$name np$np tp$tp pp$pp"; cat "$WORK/last.log" "$WORK/cmp.log" 2>/dev/null | tail -20
        fi
    done
    # Same arithmetic, same bits: pipeline stages and data parallelism only
    # move whole hidden states; tensor parallelism keeps its own sums.
    for pair in "np2.tp1.pp2 np1.tp1.pp1" "np2.tp1.pp1 np1.tp1.pp1" "np4.tp2.pp2 np2.tp2.pp1" \
                "np8.tp2.pp2 np2.tp2.pp1"; do
        set -- $pair
        if "$FWDCOMPARE" "$WORK/$name.$1.safetensors" "$WORK/$name.$2.safetensors" --tol 0 >/dev/null; then
            pass "$name $1 bit-identical to $2"
        else
            fail "$name $1 differs from $2"
        fi
    done
    if fwd 1 --model_dir "$WORK/$name" --input "$IDS" --batch_size 2 --workers 3 --dump "$WORK/w3.safetensors" &&
        "$FWDCOMPARE" "$WORK/w3.safetensors" "$WORK/$name.np1.tp1.pp1.safetensors" --tol 0 >/dev/null; then
        pass "$name --workers 3 bit-identical to --workers 1"
    else
        fail "$name --workers 3"
    fi
done <"$DATA/cases.txt"

# ---- errors: exit != 0 and the reason named ----
M=$WORK/gen_gqa_f16
expect_error() { # expect_error WHAT PATTERN NP ARGS...
    local what=$1 pat=$2 np=$3
    shift 3
    if fwd "$np" "$@"; then
        fail "$what: exit 0"
    elif grep -q -- "$pat" "$WORK/last.log"; then
        pass "$what"
    else
        fail "$what: no \"$pat\" in:"; tail -5 "$WORK/last.log"
    fi
}
expect_error "3 ranks for tp 2" "multiple of tp_size x pp_size" 3 --model_dir "$M" --input "$IDS" --tp_size 2
printf '{"input_ids": [1, 2, 256]}\n' >"$WORK/oov.jsonl"
expect_error "token id outside the vocabulary" "oov.jsonl:1: input_ids\[2\] is not an integer token id in \[0, 256)" \
    1 --model_dir "$M" --input "$WORK/oov.jsonl"
printf '{"text": "hello"}\n' >"$WORK/text.jsonl"
expect_error "text without a tokenizer" "make ids with trtconv-tokenize" 1 --model_dir "$M" --input "$WORK/text.jsonl"
: >"$WORK/empty.jsonl"
expect_error "empty token file" "no token sequences" 1 --model_dir "$M" --input "$WORK/empty.jsonl"
printf '{"input_ids": []}\n' >"$WORK/e2.jsonl"
expect_error "empty input_ids" "\"input_ids\" is empty" 1 --model_dir "$M" --input "$WORK/e2.jsonl"
printf '{"input_ids": [1, 2.5]}\n' >"$WORK/frac.jsonl"
expect_error "fractional token id" "input_ids\[1\] is not an integer" 1 --model_dir "$M" --input "$WORK/frac.jsonl"
printf '{"input_ids": [1], "input_ids": [2]}\n' >"$WORK/dup.jsonl"
expect_error "duplicate key" "occurs twice" 1 --model_dir "$M" --input "$WORK/dup.jsonl"
cp -r "$M" "$WORK/yarn"
sed -i 's/"rope_type": "llama3"/"rope_type": "yarn"/' "$WORK/yarn/config.json"
expect_error "unsupported rope kind" "rope_scaling type \"yarn\" is not supported" 1 --model_dir "$WORK/yarn" --input "$IDS"
expect_error "tp not dividing heads" "num_attention_heads = 4 is not divisible by tp_size = 3" 3 \
    --model_dir "$M" --input "$IDS" --tp_size 3
if ! nvidia-smi -L >/dev/null 2>&1; then
    expect_error "no GPU with --device gpu" "no CUDA device" 1 --model_dir "$M" --input "$IDS" --device gpu
fi
finish
