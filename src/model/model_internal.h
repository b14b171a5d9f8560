/* model_internal.h: what the files of src/model/ share (not a public
 * interface): limits, the JSON getters of config.json / params.json, the
 * shard and tensor lookups that meta.c builds on.
 *   hf_config.c  config.json (tc_hf_config_parse / load)
 *   hf_model.c   the index, lazily opened shards, tensors by HF name
 *   meta.c       Meta consolidated.*.pth checkpoints under HF names */
#ifndef TRTCONV_MODEL_INTERNAL_H
#define TRTCONV_MODEL_INTERNAL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include "trtconv/model/hf_model.h"

#define TC_HF_CONFIG_MAX ((size_t)16 << 20)  /* config.json cap: 16 MiB */
#define TC_HF_INDEX_MAX ((size_t)64 << 20)   /* index cap: 64 MiB */
#define TC_HF_PATH_MAX 4096
#define TC_HF_DIM_MAX INT64_C(2147483647)    /* cap on sizes/counts in config */
#define TC_HF_NAME_MAX 256                   /* shard file name length limit */

static const char *const supported_archs[] = {
    "LlamaForCausalLM", "MistralForCausalLM", "MixtralForCausalLM",
};
#define SUPPORTED_ARCHS_TEXT "LlamaForCausalLM, MistralForCausalLM, MixtralForCausalLM"

char *hfm_dup_str(const char *s);
const char *hfm_json_type_name(const cJSON *v);
const cJSON *hfm_get_opt(const cJSON *root, const char *key);
tc_status hfm_get_pos_int(const char *label, const cJSON *root,
                             const char *key, int64_t *out);
tc_status hfm_get_opt_pos_int(const char *label, const cJSON *root,
                                 const char *key, int64_t *out);
tc_status hfm_get_opt_double(const char *label, const cJSON *obj,
                                const char *where, const char *key,
                                bool positive, double *out);
tc_status hfm_get_opt_bool(const char *label, const cJSON *root,
                              const char *key, bool *out);
tc_status hfm_check_no_dup(const char *label, const cJSON *obj,
                              const char *where);
tc_status hfm_get_shard(tc_hf_model *m, size_t s, const tc_st_file **out);
tc_status hfm_meta_get(tc_hf_model *m, const char *name, bool required, tc_hf_tensor *out);
void hfm_fill_one(tc_hf_tensor *out, const tc_st_file *f, const tc_st_tensor *t);

#endif
