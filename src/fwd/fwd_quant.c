/* fwd_quant.c: the linears and KV cache of a quantized checkpoint computed
 * as its engine computes them, for trtconv eval (fwd_internal.h; the steps
 * are fake_quant.h's, docs/eval.md says which format uses which). The weight
 * source (eval/ckpt_weights.c) says per linear how its input is quantized
 * and what its scales are, and hands the stored quantized weight values to
 * the ordinary weight loading; here the scales go to backend memory and the
 * forward pass's linears take the quantize / GEMM / dequantize steps. */
#include "fwd_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "trtconv/fwd/fake_quant.h"

static const char *const lq_weight[LQ_COUNT] = {
    "attention.qkv.weight", "attention.dense.weight", "mlp.fc.weight", "mlp.gate.weight",
    "mlp.proj.weight",
};

static tc_status upload_floats(tc_fwd_engine *e, const float *host, size_t n, float **out)
{
    TRY(e->ops->alloc(e->be, n * sizeof(float), (void **)out));
    return e->ops->upload(e->be, *out, host, n * sizeof(float));
}

static bool finite_positive(float v)
{
    return isfinite(v) && v > 0.0f;
}

/* The engine's scratch for quantized linears, sized for its largest one. */
static tc_status quant_buffers(tc_fwd_engine *e)
{
    if (e->q_acc)
        return TC_OK;
    const int64_t od = e->attn.heads * e->attn.head_dim;
    int64_t n = e->qkv_width > e->H ? e->qkv_width : e->H;
    n = e->inter > n ? e->inter : n;
    int64_t k = od > e->H ? od : e->H;
    k = e->inter > k ? e->inter : k;
    const size_t T = (size_t)e->max_tokens;
    TRY(e->ops->alloc(e->be, T * (size_t)n * sizeof(float), (void **)&e->q_acc));
    TRY(e->ops->alloc(e->be, T * sizeof(float), (void **)&e->q_row));
    return e->ops->alloc(e->be, T * (size_t)k * e->es, &e->q_in);
}

static tc_status load_linear(tc_fwd_engine *e, int64_t li, int k, lin_quant *q)
{
    char name[160];
    snprintf(name, sizeof name, "transformer.layers.%lld.%s", (long long)li, lq_weight[k]);
    const int i = tc_plan_find(e->plan, name);
    if (i < 0)
        return TC_OK; /* mlp.gate of a mixture of experts */
    const tc_plan_tensor *t = &e->plan->tensors[i];
    tc_fwd_linear_quant lq;
    memset(&lq, 0, sizeof lq);
    TRY(e->wsrc.linear_quant(e->wsrc.ctx, t, &lq));
    if (lq.act == TC_FQ_NONE)
        return TC_OK;
    const char *why = NULL;
    if (lq.act != TC_FQ_INT8 && lq.act != TC_FQ_FP8 && lq.act != TC_FQ_NVFP4)
        why = "an unknown input quantization";
    else if (lq.act == TC_FQ_NVFP4 && (lq.per_token || t->cols % TC_FQ_NVFP4_BLOCK))
        why = "NVFP4 inputs that are not static blocks of 16";
    else if (e->moe && t->expert_rows > 0 &&
             (lq.act != TC_FQ_FP8 || lq.per_token || lq.smoother || lq.clamp ||
              lq.n_col != t->rows / t->expert_rows))
        why = "quantized experts other than FP8 with static inputs and one weight scale per "
              "expert, which are not emulated";
    else if (e->moe && t->expert_rows > 0 && (k != LQ_FC && k != LQ_PROJ))
        why = "an expert linear the mixture-of-experts block does not quantize";
    else if ((k == LQ_QKV && e->layers[li].qkv_bias) || (k == LQ_DENSE && e->layers[li].dense_bias))
        why = "a bias on a quantized linear, which is not emulated";
    else if (!lq.col || (lq.n_col != 1 && lq.n_col != t->rows && !(t->expert_rows > 0)))
        why = "scales for neither the tensor nor each of its output rows";
    else if (!lq.per_token && (!finite_positive(lq.act_scale) || !finite_positive(lq.row_scale)))
        why = "a static input scale that is not a positive finite number";
    else if (lq.clamp && !(lq.clamp_lo < lq.clamp_hi))
        why = "a clamp range whose lower bound is not below its upper one";
    for (int64_t c = 0; !why && c < lq.n_col; c++)
        if (!isfinite(lq.col[c]))
            why = "a non-finite weight scale";
    for (int64_t c = 0; !why && lq.smoother && c < t->cols; c++)
        if (!finite_positive(lq.smoother[c]))
            why = "a smoother that is not a positive finite number";
    if (why)
        return tc_fail(TC_E_INPUT, "%s: %s", t->name, why);
    TRY(quant_buffers(e));
    q->act = lq.act;
    q->per_token = lq.per_token;
    q->per_channel = lq.n_col != 1;
    q->act_scale = lq.act_scale;
    q->row_scale = lq.row_scale;
    q->clamp = (tc_fq_clamp){ lq.clamp, lq.clamp_lo, lq.clamp_hi };
    TRY(upload_floats(e, lq.col, (size_t)lq.n_col, &q->col));
    if (!lq.smoother)
        return TC_OK;
    /* The engine divides by the smoother cast to its dtype. */
    float *s = malloc((size_t)t->cols * sizeof(float));
    if (!s)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    for (int64_t c = 0; c < t->cols; c++)
        s[c] = tc_round_to_dtype(e->dt, lq.smoother[c]);
    const tc_status st = upload_floats(e, s, (size_t)t->cols, &q->smoother);
    free(s);
    return st;
}

tc_status tc_fwd_load_layer_quant(tc_fwd_engine *e, int64_t li)
{
    layer_weights *w = &e->layers[li];
    memset(w->q, 0, sizeof w->q);
    w->kv_kind = TC_FQ_NONE;
    if (e->wsrc.kv_quant) {
        TRY(e->wsrc.kv_quant(e->wsrc.ctx, li, &w->kv_kind, &w->kv_scale));
        if (w->kv_kind != TC_FQ_NONE &&
            ((w->kv_kind != TC_FQ_INT8 && w->kv_kind != TC_FQ_FP8) ||
             !finite_positive(w->kv_scale)))
            return tc_fail(TC_E_INPUT, "transformer.layers.%lld.attention.kv_cache_scaling_factor: "
                           "%g is not a positive finite scale", (long long)li,
                           (double)w->kv_scale);
    }
    for (int k = 0; e->wsrc.linear_quant && k < LQ_COUNT; k++)
        TRY(load_linear(e, li, k, &w->q[k]));
    return TC_OK;
}

void tc_fwd_release_layer_quant(tc_fwd_engine *e, int64_t li)
{
    layer_weights *w = &e->layers[li];
    for (int k = 0; k < LQ_COUNT; k++) {
        if (w->q[k].col)
            e->ops->release(e->be, w->q[k].col);
        if (w->q[k].smoother)
            e->ops->release(e->be, w->q[k].smoother);
    }
    memset(w->q, 0, sizeof w->q);
}

tc_status tc_fwd_qlinear(tc_fwd_engine *e, const lin_quant *q, bool requant, void *out,
                         bool out_f32, void *in, const void *w, const void *bias, int64_t T,
                         int64_t N, int64_t K)
{
    const fwd_ops *ops = e->ops;
    e->prof_flop += 2.0 * (double)T * (double)N * (double)K;
    if (q->act == TC_FQ_NONE)
        return ops->linear(e->be, out, out_f32, in, w, bias, e->dt, T, N, K);
    if (!ops->act_quant || !ops->dequant || !ops->div_cols)
        return tc_fail(TC_E_INTERNAL, "the %s backend has no quantized linears", ops->name);
    if (requant) {
        if (q->smoother)
            TRY(ops->div_cols(e->be, in, q->smoother, e->dt, T, K));
        TRY(ops->act_quant(e->be, e->q_in, in, e->dt, T, K, q->act, q->per_token, q->act_scale,
                           q->row_scale, q->clamp, e->q_row));
    }
    TRY(ops->linear(e->be, e->q_acc, true, e->q_in, w, NULL, e->dt, T, N, K));
    return ops->dequant(e->be, out, out_f32, e->q_acc, e->q_row, q->col, q->per_channel, e->dt, T,
                        N);
}

tc_status tc_fwd_kv_quant(tc_fwd_engine *e, const layer_weights *w, int64_t T)
{
    if (w->kv_kind == TC_FQ_NONE)
        return TC_OK;
    if (!e->ops->qdq)
        return tc_fail(TC_E_INTERNAL, "the %s backend has no quantized KV cache", e->ops->name);
    const size_t n = (size_t)(T * e->attn.kv_heads * e->attn.head_dim);
    const float to_q = 1.0f / w->kv_scale;
    TRY(e->ops->qdq(e->be, e->k, e->dt, n, w->kv_kind, to_q, w->kv_scale));
    return e->ops->qdq(e->be, e->v, e->dt, n, w->kv_kind, to_q, w->kv_scale);
}
