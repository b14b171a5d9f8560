/* outdir.h: guards of the output directory, checked before anything in it
 * is touched (docs/durability.md, "What trtconv guarantees").
 *
 * 1. Inputs: the output directory must not be, contain, or lie inside any
 *    input (model, Meta, tokenizer directory, calibration or statistics
 *    file). Compared by device and inode after resolving symbolic links, so
 *    a link or a bind mount to the model directory is caught too.
 *
 * 2. One job per output directory: rank 0 holds OUT/.trtconv-lock for the
 *    whole run. The file is created with O_CREAT|O_EXCL (atomic on local
 *    file systems, NFSv3+ and Lustre; no fcntl/flock locks, which NFS and
 *    Lustre clients may not honour) and holds one line
 *        "trtconv-lock 1 <token> <host> <pid> <proc start ticks>"
 *    where token is 32 random hex digits. Rank 0 refreshes the file's mtime
 *    every TC_LOCK_HEARTBEAT_S seconds from a thread. A lock is stale when
 *    its holder is on this host and that pid no longer runs (or runs another
 *    program: start ticks differ), or when its mtime is older than
 *    TC_LOCK_STALE_S seconds by the file server's clock (measured on a file
 *    touched just now). A stale lock is taken over by renaming it aside
 *    (rename of one source succeeds once) and creating a new one; anything
 *    else is refused at once with the directory, host and pid of the other
 *    job. Every rank checks that the lock still holds the run's token
 *    before it publishes a rank file, and rank 0 before the commit. */
#ifndef TRTCONV_OUTDIR_H
#define TRTCONV_OUTDIR_H

#include <stdbool.h>
#include <stddef.h>
#include "trtconv/core/status.h"

#define TC_LOCK_NAME ".trtconv-lock"
#define TC_LOCK_HEARTBEAT_S 5
#define TC_LOCK_STALE_S 30
#define TC_LOCK_TOKEN_LEN 32

typedef struct tc_outdir_input {
    const char *path;     /* NULL entries are skipped */
    const char *label;    /* "--model_dir", ... */
} tc_outdir_input;

/* Refuse (TC_E_USAGE, naming both paths and the relation) an output
 * directory that is, contains or is inside one of the inputs. Touches
 * nothing; the output directory need not exist. */
tc_status tc_outdir_check_inputs(const char *out_dir, const tc_outdir_input *in, size_t n);

typedef struct tc_outdir_lock tc_outdir_lock;

/* Rank 0: take the lock of out_dir (which exists) for host, starting the
 * heartbeat. On TC_OK *out belongs to the caller (tc_outdir_lock_release)
 * and token (TC_LOCK_TOKEN_LEN + 1 bytes) holds its token. Refused with
 * TC_E_IO (exit 4) when another live job holds it. */
tc_status tc_outdir_lock_acquire(const char *out_dir, const char *host, tc_outdir_lock **out,
                                 char *token);
/* Any rank: the lock file of out_dir still holds token. */
tc_status tc_outdir_lock_check(const char *out_dir, const char *token);
/* Stop the heartbeat and remove the lock if it is still ours. NULL is fine. */
void tc_outdir_lock_release(tc_outdir_lock *l);
/* From a signal handler: remove the lock this process holds, if its file
 * still holds our token (open/read/unlink only). */
void tc_outdir_lock_drop_in_signal(void);

#endif
