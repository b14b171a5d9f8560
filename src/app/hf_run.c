/* hf_run.c: the run of --output_format hf (job.h tc_hf_run): the
 * statistics its scales need (calibrated in the run's tp x pp x dp layout
 * as for the TensorRT-LLM checkpoint, or read with --calib_stats), then
 * this rank's shards (k = rank, rank + N, ...) planned, converted by the
 * workers (each reads the source byte ranges of its own tensors) and
 * committed: rank 0 writes the manifest, the index, hf_quant_config.json,
 * the copied tokenizer files and config.json last (output/hf_ckpt.h).
 *
 * When the run calibrates layer by layer in one pipeline stage (every rank
 * sees every layer's reduced statistics), the writing overlaps the
 * calibration as calib_overlap.c's does: the shards are planned and opened
 * first, the workers write what needs no statistics (embedding, norms,
 * lm_head, FP8-per-channel weights) at once, and after each layer the
 * engine's hook fills that layer's scales into the shard plans and opens
 * its gate (hf_quant.h). The bytes are those of the sequential run: the
 * same statistics reach the same fill function. */
#include "calib_steps.h"

#include <stdlib.h>
#include <string.h>
#include "trtconv/core/log.h"

typedef struct hf_overlap {
    const tc_job *j;
    tc_cell_set *set;
    tc_convert_gate *gate;
    tc_calib_run run;
    tc_calib_stats *stats;
    double t_done;          /* when the statistics were final */
} hf_overlap;

static tc_status layer_done(void *ctx, int64_t layer)
{
    hf_overlap *v = ctx;
    for (size_t i = 0; i < v->set->n; i++)
        if (v->set->plans[i])
            TC_TRY(tc_hf_quant_fill(&v->j->s.hfq, v->stats, v->set->plans[i], layer));
    tc_convert_gate_open(v->gate, layer);
    return TC_OK;
}

/* Runs on the main thread while the workers write (tc_convert_phase_during). */
static tc_status calibrate(void *ctx)
{
    hf_overlap *v = ctx;
    return tc_calib_with_hook(v->j, &v->run, v->stats, layer_done, v, NULL, &v->t_done);
}

/* The run writes while it calibrates: statistics computed (not read), layer
 * by layer, in one pipeline stage. */
static bool overlapped(const tc_job *j)
{
    return tc_job_calib_needs(j) && !j->o->calib_stats && !j->o->calib_by_batch &&
           j->s.layout.pp == 1;
}

/* NVFP4's quantization (its E2M1 search is the costly part) on the rank's
 * GPU when it has one and --quantize_on is not cpu: the kernel is the CPU
 * reference bit for bit (cuda_nvfp4), and the writer's GPU staging wrote
 * every packed value and block scale of the CPU's on an H100
 * (docs/hf-output.md). FP8's stays on the CPU, hidden behind the
 * calibration. */
static const tc_gpu_info *quantize_gpu(const tc_job *j)
{
    return j->s.hfq.algo == TC_HF_ALGO_NVFP4 && j->gpu.count > 0 && j->o->quantize_on != 1
               ? &j->gpu
               : NULL;
}

static void log_start(const tc_job *j, const tc_cell_set *set)
{
    const tc_settings *s = &j->s;
    const tc_comm *c = j->comm;
    const int shards = s->hf->shards;
    if (c->rank == shards && c->rank > 0)
        tc_log(TC_LOG_WARNING, "%d ranks for %d shard(s): ranks %d..%d have nothing to write "
               "(--max_shard_size smaller gives more shards)", c->size, shards, shards,
               c->size - 1);
    if (c->rank == 0)
        tc_log(TC_LOG_INFO, "writing %s as a Hugging Face-style checkpoint (%s%s%s): %zu tensors "
               "in %d shard(s) on %d rank(s), %s, %.2f GB", j->model->dir,
               tc_hf_algo_name(s->hfq.algo) ? tc_hf_algo_name(s->hfq.algo) : "unquantized",
               s->hfq.kv_fp8 ? ", FP8 KV cache" : "", s->hfq.n_exclude ? ", exclusions" : "",
               s->hf->full->n_tensors, shards, c->size, tc_float_type_name(s->dtype),
               (double)set->all_bytes / 1e9);
}

/* This rank's shard ids (caller frees) and their count. */
static tc_status rank_shards(const tc_job *j, int **ids, size_t *n)
{
    *ids = calloc((size_t)tc_job_max_cells_per_rank(j) + 1, sizeof **ids);
    if (!*ids)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    *n = tc_job_rank_cells(j, j->comm->rank, *ids);
    return TC_OK;
}

static tc_status run_overlapped(tc_job *j, const tc_run_text *run)
{
    const tc_comm *c = j->comm;
    tc_calib_stats stats;
    memset(&stats, 0, sizeof stats);
    tc_cell_set set;
    memset(&set, 0, sizeof set);
    hf_overlap v;
    memset(&v, 0, sizeof v);
    v.j = j;
    v.set = &set;
    v.stats = &stats;
    int *ids = NULL;
    size_t n = 0;
    const double t0 = tc_now_seconds();
    tc_status st = tc_calib_overlap_begin(j, &stats, &v.run);
    if (st != TC_OK)
        goto done;
    st = rank_shards(j, &ids, &n);
    if (st == TC_OK)
        st = tc_convert_gate_create(stats.d.layers, &v.gate);
    /* No statistics yet: the gated values are filled layer by layer. */
    st = tc_cells_plan(j, ids, n, NULL, run, &set, st);
    if (st != TC_OK)
        goto done;
    log_start(j, &set);
    st = tc_cells_open(j, &set);
    st = tc_convert_phase_during(j, &set, quantize_gpu(j), st, v.gate, calibrate, &v);
    const double t_tail = tc_now_seconds();
    st = tc_cells_commit(j, run, &set, st);
    if (st == TC_OK) {
        if (c->rank == 0)
            tc_log(TC_LOG_INFO, "statistics %.2f s (calibrated) with the writing overlapped, the "
                   "writing done %.2f s after them, total %.2f s", v.t_done - t0,
                   t_tail - v.t_done, tc_now_seconds() - j->t0);
        tc_job_summary(j, tc_now_seconds() - j->t0, set.all_bytes);
    }
done:
    tc_calib_run_free(&v.run);
    tc_cells_free(&set);
    free(ids);
    tc_convert_gate_free(v.gate);
    tc_calib_stats_free(&stats);
    return st;
}

tc_status tc_hf_run(tc_job *j, const tc_run_text *run)
{
    if (overlapped(j))
        return run_overlapped(j, run);
    const tc_comm *c = j->comm;
    tc_calib_stats stats;
    memset(&stats, 0, sizeof stats);
    tc_cell_set set;
    memset(&set, 0, sizeof set);
    int *ids = NULL;
    size_t n = 0;
    tc_status st = TC_OK;
    double t_cal = tc_now_seconds();
    const bool calib = tc_job_calib_needs(j);
    if (calib) {
        tc_fwd_engine *engine = NULL;
        st = tc_calib_statistics(j, &stats, &engine);
        tc_fwd_destroy(engine); /* the workers read the weights again */
        if (st != TC_OK)
            goto done;
    }
    t_cal = tc_now_seconds() - t_cal;
    st = rank_shards(j, &ids, &n);
    st = tc_cells_plan(j, ids, n, calib ? &stats : NULL, run, &set, st);
    if (st != TC_OK)
        goto done;
    log_start(j, &set);
    double t_w = tc_now_seconds();
    st = tc_cells_open(j, &set);
    st = tc_convert_phase(j, &set, quantize_gpu(j), st);
    st = tc_cells_commit(j, run, &set, st);
    t_w = tc_now_seconds() - t_w;
    if (st == TC_OK) {
        if (c->rank == 0 && calib)
            tc_log(TC_LOG_INFO, "statistics %.2f s (%s), quantize+write %.2f s, total %.2f s",
                   t_cal, j->o->calib_stats ? "read" : "calibrated", t_w,
                   tc_now_seconds() - j->t0);
        tc_job_summary(j, tc_now_seconds() - j->t0, set.all_bytes);
    }
done:
    tc_cells_free(&set);
    free(ids);
    tc_calib_stats_free(&stats);
    return st;
}
