/* rss_probe.c: the host memory (resident, from /proc/self/statm) that the
 * CUDA runtime and cuBLAS take in a process before it does any work of its
 * own, step by step as trtconv's GPU calibration takes them: the floor
 * under a GPU rank's peak RSS (issue 23: "host RSS per rank under 1 GiB").
 * Build: cc -O2 bench/rss_probe.c -I/usr/local/cuda/include
 *        -L/usr/local/cuda/lib64 -lcublas -lcudart -o rss_probe */
#define _POSIX_C_SOURCE 200809L
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static double rss_mib(void)
{
    long long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%lld %lld", &size, &resident) != 2)
        resident = -1;
    if (f)
        fclose(f);
    return (double)resident * (double)sysconf(_SC_PAGESIZE) / 1048576.0;
}

static double last;
static void step(const char *what)
{
    const double now = rss_mib();
    printf("%-58s %8.1f MiB  (+%.1f)\n", what, now, now - last);
    last = now;
}

#define CK(x)                                                               \
    do {                                                                    \
        if ((x) != 0) {                                                     \
            fprintf(stderr, "%s failed\n", #x);                             \
            return 1;                                                       \
        }                                                                   \
    } while (0)

int main(void)
{
    step("process start");
    CK(cudaSetDevice(0));
    CK(cudaFree(0));
    step("CUDA context (cudaFree(0))");
    cudaStream_t s1, s2;
    CK(cudaStreamCreate(&s1));
    CK(cudaStreamCreate(&s2));
    step("two streams");
    cublasHandle_t h1, h2;
    CK(cublasCreate(&h1));
    step("first cuBLAS handle");
    CK(cublasCreate(&h2));
    step("second cuBLAS handle");
    const int m = 4096, n = 4096, k = 4096;
    void *a, *b, *c;
    CK(cudaMalloc(&a, (size_t)m * k * 2));
    CK(cudaMalloc(&b, (size_t)k * n * 2));
    CK(cudaMalloc(&c, (size_t)m * n * 2));
    const float one = 1.0f, zero = 0.0f;
    CK(cublasSetStream(h1, s1));
    CK(cublasGemmEx(h1, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &one, b, CUDA_R_16F, k, a, CUDA_R_16F, k,
                    &zero, c, CUDA_R_16F, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    CK(cudaStreamSynchronize(s1));
    step("one float16 GEMM (its kernels loaded)");
    CK(cublasGemmEx(h1, CUBLAS_OP_T, CUBLAS_OP_N, 6144, 4096, 4096, &one, b, CUDA_R_16F, 4096, a,
                    CUDA_R_16F, 4096, &zero, c, CUDA_R_16F, 6144, CUBLAS_COMPUTE_32F,
                    CUBLAS_GEMM_DEFAULT));
    CK(cudaStreamSynchronize(s1));
    step("a second GEMM shape");
    void *pinned[8];
    for (int i = 0; i < 8; i++)
        CK(cudaHostAlloc(&pinned[i], (size_t)16 << 20, cudaHostAllocDefault));
    step("8 pinned buffers of 16 MiB (cudaHostAlloc, untouched)");
    void *host[8];
    for (int i = 0; i < 8; i++) {
        host[i] = malloc((size_t)16 << 20);
        CK(host[i] == NULL);
        CK(cudaHostRegister(host[i], (size_t)16 << 20, cudaHostRegisterDefault));
    }
    step("8 malloc'd 16 MiB buffers page-locked (cudaHostRegister)");
    for (int i = 0; i < 8; i++) {
        cudaHostUnregister(host[i]);
        free(host[i]);
        cudaFreeHost(pinned[i]);
    }
    step("the buffers freed");
    cublasDestroy(h1);
    cublasDestroy(h2);
    return 0;
}
