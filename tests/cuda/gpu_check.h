/* gpu_check.h: what the GPU test programs share (plain C, no Check): result
 * reporting (each program prints "ok"/"FAIL" lines and ends with the line
 * "N passed, M failed" that CI runners read), the skip without a device,
 * and a seeded xorshift generator. Include once per program. */
#ifndef TRTCONV_TESTS_GPU_CHECK_H
#define TRTCONV_TESTS_GPU_CHECK_H

#include <cuda_runtime_api.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

/* ctest's SKIP_RETURN_CODE for these programs (tests/CMakeLists.txt). */
#define GPU_SKIP 77

static int g_passed, g_failed;

static void result(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void result(int ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s ", ok ? "ok  " : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (ok)
        g_passed++;
    else
        g_failed++;
    fflush(stdout);
}

/* Print a CUDA error and return 0, or return 1 on success. */
static int cuda_ok(cudaError_t e, const char *what)
{
    if (e == cudaSuccess)
        return 1;
    printf("  CUDA error in %s: %s (%s)\n", what, cudaGetErrorString(e), cudaGetErrorName(e));
    return 0;
}

/* 1 when there is a CUDA device; otherwise prints the skip line and
 * returns 0 (the program then returns GPU_SKIP). */
static inline int have_gpu(void)
{
    int count = 0;
    if (cudaGetDeviceCount(&count) == cudaSuccess && count > 0)
        return 1;
    printf("SKIP: no CUDA device\n");
    return 0;
}

/* xorshift64: each program seeds it with its own constant, so its inputs
 * are the same on every run. */
static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static inline void rng_seed(uint64_t s)
{
    g_rng = s;
}
static inline double urand(void) /* [0, 1) */
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (double)(g_rng >> 11) / 9007199254740992.0;
}

#endif
