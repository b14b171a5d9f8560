/* calibrated.c: the run of a calibrated quantization (job.h): statistics
 * (the model run forward on the calibration text in the conversion layout,
 * or a --calib_stats file), then the method's job (quant/method.h):
 * prepare, plan, write, commit. */
#include "trtconv/app/job.h"
#include "calib_steps.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "trtconv/calib/tokens.h"
#include "trtconv/core/log.h"
#include "trtconv/output/rankfile.h"

/* Statistics from --calib_stats: rank 0 reads the file, every rank gets a
 * copy (the file need not be visible to other nodes). Collective. */
static tc_status stats_from_file(const tc_job *j, const tc_calib_dims *dims,
                                 tc_calib_stats *stats)
{
    const tc_comm *c = j->comm;
    tc_status st = c->rank == 0 ? tc_calib_stats_read_h5(j->o->calib_stats, dims, stats) : TC_OK;
    st = tc_comm_agree(c, st, "reading --calib_stats");
    if (st != TC_OK)
        return st;
    if (c->rank != 0)
        st = tc_calib_stats_alloc(dims, stats);
    st = tc_comm_agree(c, st, "reading --calib_stats");
    if (st != TC_OK)
        return st;
    for (size_t off = 0; off < stats->n && st == TC_OK; off += 1u << 28) {
        size_t n = stats->n - off < (1u << 28) ? stats->n - off : (1u << 28);
        st = TC_MPI_TRY(MPI_Bcast(stats->data + off, (int)n, MPI_FLOAT, 0, c->world));
    }
    return st;
}

tc_status tc_calibration_input_check(const tc_job *j)
{
    const tc_opts *o = j->o;
    struct stat sb;
    if (!tc_job_calib_needs(j))
        return TC_OK;
    if (o->calib_stats) {
        if (j->comm->rank == 0 && stat(o->calib_stats, &sb) != 0)
            return tc_fail(TC_E_USAGE, "--calib_stats %s: no such file", o->calib_stats);
        return TC_OK;
    }
    if (stat(o->calib_dataset, &sb) != 0)
        return tc_fail(TC_E_USAGE, "--calib_dataset %s: no such file. trtconv calibrates from a "
                       "local JSON Lines file with a \"text\" or \"article\" string (or an "
                       "\"input_ids\" array) per line; export cnn_dailymail or your own data "
                       "once: see docs/tokenizer.md", o->calib_dataset);
    return TC_OK;
}

/* The forward pass's dtype: SmoothQuant calibrates the model loaded in
 * float16; INT8 KV alone in its own dtype (trtllm-checkpoint.md §5.1,
 * §4.10); FP8 per tensor in the output dtype, as ModelOpt calibrates the
 * model it exports. */
bool tc_calib_overlapped(const tc_job *j)
{
    const tc_calibrated_ops *ops = tc_quant_calibrated(&j->s.quant);
    return ops && (ops->refresh_layer || ops->stream_layer) && !j->o->calib_stats &&
           !j->o->calib_by_batch;
}

tc_dtype tc_calib_forward_dtype(const tc_job *j)
{
    const tc_hf_config *cfg = &j->model->cfg;
    /* The Hugging Face output's scales are those of ModelOpt calibrating
     * the model in the exported dtype. */
    if (j->s.quant.weights->calib_in_out_dtype || j->s.hf)
        return j->s.out_dtype;
    if (!j->s.quant.weights->calib_in_f16 && cfg->has_torch_dtype)
        return tc_float_type_dtype(cfg->torch_dtype);
    return TC_DT_F16;
}

/* Calibrate in the layout of the run: ranks = dp x tp x pp (fwd.h). */
tc_status tc_calib_begin(const tc_job *j, tc_calib_run *r)
{
    const tc_opts *o = j->o;
    const tc_comm *c = j->comm;
    const tc_gpu_info *gpu = j->s.calib_gpu;
    memset(r, 0, sizeof *r);
    r->fdt = tc_calib_forward_dtype(j);
    tc_status st = tc_layout_check_replicas(&j->s.layout, "calibration", "; or pass --calib_stats");
    double t_load = tc_now_seconds();
    if (st == TC_OK)
        st = tc_tokens_load_text_jsonl(o->calib_dataset,
                                       o->calib_size < 0 ? INT64_MAX : o->calib_size,
                                       o->calib_max_seq_length, j->model->cfg.vocab_size,
                                       tc_job_tokenizer_dir(o), &r->tok);
    t_load = tc_now_seconds() - t_load;
    st = tc_comm_agree(c, st, "calibration data");
    if (st != TC_OK) {
        tc_tokens_free(&r->tok);
        return st;
    }
    tc_fwd_setup su;
    memset(&su, 0, sizeof su);
    su.model = j->model;
    su.layout = j->s.layout;
    su.emb = j->s.emb;
    su.dtype = r->fdt;
    su.comm = c;
    su.gpu = gpu;
    /* A CPU forward pass uses the host's cores: --workers threads, or, by
     * default, the cores shared out among the ranks on this host (the
     * demo's 4 ranks on 2 cores get 1 each; 1 rank on 16 cores gets 16). */
    su.threads = tc_comm_threads_per_rank(c, o->workers > 1 ? o->workers : 0);
    su.max_batch_tokens = tc_fwd_max_batch_tokens(&r->tok, o->calib_batch_size);
    su.stream_layers = r->streamed = !o->calib_by_batch;
    su.max_seq_len = tc_tokens_longest(&r->tok, 0, r->tok.n_seqs);
    /* No method quantizes lm_head: its statistics (a GEMM over the whole
     * vocabulary for every token, and its weights read and uploaded) are
     * taken only for a statistics file, which holds every linear. */
    su.skip_head = !o->calib_stats_out;
    if (c->rank == 0)
        tc_log(TC_LOG_INFO, "calibrating on %zu samples (%lld tokens, read in %.2f s) of %s, "
               "micro-batches of %lld, %s forward on %s, %s", r->tok.n_seqs,
               (long long)r->tok.offsets[r->tok.n_seqs], t_load, o->calib_dataset,
               (long long)o->calib_batch_size, tc_dtype_name(r->fdt),
               gpu ? "the GPUs" : "the CPUs",
               su.stream_layers ? "layer by layer" : "micro-batch by micro-batch");
    st = tc_fwd_create(&su, &r->engine);
    if (st == TC_OK)
        st = tc_fwd_enable_stats(r->engine);
    st = tc_comm_agree(c, st, "calibration setup");
    if (st != TC_OK)
        tc_calib_run_free(r);
    return st;
}

/* A rank failing inside the forward pass aborts the job: its peers may be
 * waiting for it in a collective that would never complete. */
tc_status tc_calib_finish(const tc_job *j, tc_calib_run *r, tc_calib_stats *stats)
{
    const tc_opts *o = j->o;
    const tc_comm *c = j->comm;
    tc_status st = r->streamed
                       ? tc_fwd_calibrate_streamed(r->engine, &r->tok, o->calib_batch_size)
                       : tc_fwd_run(r->engine, &r->tok, o->calib_batch_size, NULL, NULL);
    if (st != TC_OK) {
        tc_log(TC_LOG_ERROR, "rank %d: calibration forward pass failed; aborting the job",
               c->rank);
        /* Files opened for writing while calibrating go too (the other
         * ranks' go through their SIGTERM handler). */
        tc_partial_unlink_all();
        MPI_Abort(MPI_COMM_WORLD, (int)st);
    }
    if (!stats->data) {
        tc_calib_dims dims;
        tc_calib_dims_from_config(&j->model->cfg, &dims);
        st = tc_calib_stats_alloc(&dims, stats);
    }
    if (st == TC_OK)
        st = tc_fwd_collect_stats(r->engine, stats);
    tc_fwd_profile_report(r->engine);
    st = tc_comm_agree(c, st, "calibration");
    if (st == TC_OK) {
        const tc_token_set *tok = &r->tok;
        stats->samples = (int64_t)tok->n_seqs;
        stats->tokens = tok->offsets[tok->n_seqs];
        stats->max_seq_length = o->calib_max_seq_length;
        snprintf(stats->model, sizeof stats->model, "%s",
                 o->model_dir ? o->model_dir : o->meta_ckpt_dir);
        snprintf(stats->calib_dataset, sizeof stats->calib_dataset, "%s", o->calib_dataset);
        snprintf(stats->forward_dtype, sizeof stats->forward_dtype, "%s", tc_dtype_name(r->fdt));
        tc_fwd_layout lay;
        tc_fwd_get_layout(r->engine, &lay);
        snprintf(stats->layout, sizeof stats->layout, "dp %d x tp %d x pp %d, %s", lay.dp, lay.tp,
                 lay.pp, lay.backend);
    }
    tc_tokens_free(&r->tok);
    return st;
}

void tc_calib_run_free(tc_calib_run *r)
{
    tc_fwd_destroy(r->engine);
    r->engine = NULL;
    tc_tokens_free(&r->tok);
}

tc_status tc_calib_stats_done(const tc_job *j, const tc_calib_stats *stats)
{
    const tc_opts *o = j->o;
    const tc_comm *c = j->comm;
    tc_status st = TC_OK;
    if (c->rank == 0 && o->calib_stats_out) {
        st = tc_calib_stats_write_h5(stats, o->calib_stats_out);
        if (st == TC_OK)
            tc_log(TC_LOG_INFO, "wrote the calibration statistics to %s", o->calib_stats_out);
    }
    if (st == TC_OK && c->rank == 0)
        st = tc_calib_stats_check_scales(stats, o->calib_stats ? o->calib_stats
                                                               : "the calibration statistics");
    return tc_comm_agree(c, st, "statistics");
}

/* The statistics of the run, checked and (with --calib_stats_out) saved. On
 * success after calibrating, *engine holds the rank's cell weights (for the
 * method's passes). */
tc_status tc_calib_statistics(const tc_job *j, tc_calib_stats *stats, tc_fwd_engine **engine)
{
    tc_status st;
    if (j->o->calib_stats) {
        tc_calib_dims dims;
        tc_calib_dims_from_config(&j->model->cfg, &dims);
        st = stats_from_file(j, &dims, stats);
    } else {
        tc_calib_run r;
        st = tc_calib_begin(j, &r);
        if (st == TC_OK)
            st = tc_calib_finish(j, &r, stats);
        if (st == TC_OK) {
            *engine = r.engine;
            r.engine = NULL;
        }
        tc_calib_run_free(&r);
    }
    if (st != TC_OK)
        return st;
    return tc_calib_stats_done(j, stats);
}

tc_status tc_calibrated_run(tc_job *j, const tc_run_text *run)
{
    const tc_opts *o = j->o;
    const tc_comm *c = j->comm;
    const tc_settings *s = &j->s;
    const tc_calibrated_ops *ops = tc_quant_calibrated(&s->quant);
    tc_calib_stats stats;
    memset(&stats, 0, sizeof stats);
    tc_fwd_engine *engine = NULL;
    void *job = NULL;
    tc_cell_set set;
    memset(&set, 0, sizeof set);
    int *cells = NULL;
    size_t n_cells = 0;

    if (tc_calib_overlapped(j))
        return tc_calibrated_run_overlapped(j, run, ops);
    double t_cal = tc_now_seconds();
    tc_status st = tc_calib_statistics(j, &stats, &engine);
    if (st != TC_OK)
        goto done;
    t_cal = tc_now_seconds() - t_cal;

    /* Cells: calibrated ranks keep their own cell (dp replica 0). */
    cells = calloc(tc_layout_max_cells_per_rank(&s->layout) + 1, sizeof *cells);
    st = cells ? TC_OK : tc_fail(TC_E_INTERNAL, "out of memory");
    if (st == TC_OK && engine) {
        if (c->rank < tc_layout_cells(&s->layout))
            cells[n_cells++] = c->rank;
    } else if (st == TC_OK) {
        n_cells = tc_layout_rank_cells(&s->layout, c->rank, cells);
    }
    const tc_quant_ctx ctx = {
        .comm = c, .model = j->model, .stats = &stats, .gpu = s->calib_gpu,
        .threads = (int)o->workers, .layout = s->layout, .emb = s->emb, .q = &s->quant,
        .out_dtype = s->out_dtype,
    };
    if (st == TC_OK) {
        st = ops->create(&ctx, engine, &job);
        engine = NULL; /* the job's now */
    }
    st = tc_comm_agree(c, st, "quantization setup");
    if (st != TC_OK)
        goto done;

    double t_q = tc_now_seconds();
    st = ops->prepare(job, cells, n_cells);
    if (st != TC_OK)
        goto done;
    t_q = tc_now_seconds() - t_q;

    double t_w = tc_now_seconds();
    st = tc_cells_plan(j, cells, n_cells, job, run, &set, TC_OK);
    if (st != TC_OK)
        goto done;
    st = tc_cells_open(j, &set);
    /* The tensors the method does not compute (norms, embedding, streamed
     * weight quantization such as FP8 rowwise, ...). */
    st = tc_convert_phase(j, &set, s->quant_gpu, st);
    if (st == TC_OK)
        st = ops->write(job, cells, n_cells, set.outs);
    st = tc_cells_commit(j, run, &set, st);
    t_w = tc_now_seconds() - t_w;
    if (st == TC_OK) {
        const tc_quant_method *w = s->quant.weights, *kv = s->quant.kv;
        if (c->rank == 0)
            tc_log(TC_LOG_INFO, "%s%s%s: statistics %.2f s (%s), smoothing/scales %.2f s, "
                   "quantize+write %.2f s, total %.2f s",
                   w->smoothquant ? "SmoothQuant" : w->calib ? w->config_algo : "",
                   kv->calib && w->calib ? " + " : "",
                   kv->calib ? (strcmp(kv->config_algo, "FP8") ? "INT8 KV cache"
                                                               : "FP8 KV cache (calibrated)") : "",
                   t_cal, o->calib_stats ? "read" : "calibrated", t_q, t_w,
                   tc_now_seconds() - j->t0);
        tc_job_summary(j, tc_now_seconds() - j->t0, set.all_bytes);
    }
done:
    tc_cells_free(&set);
    free(cells);
    tc_fwd_destroy(engine);
    if (job)
        ops->destroy(job);
    tc_calib_stats_free(&stats);
    return st;
}
