/* hf_config.c: a Hugging Face LLaMA-family config.json (see hf_model.h). */
#define _POSIX_C_SOURCE 200809L
#include "trtconv/model/hf_model.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model_internal.h"
#include "trtconv/core/fsutil.h"
#include "trtconv/core/jsonutil.h"
#include "trtconv/core/log.h"
#include "trtconv/formats/torchfile.h"

/* ---------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------- */

char *hfm_dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* ---------------------------------------------------------------------------
 * config.json
 * ------------------------------------------------------------------------- */

const char *hfm_json_type_name(const cJSON *v)
{
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "invalid";
}

/* Present and not null. */
const cJSON *hfm_get_opt(const cJSON *root, const char *key)
{
    const cJSON *v = tc_json_get(root, key);
    return cJSON_IsNull(v) ? NULL : v;
}

/* Required positive integer in [1, TC_HF_DIM_MAX]. */
tc_status hfm_get_pos_int(const char *label, const cJSON *root,
                             const char *key, int64_t *out)
{
    const cJSON *v = tc_json_get(root, key);
    if (!v)
        return tc_fail(TC_E_INPUT, "%s: required key \"%s\" is missing", label, key);
    if (!tc_json_int(v, 1, TC_HF_DIM_MAX, out)) {
        if (cJSON_IsNumber(v))
            return tc_fail(TC_E_INPUT, "%s: \"%s\" = %.17g must be an integer in "
                           "[1, %lld]", label, key, v->valuedouble,
                           (long long)TC_HF_DIM_MAX);
        return tc_fail(TC_E_INPUT, "%s: \"%s\" must be a positive integer, not %s",
                       label, key, hfm_json_type_name(v));
    }
    return TC_OK;
}

/* Optional positive integer; absent or null leaves *out unchanged. */
tc_status hfm_get_opt_pos_int(const char *label, const cJSON *root,
                                 const char *key, int64_t *out)
{
    if (!hfm_get_opt(root, key))
        return TC_OK;
    return hfm_get_pos_int(label, root, key, out);
}

/* Optional finite number, >= 0 (> 0 if positive); absent or null
 * leaves *out unchanged. */
tc_status hfm_get_opt_double(const char *label, const cJSON *obj,
                                const char *where, const char *key,
                                bool positive, double *out)
{
    const cJSON *v = hfm_get_opt(obj, key);
    if (!v)
        return TC_OK;
    if (!cJSON_IsNumber(v))
        return tc_fail(TC_E_INPUT, "%s: \"%s%s\" must be a number, not %s", label,
                       where, key, hfm_json_type_name(v));
    double d = v->valuedouble;
    if (!isfinite(d) || d < 0.0 || (positive && d == 0.0))
        return tc_fail(TC_E_INPUT, "%s: \"%s%s\" = %.17g must be a finite %s number",
                       label, where, key, d, positive ? "positive" : "non-negative");
    *out = d;
    return TC_OK;
}

tc_status hfm_get_opt_bool(const char *label, const cJSON *root,
                              const char *key, bool *out)
{
    const cJSON *v = hfm_get_opt(root, key);
    if (!v)
        return TC_OK;
    if (!cJSON_IsBool(v))
        return tc_fail(TC_E_INPUT, "%s: \"%s\" must be true or false, not %s",
                       label, key, hfm_json_type_name(v));
    *out = cJSON_IsTrue(v) != 0;
    return TC_OK;
}

/* Optional string copied into buf (size bytes); absent/null leaves buf. */
static tc_status hfm_get_opt_str(const char *label, const cJSON *root,
                             const char *key, char *buf, size_t size)
{
    const cJSON *v = hfm_get_opt(root, key);
    if (!v)
        return TC_OK;
    if (!cJSON_IsString(v) || !v->valuestring)
        return tc_fail(TC_E_INPUT, "%s: \"%s\" must be a string, not %s", label,
                       key, hfm_json_type_name(v));
    if (strlen(v->valuestring) >= size)
        return tc_fail(TC_E_INPUT, "%s: \"%s\" = \"%.40s...\" is longer than %zu "
                       "characters", label, key, v->valuestring, size - 1);
    memcpy(buf, v->valuestring, strlen(v->valuestring) + 1);
    return TC_OK;
}

/* torch_dtype / dtype: "float16", "bfloat16" or "float32". */
static tc_status hfm_get_dtype(const char *label, const cJSON *root, const char *key,
                           bool *has, tc_float_type *out)
{
    const cJSON *v = hfm_get_opt(root, key);
    *has = false;
    if (!v)
        return TC_OK;
    if (!cJSON_IsString(v) || !v->valuestring)
        return tc_fail(TC_E_INPUT, "%s: \"%s\" must be a string, not %s", label,
                       key, hfm_json_type_name(v));
    const char *s = v->valuestring;
    if (strcmp(s, "float16") != 0 && strcmp(s, "bfloat16") != 0 &&
        strcmp(s, "float32") != 0)
        return tc_fail(TC_E_INPUT, "%s: \"%s\" = \"%.64s\" is not supported "
                       "(supported: float16, bfloat16, float32)", label, key, s);
    if (tc_float_type_parse(s, out) != 0)
        return tc_fail(TC_E_INTERNAL, "%s: tc_float_type_parse refused \"%s\"",
                       label, s);
    *has = true;
    return TC_OK;
}

tc_status hfm_check_no_dup(const char *label, const cJSON *obj,
                              const char *where)
{
    const char *dup = tc_json_find_duplicate_key(obj);
    if (dup)
        return tc_fail(TC_E_INPUT, "%s: key \"%s\" appears more than once in %s "
                       "(duplicate keys are ambiguous)", label, dup, where);
    return TC_OK;
}

/* A rope object present in config.json: an object without duplicate keys. */
static tc_status rope_object(const char *label, const cJSON *v, const char *key)
{
    if (!cJSON_IsObject(v))
        return tc_fail(TC_E_INPUT, "%s: \"%s\" must be an object or null, not %s", label, key,
                       hfm_json_type_name(v));
    return hfm_check_no_dup(label, v, key);
}

/* rope_scaling (older) or rope_parameters (transformers 5). */
static tc_status parse_rope(const char *label, const cJSON *root,
                            tc_hf_config *cfg)
{
    tc_status st = TC_OK;
    const cJSON *scaling = hfm_get_opt(root, "rope_scaling");
    const cJSON *params = hfm_get_opt(root, "rope_parameters");

    if ((st = hfm_get_opt_double(label, root, "", "rope_theta", true,
                             &cfg->rope_theta)) != TC_OK)
        return st;
    if (scaling && (st = rope_object(label, scaling, "rope_scaling")) != TC_OK)
        return st;
    if (params) {
        if ((st = rope_object(label, params, "rope_parameters")) != TC_OK)
            return st;
        if ((st = hfm_get_opt_double(label, params, "rope_parameters.", "rope_theta",
                                 true, &cfg->rope_theta)) != TC_OK)
            return st;
    }

    if (scaling) {
        /* TRT-LLM copies rope_scaling as it is. */
        cfg->rope_scaling = cJSON_Duplicate(scaling, 1);
        if (!cfg->rope_scaling)
            return tc_fail(TC_E_INTERNAL, "%s: out of memory copying rope_scaling",
                           label);
        return TC_OK;
    }
    if (params) {
        const cJSON *type = hfm_get_opt(params, "rope_type");
        if (type && !cJSON_IsString(type))
            return tc_fail(TC_E_INPUT, "%s: \"rope_parameters.rope_type\" must be a "
                           "string, not %s", label, hfm_json_type_name(type));
        if (!type || strcmp(type->valuestring, "default") == 0)
            return TC_OK;
        /* Scaling of the older style: the parameters without rope_theta. */
        cJSON *copy = cJSON_Duplicate(params, 1);
        if (!copy)
            return tc_fail(TC_E_INTERNAL, "%s: out of memory copying "
                           "rope_parameters", label);
        cJSON_DeleteItemFromObjectCaseSensitive(copy, "rope_theta");
        cfg->rope_scaling = copy;
    }
    return TC_OK;
}

tc_status tc_hf_config_parse(const char *label, const char *text, size_t len,
                             tc_hf_config *cfg)
{
    tc_status st = TC_OK;
    cJSON *root = NULL;

    memset(cfg, 0, sizeof *cfg);
    cfg->max_position_embeddings = 2048;
    cfg->rms_norm_eps = 1e-6;
    cfg->rope_theta = 10000.0;
    memcpy(cfg->hidden_act, "silu", 5);

    root = tc_json_parse(label, text, len);
    if (!root) {
        st = tc_fail(TC_E_INPUT, "%s: not valid JSON", label);
        goto done;
    }
    if (!cJSON_IsObject(root)) {
        st = tc_fail(TC_E_INPUT, "%s: the top level must be a JSON object, not %s",
                     label, hfm_json_type_name(root));
        goto done;
    }
    if ((st = hfm_check_no_dup(label, root, "the top-level object")) != TC_OK)
        goto done;

    /* architectures[0] */
    const cJSON *archs = tc_json_get(root, "architectures");
    if (!archs) {
        st = tc_fail(TC_E_INPUT, "%s: required key \"architectures\" is missing",
                     label);
        goto done;
    }
    if (!cJSON_IsArray(archs) || !archs->child) {
        st = tc_fail(TC_E_INPUT, "%s: \"architectures\" must be a non-empty array "
                     "of strings", label);
        goto done;
    }
    const cJSON *arch = archs->child;
    if (!cJSON_IsString(arch) || !arch->valuestring) {
        st = tc_fail(TC_E_INPUT, "%s: \"architectures\"[0] must be a string, not %s",
                     label, hfm_json_type_name(arch));
        goto done;
    }
    bool known = false;
    for (size_t i = 0; i < sizeof supported_archs / sizeof supported_archs[0]; i++)
        if (strcmp(arch->valuestring, supported_archs[i]) == 0)
            known = true;
    if (!known) {
        st = tc_fail(TC_E_INPUT, "%s: architecture %.64s is not supported "
                     "(supported: " SUPPORTED_ARCHS_TEXT ")", label,
                     arch->valuestring);
        goto done;
    }
    memcpy(cfg->architecture, arch->valuestring, strlen(arch->valuestring) + 1);

    /* A pre-quantized checkpoint: fbgemm_fp8 converts (its FP8 MLP weights
     * taken as stored); any other method's weights are not float tensors
     * under the names the plan reads: say so, naming it. */
    const cJSON *qc = tc_json_get(root, "quantization_config");
    if (qc && !cJSON_IsNull(qc)) {
        const cJSON *qm = cJSON_IsObject(qc) ? tc_json_get(qc, "quant_method") : NULL;
        if (cJSON_IsString(qm) && strcmp(qm->valuestring, "fbgemm_fp8") == 0) {
            cfg->fbgemm_fp8 = true;
            cfg->activation_scale_ub = 1200.0;
            if ((st = hfm_get_opt_double(label, qc, "quantization_config.", "activation_scale_ub",
                                         true, &cfg->activation_scale_ub)) != TC_OK)
                goto done;
        } else {
            st = tc_fail(TC_E_INPUT, "%s: quantization_config.quant_method = %s%.64s%s: "
                         "pre-quantized checkpoints other than fbgemm_fp8 are not supported "
                         "(trtconv converts float16, bfloat16 and float32 weights, and FP8 "
                         "fbgemm_fp8 ones)", label, cJSON_IsString(qm) ? "\"" : "",
                         cJSON_IsString(qm) ? qm->valuestring : "(none)",
                         cJSON_IsString(qm) ? "\"" : "");
            goto done;
        }
    }

    if ((st = hfm_get_opt_str(label, root, "model_type", cfg->model_type,
                          sizeof cfg->model_type)) != TC_OK)
        goto done;

    static const struct { const char *key; size_t off; } req[] = {
        { "vocab_size", offsetof(tc_hf_config, vocab_size) },
        { "hidden_size", offsetof(tc_hf_config, hidden_size) },
        { "intermediate_size", offsetof(tc_hf_config, intermediate_size) },
        { "num_hidden_layers", offsetof(tc_hf_config, num_hidden_layers) },
        { "num_attention_heads", offsetof(tc_hf_config, num_attention_heads) },
    };
    for (size_t i = 0; i < sizeof req / sizeof req[0]; i++) {
        int64_t *dst = (int64_t *)(void *)((char *)cfg + req[i].off);
        if ((st = hfm_get_pos_int(label, root, req[i].key, dst)) != TC_OK)
            goto done;
    }

    cfg->num_key_value_heads = cfg->num_attention_heads;
    if ((st = hfm_get_opt_pos_int(label, root, "num_key_value_heads",
                              &cfg->num_key_value_heads)) != TC_OK)
        goto done;
    if (cfg->num_attention_heads % cfg->num_key_value_heads != 0) {
        st = tc_fail(TC_E_INPUT, "%s: num_key_value_heads = %lld does not divide "
                     "num_attention_heads = %lld", label,
                     (long long)cfg->num_key_value_heads,
                     (long long)cfg->num_attention_heads);
        goto done;
    }

    if (hfm_get_opt(root, "head_dim")) {
        if ((st = hfm_get_pos_int(label, root, "head_dim", &cfg->head_dim)) != TC_OK)
            goto done;
    } else {
        if (cfg->hidden_size % cfg->num_attention_heads != 0) {
            st = tc_fail(TC_E_INPUT, "%s: num_attention_heads = %lld does not divide "
                         "hidden_size = %lld (and there is no head_dim)", label,
                         (long long)cfg->num_attention_heads,
                         (long long)cfg->hidden_size);
            goto done;
        }
        cfg->head_dim = cfg->hidden_size / cfg->num_attention_heads;
    }

    if ((st = hfm_get_opt_pos_int(label, root, "max_position_embeddings",
                              &cfg->max_position_embeddings)) != TC_OK)
        goto done;
    if ((st = hfm_get_opt_double(label, root, "", "rms_norm_eps", false,
                             &cfg->rms_norm_eps)) != TC_OK)
        goto done;
    if ((st = parse_rope(label, root, cfg)) != TC_OK)
        goto done;
    if ((st = hfm_get_opt_bool(label, root, "tie_word_embeddings",
                           &cfg->tie_word_embeddings)) != TC_OK)
        goto done;

    /* TRT-LLM: attn_bias = bias or attention_bias. */
    bool bias = false, attention_bias = false;
    if ((st = hfm_get_opt_bool(label, root, "bias", &bias)) != TC_OK)
        goto done;
    if ((st = hfm_get_opt_bool(label, root, "attention_bias", &attention_bias)) != TC_OK)
        goto done;
    cfg->attention_bias = bias || attention_bias;
    if ((st = hfm_get_opt_bool(label, root, "mlp_bias", &cfg->mlp_bias)) != TC_OK)
        goto done;
    if ((st = hfm_get_opt_str(label, root, "hidden_act", cfg->hidden_act,
                          sizeof cfg->hidden_act)) != TC_OK)
        goto done;

    /* Mixture of experts; router_aux_loss_coef, router_jitter_noise and
     * output_router_logits only matter for training, and v0.12 ignores
     * sliding_window for this family (docs/moe.md). */
    cfg->moe_normalization_mode = -1;
    if (hfm_get_opt(root, "num_local_experts") &&
        (st = hfm_get_pos_int(label, root, "num_local_experts", &cfg->moe_num_experts)) != TC_OK)
        goto done;
    if (hfm_get_opt(root, "num_experts_per_tok") &&
        (st = hfm_get_pos_int(label, root, "num_experts_per_tok", &cfg->moe_top_k)) != TC_OK)
        goto done;
    if ((cfg->moe_num_experts == 0) != (cfg->moe_top_k == 0) ||
        cfg->moe_top_k > cfg->moe_num_experts) {
        st = tc_fail(TC_E_INPUT, "%s: num_local_experts = %lld and num_experts_per_tok = %lld: "
                     "both or neither must be set, and top-k cannot exceed the experts",
                     label, (long long)cfg->moe_num_experts, (long long)cfg->moe_top_k);
        goto done;
    }
    if (!strcmp(cfg->model_type, "mixtral") || !strcmp(cfg->model_type, "arctic"))
        cfg->moe_normalization_mode = 1; /* MoeConfig RENORMALIZE */

    /* dtype (transformers 5) or torch_dtype (older); both must agree. */
    bool has_new = false, has_old = false;
    tc_float_type ft_new = TC_FT_FLOAT16, ft_old = TC_FT_FLOAT16;
    if ((st = hfm_get_dtype(label, root, "dtype", &has_new, &ft_new)) != TC_OK)
        goto done;
    if ((st = hfm_get_dtype(label, root, "torch_dtype", &has_old, &ft_old)) != TC_OK)
        goto done;
    if (has_new && has_old && ft_new != ft_old) {
        st = tc_fail(TC_E_INPUT, "%s: \"dtype\" and \"torch_dtype\" disagree", label);
        goto done;
    }
    cfg->has_torch_dtype = has_new || has_old;
    cfg->torch_dtype = has_new ? ft_new : ft_old;

done:
    cJSON_Delete(root);
    if (st != TC_OK)
        tc_hf_config_free(cfg);
    return st;
}

tc_status tc_hf_config_load(const char *model_dir, tc_hf_config *cfg)
{
    tc_status st = TC_OK;
    char path[TC_HF_PATH_MAX];
    char *text = NULL;
    size_t len = 0;
    struct stat sb;

    memset(cfg, 0, sizeof *cfg);
    if ((st = tc_path_join(path, sizeof path, model_dir, "config.json")) != TC_OK)
        goto done;
    if (stat(path, &sb) != 0 && errno == ENOENT) {
        st = tc_fail(TC_E_INPUT, "%s: no config.json (is this a Hugging Face model "
                     "directory?)", model_dir);
        goto done;
    }
    if ((st = tc_read_small_file(path, TC_HF_CONFIG_MAX, &text, &len)) != TC_OK)
        goto done;
    st = tc_hf_config_parse(path, text, len, cfg);

done:
    free(text);
    return st;
}

void tc_hf_config_free(tc_hf_config *cfg)
{
    if (!cfg)
        return;
    cJSON_Delete(cfg->rope_scaling);
    cfg->rope_scaling = NULL;
}

tc_status tc_hf_config_remove_duplicated_kv_heads(tc_hf_config *cfg, const char *label)
{
    if (cfg->num_key_value_heads % 2 != 0)
        return tc_fail(TC_E_INPUT, "%s: --remove_duplicated_kv_heads needs an even "
                       "num_key_value_heads (each KV head stored twice), not %lld", label,
                       (long long)cfg->num_key_value_heads);
    if (cfg->attention_bias)
        return tc_fail(TC_E_INPUT, "%s: --remove_duplicated_kv_heads with attention biases: "
                       "TensorRT-LLM v0.12 removes duplicated heads from the q/k/v weights only",
                       label);
    if (cfg->num_attention_heads % (cfg->num_key_value_heads / 2) != 0)
        return tc_fail(TC_E_INPUT, "%s: num_attention_heads = %lld is not a multiple of "
                       "num_key_value_heads / 2 = %lld", label,
                       (long long)cfg->num_attention_heads,
                       (long long)cfg->num_key_value_heads / 2);
    cfg->num_key_value_heads /= 2;
    cfg->kv_heads_stored_twice = true;
    return TC_OK;
}
