#!/bin/bash
# Plain float16 conversion of the golden model (a transformers 5 config)
# against the rank files written by TensorRT-LLM's own converter:
#  - golden/v012/fp8kv_fp16_tp{1,2}pp1 (v0.12, per-rank path): the plain
#    weights plus the three float32 rope buffers every per-rank-path file
#    holds, and the FP8 KV scale [1.0] a plain conversion does not write
#    (ignored); the rope buffers must be the same bytes, and config.json the
#    same file but for kv_cache_quant_algo;
#  - golden/sq_mha/kv_only_tp{1,2}pp{1,2} (the quantize path, which writes no
#    rope buffers): the same weights for pp 2 layouts, rope and INT8 KV
#    scales ignored.
. "$(dirname "$0")/lib.sh"
G=${TRTCONV_GOLDEN_DIR:-}/sq_mha
V=${TRTCONV_GOLDEN_DIR:-}/v012
[ -d "$G/hf" ] || { echo "FAIL: golden directory not found: $G (TRTCONV_GOLDEN_DIR)"; exit 1; }

for layout in "1 1" "2 1" "1 2" "2 2"; do
    set -- $layout
    tp=$1 pp=$2 world=$((tp * pp))
    for np in $(printf '%s\n' $world 1 3 | sort -un); do
        out=$WORK/tp${tp}pp${pp}_np$np
        if ! run_np "$np" --model_dir "$G/hf" --output_dir "$out" --overwrite --tp_size "$tp" --pp_size "$pp" \
            --dtype float16; then
            fail "tp$tp pp$pp np$np: trtconv failed"; cat "$WORK/last.log"; continue
        fi
        ok=1
        for ((r = 0; r < world; r++)); do
            "$STCOMPARE" --ignore kv_cache_scaling_factor --ignore embed_positions \
                --ignore rotary_inv_freq "$G/kv_only_tp${tp}pp${pp}/rank$r.safetensors" \
                "$out/rank$r.safetensors" >"$WORK/cmp.log" || { ok=0; cat "$WORK/cmp.log"; }
        done
        [ $ok = 1 ] && pass "tp$tp pp$pp on $np rank(s): weights equal upstream's" ||
            fail "tp$tp pp$pp np$np weights differ"
        if [ "$pp" = 1 ]; then
            ok=1
            for ((r = 0; r < world; r++)); do
                "$STCOMPARE" --ignore kv_cache_scaling_factor "$V/fp8kv_fp16_tp${tp}pp1/rank$r.safetensors" \
                    "$out/rank$r.safetensors" >"$WORK/cmp.log" || { ok=0; cat "$WORK/cmp.log"; }
            done
            sed 's/"kv_cache_quant_algo": "FP8"/"kv_cache_quant_algo": null/' \
                "$V/fp8kv_fp16_tp${tp}pp1/config.json" >"$WORK/expected_config.json"
            cmp "$WORK/expected_config.json" "$out/config.json" || ok=0
            [ $ok = 1 ] && pass "tp$tp on $np rank(s): every tensor of v0.12's per-rank path \
(rope buffers included) byte-identical, config.json whole-file equal" ||
                fail "tp$tp np$np against v0.12's per-rank path"
        fi
        "$TRTCONV" verify "$out" >"$WORK/verify.log" 2>&1 || { fail "verify tp$tp pp$pp np$np"; cat "$WORK/verify.log"; }
    done
done

# The rope buffers of a model whose config asks for other tables: theta
# 500000 with llama3 scaling, linear and dynamic scaling, 128 positions.
# verify recomputes them from config.json, and a flipped bit is caught.
for rs in llama3 linear dynamic; do
    gen --out "$WORK/m_$rs" --layers 2 --hidden 64 --heads 4 --kv_heads 2 --intermediate 96 --vocab 40 \
        --dtype float16 --rope_scaling $rs --seed 7
    run_np 2 --model_dir "$WORK/m_$rs" --output_dir "$WORK/o_$rs" --tp_size 2 &&
        "$TRTCONV" verify "$WORK/o_$rs" >"$WORK/verify.log" &&
        grep -q '"rotary_scaling": {' "$WORK/o_$rs/config.json" &&
        pass "rope scaling $rs: rope buffers as config.json describes them (verify)" ||
        { fail "rope scaling $rs"; cat "$WORK/last.log" "$WORK/verify.log"; }
done
f=$WORK/o_llama3/rank1.safetensors
off=$(( $(od -An -t u8 -N 8 "$f") + 8 + 100 ))
cp "$WORK/o_llama3/rank1.safetensors" "$WORK/rank1.orig"
printf '\x01' | dd of="$f" bs=1 seek=$off conv=notrunc 2>/dev/null
rc=0; "$TRTCONV" verify --no-hash "$WORK/o_llama3" >"$WORK/verify.log" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "differs from the rotary table config.json describes" "$WORK/verify.log" &&
    pass "verify refuses a changed rope buffer value" || { fail "verify missed a changed rope value"; cat "$WORK/verify.log"; }
finish
