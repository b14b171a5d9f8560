/* driver.h: the whole trtconv job on one MPI rank.
 *
 * Phases, each ending in a collective agreement (comm.h):
 *   setup   parse options, create the output directory, remove a stale
 *           config.json (so a failed run never looks complete), read
 *           config.json and the index of the model, check divisibility;
 *   plan    build the plans of this rank's cells (r, r+N, ...), opening and
 *           validating only the shards they need, and check free disk space
 *           per filesystem for the bytes all ranks will write there;
 *   convert workers stream slices into .rank{c}.safetensors.partial files
 *           while the main thread exchanges progress with rank 0; a failing
 *           rank tells rank 0, which tells every rank to stop;
 *   commit  every rank renamed its files; rank 0 writes config.json
 *           atomically (temporary file, fsync, rename, directory fsync).
 */
#ifndef TRTCONV_DRIVER_H
#define TRTCONV_DRIVER_H

/* Run the job; MPI must be initialised (MPI_THREAD_FUNNELED or more).
 * Returns the process exit code, the same on every rank. */
int tc_main(int argc, char **argv);

#endif
