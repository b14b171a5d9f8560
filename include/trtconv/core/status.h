/* status.h: the one status type of trtconv.
 *
 * Fallible functions return tc_status; results travel through out-parameters.
 * The numeric values are also the process exit codes (documented in
 * docs/usage.md), so every rank of a failed job exits with the same code. */
#ifndef TRTCONV_STATUS_H
#define TRTCONV_STATUS_H

typedef enum tc_status {
    TC_OK = 0,
    TC_E_USAGE = 2,       /* bad command line, unsupported flag combination */
    TC_E_INPUT = 3,       /* invalid input file or model (format, shape, config) */
    TC_E_IO = 4,          /* read/write/fsync/rename/disk-space failure */
    TC_E_COMM = 5,        /* MPI or NCCL failure, a peer rank failed */
    TC_E_TIMEOUT = 6,     /* a wait exceeded --timeout */
    TC_E_INTERNAL = 7,    /* bug or resource exhaustion (out of memory) */
    TC_E_CANCELLED = 8    /* stopped because another rank failed */
} tc_status;

/* Return from the calling function when `expr` fails. */
#define TC_TRY(expr)                   \
    do {                               \
        tc_status tc_try_ = (expr);    \
        if (tc_try_ != TC_OK)          \
            return tc_try_;            \
    } while (0)

/* Short fixed name of a status ("input", "io", ...); never NULL. */
const char *tc_status_str(tc_status st);

#endif
