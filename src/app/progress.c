/* progress.c: the conversion phase (job.h): this rank's workers write its
 * cells while the main thread exchanges progress with rank 0, which shows
 * it and, when a rank fails, tells every rank to stop.
 *
 * Protocol (point to point on the world communicator): every rank sends
 * TAG_PROGRESS {done, total, finished, status} to rank 0 at most every
 * 0.5 s and once when finished; rank 0 sends TAG_ABORT to all once any
 * rank failed. Nobody leaves before rank 0 has heard its final report, and
 * a closing broadcast settles the abort messages, so none is left
 * unmatched. */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include "trtconv/app/job.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include "trtconv/core/log.h"

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

/* Run this rank's conversion while exchanging progress with rank 0. Returns
 * the local status (TC_E_CANCELLED when told to stop by rank 0). Every rank
 * leaves this function only after rank 0 has heard its final report, so no
 * message is left unmatched. */
tc_status tc_convert_phase(const tc_job *j, tc_cell_set *set, const tc_gpu_info *gpu,
                           tc_status pre)
{
    return tc_convert_phase_during(j, set, gpu, pre, NULL, NULL, NULL);
}

tc_status tc_convert_phase_during(const tc_job *j, tc_cell_set *set, const tc_gpu_info *gpu,
                                  tc_status pre, tc_convert_gate *gate,
                                  tc_status (*during)(void *ctx), void *during_ctx)
{
    const tc_comm *c = j->comm;
    const tc_opts *o = j->o;
    tc_cell_output *cells = set->outs;
    const size_t n_cells = set->n;
    const uint64_t my_total = set->my_bytes, all_total = set->all_bytes;
    tc_progress prog;
    atomic_init(&prog.done_bytes, 0);
    atomic_init(&prog.cancel, 0);
    tc_convert_job *job = NULL;
    tc_status local = pre;
    bool job_done = n_cells == 0 || pre != TC_OK;

    if (!job_done) {
        local = tc_convert_start(cells, n_cells, (int)o->workers, gpu, &prog, gate, &job);
        if (local != TC_OK)
            job_done = true;
    }
    /* The overlapped calibration runs here, on this thread, while the
     * workers write what its gates release; its failure stops them. */
    if (during) {
        tc_status ds = during(during_ctx);
        if (ds != TC_OK) {
            atomic_store(&prog.cancel, 1);
            if (gate)
                tc_convert_gate_cancel(gate);
            if (job) {
                tc_convert_join(job);
                job = NULL;
                job_done = true;
            }
            local = ds;
        }
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
