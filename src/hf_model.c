/* hf_model.c: Hugging Face LLaMA-family model directory (config.json, the
 * safetensors index, lazily opened shards). See hf_model.h. */
#define _POSIX_C_SOURCE 200809L
#include "trtconv/hf_model.h"

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

#include "trtconv/jsonutil.h"
#include "trtconv/log.h"

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
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        st = tc_fail(TC_E_IO, "%s: cannot open: %s", path, strerror(errno));
        goto done;
    }
    if (fstat(fd, &sb) != 0) {
        st = tc_fail(TC_E_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto done;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = tc_fail(TC_E_INPUT, "%s: not a regular file", path);
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

    root = tc_json_parse(text, len);
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

bool tc_hf_shard_name_ok(const char *name)
{
    if (!name)
        return false;
    size_t n = strlen(name);
    static const char suffix[] = ".safetensors";
    size_t ns = sizeof suffix - 1;
    if (n == 0 || n >= TC_HF_NAME_MAX || name[0] == '.')
        return false; /* also refuses "." and ".." */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '/' || c == '\\' || c < 0x20 || c == 0x7F)
            return false;
    }
    return n > ns && strcmp(name + n - ns, suffix) == 0;
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

    root = tc_json_parse(text, len);
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
        if (!tc_hf_shard_name_ok(c->valuestring)) {
            st = tc_fail(TC_E_INPUT, "%s: weight_map[\"%.200s\"] = \"%.200s\" is refused "
                         "(path traversal rule: a shard must be a plain file name in "
                         "the model directory ending in .safetensors: no '/' or '\\', "
                         "no leading '.', no control characters, not empty)",
                         path, key, c->valuestring);
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

/* True if dir holds weights in a format trtconv cannot read yet. */
static bool has_unsupported_weights(const char *dir)
{
    DIR *d = opendir(dir);
    bool found = false;
    if (!d)
        return false;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if ((n > 4 && strcmp(e->d_name + n - 4, ".bin") == 0) ||
            (n > 4 && strcmp(e->d_name + n - 4, ".pth") == 0) ||
            strcmp(e->d_name, "pytorch_model.bin.index.json") == 0)
            found = true;
    }
    closedir(d);
    return found;
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

    if ((st = join_path(path, sizeof path, model_dir,
                        "model.safetensors.index.json")) != TC_OK)
        goto done;
    if (stat(path, &sb) == 0) {
        st = load_index(m, path);
        goto done;
    }
    if (errno != ENOENT) {
        st = tc_fail(TC_E_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto done;
    }
    if ((st = join_path(path, sizeof path, model_dir, "model.safetensors")) != TC_OK)
        goto done;
    if (stat(path, &sb) != 0) {
        if (has_unsupported_weights(model_dir))
            st = tc_fail(TC_E_INPUT, "no model.safetensors or "
                         "model.safetensors.index.json in %s (PyTorch .bin/.pth "
                         "weights are not supported yet; convert them to "
                         "safetensors first)", model_dir);
        else
            st = tc_fail(TC_E_INPUT, "no model.safetensors or "
                         "model.safetensors.index.json in %s", model_dir);
        goto done;
    }
    m->shard_names = calloc(1, sizeof *m->shard_names);
    m->shards = calloc(1, sizeof *m->shards);
    if (!m->shard_names || !m->shards ||
        !(m->shard_names[0] = dup_str("model.safetensors"))) {
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
        if (st == TC_OK)
            st = tc_st_open(path, &m->shards[s], NULL);
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
                               "%s/model.safetensors.index.json", name, m->dir);
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
            return tc_fail(TC_E_INPUT, "%s/model.safetensors.index.json says tensor "
                           "%s is in shard %s, but %s does not contain it", m->dir,
                           name, m->shard_names[s], f->path);
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
