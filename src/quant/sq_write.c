/* sq_write.c: the SmoothQuant / INT8-KV tensors of a cell, written (sq.h
 * tc_sq_write_cell), and the layer-streamed form (tc_sq_stream_layer):
 * each layer's passes on the resident layer, reduced over the cell's tp
 * group, then its tensors. The formulas: the top of sq.c. */
#define _POSIX_C_SOURCE 200809L
#include "sq_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "trtconv/mpi/comm.h"
#include "trtconv/core/dtype.h"
#include "trtconv/core/log.h"
#include "trtconv/quant/method.h"

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

/* A layer's int8 weights are quantized in one go and handed over after:
 * queue_weight uploads the row scales (the host array stays untouched until
 * flush_weights) and queues the kernel into its own part of the layer-sized
 * device buffers, flush_weights downloads and writes each. So the hook waits
 * for its kernels once per layer, not once per weight (sq.c says why). */
typedef struct quant_queue {
    int8_t *d_q;              /* the layer's int8 weights, side by side */
    float *d_sc;              /* their row scales */
    int8_t *h_q;              /* a host copy of the largest (no write queue), or NULL */
    size_t q_used, sc_used;
    int n;
    struct {
        char suffix[96];
        const int8_t *d_q;
        size_t bytes;
    } w[5];
} quant_queue;

/* Queue weight [rows, cols] quantized with per-row scales `scale` (host);
 * qdt: the dtype upstream holds the weight in when it quantizes (see
 * write_layer). */
static tc_status queue_weight(quant_queue *qq, dev *v, const char *suffix, const void *w,
                              tc_dtype qdt, int64_t rows, int64_t cols, const float *scale,
                              int mode)
{
    if (qq->n == (int)(sizeof qq->w / sizeof qq->w[0]))
        return tc_fail(TC_E_INTERNAL, "SmoothQuant: more than %d weights in a layer", qq->n);
    int8_t *d_q = qq->d_q + qq->q_used;
    float *d_sc = qq->d_sc + qq->sc_used;
    TRY(v->ops->upload_async(v->b, d_sc, scale, (size_t)rows * sizeof(float)));
    TRY(v->ops->quantize_i8(v->b, d_q, w, v->dt, qdt, rows, cols, d_sc, mode));
    snprintf(qq->w[qq->n].suffix, sizeof qq->w[qq->n].suffix, "%s", suffix);
    qq->w[qq->n].d_q = d_q;
    qq->w[qq->n].bytes = (size_t)(rows * cols);
    qq->n++;
    qq->q_used += (size_t)(rows * cols);
    qq->sc_used += (size_t)rows;
    return TC_OK;
}

/* Download one queued weight and write it: through the write queue's
 * buffers piece by piece when there is one (int8: nothing to check for
 * finiteness), else through h_q. */
static tc_status hand_over(writer *wr, dev *v, const char *suffix, const int8_t *d_q,
                           size_t bytes, int8_t *h_q)
{
    if (!wr->wq) {
        TRY(v->ops->download(v->b, h_q, d_q, bytes));
        return put(wr, suffix, h_q, bytes);
    }
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

static tc_status flush_weights(quant_queue *qq, writer *wr, dev *v)
{
    for (int k = 0; k < qq->n; k++)
        TRY(hand_over(wr, v, qq->w[k].suffix, qq->w[k].d_q, qq->w[k].bytes, qq->h_q));
    qq->n = 0;
    qq->q_used = qq->sc_used = 0;
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

/* hs: the row scales of every weight of the layer side by side (layer_rows
 * floats), kept until the weights are flushed. */
static tc_status write_layer(tc_sq_job *j, dev *v, const tc_fwd_layer_ptrs *w, const cell_geo *g,
                             int cell, int64_t i, writer *wr, tc_dtype out_dtype, quant_queue *qq,
                             float *hs, float *hs2, void *nbuf, void *nconv)
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
        TRY(queue_weight(qq, v, "attention.qkv.weight", w->qkv, v->dt, rows, j->H, hs, mode));
        TRY(put(wr, "attention.qkv.per_channel_scale", hs2, (size_t)rows * sizeof(float)));
        TRY(put_scalar(wr, "input_layernorm.scale_to_int", pt ? (float)s.sx : 1.0f));
        if (pt)
            TRY(put_scalar(wr, "attention.qkv.act_scale", s.y_quant_orig));
        hs += rows;
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
        TRY(queue_weight(qq, v, name, li->w, out_dtype, li->rows, li->cols, hs,
                         pc ? FWD_Q_F32_MUL : FWD_Q_DT_MUL));
        hs += li->rows;
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
    /* The norms' downloads come after the kernels, which they would wait for. */
    TRY(flush_weights(qq, wr, v));
    TRY(put_norm(wr, v, "input_layernorm.weight", w->in_norm, j->H, out_dtype, nbuf, nconv));
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
 * (dev), a layer's int8 weights and their row scales on the device, a host
 * copy of the largest (none when a write queue takes the weights), host
 * vectors. */
struct wbufs {
    dev v;
    bool v_open;
    int8_t *d_q, *h_q;
    float *d_sc, *hs, *hs2, *tmp;
    void *nbuf, *nconv;
};
typedef struct wbufs wbufs;

void sq_wbufs_free_host(wbufs *b)
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
        sq_dev_close(&b->v);
    sq_wbufs_free_host(b);
}

static tc_status wbufs_open(const tc_sq_job *j, tc_fwd_engine *e, bool host_q, wbufs *b)
{
    memset(b, 0, sizeof *b);
    /* The host copy holds the largest linear of the cell, the device buffer
     * every int8 weight of a layer (write_layer quantizes them together). */
    int64_t most = j->H * (j->qd_l + 2 * j->kvd_l);
    if (j->H * j->I_l > most)
        most = j->H * j->I_l;
    const int64_t layer_q = layer_weight_elems(j);
    const size_t nvec = scratch_floats(j); /* >= layer_rows: the scales of every weight */
    TRY(sq_dev_open(&b->v, e, nvec));
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
    if (st == TC_OK && b->v.ops->alloc(b->v.b, (size_t)layer_q, (void **)&b->d_q) != TC_OK)
        st = tc_fail(TC_E_USAGE, "SmoothQuant: a layer's int8 weights (%.1f MiB) do not fit in "
                     "this rank's %s memory next to the calibration; use more tensor-parallel "
                     "ranks (docs/calibration-memory.md)", (double)layer_q / 1048576.0,
                     b->v.ops->name);
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
    quant_queue qq = { .d_q = b->d_q, .d_sc = b->d_sc, .h_q = b->h_q };
    return write_layer(j, &b->v, w, g, cell, i, wr, out_dtype, &qq, b->hs, b->hs2, b->nbuf,
                       b->nconv);
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
    TRY(sq_cell_smoothers_alloc(j, cell));
    TRY(tc_sq_stream_open(j, e, wq == NULL && out != NULL));
    wbufs *bp = j->stream;
    tc_fwd_layer_ptrs w;
    tc_fwd_layer_ptrs_get(e, i, &w);
    /* Pass A and its reduction over the layer's tensor-parallel slices (the
     * same maxima the world reduction of tc_sq_reduce_a gives this layer). */
    double t = tc_now_seconds(), now;
    tc_status st = sq_pass_a_layer(j, &bp->v, e, &g, i, bp->tmp);
    if (st == TC_OK && tp != MPI_COMM_NULL)
        st = TC_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, j->wa + L * 2 * j->H, (int)(2 * j->H),
                                      MPI_FLOAT, MPI_MAX, tp));
    now = tc_now_seconds();
    j->stream_s[0] += now - t;
    t = now;
    if (st == TC_OK)
        st = sq_layer_smoothers(j, L);
    if (st == TC_OK)
        st = sq_pass_b_layer(j, &bp->v, &w, &g, cell, i, bp->tmp);
    if (st == TC_OK && tp != MPI_COMM_NULL)
        st = TC_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, j->wb + (size_t)L * j->wb_layer,
                                      (int)j->wb_layer, MPI_FLOAT, MPI_MAX, tp));
    if (st == TC_OK && tp != MPI_COMM_NULL)
        st = TC_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, j->xb + 2 * L, 2, MPI_DOUBLE, MPI_MAX, tp));
    now = tc_now_seconds();
    j->stream_s[1] += now - t;
    t = now;
    if (st == TC_OK && out)
        st = write_layer_with(j, bp, &w, &g, cell, i, &wr, out_dtype);
    j->stream_s[2] += tc_now_seconds() - t;
    return st;
}

void tc_sq_stream_seconds(const tc_sq_job *j, double out[3])
{
    for (int k = 0; k < 3; k++)
        out[k] = j ? j->stream_s[k] : 0.0;
}

tc_status tc_sq_stream_open(tc_sq_job *j, tc_fwd_engine *e, bool host_q)
{
    if (!j->sq || j->stream)
        return TC_OK;
    j->stream = malloc(sizeof *j->stream);
    if (!j->stream)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    const tc_status st = wbufs_open(j, e, host_q, j->stream);
    if (st != TC_OK) {
        free(j->stream);
        j->stream = NULL;
    }
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
