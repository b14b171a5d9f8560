/* summary.c: what a finished run reports (job.h): every rank's peak
 * memory, the totals and one line per rank file. */
#include "trtconv/app/job.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include "trtconv/core/log.h"
#include "trtconv/formats/safetensors.h"

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

void tc_job_summary(const tc_job *j, double seconds, uint64_t bytes)
{
    const tc_comm *c = j->comm;
    const tc_layout *l = &j->s.layout;
    const char *dir = j->o->output_dir;
    report_peak_rss(c);
    if (c->rank != 0)
        return;
    const int cells = tc_layout_cells(l);
    tc_log(TC_LOG_INFO, "wrote %s: %s and %d rank file(s), %.2f GB in %.1f s (%.2f GB/s)", dir,
           j->s.format->commit_file, cells, (double)bytes / 1e9, seconds,
           seconds > 0 ? (double)bytes / 1e9 / seconds : 0.0);
    if (tc_log_get_level() < TC_LOG_INFO)
        return;
    for (int r = 0; r < cells && r < 64; r++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/rank%d.safetensors", dir, r);
        tc_st_file *f = NULL;
        if (tc_st_open(path, &f, NULL) == TC_OK) {
            tc_log(TC_LOG_INFO, "  rank%d.safetensors  tp %d pp %d  %zu tensors  %.1f MB", r,
                   tc_layout_tp_rank(l, r), tc_layout_pp_rank(l, r), f->n_tensors,
                   (double)f->file_size / 1e6);
            tc_st_close(f);
        }
    }
}
