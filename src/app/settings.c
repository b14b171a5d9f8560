/* settings.c: the setup phase of a run (job.h): the output directory, the
 * model, the resolved settings (dtype, quantization methods, target SM,
 * which GPU does what) and the placement report. Options stay as parsed. */
#define _GNU_SOURCE /* sched_getaffinity */
#include "trtconv/app/job.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "trtconv/core/log.h"

const char *tc_job_tokenizer_dir(const tc_opts *o)
{
    return o->tokenizer_dir ? o->tokenizer_dir : o->model_dir ? o->model_dir : o->meta_ckpt_dir;
}

/* Rank 0, during setup: the output directory is none of the inputs (nor
 * holds or lies in one), exists, is writable and is locked for this job;
 * a complete checkpoint in it (its commit file present) is only replaced
 * with --overwrite or reused with --resume. Nothing in it is changed yet: a
 * run that fails its setup leaves an earlier checkpoint as it was. */
static tc_status check_output_dir(tc_job *j)
{
    const tc_opts *o = j->o;
    const char *dir = o->output_dir;
    const bool calib = tc_job_calib_needs(j);
    const tc_outdir_input inputs[] = {
        { o->model_dir, "--model_dir" },
        { o->meta_ckpt_dir, "--meta_ckpt_dir" },
        { calib ? tc_job_tokenizer_dir(o) : NULL, "--tokenizer_dir" },
        { calib && !o->calib_stats ? o->calib_dataset : NULL, "--calib_dataset" },
        { o->calib_stats, "--calib_stats" },
    };
    TC_TRY(tc_outdir_check_inputs(dir, inputs, sizeof inputs / sizeof inputs[0]));
    TC_TRY(tc_mkdir_p(dir, "--output_dir"));
    TC_TRY(tc_outdir_lock_acquire(dir, j->comm->host, &j->lock, j->lock_token));
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/.trtconv-write-probe.%ld", dir, (long)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return tc_fail(TC_E_IO, "%s: output directory is not writable: %s", dir, strerror(errno));
    close(fd);
    unlink(probe);
    char cfg[4200];
    TC_TRY(tc_path_join(cfg, sizeof cfg, dir, j->s.format->commit_file));
    struct stat sb;
    if (lstat(cfg, &sb) == 0 && !o->overwrite && !o->resume)
        return tc_fail(TC_E_USAGE, "%s holds a complete checkpoint (%s): refusing to replace "
                       "it. Pass --overwrite to replace it, --resume to keep its rank files "
                       "that match this run, or choose another --output_dir", dir,
                       j->s.format->commit_file);
    return TC_OK;
}

/* Rank 0, once setup succeeded and before anything is written: the commit
 * marker of an earlier checkpoint goes first (durably), so from now on the
 * directory never looks complete until this run commits. Then the files of
 * an earlier run that this one would not rewrite: rank files beyond the new
 * mapping, the manifest, and the rank records unless resuming. */
static tc_status uncommit_output_dir(const tc_job *j, int64_t cells)
{
    const tc_opts *o = j->o;
    const char *dir = o->output_dir;
    char cfg[4200];
    TC_TRY(tc_path_join(cfg, sizeof cfg, dir, j->s.format->commit_file));
    if (unlink(cfg) == 0) {
        tc_log(TC_LOG_INFO, "%s: %s the checkpoint of an earlier run", dir,
               o->resume ? "resuming from" : "replacing");
        TC_TRY(tc_fsync_dir(dir));
    } else if (errno != ENOENT) {
        return tc_fail(TC_E_IO, "%s: cannot remove the old %s: %s", cfg,
                       j->s.format->commit_file, strerror(errno));
    }
    return tc_output_clear_stale(dir, cells, j->s.hf ? TC_CELLS_HF_SHARDS : TC_CELLS_RANK_FILES,
                                 o->resume);
}

/* --dtype auto (Era B LLaMAConfig): torch_dtype, default float16;
 * float32 -> float16. */
static tc_float_type resolve_dtype(const tc_opts *o, const tc_hf_config *cfg)
{
    if (!o->dtype_auto)
        return o->dtype;
    tc_float_type t = cfg->has_torch_dtype ? cfg->torch_dtype : TC_FT_FLOAT16;
    /* TensorRT-LLM's auto turns float32 into float16; a Hugging Face
     * output keeps the model's dtype. */
    return t == TC_FT_FLOAT32 && !o->output_hf ? TC_FT_FLOAT16 : t;
}

/* mpirun binds each rank to one core by default (Open MPI: --bind-to core
 * for up to 2 ranks, socket/numa beyond), which silently serialises the
 * --workers threads of a rank. Say so, with the fix. */
static void warn_if_bound_narrower_than_workers(const tc_job *j)
{
    const tc_opts *o = j->o;
    cpu_set_t set;
    if (o->workers <= 1 || sched_getaffinity(0, sizeof set, &set) != 0)
        return;
    int cpus = CPU_COUNT(&set);
    if (cpus < o->workers)
        tc_log(TC_LOG_WARNING, "--workers %lld but rank %d may only run on %d CPU(s): its threads "
               "will share them. Give each rank more CPUs (Open MPI: mpirun --bind-to none, or "
               "--map-by slot:PE=%lld; Slurm: --cpus-per-task=%lld)", (long long)o->workers,
               j->comm->rank, cpus, (long long)o->workers, (long long)o->workers);
}

/* The CUTLASS layout of weight-only weights depends on the GPU that will run
 * the engine; upstream uses the GPU doing the conversion. Resolve it once
 * per job: --target_sm, else this rank's GPU; all ranks must agree. A
 * collective: every rank calls it, also after a local failure (st). */
static tc_status resolve_target_sm(tc_job *j, tc_status st)
{
    const tc_opts *o = j->o;
    const tc_comm *c = j->comm;
    const tc_gpu_info *gpu = &j->gpu;
    const tc_quant_method *w = j->s.quant.weights;
    /* Unquantized or unpreprocessed weights have no layout to choose. */
    const bool needs_sm = w->woq_bits && !w->woq_no_plugin;
    int sm = 0;
    if (st == TC_OK && needs_sm) {
        if (o->target_sm > 0)
            sm = (int)o->target_sm;
        else if (gpu->count > 0)
            sm = gpu->sm;
        else
            st = tc_fail(TC_E_USAGE,
                         "--use_weight_only: rank %d has no GPU and no --target_sm was given. The "
                         "bytes of weight-only weights are laid out for the GPU architecture that "
                         "will run the engine (TensorRT-LLM uses the GPU doing the conversion), "
                         "so trtconv cannot choose one for you: pass --target_sm 80 for A100, 86 "
                         "or 89 for RTX/L40-class GPUs, 90 for H100/H200", c->rank);
        if (st == TC_OK && o->quantize_on == 2 && gpu->count == 0)
            st = tc_fail(TC_E_USAGE, "--quantize_on gpu: rank %d has no usable GPU", c->rank);
    }
    int lo_hi[2] = { sm > 0 ? -sm : -100000, sm }; /* MAX of -sm is -min */
    int agg[2];
    tc_status cs = TC_MPI_TRY(MPI_Allreduce(lo_hi, agg, 2, MPI_INT, MPI_MAX, c->world));
    if (cs != TC_OK)
        return cs;
    if (st == TC_OK && needs_sm && sm > 0 && -agg[0] != agg[1])
        st = tc_fail(TC_E_USAGE, "ranks disagree on the target SM (%d on some, %d on others: "
                     "different GPUs); pass --target_sm", -agg[0], agg[1]);
    if (st == TC_OK && needs_sm && sm > 0) {
        j->s.quant.target_sm = sm;
        if (c->rank == 0)
            tc_log(TC_LOG_INFO, "weight-only int%d, CUTLASS layout for sm%d (%s)", w->woq_bits,
                   sm, gpu->count > 0 && sm == gpu->sm ? gpu->name : "--target_sm");
    }
    return st;
}

/* Each rank's placement at verbose level (what a Slurm/MPIJob user checks
 * first when binding looks wrong), and one line per host naming ranks that
 * share a GPU, whose collectives then use MPI host buffers. Collective over
 * the node communicator: every rank calls it once, whatever `st` is. */
static tc_status report_placement(const tc_comm *c, const tc_gpu_info *gpu, tc_status st)
{
    const char *cvd = getenv("CUDA_VISIBLE_DEVICES");
    const char *slurm_localid = getenv("SLURM_LOCALID");
    if (gpu->device >= 0)
        tc_log(TC_LOG_VERBOSE, "placement: node-local rank %d of %d, GPU %d of %d (%s, %s), "
               "CUDA_VISIBLE_DEVICES=%s SLURM_LOCALID=%s", c->local_rank, c->local_size,
               gpu->device, gpu->count, gpu->name, gpu->uuid, cvd ? cvd : "(unset)",
               slurm_localid ? slurm_localid : "(unset)");
    else
        tc_log(TC_LOG_VERBOSE, "placement: node-local rank %d of %d, no GPU in use, "
               "CUDA_VISIBLE_DEVICES=%s SLURM_LOCALID=%s", c->local_rank, c->local_size,
               cvd ? cvd : "(unset)", slurm_localid ? slurm_localid : "(unset)");
    char mine[48];
    snprintf(mine, sizeof mine, "%s", gpu->device >= 0 ? gpu->uuid : "");
    char *all = c->local_rank == 0 ? calloc((size_t)c->local_size, sizeof mine) : NULL;
    if (c->local_rank == 0 && !all)
        return st != TC_OK ? st : tc_fail(TC_E_INTERNAL, "out of memory");
    tc_status gs = TC_MPI_TRY(MPI_Gather(mine, (int)sizeof mine, MPI_CHAR, all, (int)sizeof mine,
                                         MPI_CHAR, 0, c->node));
    if (gs == TC_OK && all) {
        for (int i = 0; i < c->local_size; i++) {
            const char *u = all + (size_t)i * sizeof mine;
            bool first = u[0] != '\0';
            for (int k = 0; k < i && first; k++)
                first = strcmp(u, all + (size_t)k * sizeof mine) != 0;
            if (!first)
                continue;
            char ranks[256] = "";
            int n = 0;
            for (int k = i; k < c->local_size; k++) {
                if (strcmp(u, all + (size_t)k * sizeof mine))
                    continue;
                size_t used = strlen(ranks);
                snprintf(ranks + used, sizeof ranks - used, "%s%d", n ? "," : "", k);
                n++;
            }
            if (n > 1)
                tc_log(TC_LOG_INFO, "node-local ranks %s share GPU %s: collectives among them "
                       "use MPI host buffers, not NCCL", ranks, u);
        }
    }
    free(all);
    return st != TC_OK ? st : gs;
}

/* The settings that need no model and no GPU. */
static tc_status settle_options(tc_job *j)
{
    const tc_opts *o = j->o;
    tc_settings *s = &j->s;
    s->format = o->output_hf ? &tc_output_hf : &tc_output_trtllm;
    s->dtype = o->dtype;
    s->emb.parallel = o->use_parallel_embedding;
    s->emb.sharding_dim = (int)o->embedding_sharding_dim;
    s->emb.share = o->use_embedding_sharing;
    TC_TRY(tc_layout_init(&s->layout, o->tp_size, o->pp_size, j->comm->size));
    TC_TRY(tc_layout_set_moe(&s->layout, o->moe_tp_size, o->moe_ep_size));
    tc_quant_request req;
    tc_opts_quant_request(o, &req);
    if (o->output_hf) {
        /* The TensorRT-LLM methods stay "none": hf_quant.h quantizes. */
        s->hfq.algo = o->use_fp8 ? TC_HF_ALGO_FP8 : o->use_fp8_rowwise ? TC_HF_ALGO_FP8_PC_PT
                      : o->use_nvfp4 ? TC_HF_ALGO_NVFP4 : TC_HF_ALGO_NONE;
        s->hfq.kv_fp8 = o->fp8_kv_cache;
        TC_TRY(tc_hf_quant_parse_exclude(o->exclude_modules, &s->hfq));
        memset(&req, 0, sizeof req);
    }
    return tc_quant_select(&req, &s->quant);
}

bool tc_job_calib_needs(const tc_job *j)
{
    return j->o->output_hf ? tc_hf_quant_needs_stats(&j->s.hfq)
                           : tc_quant_calib_needs(&j->s.quant) != 0;
}

int tc_job_cells(const tc_job *j)
{
    return j->s.hf ? j->s.hf->shards : tc_layout_cells(&j->s.layout);
}

int tc_job_max_cells_per_rank(const tc_job *j)
{
    const int size = j->comm->size;
    return j->s.hf ? (j->s.hf->shards + size - 1) / size
                   : (int)tc_layout_max_cells_per_rank(&j->s.layout);
}

size_t tc_job_rank_cells(const tc_job *j, int rank, int *ids)
{
    if (!j->s.hf)
        return tc_layout_rank_cells(&j->s.layout, rank, ids);
    size_t n = 0;
    for (int k = rank; k < j->s.hf->shards; k += j->comm->size)
        ids[n++] = k;
    return n;
}

void tc_job_settings_free(tc_job *j)
{
    tc_hf_output_free(j->s.hf);
    j->s.hf = NULL;
}

tc_status tc_job_setup(tc_job *j)
{
    const tc_opts *o = j->o;
    const tc_comm *c = j->comm;
    tc_settings *s = &j->s;
    memset(&j->gpu, 0, sizeof j->gpu);
    j->gpu.device = -1;
    if (c->rank == 0 && (o->load_by_shard || o->load_model_on_cpu))
        tc_log(TC_LOG_INFO, "--load_by_shard/--load_model_on_cpu have no effect: trtconv always "
               "reads only the slices each rank needs, on the CPU");
    warn_if_bound_narrower_than_workers(j);

    /* Every rank resolves the options alike; without them (no quantization
     * entry, no layout) nothing below can run. */
    tc_status st = settle_options(j);
    if (st != TC_OK)
        return tc_comm_agree(c, st, "setup");
    if (c->rank == 0)
        st = check_output_dir(j);
    /* The input directory: Hugging Face (safetensors or .bin) or Meta. */
    const char *src_dir = o->model_dir ? o->model_dir : o->meta_ckpt_dir;
    if (st == TC_OK && src_dir) {
        st = o->model_dir ? tc_hf_open(src_dir, &j->model) : tc_meta_open(src_dir, &j->model);
        /* v0.12 halves the KV heads in LLaMAForCausalLM.from_hugging_face,
         * so not for --save_config_only nor for Meta checkpoints, whose
         * config.json only records the flag. */
        if (st == TC_OK && o->remove_duplicated_kv_heads && o->model_dir && !o->save_config_only)
            st = tc_hf_config_remove_duplicated_kv_heads(&j->model->cfg, src_dir);
        else if (st == TC_OK && o->remove_duplicated_kv_heads && c->rank == 0 && !o->model_dir)
            tc_log(TC_LOG_WARNING, "--remove_duplicated_kv_heads changes nothing for a Meta "
                   "checkpoint (as in TensorRT-LLM v0.12, whose Meta loader ignores it); "
                   "config.json records the flag");
        if (st == TC_OK)
            st = tc_quant_from_model(&s->quant, &j->model->cfg);
        if (st == TC_OK)
            st = tc_quant_check_model(&s->quant, &j->model->cfg);
        /* Written as v0.12 writes it, but no v0.12 engine runs it: say so. */
        if (st == TC_OK && c->rank == 0 && s->quant.weights->woq_no_plugin &&
            tc_hf_is_moe(&j->model->cfg))
            tc_log(TC_LOG_WARNING, "--disable_weight_only_quant_plugin of a mixture-of-experts "
                   "model: the experts are written unquantized and transposed, as TensorRT-LLM "
                   "v0.12 writes them, but its MoE layer takes weight-only experts only as int8 "
                   "in the MoE plugin's layout (MOEWeightWrapper; the out-of-plugin MoE refuses "
                   "weight-only): an engine built from this checkpoint does not run the experts "
                   "as weight-only. Convert without the flag (docs/moe.md)");
        if (st == TC_OK) {
            s->dtype = resolve_dtype(o, &j->model->cfg);
            const tc_plan_params pp = { .layout = s->layout, .emb = s->emb };
            st = tc_plan_check_model(&j->model->cfg, &pp);
        }
    }
    s->out_dtype = tc_float_type_dtype(s->dtype);
    /* Only quantization uses a GPU; a CUDA context costs ~100 MiB of host
     * memory, so plain conversions never create one. */
    const tc_quant_method *w = s->quant.weights;
    const bool calib = tc_job_calib_needs(j);
    const bool cpu_only = o->quantize_on == 1;
    const bool needs_sm = w->woq_bits && !w->woq_no_plugin;
    if (st == TC_OK && ((w->gpu_quantize && !cpu_only) || (needs_sm && o->target_sm <= 0) ||
                        (calib && !cpu_only)))
        st = tc_gpu_probe(c->local_rank, c->local_size, c->host, &j->gpu);
    if (st == TC_OK && o->output_hf && j->model)
        st = tc_hf_output_build(j->model, s->out_dtype, &s->hfq, o->max_shard_bytes, &s->hf);
    st = report_placement(c, &j->gpu, st);
    st = resolve_target_sm(j, st);
    if (st == TC_OK)
        st = tc_calibration_input_check(j);
    st = tc_comm_agree(c, st, "setup");
    if (st != TC_OK)
        return st; /* reported once, as a setup failure */
    const bool has_gpu = j->gpu.count > 0 && !cpu_only;
    s->quant_gpu = w->gpu_quantize && has_gpu ? &j->gpu : NULL;
    s->calib_gpu = calib && has_gpu ? &j->gpu : NULL;
    s->share_embedding = j->model && s->emb.share && j->model->cfg.tie_word_embeddings;
    if (c->rank == 0 && j->model && s->emb.share && !s->share_embedding)
        tc_log(TC_LOG_WARNING, "--use_embedding_sharing: the model does not tie lm_head to the "
               "embedding (tie_word_embeddings is false); lm_head is kept");

    st = TC_MPI_TRY(MPI_Bcast(j->lock_token, (int)sizeof j->lock_token, MPI_CHAR, 0, c->world));
    if (st == TC_OK && c->rank == 0)
        st = uncommit_output_dir(j, src_dir && !o->save_config_only ? tc_job_cells(j) : 0);
    return tc_comm_agree(c, st, "output directory");
}

void tc_job_output_desc(const tc_job *j, tc_output_desc *d)
{
    const tc_opts *o = j->o;
    memset(d, 0, sizeof *d);
    d->cfg = j->model ? &j->model->cfg : NULL;
    d->flags = &o->model;
    d->remove_duplicated_kv_heads = o->remove_duplicated_kv_heads;
    d->use_meta_fp8_rowwise_recipe = o->use_meta_fp8_rowwise_recipe;
    d->layout = j->s.layout;
    d->dtype = j->s.dtype;
    d->quant = &j->s.quant;
    d->emb = j->s.emb;
    d->share_embedding = j->s.share_embedding;
    d->disable_weight_only_quant_plugin = o->disable_weight_only_quant_plugin;
    d->model_dir = o->model_dir;
    d->cells = j->model ? tc_job_cells(j) : 0;
    d->hf = j->s.hf;
}
