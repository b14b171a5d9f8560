/* sq_internal.h (private to src/quant/sq*.c): the SmoothQuant job of sq.h
 * shared by sq.c (job, passes A and B, plan) and sq_write.c (the tensors
 * written per layer and per cell, and the layer-streamed form): the job's
 * state, the scalar reference divisions, the device helpers over the
 * engine's backend and the cell geometry. */
#ifndef TRTCONV_SQ_INTERNAL_H
#define TRTCONV_SQ_INTERNAL_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include "trtconv/quant/sq.h"
#include "trtconv/fwd/backend.h"

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
    double stream_s[3];     /* tc_sq_stream_layer's time: pass A, pass B, the writes */
};

/* ---- scalar reference ---- */

static inline float f16_rdiv(float c, float t)
{
    return tc_sq_round_f16(tc_sq_round_f16(1.0f / t) * c);
}

static inline float f32_rdiv(float c, float t)
{
    return (1.0f / t) * c;
}

static inline double f64_rdiv(double c, double t)
{
    return (1.0 / t) * c;
}

/* `t / c` for a Python scalar c: CUDA multiplies by the float reciprocal. */
static inline float f32_div_scalar(float t, float c)
{
    return t * (1.0f / c);
}

/* Model-form sections of pass B for layer L. */
static inline float *wb_qkv(const tc_sq_job *j, int64_t L) { return j->wb + (size_t)L * j->wb_layer; }
static inline float *wb_o(const tc_sq_job *j, int64_t L) { return wb_qkv(j, L) + j->qd + 2 * j->kvd; }
static inline float *wb_gate(const tc_sq_job *j, int64_t L) { return wb_o(j, L) + j->H; }
static inline float *wb_up(const tc_sq_job *j, int64_t L) { return wb_gate(j, L) + j->I; }
static inline float *wb_down(const tc_sq_job *j, int64_t L) { return wb_up(j, L) + j->I; }

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

tc_status sq_dev_open(dev *v, tc_fwd_engine *e, size_t n);
void sq_dev_close(dev *v);

/* ---- cell geometry ---- */

typedef struct cell_geo {
    int tp_rank, pp_rank;
    int64_t layer0, q0, kv0, i0;
} cell_geo;

static inline void geo(const tc_sq_job *j, int cell, cell_geo *g)
{
    g->tp_rank = tc_layout_tp_rank(&j->layout, cell);
    g->pp_rank = tc_layout_pp_rank(&j->layout, cell);
    g->layer0 = (int64_t)g->pp_rank * j->layers_l;
    g->q0 = (int64_t)g->tp_rank * j->qd_l;
    g->kv0 = (int64_t)g->tp_rank * j->kvd_l;
    g->i0 = (int64_t)g->tp_rank * j->I_l;
}

/* Rows of one layer's five linears in a cell (qkv, dense, fc, gate, proj):
 * the row maxima, scales and per-layer scratch a pass takes at once. */
static inline int64_t layer_rows(const tc_sq_job *j)
{
    return j->qd_l + 2 * j->kvd_l + j->H + 2 * j->I_l + j->H;
}

/* Elements of those five weights: a layer's int8 weights in bytes. */
static inline int64_t layer_weight_elems(const tc_sq_job *j)
{
    return j->H * (j->qd_l + 2 * j->kvd_l) + j->H * j->qd_l + 2 * j->I_l * j->H +
           j->H * j->I_l;
}

/* Scratch elements (floats, and doubles for the smoothers) the passes of
 * one layer need, so that each pass queues all of its kernels and waits
 * once (sq.c): its row maxima and the write's scales [layer_rows], which
 * also covers pass B's two column maxima [qd_l + I_l] and the smoothers of
 * qkv, o, fc/gate and down [2 H + qd_l + I_l]; pass A's three column
 * maxima [3 H]; at least I. */
static inline size_t scratch_floats(const tc_sq_job *j)
{
    int64_t n = layer_rows(j);
    if (3 * j->H > n)
        n = 3 * j->H;
    if (j->I > n)
        n = j->I;
    return (size_t)n;
}

/* sq.c: the passes of one local layer i of a cell (see sq.c), the smoothers
 * of layer L from its complete pass-A maxima, a cell's row-parallel
 * smoother arrays. */
tc_status sq_cell_smoothers_alloc(tc_sq_job *j, int cell);
tc_status sq_pass_a_layer(tc_sq_job *j, dev *v, tc_fwd_engine *e, const cell_geo *g, int64_t i,
                          float *tmp);
tc_status sq_layer_smoothers(tc_sq_job *j, int64_t L);
tc_status sq_pass_b_layer(tc_sq_job *j, dev *v, const tc_fwd_layer_ptrs *w, const cell_geo *g,
                          int cell, int64_t i, float *tmp);
/* sq_write.c: the host memory of the streamed layers' scratch (its device
 * memory goes with the engine). */
struct wbufs;
void sq_wbufs_free_host(struct wbufs *b);

#endif
