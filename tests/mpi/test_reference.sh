#!/bin/bash
# trtconv against tc-refconv, a naive whole-tensor reimplementation of the
# upstream converter's steps, over model shapes and layouts that exercise
# GQA KV-head duplication, vocab padding, biases, tied embeddings, parallel
# embedding on both dims, embedding sharing, dtype casts with special values
# (NaN, Inf, subnormals, ties), sharded inputs and both config styles.
. "$(dirname "$0")/lib.sh"
: "${REFCONV:?}"

M=$WORK/models
gen --out "$M/gqa" --layers 4 --hidden 128 --heads 8 --kv_heads 2 --intermediate 192 --vocab 101 \
    --dtype float16 --shards 3 --seed 1
gen --out "$M/mha_bf16" --layers 2 --hidden 64 --heads 4 --intermediate 128 --vocab 64 \
    --dtype bfloat16 --special_values --seed 2
gen --out "$M/f32" --layers 2 --hidden 64 --heads 4 --kv_heads 2 --intermediate 96 --vocab 50 \
    --dtype float32 --special_values --seed 3
gen --out "$M/bias_tied" --layers 2 --hidden 64 --heads 4 --intermediate 64 --vocab 30 \
    --dtype float16 --attention_bias --tied --config_style hf5 --seed 4
gen --out "$M/mistral" --arch mistral --layers 2 --hidden 96 --heads 4 --kv_heads 1 --head_dim 32 \
    --intermediate 64 --vocab 40 --dtype bfloat16 --rope_scaling llama3 --seed 5

check gqa_tp1 "$M/gqa" 1 --tp_size 1
check gqa_tp2_pp2 "$M/gqa" 4 --tp_size 2 --pp_size 2
check gqa_tp4_kvdup "$M/gqa" 4 --tp_size 4
check gqa_tp8_kvdup_pp2 "$M/gqa" 4 --tp_size 8 --pp_size 2 --workers 2
check gqa_pp4 "$M/gqa" 2 --pp_size 4 --dtype bfloat16
check mha_bf16_to_f16 "$M/mha_bf16" 2 --tp_size 2 --pp_size 2 --dtype float16
check mha_bf16_to_f32 "$M/mha_bf16" 1 --tp_size 2 --dtype float32
check f32_to_bf16_special "$M/f32" 2 --tp_size 2 --dtype bfloat16
check f32_to_f16_special "$M/f32" 2 --tp_size 2 --dtype float16
check bias_tied_tp2 "$M/bias_tied" 2 --tp_size 2
check bias_tied_paremb0 "$M/bias_tied" 4 --tp_size 4 --use_parallel_embedding --embedding_sharding_dim 0
check bias_tied_paremb1 "$M/bias_tied" 2 --tp_size 2 --use_parallel_embedding --embedding_sharding_dim 1
check bias_tied_sharing "$M/bias_tied" 2 --tp_size 2 --use_parallel_embedding --embedding_sharding_dim 0 --use_embedding_sharing
check mistral_tp4 "$M/mistral" 2 --tp_size 4 --dtype bfloat16

# config.json details that the rank files do not show.
grep -q '"share_embedding_table": true' "$WORK/bias_tied_sharing.trt/config.json" &&
    ! grep -aq 'lm_head.weight' "$WORK/bias_tied_sharing.trt/rank0.safetensors" &&
    pass "embedding sharing drops lm_head and sets share_embedding_table" ||
    fail "embedding sharing config"
grep -q '"attn_bias": true' "$WORK/bias_tied_tp2.trt/config.json" && pass "attn_bias in config" ||
    fail "attn_bias in config"
grep -q '"rope_type": "llama3"' "$WORK/mistral_tp4.trt/config.json" &&
    grep -q '"architecture": "MistralForCausalLM"' "$WORK/mistral_tp4.trt/config.json" &&
    grep -q '"head_size": 32' "$WORK/mistral_tp4.trt/config.json" &&
    pass "rotary_scaling, architecture and head_size copied" || fail "mistral config"
finish
