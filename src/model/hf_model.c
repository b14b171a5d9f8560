/* hf_model.c: Hugging Face LLaMA-family model directory (config.json, the
 * safetensors index, lazily opened shards). See hf_model.h. */
#define _POSIX_C_SOURCE 200809L
#include "trtconv/model/hf_model.h"
#include "trtconv/core/fsutil.h"

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

#include "trtconv/core/jsonutil.h"
#include "trtconv/core/log.h"
#include "trtconv/formats/torchfile.h"

#define TC_HF_CONFIG_MAX ((size_t)16 << 20)  /* config.json cap: 16 MiB */
#define TC_HF_INDEX_MAX ((size_t)64 << 20)   /* index cap: 64 MiB */
#define TC_HF_PATH_MAX 4096
#define TC_HF_DIM_MAX INT64_C(2147483647)    /* cap on sizes/counts in config */
#define TC_HF_NAME_MAX 256                   /* shard file name length limit */

static const char *const supported_archs[] = {
    "LlamaForCausalLM", "MistralForCausalLM",
};
#define SUPPORTED_ARCHS_TEXT "LlamaForCausalLM, MistralForCausalLM"

/* ---------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------- */

/* dir + "/" + name into buf; TC_E_INPUT if it does not fit. */
static tc_status join_path(char *buf, size_t size, const char *dir,
                           const char *name)
{
    int n = snprintf(buf, size, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= size)
        return tc_fail(TC_E_INPUT, "path %s/%s is longer than %zu bytes", dir,
                       name, size - 1);
    return TC_OK;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

tc_status tc_read_small_file(const char *path, size_t max_len, char **out,
                             size_t *len)
{
    tc_status st = TC_OK;
    int fd = -1;
    char *buf = NULL;
    size_t size = 0;
    struct stat sb;

    *out = NULL;
    *len = 0;
    st = tc_open_input(path, NULL, &fd);
    if (st != TC_OK)
        goto done;
    if (fstat(fd, &sb) != 0) {
        st = tc_fail(TC_E_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto done;
    }
    if (sb.st_size < 0 || (uint64_t)sb.st_size > (uint64_t)max_len) {
        st = tc_fail(TC_E_INPUT, "%s: file is %lld bytes, more than the limit of %zu",
                     path, (long long)sb.st_size, max_len);
        goto done;
    }
    size = (size_t)sb.st_size;
    buf = malloc(size + 1);
    if (!buf) {
        st = tc_fail(TC_E_INTERNAL, "%s: out of memory (%zu bytes)", path, size + 1);
        goto done;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            st = tc_fail(TC_E_IO, "%s: read failed at byte %zu: %s", path, got,
                         strerror(errno));
            goto done;
        }
        if (r == 0) {
            st = tc_fail(TC_E_IO, "%s: file ended at byte %zu of %zu (changed while "
                         "reading?)", path, got, size);
            goto done;
        }
        got += (size_t)r;
    }
    buf[size] = '\0';
    *out = buf;
    *len = size;
    buf = NULL;

done:
    free(buf);
    if (fd >= 0)
        close(fd);
    return st;
}

/* ---------------------------------------------------------------------------
 * config.json
 * ------------------------------------------------------------------------- */

static const char *json_type_name(const cJSON *v)
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
static const cJSON *get_opt(const cJSON *root, const char *key)
{
    const cJSON *v = tc_json_get(root, key);
    return cJSON_IsNull(v) ? NULL : v;
}

/* Required positive integer in [1, TC_HF_DIM_MAX]. */
static tc_status get_pos_int(const char *label, const cJSON *root,
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
                       label, key, json_type_name(v));
    }
    return TC_OK;
}

/* Optional positive integer; absent or null leaves *out unchanged. */
static tc_status get_opt_pos_int(const char *label, const cJSON *root,
                                 const char *key, int64_t *out)
{
    if (!get_opt(root, key))
        return TC_OK;
    return get_pos_int(label, root, key, out);
}

/* Optional finite number, >= 0 (> 0 if positive); absent or null
 * leaves *out unchanged. */
static tc_status get_opt_double(const char *label, const cJSON *obj,
                                const char *where, const char *key,
                                bool positive, double *out)
{
    const cJSON *v = get_opt(obj, key);
    if (!v)
        return TC_OK;
    if (!cJSON_IsNumber(v))
        return tc_fail(TC_E_INPUT, "%s: \"%s%s\" must be a number, not %s", label,
                       where, key, json_type_name(v));
    double d = v->valuedouble;
    if (!isfinite(d) || d < 0.0 || (positive && d == 0.0))
        return tc_fail(TC_E_INPUT, "%s: \"%s%s\" = %.17g must be a finite %s number",
                       label, where, key, d, positive ? "positive" : "non-negative");
    *out = d;
    return TC_OK;
}

static tc_status get_opt_bool(const char *label, const cJSON *root,
                              const char *key, bool *out)
{
    const cJSON *v = get_opt(root, key);
    if (!v)
        return TC_OK;
    if (!cJSON_IsBool(v))
        return tc_fail(TC_E_INPUT, "%s: \"%s\" must be true or false, not %s",
                       label, key, json_type_name(v));
    *out = cJSON_IsTrue(v) != 0;
    return TC_OK;
}

/* Optional string copied into buf (size bytes); absent/null leaves buf. */
static tc_status get_opt_str(const char *label, const cJSON *root,
                             const char *key, char *buf, size_t size)
{
    const cJSON *v = get_opt(root, key);
    if (!v)
        return TC_OK;
    if (!cJSON_IsString(v) || !v->valuestring)
        return tc_fail(TC_E_INPUT, "%s: \"%s\" must be a string, not %s", label,
                       key, json_type_name(v));
    if (strlen(v->valuestring) >= size)
        return tc_fail(TC_E_INPUT, "%s: \"%s\" = \"%.40s...\" is longer than %zu "
                       "characters", label, key, v->valuestring, size - 1);
    memcpy(buf, v->valuestring, strlen(v->valuestring) + 1);
    return TC_OK;
}

/* torch_dtype / dtype: "float16", "bfloat16" or "float32". */
static tc_status get_dtype(const char *label, const cJSON *root, const char *key,
                           bool *has, tc_float_type *out)
{
    const cJSON *v = get_opt(root, key);
    *has = false;
    if (!v)
        return TC_OK;
    if (!cJSON_IsString(v) || !v->valuestring)
        return tc_fail(TC_E_INPUT, "%s: \"%s\" must be a string, not %s", label,
                       key, json_type_name(v));
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

static tc_status check_no_dup(const char *label, const cJSON *obj,
                              const char *where)
{
    const char *dup = tc_json_find_duplicate_key(obj);
    if (dup)
        return tc_fail(TC_E_INPUT, "%s: key \"%s\" appears more than once in %s "
                       "(duplicate keys are ambiguous)", label, dup, where);
    return TC_OK;
}

/* rope_scaling (older) or rope_parameters (transformers 5). */
static tc_status parse_rope(const char *label, const cJSON *root,
                            tc_hf_config *cfg)
{
    tc_status st = TC_OK;
    const cJSON *scaling = get_opt(root, "rope_scaling");
    const cJSON *params = get_opt(root, "rope_parameters");

    if ((st = get_opt_double(label, root, "", "rope_theta", true,
                             &cfg->rope_theta)) != TC_OK)
        return st;
    if (scaling) {
        if (!cJSON_IsObject(scaling))
            return tc_fail(TC_E_INPUT, "%s: \"rope_scaling\" must be an object or "
                           "null, not %s", label, json_type_name(scaling));
        if ((st = check_no_dup(label, scaling, "rope_scaling")) != TC_OK)
            return st;
    }
    if (params) {
        if (!cJSON_IsObject(params))
            return tc_fail(TC_E_INPUT, "%s: \"rope_parameters\" must be an object "
                           "or null, not %s", label, json_type_name(params));
        if ((st = check_no_dup(label, params, "rope_parameters")) != TC_OK)
            return st;
        if ((st = get_opt_double(label, params, "rope_parameters.", "rope_theta",
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
        const cJSON *type = get_opt(params, "rope_type");
        if (type && !cJSON_IsString(type))
            return tc_fail(TC_E_INPUT, "%s: \"rope_parameters.rope_type\" must be a "
                           "string, not %s", label, json_type_name(type));
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
                     label, json_type_name(root));
        goto done;
    }
    if ((st = check_no_dup(label, root, "the top-level object")) != TC_OK)
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
                     label, json_type_name(arch));
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

    if ((st = get_opt_str(label, root, "model_type", cfg->model_type,
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
        if ((st = get_pos_int(label, root, req[i].key, dst)) != TC_OK)
            goto done;
    }

    cfg->num_key_value_heads = cfg->num_attention_heads;
    if ((st = get_opt_pos_int(label, root, "num_key_value_heads",
                              &cfg->num_key_value_heads)) != TC_OK)
        goto done;
    if (cfg->num_attention_heads % cfg->num_key_value_heads != 0) {
        st = tc_fail(TC_E_INPUT, "%s: num_key_value_heads = %lld does not divide "
                     "num_attention_heads = %lld", label,
                     (long long)cfg->num_key_value_heads,
                     (long long)cfg->num_attention_heads);
        goto done;
    }

    if (get_opt(root, "head_dim")) {
        if ((st = get_pos_int(label, root, "head_dim", &cfg->head_dim)) != TC_OK)
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

    if ((st = get_opt_pos_int(label, root, "max_position_embeddings",
                              &cfg->max_position_embeddings)) != TC_OK)
        goto done;
    if ((st = get_opt_double(label, root, "", "rms_norm_eps", false,
                             &cfg->rms_norm_eps)) != TC_OK)
        goto done;
    if ((st = parse_rope(label, root, cfg)) != TC_OK)
        goto done;
    if ((st = get_opt_bool(label, root, "tie_word_embeddings",
                           &cfg->tie_word_embeddings)) != TC_OK)
        goto done;

    /* TRT-LLM: attn_bias = bias or attention_bias. */
    bool bias = false, attention_bias = false;
    if ((st = get_opt_bool(label, root, "bias", &bias)) != TC_OK)
        goto done;
    if ((st = get_opt_bool(label, root, "attention_bias", &attention_bias)) != TC_OK)
        goto done;
    cfg->attention_bias = bias || attention_bias;
    if ((st = get_opt_bool(label, root, "mlp_bias", &cfg->mlp_bias)) != TC_OK)
        goto done;
    if ((st = get_opt_str(label, root, "hidden_act", cfg->hidden_act,
                          sizeof cfg->hidden_act)) != TC_OK)
        goto done;

    /* dtype (transformers 5) or torch_dtype (older); both must agree. */
    bool has_new = false, has_old = false;
    tc_float_type ft_new = TC_FT_FLOAT16, ft_old = TC_FT_FLOAT16;
    if ((st = get_dtype(label, root, "dtype", &has_new, &ft_new)) != TC_OK)
        goto done;
    if ((st = get_dtype(label, root, "torch_dtype", &has_old, &ft_old)) != TC_OK)
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
    if ((st = join_path(path, sizeof path, model_dir, "config.json")) != TC_OK)
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

/* ---------------------------------------------------------------------------
 * Index and shards
 * ------------------------------------------------------------------------- */

static bool name_ok(const char *name, const char *suffix)
{
    if (!name)
        return false;
    size_t n = strlen(name);
    size_t ns = strlen(suffix);
    if (n == 0 || n >= TC_HF_NAME_MAX || name[0] == '.')
        return false; /* also refuses "." and ".." */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '/' || c == '\\' || c < 0x20 || c == 0x7F)
            return false;
    }
    return n > ns && strcmp(name + n - ns, suffix) == 0;
}

bool tc_hf_shard_name_ok(const char *name)
{
    return name_ok(name, ".safetensors");
}

bool tc_hf_bin_name_ok(const char *name)
{
    return name_ok(name, ".bin");
}

typedef struct entry_ref {
    const char *name;  /* borrowed from the index JSON */
    const char *shard;
} entry_ref;

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const entry_ref *)a)->name, ((const entry_ref *)b)->name);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Parse model.safetensors.index.json (at path) into m's entry/shard arrays. */
tc_status tc_hf_index_parse(tc_hf_model *m, const char *path, const char *text, size_t len)
{
    tc_status st = TC_OK;
    cJSON *root = NULL;
    entry_ref *refs = NULL;
    const char **shards = NULL;

    root = tc_json_parse(path, text, len);
    if (!root) {
        st = tc_fail(TC_E_INPUT, "%s: not valid JSON", path);
        goto done;
    }
    if (!cJSON_IsObject(root)) {
        st = tc_fail(TC_E_INPUT, "%s: the top level must be a JSON object, not %s",
                     path, json_type_name(root));
        goto done;
    }
    if ((st = check_no_dup(path, root, "the top-level object")) != TC_OK)
        goto done;
    const cJSON *wm = tc_json_get(root, "weight_map");
    if (!wm) {
        st = tc_fail(TC_E_INPUT, "%s: required key \"weight_map\" is missing", path);
        goto done;
    }
    if (!cJSON_IsObject(wm)) {
        st = tc_fail(TC_E_INPUT, "%s: \"weight_map\" must be an object, not %s",
                     path, json_type_name(wm));
        goto done;
    }
    if ((st = check_no_dup(path, wm, "weight_map")) != TC_OK)
        goto done;
    /* metadata (total_size) is advisory and not checked here. */

    size_t n = 0;
    for (const cJSON *c = wm->child; c; c = c->next)
        n++;
    if (n == 0) {
        st = tc_fail(TC_E_INPUT, "%s: \"weight_map\" is empty", path);
        goto done;
    }
    refs = calloc(n, sizeof *refs);
    shards = calloc(n, sizeof *shards);
    if (!refs || !shards) {
        st = tc_fail(TC_E_INTERNAL, "%s: out of memory (%zu entries)", path, n);
        goto done;
    }
    size_t i = 0;
    for (const cJSON *c = wm->child; c; c = c->next, i++) {
        const char *key = c->string ? c->string : "";
        if (!cJSON_IsString(c) || !c->valuestring) {
            st = tc_fail(TC_E_INPUT, "%s: weight_map[\"%.200s\"] must be a shard file "
                         "name string, not %s", path, key, json_type_name(c));
            goto done;
        }
        bool bin = m->format == TC_HF_TORCH;
        if (!(bin ? tc_hf_bin_name_ok(c->valuestring) : tc_hf_shard_name_ok(c->valuestring))) {
            st = tc_fail(TC_E_INPUT, "%s: weight_map[\"%.200s\"] = \"%.200s\" is refused "
                         "(path traversal rule: a shard must be a plain file name in "
                         "the model directory ending in %s: no '/' or '\\', "
                         "no leading '.', no control characters, not empty)",
                         path, key, c->valuestring, bin ? ".bin" : ".safetensors");
            goto done;
        }
        refs[i].name = key;
        refs[i].shard = c->valuestring;
        shards[i] = c->valuestring;
    }

    /* Unique, sorted shard names. */
    qsort(shards, n, sizeof *shards, cmp_str);
    size_t ns = 0;
    for (i = 0; i < n; i++)
        if (ns == 0 || strcmp(shards[ns - 1], shards[i]) != 0)
            shards[ns++] = shards[i];
    qsort(refs, n, sizeof *refs, cmp_entry);

    m->shard_names = calloc(ns, sizeof *m->shard_names);
    m->shards = calloc(ns, sizeof *m->shards);
    m->entry_names = calloc(n, sizeof *m->entry_names);
    m->entry_shard = calloc(n, sizeof *m->entry_shard);
    if (!m->shard_names || !m->shards || !m->entry_names || !m->entry_shard) {
        st = tc_fail(TC_E_INTERNAL, "%s: out of memory (%zu entries)", path, n);
        goto done;
    }
    m->n_shards = ns;
    for (i = 0; i < ns; i++) {
        if (!(m->shard_names[i] = dup_str(shards[i]))) {
            st = tc_fail(TC_E_INTERNAL, "%s: out of memory", path);
            goto done;
        }
    }
    m->n_entries = n;
    for (i = 0; i < n; i++) {
        if (!(m->entry_names[i] = dup_str(refs[i].name))) {
            st = tc_fail(TC_E_INTERNAL, "%s: out of memory", path);
            goto done;
        }
        const char **hit = bsearch(&refs[i].shard, shards, ns, sizeof *shards,
                                   cmp_str);
        m->entry_shard[i] = (int)(hit - shards);
    }

done:
    free(shards);
    free(refs);
    cJSON_Delete(root);
    return st;
}

static tc_status load_index(tc_hf_model *m, const char *path)
{
    char *text = NULL;
    size_t len = 0;
    tc_status st = tc_read_small_file(path, TC_HF_INDEX_MAX, &text, &len);
    if (st == TC_OK)
        st = tc_hf_index_parse(m, path, text, len);
    free(text);
    return st;
}

tc_status tc_hf_open(const char *model_dir, tc_hf_model **out)
{
    tc_status st = TC_OK;
    tc_hf_model *m = NULL;
    char path[TC_HF_PATH_MAX];
    struct stat sb;

    *out = NULL;
    if (stat(model_dir, &sb) != 0) {
        st = tc_fail(TC_E_INPUT, "model directory %s: %s", model_dir, strerror(errno));
        goto done;
    }
    if (!S_ISDIR(sb.st_mode)) {
        st = tc_fail(TC_E_INPUT, "model directory %s is not a directory", model_dir);
        goto done;
    }
    m = calloc(1, sizeof *m);
    if (!m || !(m->dir = dup_str(model_dir))) {
        free(m);
        m = NULL;
        st = tc_fail(TC_E_INTERNAL, "%s: out of memory", __func__);
        goto done;
    }
    if (pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m->dir);
        free(m);
        m = NULL;
        st = tc_fail(TC_E_INTERNAL, "%s: pthread_mutex_init failed", __func__);
        goto done;
    }
    if ((st = tc_hf_config_load(model_dir, &m->cfg)) != TC_OK)
        goto done;

    m->config_name = "config.json";
    /* Like transformers: safetensors first, then PyTorch .bin weights. */
    static const struct { const char *index, *single; tc_hf_format fmt; } layouts[] = {
        { "model.safetensors.index.json", "model.safetensors", TC_HF_SAFETENSORS },
        { "pytorch_model.bin.index.json", "pytorch_model.bin", TC_HF_TORCH },
    };
    for (size_t k = 0; k < sizeof layouts / sizeof layouts[0]; k++) {
        m->format = layouts[k].fmt;
        if ((st = join_path(path, sizeof path, model_dir, layouts[k].index)) != TC_OK)
            goto done;
        if (stat(path, &sb) == 0) {
            m->index_name = layouts[k].index;
            st = load_index(m, path);
            goto done;
        }
        if (errno != ENOENT) {
            st = tc_fail(TC_E_IO, "%s: cannot stat: %s", path, strerror(errno));
            goto done;
        }
        if ((st = join_path(path, sizeof path, model_dir, layouts[k].single)) != TC_OK)
            goto done;
        if (stat(path, &sb) == 0)
            break;
        if (k + 1 == sizeof layouts / sizeof layouts[0]) {
            st = tc_fail(TC_E_INPUT, "no weights in %s: none of model.safetensors, "
                         "model.safetensors.index.json, pytorch_model.bin, "
                         "pytorch_model.bin.index.json", model_dir);
            goto done;
        }
    }
    m->shard_names = calloc(1, sizeof *m->shard_names);
    m->shards = calloc(1, sizeof *m->shards);
    if (!m->shard_names || !m->shards ||
        !(m->shard_names[0] = dup_str(m->format == TC_HF_TORCH ? "pytorch_model.bin"
                                                                : "model.safetensors"))) {
        st = tc_fail(TC_E_INTERNAL, "%s: out of memory", __func__);
        goto done;
    }
    m->n_shards = 1;

done:
    if (st == TC_OK) {
        *out = m;
    } else {
        tc_hf_close(m);
    }
    return st;
}

void tc_hf_close(tc_hf_model *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_shards; i++) {
        if (m->shards)
            tc_st_close(m->shards[i]);
        if (m->shard_names)
            free(m->shard_names[i]);
    }
    free(m->shards);
    free(m->shard_names);
    for (size_t i = 0; i < m->n_entries; i++)
        free(m->entry_names[i]);
    free(m->entry_names);
    free(m->entry_shard);
    tc_hf_config_free(&m->cfg);
    pthread_mutex_destroy(&m->lock);
    free(m->dir);
    free(m);
}

/* Shard s of m, opened on first use (under m->lock). */
static tc_status get_shard(tc_hf_model *m, size_t s, const tc_st_file **out)
{
    tc_status st = TC_OK;
    char path[TC_HF_PATH_MAX];

    pthread_mutex_lock(&m->lock);
    if (!m->shards[s]) {
        st = join_path(path, sizeof path, m->dir, m->shard_names[s]);
        if (st == TC_OK && m->format == TC_HF_SAFETENSORS)
            st = tc_st_open(path, &m->shards[s], NULL);
        else if (st == TC_OK)
            st = tc_torch_open(path, &m->shards[s]);
    }
    *out = m->shards[s];
    pthread_mutex_unlock(&m->lock);
    return st;
}

static tc_status find_tensor(tc_hf_model *m, const char *name, bool required,
                             const tc_st_file **file, const tc_st_tensor **t)
{
    tc_status st = TC_OK;
    size_t s = 0;
    const tc_st_file *f = NULL;

    *file = NULL;
    *t = NULL;
    if (m->n_entries > 0) {
        char **hit = bsearch(&name, m->entry_names, m->n_entries,
                             sizeof *m->entry_names, cmp_str);
        if (!hit) {
            if (required)
                return tc_fail(TC_E_INPUT, "tensor %s is not in the weight_map of "
                               "%s/%s", name, m->dir, m->index_name);
            return TC_OK;
        }
        s = (size_t)m->entry_shard[hit - m->entry_names];
    } else if (m->n_shards != 1) {
        return tc_fail(TC_E_INTERNAL, "%s: model has no shards", __func__);
    }
    if ((st = get_shard(m, s, &f)) != TC_OK)
        return st;
    const tc_st_tensor *ten = tc_st_find(f, name);
    if (!ten) {
        if (m->n_entries > 0)
            return tc_fail(TC_E_INPUT, "%s/%s says tensor "
                           "%s is in shard %s, but %s does not contain it", m->dir,
                           m->index_name, name, m->shard_names[s], f->path);
        if (required)
            return tc_fail(TC_E_INPUT, "tensor %s is not in %s", name, f->path);
        return TC_OK;
    }
    *file = f;
    *t = ten;
    return TC_OK;
}

tc_status tc_hf_find_tensor(tc_hf_model *m, const char *name,
                            const tc_st_file **file, const tc_st_tensor **t)
{
    return find_tensor(m, name, true, file, t);
}

tc_status tc_hf_lookup_tensor(tc_hf_model *m, const char *name,
                              const tc_st_file **file, const tc_st_tensor **t)
{
    return find_tensor(m, name, false, file, t);
}

/* ---------------------------------------------------------------------------
 * Source tensors (Hugging Face names) and Meta checkpoints
 * ------------------------------------------------------------------------- */

static void fill_one(tc_hf_tensor *out, const tc_st_file *f, const tc_st_tensor *t)
{
    out->path = f->path;
    out->dtype = t->dtype;
    out->ndim = t->ndim;
    out->shape[0] = t->ndim >= 1 ? t->shape[0] : 1;
    out->shape[1] = t->ndim >= 2 ? t->shape[1] : 1;
    out->n_parts = 1;
    out->files[0] = f;
    out->parts[0] = t;
}

/* Meta's name, model-parallel dimension and rotary layout of a Hugging
 * Face tensor (TensorRT-LLM load_from_meta_llama: wo, w2 and tok_embeddings
 * are split on dim 1, norms are replicated, the rest split on dim 0). */
static bool meta_name(const char *hf, char *out, size_t n, int *split, bool *rope)
{
    static const struct { const char *hf, *meta; int split; bool rope; } layer[] = {
        { "self_attn.q_proj.weight", "attention.wq.weight", 0, true },
        { "self_attn.k_proj.weight", "attention.wk.weight", 0, true },
        { "self_attn.v_proj.weight", "attention.wv.weight", 0, false },
        { "self_attn.o_proj.weight", "attention.wo.weight", 1, false },
        { "mlp.gate_proj.weight", "feed_forward.w1.weight", 0, false },
        { "mlp.up_proj.weight", "feed_forward.w3.weight", 0, false },
        { "mlp.down_proj.weight", "feed_forward.w2.weight", 1, false },
        { "input_layernorm.weight", "attention_norm.weight", -1, false },
        { "post_attention_layernorm.weight", "ffn_norm.weight", -1, false },
    };
    *rope = false;
    if (strcmp(hf, "model.embed_tokens.weight") == 0) {
        *split = 1;
        return (size_t)snprintf(out, n, "tok_embeddings.weight") < n;
    }
    if (strcmp(hf, "model.norm.weight") == 0) {
        *split = -1;
        return (size_t)snprintf(out, n, "norm.weight") < n;
    }
    if (strcmp(hf, "lm_head.weight") == 0) {
        *split = 0;
        return (size_t)snprintf(out, n, "output.weight") < n;
    }
    long long layer_no = -1;
    int used = 0;
    if (sscanf(hf, "model.layers.%lld.%n", &layer_no, &used) != 1 || used == 0 || layer_no < 0)
        return false;
    for (size_t i = 0; i < sizeof layer / sizeof layer[0]; i++) {
        if (strcmp(hf + used, layer[i].hf) == 0) {
            *split = layer[i].split;
            *rope = layer[i].rope;
            return (size_t)snprintf(out, n, "layers.%lld.%s", layer_no, layer[i].meta) < n;
        }
    }
    return false;
}

static tc_status meta_get(tc_hf_model *m, const char *name, bool required, tc_hf_tensor *out)
{
    char mn[256];
    int split = -1;
    bool rope = false;
    if (!meta_name(name, mn, sizeof mn, &split, &rope)) {
        if (required)
            return tc_fail(TC_E_INPUT, "tensor %s has no counterpart in a Meta checkpoint (%s)",
                           name, m->dir);
        return TC_OK;
    }
    size_t n = split < 0 ? 1 : m->n_shards;
    for (size_t s = 0; s < n; s++) {
        const tc_st_file *f = NULL;
        TC_TRY(get_shard(m, s, &f));
        const tc_st_tensor *t = tc_st_find(f, mn);
        if (!t) {
            if (!required && s == 0)
                return TC_OK;
            return tc_fail(TC_E_INPUT, "%s: tensor %s (Meta's name for %s) is missing", f->path,
                           mn, name);
        }
        if (t->ndim < 1 || t->ndim > 2 || (split == 1 && t->ndim != 2))
            return tc_fail(TC_E_INPUT, "%s: tensor %s has %d dimensions (expected %s)", f->path,
                           mn, t->ndim, split == 1 ? "2" : "1 or 2");
        if (s == 0) {
            fill_one(out, f, t);
        } else {
            const tc_st_tensor *t0 = out->parts[0];
            if (t->dtype != t0->dtype || t->ndim != t0->ndim || t->shape[0] != t0->shape[0] ||
                (t->ndim == 2 && t->shape[1] != t0->shape[1]))
                return tc_fail(TC_E_INPUT, "%s: tensor %s differs in dtype or shape from its "
                               "part in %s (model-parallel shards must hold equal pieces)",
                               f->path, mn, out->files[0]->path);
            out->files[s] = f;
            out->parts[s] = t;
        }
    }
    out->n_parts = n;
    out->split_dim = n > 1 ? split : -1;
    if (out->split_dim >= 0)
        out->shape[out->split_dim] *= (int64_t)n;
    if (rope) {
        const int64_t d = m->cfg.head_dim, part_rows = out->parts[0]->shape[0];
        if (d % 2 != 0 || part_rows % d != 0)
            return tc_fail(TC_E_INPUT, "%s: tensor %s has %lld rows per model-parallel shard, "
                           "not whole heads of head_dim %lld (an even number is needed for "
                           "the rotary permutation): the KV or attention heads are not "
                           "divisible by the %zu shards", out->path, mn,
                           (long long)part_rows, (long long)d, m->n_shards);
        out->rope_head_dim = d;
    }
    return TC_OK;
}

tc_status tc_hf_get(tc_hf_model *m, const char *name, bool required, tc_hf_tensor *out)
{
    memset(out, 0, sizeof *out);
    out->name = name;
    out->split_dim = -1;
    if (m->format == TC_HF_META)
        return meta_get(m, name, required, out);
    const tc_st_file *f = NULL;
    const tc_st_tensor *t = NULL;
    TC_TRY(find_tensor(m, name, required, &f, &t));
    if (t)
        fill_one(out, f, t);
    return TC_OK;
}

tc_status tc_meta_params_parse(const char *label, const char *text, size_t len,
                               tc_hf_config *cfg)
{
    tc_status st = TC_OK;
    cJSON *root = NULL;

    memset(cfg, 0, sizeof *cfg);
    root = tc_json_parse(label, text, len);
    if (!root) {
        st = tc_fail(TC_E_INPUT, "%s: not valid JSON", label);
        goto done;
    }
    if (!cJSON_IsObject(root)) {
        st = tc_fail(TC_E_INPUT, "%s: the top level must be a JSON object, not %s", label,
                     json_type_name(root));
        goto done;
    }
    if ((st = check_no_dup(label, root, "the top-level object")) != TC_OK)
        goto done;
    /* LLaMAConfig.from_meta_ckpt (TensorRT-LLM): fixed architecture,
     * max_position_embeddings 2048, silu, dtype 'auto' -> bfloat16. */
    memcpy(cfg->architecture, "LlamaForCausalLM", sizeof "LlamaForCausalLM");
    memcpy(cfg->model_type, "llama", sizeof "llama");
    memcpy(cfg->hidden_act, "silu", sizeof "silu");
    cfg->max_position_embeddings = 2048;
    cfg->rope_theta = 10000.0;
    cfg->has_torch_dtype = true;
    cfg->torch_dtype = TC_FT_BFLOAT16;
    if ((st = get_pos_int(label, root, "dim", &cfg->hidden_size)) != TC_OK ||
        (st = get_pos_int(label, root, "n_layers", &cfg->num_hidden_layers)) != TC_OK ||
        (st = get_pos_int(label, root, "n_heads", &cfg->num_attention_heads)) != TC_OK)
        goto done;
    cfg->num_key_value_heads = cfg->num_attention_heads;
    if ((st = get_opt_pos_int(label, root, "n_kv_heads", &cfg->num_key_value_heads)) != TC_OK)
        goto done;
    /* vocab_size: 32000 when absent, and -1 (Llama 2's params.json) means
     * 32000 too. */
    cfg->vocab_size = 32000;
    const cJSON *vs = get_opt(root, "vocab_size");
    if (!(vs && cJSON_IsNumber(vs) && vs->valuedouble == -1.0) &&
        (st = get_opt_pos_int(label, root, "vocab_size", &cfg->vocab_size)) != TC_OK)
        goto done;
    if (get_opt(root, "hidden_dim")) {
        if ((st = get_pos_int(label, root, "hidden_dim", &cfg->intermediate_size)) != TC_OK)
            goto done;
    } else {
        /* multiple_of * ceil(int(int(4 * dim * 2 / 3) * ffn_dim_multiplier)
         * / multiple_of), in Python's float arithmetic; Meta's model.py
         * FeedForward computes the same. */
        int64_t multiple_of = 1;
        double mult = 1.0;
        if ((st = get_opt_pos_int(label, root, "multiple_of", &multiple_of)) != TC_OK ||
            (st = get_opt_double(label, root, "", "ffn_dim_multiplier", true, &mult)) != TC_OK)
            goto done;
        int64_t n = (int64_t)((double)(cfg->hidden_size * 8) / 3.0);
        double h = (double)n * mult;
        if (!(h < 9.0e15)) {
            st = tc_fail(TC_E_INPUT, "%s: ffn_dim_multiplier = %.17g gives an intermediate size "
                         "that is too large", label, mult);
            goto done;
        }
        int64_t x = (int64_t)h;
        cfg->intermediate_size = multiple_of * ((x + multiple_of - 1) / multiple_of);
        if (cfg->intermediate_size < 1 || cfg->intermediate_size > TC_HF_DIM_MAX) {
            st = tc_fail(TC_E_INPUT, "%s: the intermediate size %lld computed from dim, "
                         "multiple_of and ffn_dim_multiplier is out of range", label,
                         (long long)cfg->intermediate_size);
            goto done;
        }
    }
    if (!get_opt(root, "norm_eps")) {
        st = tc_fail(TC_E_INPUT, "%s: required key \"norm_eps\" is missing", label);
        goto done;
    }
    if ((st = get_opt_double(label, root, "", "norm_eps", false, &cfg->rms_norm_eps)) != TC_OK ||
        (st = get_opt_double(label, root, "", "rope_theta", true, &cfg->rope_theta)) != TC_OK)
        goto done;
    bool scaled = false;
    if ((st = get_opt_bool(label, root, "use_scaled_rope", &scaled)) != TC_OK)
        goto done;
    const cJSON *rs = get_opt(root, "rope_scaling");
    if (scaled) {
        /* from_meta_ckpt: rotary_scaling = {"type": "llama3"}; TensorRT-LLM
         * fills factor 8, low 1, high 4, original 8192 for that type. */
        cfg->rope_scaling = cJSON_CreateObject();
        if (!cfg->rope_scaling || !cJSON_AddStringToObject(cfg->rope_scaling, "type", "llama3")) {
            st = tc_fail(TC_E_INTERNAL, "%s: out of memory", label);
            goto done;
        }
    } else if (rs) {
        if (!cJSON_IsObject(rs)) {
            st = tc_fail(TC_E_INPUT, "%s: \"rope_scaling\" must be an object or null, not %s",
                         label, json_type_name(rs));
            goto done;
        }
        if (!(cfg->rope_scaling = cJSON_Duplicate(rs, 1))) {
            st = tc_fail(TC_E_INTERNAL, "%s: out of memory", label);
            goto done;
        }
    }
    if (cfg->num_attention_heads % cfg->num_key_value_heads != 0) {
        st = tc_fail(TC_E_INPUT, "%s: n_kv_heads = %lld does not divide n_heads = %lld", label,
                     (long long)cfg->num_key_value_heads, (long long)cfg->num_attention_heads);
        goto done;
    }
    if (cfg->hidden_size % cfg->num_attention_heads != 0) {
        st = tc_fail(TC_E_INPUT, "%s: n_heads = %lld does not divide dim = %lld", label,
                     (long long)cfg->num_attention_heads, (long long)cfg->hidden_size);
        goto done;
    }
    cfg->head_dim = cfg->hidden_size / cfg->num_attention_heads;

done:
    cJSON_Delete(root);
    if (st != TC_OK)
        tc_hf_config_free(cfg);
    return st;
}

tc_status tc_meta_open(const char *dir, tc_hf_model **out)
{
    tc_status st = TC_OK;
    tc_hf_model *m = NULL;
    char path[TC_HF_PATH_MAX], name[64];
    char *text = NULL;
    size_t len = 0, n = 0;
    struct stat sb;
    DIR *d = NULL;

    *out = NULL;
    if (stat(dir, &sb) != 0)
        return tc_fail(TC_E_INPUT, "Meta checkpoint directory %s: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return tc_fail(TC_E_INPUT, "Meta checkpoint directory %s is not a directory", dir);
    m = calloc(1, sizeof *m);
    if (!m || !(m->dir = dup_str(dir)) || pthread_mutex_init(&m->lock, NULL) != 0) {
        if (m)
            free(m->dir);
        free(m);
        return tc_fail(TC_E_INTERNAL, "%s: out of memory", __func__);
    }
    m->format = TC_HF_META;
    m->config_name = "params.json";
    if ((st = join_path(path, sizeof path, dir, "params.json")) != TC_OK)
        goto done;
    if (stat(path, &sb) != 0 && errno == ENOENT) {
        st = tc_fail(TC_E_INPUT, "%s: no params.json (is this a Meta checkpoint directory?)", dir);
        goto done;
    }
    if ((st = tc_read_small_file(path, TC_HF_CONFIG_MAX, &text, &len)) != TC_OK ||
        (st = tc_meta_params_parse(path, text, len, &m->cfg)) != TC_OK)
        goto done;

    /* consolidated.NN.pth, NN = 00 .. MP-1 with none missing (TensorRT-LLM
     * opens f"consolidated.{i:02d}.pth"). */
    if (!(d = opendir(dir))) {
        st = tc_fail(TC_E_IO, "%s: cannot list: %s", dir, strerror(errno));
        goto done;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l > 17 && strncmp(e->d_name, "consolidated.", 13) == 0 &&
            strcmp(e->d_name + l - 4, ".pth") == 0)
            n++;
    }
    if (n == 0) {
        st = tc_fail(TC_E_INPUT, "%s: no consolidated.*.pth files", dir);
        goto done;
    }
    if (n > TC_HF_MAX_PARTS) {
        st = tc_fail(TC_E_INPUT, "%s: %zu consolidated.*.pth files, more than the %d "
                     "model-parallel shards trtconv reads", dir, n, TC_HF_MAX_PARTS);
        goto done;
    }
    m->shard_names = calloc(n, sizeof *m->shard_names);
    m->shards = calloc(n, sizeof *m->shards);
    if (!m->shard_names || !m->shards) {
        st = tc_fail(TC_E_INTERNAL, "%s: out of memory", __func__);
        goto done;
    }
    m->n_shards = n;
    for (size_t i = 0; i < n; i++) {
        snprintf(name, sizeof name, "consolidated.%02zu.pth", i);
        if ((st = join_path(path, sizeof path, dir, name)) != TC_OK)
            goto done;
        if (stat(path, &sb) != 0) {
            st = tc_fail(TC_E_INPUT, "%s: %zu consolidated.*.pth files but %s is missing (shards "
                         "must be numbered 00 .. %02zu)", dir, n, name, n - 1);
            goto done;
        }
        if (!(m->shard_names[i] = dup_str(name))) {
            st = tc_fail(TC_E_INTERNAL, "%s: out of memory", __func__);
            goto done;
        }
    }

done:
    if (d)
        closedir(d);
    free(text);
    if (st == TC_OK)
        *out = m;
    else
        tc_hf_close(m);
    return st;
}
