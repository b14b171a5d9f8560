/* gpu.h: which GPU a rank uses, and what it is.
 *
 * Selection: tc_gpu_choose (launch.h, cluster.md §1.3): the one visible
 * device, else the node-local rank's; fewer devices than ranks on a node
 * (but more than one) is refused.
 * A CPU-only build, a machine without a driver or without devices reports
 * count = 0; that is not an error. */
#ifndef TRTCONV_GPU_H
#define TRTCONV_GPU_H

#include "trtconv/core/status.h"

typedef struct tc_gpu_info {
    int count;        /* visible CUDA devices (0: none usable) */
    int device;       /* selected device index, -1 when count == 0 */
    int sm;           /* major*10 + minor of the selected device */
    char name[256];   /* cudaDeviceProp.name */
    char uuid[48];    /* "GPU-xxxxxxxx-..." (40 characters) of the selected device */
} tc_gpu_info;

/* Probe the devices and select one for node-local rank local_rank of
 * local_size on host (named in a refusal), making it current for this
 * thread (cudaSetDevice). */
tc_status tc_gpu_probe(int local_rank, int local_size, const char *host, tc_gpu_info *out);

/* Make out->device current for the calling thread (worker threads). */
tc_status tc_gpu_use(const tc_gpu_info *info);

#endif
