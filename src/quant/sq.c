/* sq.c: SmoothQuant and INT8-KV of a rank's cells (see sq.h): the job, passes A and B,
 * the plan; the tensors written, per cell and per streamed layer, are sq_write.c
 *
 * Dtype flow (trtllm-checkpoint.md §5.3-5.4, Era B torch): weights and
 * weight maxima are fp16; smoothers and smoothed input maxima float64;
 * output maxima float32. Per linear, with w the row maxima of the smoothed
 * weight (fp16 values), x its input maxima after smoothing (float64) and y
 * its output maxima (float32):
 *   wq_t = 127 / max(w)   wo_t = 1 / wq_t   (fp16; qkv: per q, k, v part)
 *   wq_c = 127 / w        wo_c = 1 / wq_c   (fp16)
 *   sx = 127 / max(x) (float64), sy = 127 / max(y) (float32),
 *   act_scale = max(y) / 127 (float32),
 * where `c / t` (Python scalar over tensor) is torch's t.reciprocal() * c,
 * rounded twice in t's dtype, and `t / c` is t * (1 / c) in float32 (CUDA's
 * division by a scalar);
 *   y_accum_t = sy / (sx * wq_t): float64 for one tensor, float32 per qkv part,
 *   y_accum_c = sy / (float(sx) * wq_c) in float32.
 * The int8 weight modes (fwd_backend.h quantize_i8) follow the type
 * promotion of each product in the reference. */
#define _POSIX_C_SOURCE 200809L
#include "sq_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "trtconv/fwd/backend.h"
#include "trtconv/mpi/comm.h"
#include "trtconv/core/dtype.h"
#include "trtconv/core/log.h"
#include "trtconv/quant/method.h"

/* ---- job ---- */

tc_status tc_sq_job_create(const tc_hf_config *cfg, const tc_sq_params *o,
                           const tc_calib_stats *st, tc_sq_job **out)
{
    *out = NULL;
    tc_sq_job *j = calloc(1, sizeof *j);
    if (!j)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    j->cfg = cfg;
    j->o = *o;
    j->st = st;
    j->layout = o->layout;
    j->tp = o->layout.tp;
    j->pp = o->layout.pp;
    j->L = cfg->num_hidden_layers;
    j->H = cfg->hidden_size;
    j->nh = cfg->num_attention_heads;
    j->nkv = cfg->num_key_value_heads;
    j->d = cfg->head_dim;
    j->I = cfg->intermediate_size;
    j->qd = j->nh * j->d;
    j->kvd = j->nkv * j->d;
    j->qd_l = j->qd / j->tp;
    j->kvd_l = j->kvd / j->tp;
    j->I_l = j->I / j->tp;
    j->layers_l = j->L / j->pp;
    j->sq = o->smoothquant;
    j->mha = j->nkv == j->nh;
    if (j->sq && j->nkv < j->tp) {
        const long long nkv = (long long)j->nkv;
        const int tp = j->tp;
        free(j);
        return tc_fail(TC_E_USAGE, "SmoothQuant with num_key_value_heads = %lld < tp_size = %d is "
                       "not supported by the TensorRT-LLM format: its SmoothQuant qkv is split "
                       "without duplicating KV heads (trtllm-checkpoint.md §5.6); use tp_size <= "
                       "%lld", nkv, tp, nkv);
    }
    j->wb_layer = (size_t)(j->qd + 2 * j->kvd + 2 * j->H + 2 * j->I);
    if (j->sq) {
        j->wa = calloc((size_t)(j->L * 2 * j->H), sizeof(float));
        j->wb = calloc((size_t)j->L * j->wb_layer, sizeof(float));
        j->xb = calloc((size_t)(j->L * 2), sizeof(double));
        j->s_qkv = calloc((size_t)(j->L * j->H), sizeof(double));
        j->s_mlp = calloc((size_t)(j->L * j->H), sizeof(double));
        j->cells = calloc((size_t)tc_layout_cells(&j->layout), sizeof *j->cells);
        if (!j->wa || !j->wb || !j->xb || !j->s_qkv || !j->s_mlp || !j->cells) {
            tc_sq_job_free(j);
            return tc_fail(TC_E_INTERNAL, "out of memory for SmoothQuant maxima");
        }
    }
    *out = j;
    return TC_OK;
}

void tc_sq_job_free(tc_sq_job *j)
{
    if (!j)
        return;
    for (int c = 0; j->cells && c < tc_layout_cells(&j->layout); c++) {
        free(j->cells[c].s_o);
        free(j->cells[c].s_down);
    }
    free(j->cells);
    free(j->wa);
    free(j->wb);
    free(j->xb);
    free(j->s_qkv);
    free(j->s_mlp);
    /* Left by a failed stream: its device scratch goes with the engine's
     * backend at exit (the engine may already be gone). */
    if (j->stream)
        sq_wbufs_free_host(j->stream);
    free(j->stream);
    free(j);
}

tc_status sq_dev_open(dev *v, tc_fwd_engine *e, size_t n)
{
    memset(v, 0, sizeof *v);
    v->b = tc_fwd_backend_get(e);
    v->ops = v->b->ops;
    v->dt = tc_fwd_dtype(e);
    v->wes = v->ops->weight_elem_bytes(v->dt);
    v->w_f32 = v->wes == 4 && v->dt != TC_DT_F32;
    TRY(v->ops->alloc(v->b, n * sizeof(float), (void **)&v->acc));
    TRY(v->ops->alloc(v->b, n * sizeof(double), (void **)&v->s));
    v->acc_n = v->s_n = n;
    return TC_OK;
}

void sq_dev_close(dev *v)
{
    if (v->acc)
        v->ops->release(v->b, v->acc);
    if (v->s)
        v->ops->release(v->b, v->s);
}

/* The first n floats of the device scratch set to zero (the column maxima
 * fold into it with atomicMax). */
static tc_status zero_acc(dev *v, size_t n)
{
    float *zero = calloc(n, sizeof(float));
    if (!zero)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    const tc_status st = v->ops->upload(v->b, v->acc, zero, n * sizeof(float));
    free(zero);
    return st;
}

/* The passes queue all of a step's kernels on the backend and download
 * their results once: on the GPU a layer's hook runs on the side stream
 * next to the next layer's forward pass, and each wait there lasts until
 * a GEMM of that pass lets the hook's kernel onto the SMs (about 20 waits
 * per layer took 55-145 ms of an 8B layer's 230 ms on an H100, session 17;
 * now 4). dacc: a region of v->acc; columns c0.. of a weight [rows, ld]. */
static tc_status col_max_queue(dev *v, float *dacc, const void *w, int64_t rows, int64_t ld,
                               int64_t c0, int64_t cols)
{
    return v->ops->absmax_cols(v->b, dacc, w, v->w_f32, NULL, v->dt, rows, ld, c0, cols);
}

static tc_status smooth(dev *v, void *w, int64_t rows, int64_t cols, const double *ds,
                        bool divide)
{
    return v->ops->smooth_cols(v->b, w, v->dt, rows, cols, ds, divide);
}

/* ---- pass A ---- */

static void fold_max(float *dst, const float *src, int64_t n)
{
    for (int64_t c = 0; c < n; c++)
        dst[c] = fmaxf(dst[c], src[c]);
}


/* Column maxima of local layer i's qkv and fc+gate rows (tmp: scratch_floats). */
tc_status sq_pass_a_layer(tc_sq_job *j, dev *v, tc_fwd_engine *e, const cell_geo *g,
                              int64_t i, float *tmp)
{
    tc_fwd_layer_ptrs w;
    tc_fwd_layer_ptrs_get(e, i, &w);
    float *a = j->wa + (size_t)((g->layer0 + i) * 2 * j->H);
    /* fc and gate share one smoother: maxima over both matrices. */
    const void *mats[3] = { w.qkv, w.fc, w.gate };
    const int64_t rows[3] = { j->qd_l + 2 * j->kvd_l, j->I_l, j->I_l };
    TRY(zero_acc(v, (size_t)(3 * j->H)));
    for (int m = 0; m < 3; m++)
        TRY(col_max_queue(v, v->acc + m * j->H, mats[m], rows[m], j->H, 0, j->H));
    TRY(v->ops->download(v->b, tmp, v->acc, (size_t)(3 * j->H) * sizeof(float)));
    for (int m = 0; m < 3; m++)
        fold_max(a + (m ? j->H : 0), tmp + m * j->H, j->H);
    return TC_OK;
}

tc_status tc_sq_pass_a(tc_sq_job *j, tc_fwd_engine *e, int cell)
{
    cell_geo g;
    geo(j, cell, &g);
    dev v;
    float *tmp = malloc(scratch_floats(j) * sizeof(float));
    tc_status st = tmp ? sq_dev_open(&v, e, scratch_floats(j)) : tc_fail(TC_E_INTERNAL, "out of memory");
    for (int64_t i = 0; st == TC_OK && i < j->layers_l; i++)
        st = sq_pass_a_layer(j, &v, e, &g, i, tmp);
    if (tmp)
        sq_dev_close(&v);
    free(tmp);
    return st;
}

/* Layer L's smoothers of qkv and fc/gate from its complete column maxima. */
tc_status sq_layer_smoothers(tc_sq_job *j, int64_t L)
{
    const double alpha = j->o.alpha;
    const float *aq = tc_calib_get(j->st, L, TC_LIN_Q, TC_STAT_X, NULL);
    const float *ag = tc_calib_get(j->st, L, TC_LIN_GATE, TC_STAT_X, NULL);
    for (int64_t c = 0; c < j->H; c++) {
        j->s_qkv[L * j->H + c] = tc_sq_smoother(aq[c], j->wa[L * 2 * j->H + c], alpha);
        j->s_mlp[L * j->H + c] = tc_sq_smoother(ag[c], j->wa[L * 2 * j->H + j->H + c], alpha);
        if (!isfinite(j->s_qkv[L * j->H + c]) || !isfinite(j->s_mlp[L * j->H + c]))
            return tc_fail(TC_E_INPUT, "SmoothQuant: layer %lld input channel %lld: the "
                           "smoother is not finite (a weight column of qkv or fc/gate is "
                           "all zero)", (long long)L, (long long)c);
    }
    return TC_OK;
}

tc_status tc_sq_reduce_a(tc_sq_job *j, MPI_Comm world)
{
    if (!j->sq)
        return TC_OK;
    TRY(TC_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, j->wa, (int)(j->L * 2 * j->H), MPI_FLOAT, MPI_MAX,
                                 world)));
    /* The smoothers of qkv and fc/gate need nothing else: every rank
     * computes all of them, identically. */
    for (int64_t L = 0; L < j->L; L++)
        TRY(sq_layer_smoothers(j, L));
    return TC_OK;
}

/* ---- pass B ---- */

tc_status sq_cell_smoothers_alloc(tc_sq_job *j, int cell)
{
    cell_smoothers *c = &j->cells[cell];
    if (c->s_o)
        return TC_OK;
    c->s_o = calloc((size_t)(j->layers_l * j->qd_l), sizeof(double));
    c->s_down = calloc((size_t)(j->layers_l * j->I_l), sizeof(double));
    if (!c->s_o || !c->s_down)
        return tc_fail(TC_E_INTERNAL, "out of memory for smoothers");
    return TC_OK;
}

/* Smoother of a row-parallel linear's local columns from their maxima. */
static tc_status local_smoother(const tc_sq_job *j, int64_t L, const char *what, const float *a,
                                const float *wmax, int64_t n, double *s)
{
    for (int64_t c = 0; c < n; c++) {
        s[c] = tc_sq_smoother(a[c], wmax[c], j->o.alpha);
        if (!isfinite(s[c]))
            return tc_fail(TC_E_INPUT, "SmoothQuant: layer %lld %s: the smoother of column %lld "
                           "is not finite (an all-zero weight column)", (long long)L, what,
                           (long long)c);
    }
    return TC_OK;
}

/* The smoothers uploaded side by side in v->s (qkv, o, fc/gate, down),
 * then every smoothing kernel queued. */
static tc_status apply_smoothing(tc_sq_job *j, dev *v, const tc_fwd_layer_ptrs *w, int cell,
                                 int64_t i, int64_t L)
{
    const cell_smoothers *cs = &j->cells[cell];
    const int64_t qkv_rows = j->qd_l + 2 * j->kvd_l, H = j->H;
    double *s_qkv = v->s, *s_o = s_qkv + H, *s_mlp = s_o + j->qd_l, *s_down = s_mlp + H;
    TRY(v->ops->upload(v->b, s_qkv, j->s_qkv + L * H, (size_t)H * sizeof(double)));
    TRY(v->ops->upload(v->b, s_o, cs->s_o + i * j->qd_l, (size_t)j->qd_l * sizeof(double)));
    TRY(v->ops->upload(v->b, s_mlp, j->s_mlp + L * H, (size_t)H * sizeof(double)));
    TRY(v->ops->upload(v->b, s_down, cs->s_down + i * j->I_l, (size_t)j->I_l * sizeof(double)));
    TRY(smooth(v, w->qkv, qkv_rows, H, s_qkv, false));
    TRY(smooth(v, w->in_norm, 1, H, s_qkv, true));
    TRY(smooth(v, w->dense, H, j->qd_l, s_o, false));
    TRY(smooth(v, w->fc, j->I_l, H, s_mlp, false));
    TRY(smooth(v, w->gate, j->I_l, H, s_mlp, false));
    TRY(smooth(v, w->post_norm, 1, H, s_mlp, true));
    return smooth(v, w->proj, H, j->I_l, s_down, false);
}

/* Pass B of local layer i (layer L): smoothers of the row-parallel
 * linears, the smoothing, and the smoothed maxima (tmp: scratch_floats). */
tc_status sq_pass_b_layer(tc_sq_job *j, dev *v, const tc_fwd_layer_ptrs *w, const cell_geo *g,
                              int cell, int64_t i, float *tmp)
{
    cell_smoothers *cs = &j->cells[cell];
    const int64_t qkv_rows = j->qd_l + 2 * j->kvd_l;
    tc_status st = TC_OK;
    const int64_t L = g->layer0 + i;
    /* Row-parallel smoothers: this cell holds every row of its columns. */
    st = zero_acc(v, (size_t)(j->qd_l + j->I_l));
    if (st == TC_OK)
        st = col_max_queue(v, v->acc, w->dense, j->H, j->qd_l, 0, j->qd_l);
    if (st == TC_OK)
        st = col_max_queue(v, v->acc + j->qd_l, w->proj, j->H, j->I_l, 0, j->I_l);
    if (st == TC_OK)
        st = v->ops->download(v->b, tmp, v->acc, (size_t)(j->qd_l + j->I_l) * sizeof(float));
    if (st == TC_OK)
        st = local_smoother(j, L, "o_proj", tc_calib_get(j->st, L, TC_LIN_O, TC_STAT_X, NULL) +
                            g->q0, tmp, j->qd_l, cs->s_o + i * j->qd_l);
    if (st == TC_OK)
        st = local_smoother(j, L, "down_proj",
                            tc_calib_get(j->st, L, TC_LIN_DOWN, TC_STAT_X, NULL) + g->i0,
                            tmp + j->qd_l, j->I_l, cs->s_down + i * j->I_l);
    if (st == TC_OK)
        st = apply_smoothing(j, v, w, cell, i, L);
    /* Row maxima of the smoothed weights side by side (qkv, dense, fc,
     * gate, proj), then folded at their model channels. */
    const void *mats[5] = { w->qkv, w->dense, w->fc, w->gate, w->proj };
    const int64_t rows[5] = { qkv_rows, j->H, j->I_l, j->I_l, j->H };
    const int64_t cols[5] = { j->H, j->qd_l, j->H, j->H, j->I_l };
    int64_t at[6] = { 0 };
    for (int m = 0; m < 5; m++)
        at[m + 1] = at[m] + rows[m];
    for (int m = 0; st == TC_OK && m < 5; m++)
        st = v->ops->absmax_rows(v->b, v->acc + at[m], mats[m], v->dt, rows[m], cols[m]);
    if (st == TC_OK)
        st = v->ops->download(v->b, tmp, v->acc, (size_t)at[5] * sizeof(float));
    if (st == TC_OK) {
        float *q = wb_qkv(j, L);
        fold_max(q + g->q0, tmp, j->qd_l);
        fold_max(q + j->qd + g->kv0, tmp + j->qd_l, j->kvd_l);
        fold_max(q + j->qd + j->kvd + g->kv0, tmp + j->qd_l + j->kvd_l, j->kvd_l);
        fold_max(wb_o(j, L), tmp + at[1], j->H);
        fold_max(wb_gate(j, L) + g->i0, tmp + at[2], j->I_l);
        fold_max(wb_up(j, L) + g->i0, tmp + at[3], j->I_l);
        fold_max(wb_down(j, L), tmp + at[4], j->H);
        /* Input maxima of dense/proj after smoothing, over local columns. */
        const float *xo = tc_calib_get(j->st, L, TC_LIN_O, TC_STAT_X, NULL) + g->q0;
        const float *xd = tc_calib_get(j->st, L, TC_LIN_DOWN, TC_STAT_X, NULL) + g->i0;
        double mo = 0.0, md = 0.0;
        for (int64_t c = 0; c < j->qd_l; c++)
            mo = fmax(mo, (double)xo[c] / cs->s_o[i * j->qd_l + c]);
        for (int64_t c = 0; c < j->I_l; c++)
            md = fmax(md, (double)xd[c] / cs->s_down[i * j->I_l + c]);
        j->xb[2 * L] = fmax(j->xb[2 * L], mo);
        j->xb[2 * L + 1] = fmax(j->xb[2 * L + 1], md);
    }
    return st;
}

tc_status tc_sq_pass_b(tc_sq_job *j, tc_fwd_engine *e, int cell)
{
    cell_geo g;
    geo(j, cell, &g);
    TRY(sq_cell_smoothers_alloc(j, cell));
    dev v;
    const size_t n = scratch_floats(j);
    float *tmp = malloc(n * sizeof(float));
    tc_status st = tmp ? sq_dev_open(&v, e, n) : tc_fail(TC_E_INTERNAL, "out of memory");
    for (int64_t i = 0; st == TC_OK && i < j->layers_l; i++) {
        tc_fwd_layer_ptrs w;
        tc_fwd_layer_ptrs_get(e, i, &w);
        st = sq_pass_b_layer(j, &v, &w, &g, cell, i, tmp);
    }
    if (tmp)
        sq_dev_close(&v);
    free(tmp);
    return st;
}

tc_status tc_sq_reduce_b(tc_sq_job *j, MPI_Comm world)
{
    if (!j->sq)
        return TC_OK;
    TRY(TC_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, j->wb, (int)((size_t)j->L * j->wb_layer), MPI_FLOAT,
                                 MPI_MAX, world)));
    return TC_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, j->xb, (int)(2 * j->L), MPI_DOUBLE, MPI_MAX,
                                    world));
}

tc_status tc_sq_smooth_again(tc_sq_job *j, tc_fwd_engine *e, int cell)
{
    cell_geo g;
    geo(j, cell, &g);
    dev v;
    TRY(sq_dev_open(&v, e, scratch_floats(j)));
    tc_status st = TC_OK;
    for (int64_t i = 0; st == TC_OK && i < j->layers_l; i++) {
        tc_fwd_layer_ptrs w;
        tc_fwd_layer_ptrs_get(e, i, &w);
        st = apply_smoothing(j, &v, &w, cell, i, g.layer0 + i);
    }
    sq_dev_close(&v);
    return st;
}

/* ---- plan ---- */

static tc_status add_f32(tc_plan *p, int64_t l, const char *suffix, int ndim, int64_t d0,
                         int64_t d1)
{
    char name[160];
    snprintf(name, sizeof name, "transformer.layers.%lld.%s", (long long)l, suffix);
    return tc_plan_add_computed(p, name, TC_DT_F32, ndim, d0, d1);
}

static tc_status mark(tc_plan *p, int64_t l, const char *suffix, tc_dtype dt)
{
    char name[160];
    snprintf(name, sizeof name, "transformer.layers.%lld.%s", (long long)l, suffix);
    int i = tc_plan_find(p, name);
    if (i < 0)
        return tc_fail(TC_E_INTERNAL, "SmoothQuant plan: no tensor %s", name);
    tc_plan_set_computed(p, i, dt == TC_DT_COUNT ? p->tensors[i].dtype : dt);
    return TC_OK;
}

tc_status tc_sq_plan(const tc_sq_job *j, tc_plan *p)
{
    const bool pt = !j->o.per_token, pc = j->o.per_channel;
    for (int64_t l = 0; l < j->layers_l; l++) {
        if (j->o.int8_kv_cache || j->o.fp8_kv_calibrated)
            TRY(add_f32(p, l, "attention.kv_cache_scaling_factor", 1, 1, 0));
        if (!j->sq)
            continue;
        static const char *const linears[] = { "attention.qkv.weight", "attention.dense.weight",
                                               "mlp.fc.weight", "mlp.gate.weight",
                                               "mlp.proj.weight" };
        for (size_t k = 0; k < 5; k++)
            TRY(mark(p, l, linears[k], TC_DT_I8));
        TRY(mark(p, l, "input_layernorm.weight", TC_DT_COUNT));
        TRY(mark(p, l, "post_layernorm.weight", TC_DT_COUNT));
        TRY(add_f32(p, l, "input_layernorm.scale_to_int", 1, 1, 0));
        TRY(add_f32(p, l, "post_layernorm.scale_to_int", 1, 1, 0));
        TRY(add_f32(p, l, "attention.qkv.per_channel_scale", 2, 1, j->qd_l + 2 * j->kvd_l));
        TRY(add_f32(p, l, "attention.dense.per_channel_scale", 2, 1, pc ? j->H : 1));
        TRY(add_f32(p, l, "attention.dense.smoother", 2, 1, j->qd_l));
        TRY(add_f32(p, l, "mlp.fc.per_channel_scale", 2, 1, pc ? j->I_l : 1));
        TRY(add_f32(p, l, "mlp.gate.per_channel_scale", 2, 1, pc ? j->I_l : 1));
        TRY(add_f32(p, l, "mlp.proj.per_channel_scale", 2, 1, pc ? j->H : 1));
        TRY(add_f32(p, l, "mlp.proj.smoother", 2, 1, j->I_l));
        if (pt) {
            static const char *const acts[] = { "attention.qkv.act_scale",
                                                "attention.dense.act_scale", "mlp.fc.act_scale",
                                                "mlp.gate.act_scale", "mlp.proj.act_scale" };
            for (size_t k = 0; k < 5; k++)
                TRY(add_f32(p, l, acts[k], 2, 1, 1));
            TRY(add_f32(p, l, "attention.quantization_scaling_factor", 1, 1, 0));
            TRY(add_f32(p, l, "mlp.quantization_scaling_factor", 1, 1, 0));
        }
    }
    return TC_OK;
}
