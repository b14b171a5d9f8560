/* cuda_util.cuh: launch helpers shared by the kernels' launchers (C++ only,
 * included by kernels/*.cu after the project's C headers). */
#ifndef TRTCONV_CUDA_UTIL_CUH
#define TRTCONV_CUDA_UTIL_CUH

#include <stdint.h>
#include <cuda_runtime.h>

/* Evaluate a CUDA runtime call once; on failure log file:line, the call and
 * CUDA's own name and message, set st and leave through `done` (style.md A4,
 * A5). Needs tc_fail (trtconv/log.h) in scope. */
#define TC_CUDA_TRY(call)                                                     \
    do {                                                                      \
        cudaError_t e_ = (call);                                              \
        if (e_ != cudaSuccess) {                                              \
            st = tc_fail(TC_E_INTERNAL, "%s:%d %s: %s: %s (%s)", __FILE__,    \
                         __LINE__, __func__, #call, cudaGetErrorString(e_),   \
                         cudaGetErrorName(e_));                               \
            goto done;                                                        \
        }                                                                     \
    } while (0)

/* Grid size for `blocks` independent blocks of work on the current device:
 * capped at blocks_per_sm per SM (the kernels loop grid-stride over the
 * rest), at least 1. */
static inline tc_status tc_cuda_capped_grid(int64_t blocks, int blocks_per_sm, unsigned *grid)
{
    tc_status st = TC_OK;
    int dev = 0, sms = 0;
    TC_CUDA_TRY(cudaGetDevice(&dev));
    TC_CUDA_TRY(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    if (sms < 1)
        sms = 1;
    if (blocks > (int64_t)sms * blocks_per_sm)
        blocks = (int64_t)sms * blocks_per_sm;
    if (blocks < 1)
        blocks = 1;
    *grid = (unsigned)blocks;
done:
    return st;
}

#endif
