/* test_nvfp4_cuda.c: the NVFP4 kernel (kernels/nvfp4.cu) against the CPU
 * reference tc_nvfp4_quantize_rows, byte for byte (packed values and E4M3
 * block scales), float16 / bfloat16 / float32 weights: random rows with
 * outliers, a zero block, every grid tie and midpoint neighbour scaled into
 * a block, values past the saturation, -0 and, for float32, a NaN.
 * Exits 77 without a GPU; last line "N passed, M failed". */
#include <cuda_runtime.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_check.h"
#include "trtconv/core/dtype.h"
#include "trtconv/core/log.h"
#include "trtconv/kernels/nvfp4.h"
#include "trtconv/quant/nvfp4.h"

static void one(tc_dtype dt, int64_t rows, int64_t cols)
{
    const size_t n = (size_t)(rows * cols), es = tc_dtype_bits(dt) / 8;
    float *f = malloc(n * 4);
    srand((unsigned)(rows * 131 + cols));
    float amax = 0.0f;
    for (size_t i = 0; i < n; i++)
        f[i] = (float)((rand() % 20001) - 10000) * 1e-4f * (i % 23 == 0 ? 40.0f : 1.0f);
    /* Row 0: a zero block, then ties and their neighbours at a known scale. */
    static const float ties[] = { 0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f, 6.0f,
                                  -0.25f, -2.5f, 0.2500001f, 3.4999998f, 9.0f, -9.0f, -0.0f, 0.5f };
    for (int k = 0; k < 16; k++) {
        f[k] = 0.0f;
        if (cols >= 32)
            f[16 + k] = ties[k];
    }
    for (size_t i = 0; i < n; i++)
        amax = fmaxf(amax, fabsf(tc_round_to_dtype(dt, f[i])));
    if (dt == TC_DT_F32)
        f[n - 1] = NAN;
    void *w = malloc(n * es);
    tc_convert(w, dt, f, TC_DT_F32, n);
    const float s2 = tc_nvfp4_global_scale(amax);
    uint8_t *p_ref = malloc(n / 2), *s_ref = malloc(n / 16), *p_got = malloc(n / 2),
            *s_got = malloc(n / 16);
    tc_nvfp4_quantize_rows(w, dt, rows, cols, s2, p_ref, s_ref);
    void *dw = NULL, *dp = NULL, *ds = NULL;
    int ok = cuda_ok(cudaMalloc(&dw, n * es), "malloc") && cuda_ok(cudaMalloc(&dp, n / 2), "malloc") &&
             cuda_ok(cudaMalloc(&ds, n / 16), "malloc") &&
             cuda_ok(cudaMemcpy(dw, w, n * es, cudaMemcpyHostToDevice), "upload") &&
             tc_nvfp4_quantize_rows_cuda(dw, dt, rows, cols, s2, dp, ds, NULL) == TC_OK &&
             cuda_ok(cudaMemcpy(p_got, dp, n / 2, cudaMemcpyDeviceToHost), "download") &&
             cuda_ok(cudaMemcpy(s_got, ds, n / 16, cudaMemcpyDeviceToHost), "download");
    ok = ok && !memcmp(p_ref, p_got, n / 2) && !memcmp(s_ref, s_got, n / 16);
    result(ok, "nvfp4 %s [%lld, %lld]: packed values and block scales byte for byte",
           tc_dtype_name(dt), (long long)rows, (long long)cols);
    cudaFree(dw), cudaFree(dp), cudaFree(ds);
    free(f), free(w), free(p_ref), free(s_ref), free(p_got), free(s_got);
}

int main(void)
{
    tc_log_init(0, 1, NULL);
    if (!have_gpu())
        return GPU_SKIP;
    const tc_dtype dts[] = { TC_DT_F16, TC_DT_BF16, TC_DT_F32 };
    for (int i = 0; i < 3; i++) {
        one(dts[i], 7, 64);
        one(dts[i], 256, 4096);
    }
    result(cuda_ok(cudaDeviceSynchronize(), "final synchronize"), "no pending CUDA error");
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
}
