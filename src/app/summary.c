/* summary.c: what a finished run reports (job.h): every rank's peak
 * memory, the totals and one line per rank file. */
#include "trtconv/app/job.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include "trtconv/core/log.h"
#include "trtconv/formats/safetensors.h"
#include "trtconv/output/rankfile.h"

/* Gather one number per rank on rank 0 and log the first 16 and the
 * largest, divided by `unit`. */
static void report_per_rank(const tc_comm *c, long long mine, const char *what, double unit,
                            const char *unit_name)
{
    long long *all = c->rank == 0 ? calloc((size_t)c->size, sizeof *all) : NULL;
    if (MPI_Gather(&mine, 1, MPI_LONG_LONG, all, 1, MPI_LONG_LONG, 0, c->world) != MPI_SUCCESS ||
        !all) {
        free(all);
        return;
    }
    long long mx = 0;
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
                                    (double)all[r] / unit);
    }
    tc_log(TC_LOG_INFO, "%s per rank (%s): %s%s; max %.0f %s on rank %d", what, unit_name, list,
           c->size > 16 ? " ..." : "", (double)mx / unit, unit_name, at);
    free(all);
}

/* Peak resident memory of every rank (getrusage): the streaming design
 * promises it stays flat whatever the model size; and the source bytes each
 * rank read (safetensors.h tc_st_bytes_read), which shows that a rank reads
 * its own slices only. */
static void report_ranks(const tc_comm *c)
{
    struct rusage ru;
    const long long rss = getrusage(RUSAGE_SELF, &ru) == 0 ? (long long)ru.ru_maxrss : -1;
    report_per_rank(c, rss, "peak RSS", 1024.0, "MiB");
    report_per_rank(c, (long long)tc_st_bytes_read(), "source bytes read", 1e3, "kB");
}

void tc_job_summary(const tc_job *j, double seconds, uint64_t bytes)
{
    const tc_comm *c = j->comm;
    const tc_layout *l = &j->s.layout;
    const char *dir = j->o->output_dir;
    report_ranks(c);
    if (c->rank != 0)
        return;
    const int cells = tc_job_cells(j);
    const tc_cell_naming naming = j->s.hf ? TC_CELLS_HF_SHARDS : TC_CELLS_RANK_FILES;
    tc_log(TC_LOG_INFO, "wrote %s: %s and %d %s, %.2f GB in %.1f s (%.2f GB/s)", dir,
           j->s.format->commit_file, cells, j->s.hf ? "shard(s)" : "rank file(s)",
           (double)bytes / 1e9, seconds, seconds > 0 ? (double)bytes / 1e9 / seconds : 0.0);
    if (tc_log_get_level() < TC_LOG_INFO)
        return;
    for (int r = 0; r < cells && r < 64; r++) {
        char path[4200], name[64], where[48] = "";
        tc_cell_file_name(naming, r, cells, name, sizeof name);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        if (!j->s.hf)
            snprintf(where, sizeof where, "  tp %d pp %d", tc_layout_tp_rank(l, r),
                     tc_layout_pp_rank(l, r));
        tc_st_file *f = NULL;
        if (tc_st_open(path, &f, NULL) == TC_OK) {
            tc_log(TC_LOG_INFO, "  %s%s  %zu tensors  %.1f MB", name, where, f->n_tensors,
                   (double)f->file_size / 1e6);
            tc_st_close(f);
        }
    }
}
