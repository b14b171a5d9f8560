/* driver.c: phases of a trtconv job on one rank (see driver.h). */
#define _GNU_SOURCE /* statvfs, fsync of directories, nanosleep */
#include "trtconv/app/run.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "trtconv/calib/calib_stats.h"
#include "trtconv/mpi/comm.h"
#include "trtconv/convert/convert.h"
#include "trtconv/fwd/fwd.h"
#include "trtconv/quant/sq.h"
#include "trtconv/calib/tokens.h"
#include "trtconv/mpi/gpu.h"
#include "trtconv/mpi/launch.h"
#include "trtconv/model/hf_model.h"
#include "trtconv/core/log.h"
#include "trtconv/output/manifest.h"
#include "trtconv/build_config.h"
#include "trtconv/cli/options.h"
#include "trtconv/output/outdir.h"
#include "trtconv/plan/plan.h"
#include "trtconv/formats/trtllm_config.h"

enum { TAG_PROGRESS = 11, TAG_ABORT = 12 };

/* Progress report of one rank to rank 0. */
typedef struct progress_msg {
    uint64_t done, total;
    int32_t finished;
    int32_t status;
} progress_msg;

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static tc_status mkdir_p(const char *path)
{
    char buf[4096];
    if ((size_t)snprintf(buf, sizeof buf, "%s", path) >= sizeof buf)
        return tc_fail(TC_E_USAGE, "--output_dir: path too long");
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return tc_fail(TC_E_IO, "%s: cannot create directory: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return tc_fail(TC_E_IO, "%s: cannot create output directory: %s", buf, strerror(errno));
    struct stat sb;
    if (stat(buf, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return tc_fail(TC_E_IO, "%s: output path exists and is not a directory", buf);
    return TC_OK;
}

static const char *calib_tokenizer_dir(const tc_opts *o);

/* The output directory's lock (outdir.h): held by rank 0, its token known to
 * every rank, which checks it before publishing anything. */
static tc_outdir_lock *g_lock;
static char g_lock_token[TC_LOCK_TOKEN_LEN + 1];

/* Rank 0, during setup: the output directory is none of the inputs (nor
 * holds or lies in one), exists, is writable and is locked for this job;
 * a complete checkpoint in it (config.json present) is only replaced with
 * --overwrite or reused with --resume. Nothing in it is changed yet: a run
 * that fails its setup leaves an earlier checkpoint as it was. */
static tc_status check_output_dir(const tc_opts *o, const char *host)
{
    const char *dir = o->output_dir;
    const tc_outdir_input inputs[] = {
        { o->model_dir, "--model_dir" },
        { o->meta_ckpt_dir, "--meta_ckpt_dir" },
        { o->calibrate ? calib_tokenizer_dir(o) : NULL, "--tokenizer_dir" },
        { o->calibrate && !o->calib_stats ? o->calib_dataset : NULL, "--calib_dataset" },
        { o->calib_stats, "--calib_stats" },
    };
    TC_TRY(tc_outdir_check_inputs(dir, inputs, sizeof inputs / sizeof inputs[0]));
    tc_status st = mkdir_p(dir);
    if (st != TC_OK)
        return st;
    TC_TRY(tc_outdir_lock_acquire(dir, host, &g_lock, g_lock_token));
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/.trtconv-write-probe.%ld", dir, (long)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return tc_fail(TC_E_IO, "%s: output directory is not writable: %s", dir, strerror(errno));
    close(fd);
    unlink(probe);
    char cfg[4200];
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    struct stat sb;
    if (lstat(cfg, &sb) == 0 && !o->overwrite && !o->resume)
        return tc_fail(TC_E_USAGE, "%s holds a complete checkpoint (config.json): refusing "
                       "to replace it. Pass --overwrite to replace it, --resume to keep its "
                       "rank files that match this run, or choose another --output_dir", dir);
    return TC_OK;
}

/* Rank 0, once setup succeeded and before anything is written: the commit
 * marker of an earlier checkpoint goes first (durably), so from now on the
 * directory never looks complete until this run commits. Then the files of
 * an earlier run that this one would not rewrite: rank files beyond the new
 * mapping, the manifest, and the rank records unless resuming. */
static tc_status uncommit_output_dir(const tc_opts *o, int64_t world)
{
    const char *dir = o->output_dir;
    char cfg[4200];
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    if (unlink(cfg) == 0) {
        tc_log(TC_LOG_INFO, "%s: %s the checkpoint of an earlier run", dir,
               o->resume ? "resuming from" : "replacing");
        TC_TRY(tc_fsync_dir(dir));
    } else if (errno != ENOENT) {
        return tc_fail(TC_E_IO, "%s: cannot remove the old config.json: %s", cfg,
                       strerror(errno));
    }
    return tc_output_clear_stale(dir, world, o->resume);
}

/* Fill the TensorRT-LLM config from the HF config (or, with cfg == NULL,
 * from the fake-config flags as convert_checkpoint.py does). */
static void build_trtllm_config(const tc_opts *o, const tc_hf_config *cfg, tc_float_type dtype,
                                bool share_embedding, tc_trtllm_config *t)
{
    memset(t, 0, sizeof *t);
    if (o->woq_bits)
        t->quant_algo = o->woq_bits == 4 ? "W4A16" : "W8A16";
    if (o->sq_enabled) {
        /* args_to_quant_config (trtllm-checkpoint.md §1). */
        t->quant_algo = o->per_channel ? (o->per_token ? "W8A8_SQ_PER_CHANNEL_PER_TOKEN_PLUGIN"
                                                       : "W8A8_SQ_PER_CHANNEL_PER_TENSOR_PLUGIN")
                                       : (o->per_token ? "W8A8_SQ_PER_TENSOR_PER_TOKEN_PLUGIN"
                                                       : "W8A8_SQ_PER_TENSOR_PLUGIN");
        t->has_smoothquant_val = true;
        t->smoothquant_val = o->smoothquant;
    }
    if (o->int8_kv_cache)
        t->kv_cache_quant_algo = "INT8";
    t->disable_weight_only_quant_plugin = o->disable_weight_only_quant_plugin;
    t->dtype = dtype;
    t->logits_dtype = "float32";
    t->position_embedding_type = "rope_gpt_neox";
    t->moe_normalization_mode = -1;
    t->world_size = o->tp_size * o->pp_size;
    t->gpus_per_node = 8;
    t->cp_size = 1;
    t->tp_size = o->tp_size;
    t->pp_size = o->pp_size;
    /* convert_checkpoint.py main(): -1 derives one from the other, both
     * -1 is tp-only MoE. */
    t->moe_tp_size = o->tp_size;
    t->moe_ep_size = 1;
    if (o->moe_tp_size > 0 && o->moe_ep_size > 0) {
        t->moe_tp_size = o->moe_tp_size;
        t->moe_ep_size = o->moe_ep_size;
    } else if (o->moe_ep_size > 0) {
        t->moe_tp_size = o->tp_size / o->moe_ep_size;
        t->moe_ep_size = o->moe_ep_size;
    } else if (o->moe_tp_size > 0) {
        t->moe_tp_size = o->moe_tp_size;
        t->moe_ep_size = o->tp_size / o->moe_tp_size;
    }
    t->group_size = 128;
    t->use_parallel_embedding = o->use_parallel_embedding;
    t->embedding_sharding_dim = o->embedding_sharding_dim;
    t->share_embedding_table = share_embedding;
    if (cfg) {
        t->attn_bias = cfg->attention_bias;
        t->rotary_base = cfg->rope_theta;
        t->rotary_scaling = cfg->rope_scaling;
        t->architecture = cfg->architecture;
        t->vocab_size = cfg->vocab_size;
        t->hidden_size = cfg->hidden_size;
        t->num_hidden_layers = cfg->num_hidden_layers;
        t->num_attention_heads = cfg->num_attention_heads;
        t->hidden_act = cfg->hidden_act;
        t->norm_epsilon = cfg->rms_norm_eps;
        t->max_position_embeddings = cfg->max_position_embeddings;
        t->num_key_value_heads = cfg->num_key_value_heads;
        t->intermediate_size = cfg->intermediate_size;
        t->head_size = cfg->head_dim;
    } else {
        t->rotary_base = o->rotary_base;
        t->architecture = "LlamaForCausalLM";
        t->vocab_size = o->vocab_size;
        t->hidden_size = o->n_embd;
        t->num_hidden_layers = o->n_layer;
        t->num_attention_heads = o->n_head;
        t->hidden_act = o->hidden_act;
        t->norm_epsilon = o->rms_norm_eps;
        t->max_position_embeddings = o->n_positions;
        t->num_key_value_heads = o->n_kv_head > 0 ? o->n_kv_head : o->n_head;
        t->intermediate_size = o->inter_size;
        t->head_size = o->n_embd / o->n_head;
        t->moe_num_experts = o->moe_num_experts;
        t->moe_top_k = o->moe_top_k;
        t->moe_normalization_mode = o->moe_renorm_mode;
        if (o->multiple_of > 0) {
            t->has_multiple_of = true;
            t->multiple_of = o->multiple_of;
        }
        if (!isnan(o->ffn_dim_multiplier)) {
            t->has_ffn_dim_multiplier = true;
            t->ffn_dim_multiplier = o->ffn_dim_multiplier;
        }
    }
}

static tc_status render_config(const tc_opts *o, const tc_hf_config *cfg, tc_float_type dtype,
                               bool share_embedding, char **text)
{
    tc_trtllm_config t;
    build_trtllm_config(o, cfg, dtype, share_embedding, &t);
    return cfg ? tc_trtllm_config_render(&t, text) : tc_trtllm_cli_config_render(&t, text);
}

/* ---- progress ---------------------------------------------------------- */

typedef struct progress_view {
    bool enabled, bar;
    double t0, last_print;
    uint64_t total;
} progress_view;

static void format_bytes(double b, char *buf, size_t n)
{
    if (b >= 1e9)
        snprintf(buf, n, "%.2f GB", b / 1e9);
    else
        snprintf(buf, n, "%.1f MB", b / 1e6);
}

static void progress_show(progress_view *v, uint64_t done, bool final)
{
    if (!v->enabled)
        return;
    double t = tc_now_seconds();
    if (!final && t - v->last_print < (v->bar ? 0.2 : 5.0))
        return;
    v->last_print = t;
    double el = t - v->t0;
    double rate = el > 0 ? (double)done / el : 0;
    double frac = v->total ? (double)done / (double)v->total : 1.0;
    char d[32], tot[32], r[32], eta[32] = "";
    format_bytes((double)done, d, sizeof d);
    format_bytes((double)v->total, tot, sizeof tot);
    format_bytes(rate, r, sizeof r);
    if (!final && rate > 0)
        snprintf(eta, sizeof eta, ", ETA %.0f s", (double)(v->total - done) / rate);
    else if (final)
        snprintf(eta, sizeof eta, " in %.1f s", el);
    if (v->bar) {
        char bar[31];
        int fill = (int)(frac * 30);
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[30] = '\0';
        fprintf(stderr, "\r[%s] %3.0f%% %s/%s %s/s%s   ", bar, 100 * frac, d, tot, r, eta);
        if (final)
            fputc('\n', stderr);
        fflush(stderr);
    } else {
        tc_log(TC_LOG_INFO, "progress: %3.0f%% %s/%s, %s/s%s", 100 * frac, d, tot, r, eta);
    }
}

/* ---- conversion phase -------------------------------------------------- */

/* Run this rank's conversion while exchanging progress with rank 0. Returns
 * the local status (TC_E_CANCELLED when told to stop by rank 0). Every rank
 * leaves this function only after rank 0 has heard its final report, so no
 * message is left unmatched. */
static tc_status convert_phase(const tc_comm *c, const tc_opts *o, tc_cell_output *cells,
                               size_t n_cells, uint64_t my_total, uint64_t all_total,
                               const tc_gpu_info *gpu, tc_status pre)
{
    tc_progress prog;
    atomic_init(&prog.done_bytes, 0);
    atomic_init(&prog.cancel, 0);
    tc_convert_job *job = NULL;
    tc_status local = pre;
    bool job_done = n_cells == 0 || pre != TC_OK;

    if (!job_done) {
        local = tc_convert_start(cells, n_cells, (int)o->workers, gpu, &prog, &job);
        if (local != TC_OK)
            job_done = true;
    }

    progress_view view = { 0 };
    view.enabled = c->rank == 0 && !o->no_progress && tc_log_get_level() >= TC_LOG_INFO;
    view.bar = o->progress_bar || (o->progress_auto && isatty(STDERR_FILENO));
    view.t0 = tc_now_seconds();
    view.total = all_total;

    /* rank 0 state */
    uint64_t *done_of = NULL;
    int *final_of = NULL;
    int finals = 0;
    bool abort_sent = false;
    MPI_Request *abort_reqs = NULL;
    int abort_payload = 1;
    /* other ranks' state */
    progress_msg out_msg;
    MPI_Request out_req = MPI_REQUEST_NULL;
    bool final_sent = false, abort_seen = false;
    double last_send = 0;
    tc_status comm_st = TC_OK;

    if (c->rank == 0) {
        done_of = calloc((size_t)c->size, sizeof *done_of);
        final_of = calloc((size_t)c->size, sizeof *final_of);
        abort_reqs = malloc((size_t)c->size * sizeof *abort_reqs);
        if (!done_of || !final_of || !abort_reqs) {
            free(done_of); free(final_of); free(abort_reqs);
            atomic_store(&prog.cancel, 1);
            if (job)
                tc_convert_join(job);
            return tc_fail(TC_E_INTERNAL, "out of memory");
        }
        for (int r = 0; r < c->size; r++)
            abort_reqs[r] = MPI_REQUEST_NULL;
    }

    for (;;) {
        if (!job_done && tc_convert_done(job)) {
            local = tc_convert_join(job);
            job = NULL;
            job_done = true;
        }
        uint64_t mine = atomic_load(&prog.done_bytes);
        double t = tc_now_seconds();
        if (c->rank == 0) {
            int flag = 1;
            while (flag && comm_st == TC_OK) {
                MPI_Status s;
                comm_st = TC_MPI_TRY(MPI_Iprobe(MPI_ANY_SOURCE, TAG_PROGRESS, c->world, &flag, &s));
                if (comm_st != TC_OK || !flag)
                    break;
                progress_msg m;
                comm_st = TC_MPI_TRY(MPI_Recv(&m, (int)sizeof m, MPI_BYTE, s.MPI_SOURCE,
                                              TAG_PROGRESS, c->world, MPI_STATUS_IGNORE));
                if (comm_st != TC_OK)
                    break;
                done_of[s.MPI_SOURCE] = m.done;
                if (m.finished && !final_of[s.MPI_SOURCE]) {
                    final_of[s.MPI_SOURCE] = 1;
                    finals++;
                    if (m.status != TC_OK && m.status != TC_E_CANCELLED && !abort_sent)
                        tc_log(TC_LOG_ERROR, "rank %d failed (%s); stopping all ranks",
                               s.MPI_SOURCE, tc_status_str((tc_status)m.status));
                    if (m.status != TC_OK && !abort_sent)
                        atomic_store(&prog.cancel, 1);
                }
            }
            if (comm_st != TC_OK || (job_done && local != TC_OK))
                atomic_store(&prog.cancel, 1);
            if (atomic_load(&prog.cancel) && !abort_sent) {
                for (int r = 1; r < c->size; r++)
                    MPI_Isend(&abort_payload, 1, MPI_INT, r, TAG_ABORT, c->world, &abort_reqs[r]);
                abort_sent = true;
            }
            if (!final_of[0] && job_done) {
                final_of[0] = 1;
                finals++;
            }
            done_of[0] = mine;
            uint64_t sum = 0;
            for (int r = 0; r < c->size; r++)
                sum += done_of[r];
            progress_show(&view, sum, false);
            if (finals == c->size || comm_st != TC_OK)
                break;
        } else {
            if (!abort_seen) {
                int flag = 0;
                comm_st = TC_MPI_TRY(MPI_Iprobe(0, TAG_ABORT, c->world, &flag, MPI_STATUS_IGNORE));
                if (comm_st == TC_OK && flag) {
                    int x;
                    comm_st = TC_MPI_TRY(MPI_Recv(&x, 1, MPI_INT, 0, TAG_ABORT, c->world,
                                                  MPI_STATUS_IGNORE));
                    abort_seen = true;
                    atomic_store(&prog.cancel, 1);
                }
            }
            int sent_done = 1;
            if (out_req != MPI_REQUEST_NULL)
                MPI_Test(&out_req, &sent_done, MPI_STATUS_IGNORE);
            if (sent_done && !final_sent && (job_done || t - last_send >= 0.5)) {
                out_msg.done = mine;
                out_msg.total = my_total;
                out_msg.finished = job_done;
                out_msg.status = (int32_t)local;
                comm_st = TC_MPI_TRY(MPI_Isend(&out_msg, (int)sizeof out_msg, MPI_BYTE, 0,
                                               TAG_PROGRESS, c->world, &out_req));
                last_send = t;
                final_sent = job_done;
            }
            if (comm_st != TC_OK) {
                atomic_store(&prog.cancel, 1);
                break;
            }
            if (final_sent) {
                MPI_Wait(&out_req, MPI_STATUS_IGNORE);
                break;
            }
        }
        sleep_ms(job_done ? 5 : 50);
    }
    if (job) {
        atomic_store(&prog.cancel, 1);
        local = tc_convert_join(job);
    }
    if (c->rank == 0 && local == TC_OK && comm_st == TC_OK && !abort_sent)
        progress_show(&view, all_total, true);

    /* Settle the abort messages: rank 0 tells everyone whether it sent one,
     * and a rank that has not received its copy yet receives it now. */
    int sent = abort_sent;
    if (comm_st == TC_OK)
        comm_st = TC_MPI_TRY(MPI_Bcast(&sent, 1, MPI_INT, 0, c->world));
    if (comm_st == TC_OK && c->rank != 0 && sent && !abort_seen) {
        int x;
        comm_st = TC_MPI_TRY(MPI_Recv(&x, 1, MPI_INT, 0, TAG_ABORT, c->world, MPI_STATUS_IGNORE));
    }
    if (c->rank == 0 && abort_sent)
        MPI_Waitall(c->size, abort_reqs, MPI_STATUSES_IGNORE);
    free(done_of);
    free(final_of);
    free(abort_reqs);
    if (comm_st != TC_OK)
        return comm_st;
    if (local == TC_OK && sent)
        return TC_OK; /* finished before the stop arrived */
    return local;
}

/* ---- phases ------------------------------------------------------------ */

typedef struct disk_info {
    uint64_t host_hash;
    uint64_t dev;
    uint64_t need;
    uint64_t avail;
} disk_info;

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* Every filesystem must have room for what all ranks write to it. */
static tc_status check_disk_space(const tc_comm *c, const char *dir, uint64_t need, bool *reported)
{
    disk_info mine = { hash_str(c->host), 0, need, UINT64_MAX };
    struct statvfs vs;
    struct stat sb;
    *reported = false;
    if (statvfs(dir, &vs) == 0 && stat(dir, &sb) == 0) {
        mine.dev = (uint64_t)sb.st_dev;
        mine.avail = (uint64_t)vs.f_bavail * (uint64_t)vs.f_frsize;
    }
    disk_info *all = calloc((size_t)c->size, sizeof *all);
    if (!all)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    tc_status st = TC_MPI_TRY(MPI_Allgather(&mine, (int)sizeof mine, MPI_BYTE, all,
                                            (int)sizeof mine, MPI_BYTE, c->world));
    if (st == TC_OK) {
        uint64_t total = 0;
        int first = -1;
        for (int r = 0; r < c->size; r++) {
            if (all[r].host_hash == mine.host_hash && all[r].dev == mine.dev) {
                total += all[r].need;
                if (first < 0)
                    first = r;
            }
        }
        /* 1 MiB of slack per rank for headers and metadata blocks. */
        total += (uint64_t)c->size << 20;
        if (total > mine.avail) {
            if (first == c->rank) {
                *reported = true;
                st = tc_fail(TC_E_IO, "%s: not enough free disk space: the ranks writing to this "
                             "filesystem need %.2f GB, %.2f GB are available", dir,
                             (double)total / 1e9, (double)mine.avail / 1e9);
            } else {
                st = TC_E_CANCELLED;
            }
        }
    }
    free(all);
    return st;
}

static tc_status resolve_dtype(const tc_opts *o, const tc_hf_config *cfg, tc_float_type *out)
{
    if (!o->dtype_auto) {
        *out = o->dtype;
        return TC_OK;
    }
    /* Era B LLaMAConfig: torch_dtype, default float16; float32 -> float16. */
    *out = cfg->has_torch_dtype ? cfg->torch_dtype : TC_FT_FLOAT16;
    if (*out == TC_FT_FLOAT32)
        *out = TC_FT_FLOAT16;
    return TC_OK;
}

/* Peak resident memory of every rank (getrusage), gathered to rank 0: the
 * streaming design promises it stays flat whatever the model size. */
static void report_peak_rss(const tc_comm *c)
{
    struct rusage ru;
    long mine = getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1; /* KiB */
    long *all = c->rank == 0 ? calloc((size_t)c->size, sizeof *all) : NULL;
    if (MPI_Gather(&mine, 1, MPI_LONG, all, 1, MPI_LONG, 0, c->world) != MPI_SUCCESS || !all) {
        free(all);
        return;
    }
    long mx = 0;
    int at = 0;
    char list[512] = "";
    size_t len = 0;
    for (int r = 0; r < c->size; r++) {
        if (all[r] > mx) {
            mx = all[r];
            at = r;
        }
        if (r < 16 && len < sizeof list - 32)
            len += (size_t)snprintf(list + len, sizeof list - len, "%s%.0f", r ? " " : "",
                                    (double)all[r] / 1024.0);
    }
    tc_log(TC_LOG_INFO, "peak RSS per rank (MiB): %s%s; max %.0f MiB on rank %d", list,
           c->size > 16 ? " ..." : "", (double)mx / 1024.0, at);
    free(all);
}

static void print_summary(const tc_comm *c, const tc_opts *o, double seconds, uint64_t bytes)
{
    report_peak_rss(c);
    if (c->rank != 0)
        return;
    int64_t world = o->tp_size * o->pp_size;
    tc_log(TC_LOG_INFO, "wrote %s: config.json and %lld rank file(s), %.2f GB in %.1f s (%.2f GB/s)",
           o->output_dir, (long long)world, (double)bytes / 1e9, seconds,
           seconds > 0 ? (double)bytes / 1e9 / seconds : 0.0);
    if (tc_log_get_level() < TC_LOG_INFO)
        return;
    for (int64_t r = 0; r < world && r < 64; r++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/rank%lld.safetensors", o->output_dir, (long long)r);
        tc_st_file *f = NULL;
        if (tc_st_open(path, &f, NULL) == TC_OK) {
            tc_log(TC_LOG_INFO, "  rank%lld.safetensors  tp %lld pp %lld  %zu tensors  %.1f MB",
                   (long long)r, (long long)(r % o->tp_size), (long long)(r / o->tp_size),
                   f->n_tensors, (double)f->file_size / 1e6);
            tc_st_close(f);
        }
    }
}

/* mpirun binds each rank to one core by default (Open MPI: --bind-to core
 * for up to 2 ranks, socket/numa beyond), which silently serialises the
 * --workers threads of a rank. Say so, with the fix. */
static void warn_if_bound_narrower_than_workers(const tc_comm *c, const tc_opts *o)
{
    cpu_set_t set;
    if (o->workers <= 1 || sched_getaffinity(0, sizeof set, &set) != 0)
        return;
    int cpus = CPU_COUNT(&set);
    if (cpus < o->workers)
        tc_log(TC_LOG_WARNING, "--workers %lld but rank %d may only run on %d CPU(s): its threads "
               "will share them. Give each rank more CPUs (Open MPI: mpirun --bind-to none, or "
               "--map-by slot:PE=%lld; Slurm: --cpus-per-task=%lld)", (long long)o->workers,
               c->rank, cpus, (long long)o->workers, (long long)o->workers);
}

/* The CUTLASS layout of weight-only weights depends on the GPU that will run
 * the engine; upstream uses the GPU doing the conversion. Resolve it once
 * per job: --target_sm, else this rank's GPU; all ranks must agree. A
 * collective: every rank calls it, also after a local failure (st). */
static tc_status resolve_target_sm(const tc_comm *c, tc_opts *o, const tc_gpu_info *gpu,
                                   tc_status st)
{
    int sm = 0;
    if (st == TC_OK && o->woq_bits && o->disable_weight_only_quant_plugin) {
        /* Unquantized, unpreprocessed weights: no layout to choose. */
    } else if (st == TC_OK && o->woq_bits) {
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
    if (st == TC_OK && o->woq_bits && sm > 0 && -agg[0] != agg[1])
        st = tc_fail(TC_E_USAGE, "ranks disagree on the target SM (%d on some, %d on others: "
                     "different GPUs); pass --target_sm", -agg[0], agg[1]);
    if (st == TC_OK && o->woq_bits && sm > 0) {
        o->target_sm = sm;
        if (c->rank == 0)
            tc_log(TC_LOG_INFO, "weight-only int%d, CUTLASS layout for sm%d (%s)", o->woq_bits,
                   sm, gpu->count > 0 && sm == gpu->sm ? gpu->name : "--target_sm");
    }
    return st;
}

/* ---- run fingerprint, resume, commit (manifest.h) ------------------------ */

typedef struct input_file {
    char dir[4096];
    char name[512];
    int owner;             /* the rank that can read it */
} input_file;

static tc_status add_input(input_file **v, size_t *n, const char *path_or_dir, const char *name,
                           int owner)
{
    input_file *t = realloc(*v, (*n + 1) * sizeof **v);
    if (!t)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    *v = t;
    input_file *f = &t[(*n)++];
    memset(f, 0, sizeof *f);
    f->owner = owner;
    if (name) {
        snprintf(f->dir, sizeof f->dir, "%s", path_or_dir);
        snprintf(f->name, sizeof f->name, "%s", name);
    } else { /* a file path: split at the last '/' */
        const char *slash = strrchr(path_or_dir, '/');
        if (slash) {
            snprintf(f->dir, sizeof f->dir, "%.*s", (int)(slash - path_or_dir), path_or_dir);
            snprintf(f->name, sizeof f->name, "%s", slash + 1);
        } else {
            snprintf(f->dir, sizeof f->dir, ".");
            snprintf(f->name, sizeof f->name, "%s", path_or_dir);
        }
    }
    return TC_OK;
}

/* Where calibration text lines find their tokenizer (tokenizer.h). */
static const char *calib_tokenizer_dir(const tc_opts *o)
{
    return o->tokenizer_dir ? o->tokenizer_dir : o->model_dir ? o->model_dir : o->meta_ckpt_dir;
}

/* What determines this run's bytes, as canonical text and its SHA-256
 * (manifest.h). Every rank builds the same text: parameters locally; input
 * fingerprints spread over the ranks (file i on rank i % N, or on the only
 * rank that reads it) and combined by an all-reduce of their bytes. The MPI
 * size is not part of it: any N writes the same bytes. Collective. */
static tc_status run_fingerprint(const tc_comm *c, const tc_opts *o, const tc_hf_model *m,
                                 tc_float_type dtype, bool share, bool calib_on_gpu,
                                 tc_run_text *run)
{
    static const char *const tf[2] = { "false", "true" };
    tc_run_text_init(run);
    tc_status st = TC_OK;
#define PARAM(k, ...) \
    do { if (st == TC_OK) st = tc_run_param(run, k, __VA_ARGS__); } while (0)
    PARAM("format", "trtconv-output-1");
    PARAM("tool", "%s", TRTCONV_VERSION);
    PARAM("tp_size", "%lld", (long long)o->tp_size);
    PARAM("pp_size", "%lld", (long long)o->pp_size);
    PARAM("dtype", "%s", tc_float_type_name(dtype));
    PARAM("use_parallel_embedding", "%s", tf[o->use_parallel_embedding]);
    PARAM("embedding_sharding_dim", "%lld", (long long)o->embedding_sharding_dim);
    PARAM("share_embedding_table", "%s", tf[share]);
    PARAM("weight_only_bits", "%d", o->woq_bits);
    PARAM("target_sm", "%lld", (long long)(o->woq_bits ? o->target_sm : 0));
    PARAM("disable_weight_only_quant_plugin", "%s", tf[o->disable_weight_only_quant_plugin]);
    PARAM("smoothquant", "%.17g", o->sq_enabled ? o->smoothquant : 0.0);
    PARAM("per_channel", "%s", tf[o->sq_enabled && o->per_channel]);
    PARAM("per_token", "%s", tf[o->sq_enabled && o->per_token]);
    PARAM("int8_kv_cache", "%s", tf[o->int8_kv_cache]);
    if (o->calibrate && o->calib_stats) {
        PARAM("calibration", "statistics file");
    } else if (o->calibrate) {
        /* GPU and CPU statistics differ in the last bits (float sums). */
        PARAM("calibration", "%s forward", calib_on_gpu ? "gpu" : "cpu");
        PARAM("calib_size", "%lld", (long long)o->calib_size);
        PARAM("calib_max_seq_length", "%lld", (long long)o->calib_max_seq_length);
        PARAM("calib_batch_size", "%lld", (long long)o->calib_batch_size);
    }
#undef PARAM
    input_file *files = NULL;
    size_t n = 0;
    if (st == TC_OK)
        st = add_input(&files, &n, m->dir, m->config_name, -1);
    if (st == TC_OK && m->index_name)
        st = add_input(&files, &n, m->dir, m->index_name, -1);
    for (size_t i = 0; st == TC_OK && i < m->n_shards; i++)
        st = add_input(&files, &n, m->dir, m->shard_names[i], -1);
    if (st == TC_OK && o->calibrate && o->calib_stats)
        st = add_input(&files, &n, o->calib_stats, NULL, 0); /* only rank 0 reads it */
    else if (st == TC_OK && o->calibrate)
        st = add_input(&files, &n, o->calib_dataset, NULL, -1);
    if (st == TC_OK && o->calibrate && !o->calib_stats) {
        /* Text lines go through the tokenizer: its files decide the ids. */
        static const char *const tok_files[] = {"tokenizer_config.json", "tokenizer.model",
                                                "tokenizer.json"};
        const char *tdir = calib_tokenizer_dir(o);
        char path[4096];
        struct stat sb;
        for (int i = 0; i < 3 && st == TC_OK; i++) {
            snprintf(path, sizeof path, "%s/%s", tdir, tok_files[i]);
            if (stat(path, &sb) == 0)
                st = add_input(&files, &n, tdir, tok_files[i], -1);
        }
    }
    char *lines = st == TC_OK ? calloc(n ? n : 1, TC_INPUT_LINE) : NULL;
    if (st == TC_OK && !lines)
        st = tc_fail(TC_E_INTERNAL, "out of memory");
    for (size_t i = 0; st == TC_OK && i < n; i++) {
        int owner = files[i].owner >= 0 ? files[i].owner : (int)(i % (size_t)c->size);
        if (owner == c->rank)
            st = tc_input_fingerprint(files[i].dir, files[i].name, o->verify_inputs,
                                      lines + i * TC_INPUT_LINE);
    }
    st = tc_comm_agree(c, st, "input fingerprints");
    if (st == TC_OK)
        st = TC_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, lines, (int)(n * TC_INPUT_LINE), MPI_BYTE,
                                      MPI_BOR, c->world));
    for (size_t i = 0; st == TC_OK && i < n; i++)
        st = tc_run_input(run, lines + i * TC_INPUT_LINE);
    if (st == TC_OK)
        tc_run_seal(run);
    free(lines);
    free(files);
    return st;
}

/* --resume: which of this rank's cells keep the rank file of an earlier run
 * (manifest.h tc_rank_reusable); each decision is logged with its reason. */
static void find_reusable(const tc_opts *o, const tc_run_text *run, tc_plan **plans, size_t n,
                          bool *reused, tc_rank_entry *entries)
{
    for (size_t i = 0; i < n; i++) {
        char why[256];
        reused[i] = o->resume && tc_rank_reusable(o->output_dir, run->run, plans[i]->rank,
                                                  plans[i]->n_tensors, &entries[i], why,
                                                  sizeof why);
        if (reused[i])
            tc_log(TC_LOG_INFO, "--resume: keeping rank%d.safetensors (SHA-256 %.16s... as "
                   "recorded)", plans[i]->rank, entries[i].sha256);
        else if (o->resume)
            tc_log(TC_LOG_INFO, "--resume: rewriting rank%d.safetensors: %s", plans[i]->rank,
                   why);
    }
}

/* This rank's cells of a run: their plans, output files, and what --resume
 * keeps. outs[i].fd is -1 unless cell i is being written. */
typedef struct cell_set {
    size_t n;
    tc_plan **plans;
    tc_cell_output *outs;
    bool *reused;
    tc_rank_entry *entries;
    uint64_t my_bytes, all_bytes;   /* bytes to write: this rank, every rank */
} cell_set;

/* Open the rank files of the cells not reused (outs[i].fd stays -1 for the
 * others). On failure the opened ones are left for cell_set_free. */
static tc_status open_outputs(const tc_opts *o, cell_set *s)
{
    tc_status st = TC_OK;
    for (size_t i = 0; st == TC_OK && i < s->n; i++)
        if (!s->reused[i])
            st = tc_cell_open(o->output_dir, s->plans[i], &s->outs[i]);
    return st;
}

static void discard_outputs(tc_cell_output *outs, size_t n)
{
    for (size_t i = 0; outs && i < n; i++)
        tc_cell_discard(&outs[i]);
}

static void cell_set_free(cell_set *s)
{
    discard_outputs(s->outs, s->n);
    for (size_t i = 0; s->plans && i < s->n; i++)
        tc_plan_free(s->plans[i]);
    free(s->plans);
    free(s->outs);
    free(s->reused);
    free(s->entries);
    memset(s, 0, sizeof *s);
}

/* Plan cells cell_ids[0..n) (with SmoothQuant's tensors when job is not
 * NULL), decide what --resume keeps, check the disk space for the rest and
 * agree. Collective: every rank takes part, also one whose st already
 * failed. On failure the caller still frees s. */
static tc_status plan_cells(const tc_comm *c, const tc_opts *o, tc_hf_model *model,
                            tc_dtype out_dtype, const int *cell_ids, size_t n,
                            const tc_sq_job *job, const tc_run_text *run, cell_set *s,
                            tc_status st)
{
    memset(s, 0, sizeof *s);
    s->n = n;
    s->plans = calloc(n ? n : 1, sizeof *s->plans);
    s->outs = calloc(n ? n : 1, sizeof *s->outs);
    s->reused = calloc(n ? n : 1, sizeof *s->reused);
    s->entries = calloc(n ? n : 1, sizeof *s->entries);
    if (st == TC_OK && !(s->plans && s->outs && s->reused && s->entries))
        st = tc_fail(TC_E_INTERNAL, "out of memory");
    for (size_t i = 0; s->outs && i < n; i++)
        s->outs[i].fd = -1;
    for (size_t i = 0; st == TC_OK && i < n; i++) {
        st = tc_plan_build(model, o, out_dtype, cell_ids[i], &s->plans[i]);
        if (st == TC_OK && job)
            st = tc_sq_plan(job, s->plans[i]);
    }
    if (st == TC_OK)
        find_reusable(o, run, s->plans, n, s->reused, s->entries);
    for (size_t i = 0; st == TC_OK && i < n; i++)
        s->my_bytes += s->reused[i] ? 0 : s->plans[i]->write_bytes;
    bool reported = false;
    tc_status ds = check_disk_space(c, o->output_dir, st == TC_OK ? s->my_bytes : 0, &reported);
    if (st == TC_OK)
        st = ds;
    st = tc_comm_agree(c, st, "plan");
    if (st == TC_OK)
        st = TC_MPI_TRY(MPI_Allreduce(&s->my_bytes, &s->all_bytes, 1, MPI_UINT64_T, MPI_SUM,
                                      c->world));
    return st;
}

/* Finish a run: commit this rank's open files (fsync, verify, rename, then
 * their rank records) or discard them after a failure; agree; then rank 0
 * gathers every rank file's size and SHA-256 and writes the manifest and,
 * last, config.json (the commit marker; config_text on rank 0 only).
 * Collective; st is this rank's status so far. */
static tc_status commit_run(const tc_comm *c, const tc_opts *o, const tc_run_text *run,
                            cell_set *s, const char *config_text, tc_status st)
{
    if (st == TC_OK)
        st = tc_outdir_lock_check(o->output_dir, g_lock_token);
    tc_plan **plans = s->plans;
    tc_cell_output *outs = s->outs;
    tc_rank_entry *entries = s->entries;
    const size_t n = s->n;
    for (size_t i = 0; i < n; i++) {
        if (s->reused[i])
            continue;
        if (st != TC_OK) {
            tc_cell_discard(&outs[i]);
            continue;
        }
        st = tc_cell_commit(&outs[i]);
        if (st == TC_OK) {
            entries[i].rank = plans[i]->rank;
            entries[i].size = outs[i].file_size;
            entries[i].tensors = plans[i]->n_tensors;
            memcpy(entries[i].sha256, outs[i].sha256, TC_SHA256_HEX);
            /* Also makes the rename above durable (same directory). */
            st = tc_rank_record_write(o->output_dir, run->run, &entries[i]);
        }
    }
    st = tc_comm_agree(c, st, "convert");
    if (st != TC_OK)
        return st;
    const int64_t world = o->tp_size * o->pp_size;
    const int bytes = (int)((size_t)world * sizeof(tc_rank_entry));
    tc_rank_entry *all = calloc((size_t)world, sizeof *all);
    st = all ? TC_OK : tc_fail(TC_E_INTERNAL, "out of memory");
    st = tc_comm_agree(c, st, "commit");
    if (st != TC_OK) {
        free(all);
        return st;
    }
    for (size_t i = 0; i < n; i++)
        all[plans[i]->rank] = entries[i];
    /* Each entry is non-zero on exactly one rank: OR-ing the bytes gathers them. */
    st = TC_MPI_TRY(MPI_Reduce(c->rank == 0 ? MPI_IN_PLACE : all, all, bytes, MPI_BYTE, MPI_BOR,
                               0, c->world));
    if (st == TC_OK && c->rank == 0)
        st = tc_outdir_lock_check(o->output_dir, g_lock_token);
    if (st == TC_OK && c->rank == 0) {
        st = tc_manifest_write(o->output_dir, TRTCONV_VERSION, run, world, o->tp_size,
                               o->pp_size, config_text, all);
        if (st == TC_OK)
            st = tc_write_file_durable(o->output_dir, "config.json", config_text);
    }
    free(all);
    return tc_comm_agree(c, st, "commit");
}

/* ---- SmoothQuant / INT8 KV cache ------------------------------------------ */

/* Statistics from --calib_stats: rank 0 reads the file, every rank gets a
 * copy (the file need not be visible to other nodes). Collective. */
static tc_status stats_from_file(const tc_comm *c, const tc_opts *o, const tc_calib_dims *dims,
                                 tc_calib_stats *stats)
{
    tc_status st = c->rank == 0 ? tc_calib_stats_read_h5(o->calib_stats, dims, stats) : TC_OK;
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

/* The calibration input named on the command line exists (checked during
 * setup, before the output directory is touched). */
static tc_status check_calibration_input(const tc_comm *c, const tc_opts *o)
{
    struct stat sb;
    if (!o->calibrate)
        return TC_OK;
    if (o->calib_stats) {
        if (c->rank == 0 && stat(o->calib_stats, &sb) != 0)
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

/* Load the calibration samples (every rank reads the same file). */
static tc_status load_calibration(const tc_opts *o, const tc_hf_config *cfg, tc_token_set *tok)
{
    const int64_t n = o->calib_size < 0 ? INT64_MAX : o->calib_size;
    return tc_tokens_load_text_jsonl(o->calib_dataset, n, o->calib_max_seq_length,
                                     cfg->vocab_size, calib_tokenizer_dir(o), tok);
}

/* Calibrate in the layout of the run: ranks = dp x tp x pp (fwd.h). On
 * success *engine holds the rank's cell weights (for SmoothQuant). A rank
 * failing inside the forward pass aborts the job: its peers may be waiting
 * for it in a collective that would never complete. */
static tc_status calibrate(const tc_comm *c, const tc_opts *o, tc_hf_model *model,
                           const tc_gpu_info *gpu, tc_dtype fdt, const tc_calib_dims *dims,
                           tc_calib_stats *stats, tc_fwd_engine **engine)
{
    const tc_hf_config *cfg = &model->cfg;
    const int64_t cells = o->tp_size * o->pp_size;
    tc_token_set tok;
    memset(&tok, 0, sizeof tok);
    tc_status st = TC_OK;
    if (c->size % cells != 0)
        st = tc_fail(TC_E_USAGE, "calibration runs the model in the conversion layout: the "
                     "number of ranks (%d) must be a multiple of tp_size x pp_size = %lld (the "
                     "rest is data parallelism); or pass --calib_stats", c->size,
                     (long long)cells);
    double t_load = tc_now_seconds();
    if (st == TC_OK)
        st = load_calibration(o, cfg, &tok);
    t_load = tc_now_seconds() - t_load;
    st = tc_comm_agree(c, st, "calibration data");
    if (st != TC_OK) {
        tc_tokens_free(&tok);
        return st;
    }
    tc_fwd_setup su;
    memset(&su, 0, sizeof su);
    su.model = model;
    su.opts = o;
    su.dtype = fdt;
    su.comm = c;
    su.gpu = gpu;
    su.threads = (int)o->workers;
    su.max_batch_tokens = tc_fwd_max_batch_tokens(&tok, o->calib_batch_size);
    su.max_seq_len = tc_tokens_longest(&tok, 0, tok.n_seqs);
    if (c->rank == 0)
        tc_log(TC_LOG_INFO, "calibrating on %zu samples (%lld tokens, read in %.2f s) of %s, "
               "micro-batches of %lld, %s forward on %s", tok.n_seqs,
               (long long)tok.offsets[tok.n_seqs], t_load, o->calib_dataset,
               (long long)o->calib_batch_size, tc_dtype_name(fdt), gpu ? "the GPUs" : "the CPUs");
    st = tc_fwd_create(&su, engine);
    if (st == TC_OK)
        st = tc_fwd_enable_stats(*engine);
    st = tc_comm_agree(c, st, "calibration setup");
    if (st == TC_OK) {
        st = tc_fwd_run(*engine, &tok, o->calib_batch_size, NULL, NULL);
        if (st != TC_OK) {
            tc_log(TC_LOG_ERROR, "rank %d: calibration forward pass failed; aborting the job",
                   c->rank);
            MPI_Abort(MPI_COMM_WORLD, (int)st);
        }
        st = tc_calib_stats_alloc(dims, stats);
        if (st == TC_OK)
            st = tc_fwd_collect_stats(*engine, stats);
        tc_fwd_profile_report(*engine);
    }
    st = tc_comm_agree(c, st, "calibration");
    if (st == TC_OK) {
        stats->samples = (int64_t)tok.n_seqs;
        stats->tokens = tok.offsets[tok.n_seqs];
        stats->max_seq_length = o->calib_max_seq_length;
        snprintf(stats->model, sizeof stats->model, "%s",
                 o->model_dir ? o->model_dir : o->meta_ckpt_dir);
        snprintf(stats->calib_dataset, sizeof stats->calib_dataset, "%s", o->calib_dataset);
        snprintf(stats->forward_dtype, sizeof stats->forward_dtype, "%s", tc_dtype_name(fdt));
        tc_fwd_layout lay;
        tc_fwd_get_layout(*engine, &lay);
        snprintf(stats->layout, sizeof stats->layout, "dp %d x tp %d x pp %d, %s", lay.dp, lay.tp,
                 lay.pp, lay.backend);
    }
    if (st != TC_OK) {
        tc_fwd_destroy(*engine);
        *engine = NULL;
    }
    tc_tokens_free(&tok);
    return st;
}

/* A weights-only engine for `cell` (SmoothQuant without calibration, or a
 * rank that holds several cells). */
static tc_status load_cell(const tc_opts *o, tc_hf_model *model, const tc_gpu_info *gpu, int cell,
                           tc_fwd_engine **e)
{
    tc_fwd_setup su;
    memset(&su, 0, sizeof su);
    su.model = model;
    su.opts = o;
    su.dtype = TC_DT_F16;
    su.gpu = gpu;
    su.threads = (int)o->workers;
    su.weights_only = true;
    su.cell = cell;
    return tc_fwd_create(&su, e);
}

typedef enum sq_step { PASS_A, PASS_B, PASS_WRITE } sq_step;

/* Run one SmoothQuant pass over this rank's cells. kept: the engine of a
 * rank with exactly one cell, loaded once and reused across passes (its
 * weights stay smoothed after pass B); ranks with several cells reload. */
static tc_status sq_pass(sq_step pass, tc_sq_job *job, const tc_opts *o, tc_hf_model *model,
                         const tc_gpu_info *gpu, const int *cells, size_t n_cells,
                         tc_fwd_engine **kept, tc_cell_output *outs, tc_dtype out_dtype)
{
    tc_status st = TC_OK;
    if (pass == PASS_WRITE && !o->sq_enabled) {
        /* INT8 KV cache alone: scales from the statistics, no weights. */
        for (size_t i = 0; st == TC_OK && i < n_cells; i++)
            if (outs[i].fd >= 0)
                st = tc_sq_write_cell(job, NULL, cells[i], &outs[i], out_dtype);
        return st;
    }
    for (size_t i = 0; st == TC_OK && i < n_cells; i++) {
        if (pass == PASS_WRITE && outs[i].fd < 0)
            continue; /* --resume kept its file */
        tc_fwd_engine *e = n_cells == 1 ? *kept : NULL;
        const bool fresh = e == NULL;
        if (fresh)
            st = load_cell(o, model, gpu, cells[i], &e);
        if (st == TC_OK && pass == PASS_A)
            st = tc_sq_pass_a(job, e, cells[i]);
        else if (st == TC_OK && pass == PASS_B)
            st = tc_sq_pass_b(job, e, cells[i]);
        else if (st == TC_OK) {
            if (fresh) /* a reloaded cell: its weights are not smoothed yet */
                st = tc_sq_smooth_again(job, e, cells[i]);
            if (st == TC_OK)
                st = tc_sq_write_cell(job, e, cells[i], &outs[i], out_dtype);
        }
        if (n_cells == 1 && fresh && st == TC_OK && pass != PASS_WRITE)
            *kept = e;
        else if (fresh)
            tc_fwd_destroy(e);
    }
    return st;
}

static tc_status sq_flow(const tc_comm *c, tc_opts *o, tc_hf_model *model, tc_float_type dtype,
                         bool share_embedding, const tc_gpu_info *gpu_info,
                         const tc_run_text *run, double t0)
{
    const tc_hf_config *cfg = &model->cfg;
    const int64_t world = o->tp_size * o->pp_size;
    const tc_gpu_info *gpu = gpu_info->count > 0 && o->quantize_on != 1 ? gpu_info : NULL;
    const tc_dtype out_dtype = tc_float_type_dtype(dtype);
    /* SmoothQuant calibrates the model loaded in float16; INT8 KV alone in
     * its own dtype (§5.1, §4.10). */
    tc_dtype fdt = TC_DT_F16;
    if (!o->sq_enabled && cfg->has_torch_dtype)
        fdt = tc_float_type_dtype(cfg->torch_dtype);
    tc_calib_stats stats;
    memset(&stats, 0, sizeof stats);
    tc_calib_dims dims;
    tc_calib_dims_from_config(cfg, &dims);
    tc_fwd_engine *engine = NULL;
    tc_sq_job *job = NULL;
    cell_set set;
    memset(&set, 0, sizeof set);
    char *config_text = NULL;
    int *cells = NULL;
    size_t n_cells = 0;
    tc_status st;

    /* ---- statistics ---- */
    double t_cal = tc_now_seconds();
    if (o->calib_stats)
        st = stats_from_file(c, o, &dims, &stats);
    else
        st = calibrate(c, o, model, gpu, fdt, &dims, &stats, &engine);
    if (st != TC_OK)
        goto done;
    if (c->rank == 0 && o->calib_stats_out) {
        st = tc_calib_stats_write_h5(&stats, o->calib_stats_out);
        if (st == TC_OK)
            tc_log(TC_LOG_INFO, "wrote the calibration statistics to %s", o->calib_stats_out);
    }
    if (st == TC_OK && c->rank == 0)
        st = tc_calib_stats_check_scales(&stats, o->calib_stats ? o->calib_stats
                                                                : "the calibration statistics");
    st = tc_comm_agree(c, st, "statistics");
    if (st != TC_OK)
        goto done;
    t_cal = tc_now_seconds() - t_cal;

    /* ---- cells: calibrated ranks keep their own cell (dp replica 0) ---- */
    cells = calloc((size_t)world, sizeof *cells);
    st = cells ? TC_OK : tc_fail(TC_E_INTERNAL, "out of memory");
    if (st == TC_OK && engine) {
        if (c->rank < world)
            cells[n_cells++] = c->rank;
    } else {
        for (int64_t cell = c->rank; st == TC_OK && cell < world; cell += c->size)
            cells[n_cells++] = (int)cell;
    }
    if (st == TC_OK)
        st = tc_sq_job_create(cfg, o, &stats, &job);
    st = tc_comm_agree(c, st, "SmoothQuant setup");
    if (st != TC_OK)
        goto done;
    if (engine && (!o->sq_enabled || n_cells == 0)) {
        tc_fwd_destroy(engine); /* not needed for the KV scales / by dp replicas */
        engine = NULL;
    }

    /* ---- SmoothQuant passes A and B (weight maxima) ---- */
    double t_q = tc_now_seconds();
    if (o->sq_enabled) {
        st = sq_pass(PASS_A, job, o, model, gpu, cells, n_cells, &engine, NULL, out_dtype);
        st = tc_comm_agree(c, st, "SmoothQuant weight maxima");
        if (st == TC_OK)
            st = tc_sq_reduce_a(job, c->world);
        st = tc_comm_agree(c, st, "SmoothQuant smoothers");
        if (st == TC_OK)
            st = sq_pass(PASS_B, job, o, model, gpu, cells, n_cells, &engine, NULL, out_dtype);
        st = tc_comm_agree(c, st, "SmoothQuant smoothing");
        if (st == TC_OK)
            st = tc_sq_reduce_b(job, c->world);
        st = tc_comm_agree(c, st, "SmoothQuant scales");
        if (st != TC_OK)
            goto done;
    }
    t_q = tc_now_seconds() - t_q;

    /* ---- plan, write, commit ---- */
    double t_w = tc_now_seconds();
    st = plan_cells(c, o, model, out_dtype, cells, n_cells, job, run, &set, TC_OK);
    if (st != TC_OK)
        goto done;
    st = open_outputs(o, &set);
    st = convert_phase(c, o, set.outs, set.n, set.my_bytes, set.all_bytes, NULL, st);
    if (st == TC_OK)
        st = sq_pass(PASS_WRITE, job, o, model, gpu, cells, n_cells, &engine, set.outs, out_dtype);
    if (c->rank == 0 && st == TC_OK)
        st = render_config(o, cfg, dtype, share_embedding, &config_text);
    st = commit_run(c, o, run, &set, config_text, st);
    t_w = tc_now_seconds() - t_w;
    if (st == TC_OK) {
        if (c->rank == 0)
            tc_log(TC_LOG_INFO, "%s%s: statistics %.2f s (%s), smoothing/scales %.2f s, "
                   "quantize+write %.2f s, total %.2f s", o->sq_enabled ? "SmoothQuant" : "",
                   o->int8_kv_cache ? (o->sq_enabled ? " + INT8 KV" : "INT8 KV cache") : "",
                   t_cal, o->calib_stats ? "read" : "calibrated", t_q, t_w,
                   tc_now_seconds() - t0);
        print_summary(c, o, tc_now_seconds() - t0, set.all_bytes);
    }
done:
    cell_set_free(&set);
    free(config_text);
    free(cells);
    tc_fwd_destroy(engine);
    tc_sq_job_free(job);
    tc_calib_stats_free(&stats);
    return st;
}

/* ---- deadline and termination signals ------------------------------------ */

static char g_deadline_msg[256];
static char g_term_msg[256];

static void write_all_stderr(const char *msg)
{
    size_t n = strlen(msg);
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, msg, n);
        if (w <= 0)
            return;
        msg += w;
        n -= (size_t)w;
    }
}

/* Async-signal-safe: write a prepared line, remove this rank's partial
 * files (never reusable: --resume keeps only published rank files, so a
 * full-size partial file would only hold disk space until the next run)
 * and the output lock if rank 0 holds it, and leave. config.json was not
 * written, so nothing looks complete. */
static void on_deadline(int sig)
{
    (void)sig;
    write_all_stderr(g_deadline_msg);
    tc_partial_unlink_all();
    tc_outdir_lock_drop_in_signal();
    _exit(TC_E_TIMEOUT);
}

static void on_terminate(int sig)
{
    (void)sig;
    write_all_stderr(g_term_msg);
    tc_partial_unlink_all();
    tc_outdir_lock_drop_in_signal();
    _exit(TC_E_CANCELLED);
}

/* --timeout: every rank arms the same whole-job deadline, so a job stuck in
 * a collective (a dead peer, a cut link: MPI and NCCL never time out by
 * themselves) ends with exit 6 on every rank instead of hanging. SIGTERM
 * (Slurm time limit, Kubernetes preemption) ends the rank at once with a
 * line saying how to continue. */
static void tc_deadline_arm(const tc_opts *o)
{
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    snprintf(g_term_msg, sizeof g_term_msg,
             "trtconv[rank %d] error: terminated by a signal (SIGTERM/SIGINT); the checkpoint "
             "in %s is not committed: rerun with --resume to keep the finished rank files\n",
             rank, o->output_dir);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_terminate;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (o->timeout_s <= 0)
        return;
    snprintf(g_deadline_msg, sizeof g_deadline_msg,
             "trtconv[rank %d] error: --timeout %lld s reached: stopping the job (exit 6); "
             "nothing was committed in %s; rerun with --resume\n",
             rank, (long long)o->timeout_s, o->output_dir);
    sa.sa_handler = on_deadline;
    sigaction(SIGALRM, &sa, NULL);
    alarm((unsigned)o->timeout_s);
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
            for (int j = 0; j < i && first; j++)
                first = strcmp(u, all + (size_t)j * sizeof mine) != 0;
            if (!first)
                continue;
            char ranks[256] = "";
            int n = 0;
            for (int j = i; j < c->local_size; j++) {
                if (strcmp(u, all + (size_t)j * sizeof mine))
                    continue;
                size_t used = strlen(ranks);
                snprintf(ranks + used, sizeof ranks - used, "%s%d", n ? "," : "", j);
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

int tc_main(int argc, char **argv)
{
    tc_comm comm;
    tc_opts opts;
    tc_hf_model *model = NULL;
    cell_set set;
    memset(&set, 0, sizeof set);
    int *cell_ids = NULL;
    char *config_text = NULL;
    tc_run_text run;
    size_t n_cells = 0;
    tc_status st;
    bool help = false;
    double t0 = tc_now_seconds();

    tc_run_text_init(&run);
    tc_log_init(0, 1, NULL);
    st = tc_comm_init(&comm);
    if (st != TC_OK)
        return (int)st;
    tc_log_init(comm.rank, comm.size, comm.host);
    /* Before anything touches the output: N accidental singletons would each
     * write the whole checkpoint into the same directory. */
    st = tc_launch_check_world(comm.size, getenv);
    if (st != TC_OK) {
        tc_comm_free(&comm);
        return (int)st;
    }
    tc_opts_init(&opts);
    /* Every rank parses the same argv; only rank 0 prints. */
    st = tc_opts_parse(&opts, argc, argv, comm.rank == 0 ? stdout : NULL,
                       comm.rank == 0 ? stderr : NULL, &help);
    if (st != TC_OK || help)
        goto done;
    tc_log_set_level(opts.log_level);
    tc_deadline_arm(&opts);
    if (comm.rank == 0 && (opts.load_by_shard || opts.load_model_on_cpu))
        tc_log(TC_LOG_INFO, "--load_by_shard/--load_model_on_cpu have no effect: trtconv always "
               "reads only the slices each rank needs, on the CPU");

    const int64_t world = opts.tp_size * opts.pp_size;
    warn_if_bound_narrower_than_workers(&comm, &opts);

    /* ---- setup ---- */
    tc_float_type dtype = opts.dtype;
    st = TC_OK;
    if (comm.rank == 0)
        st = check_output_dir(&opts, comm.host);
    /* The input directory: Hugging Face (safetensors or .bin) or Meta. */
    const char *src_dir = opts.model_dir ? opts.model_dir : opts.meta_ckpt_dir;
    if (st == TC_OK && src_dir) {
        st = opts.model_dir ? tc_hf_open(src_dir, &model) : tc_meta_open(src_dir, &model);
        if (st == TC_OK)
            st = resolve_dtype(&opts, &model->cfg, &dtype);
        if (st == TC_OK)
            st = tc_plan_check_model(&model->cfg, &opts);
    }
    tc_gpu_info gpu;
    memset(&gpu, 0, sizeof gpu);
    gpu.device = -1;
    /* Only quantization uses a GPU; a CUDA context costs ~100 MiB of host
     * memory, so plain conversions never create one. */
    if (st == TC_OK && ((opts.woq_bits && !opts.disable_weight_only_quant_plugin &&
                         !(opts.quantize_on == 1 && opts.target_sm > 0)) ||
                        (opts.calibrate && opts.quantize_on != 1)))
        st = tc_gpu_probe(comm.local_rank, comm.local_size, comm.host, &gpu);
    st = report_placement(&comm, &gpu, st);
    st = resolve_target_sm(&comm, &opts, &gpu, st);
    if (st == TC_OK)
        st = check_calibration_input(&comm, &opts);
    st = tc_comm_agree(&comm, st, "setup");
    if (st != TC_OK)
        goto done; /* reported once, as a setup failure */
    st = TC_MPI_TRY(MPI_Bcast(g_lock_token, (int)sizeof g_lock_token, MPI_CHAR, 0, comm.world));
    if (st == TC_OK && comm.rank == 0)
        st = uncommit_output_dir(&opts, src_dir && !opts.save_config_only ? world : 0);
    st = tc_comm_agree(&comm, st, "output directory");
    if (st != TC_OK)
        goto done;

    const bool share_embedding =
        model && opts.use_embedding_sharing && model->cfg.tie_word_embeddings;
    if (comm.rank == 0 && model && opts.use_embedding_sharing && !share_embedding)
        tc_log(TC_LOG_WARNING, "--use_embedding_sharing: the model does not tie lm_head to the "
               "embedding (tie_word_embeddings is false); lm_head is kept");

    if (!src_dir || opts.save_config_only) {
        /* convert_checkpoint.py without --model_dir, or --save_config_only:
         * config.json only (no rank files, so no manifest). */
        st = comm.rank == 0 ? render_config(&opts, model ? &model->cfg : NULL, dtype,
                                            share_embedding, &config_text)
                            : TC_OK;
        if (st == TC_OK && comm.rank == 0)
            st = tc_write_file_durable(opts.output_dir, "config.json", config_text);
        st = tc_comm_agree(&comm, st, "commit");
        if (st == TC_OK && comm.rank == 0)
            tc_log(TC_LOG_INFO, "wrote %s/config.json (%s: config only)", opts.output_dir,
                   src_dir ? "--save_config_only" : "no --model_dir");
        goto done;
    }

    st = run_fingerprint(&comm, &opts, model, dtype, share_embedding,
                         opts.calibrate && opts.quantize_on != 1 && gpu.count > 0, &run);
    if (st != TC_OK)
        goto done;
    if (comm.rank == 0)
        tc_log(TC_LOG_VERBOSE, "run fingerprint %s", run.run);

    if (opts.calibrate) {
        st = sq_flow(&comm, &opts, model, dtype, share_embedding, &gpu, &run, t0);
        goto done;
    }

    /* ---- plan ---- */
    if (comm.rank >= world && comm.rank == world)
        tc_log(TC_LOG_WARNING, "%d ranks for %lld cells: ranks %lld..%d have nothing to convert",
               comm.size, (long long)world, (long long)world, comm.size - 1);
    cell_ids = calloc((size_t)(world / comm.size + 1), sizeof *cell_ids);
    st = cell_ids ? TC_OK : tc_fail(TC_E_INTERNAL, "out of memory");
    for (int64_t cell = comm.rank; cell_ids && cell < world; cell += comm.size)
        cell_ids[n_cells++] = (int)cell;
    st = plan_cells(&comm, &opts, model, tc_float_type_dtype(dtype), cell_ids, n_cells, NULL, &run,
                    &set, st);
    if (st != TC_OK)
        goto done;

    /* ---- convert ---- */
    if (comm.rank == 0)
        tc_log(TC_LOG_INFO, "converting %s: %lld layers, tp %lld x pp %lld = %lld cells on %d "
               "rank(s), %s, %.2f GB to write", src_dir,
               (long long)model->cfg.num_hidden_layers, (long long)opts.tp_size,
               (long long)opts.pp_size, (long long)world, comm.size,
               tc_float_type_name(dtype), (double)set.all_bytes / 1e9);
    /* A rank whose files could not be opened still takes part in the
     * progress exchange, reporting its failure so everyone stops. */
    st = open_outputs(&opts, &set);
    /* Weight-only quantization runs on the rank's GPU unless told not to. */
    const tc_gpu_info *qgpu = opts.woq_bits && !opts.disable_weight_only_quant_plugin &&
                                      opts.quantize_on != 1 && gpu.count > 0 ? &gpu : NULL;
    if (comm.rank == 0 && opts.woq_bits)
        tc_log(TC_LOG_INFO, "quantizing on %s", qgpu ? gpu.name : "the CPU");
    st = convert_phase(&comm, &opts, set.outs, set.n, set.my_bytes, set.all_bytes, qgpu, st);

    /* ---- commit: manifest, then config.json last, by rank 0 ---- */
    if (comm.rank == 0 && st == TC_OK)
        st = render_config(&opts, &model->cfg, dtype, share_embedding, &config_text);
    st = commit_run(&comm, &opts, &run, &set, config_text, st);
    if (st == TC_OK)
        print_summary(&comm, &opts, tc_now_seconds() - t0, set.all_bytes);

done:
    /* From here the outcome is decided: a SIGTERM now (mpirun ending the
     * other ranks of a failed job) must not print the "interrupted" line. */
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    if (st == TC_E_COMM) {
        /* A peer may be blocked in a collective we will never join: the
         * only way out that cannot hang is to abort the whole job. */
        tc_log(TC_LOG_ERROR, "communication failure: aborting the job");
        MPI_Abort(MPI_COMM_WORLD, (int)TC_E_COMM);
    }
    cell_set_free(&set);
    free(cell_ids);
    free(config_text);
    tc_run_text_free(&run);
    tc_hf_close(model);
    tc_outdir_lock_release(g_lock);
    g_lock = NULL;
    tc_comm_free(&comm);
    return (int)st;
}
