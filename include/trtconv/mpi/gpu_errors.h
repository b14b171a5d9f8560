/* gpu_errors.h: checking CUDA and NCCL calls from C.
 *
 *   TC_CUDA_TRY(cudaMemcpyAsync(...))         -> tc_status
 *   TC_NCCL_TRY(ncclAllReduce(...), comm)     -> tc_status
 *
 * A failure is reported once through tc_fail with the call's text, the
 * source file and line, and the library's own words: cudaGetErrorName and
 * cudaGetErrorString; ncclGetErrorString and ncclGetLastError(comm) (the
 * detail NCCL keeps for the last failure, e.g. which peer or transport),
 * comm may be NULL before a communicator exists. CUDA failures are
 * TC_E_INTERNAL, NCCL failures TC_E_COMM (a peer or the network, so the
 * job aborts instead of waiting). Declared only in builds that have the
 * library (TRTCONV_HAVE_CUDA / TRTCONV_HAVE_NCCL, build_config.h). */
#ifndef TRTCONV_MPI_GPU_ERRORS_H
#define TRTCONV_MPI_GPU_ERRORS_H

#include "trtconv/build_config.h"
#include "trtconv/core/status.h"

#if TRTCONV_HAVE_CUDA
#include <cuda_runtime_api.h>
tc_status tc_cuda_check(cudaError_t e, const char *call, const char *file, int line);
#define TC_CUDA_TRY(call) tc_cuda_check((call), #call, __FILE__, __LINE__)
#endif

#if TRTCONV_HAVE_NCCL
#include <nccl.h>
tc_status tc_nccl_check(ncclResult_t r, ncclComm_t comm, const char *call, const char *file,
                        int line);
#define TC_NCCL_TRY(call, comm) tc_nccl_check((call), (comm), #call, __FILE__, __LINE__)
#endif

#endif
