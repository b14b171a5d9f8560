/* test_sq_cuda.c: the SmoothQuant and calibration operations of the CUDA
 * backend (kernels/fwd.cu via src/fwd/fwd_gpu.c) against the CPU backend
 * (src/fwd/fwd_cpu.c, the scalar reference), bit for bit (style.md A9):
 *   smooth_cols  w = f16(float(double(w) * s)) and the divide form of the
 *                norms, s spanning 1e-5 .. 1e5 (overflow to Inf included);
 *   quantize_i8  the three modes (dtype product, dtype quotient, float32
 *                product), scales putting values on .5 ties and past +-127;
 *   absmax_cols  activation maxima of F16 / BF16 / F32 inputs, with and
 *                without a bias, strided column windows, NaN propagation;
 *   absmax_rows  weight row maxima.
 * Shapes: (1, 128), (7, 33), (384, 128), (1000, 4096), (4096, 1024).
 * Exits 77 without a GPU. Last line: "N passed, M failed". */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "trtconv/fwd/backend.h"
#include "trtconv/core/dtype.h"
#include "trtconv/mpi/gpu.h"
#include "trtconv/core/log.h"
#include "gpu_check.h"


/* Weight-like fp16 values with some exact ties and large entries. */
static void fill_f16(uint16_t *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v = (float)((urand() - 0.5) * 0.2);
        if (i % 97 == 0)
            v = (float)((urand() - 0.5) * 60000.0);
        if (i % 89 == 0)
            v = 0.0f;
        h[i] = tc_f32_to_f16(v);
    }
}

typedef struct pair {
    fwd_backend *g, *c;
} pair;

/* Upload n fp16 values as a weight to both backends. */
static int weights(pair *p, const uint16_t *h, size_t n, void **dg, void **dc)
{
    if (p->g->ops->alloc(p->g, n * 2, dg) != TC_OK || p->c->ops->alloc(p->c, n * 4, dc) != TC_OK)
        return 0;
    return p->g->ops->upload_weight(p->g, *dg, 0, h, TC_DT_F16, n) == TC_OK &&
           p->c->ops->upload_weight(p->c, *dc, 0, h, TC_DT_F16, n) == TC_OK;
}

/* The GPU's fp16 weight equals the CPU's float32-held value, bit for bit. */
static size_t diff_weights(pair *p, void *dg, const float *cpu, size_t n)
{
    uint16_t *h = malloc(n * 2);
    size_t bad = 0;
    p->g->ops->download(p->g, h, dg, n * 2);
    for (size_t i = 0; i < n; i++) {
        const uint16_t c = tc_f32_to_f16(cpu[i]);
        /* NaN payloads are not compared, only NaN-ness. */
        if (h[i] != c && !(isnan(tc_f16_to_f32(h[i])) && isnan(cpu[i])))
            bad++;
    }
    free(h);
    return bad;
}

static void case_shape(pair *p, int64_t rows, int64_t cols)
{
    const size_t n = (size_t)(rows * cols);
    uint16_t *h = malloc(n * 2);
    double *s = malloc((size_t)cols * sizeof(double));
    float *sc = malloc((size_t)rows * sizeof(float)), *cpu = malloc(n * 4);
    int8_t *qg = malloc(n), *qc = malloc(n);
    void *dg = NULL, *dc = NULL, *ds = NULL, *dsc = NULL, *dq = NULL;
    fill_f16(h, n);
    for (int64_t c = 0; c < cols; c++)
        s[c] = pow(10.0, (urand() - 0.5) * 10.0);
    if (!weights(p, h, n, &dg, &dc) || p->g->ops->alloc(p->g, (size_t)cols * 8, &ds) != TC_OK ||
        p->g->ops->alloc(p->g, (size_t)rows * 4, &dsc) != TC_OK ||
        p->g->ops->alloc(p->g, n, &dq) != TC_OK) {
        result(0, "allocations for %lld x %lld", (long long)rows, (long long)cols);
        goto out;
    }
    p->g->ops->upload(p->g, ds, s, (size_t)cols * 8);

    /* absmax_rows / absmax_cols on the unsmoothed weights */
    {
        float *rg = malloc((size_t)rows * 4), *rc = malloc((size_t)rows * 4);
        float *cg = calloc((size_t)cols, 4), *cc = calloc((size_t)cols, 4);
        void *drow = NULL, *dcol = NULL;
        p->g->ops->alloc(p->g, (size_t)rows * 4, &drow);
        p->g->ops->alloc(p->g, (size_t)cols * 4, &dcol);
        p->g->ops->upload(p->g, dcol, cg, (size_t)cols * 4);
        int ok = p->g->ops->absmax_rows(p->g, drow, dg, TC_DT_F16, rows, cols) == TC_OK &&
                 p->c->ops->absmax_rows(p->c, rc, dc, TC_DT_F16, rows, cols) == TC_OK &&
                 p->g->ops->download(p->g, rg, drow, (size_t)rows * 4) == TC_OK;
        result(ok && !memcmp(rg, rc, (size_t)rows * 4), "absmax_rows %lld x %lld", (long long)rows,
               (long long)cols);
        ok = p->g->ops->absmax_cols(p->g, dcol, dg, false, NULL, TC_DT_F16, rows, cols, 0, cols) ==
                 TC_OK &&
             p->c->ops->absmax_cols(p->c, cc, dc, true, NULL, TC_DT_F16, rows, cols, 0, cols) ==
                 TC_OK &&
             p->g->ops->download(p->g, cg, dcol, (size_t)cols * 4) == TC_OK;
        result(ok && !memcmp(cg, cc, (size_t)cols * 4), "absmax_cols of weights %lld x %lld",
               (long long)rows, (long long)cols);
        p->g->ops->release(p->g, drow);
        p->g->ops->release(p->g, dcol);
        free(rg), free(rc), free(cg), free(cc);
    }

    /* smooth_cols, multiply (weights) and divide (norm rows) */
    for (int divide = 0; divide < 2; divide++) {
        void *g2 = NULL, *c2 = NULL;
        weights(p, h, n, &g2, &c2);
        int ok = p->g->ops->smooth_cols(p->g, g2, TC_DT_F16, rows, cols, ds, divide) == TC_OK &&
                 p->c->ops->smooth_cols(p->c, c2, TC_DT_F16, rows, cols, s, divide) == TC_OK &&
                 p->g->ops->sync(p->g) == TC_OK;
        size_t bad = ok ? diff_weights(p, g2, c2, n) : n;
        result(ok && bad == 0, "smooth_cols %s %lld x %lld (%zu differ)", divide ? "divide" : "multiply",
               (long long)rows, (long long)cols, bad);
        p->g->ops->release(p->g, g2);
        p->c->ops->release(p->c, c2);
    }

    /* quantize_i8, three modes; scales put many values on .5 ties */
    memcpy(cpu, dc, n * 4);
    for (int m = 0; m < 9; m++) {
        const int mode = m % 3;
        const tc_dtype qdt = m < 3 ? TC_DT_F16 : m < 6 ? TC_DT_BF16 : TC_DT_F32;
        for (int64_t r = 0; r < rows; r++)
            sc[r] = r % 3 == 0 ? 2.0f : r % 3 == 1 ? (float)(urand() * 4000.0 + 1.0) : 0.5f;
        p->g->ops->upload(p->g, dsc, sc, (size_t)rows * 4);
        int ok = p->g->ops->quantize_i8(p->g, dq, dg, TC_DT_F16, qdt, rows, cols, dsc, mode) == TC_OK &&
                 p->c->ops->quantize_i8(p->c, qc, dc, TC_DT_F16, qdt, rows, cols, sc, mode) == TC_OK &&
                 p->g->ops->download(p->g, qg, dq, n) == TC_OK;
        size_t bad = 0;
        for (size_t i = 0; ok && i < n; i++)
            bad += qg[i] != qc[i];
        result(ok && bad == 0, "quantize_i8 mode %d in %s %lld x %lld (%zu differ)", mode,
               tc_dtype_name(qdt), (long long)rows, (long long)cols, bad);
    }
out:
    if (dg) p->g->ops->release(p->g, dg);
    if (dc) p->c->ops->release(p->c, dc);
    if (ds) p->g->ops->release(p->g, ds);
    if (dsc) p->g->ops->release(p->g, dsc);
    if (dq) p->g->ops->release(p->g, dq);
    free(h), free(s), free(sc), free(cpu), free(qg), free(qc);
}

/* Activation maxima of an activation [T, ld] for F16 / BF16 / F32 inputs,
 * a window of columns, with and without a bias, one NaN. */
static void case_activations(pair *p, tc_dtype dt, int64_t T, int64_t ld, int64_t c0,
                             int64_t cols, int with_bias, int with_nan)
{
    const size_t es = tc_dtype_bits(dt) / 8, n = (size_t)(T * ld);
    float *x32 = malloc(n * 4);
    void *xh = malloc(n * es), *bh = malloc((size_t)cols * 2);
    for (size_t i = 0; i < n; i++)
        x32[i] = (float)((urand() - 0.5) * 20.0);
    if (with_nan)
        x32[(size_t)(T / 2) * (size_t)ld + (size_t)c0 + (size_t)(cols / 2)] = NAN;
    tc_convert(xh, dt, x32, TC_DT_F32, n);
    for (int64_t c = 0; c < cols; c++)
        ((uint16_t *)bh)[c] = dt == TC_DT_BF16 ? tc_f32_to_bf16((float)(urand() - 0.5))
                                               : tc_f32_to_f16((float)(urand() - 0.5));
    const tc_dtype bdt = dt == TC_DT_BF16 ? TC_DT_BF16 : TC_DT_F16;
    float *ag = calloc((size_t)cols, 4), *ac = calloc((size_t)cols, 4);
    void *dx = NULL, *db = NULL, *dacc = NULL;
    p->g->ops->alloc(p->g, n * es, &dx);
    p->g->ops->alloc(p->g, (size_t)cols * 2, &db);
    p->g->ops->alloc(p->g, (size_t)cols * 4, &dacc);
    p->g->ops->upload(p->g, dx, xh, n * es);
    p->g->ops->upload(p->g, db, bh, (size_t)cols * 2);
    p->g->ops->upload(p->g, dacc, ag, (size_t)cols * 4);
    const bool f32 = dt == TC_DT_F32;
    int ok = p->g->ops->absmax_cols(p->g, dacc, dx, f32, with_bias ? db : NULL, bdt, T, ld, c0,
                                    cols) == TC_OK &&
             p->c->ops->absmax_cols(p->c, ac, xh, f32, with_bias ? bh : NULL, bdt, T, ld, c0,
                                    cols) == TC_OK &&
             p->g->ops->download(p->g, ag, dacc, (size_t)cols * 4) == TC_OK;
    size_t bad = 0, nans = 0;
    for (int64_t c = 0; ok && c < cols; c++) {
        uint32_t a, b;
        memcpy(&a, &ag[c], 4);
        memcpy(&b, &ac[c], 4);
        bad += a != b;
        nans += isnan(ag[c]);
    }
    result(ok && bad == 0 && nans == (size_t)(with_nan ? 1 : 0),
           "absmax_cols %s T=%lld ld=%lld cols [%lld, +%lld)%s%s (%zu differ)", tc_dtype_name(dt),
           (long long)T, (long long)ld, (long long)c0, (long long)cols, with_bias ? " bias" : "",
           with_nan ? " NaN" : "", bad);
    p->g->ops->release(p->g, dx);
    p->g->ops->release(p->g, db);
    p->g->ops->release(p->g, dacc);
    free(x32), free(xh), free(bh), free(ag), free(ac);
}

int main(void)
{
    tc_log_init(0, 1, NULL);
    if (!have_gpu())
        return GPU_SKIP;
    rng_seed(0x9e3779b97f4a7c15ull);
    tc_gpu_info gpu;
    if (tc_gpu_probe(0, 1, "localhost", &gpu) != TC_OK)
        return 1;
    fwd_attn a = { 1, 1, 8, 1.0f };
    pair p;
    if (tc_fwd_gpu_backend(&gpu, 16, 16, &a, &p.g) != TC_OK ||
        tc_fwd_cpu_backend(1, 16, 16, &a, &p.c) != TC_OK)
        return 1;
    const int64_t shapes[][2] = { { 1, 128 }, { 7, 33 }, { 384, 128 }, { 1000, 4096 },
                                  { 4096, 1024 } };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        case_shape(&p, shapes[i][0], shapes[i][1]);
    const tc_dtype dts[] = { TC_DT_F16, TC_DT_BF16, TC_DT_F32 };
    for (int d = 0; d < 3; d++) {
        case_activations(&p, dts[d], 100, 384, 0, 384, 0, 0);
        case_activations(&p, dts[d], 1000, 384, 128, 64, 1, 0);
        case_activations(&p, dts[d], 4096, 512, 7, 300, 0, 1);
    }
    result(cuda_ok(cudaDeviceSynchronize(), "final synchronize"), "no pending CUDA error");
    p.g->ops->destroy(p.g);
    p.c->ops->destroy(p.c);
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
}
