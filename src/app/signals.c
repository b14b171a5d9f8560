/* signals.c: --timeout and termination signals (job.h).
 *
 * Every rank arms the same whole-job deadline, so a job stuck in a
 * collective (a dead peer, a cut link: MPI and NCCL never time out by
 * themselves) ends with exit 6 on every rank instead of hanging. SIGTERM
 * and SIGINT (Slurm time limit, Kubernetes preemption) end the rank at
 * once with a line saying how to continue. Both handlers remove this rank's
 * partial files (never reusable: --resume keeps only published rank files)
 * and the output lock if rank 0 holds it; config.json was not written, so
 * nothing looks complete. */
#define _POSIX_C_SOURCE 200809L
#include "trtconv/app/job.h"
#include "trtconv/core/log.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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

/* Async-signal-safe: a prepared line, unlink, _exit. */
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

void tc_signals_arm(const tc_opts *o, int rank)
{
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

/* From here the outcome is decided: a SIGTERM now (mpirun ending the other
 * ranks of a failed job) must not print the "interrupted" line. */
void tc_signals_disarm(void)
{
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
}
