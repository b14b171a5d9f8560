/* calib_overlap.c: a calibrated quantization whose writing overlaps its
 * calibration (calib_steps.h; docs/calibration-memory.md).
 *
 * The layer-streamed calibration finishes the statistics of layer L before
 * it starts layer L+1, and a method with refresh_layer (FP8 per tensor)
 * needs nothing but layer L's statistics for layer L's tensors (a
 * calibrated KV cache alone needs them for nothing but its scales, written
 * after the calibration). SmoothQuant (stream_layer) needs layer L's
 * weights too: the hook hands it the resident layer, it smooths, quantizes
 * and writes it itself. So the
 * cells are planned and opened before calibrating, with every value that
 * depends on the statistics in tensors gated on their layer; the conversion
 * workers start at once (the embedding, norms and lm_head, which need no
 * statistics, first), and after each layer the engine's hook reduces that
 * layer's statistics over the stage's tensor- and data-parallel ranks, the
 * method fills the layer's values into the plans and the layer's gate
 * opens. The bytes are those of the sequential flow: the same statistics
 * reach the same fill functions. */
#include "calib_steps.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "trtconv/core/log.h"

typedef struct overlap {
    const tc_job *j;
    const tc_calibrated_ops *ops;
    void *method_job;
    tc_cell_set *set;
    tc_convert_gate *gate;
    tc_calib_run run;
    tc_calib_stats *stats;
    double t_done;          /* when the statistics were final */
} overlap;

static tc_status layer_done(void *ctx, int64_t layer)
{
    overlap *v = ctx;
    if (v->ops->stream_layer) {
        TC_TRY(v->ops->stream_layer(v->method_job, layer));
        tc_convert_gate_open(v->gate, layer);
        return TC_OK;
    }
    for (size_t i = 0; i < v->set->n; i++)
        if (v->set->outs[i].plan)
            TC_TRY(v->ops->refresh_layer(v->method_job, v->set->outs[i].plan, layer));
    tc_convert_gate_open(v->gate, layer);
    return TC_OK;
}

tc_status tc_calib_overlap_begin(const tc_job *j, tc_calib_stats *stats, tc_calib_run *run)
{
    tc_calib_dims dims;
    tc_calib_dims_from_config(&j->model->cfg, &dims);
    tc_status st = tc_calib_stats_alloc(&dims, stats);
    st = tc_comm_agree(j->comm, st, "calibration statistics");
    if (st == TC_OK)
        st = tc_calib_begin(j, run);
    if (st == TC_OK)
        snprintf(stats->forward_dtype, sizeof stats->forward_dtype, "%s", tc_dtype_name(run->fdt));
    return st;
}

tc_status tc_calib_with_hook(const tc_job *j, tc_calib_run *run, tc_calib_stats *stats,
                             tc_fwd_layer_hook hook, void *hook_ctx,
                             void (*before_free)(void *hook_ctx), double *t_done)
{
    tc_fwd_set_layer_hook(run->engine, hook, hook_ctx, stats);
    tc_status st = tc_calib_finish(j, run, stats);
    if (st == TC_OK)
        st = tc_calib_stats_done(j, stats);
    if (before_free)
        before_free(hook_ctx);
    tc_calib_run_free(run);
    *t_done = tc_now_seconds();
    return st;
}

/* The method's hold on the engine's backend, released before the engine
 * goes (a failure before the last layer leaves its write queue pinned
 * through that backend). */
static void stream_end(void *ctx)
{
    overlap *v = ctx;
    if (v->ops->stream_end && v->method_job)
        v->ops->stream_end(v->method_job);
}

/* Runs on the main thread while the workers write (tc_convert_phase_during). */
static tc_status calibrate(void *ctx)
{
    overlap *v = ctx;
    return tc_calib_with_hook(v->j, &v->run, v->stats, layer_done, v, stream_end, &v->t_done);
}

tc_status tc_calibrated_run_overlapped(tc_job *j, const tc_run_text *run,
                                       const tc_calibrated_ops *ops)
{
    const tc_opts *o = j->o;
    const tc_comm *c = j->comm;
    const tc_settings *s = &j->s;
    tc_calib_stats stats;
    memset(&stats, 0, sizeof stats);
    tc_cell_set set;
    memset(&set, 0, sizeof set);
    overlap v;
    memset(&v, 0, sizeof v);
    v.j = j;
    v.ops = ops;
    v.set = &set;
    v.stats = &stats;
    int *cells = NULL;
    size_t n_cells = 0;
    const double t0 = tc_now_seconds();

    /* The statistics are zeros until each layer is done: the method plans
     * with them and fills the real values per layer (refresh_layer). */
    tc_status st = tc_calib_overlap_begin(j, &stats, &v.run);
    if (st != TC_OK)
        goto done;
    /* Cells: calibrated ranks keep their own cell (dp replica 0). */
    cells = calloc(tc_layout_max_cells_per_rank(&s->layout) + 1, sizeof *cells);
    st = cells ? TC_OK : tc_fail(TC_E_INTERNAL, "out of memory");
    if (st == TC_OK && c->rank < tc_layout_cells(&s->layout))
        cells[n_cells++] = c->rank;
    const tc_quant_ctx ctx = {
        .comm = c, .model = j->model, .stats = &stats, .gpu = s->calib_gpu,
        .threads = (int)o->workers, .layout = s->layout, .emb = s->emb, .q = &s->quant,
        .out_dtype = s->out_dtype,
    };
    if (st == TC_OK)
        st = ops->create(&ctx, NULL, &v.method_job);
    if (st == TC_OK)
        st = tc_convert_gate_create(stats.d.layers, &v.gate);
    st = tc_comm_agree(c, st, "quantization setup");
    if (st == TC_OK && !ops->stream_layer)
        st = ops->prepare(v.method_job, cells, n_cells);
    if (st == TC_OK)
        st = tc_cells_plan(j, cells, n_cells, v.method_job, run, &set, TC_OK);
    if (st != TC_OK)
        goto done;
    st = tc_cells_open(j, &set);
    /* A method that writes its layers itself starts here (collective). */
    if (ops->stream_begin) {
        st = tc_comm_agree(c, st, "opening the rank files");
        if (st == TC_OK)
            st = ops->stream_begin(v.method_job, v.run.engine, cells, n_cells, set.outs);
        st = tc_comm_agree(c, st, "quantization while calibrating");
        /* Its write buffers pinned and device scratch allocated: part of
         * the time before the first layer (TRTCONV_LOG_ELAPSED=1). */
        if (st == TC_OK)
            tc_log(TC_LOG_VERBOSE, "quantization while calibrating: the method's buffers ready");
    }
    st = tc_convert_phase_during(j, &set, s->quant_gpu, st, v.gate, calibrate, &v);
    const double t_tail = tc_now_seconds();
    if (st == TC_OK)
        st = ops->write(v.method_job, cells, n_cells, set.outs);
    st = tc_cells_commit(j, run, &set, st);
    if (st == TC_OK && c->rank == 0) {
        const tc_quant_method *w = s->quant.weights, *kv = s->quant.kv;
        const char *kv_name = !kv->calib ? ""
                              : strcmp(kv->config_algo, "FP8") ? "INT8 KV cache"
                                                               : "FP8 KV cache (calibrated)";
        tc_log(TC_LOG_INFO, "%s%s%s: statistics %.2f s (calibrated) with the writing overlapped, "
               "the writing done %.2f s after them, total %.2f s",
               w->smoothquant ? "SmoothQuant" : w->calib && w->config_algo ? w->config_algo : "",
               w->calib && kv->calib ? " + " : "",
               kv_name, v.t_done - t0, t_tail - v.t_done, tc_now_seconds() - j->t0);
    }
    if (st == TC_OK)
        tc_job_summary(j, tc_now_seconds() - j->t0, set.all_bytes);
done:
    stream_end(&v);
    tc_calib_run_free(&v.run);
    tc_cells_free(&set);
    free(cells);
    if (v.method_job)
        ops->destroy(v.method_job);
    tc_convert_gate_free(v.gate);
    tc_calib_stats_free(&stats);
    return st;
}
