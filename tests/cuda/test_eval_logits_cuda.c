/* test_eval_logits_cuda.c: trtconv eval's logits comparison on the GPU
 * (kernels/eval_logits.cu) against the CPU reference (src/eval/logits_rows.c)
 * over the same values: two models' logits in float16 / bfloat16 / float32
 * (also mixed), rows with their maximum repeated (the first column must
 * win), a row of one repeated value, next ids inside and outside this
 * rank's columns, a padded row stride and a column offset (a tensor-
 * parallel rank's share). The maxima, argmax columns and logits at next
 * must be equal; the float64 sums of expf within 2e-6 of the sum of their
 * terms' magnitudes (CUDA's expf against the host's, added in another
 * order). Exits 77 without a GPU; last line "N passed, M failed". */
#include <cuda_runtime.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_check.h"
#include "trtconv/core/dtype.h"
#include "trtconv/core/log.h"
#include "trtconv/eval/logits_rows.h"
#include "trtconv/kernels/eval_logits.h"

/* rows x ld values, the first V of each row set, rounded to dt. */
static float *make(tc_dtype dt, int64_t T, int64_t V, int64_t ld, unsigned seed, float shift)
{
    float *f = calloc((size_t)(T * ld), sizeof *f);
    srand(seed);
    for (int64_t r = 0; r < T; r++)
        for (int64_t k = 0; k < V; k++)
            f[r * ld + k] = (float)((rand() % 20001) - 10000) * 1.5e-3f + shift;
    /* Row 1: its maximum three times (columns 5, 9, V-1); row 2: constant. */
    if (T > 2) {
        f[1 * ld + 5] = f[1 * ld + 9] = f[1 * ld + V - 1] = 40.0f;
        for (int64_t k = 0; k < V; k++)
            f[2 * ld + k] = 3.0f;
    }
    for (int64_t i = 0; i < T * ld; i++)
        f[i] = tc_round_to_dtype(dt, f[i]);
    return f;
}

static void *upload(const float *f, tc_dtype dt, size_t n)
{
    const size_t es = tc_dtype_bits(dt) / 8;
    void *h = malloc(n * es), *d = NULL;
    tc_convert(h, dt, f, TC_DT_F32, n);
    if (!cuda_ok(cudaMalloc(&d, n * es), "malloc") ||
        !cuda_ok(cudaMemcpy(d, h, n * es, cudaMemcpyHostToDevice), "upload")) {
        cudaFree(d);
        d = NULL;
    }
    free(h);
    return d;
}

/* The CPU reference reads rows of exactly V values: compact the rows. */
static float *compact(const float *f, int64_t T, int64_t V, int64_t ld)
{
    float *c = malloc((size_t)(T * V) * sizeof *c);
    for (int64_t r = 0; r < T; r++)
        memcpy(c + r * V, f + r * ld, (size_t)V * sizeof *c);
    return c;
}

static void one(tc_dtype dta, tc_dtype dtb, int64_t T, int64_t V, int64_t ld, int64_t col0)
{
    float *fa = make(dta, T, V, ld, 11, 0.0f), *fb = make(dtb, T, V, ld, 12, 0.25f);
    float *ca = compact(fa, T, V, ld), *cb = compact(fb, T, V, ld);
    int32_t *next = malloc((size_t)T * sizeof *next);
    for (int64_t r = 0; r < T; r++) /* in range, before col0, past the columns, -1 */
        next[r] = r % 4 == 0 ? (int32_t)(col0 + (r * 37) % V)
                : r % 4 == 1 ? (int32_t)(col0 > 0 ? col0 - 1 : col0 + V - 1)
                : r % 4 == 2 ? (int32_t)(col0 + V + 3) : -1;
    double *mx_ref = malloc((size_t)T * 2 * sizeof(double)), *mx = malloc((size_t)T * 2 * sizeof(double));
    double *s_ref = malloc((size_t)T * 6 * sizeof(double)), *s = malloc((size_t)T * 6 * sizeof(double));
    long long *g_ref = malloc((size_t)T * 2 * sizeof(long long)), *g = malloc((size_t)T * 2 * sizeof(long long));
    tc_logits_rows_max(ca, cb, V, 0, T, mx_ref);
    tc_logits_rows_sums(ca, cb, V, col0, next, mx_ref, 0, T, s_ref, g_ref);
    void *da = upload(fa, dta, (size_t)(T * ld)), *db = upload(fb, dtb, (size_t)(T * ld));
    int ok = da && db &&
             tc_logits_rows_max_cuda(da, dta, ld, db, dtb, ld, T, V, mx) == TC_OK &&
             tc_logits_rows_sums_cuda(da, dta, ld, db, dtb, ld, T, V, col0, next, mx, s, g) == TC_OK;
    int exact = ok, close = ok;
    double worst = 0.0;
    for (int64_t r = 0; ok && r < T; r++) {
        exact = exact && mx[2 * r] == mx_ref[2 * r] && mx[2 * r + 1] == mx_ref[2 * r + 1] &&
                g[2 * r] == g_ref[2 * r] && g[2 * r + 1] == g_ref[2 * r + 1] &&
                s[6 * r + 3] == s_ref[6 * r + 3] && s[6 * r + 4] == s_ref[6 * r + 4];
        /* Magnitudes of the terms each sum adds. */
        double mag[3] = { 0.0, 0.0, 0.0 };
        const float ma = (float)mx_ref[2 * r], mb = (float)mx_ref[2 * r + 1];
        for (int64_t k = 0; k < V; k++) {
            const double ea = expf(ca[r * V + k] - ma);
            mag[0] += ea;
            mag[1] += expf(cb[r * V + k] - mb);
            mag[2] += ea * fabs((double)ca[r * V + k] - (double)cb[r * V + k]);
        }
        for (int i = 0; i < 3; i++) {
            const double d = fabs(s[6 * r + i] - s_ref[6 * r + i]) / (mag[i] > 0 ? mag[i] : 1.0);
            worst = d > worst ? d : worst;
        }
    }
    close = close && worst <= 2e-6;
    result(ok && exact && close,
           "logits %s vs %s, %lld rows of %lld columns (stride %lld, col0 %lld): maxima, argmax and "
           "logits at next equal; sums within %.1e of their terms' magnitude",
           tc_dtype_name(dta), tc_dtype_name(dtb), (long long)T, (long long)V, (long long)ld,
           (long long)col0, worst);
    if (ok && T > 2)
        result(g[2] == col0 + 5 && g[4] == col0, "a repeated maximum: its first column wins (%lld, %lld)",
               g[2], g[4]);
    cudaFree(da), cudaFree(db);
    free(fa), free(fb), free(ca), free(cb), free(next), free(mx_ref), free(mx), free(s_ref), free(s),
        free(g_ref), free(g);
}

int main(void)
{
    tc_log_init(0, 1, NULL);
    if (!have_gpu())
        return GPU_SKIP;
    one(TC_DT_F16, TC_DT_F16, 37, 1000, 1000, 0);
    one(TC_DT_BF16, TC_DT_BF16, 64, 4099, 4104, 4104);
    one(TC_DT_F32, TC_DT_F16, 5, 32000, 32064, 0);
    one(TC_DT_F16, TC_DT_BF16, 300, 128256 / 2, 128256 / 2, 128256 / 2);
    result(cuda_ok(cudaDeviceSynchronize(), "final synchronize"), "no pending CUDA error");
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
}
