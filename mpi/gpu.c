/* gpu.c: device probing and selection (see gpu.h). C code over the CUDA
 * runtime's C API; in a CPU-only build it reports no device. */
#define _POSIX_C_SOURCE 200809L
#include "trtconv/mpi/gpu.h"

#include <stdio.h>
#include <string.h>
#include "trtconv/build_config.h"
#include "trtconv/mpi/launch.h"
#include "trtconv/core/log.h"

#if TRTCONV_HAVE_CUDA
#include <cuda_runtime_api.h>
#include "trtconv/mpi/gpu_errors.h"

tc_status tc_cuda_check(cudaError_t e, const char *call, const char *file, int line)
{
    if (e == cudaSuccess)
        return TC_OK;
    return tc_fail(TC_E_INTERNAL, "%s:%d: %s failed: %s (%s)", file, line, call,
                   cudaGetErrorString(e), cudaGetErrorName(e));
}

tc_status tc_gpu_probe(int local_rank, int local_size, const char *host, tc_gpu_info *out)
{
    memset(out, 0, sizeof *out);
    out->device = -1;
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n <= 0) {
        (void)cudaGetLastError(); /* no driver / no device: CPU path */
        return TC_OK;
    }
    int dev = -1;
    TC_TRY(tc_gpu_choose(n, local_rank, local_size, host, &dev));
    struct cudaDeviceProp prop;
    cudaError_t e = cudaGetDeviceProperties(&prop, dev);
    if (e == cudaSuccess)
        e = cudaSetDevice(dev);
    if (e != cudaSuccess)
        return tc_fail(TC_E_INTERNAL, "CUDA device %d: %s", dev, cudaGetErrorString(e));
    out->count = n;
    out->device = dev;
    out->sm = prop.major * 10 + prop.minor;
    memcpy(out->name, prop.name, sizeof out->name < sizeof prop.name ? sizeof out->name : sizeof prop.name);
    out->name[sizeof out->name - 1] = '\0';
    const unsigned char *u = (const unsigned char *)prop.uuid.bytes;
    snprintf(out->uuid, sizeof out->uuid,
             "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
             u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
             u[15]);
    return TC_OK;
}

tc_status tc_gpu_use(const tc_gpu_info *info)
{
    if (info->device < 0)
        return TC_OK;
    cudaError_t e = cudaSetDevice(info->device);
    if (e != cudaSuccess)
        return tc_fail(TC_E_INTERNAL, "cudaSetDevice(%d): %s", info->device, cudaGetErrorString(e));
    return TC_OK;
}

#else

tc_status tc_gpu_probe(int local_rank, int local_size, const char *host, tc_gpu_info *out)
{
    (void)local_rank;
    (void)local_size;
    (void)host;
    memset(out, 0, sizeof *out);
    out->device = -1;
    return TC_OK; /* built without CUDA: no device, the CPU path runs */
}

tc_status tc_gpu_use(const tc_gpu_info *info)
{
    (void)info;
    return TC_OK;
}

#endif
