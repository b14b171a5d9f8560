/* cells.c: this rank's cells of a run (job.h): plans, what --resume keeps,
 * free disk space, opening the rank files and the commit. */
#define _GNU_SOURCE /* statvfs */
#include "trtconv/app/job.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include "trtconv/core/log.h"

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

/* --resume: which of this rank's cells keep the rank file of an earlier run
 * (manifest.h tc_rank_reusable); each decision is logged with its reason. */
static void find_reusable(const tc_opts *o, const tc_run_text *run, tc_cell_set *s)
{
    for (size_t i = 0; i < s->n; i++) {
        char why[256];
        const tc_plan *p = s->plans[i];
        char file[64];
        tc_cell_file_name(p->naming, p->rank, p->cells, file, sizeof file);
        s->reused[i] = o->resume && tc_rank_reusable(o->output_dir, run->run, p->rank, file,
                                                     p->n_tensors, &s->entries[i], why,
                                                     sizeof why);
        if (s->reused[i])
            tc_log(TC_LOG_INFO, "--resume: keeping %s (SHA-256 %.16s... as recorded)", file,
                   s->entries[i].sha256);
        else if (o->resume)
            tc_log(TC_LOG_INFO, "--resume: rewriting %s: %s", file, why);
    }
}

/* One cell's plan: the model's slices, then the quantization methods'
 * rewrite (streamed) and computed tensors (calibrated). */
static tc_status plan_cell(const tc_job *j, int cell, void *calib_job, tc_plan **out)
{
    const tc_settings *s = &j->s;
    /* A Hugging Face shard: its tensors, scales from the statistics
     * (calib_job: the run's tc_calib_stats, or NULL). */
    if (s->hf)
        return tc_hf_output_plan_shard(s->hf, cell, calib_job, out);
    const tc_plan_params pp = {
        .layout = s->layout, .emb = s->emb, .out_dtype = s->out_dtype,
        .rope_buffers = tc_quant_rope_buffers(&s->quant),
    };
    TC_TRY(tc_plan_build(j->model, &pp, cell, out));
    tc_status st = TC_OK;
    if (j->model->cfg.kv_heads_stored_twice)
        st = tc_plan_check_kv_duplicates(*out, j->model->cfg.head_dim);
    if (st == TC_OK && s->quant.weights->plan)
        st = s->quant.weights->plan(&s->quant, *out);
    if (st == TC_OK && s->quant.kv->plan)
        st = s->quant.kv->plan(&s->quant, *out);
    if (st == TC_OK && calib_job)
        st = tc_quant_calibrated(&s->quant)->plan(calib_job, *out);
    if (st != TC_OK) {
        tc_plan_free(*out);
        *out = NULL;
    }
    return st;
}

tc_status tc_cells_plan(const tc_job *j, const int *cell_ids, size_t n, void *calib_job,
                        const tc_run_text *run, tc_cell_set *s, tc_status st)
{
    memset(s, 0, sizeof *s);
    s->n = n;
    s->ids = calloc(n ? n : 1, sizeof *s->ids);
    s->plans = calloc(n ? n : 1, sizeof *s->plans);
    s->outs = calloc(n ? n : 1, sizeof *s->outs);
    s->reused = calloc(n ? n : 1, sizeof *s->reused);
    s->entries = calloc(n ? n : 1, sizeof *s->entries);
    if (st == TC_OK && !(s->ids && s->plans && s->outs && s->reused && s->entries))
        st = tc_fail(TC_E_INTERNAL, "out of memory");
    for (size_t i = 0; s->outs && i < n; i++)
        s->outs[i].fd = -1;
    for (size_t i = 0; st == TC_OK && i < n; i++) {
        s->ids[i] = cell_ids[i];
        st = plan_cell(j, cell_ids[i], calib_job, &s->plans[i]);
    }
    if (st == TC_OK)
        find_reusable(j->o, run, s);
    for (size_t i = 0; st == TC_OK && i < n; i++)
        s->my_bytes += s->reused[i] ? 0 : s->plans[i]->write_bytes;
    bool reported = false;
    tc_status ds = check_disk_space(j->comm, j->o->output_dir, st == TC_OK ? s->my_bytes : 0,
                                    &reported);
    if (st == TC_OK)
        st = ds;
    st = tc_comm_agree(j->comm, st, "plan");
    if (st == TC_OK)
        st = TC_MPI_TRY(MPI_Allreduce(&s->my_bytes, &s->all_bytes, 1, MPI_UINT64_T, MPI_SUM,
                                      j->comm->world));
    return st;
}

/* Open the rank files of the cells not reused (outs[i].fd stays -1 for the
 * others). On failure the opened ones are left for tc_cells_free. */
tc_status tc_cells_open(const tc_job *j, tc_cell_set *s)
{
    tc_status st = TC_OK;
    for (size_t i = 0; st == TC_OK && i < s->n; i++)
        if (!s->reused[i])
            st = j->s.format->open_cell(j->o->output_dir, s->plans[i], &s->outs[i]);
    return st;
}

void tc_cells_free(tc_cell_set *s)
{
    for (size_t i = 0; s->outs && i < s->n; i++)
        tc_cell_discard(&s->outs[i]);
    for (size_t i = 0; s->plans && i < s->n; i++)
        tc_plan_free(s->plans[i]);
    free(s->ids);
    free(s->plans);
    free(s->outs);
    free(s->reused);
    free(s->entries);
    memset(s, 0, sizeof *s);
}

/* Rank 0 renders the format's commit file first (a failure there still
 * discards every file); commit this rank's open files (fsync, verify,
 * rename, then their rank records) or discard them after a failure; agree;
 * then rank 0 gathers every rank file's size and SHA-256 and the format
 * writes the manifest and, last, its commit file. */
tc_status tc_cells_commit(const tc_job *j, const tc_run_text *run, tc_cell_set *s, tc_status st)
{
    const tc_comm *c = j->comm;
    const char *dir = j->o->output_dir;
    char *config_text = NULL;
    if (st == TC_OK && c->rank == 0) {
        tc_output_desc d;
        tc_job_output_desc(j, &d);
        st = j->s.format->render_metadata(&d, &config_text);
    }
    if (st == TC_OK)
        st = tc_outdir_lock_check(dir, j->lock_token);
    for (size_t i = 0; i < s->n; i++) {
        if (s->reused[i])
            continue;
        if (st != TC_OK) {
            tc_cell_discard(&s->outs[i]);
            continue;
        }
        st = tc_cell_commit(&s->outs[i]);
        if (st == TC_OK) {
            tc_rank_entry *e = &s->entries[i];
            e->rank = s->plans[i]->rank;
            tc_cell_file_name(s->plans[i]->naming, e->rank, s->plans[i]->cells, e->file,
                              sizeof e->file);
            e->size = s->outs[i].file_size;
            e->tensors = s->plans[i]->n_tensors;
            memcpy(e->sha256, s->outs[i].sha256, TC_SHA256_HEX);
            /* Also makes the rename above durable (same directory). */
            st = tc_rank_record_write(dir, run->run, e);
        }
    }
    st = tc_comm_agree(c, st, "convert");
    if (st != TC_OK) {
        free(config_text);
        return st;
    }
    const int cells = tc_job_cells(j);
    const int bytes = (int)((size_t)cells * sizeof(tc_rank_entry));
    tc_rank_entry *all = calloc((size_t)cells, sizeof *all);
    st = all ? TC_OK : tc_fail(TC_E_INTERNAL, "out of memory");
    st = tc_comm_agree(c, st, "commit");
    if (st != TC_OK) {
        free(all);
        free(config_text);
        return st;
    }
    for (size_t i = 0; i < s->n; i++)
        all[s->plans[i]->rank] = s->entries[i];
    /* Each entry is non-zero on exactly one rank: OR-ing the bytes gathers them. */
    st = TC_MPI_TRY(MPI_Reduce(c->rank == 0 ? MPI_IN_PLACE : all, all, bytes, MPI_BYTE, MPI_BOR,
                               0, c->world));
    if (st == TC_OK && c->rank == 0)
        st = tc_outdir_lock_check(dir, j->lock_token);
    if (st == TC_OK && c->rank == 0) {
        tc_output_desc d;
        tc_job_output_desc(j, &d);
        st = j->s.format->commit(dir, run, &d, config_text, all);
    }
    free(all);
    free(config_text);
    return tc_comm_agree(c, st, "commit");
}
