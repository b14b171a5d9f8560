/* run.h: the whole trtconv job on one MPI rank.
 *
 * Phases (src/app/run.c), each ending in a collective agreement (comm.h):
 *   setup   create and lock the output directory, remove a stale commit
 *           marker (so a failed run never looks complete), read the model's
 *           config and index, resolve the settings, check divisibility;
 *   plan    build the plans of this rank's cells (r, r+N, ...), opening and
 *           validating only the shards they need, and check free disk space
 *           per filesystem for the bytes all ranks will write there;
 *   convert workers stream slices into .rank{c}.safetensors.partial files
 *           while the main thread exchanges progress with rank 0; a failing
 *           rank tells rank 0, which tells every rank to stop (calibrated
 *           quantization first computes statistics and runs its passes);
 *   commit  every rank renamed its files; rank 0 writes the manifest and
 *           config.json atomically (temporary file, fsync, rename,
 *           directory fsync).
 */
#ifndef TRTCONV_APP_RUN_H
#define TRTCONV_APP_RUN_H

#include "trtconv/cli/options.h"

/* Run the job described by the parsed options; MPI must be initialised
 * (MPI_THREAD_FUNNELED or more). Returns the process exit code, the same
 * on every rank. */
int tc_run(const tc_opts *o);

#endif
