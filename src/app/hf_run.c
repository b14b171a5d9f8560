/* hf_run.c: the run of --output_format hf (job.h tc_hf_run): the
 * statistics its scales need (calibrated in the run's tp x pp x dp layout
 * as for the TensorRT-LLM checkpoint, or read with --calib_stats), then
 * this rank's shards (k = rank, rank + N, ...) planned, converted by the
 * workers (each reads the source byte ranges of its own tensors) and
 * committed: rank 0 writes the manifest, the index, hf_quant_config.json,
 * the copied tokenizer files and config.json last (output/hf_ckpt.h). */
#include "trtconv/app/job.h"

#include <stdlib.h>
#include <string.h>
#include "trtconv/core/log.h"

tc_status tc_hf_run(tc_job *j, const tc_run_text *run)
{
    const tc_comm *c = j->comm;
    const tc_settings *s = &j->s;
    tc_calib_stats stats;
    memset(&stats, 0, sizeof stats);
    tc_cell_set set;
    memset(&set, 0, sizeof set);
    int *ids = NULL;
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
    const int shards = s->hf->shards;
    if (c->rank == shards && c->rank > 0)
        tc_log(TC_LOG_WARNING, "%d ranks for %d shard(s): ranks %d..%d have nothing to write "
               "(--max_shard_size smaller gives more shards)", c->size, shards, shards,
               c->size - 1);
    ids = calloc((size_t)tc_job_max_cells_per_rank(j) + 1, sizeof *ids);
    st = ids ? TC_OK : tc_fail(TC_E_INTERNAL, "out of memory");
    const size_t n = ids ? tc_job_rank_cells(j, c->rank, ids) : 0;
    st = tc_cells_plan(j, ids, n, calib ? &stats : NULL, run, &set, st);
    if (st != TC_OK)
        goto done;
    if (c->rank == 0)
        tc_log(TC_LOG_INFO, "writing %s as a Hugging Face-style checkpoint (%s%s%s): %zu tensors "
               "in %d shard(s) on %d rank(s), %s, %.2f GB", j->model->dir,
               tc_hf_algo_name(s->hfq.algo) ? tc_hf_algo_name(s->hfq.algo) : "unquantized",
               s->hfq.kv_fp8 ? ", FP8 KV cache" : "", s->hfq.n_exclude ? ", exclusions" : "",
               s->hf->full->n_tensors, shards, c->size, tc_float_type_name(s->dtype),
               (double)set.all_bytes / 1e9);
    double t_w = tc_now_seconds();
    st = tc_cells_open(j, &set);
    /* NVFP4's quantization on the rank's GPU with --quantize_on gpu (the
     * kernel is the CPU reference bit for bit, cuda_nvfp4; this staging
     * path has not run end to end on a GPU yet, so it is not the default);
     * FP8's stays on the CPU. */
    const tc_gpu_info *qgpu = s->hfq.algo == TC_HF_ALGO_NVFP4 && j->gpu.count > 0 &&
                                      j->o->quantize_on == 2 ? &j->gpu : NULL;
    st = tc_convert_phase(j, &set, qgpu, st);
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
