/* launch.h: what the launcher (mpirun, srun, an MPIJob's mpirun) promised,
 * checked against what MPI delivered, and the GPU a rank takes.
 *
 * Singletons: a launcher that fails to wire up PMI can start N independent
 * one-rank jobs (Open MPI 5 under `srun --mpi=none`, open-mpi/ompi#13523;
 * cluster.md §1.1). N singletons would each convert the whole model into the
 * same directory, so trtconv refuses to run with a world of 1 when the
 * environment says more tasks were started. The sources, most specific
 * first (the first one present decides):
 *   OMPI_COMM_WORLD_SIZE   Open MPI's mpirun/prterun (also inside Slurm and
 *                          MPIJob launches): the size it started
 *   PMI_SIZE               PMI-1/PMI-2 launchers (MPICH Hydra, srun --mpi=pmi2)
 *   SLURM_STEP_NUM_TASKS   tasks of the srun step this process belongs to
 *   SLURM_NTASKS           tasks of the allocation (a batch script that runs
 *                          trtconv without srun/mpirun)
 *   PMIX_RANK              a rank above 0 is part of a larger job
 * TRTCONV_ALLOW_SINGLETON=1 turns the refusal off (for the rare deliberate
 * one-rank run inside a bigger allocation without mpirun).
 *
 * GPU choice (cluster.md §1.3): no single environment variable says which GPU
 * is a rank's (SLURM_LOCALID is 0 for every rank under mpirun inside sbatch;
 * OMPI_COMM_WORLD_LOCAL_RANK is unset under srun), so the node-local rank
 * comes from MPI_Comm_split_type(MPI_COMM_TYPE_SHARED):
 *   no visible device        CPU path
 *   one visible device       use it: the launcher bound it (CUDA_VISIBLE_DEVICES,
 *                            --gpus-per-task) or the node has one GPU
 *   devices >= local ranks   device = node-local rank
 *   1 < devices < ranks      refused: "N ranks on host H but only M visible GPUs"
 * Ranks that end up on the same GPU (one-GPU nodes, or a launcher that bound
 * the same device to several ranks) are allowed: their collectives use MPI
 * host buffers (coll.h), and the run prints which ranks share. */
#ifndef TRTCONV_LAUNCH_H
#define TRTCONV_LAUNCH_H

#include <stddef.h>
#include "trtconv/core/status.h"

/* getenv or a test's stand-in. */
typedef char *(*tc_env_fn)(const char *name);

/* The world size the environment promises, or 0 when no source is set or a
 * source holds something that is not a positive integer (ignored: the check
 * must never refuse a correct launch because of an unrelated variable).
 * *source (may be NULL) receives the deciding variable, e.g. "SLURM_NTASKS=4". */
long tc_launch_expected_size(tc_env_fn env, char *source, size_t source_len);

/* TC_E_COMM with a message naming the variable when world_size is 1 and the
 * environment promised more (see above); TC_OK otherwise. */
tc_status tc_launch_check_world(int world_size, tc_env_fn env);

/* The device index for node-local rank local_rank of local_size ranks when
 * n_devices are visible (rules above). *device = -1 for n_devices <= 0.
 * host names the node in the refusal. */
tc_status tc_gpu_choose(int n_devices, int local_rank, int local_size, const char *host,
                        int *device);

#endif
