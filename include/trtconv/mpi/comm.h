/* comm.h: MPI bootstrap and the collective error agreement.
 *
 * MPI_COMM_WORLD runs with MPI_ERRORS_RETURN so that trtconv prints its own
 * context; every MPI call is checked. Before each phase ends, the ranks
 * agree on failure with one MPI_Allreduce(MAX) (style.md A12,
 * durability-and-failures.md §4): the root cause (not "cancelled") becomes
 * every rank's exit code, and rank 0 prints a summary naming the first
 * failed rank, its host and its message. */
#ifndef TRTCONV_COMM_H
#define TRTCONV_COMM_H

#include <mpi.h>
#include <stdint.h>
#include "trtconv/core/status.h"

typedef struct tc_comm {
    MPI_Comm world;        /* dup of MPI_COMM_WORLD, errors return */
    int rank, size;
    MPI_Comm node;         /* ranks on this host (MPI_COMM_TYPE_SHARED) */
    int local_rank, local_size;
    char host[64];
    /* What a failed tc_comm_agree adds to its summary; NULL: "no
     * config.json was written" (the conversion). */
    const char *failure_note;
} tc_comm;

/* Duplicate MPI_COMM_WORLD and split by host. On TC_OK release with
 * tc_comm_free. */
tc_status tc_comm_init(tc_comm *c);
void tc_comm_free(tc_comm *c);

/* Agree on the outcome of `phase`: returns TC_OK on every rank only if
 * every rank passed TC_OK; otherwise every rank gets the same root-cause
 * status and rank 0 has printed "N of M ranks failed during PHASE: ..." with
 * each failed rank's first error. Communication failures return TC_E_COMM. */
tc_status tc_comm_agree(const tc_comm *c, tc_status mine, const char *phase);

/* CPU threads for this rank: `workers` when > 0, else the host's cores
 * shared among the ranks on it (at least 1, at most 64): the demo's 4 ranks
 * on 2 cores get 1 each, 1 rank on 16 cores gets 16. */
int tc_comm_threads_per_rank(const tc_comm *c, int64_t workers);

/* Check an MPI return code; logs the call text and MPI's message. */
tc_status tc_mpi_check(int rc, const char *what, const char *file, int line);
#define TC_MPI_TRY(call) tc_mpi_check((call), #call, __FILE__, __LINE__)

#endif
