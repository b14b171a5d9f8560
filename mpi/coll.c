/* coll.c: NCCL / MPI collectives per parallel group (see coll.h). */
#define _POSIX_C_SOURCE 200809L
#include "trtconv/mpi/coll.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "trtconv/build_config.h"
#include "trtconv/mpi/comm.h"
#include "trtconv/core/log.h"

#if TRTCONV_HAVE_CUDA
#include <cuda_runtime_api.h>
#include "trtconv/kernels/fwd.h"
#endif
#if TRTCONV_HAVE_NCCL
#include <nccl.h>
#endif
#include "trtconv/mpi/gpu_errors.h"

/* MPI counts are int; one message carries at most this many bytes. */
#define TC_COLL_MSG_MAX (1u << 30)

#if TRTCONV_HAVE_NCCL
tc_status tc_nccl_check(ncclResult_t r, ncclComm_t comm, const char *call, const char *file,
                        int line)
{
    if (r == ncclSuccess)
        return TC_OK;
    const char *detail = ncclGetLastError(comm);
    return tc_fail(TC_E_COMM, "%s:%d: %s failed: %s%s%s", file, line, call,
                   ncclGetErrorString(r), detail && *detail ? ": " : "", detail ? detail : "");
}
#endif

/* Identity of a member's GPU for the NCCL decision. */
typedef struct member_id {
    char host[64];
    char uuid[48];   /* "" without a GPU */
} member_id;

static bool all_distinct_gpus(const member_id *ids, int n)
{
    for (int i = 0; i < n; i++) {
        if (!ids[i].uuid[0])
            return false;
        for (int j = 0; j < i; j++)
            if (!strcmp(ids[i].uuid, ids[j].uuid) && !strcmp(ids[i].host, ids[j].host))
                return false;
    }
    return true;
}

static bool env_forces_mpi(void)
{
    const char *v = getenv("TRTCONV_COLL");
    return v && !strcmp(v, "mpi");
}

tc_status tc_coll_create(MPI_Comm parent, int color, int key, const tc_gpu_info *gpu, void *stream,
                         tc_coll *out)
{
    memset(out, 0, sizeof *out);
    out->comm = MPI_COMM_NULL;
    tc_status st = TC_MPI_TRY(MPI_Comm_split(parent, color, key, &out->comm));
    if (st != TC_OK)
        return st;
    MPI_Comm_set_errhandler(out->comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(out->comm, &out->rank);
    MPI_Comm_size(out->comm, &out->size);
    out->device = gpu && gpu->device >= 0;
    out->stream = out->device ? stream : NULL;
    out->backend = TC_COLL_MPI;

    member_id me;
    memset(&me, 0, sizeof me);
    if (gethostname(me.host, sizeof me.host - 1) != 0)
        snprintf(me.host, sizeof me.host, "unknown");
    if (out->device)
        snprintf(me.uuid, sizeof me.uuid, "%s", gpu->uuid);
    member_id *ids = calloc((size_t)out->size, sizeof *ids);
    if (!ids)
        return tc_fail(TC_E_INTERNAL, "out of memory creating a communicator");
    st = TC_MPI_TRY(MPI_Allgather(&me, (int)sizeof me, MPI_BYTE, ids, (int)sizeof me, MPI_BYTE,
                                  out->comm));
    /* A group of one has nothing to exchange (its all-reduces return at
     * once, it has no peer to send to): no NCCL communicator, whose set-up
     * took time and memory on every single-GPU run, three times. */
    bool nccl_ok = st == TC_OK && out->size > 1 && all_distinct_gpus(ids, out->size) &&
                   !env_forces_mpi();
    free(ids);
    if (st != TC_OK)
        return st;
#if TRTCONV_HAVE_NCCL
    if (nccl_ok) {
        /* Every member computed the same nccl_ok from the same gathered ids. */
        ncclUniqueId uid;
        if (out->rank == 0) {
            st = TC_NCCL_TRY(ncclGetUniqueId(&uid), NULL);
            if (st != TC_OK)
                memset(&uid, 0, sizeof uid);
        }
        tc_status bst = TC_MPI_TRY(MPI_Bcast(&uid, (int)sizeof uid, MPI_BYTE, 0, out->comm));
        if (bst != TC_OK)
            return bst;
        if (st != TC_OK)
            return st;
        ncclComm_t nc = NULL;
        st = TC_NCCL_TRY(ncclCommInitRank(&nc, out->size, uid, out->rank), NULL);
        if (st != TC_OK)
            return st;
        out->nccl = nc;
        out->backend = TC_COLL_NCCL;
    }
#else
    (void)nccl_ok;
#endif
    return TC_OK;
}

void tc_coll_free(tc_coll *c)
{
#if TRTCONV_HAVE_NCCL
    if (c->nccl)
        ncclCommDestroy((ncclComm_t)c->nccl);
#endif
#if TRTCONV_HAVE_CUDA
    if (c->stage)
        cudaFreeHost(c->stage);
#endif
    if (c->comm != MPI_COMM_NULL && c->comm != 0)
        MPI_Comm_free(&c->comm);
    memset(c, 0, sizeof *c);
    c->comm = MPI_COMM_NULL;
}

const char *tc_coll_backend_name(const tc_coll *c)
{
    if (c->size == 1)
        return "none (one member)";
    if (c->backend == TC_COLL_NCCL)
        return "nccl";
    return c->device ? "mpi (staged through host)" : "mpi";
}

/* ---- MPI helpers ---- */

static tc_status mpi_send_bytes(MPI_Comm comm, const void *buf, size_t bytes, int peer)
{
    const char *p = buf;
    do {
        size_t n = bytes < TC_COLL_MSG_MAX ? bytes : TC_COLL_MSG_MAX;
        tc_status st = TC_MPI_TRY(MPI_Send(p, (int)n, MPI_BYTE, peer, 71, comm));
        if (st != TC_OK)
            return st;
        p += n;
        bytes -= n;
    } while (bytes);
    return TC_OK;
}

static tc_status mpi_recv_bytes(MPI_Comm comm, void *buf, size_t bytes, int peer)
{
    char *p = buf;
    do {
        size_t n = bytes < TC_COLL_MSG_MAX ? bytes : TC_COLL_MSG_MAX;
        tc_status st = TC_MPI_TRY(MPI_Recv(p, (int)n, MPI_BYTE, peer, 71, comm, MPI_STATUS_IGNORE));
        if (st != TC_OK)
            return st;
        p += n;
        bytes -= n;
    } while (bytes);
    return TC_OK;
}

static tc_status check_gather_size(const tc_coll *c, size_t bytes)
{
    if (bytes > TC_COLL_MSG_MAX || (size_t)c->size * bytes > (size_t)INT_MAX)
        return tc_fail(TC_E_INTERNAL, "collective of %zu bytes per member x %d members is too large",
                       bytes, c->size);
    return TC_OK;
}

static void sum_in_member_order(float *out, const float *in, int members, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float s = in[i];
        for (int m = 1; m < members; m++)
            s += in[(size_t)m * n + i];
        out[i] = s;
    }
}

#if TRTCONV_HAVE_CUDA
static tc_status stage_reserve(tc_coll *c, size_t bytes)
{
    if (c->stage_bytes >= bytes)
        return TC_OK;
    if (c->stage)
        cudaFreeHost(c->stage);
    c->stage = NULL;
    c->stage_bytes = 0;
    tc_status st = TC_CUDA_TRY(cudaMallocHost(&c->stage, bytes));
    if (st == TC_OK)
        c->stage_bytes = bytes;
    return st;
}

/* Copy and wait: the MPI call that follows reads or has written the host side. */
static tc_status copy_sync(tc_coll *c, void *dst, const void *src, size_t n, enum cudaMemcpyKind kind)
{
    tc_status st = TC_CUDA_TRY(cudaMemcpyAsync(dst, src, n, kind, (cudaStream_t)c->stream));
    if (st == TC_OK)
        st = TC_CUDA_TRY(cudaStreamSynchronize((cudaStream_t)c->stream));
    return st;
}

static tc_status d2h(tc_coll *c, void *h, const void *d, size_t n)
{
    return copy_sync(c, h, d, n, cudaMemcpyDeviceToHost);
}

static tc_status h2d(tc_coll *c, void *d, const void *h, size_t n)
{
    return copy_sync(c, d, h, n, cudaMemcpyHostToDevice);
}
#else
/* Without CUDA no communicator holds device buffers; should one claim to,
 * every staging step fails the same way. */
static tc_status no_device(void)
{
    return tc_fail(TC_E_INTERNAL, "device buffers in a build without CUDA");
}
static tc_status stage_reserve(tc_coll *c, size_t bytes) { (void)c; (void)bytes; return no_device(); }
static tc_status d2h(tc_coll *c, void *h, const void *d, size_t n)
{
    (void)c; (void)h; (void)d; (void)n;
    return no_device();
}
static tc_status h2d(tc_coll *c, void *d, const void *h, size_t n)
{
    (void)c; (void)d; (void)h; (void)n;
    return no_device();
}
#endif

/* ---- operations ---- */

tc_status tc_coll_allreduce_max_f32(tc_coll *c, float *buf, size_t n)
{
    if (c->size == 1 || n == 0)
        return TC_OK;
    if (n > (size_t)INT_MAX)
        return tc_fail(TC_E_INTERNAL, "all-reduce of %zu floats is too large", n);
#if TRTCONV_HAVE_NCCL
    if (c->backend == TC_COLL_NCCL)
        return TC_NCCL_TRY(ncclAllReduce(buf, buf, n, ncclFloat32, ncclMax, (ncclComm_t)c->nccl,
                                        (cudaStream_t)c->stream), (ncclComm_t)c->nccl);
#endif
    if (!c->device)
        return TC_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_MAX, c->comm));
    tc_status st = stage_reserve(c, n * sizeof(float));
    if (st == TC_OK)
        st = d2h(c, c->stage, buf, n * sizeof(float));
    if (st == TC_OK)
        st = TC_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, c->stage, (int)n, MPI_FLOAT, MPI_MAX, c->comm));
    if (st == TC_OK)
        st = h2d(c, buf, c->stage, n * sizeof(float));
    return st;
}

tc_status tc_coll_allgather(tc_coll *c, const void *send, void *recv, size_t bytes)
{
    tc_status st = check_gather_size(c, bytes);
    if (st != TC_OK)
        return st;
#if TRTCONV_HAVE_NCCL
    if (c->backend == TC_COLL_NCCL)
        return TC_NCCL_TRY(ncclAllGather(send, recv, bytes, ncclUint8, (ncclComm_t)c->nccl,
                                        (cudaStream_t)c->stream), (ncclComm_t)c->nccl);
#endif
    if (!c->device)
        return TC_MPI_TRY(MPI_Allgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE,
                                        c->comm));
    const size_t total = (size_t)c->size * bytes;
    st = stage_reserve(c, total + bytes);
    if (st != TC_OK)
        return st;
    char *mine = (char *)c->stage + total;
    st = d2h(c, mine, send, bytes);
    if (st == TC_OK)
        st = TC_MPI_TRY(MPI_Allgather(mine, (int)bytes, MPI_BYTE, c->stage, (int)bytes, MPI_BYTE,
                                      c->comm));
    if (st == TC_OK)
        st = h2d(c, recv, c->stage, total);
    return st;
}

tc_status tc_coll_allreduce_sum_f32(tc_coll *c, float *buf, size_t n, float *scratch)
{
    if (c->size == 1 || n == 0)
        return TC_OK;
    tc_status st = check_gather_size(c, n * sizeof(float));
    if (st != TC_OK)
        return st;
    if (!c->device) {
        st = TC_MPI_TRY(MPI_Allgather(buf, (int)(n * sizeof(float)), MPI_BYTE, scratch,
                                      (int)(n * sizeof(float)), MPI_BYTE, c->comm));
        if (st == TC_OK)
            sum_in_member_order(buf, scratch, c->size, n);
        return st;
    }
#if TRTCONV_HAVE_CUDA
    if (c->backend == TC_COLL_NCCL) {
        st = tc_coll_allgather(c, buf, scratch, n * sizeof(float));
        if (st == TC_OK)
            st = tc_sum_slices_f32_cuda(buf, scratch, c->size, n, c->stream);
        return st;
    }
#endif
    /* MPI with device buffers: gather on the host, sum there (the same
     * additions in the same order as the kernel), one copy back. */
    const size_t total = (size_t)c->size * n * sizeof(float);
    st = stage_reserve(c, total + n * sizeof(float));
    if (st != TC_OK)
        return st;
    float *gathered = c->stage;
    float *mine = (float *)((char *)c->stage + total);
    st = d2h(c, mine, buf, n * sizeof(float));
    if (st == TC_OK)
        st = TC_MPI_TRY(MPI_Allgather(mine, (int)(n * sizeof(float)), MPI_BYTE, gathered,
                                      (int)(n * sizeof(float)), MPI_BYTE, c->comm));
    if (st == TC_OK) {
        sum_in_member_order(mine, gathered, c->size, n);
        st = h2d(c, buf, mine, n * sizeof(float));
    }
    return st;
}

tc_status tc_coll_send(tc_coll *c, const void *buf, size_t bytes, int peer)
{
#if TRTCONV_HAVE_NCCL
    if (c->backend == TC_COLL_NCCL)
        return TC_NCCL_TRY(ncclSend(buf, bytes, ncclUint8, peer, (ncclComm_t)c->nccl,
                                   (cudaStream_t)c->stream), (ncclComm_t)c->nccl);
#endif
    if (!c->device)
        return mpi_send_bytes(c->comm, buf, bytes, peer);
    tc_status st = stage_reserve(c, bytes);
    if (st == TC_OK)
        st = d2h(c, c->stage, buf, bytes);
    if (st == TC_OK)
        st = mpi_send_bytes(c->comm, c->stage, bytes, peer);
    return st;
}

tc_status tc_coll_recv(tc_coll *c, void *buf, size_t bytes, int peer)
{
#if TRTCONV_HAVE_NCCL
    if (c->backend == TC_COLL_NCCL)
        return TC_NCCL_TRY(ncclRecv(buf, bytes, ncclUint8, peer, (ncclComm_t)c->nccl,
                                   (cudaStream_t)c->stream), (ncclComm_t)c->nccl);
#endif
    if (!c->device)
        return mpi_recv_bytes(c->comm, buf, bytes, peer);
    tc_status st = stage_reserve(c, bytes);
    if (st == TC_OK)
        st = mpi_recv_bytes(c->comm, c->stage, bytes, peer);
    if (st == TC_OK)
        st = h2d(c, buf, c->stage, bytes);
    return st;
}
