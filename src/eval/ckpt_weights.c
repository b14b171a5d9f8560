/* ckpt_weights.c: see ckpt_weights.h. */
#define _POSIX_C_SOURCE 200809L
#include "trtconv/eval/ckpt_weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "trtconv/core/dtype.h"
#include "trtconv/core/log.h"
#include "trtconv/formats/safetensors.h"
#include "trtconv/quant/woq.h"

struct tc_ckpt_weights {
    tc_st_file *f;
    int bits, sm;
    /* The last weight read back, as float32 [rows, cols]. */
    char cached[128];
    float *cache;
};

tc_status tc_ckpt_weights_open(const char *dir, int rank_file, int weight_only_bits,
                               int target_sm, tc_ckpt_weights **out)
{
    *out = NULL;
    if (weight_only_bits != 0 && weight_only_bits != 8 && weight_only_bits != 4)
        return tc_fail(TC_E_INTERNAL, "weight-only bits %d", weight_only_bits);
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/rank%d.safetensors", dir, rank_file) >= sizeof path)
        return tc_fail(TC_E_USAGE, "%s: path too long", dir);
    tc_ckpt_weights *w = calloc(1, sizeof *w);
    if (!w)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    w->bits = weight_only_bits;
    w->sm = target_sm;
    tc_status st = tc_st_open(path, &w->f, NULL);
    if (st != TC_OK) {
        free(w);
        return st;
    }
    *out = w;
    return TC_OK;
}

void tc_ckpt_weights_close(tc_ckpt_weights *w)
{
    if (!w)
        return;
    tc_st_close(w->f);
    free(w->cache);
    free(w);
}

static bool is_float(tc_dtype dt)
{
    return dt == TC_DT_F16 || dt == TC_DT_BF16 || dt == TC_DT_F32;
}

/* Read back and dequantize weight t (plan [N = rows, K = cols]) into the cache. */
static tc_status dequantize(tc_ckpt_weights *w, const tc_plan_tensor *t, const tc_st_tensor *q)
{
    const int64_t n = t->rows, k = t->cols, bits = w->bits;
    const char *file = w->f->path;
    if (q->ndim != 2 || q->shape[0] != k || q->shape[1] != n * bits / 8)
        return tc_fail(TC_E_INPUT, "%s: %s: a W%lldA16 weight of the [%lld, %lld] linear must be "
                       "I8 [%lld, %lld] (trtllm-checkpoint.md §4.6)", file, t->name,
                       (long long)bits, (long long)n, (long long)k, (long long)k,
                       (long long)(n * bits / 8));
    char sname[160];
    const size_t len = strlen(t->name);
    snprintf(sname, sizeof sname, "%.*s.per_channel_scale", (int)(len - 7), t->name);
    const tc_st_tensor *sc = tc_st_find(w->f, sname);
    if (!sc || sc->nelements != (uint64_t)n || !is_float(sc->dtype))
        return tc_fail(TC_E_INPUT, "%s: %s: a weight-only weight needs %s, [%lld] in a float "
                       "dtype", file, t->name, sname, (long long)n);
    const size_t qbytes = (size_t)(n * k * bits / 8), ses = tc_dtype_bits(sc->dtype) / 8;
    uint8_t *stored = malloc(qbytes);
    int8_t *vals = malloc((size_t)(n * k));
    void *sraw = malloc((size_t)n * ses);
    float *s = malloc((size_t)n * sizeof(float));
    float *cache = malloc((size_t)(n * k) * sizeof(float));
    tc_status st = stored && vals && sraw && s && cache
                       ? TC_OK
                       : tc_fail(TC_E_INTERNAL, "out of memory reading back %s", t->name);
    if (st == TC_OK)
        st = tc_st_read(w->f, q->begin, stored, qbytes);
    if (st == TC_OK)
        st = tc_st_read(w->f, sc->begin, sraw, (size_t)n * ses);
    if (st == TC_OK)
        st = tc_woq_unprocess(stored, n, k, (int)bits, w->sm, vals);
    if (st == TC_OK) {
        tc_convert(s, TC_DT_F32, sraw, sc->dtype, (size_t)n);
        for (int64_t r = 0; r < n; r++)
            for (int64_t c = 0; c < k; c++)
                cache[r * k + c] = (float)vals[r * k + c] * s[r];
        free(w->cache);
        w->cache = cache;
        cache = NULL;
        snprintf(w->cached, sizeof w->cached, "%s", t->name);
    }
    free(stored);
    free(vals);
    free(sraw);
    free(s);
    free(cache);
    return st;
}

static tc_status rows(void *ctx, const tc_plan_tensor *t, int64_t r0, int64_t nr, void *out)
{
    tc_ckpt_weights *w = ctx;
    const char *file = w->f->path;
    const tc_st_tensor *q = tc_st_find(w->f, t->name);
    if (!q)
        return tc_fail(TC_E_INPUT, "%s: no tensor %s, which a checkpoint of this model and "
                       "layout has", file, t->name);
    if (r0 < 0 || nr < 0 || r0 + nr > t->rows)
        return tc_fail(TC_E_INTERNAL, "%s: rows [%lld, %lld) of %lld", t->name, (long long)r0,
                       (long long)(r0 + nr), (long long)t->rows);
    const size_t elems = (size_t)nr * (size_t)t->cols;
    if (is_float(q->dtype)) {
        if (q->nelements != (uint64_t)t->rows * (uint64_t)t->cols)
            return tc_fail(TC_E_INPUT, "%s: %s has %llu elements, the model needs [%lld, %lld]",
                           file, t->name, (unsigned long long)q->nelements, (long long)t->rows,
                           (long long)t->cols);
        const size_t es = tc_dtype_bits(q->dtype) / 8;
        const uint64_t off = q->begin + (uint64_t)r0 * (uint64_t)t->cols * es;
        if (q->dtype == t->slice_dtype)
            return tc_st_read(w->f, off, out, elems * es);
        void *tmp = malloc(elems * es + 1);
        if (!tmp)
            return tc_fail(TC_E_INTERNAL, "out of memory reading %s", t->name);
        tc_status st = tc_st_read(w->f, off, tmp, elems * es);
        if (st == TC_OK)
            tc_convert(out, t->slice_dtype, tmp, q->dtype, elems);
        free(tmp);
        return st;
    }
    const size_t len = strlen(t->name);
    const bool weight = len > 7 && !strcmp(t->name + len - 7, ".weight");
    if (q->dtype != TC_DT_I8 || !w->bits || !weight || t->expert_rows > 0)
        return tc_fail(TC_E_INPUT, "%s: %s is stored as %s: trtconv eval reads float tensors "
                       "and weight-only (W8A16, W4A16, with the plugin) weights, not this "
                       "checkpoint's quantization yet (docs/eval.md)", file, t->name,
                       tc_dtype_name(q->dtype));
    if (strcmp(w->cached, t->name) != 0)
        TC_TRY(dequantize(w, t, q));
    const float *src = w->cache + (size_t)r0 * (size_t)t->cols;
    tc_convert(out, t->slice_dtype, src, TC_DT_F32, elems);
    return TC_OK;
}

void tc_ckpt_weights_source(tc_ckpt_weights *w, tc_fwd_weight_source *src)
{
    src->rows = rows;
    src->ctx = w;
}
