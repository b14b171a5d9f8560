#!/bin/bash
# Weight-only quantization end to end: trtconv's rank files against
# tc-refconv, which quantizes whole per-rank slices with the literal
# step-by-step reference (tc_woq_quantize_ref), for int8/int4, every layout
# family, tp 1/2/4, pp 1/2, several rank counts and worker counts; the
# config.json quant_algo; shape preconditions refused before anything is
# written; and the refusal to guess a layout without a GPU or --target_sm.
. "$(dirname "$0")/lib.sh"
: "${REFCONV:?}"

M=$WORK/model
gen --out "$M" --layers 2 --hidden 256 --heads 4 --kv_heads 2 --head_dim 64 --intermediate 512 \
    --vocab 100 --dtype bfloat16 --shards 2 --special_values --seed 21

for bits in int8 int4; do
    for sm in 70 80 90; do
        check "${bits}_sm${sm}_tp1" "$M" 1 --use_weight_only --weight_only_precision $bits \
            --target_sm $sm --dtype float16
        check "${bits}_sm${sm}_tp2pp2" "$M" 4 --use_weight_only --weight_only_precision $bits \
            --target_sm $sm --tp_size 2 --pp_size 2 --dtype bfloat16
        check "${bits}_sm${sm}_tp4_np2_w3" "$M" 2 --use_weight_only --weight_only_precision $bits \
            --target_sm $sm --tp_size 4 --dtype float16 --workers 3
    done
    # Turing, Ampere and Ada share one layout.
    for sm in 75 86 89; do
        check "${bits}_sm${sm}_tp2" "$M" 2 --use_weight_only --weight_only_precision $bits \
            --target_sm $sm --tp_size 2 --dtype float16
    done
done
check int8_f32_sm80_pp2 "$M" 1 --use_weight_only --target_sm 80 --pp_size 2 --dtype float32

grep -q '"quant_algo": "W4A16"' "$WORK/int4_sm80_tp1.trt/config.json" &&
    grep -q '"quant_algo": "W8A16"' "$WORK/int8_sm90_tp2pp2.trt/config.json" &&
    pass "config.json quant_algo" || fail "config.json quant_algo"
grep -aq '"transformer.layers.0.attention.qkv.per_channel_scale":{"dtype":"F16","shape":\[512\]' \
    "$WORK/int8_sm80_tp1.trt/rank0.safetensors" &&
    grep -aq '"transformer.layers.0.mlp.proj.weight":{"dtype":"I8","shape":\[512,128\]' \
        "$WORK/int4_sm80_tp1.trt/rank0.safetensors" &&
    grep -aq '"lm_head.weight":{"dtype":"F16"' "$WORK/int4_sm80_tp1.trt/rank0.safetensors" &&
    pass "names, shapes and dtypes of quantized tensors" || fail "quantized tensor headers"

# --disable_weight_only_quant_plugin: W^T unquantized plus scales, any SM.
check int8_noplugin_tp2 "$M" 2 --use_weight_only --disable_weight_only_quant_plugin --tp_size 2 \
    --dtype float16 --workers 2
grep -q '"disable_weight_only_quant_plugin": true' "$WORK/int8_noplugin_tp2.trt/config.json" &&
    grep -aq '"transformer.layers.0.mlp.proj.weight":{"dtype":"F16","shape":\[256,256\]' \
        "$WORK/int8_noplugin_tp2.trt/rank0.safetensors" &&
    pass "non-plugin path: config flag and transposed F16 weights" || fail "non-plugin config/header"
rc=0; run_np 1 --model_dir "$M" --output_dir "$WORK/np4" --use_weight_only --weight_only_precision int4 \
    --disable_weight_only_quant_plugin || rc=$?
[ $rc -eq 2 ] && grep -q "only int8" "$WORK/last.log" && pass "int4 without the plugin refused (exit 2)" ||
    fail "int4 non-plugin: rc $rc"

# A precondition broken on one tensor: refused before anything is written.
B=$WORK/bad
gen --out "$B" --layers 2 --hidden 128 --heads 2 --head_dim 64 --intermediate 192 --vocab 64 --seed 22
out=$WORK/out_bad
rc=0; run_np 2 --model_dir "$B" --output_dir "$out" --tp_size 2 --use_weight_only \
    --weight_only_precision int4 --target_sm 80 || rc=$?
if [ $rc -eq 3 ] && grep -q "mlp.fc.weight" "$WORK/last.log" && grep -q "96" "$WORK/last.log" &&
    ! ls "$out" 2>/dev/null | grep -q rank && [ ! -e "$out/config.json" ]; then
    pass "int4 sm80 with I/tp = 96 refused before writing (exit 3)"
else
    fail "precondition: rc $rc"; cat "$WORK/last.log"; ls "$out"
fi

# No --target_sm: the layout comes from the rank's GPU; without one, refuse.
rc=0; run_np 1 --model_dir "$M" --output_dir "$WORK/nogpu" --use_weight_only || rc=$?
if [ $rc -eq 2 ] && grep -q "no GPU and no --target_sm" "$WORK/last.log"; then
    pass "no GPU and no --target_sm: refused with the reason (exit 2)"
elif [ $rc -eq 0 ] && grep -q "CUTLASS layout for sm" "$WORK/last.log"; then
    pass "no --target_sm: layout of this machine's GPU ($(grep -o 'sm[0-9]*' "$WORK/last.log" | head -1))"
else
    fail "no --target_sm: rc $rc"; cat "$WORK/last.log"
fi
finish
