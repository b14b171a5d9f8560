/* hf_writer.c: config.json, the index and the safetensors shards (genmodel.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "genmodel.h"
#include "trtconv/core/fsutil.h"
#include "trtconv/core/log.h"
#include "trtconv/formats/st_writer.h"
#include "trtconv/formats/torchwrite.h"
#include "trtconv/formats/zipread.h"

/* Write a whole small file (config, index) from a NUL-terminated string. */
tc_status gm_write_text(const char *path, const char *text)
{
    tc_status st = TC_OK;
    int fd = -1;

    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        st = tc_fail(TC_E_IO, "%s: open: %s", path, strerror(errno));
        goto done;
    }
    st = tc_pwrite_all(fd, path, text, strlen(text), 0);
    if (st != TC_OK)
        goto done;
    if ((st = tc_close_file(&fd, path)) != TC_OK)
        goto done;
done:
    if (fd >= 0)
        close(fd);
    return st;
}





void gm_buf_printf(struct gm_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->oom)
        return;
    for (;;) {
        size_t room = b->cap - b->len;
        va_start(ap, fmt);
        n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        {
            size_t ncap = b->cap ? b->cap * 2 : 4096;
            char *np;
            while (ncap - b->len <= (size_t)n)
                ncap *= 2;
            np = realloc(b->p, ncap);
            if (!np) {
                b->oom = 1;
                return;
            }
            b->p = np;
            b->cap = ncap;
        }
    }
}

/* Python repr() of a float: shortest round-trip digits, "1e-05", "10000.0".
 * out must hold 64 bytes; v must be finite. */
void gm_fmt_float(double v, char out[64])
{
    char tmp[40];
    char *e;
    int prec, exp10, len = 0;

    for (prec = 1; prec <= 17; prec++) {
        len = snprintf(tmp, sizeof tmp, "%.*e", prec - 1, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    if (len < 0 || (size_t)len >= sizeof tmp || !(e = strchr(tmp, 'e'))) {
        (void)snprintf(out, 64, "%.17g", v); /* not reached for finite v */
        return;
    }
    exp10 = (int)strtol(e + 1, NULL, 10);
    if (exp10 < -4 || exp10 >= 16) {
        /* %e's mantissa digits; Python also writes >= 2 exponent digits */
        *e = '\0';
        len = snprintf(out, 64, "%se%c%02d", tmp, exp10 < 0 ? '-' : '+',
                       exp10 < 0 ? -exp10 : exp10);
    } else {
        int dec = prec - 1 - exp10;
        len = snprintf(out, 64, "%.*f", dec > 0 ? dec : 0, v);
        if (len > 0 && len < 62 && !strchr(out, '.'))
            memcpy(out + len, ".0", 3);
    }
}

tc_status gm_write_config(const struct gm_opts *o, const char *path)
{
    struct gm_buf b = { NULL, 0, 0, 0 };
    tc_status st = TC_OK;
    int mistral = o->arch == GM_ARCH_MISTRAL, hf5 = o->style == GM_STYLE_HF5;
    const char *dtype = tc_float_type_name(o->ft);
    const char *rope_type = "default";
    double factor = 0.0;
    char theta[64], eps[64], fac[64];

    gm_fmt_float(o->rope_theta, theta);
    gm_fmt_float(o->rms_norm_eps, eps);
    switch (o->rope) {
    case GM_ROPE_NONE: break;
    case GM_ROPE_LINEAR: rope_type = "linear"; factor = 2.0; break;
    case GM_ROPE_DYNAMIC: rope_type = "dynamic"; factor = 2.0; break;
    case GM_ROPE_LLAMA3: rope_type = "llama3"; factor = 8.0; break;
    }
    gm_fmt_float(factor, fac);

    const bool moe = o->experts > 0;
    gm_buf_printf(&b, "{\n  \"architectures\": [\n    \"%s\"\n  ],\n",
                  moe ? "MixtralForCausalLM" : mistral ? "MistralForCausalLM" : "LlamaForCausalLM");
    gm_buf_printf(&b, "  \"attention_bias\": %s,\n",
                  o->attention_bias ? "true" : "false");
    gm_buf_printf(&b, "  \"attention_dropout\": 0.0,\n");
    gm_buf_printf(&b, "  \"bos_token_id\": 1,\n");
    if (hf5)
        gm_buf_printf(&b, "  \"dtype\": \"%s\",\n", dtype);
    gm_buf_printf(&b, "  \"eos_token_id\": 2,\n");
    gm_buf_printf(&b, "  \"head_dim\": %lld,\n", (long long)o->head_dim);
    gm_buf_printf(&b, "  \"hidden_act\": \"silu\",\n");
    gm_buf_printf(&b, "  \"hidden_size\": %lld,\n", (long long)o->hidden);
    gm_buf_printf(&b, "  \"initializer_range\": 0.02,\n");
    gm_buf_printf(&b, "  \"intermediate_size\": %lld,\n",
                  (long long)o->intermediate);
    gm_buf_printf(&b, "  \"max_position_embeddings\": %lld,\n",
                  (long long)o->max_pos);
    gm_buf_printf(&b, "  \"mlp_bias\": false,\n");
    gm_buf_printf(&b, "  \"model_type\": \"%s\",\n",
                  moe ? "mixtral" : mistral ? "mistral" : "llama");
    gm_buf_printf(&b, "  \"num_attention_heads\": %lld,\n",
                  (long long)o->heads);
    gm_buf_printf(&b, "  \"num_hidden_layers\": %lld,\n",
                  (long long)o->layers);
    if (moe)
        gm_buf_printf(&b, "  \"num_experts_per_tok\": %lld,\n", (long long)o->top_k);
    gm_buf_printf(&b, "  \"num_key_value_heads\": %lld,\n",
                  (long long)o->kv_heads);
    if (moe)
        gm_buf_printf(&b, "  \"num_local_experts\": %lld,\n"
                      "  \"output_router_logits\": false,\n"
                      "  \"router_aux_loss_coef\": 0.02,\n", (long long)o->experts);
    if (hf5)
        gm_buf_printf(&b, "  \"pad_token_id\": null,\n");
    gm_buf_printf(&b, "  \"pretraining_tp\": 1,\n");
    gm_buf_printf(&b, "  \"rms_norm_eps\": %s,\n", eps);
    if (hf5) {
        gm_buf_printf(&b, "  \"rope_parameters\": {\n");
        if (o->rope != GM_ROPE_NONE)
            gm_buf_printf(&b, "    \"factor\": %s,\n", fac);
        if (o->rope == GM_ROPE_LLAMA3)
            gm_buf_printf(&b, "    \"high_freq_factor\": 4.0,\n"
                          "    \"low_freq_factor\": 1.0,\n"
                          "    \"original_max_position_embeddings\": 8192,\n");
        gm_buf_printf(&b, "    \"rope_theta\": %s,\n", theta);
        gm_buf_printf(&b, "    \"rope_type\": \"%s\"\n  },\n", rope_type);
    } else {
        switch (o->rope) {
        case GM_ROPE_NONE:
            gm_buf_printf(&b, "  \"rope_scaling\": null,\n");
            break;
        case GM_ROPE_LINEAR:
        case GM_ROPE_DYNAMIC:
            gm_buf_printf(&b, "  \"rope_scaling\": {\n    \"factor\": %s,\n"
                          "    \"type\": \"%s\"\n  },\n", fac, rope_type);
            break;
        case GM_ROPE_LLAMA3:
            gm_buf_printf(&b, "  \"rope_scaling\": {\n    \"factor\": %s,\n"
                          "    \"high_freq_factor\": 4.0,\n"
                          "    \"low_freq_factor\": 1.0,\n"
                          "    \"original_max_position_embeddings\": 8192,\n"
                          "    \"rope_type\": \"llama3\"\n  },\n", fac);
            break;
        }
        gm_buf_printf(&b, "  \"rope_theta\": %s,\n", theta);
    }
    if (mistral || moe)
        gm_buf_printf(&b, "  \"sliding_window\": null,\n");
    gm_buf_printf(&b, "  \"tie_word_embeddings\": %s,\n",
                  o->tied ? "true" : "false");
    if (!hf5)
        gm_buf_printf(&b, "  \"torch_dtype\": \"%s\",\n", dtype);
    gm_buf_printf(&b, "  \"transformers_version\": \"%s\",\n",
                  hf5 ? "5.17.0" : "4.46.3");
    gm_buf_printf(&b, "  \"use_cache\": true,\n");
    gm_buf_printf(&b, "  \"vocab_size\": %lld\n}\n", (long long)o->vocab);
    if (b.oom) {
        st = tc_fail(TC_E_INTERNAL, "%s: out of memory", path);
        goto done;
    }
    st = gm_write_text(path, b.p);
done:
    free(b.p);
    return st;
}

static int gm_cmp_tensor_ptr(const void *a, const void *b)
{
    const struct gm_tensor *x = *(const struct gm_tensor *const *)a;
    const struct gm_tensor *y = *(const struct gm_tensor *const *)b;
    return strcmp(x->name, y->name);
}

tc_status gm_write_index(const struct gm_model *m,
                                char (*fnames)[64], const char *path)
{
    struct gm_buf b = { NULL, 0, 0, 0 };
    const struct gm_tensor **sorted = NULL;
    tc_status st = TC_OK;
    size_t i;

    sorted = malloc(m->n * sizeof *sorted);
    if (!sorted) {
        st = tc_fail(TC_E_INTERNAL, "%s: out of memory", path);
        goto done;
    }
    for (i = 0; i < m->n; i++)
        sorted[i] = &m->t[i];
    qsort(sorted, m->n, sizeof *sorted, gm_cmp_tensor_ptr);
    gm_buf_printf(&b, "{\n  \"metadata\": {\n    \"total_size\": %llu\n  },\n"
                  "  \"weight_map\": {\n",
                  (unsigned long long)m->total_bytes);
    for (i = 0; i < m->n; i++)
        gm_buf_printf(&b, "    \"%s\": \"%s\"%s\n", sorted[i]->name,
                      fnames[sorted[i]->shard], i + 1 < m->n ? "," : "");
    gm_buf_printf(&b, "  }\n}\n");
    if (b.oom) {
        st = tc_fail(TC_E_INTERNAL, "%s: out of memory", path);
        goto done;
    }
    st = gm_write_text(path, b.p);
done:
    free(b.p);
    free(sorted);
    return st;
}

/* ------------------------------------------------------------------ */
/* Parallel fill of one safetensors file                                */

struct gm_job {
    const struct gm_tensor **spec;   /* [nt], file order */
    const tc_st_out_tensor *st;      /* [nt], file order */
    size_t nt;
    uint64_t *chunk_start;           /* [nt + 1], prefix sums of chunks */
    uint64_t elems_per_chunk;
    tc_float_type ft;
    int fd;
    const char *path;
    atomic_uint_fast64_t next;
    atomic_int failed;
};

struct gm_worker {
    pthread_t tid;
    struct gm_job *job;
    tc_status st;
};

static void *gm_worker_main(void *arg)
{
    struct gm_worker *w = arg;
    struct gm_job *j = w->job;
    uint64_t nchunks = j->chunk_start[j->nt];
    unsigned esize = tc_dtype_bits(tc_float_type_dtype(j->ft)) / 8;
    unsigned char *buf = malloc(GM_CHUNK_BYTES);
    unsigned char *scratch = malloc(GM_SCRATCH_ELEMS * 4);

    w->st = TC_OK;
    if (!buf || !scratch) {
        free(buf);
        free(scratch);
        w->st = tc_fail(TC_E_INTERNAL, "out of memory (chunk buffer)");
        atomic_store(&j->failed, 1);
        return NULL;
    }
    while (!atomic_load(&j->failed)) {
        uint64_t c = atomic_fetch_add(&j->next, 1);
        size_t lo = 0, hi = j->nt, ti;
        uint64_t e0, n;
        const struct gm_tensor *t;

        if (c >= nchunks)
            break;
        /* Largest ti with chunk_start[ti] <= c. */
        while (hi - lo > 1) {
            size_t mid = lo + (hi - lo) / 2;
            if (j->chunk_start[mid] <= c)
                lo = mid;
            else
                hi = mid;
        }
        ti = lo;
        t = j->spec[ti];
        e0 = (c - j->chunk_start[ti]) * j->elems_per_chunk;
        n = t->nelem - e0;
        if (n > j->elems_per_chunk)
            n = j->elems_per_chunk;
        gm_fill(t, j->ft, e0, (size_t)n, buf, scratch);
        w->st = tc_pwrite_all(j->fd, j->path, buf, (size_t)n * esize, j->st[ti].file_offset + e0 * esize);
        if (w->st != TC_OK) {
            atomic_store(&j->failed, 1);
            break;
        }
    }
    free(scratch);
    free(buf);
    return NULL;
}

/* Size the file up front: real allocation where the file system has it
 * (early ENOSPC), else a sparse ftruncate. */
static tc_status gm_size_file(int fd, uint64_t size, const char *path)
{
    int r = fallocate(fd, 0, 0, (off_t)size);
    if (r != 0) {
        if (errno == ENOSPC || errno == EFBIG)
            return tc_fail(TC_E_IO, "%s: cannot allocate %llu bytes: %s",
                           path, (unsigned long long)size, strerror(errno));
        if (ftruncate(fd, (off_t)size) != 0)
            return tc_fail(TC_E_IO, "%s: ftruncate to %llu bytes: %s", path,
                           (unsigned long long)size, strerror(errno));
    }
    return TC_OK;
}

tc_status gm_write_shard(const struct gm_opts *o, struct gm_model *m,
                                int shard, const char *path,
                                size_t *ntensors, uint64_t *fbytes)
{
    tc_status st = TC_OK;
    tc_st_out_tensor *ot = NULL;
    const struct gm_tensor **spec = NULL;
    struct gm_worker *w = NULL;
    struct gm_job job;
    char *prefix = NULL;
    size_t prefix_len = 0, nt = 0, i, k, nstarted = 0;
    uint64_t fsize = 0;
    unsigned esize = tc_dtype_bits(tc_float_type_dtype(o->ft)) / 8;
    int fd = -1;

    memset(&job, 0, sizeof job);
    nt = m->first[shard + 1] - m->first[shard];
    ot = calloc(nt, sizeof *ot);
    spec = calloc(nt, sizeof *spec);
    job.chunk_start = calloc(nt + 1, sizeof *job.chunk_start);
    w = calloc((size_t)o->threads, sizeof *w);
    if (!ot || !spec || !job.chunk_start || !w) {
        st = tc_fail(TC_E_INTERNAL, "%s: out of memory", path);
        goto done;
    }
    for (k = 0; k < nt; k++) {
        const struct gm_tensor *t = &m->t[m->first[shard] + k];
        ot[k].name = t->name;
        ot[k].dtype = tc_float_type_dtype(o->ft);
        ot[k].ndim = t->ndim;
        ot[k].shape[0] = t->shape[0];
        ot[k].shape[1] = t->shape[1];
    }
    st = tc_st_layout(ot, nt, &prefix, &prefix_len, &fsize);
    if (st != TC_OK)
        goto done;
    /* Map the sorted entries back to their specs: each name points at the
     * name member of an element of m->t. */
    for (k = 0; k < nt; k++) {
        size_t at = (size_t)(ot[k].name - (const char *)m->t);
        i = at / sizeof *m->t;
        if (ot[k].name < (const char *)m->t || i >= m->n ||
            ot[k].name != m->t[i].name) {
            st = tc_fail(TC_E_INTERNAL, "%s: lost tensor %s", path,
                         ot[k].name);
            goto done;
        }
        spec[k] = &m->t[i];
        if (ot[k].nbytes != spec[k]->nbytes) {
            st = tc_fail(TC_E_INTERNAL, "%s: %s: layout says %llu bytes, "
                         "expected %llu", path, ot[k].name,
                         (unsigned long long)ot[k].nbytes,
                         (unsigned long long)spec[k]->nbytes);
            goto done;
        }
    }

    job.spec = spec;
    job.st = ot;
    job.nt = nt;
    job.elems_per_chunk = GM_CHUNK_BYTES / esize;
    job.ft = o->ft;
    job.path = path;
    atomic_init(&job.next, 0);
    atomic_init(&job.failed, 0);
    for (k = 0; k < nt; k++)
        job.chunk_start[k + 1] = job.chunk_start[k] +
            (spec[k]->nelem + job.elems_per_chunk - 1) / job.elems_per_chunk;

    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        st = tc_fail(TC_E_IO, "%s: open: %s", path, strerror(errno));
        goto done;
    }
    job.fd = fd;
    st = gm_size_file(fd, fsize, path);
    if (st != TC_OK)
        goto done;
    st = tc_pwrite_all(fd, path, prefix, prefix_len, 0);
    if (st != TC_OK)
        goto done;

    /* Worker 0 is this thread; start the others. */
    for (k = 0; k < (size_t)o->threads; k++)
        w[k].job = &job;
    for (k = 1; k < (size_t)o->threads; k++) {
        if (job.chunk_start[nt] <= k)
            break;
        if (pthread_create(&w[k].tid, NULL, gm_worker_main, &w[k]) != 0) {
            st = tc_fail(TC_E_INTERNAL, "%s: pthread_create failed", path);
            atomic_store(&job.failed, 1);
            break;
        }
        nstarted = k;
    }
    gm_worker_main(&w[0]);
    for (k = 1; k <= nstarted; k++)
        pthread_join(w[k].tid, NULL);
    for (k = 0; k <= nstarted && st == TC_OK; k++)
        if (w[k].st != TC_OK)
            st = w[k].st;
    if (st != TC_OK)
        goto done;

    if ((st = tc_close_file(&fd, path)) != TC_OK)
        goto done;
    *ntensors = nt;
    *fbytes = fsize;
done:
    if (fd >= 0)
        close(fd);
    free(prefix);
    free(w);
    free(job.chunk_start);
    free(spec);
    free(ot);
    return st;
}
