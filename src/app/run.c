/* run.c: the phases of a trtconv run on one rank (run.h). Each phase is a
 * file of src/app/ (job.h); this file is their order:
 *
 *   setup        settings.c: lock and check the output directory, open the
 *                model, resolve dtype / quantization / GPUs, agree, remove
 *                an earlier commit marker;
 *   config only  without a model (or --save_config_only): the format's
 *                metadata and nothing else;
 *   fingerprint  fingerprint.c: what the bytes depend on (--resume);
 *   streamed     cells.c + progress.c: plan the rank's cells, convert
 *                them with the workers (streamed quantization included),
 *                commit;
 *   calibrated   calibrated.c: statistics, then the quantization method's
 *                passes, plan, write, commit;
 *   hf           hf_run.c: --output_format hf (statistics when its
 *                quantization needs them, then the shards);
 *   eval         eval_after.c: with --eval, the committed checkpoint against
 *                its model (checked before converting).
 * Every phase ends in a collective agreement (comm.h), so one failing rank
 * stops every rank with the same exit code. */
#include "trtconv/app/run.h"

#include <stdlib.h>
#include <string.h>
#include "trtconv/app/job.h"
#include "trtconv/core/log.h"

/* convert_checkpoint.py without --model_dir, or --save_config_only: the
 * metadata only (no rank files, so no manifest). */
static tc_status config_only(const tc_job *j)
{
    const tc_comm *c = j->comm;
    char *text = NULL;
    tc_status st = TC_OK;
    if (c->rank == 0) {
        tc_output_desc d;
        tc_job_output_desc(j, &d);
        st = j->s.format->render_metadata(&d, &text);
        if (st == TC_OK)
            st = tc_write_file_durable(j->o->output_dir, j->s.format->commit_file, text);
    }
    free(text);
    st = tc_comm_agree(c, st, "commit");
    if (st == TC_OK && c->rank == 0)
        tc_log(TC_LOG_INFO, "wrote %s/%s (%s: config only)", j->o->output_dir,
               j->s.format->commit_file, j->model ? "--save_config_only" : "no --model_dir");
    return st;
}

/* Plan this rank's cells, convert them with the workers while reporting
 * progress, commit. */
static tc_status streamed(const tc_job *j, const tc_run_text *run)
{
    const tc_comm *c = j->comm;
    const tc_settings *s = &j->s;
    const int cells = tc_layout_cells(&s->layout);
    if (c->rank == cells)
        tc_log(TC_LOG_WARNING, "%d ranks for %d cells: ranks %d..%d have nothing to convert",
               c->size, cells, cells, c->size - 1);
    tc_cell_set set;
    int *ids = calloc(tc_layout_max_cells_per_rank(&s->layout) + 1, sizeof *ids);
    tc_status st = ids ? TC_OK : tc_fail(TC_E_INTERNAL, "out of memory");
    const size_t n = ids ? tc_layout_rank_cells(&s->layout, c->rank, ids) : 0;
    st = tc_cells_plan(j, ids, n, NULL, run, &set, st);
    if (st == TC_OK && c->rank == 0)
        tc_log(TC_LOG_INFO, "converting %s: %lld layers, tp %d x pp %d = %d cells on %d "
               "rank(s), %s, %.2f GB to write", j->model->dir,
               (long long)j->model->cfg.num_hidden_layers, s->layout.tp, s->layout.pp, cells,
               c->size, tc_float_type_name(s->dtype), (double)set.all_bytes / 1e9);
    if (st == TC_OK) {
        /* A rank whose files could not be opened still takes part in the
         * progress exchange, reporting its failure so everyone stops. */
        st = tc_cells_open(j, &set);
        if (c->rank == 0 && s->quant.weights->gpu_quantize)
            tc_log(TC_LOG_INFO, "quantizing on %s", s->quant_gpu ? s->quant_gpu->name : "the CPU");
        st = tc_convert_phase(j, &set, s->quant_gpu, st);
        st = tc_cells_commit(j, run, &set, st);
        if (st == TC_OK)
            tc_job_summary(j, tc_now_seconds() - j->t0, set.all_bytes);
    }
    tc_cells_free(&set);
    free(ids);
    return st;
}

int tc_run(const tc_opts *o)
{
    tc_comm comm;
    tc_status st = tc_comm_init(&comm);
    if (st != TC_OK)
        return (int)st;
    tc_log_init(comm.rank, comm.size, comm.host);
    tc_log_set_level(o->log_level);
    tc_signals_arm(o, comm.rank);
    tc_job job;
    memset(&job, 0, sizeof job);
    job.comm = &comm;
    job.o = o;
    job.t0 = tc_now_seconds();
    tc_run_text run;
    tc_run_text_init(&run);

    st = tc_job_setup(&job);
    if (st == TC_OK && (!job.model || o->save_config_only)) {
        st = config_only(&job);
    } else if (st == TC_OK) {
        st = tc_job_fingerprint(&job, &run);
        if (st == TC_OK && comm.rank == 0)
            tc_log(TC_LOG_VERBOSE, "run fingerprint %s", run.run);
        if (st == TC_OK)
            st = tc_comm_agree(&comm, tc_job_eval_check(&job), "--eval");
        if (st == TC_OK && job.s.hf)
            st = tc_hf_run(&job, &run);
        else if (st == TC_OK)
            st = tc_quant_calibrated(&job.s.quant) ? tc_calibrated_run(&job, &run)
                                                    : streamed(&job, &run);
        if (st == TC_OK && o->eval_dataset)
            st = tc_job_eval(&job);
    }

    tc_signals_disarm();
    if (st == TC_E_COMM) {
        /* A peer may be blocked in a collective we will never join: the
         * only way out that cannot hang is to abort the whole job. */
        tc_log(TC_LOG_ERROR, "communication failure: aborting the job");
        MPI_Abort(MPI_COMM_WORLD, (int)TC_E_COMM);
    }
    tc_run_text_free(&run);
    tc_job_settings_free(&job);
    tc_hf_close(job.model);
    tc_outdir_lock_release(job.lock);
    tc_comm_free(&comm);
    return (int)st;
}
