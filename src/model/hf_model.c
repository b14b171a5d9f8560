/* hf_model.c: a Hugging Face model directory: the safetensors (or .bin)
 * index and lazily opened shards, tensors by name (see hf_model.h). */
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
                     path, hfm_json_type_name(root));
        goto done;
    }
    if ((st = hfm_check_no_dup(path, root, "the top-level object")) != TC_OK)
        goto done;
    const cJSON *wm = tc_json_get(root, "weight_map");
    if (!wm) {
        st = tc_fail(TC_E_INPUT, "%s: required key \"weight_map\" is missing", path);
        goto done;
    }
    if (!cJSON_IsObject(wm)) {
        st = tc_fail(TC_E_INPUT, "%s: \"weight_map\" must be an object, not %s",
                     path, hfm_json_type_name(wm));
        goto done;
    }
    if ((st = hfm_check_no_dup(path, wm, "weight_map")) != TC_OK)
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
                         "name string, not %s", path, key, hfm_json_type_name(c));
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
        if (!(m->shard_names[i] = hfm_dup_str(shards[i]))) {
            st = tc_fail(TC_E_INTERNAL, "%s: out of memory", path);
            goto done;
        }
    }
    m->n_entries = n;
    for (i = 0; i < n; i++) {
        if (!(m->entry_names[i] = hfm_dup_str(refs[i].name))) {
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
    if (!m || !(m->dir = hfm_dup_str(model_dir))) {
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
        if ((st = tc_path_join(path, sizeof path, model_dir, layouts[k].index)) != TC_OK)
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
        if ((st = tc_path_join(path, sizeof path, model_dir, layouts[k].single)) != TC_OK)
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
        !(m->shard_names[0] = hfm_dup_str(m->format == TC_HF_TORCH ? "pytorch_model.bin"
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
tc_status hfm_get_shard(tc_hf_model *m, size_t s, const tc_st_file **out)
{
    tc_status st = TC_OK;
    char path[TC_HF_PATH_MAX];

    pthread_mutex_lock(&m->lock);
    if (!m->shards[s]) {
        st = tc_path_join(path, sizeof path, m->dir, m->shard_names[s]);
        if (st == TC_OK && m->format == TC_HF_SAFETENSORS)
            st = tc_st_open(path, &m->shards[s], NULL);
        else if (st == TC_OK)
            st = tc_torch_open(path, &m->shards[s]);
    }
    *out = m->shards[s];
    pthread_mutex_unlock(&m->lock);
    return st;
}

static tc_status hfm_find_tensor(tc_hf_model *m, const char *name, bool required,
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
    if ((st = hfm_get_shard(m, s, &f)) != TC_OK)
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
    return hfm_find_tensor(m, name, true, file, t);
}

tc_status tc_hf_lookup_tensor(tc_hf_model *m, const char *name,
                              const tc_st_file **file, const tc_st_tensor **t)
{
    return hfm_find_tensor(m, name, false, file, t);
}

/* ---------------------------------------------------------------------------
 * Source tensors (Hugging Face names; Meta checkpoints in meta.c)
 * ------------------------------------------------------------------------- */

tc_status tc_hf_get(tc_hf_model *m, const char *name, bool required, tc_hf_tensor *out)
{
    memset(out, 0, sizeof *out);
    out->name = name;
    out->split_dim = -1;
    if (m->format == TC_HF_META)
        return hfm_meta_get(m, name, required, out);
    const tc_st_file *f = NULL;
    const tc_st_tensor *t = NULL;
    TC_TRY(hfm_find_tensor(m, name, required, &f, &t));
    if (t)
        hfm_fill_one(out, f, t);
    return TC_OK;
}
