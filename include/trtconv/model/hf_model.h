/* hf_model.h: a Hugging Face LLaMA-family model directory.
 *
 * Files read:
 *   config.json                    LlamaForCausalLM / MistralForCausalLM
 *                                  config, either style: older (torch_dtype,
 *                                  rope_theta, rope_scaling) or transformers 5
 *                                  (dtype, rope_parameters).
 *   model.safetensors              single-file weights, or
 *   model.safetensors.index.json   {"metadata":{...},"weight_map":{tensor:
 *                                  file}} plus the shard files it names.
 *   pytorch_model.bin              instead of the safetensors files (when
 *   pytorch_model.bin.index.json   there are none): torch.save archives,
 *                                  read by torchfile.h without executing
 *                                  their pickles; the same index layout.
 * Shard names from the index are refused unless they are plain file names
 * inside the model directory (no '/', no "..", no leading '.', not empty)
 * ending in the index's weight suffix (.safetensors or .bin).
 * Shards are opened lazily (header only) by tc_hf_find_tensor, so a rank
 * touches only the shards holding tensors it needs.
 *
 * A Meta checkpoint directory (tc_meta_open, --meta_ckpt_dir) is presented
 * through the same model under Hugging Face names (docs/meta-and-bin.md):
 *   params.json          {"dim", "n_layers", "n_heads", "n_kv_heads",
 *                         "vocab_size", "multiple_of", "ffn_dim_multiplier",
 *                         "hidden_dim", "norm_eps", "rope_theta",
 *                         "use_scaled_rope", ...} -> tc_hf_config with the
 *                         defaults of TensorRT-LLM's LLaMAConfig.from_meta_ckpt;
 *   consolidated.NN.pth  NN = 00 .. MP-1, torch.save'd model-parallel shards.
 * A tensor may then be several pieces (one per MP shard, concatenated along
 * its model-parallel dimension) and, for q/k, a row permutation (Meta's
 * interleaved rotary layout); tc_hf_get describes both and plan.c reads
 * only the pieces a slice touches. */
#ifndef TRTCONV_HF_MODEL_H
#define TRTCONV_HF_MODEL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include "trtconv/core/dtype.h"
#include "trtconv/formats/safetensors.h"
#include "trtconv/core/fsutil.h"
#include "trtconv/core/status.h"

struct cJSON;

typedef struct tc_hf_config {
    char architecture[64];       /* architectures[0] */
    char model_type[32];         /* "llama", "mistral", ... ("" if absent) */
    int64_t vocab_size;
    int64_t hidden_size;
    int64_t intermediate_size;
    int64_t num_hidden_layers;
    int64_t num_attention_heads;
    int64_t num_key_value_heads; /* = num_attention_heads when absent/null */
    int64_t head_dim;            /* head_dim, else hidden/heads */
    int64_t max_position_embeddings;
    double rms_norm_eps;         /* default 1e-6 as HF LlamaConfig */
    double rope_theta;           /* rope_theta or rope_parameters.rope_theta; 10000 */
    struct cJSON *rope_scaling;  /* owned; NULL when none / rope_type default */
    bool tie_word_embeddings;    /* default false for Llama */
    bool attention_bias;         /* attention_bias or bias */
    bool mlp_bias;
    char hidden_act[32];         /* "silu" */
    bool has_torch_dtype;        /* torch_dtype or dtype present */
    tc_float_type torch_dtype;   /* its value when has_torch_dtype */
    /* quantization_config.quant_method = "fbgemm_fp8" (Llama-3.1-405B-FP8):
     * MLP weights stored as F8_E4M3 with `weight_scale` F32 [N, 1]; the
     * activation bound becomes clamp_val (docs/fp8.md). Any other method is
     * refused when the config is parsed. */
    bool fbgemm_fp8;
    double activation_scale_ub;  /* default 1200 */
    /* --remove_duplicated_kv_heads (tc_hf_config_remove_duplicated_kv_heads):
     * the checkpoint stores every KV head twice, as heads 2h and 2h+1, and
     * num_key_value_heads above counts each once (plan.c reads head 2h). */
    bool kv_heads_stored_twice;
    /* Mixture of experts (docs/moe.md), as TensorRT-LLM v0.12
     * LLaMAConfig.from_hugging_face reads it: num_local_experts and
     * num_experts_per_tok (0 when absent; both or neither); a model is MoE
     * when it has more than one expert (MoeConfig.has_moe). For model_type
     * mixtral the normalization is RENORMALIZE (1) and config.json's
     * hidden_act "swiglu"; otherwise -1 (null). */
    int64_t moe_num_experts, moe_top_k;
    int moe_normalization_mode;
} tc_hf_config;

static inline bool tc_hf_is_moe(const tc_hf_config *c) { return c->moe_num_experts > 1; }

/* TensorRT-LLM v0.12 --remove_duplicated_kv_heads (Llama-3.1-405B's Hugging
 * Face checkpoint): LLaMAForCausalLM.from_hugging_face halves
 * num_key_value_heads and QkvWeightHelper.split_qkv_weights keeps the first
 * of each pair of KV heads (2h, 2h+1), asserting they are equal (which
 * tc_plan_check_kv_duplicates does). TC_E_INPUT naming the rule when the
 * count is odd or the attention has biases (v0.12's helper handles weights
 * only). */
tc_status tc_hf_config_remove_duplicated_kv_heads(tc_hf_config *cfg, const char *label);

/* Parse the text of a config.json. label names the file in messages.
 * On TC_OK cfg is filled; release with tc_hf_config_free. */
tc_status tc_hf_config_parse(const char *label, const char *text, size_t len,
                             tc_hf_config *cfg);
tc_status tc_hf_config_load(const char *model_dir, tc_hf_config *cfg);
void tc_hf_config_free(tc_hf_config *cfg); /* accepts zeroed structs */


typedef enum tc_hf_format {
    TC_HF_SAFETENSORS = 0,      /* model.safetensors[.index.json] */
    TC_HF_TORCH,                /* pytorch_model.bin[.index.json] */
    TC_HF_META                  /* params.json + consolidated.NN.pth */
} tc_hf_format;

typedef struct tc_hf_model {
    char *dir;
    tc_hf_format format;
    const char *config_name;     /* "config.json" or "params.json" (static) */
    const char *index_name;      /* the index file's name (static), or NULL */
    tc_hf_config cfg;
    /* weight_map from the index, sorted by tensor name; a single-file model
     * has n_entries == 0 and every tensor is looked up in model.safetensors. */
    size_t n_entries;
    char **entry_names;          /* tensor names */
    int *entry_shard;            /* index into shard_names */
    size_t n_shards;
    char **shard_names;          /* file names, validated */
    tc_st_file **shards;         /* opened lazily; NULL until needed */
    pthread_mutex_t lock;        /* guards lazy opening */
} tc_hf_model;

/* Open model_dir: parse config.json and the index (if any). No shard is
 * opened yet. On TC_OK *out belongs to the caller (tc_hf_close). */
tc_status tc_hf_open(const char *model_dir, tc_hf_model **out);
void tc_hf_close(tc_hf_model *m); /* accepts NULL */

/* Most model-parallel shards of a Meta checkpoint trtconv reads. */
#define TC_HF_MAX_PARTS 64

/* A source tensor under its Hugging Face name, as tc_hf_get describes it:
 * the logical tensor of shape [shape0, shape1] (1-D: shape1 = 1) is the
 * concatenation of n_parts stored tensors along split_dim (each part the
 * same shape), and with rope_head_dim = d > 0 its logical row h*d + j is
 * stored row h*d + 2*(j % (d/2)) + j / (d/2) (Meta's interleaved q/k). For
 * Hugging Face files n_parts is 1, split_dim -1 and rope_head_dim 0.
 * Pointers borrow from the model. */
typedef struct tc_hf_tensor {
    const char *name;            /* the Hugging Face name looked up */
    const char *path;            /* the file of part 0, for messages */
    tc_dtype dtype;
    int ndim;                    /* 1 or 2 (others: stored shape in parts) */
    int64_t shape[2];
    size_t n_parts;              /* 0: absent */
    int split_dim;               /* 0, 1, or -1 (one part / replicated) */
    int64_t rope_head_dim;
    const tc_st_file *files[TC_HF_MAX_PARTS];
    const tc_st_tensor *parts[TC_HF_MAX_PARTS];
} tc_hf_tensor;

/* Describe tensor `name` into *out (opening the files that hold it). When
 * it is absent: TC_E_INPUT naming it and where it should be if required,
 * else TC_OK with out->n_parts = 0. Parts of a Meta tensor that disagree
 * in dtype or shape are TC_E_INPUT naming the shard. */
tc_status tc_hf_get(tc_hf_model *m, const char *name, bool required, tc_hf_tensor *out);

/* Open a Meta checkpoint directory (see top of file). On TC_OK *out
 * belongs to the caller (tc_hf_close). */
tc_status tc_meta_open(const char *dir, tc_hf_model **out);
/* Parse the text of params.json (label names it in messages) into cfg
 * (release with tc_hf_config_free). */
tc_status tc_meta_params_parse(const char *label, const char *text, size_t len,
                               tc_hf_config *cfg);

/* Find tensor `name`: opens (and fully validates) its shard on first use.
 * On TC_OK *file and *t borrow from m. A missing tensor is TC_E_INPUT with a
 * message naming the tensor and the file or index it should be in. */
tc_status tc_hf_find_tensor(tc_hf_model *m, const char *name,
                            const tc_st_file **file, const tc_st_tensor **t);

/* Like tc_hf_find_tensor but reports absence with *t = NULL and TC_OK. */
tc_status tc_hf_lookup_tensor(tc_hf_model *m, const char *name,
                              const tc_st_file **file, const tc_st_tensor **t);

/* Parse the text of model.safetensors.index.json (or, with m->format
 * TC_HF_TORCH, pytorch_model.bin.index.json; len bytes; label names
 * it in messages) into m's weight map: entries sorted by name, unique shard
 * names, each validated by tc_hf_shard_name_ok (tc_hf_bin_name_ok). m must be zeroed apart from
 * dir/cfg; on failure the caller releases m with tc_hf_close. Exposed for
 * unit tests and fuzzing. */
tc_status tc_hf_index_parse(tc_hf_model *m, const char *label, const char *text, size_t len);

/* True if name is acceptable as a shard file name (see top of file). */
bool tc_hf_shard_name_ok(const char *name);
/* The same for pytorch_model*.bin shards. */
bool tc_hf_bin_name_ok(const char *name);

#endif
