/* ckpt_weights.c: see ckpt_weights.h. */
#define _POSIX_C_SOURCE 200809L
#include "trtconv/eval/ckpt_weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "trtconv/core/dtype.h"
#include "trtconv/core/log.h"
#include "trtconv/formats/safetensors.h"
#include "trtconv/fwd/fake_quant.h"
#include "trtconv/quant/woq.h"

struct tc_ckpt_weights {
    tc_st_file *f;
    int bits, sm;
    tc_ckpt_quant q;
    /* The last weight read back, as float32 [rows, cols]. */
    char cached[128];
    float *cache;
    /* The scales of the last linear described (linear_quant). */
    float *col, *smoother;
};

tc_status tc_ckpt_weights_open(const char *dir, int rank_file, const tc_ckpt_quant *q,
                               tc_ckpt_weights **out)
{
    *out = NULL;
    const int weight_only_bits = q->woq_bits, target_sm = q->target_sm;
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
    w->q = *q;
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
    free(w->col);
    free(w->smoother);
    free(w);
}

static bool is_float(tc_dtype dt)
{
    return dt == TC_DT_F16 || dt == TC_DT_BF16 || dt == TC_DT_F32;
}

/* Read back and dequantize weight t (plan [N = rows, K = cols]) into the
 * cache. Stacked experts (t->expert_rows) are stored [E, K, n * bits / 8]
 * with per_channel_scale [E, n], n = expert_rows, each expert in SM 80's
 * layout when the target is SM 90 (woq_plan.c, as TensorRT-LLM v0.12). */
static tc_status dequantize(tc_ckpt_weights *w, const tc_plan_tensor *t, const tc_st_tensor *q)
{
    const int64_t E = t->expert_rows > 0 ? t->rows / t->expert_rows : 1;
    const int64_t n = t->expert_rows > 0 ? t->expert_rows : t->rows, k = t->cols, bits = w->bits;
    const int sm = t->expert_rows > 0 && w->sm == 90 ? 80 : w->sm;
    const char *file = w->f->path;
    const bool shape_ok = t->expert_rows > 0
                              ? q->ndim == 3 && q->shape[0] == E && q->shape[1] == k &&
                                    q->shape[2] == n * bits / 8
                              : q->ndim == 2 && q->shape[0] == k && q->shape[1] == n * bits / 8;
    if (!shape_ok)
        return tc_fail(TC_E_INPUT, "%s: %s: a W%lldA16 weight of %lld [%lld, %lld] linear(s) must "
                       "be I8 [%s%lld, %lld] (trtllm-checkpoint.md §4.6)", file, t->name,
                       (long long)bits, (long long)E, (long long)n, (long long)k,
                       t->expert_rows > 0 ? "experts, " : "", (long long)k,
                       (long long)(n * bits / 8));
    char sname[160];
    const size_t len = strlen(t->name);
    snprintf(sname, sizeof sname, "%.*s.per_channel_scale", (int)(len - 7), t->name);
    const tc_st_tensor *sc = tc_st_find(w->f, sname);
    if (!sc || sc->nelements != (uint64_t)(E * n) || !is_float(sc->dtype))
        return tc_fail(TC_E_INPUT, "%s: %s: a weight-only weight needs %s, %lld values in a "
                       "float dtype", file, t->name, sname, (long long)(E * n));
    const size_t qbytes = (size_t)(n * k * bits / 8), ses = tc_dtype_bits(sc->dtype) / 8;
    uint8_t *stored = malloc(qbytes);
    int8_t *vals = malloc((size_t)(n * k));
    void *sraw = malloc((size_t)(E * n) * ses);
    float *s = malloc((size_t)(E * n) * sizeof(float));
    float *cache = malloc((size_t)(E * n * k) * sizeof(float));
    tc_status st = stored && vals && sraw && s && cache
                       ? TC_OK
                       : tc_fail(TC_E_INTERNAL, "out of memory reading back %s", t->name);
    if (st == TC_OK)
        st = tc_st_read(w->f, sc->begin, sraw, (size_t)(E * n) * ses);
    if (st == TC_OK)
        tc_convert(s, TC_DT_F32, sraw, sc->dtype, (size_t)(E * n));
    for (int64_t e = 0; st == TC_OK && e < E; e++) {
        st = tc_st_read(w->f, q->begin + (uint64_t)e * qbytes, stored, qbytes);
        if (st == TC_OK)
            st = tc_woq_unprocess(stored, n, k, (int)bits, sm, vals);
        for (int64_t r = 0; st == TC_OK && r < n; r++)
            for (int64_t c = 0; c < k; c++)
                cache[(e * n + r) * k + c] = (float)vals[r * k + c] * s[e * n + r];
    }
    if (st == TC_OK) {
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

/* --disable_weight_only_quant_plugin: weight t stored unquantized and
 * transposed, [K, N] in a float dtype, next to its per_channel_scale [N];
 * the engine quantizes it at build (weight_only_quant_matmul without the
 * plugin: quantize(w, s, 'int8', axis=1), then dequantize): the cache gets
 * clamp(rne(w / s), -128, 127) * s, [N, K]. */
static tc_status requantize_transposed(tc_ckpt_weights *w, const tc_plan_tensor *t,
                                       const tc_st_tensor *q, const tc_st_tensor *sc)
{
    const int64_t n = t->rows, k = t->cols;
    if (q->ndim != 2 || q->shape[0] != k || q->shape[1] != n)
        return tc_fail(TC_E_INPUT, "%s: %s: stored without the weight-only plugin it must be "
                       "[%lld, %lld] (transposed)", w->f->path, t->name, (long long)k,
                       (long long)n);
    if (sc->nelements != (uint64_t)n)
        return tc_fail(TC_E_INPUT, "%s: %s's per_channel_scale must hold %lld values",
                       w->f->path, t->name, (long long)n);
    const size_t es = tc_dtype_bits(q->dtype) / 8, ses = tc_dtype_bits(sc->dtype) / 8;
    void *raw = malloc((size_t)(n * k) * es + 1), *sraw = malloc((size_t)n * ses + 1);
    float *wt = malloc((size_t)(n * k) * sizeof(float) + 1), *s = malloc((size_t)n * 4 + 1);
    float *cache = malloc((size_t)(n * k) * sizeof(float) + 1);
    tc_status st = raw && sraw && wt && s && cache
                       ? TC_OK
                       : tc_fail(TC_E_INTERNAL, "out of memory reading back %s", t->name);
    if (st == TC_OK)
        st = tc_st_read(w->f, q->begin, raw, (size_t)(n * k) * es);
    if (st == TC_OK)
        st = tc_st_read(w->f, sc->begin, sraw, (size_t)n * ses);
    if (st == TC_OK) {
        tc_convert(wt, TC_DT_F32, raw, q->dtype, (size_t)(n * k));
        tc_convert(s, TC_DT_F32, sraw, sc->dtype, (size_t)n);
        for (int64_t r = 0; r < n; r++)
            for (int64_t c = 0; c < k; c++)
                cache[r * k + c] = tc_fq_int8(wt[c * n + r] / s[r]) * s[r];
        free(w->cache);
        w->cache = cache;
        cache = NULL;
        snprintf(w->cached, sizeof w->cached, "%s", t->name);
    }
    free(raw), free(sraw), free(wt), free(s), free(cache);
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
    const size_t nlen = strlen(t->name);
    if (t->expert_rows > 0 && w->q.woq_no_plugin)
        return tc_fail(TC_E_INPUT, "%s: %s: weight-only experts stored without the plugin have "
                       "no engine to emulate: TensorRT-LLM v0.12's MoE layer takes them only as "
                       "int8 in the MoE plugin's layout (docs/moe.md)", file, t->name);
    if (w->q.woq_no_plugin && is_float(q->dtype) && nlen > 7 &&
        !strcmp(t->name + nlen - 7, ".weight")) {
        char sname[160];
        snprintf(sname, sizeof sname, "%.*s.per_channel_scale", (int)(nlen - 7), t->name);
        const tc_st_tensor *sc = tc_st_find(w->f, sname);
        if (sc && is_float(sc->dtype)) {
            if (strcmp(w->cached, t->name) != 0)
                TC_TRY(requantize_transposed(w, t, q, sc));
            tc_convert(out, t->slice_dtype, w->cache + (size_t)r0 * (size_t)t->cols, TC_DT_F32,
                       elems);
            return TC_OK;
        }
    }
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
    /* SmoothQuant's I8 and FP8's E4M3 weights: their values, [N, K]. */
    /* (FP8 experts too: stored [E_l, rows per expert, K].) */
    const bool q_vals = weight && ((w->q.act == TC_FQ_INT8 && q->dtype == TC_DT_I8 &&
                                    t->expert_rows == 0) ||
                                   (w->q.act == TC_FQ_FP8 && q->dtype == TC_DT_F8_E4M3));
    if (q_vals) {
        const bool shape_ok = t->expert_rows > 0
                                  ? q->ndim == 3 && q->shape[0] * q->shape[1] == t->rows &&
                                        q->shape[1] == t->expert_rows && q->shape[2] == t->cols
                                  : q->ndim == 2 && q->shape[0] == t->rows && q->shape[1] == t->cols;
        if (!shape_ok)
            return tc_fail(TC_E_INPUT, "%s: %s must be %s [%s%lld, %lld] (trtllm-checkpoint.md)",
                           file, t->name, tc_dtype_name(q->dtype),
                           t->expert_rows > 0 ? "experts, " : "",
                           (long long)(t->expert_rows > 0 ? t->expert_rows : t->rows),
                           (long long)t->cols);
        uint8_t *raw = malloc(elems + 1);
        float *f = malloc(elems * sizeof(float) + 1);
        tc_status st = raw && f ? TC_OK : tc_fail(TC_E_INTERNAL, "out of memory reading %s",
                                                  t->name);
        if (st == TC_OK)
            st = tc_st_read(w->f, q->begin + (uint64_t)r0 * (uint64_t)t->cols, raw, elems);
        for (size_t i = 0; st == TC_OK && i < elems; i++)
            f[i] = q->dtype == TC_DT_I8 ? (float)(int8_t)raw[i] : tc_e4m3fn_to_f32(raw[i]);
        if (st == TC_OK)
            tc_convert(out, t->slice_dtype, f, TC_DT_F32, elems);
        free(raw);
        free(f);
        return st;
    }
    if (t->expert_rows > 0 && (q->dtype != TC_DT_I8 || !w->bits))
        return tc_fail(TC_E_INPUT, "%s: %s is stored as %s: of the quantized experts of a mixture "
                       "of experts eval emulates weight-only ones with the plugin (docs/eval.md)",
                       file, t->name, tc_dtype_name(q->dtype));
    if (q->dtype != TC_DT_I8 || !w->bits || !weight)
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

/* Float tensor `name` with n elements (n_alt, when >= 0, allowed too) as
 * float32 into out (n or n_alt values); *got the count found. */
static tc_status read_f32(tc_ckpt_weights *w, const char *name, int64_t n, int64_t n_alt,
                          float *out, int64_t *got)
{
    const tc_st_tensor *t = tc_st_find(w->f, name);
    if (!t)
        return tc_fail(TC_E_INPUT, "%s: no tensor %s, which this quantization needs",
                       w->f->path, name);
    if (!is_float(t->dtype) ||
        (t->nelements != (uint64_t)n && (n_alt < 0 || t->nelements != (uint64_t)n_alt)))
        return tc_fail(TC_E_INPUT, "%s: %s must hold %lld%s float values", w->f->path, name,
                       (long long)n, n_alt >= 0 ? " (or 1)" : "");
    const size_t es = tc_dtype_bits(t->dtype) / 8, cnt = (size_t)t->nelements;
    void *raw = malloc(cnt * es + 1);
    if (!raw)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    tc_status st = tc_st_read(w->f, t->begin, raw, cnt * es);
    if (st == TC_OK)
        tc_convert(out, TC_DT_F32, raw, t->dtype, cnt);
    free(raw);
    if (got)
        *got = (int64_t)cnt;
    return st;
}

static tc_status read_scalar(tc_ckpt_weights *w, const char *name, float *v)
{
    return read_f32(w, name, 1, -1, v, NULL);
}

/* SmoothQuant's input scale of each linear (the tensor that quantizes its
 * input) and its smoother, by the linear's name within the layer. */
static const struct {
    const char *linear, *input_scale, *smoother;
    bool norm_scale;             /* a norm's scale_to_int: a parameter of the model dtype */
} sq_inputs[] = {
    { "attention.qkv", "input_layernorm.scale_to_int", NULL, true },
    { "attention.dense", "attention.quantization_scaling_factor", "attention.dense.smoother", false },
    { "mlp.fc", "post_layernorm.scale_to_int", NULL, true },
    { "mlp.gate", "post_layernorm.scale_to_int", NULL, true },
    { "mlp.proj", "mlp.quantization_scaling_factor", "mlp.proj.smoother", false },
};

static tc_status linear_quant(void *ctx, const tc_plan_tensor *t, tc_fwd_linear_quant *out)
{
    tc_ckpt_weights *w = ctx;
    memset(out, 0, sizeof *out);
    if (w->q.act == TC_FQ_NONE)
        return TC_OK;
    /* "transformer.layers.L." + linear + ".weight" */
    const char *p = strstr(t->name, "transformer.layers.");
    const char *dot = p ? strchr(p + 19, '.') : NULL;
    const size_t len = strlen(t->name);
    if (!dot || len < 7 || strcmp(t->name + len - 7, ".weight") != 0)
        return tc_fail(TC_E_INTERNAL, "%s: not a layer's weight", t->name);
    char layer[64], lin[96], name[256];
    snprintf(layer, sizeof layer, "%.*s", (int)(dot + 1 - t->name), t->name);
    snprintf(lin, sizeof lin, "%.*s", (int)(len - 7 - (size_t)(dot + 1 - t->name)), dot + 1);
    free(w->col);
    free(w->smoother);
    w->smoother = NULL;
    w->col = malloc((size_t)t->rows * sizeof(float) + 1);
    if (!w->col)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    out->act = w->q.act;
    out->col = w->col;
    if (w->q.rowwise) {
        /* Fp8RowwiseGatedMLP where the weights are FP8: the post-norm input
         * (fc, gate) and the proj input clamped and quantized per token. */
        const tc_st_tensor *q = tc_st_find(w->f, t->name);
        if (!q || q->dtype != TC_DT_F8_E4M3) {
            out->act = TC_FQ_NONE;
            return TC_OK;
        }
        const char *clamp = !strcmp(lin, "mlp.fc") || !strcmp(lin, "mlp.gate")
                                ? "post_layernorm.clamp_val"
                                : !strcmp(lin, "mlp.proj") ? "mlp.clamp_val" : NULL;
        if (!clamp)
            return tc_fail(TC_E_INPUT, "%s: %s is FP8 rowwise: only the MLP is, in TensorRT-LLM's "
                           "recipe (tensorrt_llm/quantization/quantize.py fp8_rowwise_quantize)",
                           w->f->path, t->name);
        out->per_token = true;
        snprintf(name, sizeof name, "%s%s.per_channel_scale", layer, lin);
        TC_TRY(read_f32(w, name, t->rows, -1, w->col, &out->n_col));
        float cv[2];
        snprintf(name, sizeof name, "%s%s", layer, clamp);
        TC_TRY(read_f32(w, name, 2, -1, cv, NULL));
        out->clamp = true;
        out->clamp_lo = cv[0];
        out->clamp_hi = cv[1];
        return TC_OK;
    }
    if (w->q.act == TC_FQ_FP8) {
        /* FP8Linear: quantize(x, activation_scaling_factor cast to the
         * dtype) divides by it; alpha = weights_scaling_factor x
         * activation_scaling_factor. */
        float as, ws;
        snprintf(name, sizeof name, "%s%s.activation_scaling_factor", layer, lin);
        TC_TRY(read_scalar(w, name, &as));
        snprintf(name, sizeof name, "%s%s.weights_scaling_factor", layer, lin);
        out->act_scale = 1.0f / tc_round_to_dtype(t->slice_dtype, as);
        out->row_scale = as;
        if (t->expert_rows > 0) /* [E_l, 1]: one per expert */
            return read_f32(w, name, t->rows / t->expert_rows, -1, w->col, &out->n_col);
        TC_TRY(read_scalar(w, name, &ws));
        out->n_col = 1;
        w->col[0] = ws;
        return TC_OK;
    }
    size_t k = 0;
    while (k < sizeof sq_inputs / sizeof sq_inputs[0] && strcmp(sq_inputs[k].linear, lin) != 0)
        k++;
    if (k == sizeof sq_inputs / sizeof sq_inputs[0])
        return tc_fail(TC_E_INPUT, "%s: SmoothQuant of %s is not emulated", w->f->path, t->name);
    out->per_token = w->q.per_token;
    snprintf(name, sizeof name, "%s%s.per_channel_scale", layer, lin);
    TC_TRY(read_f32(w, name, t->rows, 1, w->col, &out->n_col));
    if (!w->q.per_token) {
        float sx;
        snprintf(name, sizeof name, "%s%s", layer, sq_inputs[k].input_scale);
        TC_TRY(read_scalar(w, name, &sx));
        out->act_scale = sq_inputs[k].norm_scale ? tc_round_to_dtype(t->slice_dtype, sx) : sx;
        snprintf(name, sizeof name, "%s%s.act_scale", layer, lin);
        TC_TRY(read_scalar(w, name, &out->row_scale));
    }
    if (sq_inputs[k].smoother) {
        w->smoother = malloc((size_t)t->cols * sizeof(float) + 1);
        if (!w->smoother)
            return tc_fail(TC_E_INTERNAL, "out of memory");
        snprintf(name, sizeof name, "%s%s", layer, sq_inputs[k].smoother);
        TC_TRY(read_f32(w, name, t->cols, -1, w->smoother, NULL));
        out->smoother = w->smoother;
    }
    return TC_OK;
}

static tc_status kv_quant(void *ctx, int64_t layer, int *kind, float *scale)
{
    tc_ckpt_weights *w = ctx;
    *kind = w->q.kv;
    *scale = 1.0f;
    if (w->q.kv == TC_FQ_NONE)
        return TC_OK;
    char name[128];
    snprintf(name, sizeof name, "transformer.layers.%lld.attention.kv_cache_scaling_factor",
             (long long)layer);
    return read_scalar(w, name, scale);
}

void tc_ckpt_weights_source(tc_ckpt_weights *w, tc_fwd_weight_source *src)
{
    src->rows = rows;
    src->linear_quant = w->q.act != TC_FQ_NONE ? linear_quant : NULL;
    src->kv_quant = w->q.kv != TC_FQ_NONE ? kv_quant : NULL;
    src->ctx = w;
}
