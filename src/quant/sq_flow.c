/* sq_flow.c: SmoothQuant W8A8 and INT8 KV cache as a calibrated method
 * (method.h tc_sq_calibrated_ops) over the passes of sq.h.
 *
 * Engines: a rank holding exactly one cell keeps one engine across the
 * passes (the one that calibrated, or one loaded for pass A), whose weights
 * stay smoothed after pass B; a rank with several cells loads each cell's
 * weights per pass and smooths a reloaded cell again before writing it.
 *
 * Layer-streamed (stream_begin / stream_layer, app/calib_overlap.c): the
 * calibrating engine's hook hands over each layer while it is resident;
 * tc_sq_stream_layer runs both passes on it, reduced over the cell's tp
 * group, and writes it, its int8 weights through a write queue whose
 * thread writes while the next layer calibrates. */
#include "trtconv/quant/method.h"
#include "trtconv/core/log.h"
#include "trtconv/fwd/backend.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "trtconv/quant/sq.h"

typedef struct sq_flow {
    tc_quant_ctx ctx;
    tc_sq_job *job;
    tc_fwd_engine *kept;
    bool smoothquant;
    /* layer-streamed (stream_begin): the calibrating engine (borrowed), this
     * rank's cell and its output, the ranks of its layers' tp slices, the
     * writer of the int8 weights */
    tc_fwd_engine *streaming;
    int cell;
    tc_cell_output *out;
    MPI_Comm tp;
    int tp_ranks;                       /* its size (1: the hook makes no MPI call) */
    tc_write_queue *wq;
    int64_t layer0, layers_done, n_layers;
    double layer_seconds, writer_wait;  /* in the hook; of it, waiting for buffers */
} sq_flow;

typedef enum sq_step { PASS_A, PASS_B, PASS_WRITE } sq_step;

static tc_status create(const tc_quant_ctx *ctx, tc_fwd_engine *calibrated, void **out)
{
    *out = NULL;
    sq_flow *f = calloc(1, sizeof *f);
    if (!f) {
        tc_fwd_destroy(calibrated);
        return tc_fail(TC_E_INTERNAL, "out of memory");
    }
    f->ctx = *ctx;
    f->tp = MPI_COMM_NULL;
    if (calibrated && !tc_fwd_has_layers(calibrated)) {
        /* Calibrated layer by layer: the passes load the weights again. */
        tc_fwd_destroy(calibrated);
        calibrated = NULL;
    }
    f->kept = calibrated;
    const tc_quant_method *w = ctx->q->weights;
    f->smoothquant = w->smoothquant;
    const tc_sq_params params = {
        .layout = ctx->layout,
        .smoothquant = w->smoothquant,
        .alpha = ctx->q->alpha,
        .per_channel = w->per_channel,
        .per_token = w->per_token,
        .int8_kv_cache = (ctx->q->kv->calib & TC_CALIB_KV) && !strcmp(ctx->q->kv->config_algo, "INT8"),
        .fp8_kv_calibrated = (ctx->q->kv->calib & TC_CALIB_KV) &&
                             !strcmp(ctx->q->kv->config_algo, "FP8"),
    };
    *out = f;
    return tc_sq_job_create(&ctx->model->cfg, &params, ctx->stats, &f->job);
}

/* A weights-only engine for `cell`. */
static tc_status load_cell(const sq_flow *f, int cell, tc_fwd_engine **e)
{
    tc_fwd_setup su;
    memset(&su, 0, sizeof su);
    su.model = f->ctx.model;
    su.layout = f->ctx.layout;
    su.emb = f->ctx.emb;
    su.dtype = TC_DT_F16;
    su.gpu = f->ctx.gpu;
    su.threads = f->ctx.threads;
    su.weights_only = true;
    su.cell = cell;
    return tc_fwd_create(&su, e);
}

static tc_status sq_pass(sq_flow *f, sq_step pass, const int *cells, size_t n_cells,
                         tc_cell_output *outs)
{
    tc_status st = TC_OK;
    if (pass == PASS_WRITE && !f->smoothquant) {
        /* INT8 KV cache alone: scales from the statistics, no weights. */
        for (size_t i = 0; st == TC_OK && i < n_cells; i++)
            if (outs[i].fd >= 0)
                st = tc_sq_write_cell(f->job, NULL, cells[i], &outs[i], f->ctx.out_dtype);
        return st;
    }
    for (size_t i = 0; st == TC_OK && i < n_cells; i++) {
        if (pass == PASS_WRITE && outs[i].fd < 0)
            continue; /* --resume kept its file */
        tc_fwd_engine *e = n_cells == 1 ? f->kept : NULL;
        const bool fresh = e == NULL;
        if (fresh)
            st = load_cell(f, cells[i], &e);
        if (st == TC_OK && pass == PASS_A)
            st = tc_sq_pass_a(f->job, e, cells[i]);
        else if (st == TC_OK && pass == PASS_B)
            st = tc_sq_pass_b(f->job, e, cells[i]);
        else if (st == TC_OK) {
            if (fresh) /* a reloaded cell: its weights are not smoothed yet */
                st = tc_sq_smooth_again(f->job, e, cells[i]);
            if (st == TC_OK)
                st = tc_sq_write_cell(f->job, e, cells[i], &outs[i], f->ctx.out_dtype);
        }
        if (n_cells == 1 && fresh && st == TC_OK && pass != PASS_WRITE)
            f->kept = e;
        else if (fresh)
            tc_fwd_destroy(e);
    }
    return st;
}

/* Passes A and B with their all-reduces (sq.h), each ending in agreement. */
static tc_status prepare(void *job, const int *cells, size_t n_cells)
{
    sq_flow *f = job;
    const tc_comm *c = f->ctx.comm;
    if (f->kept && (!f->smoothquant || n_cells == 0)) {
        tc_fwd_destroy(f->kept); /* not needed for the KV scales / by dp replicas */
        f->kept = NULL;
    }
    if (!f->smoothquant)
        return TC_OK;
    tc_status st = sq_pass(f, PASS_A, cells, n_cells, NULL);
    st = tc_comm_agree(c, st, "SmoothQuant weight maxima");
    if (st == TC_OK)
        st = tc_sq_reduce_a(f->job, c->world);
    st = tc_comm_agree(c, st, "SmoothQuant smoothers");
    if (st == TC_OK)
        st = sq_pass(f, PASS_B, cells, n_cells, NULL);
    st = tc_comm_agree(c, st, "SmoothQuant smoothing");
    if (st == TC_OK)
        st = tc_sq_reduce_b(f->job, c->world);
    return tc_comm_agree(c, st, "SmoothQuant scales");
}

static tc_status plan(void *job, tc_plan *p)
{
    return tc_sq_plan(((sq_flow *)job)->job, p);
}

static tc_status write_cells(void *job, const int *cells, size_t n_cells, tc_cell_output *outs)
{
    sq_flow *f = job;
    if (f->streaming || f->wq) {
        /* Every layer was written by stream_layer; its queue is drained. */
        (void)cells, (void)n_cells, (void)outs;
        if (f->cell >= 0 && f->layers_done != f->n_layers)
            return tc_fail(TC_E_INTERNAL, "SmoothQuant: %lld of %lld layers written while "
                           "calibrating", (long long)f->layers_done, (long long)f->n_layers);
        return TC_OK;
    }
    return sq_pass(job, PASS_WRITE, cells, n_cells, outs);
}

/* ---- layer-streamed (tc_calibrated_ops stream_begin / stream_layer) ---- */

static void pin(void *ctx, void *p, size_t n)
{
    struct fwd_backend *b = ctx;
    b->ops->pin_host(b, p, n);
}

static void unpin(void *ctx, void *p)
{
    struct fwd_backend *b = ctx;
    b->ops->unpin_host(b, p);
}

/* Write-queue buffers: 16 of 16 MiB, pinned, written by 4 threads (a
 * layer's int8 weights of the 8B shape are 208 MiB; the queue keeps host
 * memory flat whatever the model; the log says how long the layers waited
 * for it). The hook runs beside the next layer's forward pass, but while it
 * waits the host queues no work, so a long wait idles the GPU. Session 13
 * measured the same 0.00 s of waiting with 4 buffers as with 8, but the
 * hook was then slowed by its own kernels; once it queued them together
 * (session 17) the 8B SmoothQuant on an H100 waited 1.1-3.1 s for 4
 * buffers and 0.00 s for 16, at 829 MiB of peak RSS instead of 637
 * (bench/gpu_rss.sh, docs/performance.md). The 70B shape (0.85 GB of
 * int8 weights a layer) still waits 0.2 s a layer with 16, with 4 writer
 * threads as with 8 (session 18): the writes go at the disk's rate (each
 * starts its write-back, rankfile.c). TRTCONV_SQ_WQ_BUFFERS (1..64) and
 * TRTCONV_SQ_WQ_THREADS (1..16) set the counts for such measurements
 * (docs/calibration-memory.md). */
#define SQ_WQ_BUFFERS 16
#define SQ_WQ_BYTES ((size_t)16 << 20)
#define SQ_WQ_THREADS 4

/* The integer in environment variable `name` if it is one in [lo, hi],
 * else `dflt`. */
static int env_count(const char *name, int lo, int hi, int dflt)
{
    const char *v = getenv(name);
    char *end = NULL;
    const long n = v && *v ? strtol(v, &end, 10) : 0;
    return end && *end == '\0' && n >= lo && n <= hi ? (int)n : dflt;
}

static tc_status stream_begin(void *job, tc_fwd_engine *engine, const int *cells, size_t n_cells,
                              tc_cell_output *outs)
{
    sq_flow *f = job;
    const tc_layout *l = &f->ctx.layout;
    f->streaming = engine;
    f->cell = n_cells == 1 ? cells[0] : -1;
    /* The tp group of a cell: the cells of its pipeline stage; ranks
     * without a cell (data-parallel replicas) sit out. */
    const int color = f->cell >= 0 ? tc_layout_pp_rank(l, f->cell) : MPI_UNDEFINED;
    const int key = f->cell >= 0 ? tc_layout_tp_rank(l, f->cell) : 0;
    f->tp = MPI_COMM_NULL;
    tc_status st = TC_MPI_TRY(MPI_Comm_split(f->ctx.comm->world, color, key, &f->tp));
    if (st != TC_OK || f->cell < 0)
        return st;
    st = TC_MPI_TRY(MPI_Comm_size(f->tp, &f->tp_ranks));
    if (st != TC_OK)
        return st;
    if (n_cells != 1)
        return tc_fail(TC_E_INTERNAL, "SmoothQuant while calibrating: %zu cells on one rank",
                       n_cells);
    /* A file --resume kept: the passes still run (the tp group reduces
     * over every slice), nothing is written. */
    f->out = outs[0].fd >= 0 ? &outs[0] : NULL;
    f->n_layers = (int64_t)f->ctx.model->cfg.num_hidden_layers / l->pp;
    f->layer0 = (int64_t)tc_layout_pp_rank(l, f->cell) * f->n_layers;
    if (!f->smoothquant)
        return TC_OK;
    if (f->out) {
        struct fwd_backend *b = tc_fwd_backend_get(engine);
        const tc_wq_pinning pinning = { pin, unpin, b };
        st = tc_wq_create(env_count("TRTCONV_SQ_WQ_BUFFERS", 1, 64, SQ_WQ_BUFFERS), SQ_WQ_BYTES,
                          env_count("TRTCONV_SQ_WQ_THREADS", 1, 16, SQ_WQ_THREADS), &pinning,
                          &f->wq);
        if (st != TC_OK)
            return st;
    }
    /* The hook's device scratch before the first layer: a rank short of
     * memory stops now, not after calibrating a layer. */
    return tc_sq_stream_open(f->job, engine, f->wq == NULL && f->out != NULL);
}

/* Layer L's statistics hold no NaN or Inf: the same on every rank of the
 * stage (they are reduced before the hook), so a layer that overflowed is
 * skipped by its whole tp group alike. */
static bool layer_finite(const tc_calib_stats *s, int64_t L)
{
    const size_t a = tc_calib_offset(&s->d, L, TC_LIN_Q, TC_STAT_X);
    const size_t b = L + 1 < s->d.layers ? tc_calib_offset(&s->d, L + 1, TC_LIN_Q, TC_STAT_X)
                                         : tc_calib_offset(&s->d, -1, TC_LIN_LM_HEAD, TC_STAT_X);
    for (size_t k = a; k < b; k++)
        if (!isfinite(s->data[k]))
            return false;
    return true;
}

/* Free what lives on the engine's backend (the hook's device scratch, the
 * write queue's pinned buffers) and wait for the queued writes while the
 * engine still exists: after the last layer, or before the engine is freed
 * after a failure (stream_end). The first write failure, if any. */
static tc_status release_stream(sq_flow *f)
{
    if (f->job)
        tc_sq_stream_end(f->job);
    if (!f->wq)
        return TC_OK;
    const tc_status st = tc_wq_drain(f->wq);
    f->writer_wait = tc_wq_waited_seconds(f->wq);
    tc_wq_free(f->wq);
    f->wq = NULL;
    return st;
}

static tc_status stream_layer(void *job, int64_t layer)
{
    sq_flow *f = job;
    if (f->cell < 0)
        return TC_OK; /* a replica: its layers are written by replica 0 */
    const int64_t i = layer - f->layer0;
    if (i < 0 || i >= f->n_layers)
        return tc_fail(TC_E_INTERNAL, "SmoothQuant: layer %lld is not cell %d's", (long long)layer,
                       f->cell);
    const double t0 = tc_now_seconds();
    tc_status st = TC_OK;
    /* A layer whose statistics overflowed is skipped: the calibration's own
     * check names it afterwards, and nothing commits. */
    if (layer_finite(f->ctx.stats, layer)) {
        /* A group of one reduces nothing: no MPI call. */
        st = tc_sq_stream_layer(f->job, f->streaming, f->cell, i,
                                f->tp_ranks > 1 ? f->tp : MPI_COMM_NULL, f->out,
                                f->ctx.out_dtype, f->wq);
        if (st == TC_OK)
            f->layers_done++;
    }
    if (i == f->n_layers - 1) {
        const tc_status sw = release_stream(f);
        st = st != TC_OK ? st : sw;
    }
    f->layer_seconds += tc_now_seconds() - t0;
    if (i == f->n_layers - 1) {
        double part[3];
        tc_sq_stream_seconds(f->job, part);
        tc_log(TC_LOG_VERBOSE, "SmoothQuant while calibrating: %.2f s smoothing, quantizing and "
               "handing over %lld layers (pass A %.2f s, pass B %.2f s, quantizing and handing "
               "over %.2f s; %.2f s of it waiting for the writer threads)",
               f->layer_seconds, (long long)f->n_layers, part[0], part[1], part[2],
               f->writer_wait);
    }
    return st;
}

static void stream_end(void *job)
{
    (void)release_stream(job);
}

static void destroy(void *job)
{
    sq_flow *f = job;
    if (!f)
        return;
    tc_wq_free(f->wq);
    if (f->tp != MPI_COMM_NULL)
        MPI_Comm_free(&f->tp);
    tc_fwd_destroy(f->kept);
    tc_sq_job_free(f->job);
    free(f);
}

const tc_calibrated_ops tc_sq_calibrated_ops = {
    .create = create, .prepare = prepare, .plan = plan, .write = write_cells, .destroy = destroy,
    .stream_begin = stream_begin, .stream_layer = stream_layer, .stream_end = stream_end,
};

/* A calibrated KV cache alone (INT8, or FP8 with --calibrate_fp8_kv_scale)
 * writes its scales after the calibration (write_cells, from the final
 * statistics) and nothing before depends on them, so the weights can be
 * written while the model calibrates (app/calib_overlap.c): no value of a
 * plan waits for a layer. */
static tc_status kv_refresh_layer(void *job, tc_plan *p, int64_t layer)
{
    (void)job; (void)p; (void)layer;
    return TC_OK;
}

const tc_calibrated_ops tc_kv_calibrated_ops = {
    .create = create, .prepare = prepare, .plan = plan, .write = write_cells, .destroy = destroy,
    .refresh_layer = kv_refresh_layer,
};
