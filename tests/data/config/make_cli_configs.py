#!/usr/bin/env python3
"""Expected config.json of a run without --model_dir (tests/mpi/test_cli.sh).

TensorRT-LLM v0.12 (commit be9cd719) examples/llama/convert_checkpoint.py
main() writes json.dump(from_cli_args(args), f, indent=4) when neither
--model_dir nor --meta_ckpt_dir is given. The dict below follows
from_cli_args() and args_to_build_options() key for key, with the argparse
defaults of that file (--dtype float16, --n_positions 2048, --rms_norm_eps
1e-06, --rotary_base 10000.0, --moe_renorm_mode RENORMALIZE = 1) and
main()'s moe_tp_size/moe_ep_size defaults (tp_size, 1). Python's own
json.dump does the formatting, independently of trtconv's renderer.
Run from the repository root: python3 tests/data/config/make_cli_configs.py
"""
import json


def cli_config(ffn_dim_multiplier, multiple_of):
    return {
        'architecture': "LlamaForCausalLM", 'dtype': 'float16', 'logits_dtype': 'float32',
        'num_hidden_layers': 4, 'num_attention_heads': 8, 'hidden_size': 512,
        'intermediate_size': 1024, 'ffn_dim_multiplier': ffn_dim_multiplier,
        'multiple_of': multiple_of, 'num_key_value_heads': 2, 'vocab_size': 1000,
        'position_embedding_type': 'rope_gpt_neox', 'max_position_embeddings': 2048,
        'hidden_act': 'silu', 'rotary_base': 10000.0, 'norm_epsilon': 1e-06,
        'moe': {'num_experts': 0, 'top_k': 0, 'normalization_mode': 1},
        'mapping': {'world_size': 2, 'tp_size': 2, 'pp_size': 1, 'moe_tp_size': 2,
                    'moe_ep_size': 1},
        'quantization': {'quant_algo': None, 'kv_cache_quant_algo': None, 'group_size': 128,
                         'smoothquant_val': None, 'clamp_val': None, 'has_zero_point': False,
                         'pre_quant_scale': False, 'exclude_modules': None},
        'use_parallel_embedding': False, 'embedding_sharding_dim': 0,
        'share_embedding_table': False, 'disable_weight_only_quant_plugin': False,
        'remove_duplicated_kv_heads': False,
    }


# --n_layer 4 --n_head 8 --n_kv_head 2 --n_embd 512 --vocab_size 1000
# --inter_size 1024 --tp_size 2 [--multiple_of 256 --ffn_dim_multiplier 1.3]
for name, args in (('cli_l4_h8_kv2_tp2.json', (1.3, 256)),
                   ('cli_defaults_l4_h8_kv2_tp2.json', (None, None))):
    with open('tests/data/config/' + name, 'w') as f:
        json.dump(cli_config(*args), f, indent=4)
