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
 * Shard names from the index are refused unless they are plain file names
 * inside the model directory (no '/', no "..", no leading '.', not empty).
 * Shards are opened lazily (header only) by tc_hf_find_tensor, so a rank
 * touches only the shards holding tensors it needs. */
#ifndef TRTCONV_HF_MODEL_H
#define TRTCONV_HF_MODEL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include "trtconv/dtype.h"
#include "trtconv/safetensors.h"
#include "trtconv/status.h"

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
} tc_hf_config;

/* Parse the text of a config.json. label names the file in messages.
 * On TC_OK cfg is filled; release with tc_hf_config_free. */
tc_status tc_hf_config_parse(const char *label, const char *text, size_t len,
                             tc_hf_config *cfg);
tc_status tc_hf_config_load(const char *model_dir, tc_hf_config *cfg);
void tc_hf_config_free(tc_hf_config *cfg); /* accepts zeroed structs */

/* Read a whole small file (config/index JSON) with a size cap. On TC_OK
 * *out (malloc'd, NUL-terminated, caller frees) holds *len bytes. */
tc_status tc_read_small_file(const char *path, size_t max_len, char **out,
                             size_t *len);

typedef struct tc_hf_model {
    char *dir;
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

/* Find tensor `name`: opens (and fully validates) its shard on first use.
 * On TC_OK *file and *t borrow from m. A missing tensor is TC_E_INPUT with a
 * message naming the tensor and the file or index it should be in. */
tc_status tc_hf_find_tensor(tc_hf_model *m, const char *name,
                            const tc_st_file **file, const tc_st_tensor **t);

/* Like tc_hf_find_tensor but reports absence with *t = NULL and TC_OK. */
tc_status tc_hf_lookup_tensor(tc_hf_model *m, const char *name,
                              const tc_st_file **file, const tc_st_tensor **t);

/* Parse the text of model.safetensors.index.json (len bytes; label names
 * it in messages) into m's weight map: entries sorted by name, unique shard
 * names, each validated by tc_hf_shard_name_ok. m must be zeroed apart from
 * dir/cfg; on failure the caller releases m with tc_hf_close. Exposed for
 * unit tests and fuzzing. */
tc_status tc_hf_index_parse(tc_hf_model *m, const char *label, const char *text, size_t len);

/* True if name is acceptable as a shard file name (see top of file). */
bool tc_hf_shard_name_ok(const char *name);

#endif
