#!/bin/bash
# compare-builds-run.sh GENMODEL TRTCONV_BUILD WORK: the conversions of
# compare-builds.sh with one build; prints "sha256 path" per output file.
set -euo pipefail
G=$1; B=$2; W=$3; rm -rf "$W"; mkdir -p "$W"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
$G --out $W/m --layers 4 --hidden 256 --heads 8 --kv_heads 2 --intermediate 688 --vocab 3072 --dtype bfloat16 --shards 2 >/dev/null
$G --out $W/mt --layers 2 --hidden 128 --heads 4 --intermediate 256 --vocab 500 --tied --attention_bias --rope_scaling llama3 >/dev/null
$G --out $W/meta --layers 2 --hidden 128 --heads 4 --kv_heads 2 --intermediate 256 --vocab 512 --format meta --mp 2 >/dev/null
$G --out $W/mw --layers 2 --hidden 256 --heads 4 --intermediate 512 --vocab 512 >/dev/null
$G --out $W/bin --layers 2 --hidden 128 --heads 4 --intermediate 256 --vocab 512 --format bin >/dev/null
cp $ROOT/tests/data/tokenizer/llama2/tokenizer.model $ROOT/tests/data/tokenizer/llama2/tokenizer_config.json $W/m/
D=$ROOT/data/demo-articles.jsonl
run() { local name=$1; shift; local np=$1; shift
  mpirun -np $np $B/trtconv "$@" --output_dir $W/o-$name --log_level error >$W/log-$name 2>&1 || echo "FAIL $name rc=$?"; }
run plain 4 --model_dir $W/m --tp_size 2 --pp_size 2 --dtype float16
run plain3 3 --model_dir $W/m --tp_size 2 --pp_size 2
run pe0 2 --model_dir $W/mt --tp_size 2 --use_parallel_embedding --embedding_sharding_dim 0 --use_embedding_sharing
run pe1 2 --model_dir $W/mt --tp_size 2 --use_parallel_embedding --embedding_sharding_dim 1 --dtype float32
run w8 2 --model_dir $W/mw --tp_size 2 --use_weight_only --weight_only_precision int8 --target_sm 80
run w4 2 --model_dir $W/mw --tp_size 2 --use_weight_only --weight_only_precision int4 --target_sm 90
run w4b 1 --model_dir $W/mw --pp_size 2 --use_weight_only --weight_only_precision int8 --disable_weight_only_quant_plugin
run w8s70 1 --model_dir $W/mw --use_weight_only --target_sm 70
run meta 2 --meta_ckpt_dir $W/meta --tp_size 2
run bin 1 --model_dir $W/bin --tp_size 2
run sq 4 --model_dir $W/m --tp_size 2 --pp_size 2 --smoothquant 0.5 --per_channel --per_token --int8_kv_cache --calib_dataset $D --calib_size 8 --calib_stats_out $W/stats.h5
run sqt 2 --model_dir $W/m --tp_size 2 --smoothquant 0.8 --calib_stats $W/stats.h5
run sqc 1 --model_dir $W/m --tp_size 2 --pp_size 2 --smoothquant 0.3 --per_channel --calib_stats $W/stats.h5 --dtype bfloat16
run kv 2 --model_dir $W/m --pp_size 2 --int8_kv_cache --calib_stats $W/stats.h5
run cfgonly 1 --model_dir $W/m --tp_size 2 --save_config_only
run nomodel 1 --tp_size 2 --n_layer 4 --n_embd 256 --n_head 8 --vocab_size 1000
cd $W && find o-* -type f \( -name 'rank*.safetensors' -o -name config.json \) | sort | xargs sha256sum | sed 's/  / /' 
