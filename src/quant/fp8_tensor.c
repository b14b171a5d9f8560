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

/* Which linear of the table a layer tensor's rest of name belongs to, with
 * the suffix after the prefix ("weight", "weights_scaling_factor", ...);
 * -1 for none. */
static int linear_of(const char *rest, const char **suffix)
{
    for (int k = 0; k < (int)(sizeof linears / sizeof linears[0]); k++) {
        const size_t pl = strlen(linears[k].prefix);
        if (!strncmp(rest, linears[k].prefix, pl) && rest[pl] == '.') {
            *suffix = rest + pl + 1;
            return k;
        }
    }
    return -1;
}

/* Every value of global layer g in the plan from the statistics: the
 * weights' scales and the scale constants, which plan() marked gated on g.
 * Called by plan() and again (refresh_layer) when the overlapped
 * calibration has finished layer g. Stacked experts (Mixtral):
 * weights_scaling_factor [E_l, 1], expert e's scale from its own weight
 * maximum (over w1 and w3 for fc: ModelOpt build_stacked_experts fuses each
 * expert's w1/w3 with preprocess_linear_fusion, then stacks the per-expert
 * scales); the activation scale is one for all experts (the maximum over
 * them: "The moe plugin only supports a single activation scaling factor").
 */
static tc_status fill_layer(void *job, tc_plan *p, int64_t g)
{
    const fp8_tensor_job *j = job;
    const tc_calib_stats *s = j->ctx.stats;
    char name[sizeof p->tensors[0].name];
    for (size_t i = 0; i < p->n_tensors; i++) {
        tc_plan_tensor *t = &p->tensors[i];
        const char *rest = NULL, *suffix = NULL;
        if (!t->gated || split_name(p, t->name, &rest) != g)
            continue;
        const int which = linear_of(rest, &suffix);
        if (which >= 0 && !strcmp(suffix, "weight")) {
            t->fp8_scale = tc_fp8_tensor_weight_scale(s, g, which);
        } else if (which >= 0 && !strcmp(suffix, "weights_scaling_factor") && t->ndim == 2) {
            snprintf(name, sizeof name, "%.*sweight", (int)(suffix - t->name), t->name);
            const int wi = tc_plan_find(p, name);
            const tc_plan_tensor *w = wi < 0 ? NULL : &p->tensors[wi];
            if (!w || s->d.experts <= 1 || w->expert0 < 0 || w->expert0 + t->n_constant > s->d.experts)
                return tc_fail(TC_E_INTERNAL, "%s: experts without their statistics", t->name);
            for (int64_t e = 0; e < t->n_constant; e++)
                t->constant_values[e] = tc_fp8_tensor_scale(
                    expert_max(s, g, linears[which].group, linears[which].n, TC_STAT_W,
                               w->expert0 + e));
        } else if (which >= 0 && !strcmp(suffix, "weights_scaling_factor")) {
            t->constant_values[0] = tc_fp8_tensor_weight_scale(s, g, which);
        } else if (which >= 0 && !strcmp(suffix, "activation_scaling_factor")) {
            t->constant_values[0] = tc_fp8_tensor_act_scale(s, g, which);
        } else if (!strcmp(rest, "attention.kv_cache_scaling_factor")) {
            t->constant_values[0] = tc_fp8_kv_calibrated_scale(s, g);
        }
    }
    return TC_OK;
}

/* A scale constant of layer g, gated on it (its values: fill_layer). */
static tc_status add_scale(tc_plan *p, int64_t g, const char *rest, int64_t rows, int64_t cols)
{
    char name[sizeof p->tensors[0].name];
    snprintf(name, sizeof name, "transformer.layers.%lld.%s", (long long)(g - p->layer0), rest);
    float *zeros = calloc((size_t)rows, sizeof *zeros);
    if (!zeros)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    tc_status st = tc_plan_add_constant(p, name, rows, cols, zeros, rows);
    free(zeros);
    if (st == TC_OK) {
        p->tensors[p->n_tensors - 1].gated = true;
        p->tensors[p->n_tensors - 1].gate_layer = g;
    }
    return st;
}

static tc_status plan(void *job, tc_plan *p)
{
    const fp8_tensor_job *j = job;
    const size_t n = p->n_tensors;
    char rest_buf[sizeof p->tensors[0].name];
    for (size_t i = 0; i < n; i++) {
        tc_plan_tensor *t = &p->tensors[i];
        const char *rest = NULL, *suffix = NULL;
        const int64_t g = split_name(p, t->name, &rest);
        if (g < 0 || !t->linear)
            continue;
        const int which = linear_of(rest, &suffix);
        if (which < 0 || strcmp(suffix, "weight") != 0)
            continue;
        if (t->slice_dtype != TC_DT_F16 && t->slice_dtype != TC_DT_BF16 &&
            t->slice_dtype != TC_DT_F32)
            return tc_fail(TC_E_INPUT, "%s: FP8 per tensor quantizes float weights, not %s",
                           t->name, tc_dtype_name(t->slice_dtype));
        t->dtype = TC_DT_F8_E4M3;
        t->fp8_tensor = true;
        t->gated = true;
        t->gate_layer = g;
        const bool experts = t->expert_rows > 0;
        const int64_t E_l = experts ? t->shape[0] : 1;
        snprintf(rest_buf, sizeof rest_buf, "%s.weights_scaling_factor", linears[which].prefix);
        TC_TRY(add_scale(p, g, rest_buf, E_l, experts ? 1 : 0));
        if (experts) /* the constant's values, owned by the plan */
            p->tensors[i].fp8_expert_scales = p->tensors[p->n_tensors - 1].constant_values;
        snprintf(rest_buf, sizeof rest_buf, "%s.activation_scaling_factor", linears[which].prefix);
        TC_TRY(add_scale(p, g, rest_buf, 1, 0));
        if (j->kv_calibrated && which == 0)
            TC_TRY(add_scale(p, g, "attention.kv_cache_scaling_factor", 1, 0));
    }
    for (int64_t g = p->layer0; g < p->layers_total; g++) /* the cell's layers and none */
        TC_TRY(fill_layer(job, p, g));
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
    .refresh_layer = fill_layer,
};
