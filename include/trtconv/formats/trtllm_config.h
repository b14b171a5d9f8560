/* trtllm_config.h: the TensorRT-LLM v0.12 config.json that rank 0 writes.
 *
 * Format (trtllm-checkpoint.md §3): Python json.dump(indent=4) of the Era B
 * LLaMAConfig: 4-space indentation, ": " separators, nested containers one
 * element per line, "[]"/"{}" when empty, no trailing newline, ASCII only
 * (non-ASCII as \uXXXX), floats as Python repr ("1e-05", "10000.0").
 * Keys in the Era B order of §3.4; quantization keys per §3.2 (be9cd719
 * column, with clamp_val). TensorRT-LLM v0.12's own output (the golden
 * config.json files in tests/data/golden) settles what the spec left open:
 * mapping is world_size, gpus_per_node, cp_size, tp_size, pp_size,
 * moe_tp_size, moe_ep_size, and moe is num_experts, top_k,
 * normalization_mode, tp_mode (no sparse_mixer_epsilon).
 *
 * Without --model_dir the script writes another dict (from_cli_args):
 * tc_trtllm_cli_config_render. */
#ifndef TRTCONV_TRTLLM_CONFIG_H
#define TRTCONV_TRTLLM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "trtconv/core/dtype.h"
#include "trtconv/core/status.h"

struct cJSON;

typedef struct tc_trtllm_config {
    bool mlp_bias, attn_bias;
    double rotary_base;
    const struct cJSON *rotary_scaling;    /* borrowed; NULL -> null */
    bool residual_mlp;
    bool disable_weight_only_quant_plugin;
    int64_t moe_num_experts, moe_top_k;
    int64_t moe_normalization_mode;        /* < 0 -> null */
    int64_t moe_tp_mode;                   /* MoeConfig.tp_mode, 0 */
    bool remove_duplicated_kv_heads;
    const char *architecture;
    tc_float_type dtype;
    int64_t vocab_size, hidden_size, num_hidden_layers, num_attention_heads;
    const char *hidden_act;
    const char *logits_dtype;              /* "float32" */
    double norm_epsilon;
    const char *position_embedding_type;   /* "rope_gpt_neox" */
    int64_t max_position_embeddings, num_key_value_heads, intermediate_size;
    int64_t world_size, gpus_per_node, cp_size, tp_size, pp_size, moe_tp_size, moe_ep_size;
    const char *quant_algo;                /* NULL -> null */
    const char *kv_cache_quant_algo;       /* NULL -> null */
    int64_t group_size;
    bool has_smoothquant_val; double smoothquant_val;
    bool has_clamp_val; double clamp_val[2];
    /* Later TensorRT-LLM's QuantConfig.use_meta_recipe, written (after
     * clamp_val) only when set: v0.12's QuantConfig rejects the key. */
    bool use_meta_recipe;
    bool has_zero_point, pre_quant_scale;
    bool use_parallel_embedding;
    int64_t embedding_sharding_dim;
    bool share_embedding_table;
    int64_t head_size;
    bool qk_layernorm;
    /* fake config only (tc_trtllm_cli_config_render): null when unset */
    bool has_multiple_of; int64_t multiple_of;
    bool has_ffn_dim_multiplier; double ffn_dim_multiplier;
} tc_trtllm_config;

/* Python repr() of a double: shortest round-trip digits, ".0" on integral
 * values, exponent form when the decimal exponent is < -4 or >= 16
 * ("1e-05", "1e+16"), "NaN"/"Infinity"/"-Infinity" as json.dump writes them.
 * buf must hold at least 32 bytes. Returns buf. */
char *tc_py_float_repr(double v, char *buf, size_t size);

/* Serialize cfg as described at the top of the file. On TC_OK *out is a
 * malloc'd NUL-terminated string the caller frees. */
tc_status tc_trtllm_config_render(const tc_trtllm_config *cfg, char **out);

/* The config.json convert_checkpoint.py v0.12 writes without --model_dir
 * and --meta_ckpt_dir: json.dump of from_cli_args(args), a plain dict in
 * its own key order (architecture, dtype, logits_dtype, ... moe without
 * tp_mode, mapping without gpus_per_node/cp_size, quantization, then the
 * build options), no head_size. Same output contract as above. */
tc_status tc_trtllm_cli_config_render(const tc_trtllm_config *cfg, char **out);

/* Serialize any cJSON value in the same Python style at the given indent
 * level (used for rotary_scaling). Appends to a growing buffer. Integral
 * numbers are written as integers, others with tc_py_float_repr. */
tc_status tc_py_json_render(const struct cJSON *v, int indent, char **buf,
                            size_t *len, size_t *cap);

#endif
