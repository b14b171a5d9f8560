/* coll.h: the collectives layer of the distributed forward pass and of
 * calibration: one communicator per parallel group (tensor, pipeline or data
 * parallel), NCCL where it can be used, MPI host collectives otherwise.
 *
 * Backend choice, per communicator (collectively, at creation): NCCL when
 * the build has NCCL, the buffers live on GPUs, there are at least two
 * members and every member has its own GPU, i.e. all (hostname, device
 * UUID) pairs of the members are distinct. A group of one needs no NCCL:
 * its all-reduces return at once and it has no peer to send to.
 * NCCL refuses two ranks on one GPU ("invalid usage"), so ranks that share a
 * GPU, or have none, use MPI; with device buffers the MPI backend stages them
 * through a pinned host buffer. TRTCONV_COLL=mpi in the environment forces
 * MPI (to compare the two backends on a multi-GPU machine).
 *
 * Results do not depend on the backend: tc_coll_allreduce_sum_f32 is an
 * all-gather followed by a sum in member order, the same additions in the
 * same order on every backend (and on every rank), so sums are bit-identical
 * with NCCL and MPI; max is exact in any order.
 *
 * Buffers: when created with a GPU (dev != NULL) every buffer argument is a
 * device pointer of that GPU and every operation is ordered on `stream`
 * (queued for NCCL; the MPI backend synchronises the stream first, so
 * previously queued kernels have finished). Without a GPU they are host
 * pointers. The caller owns all buffers. */
#ifndef TRTCONV_COLL_H
#define TRTCONV_COLL_H

#include <mpi.h>
#include <stdbool.h>
#include <stddef.h>
#include "trtconv/mpi/gpu.h"
#include "trtconv/core/status.h"

typedef enum tc_coll_backend { TC_COLL_MPI = 0, TC_COLL_NCCL = 1 } tc_coll_backend;

typedef struct tc_coll {
    MPI_Comm comm;          /* owned (split of the parent) */
    int rank, size;
    tc_coll_backend backend;
    bool device;            /* buffers are device pointers */
    void *stream;           /* cudaStream_t the operations are ordered on */
    void *nccl;             /* ncclComm_t (NCCL backend) */
    void *stage;            /* pinned host staging buffer (MPI + device) */
    size_t stage_bytes;
} tc_coll;

/* Collective over `parent`: split it by color (members ordered by key) and
 * choose the backend. gpu: the caller's device, or NULL for host buffers;
 * stream: the cudaStream_t the caller queues its work on (ignored without a
 * GPU). On TC_OK release with tc_coll_free. */
tc_status tc_coll_create(MPI_Comm parent, int color, int key, const tc_gpu_info *gpu,
                         void *stream, tc_coll *out);
void tc_coll_free(tc_coll *c); /* accepts a zeroed struct */

const char *tc_coll_backend_name(const tc_coll *c);

/* buf[0..n) = elementwise max over the members. In place. */
tc_status tc_coll_allreduce_max_f32(tc_coll *c, float *buf, size_t n);

/* buf[0..n) = sum over members m = 0..size-1, in that order, of their buf.
 * scratch must hold size * n floats (same memory space as buf). In place. */
tc_status tc_coll_allreduce_sum_f32(tc_coll *c, float *buf, size_t n, float *scratch);

/* recv[m * bytes ..] = member m's send. recv holds size * bytes. */
tc_status tc_coll_allgather(tc_coll *c, const void *send, void *recv, size_t bytes);

/* Point-to-point within the communicator (pipeline stages). */
tc_status tc_coll_send(tc_coll *c, const void *buf, size_t bytes, int peer);
tc_status tc_coll_recv(tc_coll *c, void *buf, size_t bytes, int peer);

#endif
