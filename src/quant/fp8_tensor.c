/* fp8_tensor.c: FP8 per-tensor W8A8 (--use_fp8, quant_algo "FP8") as a
 * calibrated method (method.h tc_fp8_tensor_calibrated_ops).
 *
 * Every scale comes from the calibration statistics (calib_stats.h, model
 * form, so every layout and rank count gets the same ones):
 *   activation  max over the linear's input maxima x (q/k/v share the qkv
 *               input, gate/up the MLP input);
 *   weight      max over the linear's row maxima w, taken over the whole
 *               unsplit tensor (every tp rank gets the same scale); shared
 *               across the fused QKV (ModelOpt QKVConfig.weights_scaling_factor:
 *               the max of q, k, v) and across gate/up (ModelOpt
 *               preprocess_linear_fusion; TensorRT-LLM v0.12 fuse_gate_mlp
 *               requantizes with the max at build time anyway);
 * each through tc_fp8_tensor_scale. Stacked experts (Mixtral, docs/moe.md)
 * get one weight scale per expert ([E_l, 1], from that expert's maxima)
 * and one activation scale over all experts. The statistics must come from
 * a forward pass in the output dtype: then w is the maximum of exactly the
 * values that are quantized. The weights themselves are quantized by the
 * conversion workers (plan flag fp8_tensor; kernels/fp8.cu on a GPU rank),
 * so this method computes nothing itself: its plan step rewrites the
 * linears and adds the scales as constants. Sources: docs/fp8.md. */
#include "trtconv/quant/method.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "trtconv/core/log.h"
#include "trtconv/quant/fp8.h"

typedef struct fp8_tensor_job {
    tc_quant_ctx ctx;
    bool kv_calibrated;
} fp8_tensor_job;

/* The linears of a layer as TensorRT-LLM names them (`<prefix>.weight`) and
 * the Hugging Face linears their scales are the maxima of: the fused group,
 * the same for the weight and the activation scale (q/k/v share one input,
 * gate/up another). */
static const struct {
    const char *prefix;
    tc_linear group[3];
    int n;
} linears[] = {
    { "attention.qkv", { TC_LIN_Q, TC_LIN_K, TC_LIN_V }, 3 },
    { "attention.dense", { TC_LIN_O }, 1 },
    { "mlp.fc", { TC_LIN_GATE, TC_LIN_UP }, 2 },
    { "mlp.gate", { TC_LIN_GATE, TC_LIN_UP }, 2 },
    { "mlp.proj", { TC_LIN_DOWN }, 1 },
};

static float stat_max(const tc_calib_stats *s, int64_t layer, const tc_linear *lin, int n,
                      tc_stat_kind k)
{
    float m = 0.0f;
    for (int i = 0; i < n; i++) {
        int64_t len = 0;
        const float *v = tc_calib_get(s, layer, lin[i], k, &len);
        for (int64_t j = 0; j < len; j++)
            m = fmaxf(m, v[j]);
    }
    return m;
}

/* The maximum over one expert's share of stacked MLP statistics. */
static float expert_max(const tc_calib_stats *s, int64_t layer, const tc_linear *lin, int n,
                        tc_stat_kind k, int64_t expert)
{
    float m = 0.0f;
    for (int i = 0; i < n; i++) {
        const int64_t len = k == TC_STAT_X ? tc_calib_in_dim(&s->d, lin[i])
                                           : tc_calib_out_dim(&s->d, lin[i]);
        const float *v = tc_calib_get(s, layer, lin[i], k, NULL) + expert * len;
        for (int64_t j = 0; j < len; j++)
            m = fmaxf(m, v[j]);
    }
    return m;
}

float tc_fp8_kv_calibrated_scale(const tc_calib_stats *s, int64_t layer)
{
    /* The largest |k| and |v| over E4M3's largest value, in float32 as
     * m * (1.0f / 448.0f); 1.0 if both maxima are zero. */
    static const tc_linear kv[2] = { TC_LIN_K, TC_LIN_V };
    const float m = stat_max(s, layer, kv, 2, TC_STAT_Y);
    return m > 0.0f ? m * (1.0f / TC_FP8_E4M3_MAX) : 1.0f;
}

float tc_fp8_tensor_weight_scale(const tc_calib_stats *s, int64_t layer, int which)
{
    return tc_fp8_tensor_scale(stat_max(s, layer, linears[which].group, linears[which].n,
                                        TC_STAT_W));
}

float tc_fp8_tensor_act_scale(const tc_calib_stats *s, int64_t layer, int which)
{
    return tc_fp8_tensor_scale(stat_max(s, layer, linears[which].group, linears[which].n,
                                        TC_STAT_X));
}

/* The statistics' forward dtype, written as trtconv names it ("F16") or as
 * an imported file does ("float16"), is dt. */
static bool forward_dtype_is(const char *name, tc_dtype dt)
{
    tc_float_type ft;
    return !strcmp(name, tc_dtype_name(dt)) ||
           (tc_float_type_parse(name, &ft) == 0 && tc_float_type_dtype(ft) == dt);
}

static tc_status create(const tc_quant_ctx *ctx, tc_fwd_engine *calibrated, void **out)
{
    /* The weights are read again by the conversion workers: the engine is
     * not needed once the statistics exist. */
    tc_fwd_destroy(calibrated);
    *out = NULL;
    if (ctx->stats->forward_dtype[0] && !forward_dtype_is(ctx->stats->forward_dtype, ctx->out_dtype))
        return tc_fail(TC_E_USAGE, "--use_fp8 takes each weight's maximum from the calibration "
                       "statistics, which were computed with a %s forward pass, but this "
                       "conversion quantizes %s weights: calibrate for this --dtype (drop "
                       "--calib_stats; --calib_stats_out FILE keeps the new statistics)",
                       ctx->stats->forward_dtype, tc_dtype_name(ctx->out_dtype));
    fp8_tensor_job *j = calloc(1, sizeof *j);
    if (!j)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    j->ctx = *ctx;
    j->kv_calibrated = (ctx->q->kv->calib & TC_CALIB_KV) && !strcmp(ctx->q->kv->config_algo, "FP8");
    *out = j;
    return TC_OK;
}

static tc_status prepare(void *job, const int *cells, size_t n_cells)
{
    (void)job; (void)cells; (void)n_cells;
    return TC_OK;
}

/* "transformer.layers.<local>.<rest>": the global layer and rest, or -1. */
static int64_t split_name(const tc_plan *p, const char *name, const char **rest)
{
    long long local;
    int used = 0;
    if (sscanf(name, "transformer.layers.%lld.%n", &local, &used) != 1 || used == 0)
        return -1;
    *rest = name + used;
    return p->layer0 + local;
}

/* Stacked experts (Mixtral): weights_scaling_factor [E_l, 1], expert e's
 * scale from its own weight maximum (over w1 and w3 for fc: ModelOpt
 * build_stacked_experts fuses each expert's w1/w3 with
 * preprocess_linear_fusion, then stacks the per-expert scales); the
 * activation scale is one for all experts (the maximum over them: "The moe
 * plugin only supports a single activation scaling factor"). */
static tc_status add_expert_scales(tc_plan *p, size_t i, const char *name,
                                   const tc_calib_stats *s, int64_t g, int which)
{
    const tc_plan_tensor *t = &p->tensors[i];
    const int64_t E_l = t->shape[0];
    if (s->d.experts <= 1 || t->expert0 < 0 || t->expert0 + E_l > s->d.experts)
        return tc_fail(TC_E_INTERNAL, "%s: experts %lld..%lld without their statistics", t->name,
                       (long long)t->expert0, (long long)(t->expert0 + E_l));
    float *ws = malloc((size_t)E_l * sizeof *ws);
    if (!ws)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    for (int64_t j = 0; j < E_l; j++)
        ws[j] = tc_fp8_tensor_scale(expert_max(s, g, linears[which].group, linears[which].n,
                                               TC_STAT_W, t->expert0 + j));
    tc_status st = tc_plan_add_constant(p, name, E_l, 1, ws, E_l);
    free(ws);
    if (st == TC_OK)
        p->tensors[i].fp8_expert_scales = p->tensors[p->n_tensors - 1].constant_values;
    return st;
}

static tc_status plan(void *job, tc_plan *p)
{
    const fp8_tensor_job *j = job;
    const tc_calib_stats *s = j->ctx.stats;
    const size_t n = p->n_tensors;
    for (size_t i = 0; i < n; i++) {
        tc_plan_tensor *t = &p->tensors[i];
        const char *rest = NULL;
        const int64_t g = split_name(p, t->name, &rest);
        if (g < 0 || !t->linear)
            continue;
        int which = -1;
        for (int k = 0; k < (int)(sizeof linears / sizeof linears[0]); k++) {
            const size_t pl = strlen(linears[k].prefix);
            if (!strncmp(rest, linears[k].prefix, pl) && !strcmp(rest + pl, ".weight"))
                which = k;
        }
        if (which < 0)
            continue;
        if (t->slice_dtype != TC_DT_F16 && t->slice_dtype != TC_DT_BF16 &&
            t->slice_dtype != TC_DT_F32)
            return tc_fail(TC_E_INPUT, "%s: FP8 per tensor quantizes float weights, not %s",
                           t->name, tc_dtype_name(t->slice_dtype));
        const float ws = tc_fp8_tensor_weight_scale(s, g, which);
        const float as = tc_fp8_tensor_act_scale(s, g, which);
        t->dtype = TC_DT_F8_E4M3;
        t->fp8_tensor = true;
        t->fp8_scale = ws;
        char name[sizeof t->name];
        const long long local = g - p->layer0;
        snprintf(name, sizeof name, "transformer.layers.%lld.%s.weights_scaling_factor", local,
                 linears[which].prefix);
        if (t->expert_rows > 0) {
            TC_TRY(add_expert_scales(p, i, name, s, g, which));
            t = &p->tensors[i]; /* the array may have moved */
        } else {
            TC_TRY(tc_plan_add_constant(p, name, 1, 0, &ws, 1));
        }
        snprintf(name, sizeof name, "transformer.layers.%lld.%s.activation_scaling_factor", local,
                 linears[which].prefix);
        TC_TRY(tc_plan_add_constant(p, name, 1, 0, &as, 1));
        if (j->kv_calibrated && which == 0) {
            const float kvs = tc_fp8_kv_calibrated_scale(s, g);
            snprintf(name, sizeof name, "transformer.layers.%lld.attention.kv_cache_scaling_factor",
                     local);
            TC_TRY(tc_plan_add_constant(p, name, 1, 0, &kvs, 1));
        }
    }
    tc_plan_recount(p);
    return TC_OK;
}

static tc_status write_cells(void *job, const int *cells, size_t n_cells, tc_cell_output *outs)
{
    (void)job; (void)cells; (void)n_cells; (void)outs;
    return TC_OK; /* every tensor is the conversion workers' */
}

static void destroy(void *job)
{
    free(job);
}

const tc_calibrated_ops tc_fp8_tensor_calibrated_ops = {
    .create = create, .prepare = prepare, .plan = plan, .write = write_cells, .destroy = destroy,
};
