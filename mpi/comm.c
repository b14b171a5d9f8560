/* comm.c: MPI bootstrap and collective error agreement (see comm.h). */
#define _POSIX_C_SOURCE 200809L
#include "trtconv/mpi/comm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "trtconv/core/log.h"

#define TC_REASON_LEN 512

tc_status tc_mpi_check(int rc, const char *what, const char *file, int line)
{
    if (rc == MPI_SUCCESS)
        return TC_OK;
    char msg[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return tc_fail(TC_E_COMM, "%s:%d: %s failed: %s", file, line, what, msg);
}

tc_status tc_comm_init(tc_comm *c)
{
    memset(c, 0, sizeof *c);
    c->world = MPI_COMM_NULL;
    c->node = MPI_COMM_NULL;
    /* Keep our own world communicator so that errors return to us instead of
     * aborting inside MPI without context. */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    tc_status st = TC_MPI_TRY(MPI_Comm_dup(MPI_COMM_WORLD, &c->world));
    if (st != TC_OK)
        return st;
    MPI_Comm_set_errhandler(c->world, MPI_ERRORS_RETURN);
    MPI_Comm_rank(c->world, &c->rank);
    MPI_Comm_size(c->world, &c->size);
    if (gethostname(c->host, sizeof c->host) != 0)
        snprintf(c->host, sizeof c->host, "unknown");
    c->host[sizeof c->host - 1] = '\0';
    st = TC_MPI_TRY(MPI_Comm_split_type(c->world, MPI_COMM_TYPE_SHARED, c->rank,
                                        MPI_INFO_NULL, &c->node));
    if (st != TC_OK)
        return st;
    MPI_Comm_set_errhandler(c->node, MPI_ERRORS_RETURN);
    MPI_Comm_rank(c->node, &c->local_rank);
    MPI_Comm_size(c->node, &c->local_size);
    return TC_OK;
}

void tc_comm_free(tc_comm *c)
{
    if (c->node != MPI_COMM_NULL)
        MPI_Comm_free(&c->node);
    if (c->world != MPI_COMM_NULL)
        MPI_Comm_free(&c->world);
}

int tc_comm_threads_per_rank(const tc_comm *c, int64_t workers)
{
    if (workers > 0)
        return (int)workers;
    const long cores = sysconf(_SC_NPROCESSORS_ONLN);
    const long share = cores > 0 && c->local_size > 0 ? cores / c->local_size : 1;
    return share > 1 ? (int)(share > 64 ? 64 : share) : 1;
}

tc_status tc_comm_agree(const tc_comm *c, tc_status mine, const char *phase)
{
    /* [root cause or 0, failed?]: a cancelled rank only says "failed". */
    int local[2] = { (mine == TC_OK || mine == TC_E_CANCELLED) ? 0 : (int)mine,
                     mine != TC_OK };
    int global[2] = { 0, 0 };
    tc_status st = TC_MPI_TRY(MPI_Allreduce(local, global, 2, MPI_INT, MPI_MAX, c->world));
    if (st != TC_OK)
        return st;
    if (!global[1])
        return TC_OK;

    /* Gather everyone's first error text to rank 0 for one summary. */
    char reason[TC_REASON_LEN];
    memset(reason, 0, sizeof reason);
    if (mine != TC_OK)
        snprintf(reason, sizeof reason, "%s %s", c->host,
                 mine == TC_E_CANCELLED ? "(cancelled)" : tc_first_error());
    char *all = NULL;
    if (c->rank == 0) {
        all = calloc((size_t)c->size, TC_REASON_LEN);
        if (!all)
            return TC_E_INTERNAL;
    }
    st = TC_MPI_TRY(MPI_Gather(reason, TC_REASON_LEN, MPI_CHAR, all, TC_REASON_LEN, MPI_CHAR,
                               0, c->world));
    if (st == TC_OK && c->rank == 0) {
        int nfail = 0, ncancel = 0, first = -1;
        for (int r = 0; r < c->size; r++) {
            const char *x = all + (size_t)r * TC_REASON_LEN;
            if (!x[0])
                continue;
            if (strstr(x, "(cancelled)"))
                ncancel++;
            else {
                nfail++;
                if (first < 0)
                    first = r;
            }
        }
        tc_log(TC_LOG_ERROR, "%d of %d rank(s) failed during %s%s; %s", nfail, c->size, phase,
               ncancel ? " (others were cancelled)" : "",
               c->failure_note ? c->failure_note : "no config.json was written");
        int shown = 0;
        for (int r = 0; r < c->size && shown < 8; r++) {
            const char *x = all + (size_t)r * TC_REASON_LEN;
            if (x[0] && !strstr(x, "(cancelled)")) {
                tc_log(TC_LOG_ERROR, "  rank %d on %s", r, x);
                shown++;
            }
        }
        if (nfail > shown)
            tc_log(TC_LOG_ERROR, "  ... and %d more", nfail - shown);
    }
    free(all);
    if (st != TC_OK)
        return st;
    return global[0] ? (tc_status)global[0] : TC_E_CANCELLED;
}
