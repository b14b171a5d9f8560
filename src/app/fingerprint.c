/* fingerprint.c: what determines a run's bytes, as canonical text and its
 * SHA-256 (manifest.h). --resume keeps a rank file only when its recorded
 * run equals this one. */
#include "trtconv/app/job.h"
#include "trtconv/core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "trtconv/build_config.h"
#include "trtconv/calib/tokenizer.h"

typedef struct input_file {
    char dir[4096];
    char name[512];
    int owner;             /* the rank that can read it (-1: any) */
} input_file;

static tc_status add_input(input_file **v, size_t *n, const char *path_or_dir, const char *name,
                           int owner)
{
    input_file *t = realloc(*v, (*n + 1) * sizeof **v);
    if (!t)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    *v = t;
    input_file *f = &t[(*n)++];
    memset(f, 0, sizeof *f);
    f->owner = owner;
    if (name) {
        snprintf(f->dir, sizeof f->dir, "%s", path_or_dir);
        snprintf(f->name, sizeof f->name, "%s", name);
    } else { /* a file path: split at the last '/' */
        const char *slash = strrchr(path_or_dir, '/');
        if (slash) {
            snprintf(f->dir, sizeof f->dir, "%.*s", (int)(slash - path_or_dir), path_or_dir);
            snprintf(f->name, sizeof f->name, "%s", slash + 1);
        } else {
            snprintf(f->dir, sizeof f->dir, ".");
            snprintf(f->name, sizeof f->name, "%s", path_or_dir);
        }
    }
    return TC_OK;
}

/* The files a run reads: the model's config, index and shards, then the
 * calibration input and, for text lines, the tokenizer files. */
static tc_status list_inputs(const tc_job *j, input_file **files, size_t *n)
{
    const tc_opts *o = j->o;
    const tc_hf_model *m = j->model;
    const bool calib = tc_job_calib_needs(j);
    TC_TRY(add_input(files, n, m->dir, m->config_name, -1));
    if (m->index_name)
        TC_TRY(add_input(files, n, m->dir, m->index_name, -1));
    for (size_t i = 0; i < m->n_shards; i++)
        TC_TRY(add_input(files, n, m->dir, m->shard_names[i], -1));
    if (calib && o->calib_stats)
        return add_input(files, n, o->calib_stats, NULL, 0); /* only rank 0 reads it */
    if (!calib)
        return TC_OK;
    TC_TRY(add_input(files, n, o->calib_dataset, NULL, -1));
    /* Text lines go through the tokenizer: its files decide the ids. */
    const char *tdir = tc_job_tokenizer_dir(o);
    for (const char *const *f = tc_tokenizer_files(); *f; f++) {
        char path[4096];
        struct stat sb;
        if (tc_path_join(path, sizeof path, tdir, *f) == TC_OK && stat(path, &sb) == 0)
            TC_TRY(add_input(files, n, tdir, *f, -1));
    }
    return TC_OK;
}

/* Every rank builds the same text: parameters locally; input fingerprints
 * spread over the ranks (file i on rank i % N, or on the only rank that
 * reads it) and combined by an all-reduce of their bytes. The MPI size is
 * not part of it: any N writes the same bytes. Collective. */
tc_status tc_job_fingerprint(const tc_job *j, tc_run_text *run)
{
    static const char *const tf[2] = { "false", "true" };
    const tc_opts *o = j->o;
    const tc_comm *c = j->comm;
    const tc_settings *s = &j->s;
    const tc_quant_method *w = s->quant.weights;
    const bool calib = tc_job_calib_needs(j);
    tc_run_text_init(run);
    tc_status st = TC_OK;
#define PARAM(k, ...) \
    do { if (st == TC_OK) st = tc_run_param(run, k, __VA_ARGS__); } while (0)
    PARAM("format", "trtconv-output-1");
    PARAM("tool", "%s", TRTCONV_VERSION);
    PARAM("tp_size", "%lld", (long long)s->layout.tp);
    PARAM("pp_size", "%lld", (long long)s->layout.pp);
    PARAM("dtype", "%s", tc_float_type_name(s->dtype));
    PARAM("use_parallel_embedding", "%s", tf[s->emb.parallel]);
    PARAM("embedding_sharding_dim", "%lld", (long long)s->emb.sharding_dim);
    PARAM("share_embedding_table", "%s", tf[s->share_embedding]);
    PARAM("weight_only_bits", "%d", w->woq_bits);
    PARAM("target_sm", "%lld", (long long)(w->woq_bits ? s->quant.target_sm : 0));
    PARAM("disable_weight_only_quant_plugin", "%s", tf[o->disable_weight_only_quant_plugin]);
    PARAM("smoothquant", "%.17g", w->smoothquant ? s->quant.alpha : 0.0);
    PARAM("per_channel", "%s", tf[w->smoothquant && w->per_channel]);
    PARAM("per_token", "%s", tf[w->smoothquant && w->per_token]);
    const char *kv = s->quant.kv->config_algo;
    PARAM("int8_kv_cache", "%s", tf[kv && !strcmp(kv, "INT8")]);
    if (kv && strcmp(kv, "INT8") != 0)
        PARAM("kv_cache_quant_algo", "%s%s", kv, s->quant.kv->calib ? " calibrated" : "");
    if (s->hf) {
        /* The shards' bytes, not the calibration layout, are the output;
         * tp/pp change only the calibration's float sums, like a GPU. */
        PARAM("output_format", "hf");
        PARAM("hf_quant_algo", "%s", tc_hf_algo_name(s->hfq.algo) ? tc_hf_algo_name(s->hfq.algo)
                                                                   : "none");
        PARAM("hf_kv_cache_quant_algo", "%s", s->hfq.kv_fp8 ? "FP8" : "none");
        PARAM("max_shard_size", "%llu", (unsigned long long)o->max_shard_bytes);
        PARAM("exclude_modules", "%s", o->exclude_modules ? o->exclude_modules : "");
    }
    if (calib && o->calib_stats) {
        PARAM("calibration", "statistics file");
    } else if (calib) {
        /* GPU and CPU statistics differ in the last bits (float sums). */
        PARAM("calibration", "%s forward", s->calib_gpu ? "gpu" : "cpu");
        PARAM("calib_size", "%lld", (long long)o->calib_size);
        PARAM("calib_max_seq_length", "%lld", (long long)o->calib_max_seq_length);
        PARAM("calib_batch_size", "%lld", (long long)o->calib_batch_size);
    }
#undef PARAM
    input_file *files = NULL;
    size_t n = 0;
    if (st == TC_OK)
        st = list_inputs(j, &files, &n);
    char *lines = st == TC_OK ? calloc(n ? n : 1, TC_INPUT_LINE) : NULL;
    if (st == TC_OK && !lines)
        st = tc_fail(TC_E_INTERNAL, "out of memory");
    for (size_t i = 0; st == TC_OK && i < n; i++) {
        int owner = files[i].owner >= 0 ? files[i].owner : (int)(i % (size_t)c->size);
        if (owner == c->rank)
            st = tc_input_fingerprint(files[i].dir, files[i].name, o->verify_inputs,
                                      lines + i * TC_INPUT_LINE);
    }
    st = tc_comm_agree(c, st, "input fingerprints");
    if (st == TC_OK)
        st = TC_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, lines, (int)(n * TC_INPUT_LINE), MPI_BYTE,
                                      MPI_BOR, c->world));
    for (size_t i = 0; st == TC_OK && i < n; i++)
        st = tc_run_input(run, lines + i * TC_INPUT_LINE);
    if (st == TC_OK)
        tc_run_seal(run);
    free(lines);
    free(files);
    return st;
}
