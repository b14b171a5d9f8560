#!/bin/bash
# The output is byte-identical whatever the number of ranks N (fewer,
# equal or more than the tp*pp cells) and --workers.
. "$(dirname "$0")/lib.sh"
M=$WORK/model
gen --out "$M" --layers 4 --hidden 128 --heads 8 --kv_heads 4 --intermediate 256 --vocab 130 \
    --dtype bfloat16 --shards 2 --seed 7

for layout in "2 2 float16" "4 1 bfloat16" "1 4 float32" "2 1 float16"; do
    set -- $layout
    tp=$1 pp=$2 dt=$3
    ref=$WORK/ref_${tp}_${pp}
    run_np 1 --model_dir "$M" --output_dir "$ref" --tp_size "$tp" --pp_size "$pp" --dtype "$dt" ||
        { fail "tp$tp pp$pp np1"; cat "$WORK/last.log"; continue; }
    for combo in "2 1" "3 2" "4 3" "5 1"; do
        set -- $combo
        np=$1 workers=$2
        out=$WORK/o_${tp}_${pp}_${np}_${workers}
        if run_np "$np" --model_dir "$M" --output_dir "$out" --tp_size "$tp" --pp_size "$pp" \
            --dtype "$dt" --workers "$workers" && same_dir "$ref" "$out"; then
            pass "tp$tp pp$pp $dt: np $np workers $workers identical to np 1"
        else
            fail "tp$tp pp$pp $dt: np $np workers $workers"; cat "$WORK/last.log"
        fi
    done
done
grep -q "nothing to convert" "$WORK/last.log" && pass "idle ranks are announced" ||
    fail "idle ranks notice missing"
finish
