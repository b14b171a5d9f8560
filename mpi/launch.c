/* launch.c: launcher-environment checks and the GPU choice (see launch.h).
 * Pure functions over an environment lookup, so the unit tests can feed
 * every launcher's variables without starting one. */
#define _POSIX_C_SOURCE 200809L
#include "trtconv/mpi/launch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "trtconv/core/log.h"

/* A positive decimal integer (no sign, no junk, fits a long), else 0. */
static long positive_int(const char *s)
{
    if (!s || *s < '0' || *s > '9')
        return 0;
    errno = 0;
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (errno || !end || *end || v <= 0)
        return 0;
    return v;
}

long tc_launch_expected_size(tc_env_fn env, char *source, size_t source_len)
{
    static const char *const sizes[] = { "OMPI_COMM_WORLD_SIZE", "PMI_SIZE",
                                         "SLURM_STEP_NUM_TASKS", "SLURM_NTASKS" };
    if (source && source_len)
        source[0] = '\0';
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        const char *v = env(sizes[i]);
        if (!v)
            continue;
        /* The most specific launcher present decides, even when its value is
         * unusable: a broken OMPI_COMM_WORLD_SIZE must not let a stale
         * SLURM_NTASKS of the surrounding allocation refuse an mpirun -np 1. */
        long n = positive_int(v);
        if (n && source)
            snprintf(source, source_len, "%s=%ld", sizes[i], n);
        return n;
    }
    long pmix_rank = positive_int(env("PMIX_RANK"));
    if (pmix_rank > 0) {
        if (source)
            snprintf(source, source_len, "PMIX_RANK=%ld", pmix_rank);
        return pmix_rank + 1; /* at least */
    }
    return 0;
}

tc_status tc_launch_check_world(int world_size, tc_env_fn env)
{
    if (world_size != 1)
        return TC_OK;
    const char *allow = env("TRTCONV_ALLOW_SINGLETON");
    if (allow && !strcmp(allow, "1"))
        return TC_OK;
    char source[96];
    long expected = tc_launch_expected_size(env, source, sizeof source);
    if (expected <= 1)
        return TC_OK;
    return tc_fail(TC_E_COMM,
                   "MPI started this process as a singleton (world size 1) but the launcher "
                   "environment says %s: the MPI library could not reach the launcher, so every "
                   "task would convert the whole model alone. Launch with `srun --mpi=pmix` or "
                   "`mpirun` (see docs/cluster.md); TRTCONV_ALLOW_SINGLETON=1 runs a deliberate "
                   "single rank",
                   source);
}

tc_status tc_gpu_choose(int n_devices, int local_rank, int local_size, const char *host,
                        int *device)
{
    *device = -1;
    if (n_devices <= 0)
        return TC_OK;
    if (local_rank < 0 || local_size < 1 || local_rank >= local_size)
        return tc_fail(TC_E_INTERNAL, "node-local rank %d of %d is not a rank", local_rank,
                       local_size);
    if (n_devices == 1) {
        *device = 0;
        return TC_OK;
    }
    if (n_devices >= local_size) {
        *device = local_rank;
        return TC_OK;
    }
    return tc_fail(TC_E_USAGE,
                   "%d ranks on host %s but only %d visible GPUs: start at most one rank per GPU "
                   "(srun --gpus-per-task=1, or -np/--ntasks-per-node no larger than the GPUs), "
                   "or give each rank a single device with CUDA_VISIBLE_DEVICES",
                   local_size, host ? host : "?", n_devices);
}
