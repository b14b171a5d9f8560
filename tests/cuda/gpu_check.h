/* gpu_check.h: result reporting shared by the GPU test programs (plain C,
 * no Check: each program prints "ok"/"FAIL" lines and ends with the line
 * "N passed, M failed" that CI runners read). Include once per program. */
#ifndef TRTCONV_TESTS_GPU_CHECK_H
#define TRTCONV_TESTS_GPU_CHECK_H

#include <cuda_runtime_api.h>
#include <stdarg.h>
#include <stdio.h>

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

#endif
