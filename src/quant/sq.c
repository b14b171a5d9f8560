/* sq.c: SmoothQuant and INT8-KV tensors of a rank's cells (see sq.h).
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
#include "trtconv/quant/sq.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "trtconv/fwd/backend.h"
#include "trtconv/mpi/comm.h"
#include "trtconv/core/dtype.h"
#include "trtconv/core/log.h"
#include "trtconv/quant/method.h"

#define TRY(x) TC_TRY(x)

/* Per (cell, local layer): the smoothers of dense and proj columns the
 * cell holds (they depend on the cell's own column maxima). */
typedef struct cell_smoothers {
    double *s_o;      /* [layers][od_local] */
    double *s_down;   /* [layers][inter_local] */
} cell_smoothers;

struct tc_sq_job {
    const tc_hf_config *cfg;
    tc_sq_params o;
    const tc_calib_stats *st;
    tc_layout layout;
    int tp, pp;
    int64_t L, H, nh, nkv, d, I, qd, kvd;   /* model */
    int64_t qd_l, kvd_l, I_l, layers_l;     /* per cell */
    bool sq, mha;
    /* pass A, model form per layer: qkv column maxima [H], fc+gate [H] */
    float *wa;
    /* pass B, model form per layer: smoothed row maxima qkv [qd + 2 kvd],
     * dense [H], gate_proj [I], up_proj [I], down [H]; and per layer the
     * smoothed input maxima of dense and down (float64). */
    float *wb;
    double *xb;
    size_t wb_layer;
    /* smoothers of qkv and fc/gate per layer (model form, [H] each) */
    double *s_qkv, *s_mlp;
    cell_smoothers *cells;  /* [cells of the layout], allocated on use */
    struct wbufs *stream;   /* tc_sq_stream_layer's scratch, kept between layers */
};

static void wbufs_free_host(struct wbufs *b);

/* ---- scalar reference ---- */

static float f16_rdiv(float c, float t)
{
    return tc_sq_round_f16(tc_sq_round_f16(1.0f / t) * c);
}

static float f32_rdiv(float c, float t)
{
    return (1.0f / t) * c;
}

static double f64_rdiv(double c, double t)
{
    return (1.0 / t) * c;
}

/* `t / c` for a Python scalar c: CUDA multiplies by the float reciprocal. */
static float f32_div_scalar(float t, float c)
{
    return t * (1.0f / c);
}

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
        wbufs_free_host(j->stream);
    free(j->stream);
    free(j);
}

/* Model-form sections of pass B for layer L. */
static float *wb_qkv(const tc_sq_job *j, int64_t L) { return j->wb + (size_t)L * j->wb_layer; }
static float *wb_o(const tc_sq_job *j, int64_t L) { return wb_qkv(j, L) + j->qd + 2 * j->kvd; }
static float *wb_gate(const tc_sq_job *j, int64_t L) { return wb_o(j, L) + j->H; }
static float *wb_up(const tc_sq_job *j, int64_t L) { return wb_gate(j, L) + j->I; }
static float *wb_down(const tc_sq_job *j, int64_t L) { return wb_up(j, L) + j->I; }

/* ---- device helpers over the engine's backend ---- */

typedef struct dev {
    fwd_backend *b;
    const fwd_ops *ops;
    tc_dtype dt;
    size_t wes;              /* bytes per weight element in the backend */
    bool w_f32;              /* weights held as float32 (CPU backend) */
    float *acc;              /* backend scratch, floats */
    double *s;               /* backend scratch, doubles */
    size_t acc_n, s_n;
} dev;

static tc_status dev_open(dev *v, tc_fwd_engine *e, size_t n)
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

static void dev_close(dev *v)
{
    if (v->acc)
        v->ops->release(v->b, v->acc);
    if (v->s)
        v->ops->release(v->b, v->s);
}

/* host out[cols] = max over rows |W[r, c]| of a weight [rows, ld] (columns
 * c0.., all of them when cols == ld). */
static tc_status col_max(dev *v, const void *w, int64_t rows, int64_t ld, int64_t c0,
                         int64_t cols, float *out)
{
    float *zero = calloc((size_t)cols, sizeof(float));
    if (!zero)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    tc_status st = v->ops->upload(v->b, v->acc, zero, (size_t)cols * sizeof(float));
    free(zero);
    if (st == TC_OK)
        st = v->ops->absmax_cols(v->b, v->acc, w, v->w_f32, NULL, v->dt, rows, ld, c0, cols);
    if (st == TC_OK)
        st = v->ops->download(v->b, out, v->acc, (size_t)cols * sizeof(float));
    return st;
}

static tc_status row_max(dev *v, const void *w, int64_t rows, int64_t cols, float *out)
{
    TRY(v->ops->absmax_rows(v->b, v->acc, w, v->dt, rows, cols));
    return v->ops->download(v->b, out, v->acc, (size_t)rows * sizeof(float));
}

static tc_status smooth(dev *v, void *w, int64_t rows, int64_t cols, const double *s, bool divide)
{
    TRY(v->ops->upload(v->b, v->s, s, (size_t)cols * sizeof(double)));
    return v->ops->smooth_cols(v->b, w, v->dt, rows, cols, v->s, divide);
}

/* ---- cell geometry ---- */

typedef struct cell_geo {
    int tp_rank, pp_rank;
    int64_t layer0, q0, kv0, i0;
} cell_geo;

static void geo(const tc_sq_job *j, int cell, cell_geo *g)
{
    g->tp_rank = tc_layout_tp_rank(&j->layout, cell);
    g->pp_rank = tc_layout_pp_rank(&j->layout, cell);
    g->layer0 = (int64_t)g->pp_rank * j->layers_l;
    g->q0 = (int64_t)g->tp_rank * j->qd_l;
    g->kv0 = (int64_t)g->tp_rank * j->kvd_l;
    g->i0 = (int64_t)g->tp_rank * j->I_l;
}

static size_t scratch_floats(const tc_sq_job *j)
{
    int64_t n = j->qd_l + 2 * j->kvd_l;
    if (j->H > n)
        n = j->H;
    if (j->I > n)
        n = j->I;
    return (size_t)n;
}

/* ---- pass A ---- */

static void fold_max(float *dst, const float *src, int64_t n)
{
    for (int64_t c = 0; c < n; c++)
        dst[c] = fmaxf(dst[c], src[c]);
}


/* Column maxima of local layer i's qkv and fc+gate rows (tmp: H floats). */
static tc_status pass_a_layer(tc_sq_job *j, dev *v, tc_fwd_engine *e, const cell_geo *g,
                              int64_t i, float *tmp)
{
    tc_fwd_layer_ptrs w;
    tc_fwd_layer_ptrs_get(e, i, &w);
    float *a = j->wa + (size_t)((g->layer0 + i) * 2 * j->H);
    /* fc and gate share one smoother: maxima over both matrices. */
    const void *mats[3] = { w.qkv, w.fc, w.gate };
    const int64_t rows[3] = { j->qd_l + 2 * j->kvd_l, j->I_l, j->I_l };
    for (int m = 0; m < 3; m++) {
        TRY(col_max(v, mats[m], rows[m], j->H, 0, j->H, tmp));
        fold_max(a + (m ? j->H : 0), tmp, j->H);
    }
    return TC_OK;
}

tc_status tc_sq_pass_a(tc_sq_job *j, tc_fwd_engine *e, int cell)
{
    cell_geo g;
    geo(j, cell, &g);
    dev v;
    float *tmp = malloc((size_t)j->H * sizeof(float));
    tc_status st = tmp ? dev_open(&v, e, scratch_floats(j)) : tc_fail(TC_E_INTERNAL, "out of memory");
    for (int64_t i = 0; st == TC_OK && i < j->layers_l; i++)
        st = pass_a_layer(j, &v, e, &g, i, tmp);
    if (tmp)
        dev_close(&v);
    free(tmp);
    return st;
}

/* Layer L's smoothers of qkv and fc/gate from its complete column maxima. */
static tc_status layer_smoothers(tc_sq_job *j, int64_t L)
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
        TRY(layer_smoothers(j, L));
    return TC_OK;
}

/* ---- pass B ---- */

static tc_status cell_smoothers_alloc(tc_sq_job *j, int cell)
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

static tc_status apply_smoothing(tc_sq_job *j, dev *v, const tc_fwd_layer_ptrs *w, int cell,
                                 int64_t i, int64_t L)
{
    const cell_smoothers *cs = &j->cells[cell];
    const int64_t qkv_rows = j->qd_l + 2 * j->kvd_l;
    TRY(smooth(v, w->qkv, qkv_rows, j->H, j->s_qkv + L * j->H, false));
    TRY(smooth(v, w->in_norm, 1, j->H, j->s_qkv + L * j->H, true));
    TRY(smooth(v, w->dense, j->H, j->qd_l, cs->s_o + i * j->qd_l, false));
    TRY(smooth(v, w->fc, j->I_l, j->H, j->s_mlp + L * j->H, false));
    TRY(smooth(v, w->gate, j->I_l, j->H, j->s_mlp + L * j->H, false));
    TRY(smooth(v, w->post_norm, 1, j->H, j->s_mlp + L * j->H, true));
    return smooth(v, w->proj, j->H, j->I_l, cs->s_down + i * j->I_l, false);
}

/* Pass B of local layer i (layer L): smoothers of the row-parallel
 * linears, the smoothing, and the smoothed maxima (tmp: scratch_floats). */
static tc_status pass_b_layer(tc_sq_job *j, dev *v, const tc_fwd_layer_ptrs *w, const cell_geo *g,
                              int cell, int64_t i, float *tmp)
{
    cell_smoothers *cs = &j->cells[cell];
    const int64_t qkv_rows = j->qd_l + 2 * j->kvd_l;
    tc_status st = TC_OK;
    const int64_t L = g->layer0 + i;
    /* Row-parallel smoothers: this cell holds every row of its columns. */
    st = col_max(v, w->dense, j->H, j->qd_l, 0, j->qd_l, tmp);
    if (st == TC_OK)
        st = local_smoother(j, L, "o_proj", tc_calib_get(j->st, L, TC_LIN_O, TC_STAT_X, NULL) +
                            g->q0, tmp, j->qd_l, cs->s_o + i * j->qd_l);
    if (st == TC_OK)
        st = col_max(v, w->proj, j->H, j->I_l, 0, j->I_l, tmp);
    if (st == TC_OK)
        st = local_smoother(j, L, "down_proj",
                            tc_calib_get(j->st, L, TC_LIN_DOWN, TC_STAT_X, NULL) + g->i0, tmp,
                            j->I_l, cs->s_down + i * j->I_l);
    if (st == TC_OK)
        st = apply_smoothing(j, v, w, cell, i, L);
    /* Row maxima of the smoothed weights, at their model channels. */
    if (st == TC_OK)
        st = row_max(v, w->qkv, qkv_rows, j->H, tmp);
    if (st == TC_OK) {
        float *q = wb_qkv(j, L);
        fold_max(q + g->q0, tmp, j->qd_l);
        fold_max(q + j->qd + g->kv0, tmp + j->qd_l, j->kvd_l);
        fold_max(q + j->qd + j->kvd + g->kv0, tmp + j->qd_l + j->kvd_l, j->kvd_l);
        st = row_max(v, w->dense, j->H, j->qd_l, tmp);
    }
    if (st == TC_OK) {
        fold_max(wb_o(j, L), tmp, j->H);
        st = row_max(v, w->fc, j->I_l, j->H, tmp);
    }
    if (st == TC_OK) {
        fold_max(wb_gate(j, L) + g->i0, tmp, j->I_l);
        st = row_max(v, w->gate, j->I_l, j->H, tmp);
    }
    if (st == TC_OK) {
        fold_max(wb_up(j, L) + g->i0, tmp, j->I_l);
        st = row_max(v, w->proj, j->H, j->I_l, tmp);
    }
    if (st == TC_OK) {
        fold_max(wb_down(j, L), tmp, j->H);
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
    TRY(cell_smoothers_alloc(j, cell));
    dev v;
    const size_t n = scratch_floats(j);
    float *tmp = malloc(n * sizeof(float));
    tc_status st = tmp ? dev_open(&v, e, n) : tc_fail(TC_E_INTERNAL, "out of memory");
    for (int64_t i = 0; st == TC_OK && i < j->layers_l; i++) {
        tc_fwd_layer_ptrs w;
        tc_fwd_layer_ptrs_get(e, i, &w);
        st = pass_b_layer(j, &v, &w, &g, cell, i, tmp);
    }
    if (tmp)
        dev_close(&v);
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
    TRY(dev_open(&v, e, scratch_floats(j)));
    tc_status st = TC_OK;
    for (int64_t i = 0; st == TC_OK && i < j->layers_l; i++) {
        tc_fwd_layer_ptrs w;
        tc_fwd_layer_ptrs_get(e, i, &w);
        st = apply_smoothing(j, &v, &w, cell, i, g.layer0 + i);
    }
    dev_close(&v);
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

/* ---- write ---- */

typedef struct writer {
    tc_cell_output *out;
    int64_t l;                /* local layer index for names */
    tc_write_queue *wq;       /* weights written by its thread, or NULL: here */
} writer;

/* The plan index of the layer's tensor `suffix`, checked to hold `bytes`. */
static tc_status locate(const writer *w, const char *suffix, size_t bytes, char *name,
                        size_t name_size, int *index)
{
    snprintf(name, name_size, "transformer.layers.%lld.%s", (long long)w->l, suffix);
    const int i = tc_plan_find(w->out->plan, name);
    if (i < 0)
        return tc_fail(TC_E_INTERNAL, "SmoothQuant: %s is not in the plan", name);
    const tc_plan_tensor *t = &w->out->plan->tensors[i];
    const uint64_t want = tc_plan_tensor_elems(t) * tc_dtype_bits(t->dtype) / 8;
    if (want != bytes)
        return tc_fail(TC_E_INTERNAL, "SmoothQuant: %s: %zu bytes for a %llu-byte tensor", name,
                       bytes, (unsigned long long)want);
    *index = i;
    return TC_OK;
}

static tc_status put(writer *w, const char *suffix, const void *data, size_t bytes)
{
    char name[160];
    int i;
    TRY(locate(w, suffix, bytes, name, sizeof name, &i));
    const tc_plan_tensor *t = &w->out->plan->tensors[i];
    /* Every float this quantization computed must be finite: an Inf scale
     * or norm makes a checkpoint that builds but computes garbage. (int8
     * weights: tc_first_nonfinite passes them.) */
    const size_t n = bytes / (tc_dtype_bits(t->dtype) / 8);
    float v;
    const size_t k = tc_first_nonfinite(data, t->dtype, n, &v);
    if (k < n)
        return tc_fail(TC_E_INPUT, "SmoothQuant: %s[%zu] = %g is not finite: the statistics of "
                       "layer %lld (its linears' input/output maxima) overflow %s; refusing to "
                       "write a checkpoint with it", name, k, (double)v, (long long)w->l,
                       tc_dtype_name(t->dtype));
    return tc_cell_write(w->out, data, bytes, w->out->offsets[i]);
}

static tc_status put_scalar(writer *w, const char *suffix, float v)
{
    return put(w, suffix, &v, sizeof v);
}

/* Scales of one linear from its model-form maxima (see the top). */
typedef struct lin_scales {
    float wq_t, wo_t;          /* per tensor (fp16 values) */
    double sx;                 /* 127 / max x */
    float sy, y_quant_orig;    /* 127 / max y, max y / 127 */
    double y_accum_t;          /* non-qkv: float64 */
} lin_scales;

static float max_of(const float *v, int64_t n)
{
    float m = 0.0f;
    for (int64_t i = 0; i < n; i++)
        m = fmaxf(m, v[i]);
    return m;
}

static void scales_of(const float *w, int64_t nw, double xmax, float ymax, lin_scales *s)
{
    s->wq_t = f16_rdiv(127.0f, max_of(w, nw));
    s->wo_t = f16_rdiv(1.0f, s->wq_t);
    s->sx = f64_rdiv(127.0, xmax);
    s->sy = f32_rdiv(127.0f, ymax);
    s->y_quant_orig = f32_div_scalar(ymax, 127.0f);
    s->y_accum_t = (double)s->sy / (s->sx * (double)s->wq_t);
}

static float wq_c(float w) { return f16_rdiv(127.0f, w); }
static float wo_c(float w) { return f16_rdiv(1.0f, wq_c(w)); }
static float y_accum_c(const lin_scales *s, float w) { return s->sy / ((float)s->sx * wq_c(w)); }

/* Quantize weight [rows, cols] with per-row scales (host) and write it;
 * qdt: the dtype upstream holds the weight in when it quantizes (see
 * write_layer). */
static tc_status put_weight(writer *wr, dev *v, const char *suffix, const void *w, tc_dtype qdt,
                            int64_t rows, int64_t cols, const float *scale, int mode, int8_t *d_q,
                            float *d_sc, int8_t *h_q)
{
    TRY(v->ops->upload(v->b, d_sc, scale, (size_t)rows * sizeof(float)));
    TRY(v->ops->quantize_i8(v->b, d_q, w, v->dt, qdt, rows, cols, d_sc, mode));
    const size_t bytes = (size_t)(rows * cols);
    if (!wr->wq) {
        TRY(v->ops->download(v->b, h_q, d_q, bytes));
        return put(wr, suffix, h_q, bytes);
    }
    /* Through the queue's buffers, piece by piece (int8: nothing to check
     * for finiteness). */
    char name[160];
    int i;
    TRY(locate(wr, suffix, bytes, name, sizeof name, &i));
    const uint64_t off = wr->out->offsets[i];
    const size_t piece = tc_wq_buffer_bytes(wr->wq);
    for (size_t k = 0; k < bytes; k += piece) {
        const size_t n = bytes - k < piece ? bytes - k : piece;
        void *buf;
        TRY(tc_wq_acquire(wr->wq, &buf));
        const tc_status st = v->ops->download(v->b, buf, (const char *)d_q + k, n);
        if (st != TC_OK) {
            tc_wq_release(wr->wq, buf);
            return st;
        }
        TRY(tc_wq_submit(wr->wq, wr->out, buf, n, off + k));
    }
    return TC_OK;
}

static tc_status put_norm(writer *wr, dev *v, const char *suffix, const void *norm, int64_t H,
                          tc_dtype out_dtype, void *host, void *conv)
{
    TRY(v->ops->download(v->b, host, norm, (size_t)H * v->wes));
    tc_convert(conv, out_dtype, host, v->w_f32 ? TC_DT_F32 : v->dt, (size_t)H);
    return put(wr, suffix, conv, (size_t)H * tc_dtype_bits(out_dtype) / 8);
}

/* Local row r of the fused qkv -> its channel in the model-form q|k|v. */
static int64_t qkv_channel(const tc_sq_job *j, const cell_geo *g, int64_t r, int *part)
{
    if (r < j->qd_l) {
        *part = 0;
        return g->q0 + r;
    }
    r -= j->qd_l;
    if (r < j->kvd_l) {
        *part = 1;
        return j->qd + g->kv0 + r;
    }
    *part = 2;
    return j->qd + j->kvd + g->kv0 + (r - j->kvd_l);
}

static tc_status write_layer(tc_sq_job *j, dev *v, const tc_fwd_layer_ptrs *w, const cell_geo *g,
                             int cell, int64_t i, writer *wr, tc_dtype out_dtype, int8_t *d_q,
                             float *d_sc, int8_t *h_q, float *hs, float *hs2, void *nbuf,
                             void *nconv)
{
    const int64_t L = g->layer0 + i;
    const bool pt = !j->o.per_token, pc = j->o.per_channel;
    const tc_calib_stats *st = j->st;
    const cell_smoothers *cs = &j->cells[cell];

    /* ---- qkv ---- */
    {
        const float *wf = wb_qkv(j, L);
        const int64_t nout = j->qd + 2 * j->kvd, rows = j->qd_l + 2 * j->kvd_l;
        float part_wq[3], part_wo[3], part_acc[3];
        const int64_t p0[3] = { 0, j->qd, j->qd + j->kvd }, pn[3] = { j->qd, j->kvd, j->kvd };
        double xmax = 0.0;
        const float *ax = tc_calib_get(st, L, TC_LIN_Q, TC_STAT_X, NULL);
        for (int64_t c = 0; c < j->H; c++)
            xmax = fmax(xmax, (double)ax[c] / j->s_qkv[L * j->H + c]);
        float ymax = 0.0f;
        ymax = fmaxf(ymax, max_of(tc_calib_get(st, L, TC_LIN_Q, TC_STAT_Y, NULL), j->qd));
        ymax = fmaxf(ymax, max_of(tc_calib_get(st, L, TC_LIN_K, TC_STAT_Y, NULL), j->kvd));
        ymax = fmaxf(ymax, max_of(tc_calib_get(st, L, TC_LIN_V, TC_STAT_Y, NULL), j->kvd));
        lin_scales s;
        scales_of(wf, nout, xmax, ymax, &s);
        for (int p = 0; p < 3; p++) {
            part_wq[p] = f16_rdiv(127.0f, max_of(wf + p0[p], pn[p]));
            part_wo[p] = f16_rdiv(1.0f, part_wq[p]);
            part_acc[p] = s.sy / ((float)s.sx * part_wq[p]); /* float32 per part */
        }
        int mode = FWD_Q_F32_MUL;
        for (int64_t r = 0; r < rows; r++) {
            int part;
            const float wr_ = wf[qkv_channel(j, g, r, &part)];
            if (pc)
                hs[r] = wq_c(wr_);
            else if (j->mha)
                hs[r] = part_wq[part];            /* [H,3,H] x [3,1] float32 */
            else
                hs[r] = part_wo[part];            /* GQA: fp16 W / fp16 wo_t */
            hs2[r] = pt ? (pc ? y_accum_c(&s, wr_) : part_acc[part])
                        : (pc ? wo_c(wr_) : part_wo[part]);
        }
        if (!pc && !j->mha)
            mode = FWD_Q_DT_DIV;
        /* qkv: qkv_para, the smoothed float16 concatenation (no cast) */
        TRY(put_weight(wr, v, "attention.qkv.weight", w->qkv, v->dt, rows, j->H, hs, mode, d_q,
                       d_sc, h_q));
        TRY(put(wr, "attention.qkv.per_channel_scale", hs2, (size_t)rows * sizeof(float)));
        TRY(put_scalar(wr, "input_layernorm.scale_to_int", pt ? (float)s.sx : 1.0f));
        if (pt)
            TRY(put_scalar(wr, "attention.qkv.act_scale", s.y_quant_orig));
        TRY(put_norm(wr, v, "input_layernorm.weight", w->in_norm, j->H, out_dtype, nbuf, nconv));
    }

    /* ---- dense, fc (gate_proj), gate (up_proj), proj (down_proj) ---- */
    typedef struct lin {
        const char *prefix;       /* "attention.dense." */
        tc_linear hf;
        const void *w;
        int64_t rows, cols, row0; /* local rows and their first model channel */
        const float *wmax;        /* model-form row maxima */
        double xmax;
        const double *smoother;   /* local columns, or NULL */
        const char *last;         /* scale of the input quantization, or NULL */
    } lin;
    double xfc = 0.0, xup = 0.0;
    const float *gx = tc_calib_get(st, L, TC_LIN_GATE, TC_STAT_X, NULL);
    const float *ux = tc_calib_get(st, L, TC_LIN_UP, TC_STAT_X, NULL);
    for (int64_t c = 0; c < j->H; c++) {
        xfc = fmax(xfc, (double)gx[c] / j->s_mlp[L * j->H + c]);
        xup = fmax(xup, (double)ux[c] / j->s_mlp[L * j->H + c]);
    }
    const lin lins[4] = {
        { "attention.dense.", TC_LIN_O, w->dense, j->H, j->qd_l, 0, wb_o(j, L), j->xb[2 * L],
          cs->s_o + i * j->qd_l, "attention.quantization_scaling_factor" },
        /* up_proj is written before gate_proj: both set post_layernorm's
         * scale, gate_proj's value stays (as upstream's dict). */
        { "mlp.gate.", TC_LIN_UP, w->gate, j->I_l, j->H, g->i0, wb_up(j, L), xup, NULL, NULL },
        { "mlp.fc.", TC_LIN_GATE, w->fc, j->I_l, j->H, g->i0, wb_gate(j, L), xfc, NULL,
          "post_layernorm.scale_to_int" },
        { "mlp.proj.", TC_LIN_DOWN, w->proj, j->H, j->I_l, 0, wb_down(j, L), j->xb[2 * L + 1],
          cs->s_down + i * j->I_l, "mlp.quantization_scaling_factor" },
    };
    char name[96];
    for (int k = 0; k < 4; k++) {
        const lin *li = &lins[k];
        int64_t nout;
        const float *y = tc_calib_get(st, L, li->hf, TC_STAT_Y, &nout);
        lin_scales s;
        scales_of(li->wmax, nout, li->xmax, max_of(y, nout), &s);
        for (int64_t r = 0; r < li->rows; r++)
            hs[r] = pc ? wq_c(li->wmax[li->row0 + r]) : s.wq_t;
        snprintf(name, sizeof name, "%sweight", li->prefix);
        /* dense/fc/gate/proj: load_weights_from_hf_model's get_weight casts
         * the smoothed float16 weight to --dtype before generate_int8, so a
         * bfloat16 (or float32) run quantizes that cast, with the per-tensor
         * product in the same dtype. */
        TRY(put_weight(wr, v, name, li->w, out_dtype, li->rows, li->cols, hs,
                       pc ? FWD_Q_F32_MUL : FWD_Q_DT_MUL, d_q, d_sc, h_q));
        /* per_channel_scale: column-parallel linears keep their rows'
         * values, row-parallel ones (with a smoother) the whole vector. */
        const int64_t n = pc ? (li->smoother ? nout : li->rows) : 1;
        const int64_t off = li->smoother ? 0 : li->row0;
        for (int64_t r = 0; r < n; r++) {
            const float wv = li->wmax[off + r];
            hs2[r] = pt ? (pc ? y_accum_c(&s, wv) : (float)s.y_accum_t) : (pc ? wo_c(wv) : s.wo_t);
        }
        snprintf(name, sizeof name, "%sper_channel_scale", li->prefix);
        TRY(put(wr, name, hs2, (size_t)n * sizeof(float)));
        if (pt) {
            snprintf(name, sizeof name, "%sact_scale", li->prefix);
            TRY(put_scalar(wr, name, s.y_quant_orig));
        }
        if (li->smoother) {
            for (int64_t c = 0; c < li->cols; c++)
                hs2[c] = (float)li->smoother[c];
            snprintf(name, sizeof name, "%ssmoother", li->prefix);
            TRY(put(wr, name, hs2, (size_t)li->cols * sizeof(float)));
            if (pt)
                TRY(put_scalar(wr, li->last, (float)s.sx));
        } else if (li->last) {
            TRY(put_scalar(wr, li->last, pt ? (float)s.sx : 1.0f));
        }
    }
    return put_norm(wr, v, "post_layernorm.weight", w->post_norm, j->H, out_dtype, nbuf, nconv);
}

/* The KV-cache scale of layer L (local index wr->l), if the job has one. */
static tc_status put_kv_scale(const tc_sq_job *j, writer *wr, int64_t L)
{
    if (j->o.fp8_kv_calibrated) /* FP8 KV (beyond v0.12's constant 1.0, docs/fp8.md). */
        TRY(put_scalar(wr, "attention.kv_cache_scaling_factor",
                       tc_fp8_kv_calibrated_scale(j->st, L)));
    if (j->o.int8_kv_cache) {
        /* §5.8: max over the q, k and v outputs (unsmoothed), / 127 in float32. */
        float m = 0.0f;
        m = fmaxf(m, max_of(tc_calib_get(j->st, L, TC_LIN_Q, TC_STAT_Y, NULL), j->qd));
        m = fmaxf(m, max_of(tc_calib_get(j->st, L, TC_LIN_K, TC_STAT_Y, NULL), j->kvd));
        m = fmaxf(m, max_of(tc_calib_get(j->st, L, TC_LIN_V, TC_STAT_Y, NULL), j->kvd));
        TRY(put_scalar(wr, "attention.kv_cache_scaling_factor", f32_div_scalar(m, 127.0f)));
    }
    return TC_OK;
}

/* Scratch of the passes and writes of one cell's layers: device scratch
 * (dev), the int8 weight and its row scales on the device, their host copy
 * (none when a write queue takes the weights), host vectors. */
typedef struct wbufs {
    dev v;
    bool v_open;
    int8_t *d_q, *h_q;
    float *d_sc, *hs, *hs2, *tmp;
    void *nbuf, *nconv;
} wbufs;

static void wbufs_free_host(wbufs *b)
{
    free(b->h_q);
    free(b->hs);
    free(b->hs2);
    free(b->tmp);
    free(b->nbuf);
    free(b->nconv);
    memset(b, 0, sizeof *b);
}

static void wbufs_close(wbufs *b)
{
    if (b->d_q)
        b->v.ops->release(b->v.b, b->d_q);
    if (b->d_sc)
        b->v.ops->release(b->v.b, b->d_sc);
    if (b->v_open)
        dev_close(&b->v);
    wbufs_free_host(b);
}

static tc_status wbufs_open(const tc_sq_job *j, tc_fwd_engine *e, bool host_q, wbufs *b)
{
    memset(b, 0, sizeof *b);
    /* Buffers for the largest linear of the cell. */
    int64_t most = j->H * (j->qd_l + 2 * j->kvd_l);
    if (j->H * j->I_l > most)
        most = j->H * j->I_l;
    const size_t nvec = scratch_floats(j); /* >= H, I and the local qkv rows */
    TRY(dev_open(&b->v, e, nvec));
    b->v_open = true;
    b->h_q = host_q ? malloc((size_t)most) : NULL;
    b->hs = malloc(nvec * sizeof(float));
    b->hs2 = malloc(nvec * sizeof(float));
    b->tmp = malloc(nvec * sizeof(float));
    b->nbuf = malloc((size_t)j->H * 4);
    b->nconv = malloc((size_t)j->H * 4);
    tc_status st = (b->h_q || !host_q) && b->hs && b->hs2 && b->tmp && b->nbuf && b->nconv
                       ? TC_OK
                       : tc_fail(TC_E_INTERNAL, "out of memory for SmoothQuant buffers");
    if (st == TC_OK)
        st = b->v.ops->alloc(b->v.b, (size_t)most, (void **)&b->d_q);
    if (st == TC_OK)
        st = b->v.ops->alloc(b->v.b, nvec * sizeof(float), (void **)&b->d_sc);
    if (st != TC_OK)
        wbufs_close(b);
    return st;
}

static tc_status write_layer_with(tc_sq_job *j, wbufs *b, const tc_fwd_layer_ptrs *w,
                                  const cell_geo *g, int cell, int64_t i, writer *wr,
                                  tc_dtype out_dtype)
{
    return write_layer(j, &b->v, w, g, cell, i, wr, out_dtype, b->d_q, b->d_sc, b->h_q, b->hs,
                       b->hs2, b->nbuf, b->nconv);
}

tc_status tc_sq_write_cell(tc_sq_job *j, tc_fwd_engine *e, int cell, tc_cell_output *out,
                           tc_dtype out_dtype)
{
    cell_geo g;
    geo(j, cell, &g);
    writer wr = { out, 0, NULL };
    for (int64_t i = 0; i < j->layers_l; i++) {
        wr.l = i;
        TRY(put_kv_scale(j, &wr, g.layer0 + i));
    }
    if (!j->sq)
        return TC_OK;
    if (!e)
        return tc_fail(TC_E_INTERNAL, "SmoothQuant: no weights for cell %d", cell);
    wbufs b;
    TRY(wbufs_open(j, e, true, &b));
    tc_status st = TC_OK;
    for (int64_t i = 0; st == TC_OK && i < j->layers_l; i++) {
        tc_fwd_layer_ptrs w;
        tc_fwd_layer_ptrs_get(e, i, &w);
        wr.l = i;
        st = write_layer_with(j, &b, &w, &g, cell, i, &wr, out_dtype);
    }
    wbufs_close(&b);
    return st;
}

tc_status tc_sq_stream_layer(tc_sq_job *j, tc_fwd_engine *e, int cell, int64_t i, MPI_Comm tp,
                             tc_cell_output *out, tc_dtype out_dtype, tc_write_queue *wq)
{
    cell_geo g;
    geo(j, cell, &g);
    const int64_t L = g.layer0 + i;
    writer wr = { out, i, wq };
    if (out)
        TRY(put_kv_scale(j, &wr, L));
    if (!j->sq)
        return TC_OK;
    TRY(cell_smoothers_alloc(j, cell));
    if (!j->stream) {
        j->stream = malloc(sizeof *j->stream);
        if (!j->stream)
            return tc_fail(TC_E_INTERNAL, "out of memory");
        const tc_status so = wbufs_open(j, e, wq == NULL && out != NULL, j->stream);
        if (so != TC_OK) {
            free(j->stream);
            j->stream = NULL;
            return so;
        }
    }
    wbufs *bp = j->stream;
    tc_fwd_layer_ptrs w;
    tc_fwd_layer_ptrs_get(e, i, &w);
    /* Pass A and its reduction over the layer's tensor-parallel slices (the
     * same maxima the world reduction of tc_sq_reduce_a gives this layer). */
    tc_status st = pass_a_layer(j, &bp->v, e, &g, i, bp->tmp);
    if (st == TC_OK)
        st = TC_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, j->wa + L * 2 * j->H, (int)(2 * j->H),
                                      MPI_FLOAT, MPI_MAX, tp));
    if (st == TC_OK)
        st = layer_smoothers(j, L);
    if (st == TC_OK)
        st = pass_b_layer(j, &bp->v, &w, &g, cell, i, bp->tmp);
    if (st == TC_OK)
        st = TC_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, j->wb + (size_t)L * j->wb_layer,
                                      (int)j->wb_layer, MPI_FLOAT, MPI_MAX, tp));
    if (st == TC_OK)
        st = TC_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, j->xb + 2 * L, 2, MPI_DOUBLE, MPI_MAX, tp));
    if (st == TC_OK && out)
        st = write_layer_with(j, bp, &w, &g, cell, i, &wr, out_dtype);
    return st;
}

void tc_sq_stream_end(tc_sq_job *j)
{
    if (!j->stream)
        return;
    wbufs_close(j->stream);
    free(j->stream);
    j->stream = NULL;
}
