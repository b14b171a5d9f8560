/* hf_ckpt.c: the Hugging Face-style checkpoint as an output format
 * (hf_ckpt.h, docs/hf-output.md). */
#define _DEFAULT_SOURCE /* lstat */
#include "trtconv/output/hf_ckpt.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "trtconv/build_config.h"
#include "trtconv/core/fsutil.h"
#include "trtconv/core/jsonutil.h"
#include "trtconv/core/log.h"
#include "trtconv/output/manifest.h"
#include "trtconv/output/rankfile.h"
#include "trtconv/quant/nvfp4.h"

#define CONFIG_MAX_BYTES (4u << 20)
#define AUX_MAX_BYTES (256u << 20)

static uint64_t stored_bytes(const tc_plan_tensor *t)
{
    return tc_plan_tensor_elems(t) * tc_dtype_bits(t->dtype) / 8;
}

tc_status tc_hf_output_build(tc_hf_model *m, tc_dtype dt, const tc_hf_quant *q,
                             uint64_t max_shard_bytes, tc_hf_output **out)
{
    *out = NULL;
    tc_hf_output *o = calloc(1, sizeof *o);
    if (!o)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    o->q = *q;
    tc_status st = tc_plan_build_hf(m, dt, &o->full);
    if (st == TC_OK)
        st = tc_hf_quant_rewrite(q, o->full);
    if (st == TC_OK) {
        o->shard_of = calloc(o->full->n_tensors ? o->full->n_tensors : 1, sizeof *o->shard_of);
        st = o->shard_of ? TC_OK : tc_fail(TC_E_INTERNAL, "out of memory");
    }
    /* huggingface_hub's split: a new shard when the next tensor would pass
     * the limit and the current one is not empty; a scale the weight's
     * work fills stays with its weight. */
    uint64_t cur = 0;
    int shard = 0;
    for (size_t i = 0; st == TC_OK && i < o->full->n_tensors; i++) {
        const uint64_t b = stored_bytes(&o->full->tensors[i]);
        if (cur > 0 && cur + b > max_shard_bytes && o->full->tensors[i].scale_of < 0) {
            shard++;
            cur = 0;
        }
        cur += b;
        o->total_bytes += b;
        o->shard_of[i] = shard;
    }
    if (st == TC_OK && shard >= 99999)
        st = tc_fail(TC_E_USAGE, "--max_shard_size: %d shards, more than the 99999 that "
                     "model-NNNNN-of-NNNNN names hold", shard + 1);
    o->shards = shard + 1;
    if (st != TC_OK) {
        tc_hf_output_free(o);
        return st;
    }
    *out = o;
    return TC_OK;
}

void tc_hf_output_free(tc_hf_output *o)
{
    if (!o)
        return;
    tc_plan_free(o->full);
    free(o->shard_of);
    free(o);
}

/* A deep copy of tensor t (its pieces and constant values). */
static tc_status copy_tensor(const tc_plan_tensor *t, tc_plan_tensor *c)
{
    *c = *t;
    c->pieces = NULL;
    c->constant_values = NULL;
    if (t->n_pieces) {
        c->pieces = malloc(t->n_pieces * sizeof *c->pieces);
        if (!c->pieces)
            return tc_fail(TC_E_INTERNAL, "out of memory");
        memcpy(c->pieces, t->pieces, t->n_pieces * sizeof *c->pieces);
    }
    if (t->n_constant) {
        c->constant_values = malloc((size_t)t->n_constant * sizeof *c->constant_values);
        if (!c->constant_values)
            return tc_fail(TC_E_INTERNAL, "out of memory");
        memcpy(c->constant_values, t->constant_values,
               (size_t)t->n_constant * sizeof *c->constant_values);
    }
    return TC_OK;
}

tc_status tc_hf_output_plan_shard(const tc_hf_output *o, int shard, const tc_calib_stats *stats,
                                  tc_plan **out)
{
    *out = NULL;
    tc_plan *p = calloc(1, sizeof *p);
    size_t n = 0;
    for (size_t i = 0; i < o->full->n_tensors; i++)
        n += o->shard_of[i] == shard;
    if (p)
        p->tensors = calloc(n ? n : 1, sizeof *p->tensors);
    if (!p || !p->tensors) {
        free(p);
        return tc_fail(TC_E_INTERNAL, "out of memory");
    }
    p->rank = shard;
    p->naming = TC_CELLS_HF_SHARDS;
    p->cells = o->shards;
    p->layers_total = o->full->layers_total;
    /* Indices between a weight and its scale tensor move with the copy
     * (the split keeps the two in one shard). */
    int *map = malloc(o->full->n_tensors * sizeof *map);
    tc_status st = map ? TC_OK : tc_fail(TC_E_INTERNAL, "out of memory");
    for (size_t i = 0; st == TC_OK && i < o->full->n_tensors; i++) {
        map[i] = -1;
        if (o->shard_of[i] != shard)
            continue;
        map[i] = (int)p->n_tensors;
        st = copy_tensor(&o->full->tensors[i], &p->tensors[p->n_tensors]);
        p->n_tensors++;
    }
    for (size_t k = 0; st == TC_OK && k < p->n_tensors; k++) {
        tc_plan_tensor *t = &p->tensors[k];
        const int si = t->scale_index, so = t->scale_of;
        t->scale_index = si >= 0 ? map[si] : -1;
        t->scale_of = so >= 0 ? map[so] : -1;
        if ((si >= 0 && t->scale_index < 0) || (so >= 0 && t->scale_of < 0))
            st = tc_fail(TC_E_INTERNAL, "%s: its weight or scale tensor is in another shard",
                         t->name);
    }
    free(map);
    if (st == TC_OK && stats)
        st = tc_hf_quant_fill(&o->q, stats, p, -1);
    if (st != TC_OK) {
        tc_plan_free(p);
        return st;
    }
    tc_plan_recount(p);
    *out = p;
    return TC_OK;
}

/* ---- the metadata files ---- */

/* hf_quant_config.json's "quantization" object (NULL when unquantized). */
static cJSON *quantization_json(const tc_hf_quant *q)
{
    const char *algo = tc_hf_algo_name(q->algo);
    if (!algo && !q->kv_fp8)
        return NULL;
    cJSON *o = cJSON_CreateObject(), *ex = cJSON_CreateArray();
    if (!o || !ex) {
        cJSON_Delete(o);
        cJSON_Delete(ex);
        return NULL;
    }
    cJSON_AddItemToObject(o, "quant_algo", algo ? cJSON_CreateString(algo) : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "kv_cache_quant_algo",
                          q->kv_fp8 ? cJSON_CreateString("FP8") : cJSON_CreateNull());
    if (q->algo == TC_HF_ALGO_NVFP4)
        cJSON_AddNumberToObject(o, "group_size", TC_NVFP4_BLOCK);
    /* ModelOpt lists the modules it left unquantized, lm_head among them,
     * sorted; here: lm_head and the --exclude_modules patterns (the loaders
     * match both names and wildcards). */
    const char *names[TC_HF_MAX_EXCLUDE + 1];
    size_t n = 0;
    names[n++] = "lm_head";
    for (size_t i = 0; i < q->n_exclude; i++)
        if (strcmp(q->exclude[i], "lm_head"))
            names[n++] = q->exclude[i];
    for (size_t i = 1; i < n; i++)
        for (size_t k = i; k > 0 && strcmp(names[k - 1], names[k]) > 0; k--) {
            const char *t = names[k];
            names[k] = names[k - 1];
            names[k - 1] = t;
        }
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(ex, cJSON_CreateString(names[i]));
    cJSON_AddItemToObject(o, "exclude_modules", ex);
    return o;
}

static cJSON *producer_json(void)
{
    cJSON *p = cJSON_CreateObject();
    if (p) {
        cJSON_AddStringToObject(p, "name", "trtconv");
        cJSON_AddStringToObject(p, "version", TRTCONV_VERSION);
    }
    return p;
}

/* config.json's quantization_config: ModelOpt's convert_hf_quant_config_format. */
static cJSON *quantization_config_json(const tc_hf_quant *q)
{
    cJSON *qj = quantization_json(q);
    if (!qj)
        return NULL;
    cJSON *c = cJSON_CreateObject();
    const char *algo = tc_hf_algo_name(q->algo);
    if (c && (q->algo == TC_HF_ALGO_FP8 || q->algo == TC_HF_ALGO_NVFP4)) {
        const int bits = q->algo == TC_HF_ALGO_FP8 ? 8 : 4;
        cJSON *groups = cJSON_AddObjectToObject(c, "config_groups");
        cJSON *g0 = cJSON_AddObjectToObject(groups, "group_0");
        static const char *const kinds[2] = { "input_activations", "weights" };
        for (int k = 0; k < 2; k++) {
            cJSON *a = cJSON_AddObjectToObject(g0, kinds[k]);
            cJSON_AddBoolToObject(a, "dynamic", false);
            cJSON_AddNumberToObject(a, "num_bits", bits);
            cJSON_AddStringToObject(a, "type", "float");
            if (bits == 4)
                cJSON_AddNumberToObject(a, "group_size", TC_NVFP4_BLOCK);
        }
        cJSON *targets = cJSON_AddArrayToObject(g0, "targets");
        cJSON_AddItemToArray(targets, cJSON_CreateString("Linear"));
    }
    if (c) {
        cJSON_AddItemToObject(c, "ignore",
                              cJSON_Duplicate(cJSON_GetObjectItem(qj, "exclude_modules"), true));
        if (algo)
            cJSON_AddStringToObject(c, "quant_algo", algo);
        if (q->kv_fp8) {
            cJSON *kv = cJSON_AddObjectToObject(c, "kv_cache_scheme");
            cJSON_AddBoolToObject(kv, "dynamic", false);
            cJSON_AddNumberToObject(kv, "num_bits", 8);
            cJSON_AddStringToObject(kv, "type", "float");
        }
        cJSON_AddItemToObject(c, "producer", producer_json());
        cJSON_AddStringToObject(c, "quant_method", "modelopt");
    }
    cJSON_Delete(qj);
    return c;
}

/* config.json: the source's, its dtype the output's, with the
 * quantization_config of the format. */
static tc_status render(const tc_output_desc *d, char **text)
{
    *text = NULL;
    if (!d->model_dir || !d->hf)
        return tc_fail(TC_E_USAGE, "--output_format hf needs a Hugging Face --model_dir (its "
                       "config.json is the output's)");
    char path[4200], *src = NULL;
    size_t len = 0;
    TC_TRY(tc_path_join(path, sizeof path, d->model_dir, "config.json"));
    TC_TRY(tc_read_small_file(path, CONFIG_MAX_BYTES, &src, &len));
    cJSON *c = tc_json_parse(path, src, len);
    free(src);
    if (!cJSON_IsObject(c)) {
        cJSON_Delete(c);
        return tc_fail(TC_E_INPUT, "%s: not a JSON object", path);
    }
    const char *dt = tc_float_type_name(d->dtype);
    /* transformers 5 writes "dtype", 4.x "torch_dtype": set whichever the
     * source has, torch_dtype when it has neither. */
    const bool has_new = cJSON_GetObjectItem(c, "dtype") != NULL;
    if (has_new)
        cJSON_ReplaceItemInObject(c, "dtype", cJSON_CreateString(dt));
    if (cJSON_GetObjectItem(c, "torch_dtype"))
        cJSON_ReplaceItemInObject(c, "torch_dtype", cJSON_CreateString(dt));
    else if (!has_new)
        cJSON_AddStringToObject(c, "torch_dtype", dt);
    cJSON_DeleteItemFromObject(c, "quantization_config");
    cJSON *qc = quantization_config_json(&d->hf->q);
    if (qc)
        cJSON_AddItemToObject(c, "quantization_config", qc);
    *text = cJSON_Print(c);
    cJSON_Delete(c);
    return *text ? TC_OK : tc_fail(TC_E_INTERNAL, "out of memory");
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* model.safetensors.index.json. */
static tc_status write_index(const char *dir, const tc_hf_output *o)
{
    const size_t n = o->full->n_tensors;
    const char **names = malloc((n ? n : 1) * sizeof *names);
    cJSON *root = cJSON_CreateObject();
    if (!names || !root) {
        free(names);
        cJSON_Delete(root);
        return tc_fail(TC_E_INTERNAL, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        names[i] = o->full->tensors[i].name;
    qsort(names, n, sizeof *names, cmp_str);
    cJSON *meta = cJSON_AddObjectToObject(root, "metadata");
    cJSON_AddNumberToObject(meta, "total_size", (double)o->total_bytes);
    cJSON *map = cJSON_AddObjectToObject(root, "weight_map");
    for (size_t i = 0; i < n; i++) {
        const tc_plan_tensor *t = (const tc_plan_tensor *)(const void *)(names[i] -
                                                                         offsetof(tc_plan_tensor, name));
        char file[64];
        tc_cell_file_name(TC_CELLS_HF_SHARDS, o->shard_of[t - o->full->tensors], o->shards, file,
                          sizeof file);
        cJSON_AddStringToObject(map, names[i], file);
    }
    free(names);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    const tc_status st = tc_write_file_durable(dir, "model.safetensors.index.json", text);
    free(text);
    return st;
}

static tc_status write_quant_config(const char *dir, const tc_hf_quant *q)
{
    cJSON *qj = quantization_json(q);
    if (!qj)
        return TC_OK;
    cJSON *root = cJSON_CreateObject();
    if (!root) {
        cJSON_Delete(qj);
        return tc_fail(TC_E_INTERNAL, "out of memory");
    }
    cJSON_AddItemToObject(root, "producer", producer_json());
    cJSON_AddItemToObject(root, "quantization", qj);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    const tc_status st = tc_write_file_durable(dir, "hf_quant_config.json", text);
    free(text);
    return st;
}

/* The source's generation and tokenizer files, byte for byte. */
static tc_status copy_aux(const char *dir, const char *model_dir)
{
    static const char *const files[] = { "generation_config.json", "tokenizer.json",
                                         "tokenizer_config.json", "tokenizer.model",
                                         "special_tokens_map.json" };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[4200];
        TC_TRY(tc_path_join(path, sizeof path, model_dir, files[i]));
        struct stat sb;
        if (lstat(path, &sb) != 0 && errno == ENOENT)
            continue;
        char *data = NULL;
        size_t len = 0;
        TC_TRY(tc_read_small_file(path, AUX_MAX_BYTES, &data, &len));
        const tc_status st = tc_write_bytes_durable(dir, files[i], data, len);
        free(data);
        TC_TRY(st);
    }
    return TC_OK;
}

static tc_status commit(const char *dir, const tc_run_text *run, const tc_output_desc *d,
                        const char *metadata, const tc_rank_entry *entries)
{
    TC_TRY(tc_manifest_write(dir, TRTCONV_VERSION, run, d->cells, 1, 1, metadata, entries));
    TC_TRY(write_index(dir, d->hf));
    TC_TRY(write_quant_config(dir, &d->hf->q));
    TC_TRY(copy_aux(dir, d->model_dir));
    return tc_write_file_durable(dir, "config.json", metadata);
}

const tc_output_format tc_output_hf = {
    .name = "Hugging Face-style checkpoint (ModelOpt unified format)",
    .commit_file = "config.json",
    .render_metadata = render,
    .open_cell = tc_cell_open,
    .commit = commit,
};
