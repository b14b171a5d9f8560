/* test_fp8_cuda.c: the FP8 rowwise kernel (kernels/fp8.cu) against its CPU
 * reference tc_fp8_rowwise_quantize_rows (quant/fp8.h), byte for byte: E4M3
 * bytes and the bits of every float32 scale. Matrices of F32, F16 and BF16
 * with values past the clamp, zero rows, rows at the scale floor, rows
 * whose quotients fall into E4M3's subnormals and its rounding ties, NaN
 * and Inf rows, and shapes that are not multiples of the block size. Exit
 * 77 without a GPU; the last line is "N passed, M failed". */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "gpu_check.h"
#include "trtconv/core/dtype.h"
#include "trtconv/kernels/cast.h"
#include "trtconv/kernels/fp8.h"
#include "trtconv/quant/fp8.h"

#define SKIP_CODE 77

static uint64_t g_state;
static uint64_t next_u64(void)
{
    uint64_t z = (g_state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static float uniform(float lo, float hi)
{
    return lo + (hi - lo) * (float)((next_u64() >> 40) * 0x1p-24);
}

/* Row r of kind r % 8: normal weights, past the clamp, zeros, tiny (scale
 * floor), huge dynamic range (subnormal quotients), exact E4M3 grid values
 * times a power of two (ties after scaling), one NaN, one Inf. */
static void fill(float *w, int64_t rows, int64_t cols)
{
    for (int64_t r = 0; r < rows; r++) {
        float *row = w + r * cols;
        const int kind = (int)(r % 8);
        for (int64_t k = 0; k < cols; k++) {
            float v;
            switch (kind) {
            case 0: v = uniform(-0.05f, 0.05f); break;
            case 1: v = uniform(-2000.0f, 2000.0f); break;
            case 2: v = 0.0f; break;
            case 3: v = uniform(-1e-6f, 1e-6f); break;
            case 4: v = uniform(-1.0f, 1.0f) * ldexpf(1.0f, -(int)(next_u64() % 20)); break;
            case 5: v = tc_e4m3fn_to_f32((uint8_t)(next_u64() % 0x7E)) * 0.125f; break;
            default: v = uniform(-3.0f, 3.0f); break;
            }
            row[k] = v;
        }
        if (kind == 6 && cols > 1)
            row[cols / 2] = NAN;
        if (kind == 7 && cols > 1)
            row[cols - 1] = -INFINITY;
    }
}

static int run_case(tc_dtype dt, int64_t rows, int64_t cols, cudaStream_t stream)
{
    const size_t n = (size_t)(rows * cols), es = tc_dtype_bits(dt) / 8;
    float *w32 = malloc(n * 4);
    void *w = malloc(n * es);
    uint8_t *q_ref = malloc(n), *q_gpu = malloc(n);
    float *s_ref = malloc((size_t)rows * 4), *s_gpu = malloc((size_t)rows * 4);
    void *d_w = NULL;
    uint8_t *d_q = NULL;
    float *d_s = NULL;
    int ok = w32 && w && q_ref && q_gpu && s_ref && s_gpu;
    if (ok) {
        fill(w32, rows, cols);
        tc_convert(w, dt, w32, TC_DT_F32, n);
        const float clamp[2] = { -1200.0f, 1200.0f };
        ok = tc_fp8_rowwise_quantize_rows(w, dt, rows, cols, clamp, q_ref, s_ref) == TC_OK;
    }
    ok = ok && cuda_ok(cudaMalloc(&d_w, n * es), "cudaMalloc") &&
         cuda_ok(cudaMalloc((void **)&d_q, n), "cudaMalloc") &&
         cuda_ok(cudaMalloc((void **)&d_s, (size_t)rows * 4), "cudaMalloc") &&
         cuda_ok(cudaMemcpy(d_w, w, n * es, cudaMemcpyHostToDevice), "copy in");
    ok = ok && tc_fp8_rowwise_quantize_rows_cuda(d_w, dt, rows, cols, -1200.0f, 1200.0f, d_q, d_s,
                                                 stream) == TC_OK;
    ok = ok && cuda_ok(cudaStreamSynchronize(stream), "kernel") &&
         cuda_ok(cudaMemcpy(q_gpu, d_q, n, cudaMemcpyDeviceToHost), "copy q") &&
         cuda_ok(cudaMemcpy(s_gpu, d_s, (size_t)rows * 4, cudaMemcpyDeviceToHost), "copy s");
    size_t bad_q = 0, bad_s = 0;
    if (ok) {
        for (size_t i = 0; i < n; i++)
            if (q_ref[i] != q_gpu[i] && bad_q++ < 3)
                printf("  %s %lldx%lld: byte %zu (row %zu): cpu 0x%02x gpu 0x%02x\n",
                       tc_dtype_name(dt), (long long)rows, (long long)cols, i,
                       i / (size_t)cols, q_ref[i], q_gpu[i]);
        for (int64_t r = 0; r < rows; r++)
            if (memcmp(&s_ref[r], &s_gpu[r], 4) != 0 && bad_s++ < 3)
                printf("  scale of row %lld: cpu %a gpu %a\n", (long long)r, (double)s_ref[r],
                       (double)s_gpu[r]);
    }
    result(ok && !bad_q && !bad_s, "%s [%lld, %lld]: %zu bytes and %lld scales equal the reference",
           tc_dtype_name(dt), (long long)rows, (long long)cols, n, (long long)rows);
    /* Per tensor: the scale of the largest finite |w|, and half of it (so
     * quotients pass 480 and become NaN on both sides). */
    float amax = 0.0f;
    for (size_t i = 0; ok && i < n; i++)
        if (isfinite(w32[i]) && fabsf(w32[i]) > amax)
            amax = fabsf(w32[i]);
    for (int half = 0; ok && half < 2; half++) {
        const float sc = tc_fp8_tensor_scale(amax) * (half ? 0.5f : 1.0f);
        size_t bad = 0;
        ok = tc_fp8_tensor_quantize_rows(w, dt, rows, cols, sc, q_ref) == TC_OK &&
             tc_fp8_tensor_quantize_rows_cuda(d_w, dt, rows, cols, sc, d_q, stream) == TC_OK &&
             cuda_ok(cudaStreamSynchronize(stream), "kernel") &&
             cuda_ok(cudaMemcpy(q_gpu, d_q, n, cudaMemcpyDeviceToHost), "copy q");
        for (size_t i = 0; ok && i < n; i++)
            if (q_ref[i] != q_gpu[i] && bad++ < 3)
                printf("  per tensor %s: byte %zu: cpu 0x%02x gpu 0x%02x\n", tc_dtype_name(dt), i,
                       q_ref[i], q_gpu[i]);
        bad_q += bad;
        result(ok && !bad, "%s [%lld, %lld] per tensor, scale %a%s: bytes equal the reference",
               tc_dtype_name(dt), (long long)rows, (long long)cols, (double)sc,
               half ? " (half: overflow to NaN)" : "");
    }
    cudaFree(d_w);
    cudaFree(d_q);
    cudaFree(d_s);
    free(w32);
    free(w);
    free(q_ref);
    free(q_gpu);
    free(s_ref);
    free(s_gpu);
    return ok && !bad_q && !bad_s;
}

int main(void)
{
    int count = 0;
    if (tc_cuda_device_count(&count) != TC_OK || count == 0) {
        printf("no CUDA device: skipped\n");
        return SKIP_CODE;
    }
    cudaStream_t stream = NULL;
    if (!cuda_ok(cudaStreamCreate(&stream), "stream"))
        return 1;
    static const tc_dtype dts[] = { TC_DT_F32, TC_DT_F16, TC_DT_BF16 };
    static const int64_t shapes[][2] = { { 8, 1 }, { 16, 7 }, { 64, 256 }, { 40, 1000 },
                                         { 512, 4096 }, { 24, 14336 } };
    g_state = 0xF8F8;
    for (size_t d = 0; d < 3; d++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            run_case(dts[d], shapes[s][0], shapes[s][1], stream);
    cudaStreamDestroy(stream);
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
}
