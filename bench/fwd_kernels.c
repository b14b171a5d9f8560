/* fwd_kernels.c: the calibration's non-GEMM kernels (kernels/fwd.cu,
 * calib_max.cu, attention.cu) timed alone at one micro-batch of the
 * Llama-3-8B shape (8 sequences of 512 tokens), against a device-to-device
 * copy in the same run: the memory roofline they are measured by (issue 23
 * item 3; the classes of TRTCONV_FWD_PROFILE=events without the GEMMs).
 * A measuring tool, built with CUDA (bench_fwd_kernels); no GPU: exits 77.
 *
 *   build-gpu/bench_fwd_kernels [iterations]     # default 50
 *
 * Each line: the kernel, its time per call (CUDA events around
 * `iterations` calls after 3 warm-up calls), the bytes it must read and
 * write once, and that traffic's rate as a share of the copy's. Attention
 * is given in TFLOP/s of its causal work (Q K^T and P V once). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "trtconv/core/dtype.h"
#include "trtconv/kernels/fwd.h"

enum { SEQS = 8, LEN = 512, T = SEQS * LEN, H = 4096, I = 14336, NH = 32, NKV = 8, D = 128 };
#define QKV ((NH + 2 * NKV) * D)

static void check(cudaError_t e, const char *what)
{
    if (e == cudaSuccess)
        return;
    fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
    exit(1);
}

static void ok(tc_status st, const char *what)
{
    if (st != TC_OK) {
        fprintf(stderr, "%s failed (status %d)\n", what, (int)st);
        exit(1);
    }
}

/* A device buffer of n 2-byte values in [-2, 2] (float16 bits), or of n
 * floats when f32. */
static void *dev_fill(size_t n, int f32)
{
    const size_t es = f32 ? 4 : 2;
    void *h = malloc(n * es), *d = NULL;
    if (!h)
        exit(1);
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        const float v = (float)((double)(s >> 11) / 9007199254740992.0 * 4.0 - 2.0);
        if (f32)
            ((float *)h)[i] = v;
        else
            ((uint16_t *)h)[i] = tc_f32_to_f16(v);
    }
    check(cudaMalloc(&d, n * es), "cudaMalloc");
    check(cudaMemcpy(d, h, n * es, cudaMemcpyHostToDevice), "upload");
    free(h);
    return d;
}

typedef struct timer {
    cudaEvent_t a, b;
    cudaStream_t s;
    int iters;
    double copy_gbs; /* the copy's rate, once measured */
} timer;

static void report(timer *t, const char *name, double ms, double bytes)
{
    const double gbs = bytes / (ms * 1e-3) / 1e9;
    if (t->copy_gbs > 0.0)
        printf("%-34s %8.1f us  %8.1f MB  %7.0f GB/s  %5.1f%% of the copy\n", name, ms * 1e3,
               bytes / 1e6, gbs, 100.0 * gbs / t->copy_gbs);
    else
        printf("%-34s %8.1f us  %8.1f MB  %7.0f GB/s\n", name, ms * 1e3, bytes / 1e6, gbs);
}

/* Time `call` (a statement using the stream t->s) over t->iters calls. */
#define TIME(t, ms_out, call)                                          \
    do {                                                               \
        for (int w_ = 0; w_ < 3; w_++)                                 \
            call;                                                      \
        check(cudaEventRecord((t)->a, (t)->s), "event");               \
        for (int i_ = 0; i_ < (t)->iters; i_++)                        \
            call;                                                      \
        check(cudaEventRecord((t)->b, (t)->s), "event");               \
        check(cudaEventSynchronize((t)->b), "event sync");             \
        float e_ = 0.0f;                                               \
        check(cudaEventElapsedTime(&e_, (t)->a, (t)->b), "elapsed");   \
        ms_out = e_ / (t)->iters;                                      \
    } while (0)

int main(int argc, char **argv)
{
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    timer t = { .iters = argc > 1 ? atoi(argv[1]) : 50 };
    if (t.iters < 1)
        t.iters = 1;
    struct cudaDeviceProp prop;
    check(cudaGetDeviceProperties(&prop, 0), "properties");
    printf("%s; one micro-batch of the Llama-3-8B shape: %d sequences x %d tokens, hidden %d, "
           "intermediate %d, %d/%d heads of %d; float16; %d calls each\n",
           prop.name, SEQS, LEN, H, I, NH, NKV, D, t.iters);
    check(cudaStreamCreateWithFlags(&t.s, cudaStreamNonBlocking), "stream");
    check(cudaEventCreate(&t.a), "event");
    check(cudaEventCreate(&t.b), "event");
    void *s = t.s;
    const tc_dtype dt = TC_DT_F16;
    double ms;

    /* The roofline: a copy of the largest buffer the kernels touch. */
    const size_t big = (size_t)T * I * 2;
    void *c0 = dev_fill(big / 2, 0), *c1 = dev_fill(big / 2, 0);
    TIME(&t, ms, check(cudaMemcpyAsync(c1, c0, big, cudaMemcpyDeviceToDevice, t.s), "copy"));
    report(&t, "device-to-device copy (read+write)", ms, 2.0 * (double)big);
    t.copy_gbs = 2.0 * (double)big / (ms * 1e-3) / 1e9;

    void *x = dev_fill((size_t)T * H, 0), *xo = dev_fill((size_t)T * H, 0);
    void *w = dev_fill(H, 0);
    TIME(&t, ms, ok(tc_fwd_rmsnorm_cuda(xo, x, w, dt, T, H, 1e-5f, s), "rmsnorm"));
    report(&t, "rmsnorm", ms, 2.0 * T * H * 2);

    float *acc = dev_fill(I > QKV ? I : QKV, 1), *acc2 = dev_fill(I, 1), *acc3 = dev_fill(I, 1);
    TIME(&t, ms, ok(tc_fwd_absmax_cols_cuda(acc, x, 0, NULL, dt, T, H, 0, H, s), "absmax"));
    report(&t, "column maxima [T, H]", ms, (double)T * H * 2);
    /* Column maxima: rows per block against rows loaded ahead. */
    const int64_t max_slabs[] = { 16, 32, 64, 128 };
    for (size_t i = 0; i < sizeof max_slabs / sizeof max_slabs[0]; i++)
        for (int ahead = 1; ahead <= 8; ahead *= 2) {
            char name[64];
            TIME(&t, ms, ok(tc_fwd_absmax_cols_rows_cuda(acc, x, 0, NULL, dt, T, H, 0, H,
                                                         max_slabs[i], ahead, 1, s), "absmax"));
            snprintf(name, sizeof name, "column maxima [T, H], %lld rows, %d ahead",
                     (long long)max_slabs[i], ahead);
            report(&t, name, ms, (double)T * H * 2);
        }
    /* Row warps: 2-8 slabs per block meeting in shared memory, one atomic
     * per column and block. */
    const int64_t rw_slabs[] = { 8, 16, 32 };
    for (size_t i = 0; i < sizeof rw_slabs / sizeof rw_slabs[0]; i++)
        for (int rw = 2; rw <= 8; rw *= 2) {
            char name[64];
            TIME(&t, ms, ok(tc_fwd_absmax_cols_rows_cuda(acc, x, 0, NULL, dt, T, H, 0, H,
                                                         rw_slabs[i], 4, rw, s), "absmax"));
            snprintf(name, sizeof name, "column maxima [T, H], %lld rows x %d warps, 4 ahead",
                     (long long)rw_slabs[i], rw);
            report(&t, name, ms, (double)T * H * 2);
        }
    TIME(&t, ms, ok(tc_fwd_rmsnorm_slab_cuda(xo, x, w, dt, T, H, 1e-5f, NULL, s), "rmsnorm"));
    report(&t, "rmsnorm (slab kernel)", ms, 2.0 * T * H * 2);
    TIME(&t, ms, ok(tc_fwd_rmsnorm_max_cuda(xo, x, w, dt, T, H, 1e-5f, acc, s), "rmsnorm"));
    report(&t, "rmsnorm with maxima (slab)", ms, 2.0 * T * H * 2);

    /* rope_split: the positions, sequence starts and lengths of 8 x 512. */
    int32_t *hp = malloc(3 * T * sizeof *hp);
    float *hcs = malloc((size_t)LEN * D / 2 * sizeof *hcs);
    if (!hp || !hcs)
        return 1;
    for (int i = 0; i < T; i++) {
        hp[i] = i % LEN;
        hp[T + i] = i / LEN * LEN;
        hp[2 * T + i] = LEN;
    }
    for (int p = 0; p < LEN * D / 2; p++)
        hcs[p] = (float)cos(0.001 * p);
    int32_t *meta = NULL;
    float *cosv = NULL, *sinv = NULL;
    check(cudaMalloc((void **)&meta, 3 * T * sizeof *meta), "cudaMalloc");
    check(cudaMalloc((void **)&cosv, (size_t)LEN * D / 2 * sizeof *cosv), "cudaMalloc");
    check(cudaMalloc((void **)&sinv, (size_t)LEN * D / 2 * sizeof *sinv), "cudaMalloc");
    check(cudaMemcpy(meta, hp, 3 * T * sizeof *meta, cudaMemcpyHostToDevice), "upload");
    check(cudaMemcpy(cosv, hcs, (size_t)LEN * D / 2 * sizeof *cosv, cudaMemcpyHostToDevice), "up");
    check(cudaMemcpy(sinv, hcs, (size_t)LEN * D / 2 * sizeof *sinv, cudaMemcpyHostToDevice), "up");
    void *qkv = dev_fill((size_t)T * QKV, 0), *q = dev_fill((size_t)T * NH * D, 0);
    void *k = dev_fill((size_t)T * NKV * D, 0), *v = dev_fill((size_t)T * NKV * D, 0);
    TIME(&t, ms, ok(tc_fwd_rope_split_cuda(q, k, v, qkv, dt, NH, NKV, D, T, meta, meta + T,
                                           meta + 2 * T, cosv, sinv, s), "rope_split"));
    report(&t, "rope + split", ms, 2.0 * T * QKV * 2);
    const int rope_threads[] = { 128, 256, 512 };
    for (size_t i = 0; i < sizeof rope_threads / sizeof rope_threads[0]; i++) {
        char name[64];
        TIME(&t, ms, ok(tc_fwd_rope_split_threads_cuda(q, k, v, qkv, dt, NH, NKV, D, T, meta,
                                                       meta + T, meta + 2 * T, cosv, sinv,
                                                       rope_threads[i], s), "rope_split"));
        snprintf(name, sizeof name, "rope + split, %d threads", rope_threads[i]);
        report(&t, name, ms, 2.0 * T * QKV * 2);
    }
    TIME(&t, ms, ok(tc_fwd_absmax_cols_cuda(acc, qkv, 0, NULL, dt, T, QKV, 0, QKV, s), "absmax"));
    report(&t, "column maxima [T, q+k+v]", ms, (double)T * QKV * 2);
    /* The engine's q, k and v maxima: three launches before, one now. */
    TIME(&t, ms, (ok(tc_fwd_absmax_cols_cuda(acc, qkv, 0, NULL, dt, T, QKV, 0, NH * D, s), "absmax"),
                  ok(tc_fwd_absmax_cols_cuda(acc2, qkv, 0, NULL, dt, T, QKV, NH * D, NKV * D, s),
                     "absmax"),
                  ok(tc_fwd_absmax_cols_cuda(acc3, qkv, 0, NULL, dt, T, QKV, (NH + NKV) * D,
                                             NKV * D, s), "absmax")));
    report(&t, "q, k, v maxima, three launches", ms, (double)T * QKV * 2);
    TIME(&t, ms, ok(tc_fwd_absmax_cols_qkv_cuda(acc, acc2, acc3, qkv, dt, T, NH * D, NKV * D, s),
                    "absmax"));
    report(&t, "q, k, v maxima, one launch", ms, (double)T * QKV * 2);
    TIME(&t, ms, ok(tc_fwd_rope_split_max_cuda(q, k, v, qkv, dt, NH, NKV, D, T, meta, meta + T,
                                               meta + 2 * T, cosv, sinv, NULL, NULL, NULL, s),
                    "rope_split"));
    report(&t, "rope + split (slab kernel)", ms, 2.0 * T * QKV * 2);
    TIME(&t, ms, ok(tc_fwd_rope_split_max_cuda(q, k, v, qkv, dt, NH, NKV, D, T, meta, meta + T,
                                               meta + 2 * T, cosv, sinv, acc, acc2, acc3, s),
                    "rope_split"));
    report(&t, "rope + split with maxima (slab)", ms, 2.0 * T * QKV * 2);

    void *o = dev_fill((size_t)T * NH * D, 0);
    const float scale = (float)(1.0 / sqrt((double)D));
    TIME(&t, ms, ok(tc_fwd_attention_fused_cuda(o, q, k, v, dt, NH, NKV, D, LEN, SEQS, scale,
                                                NULL, s), "attention"));
    const double flop = 4.0 * SEQS * NH * ((double)LEN * (LEN + 1) / 2) * D;
    report(&t, "attention (fused; bytes of q k v o)", ms, (double)T * (NH + 2 * NKV + NH) * D * 2);
    printf("%-34s %8.1f TFLOP/s of causal work (Q K^T and P V once)\n", "", flop / (ms * 1e-3) / 1e12);
    TIME(&t, ms, ok(tc_fwd_attention_fused_cuda(o, q, k, v, dt, NH, NKV, D, LEN, SEQS, scale,
                                                acc, s), "attention"));
    report(&t, "attention with maxima of o", ms, (double)T * (NH + 2 * NKV + NH) * D * 2);
    TIME(&t, ms, ok(tc_fwd_absmax_cols_cuda(acc, o, 0, NULL, dt, T, NH * D, 0, NH * D, s), "absmax"));
    report(&t, "column maxima [T, nh*d] (o)", ms, (double)T * NH * D * 2);

    float *p32 = dev_fill((size_t)T * H, 1);
    TIME(&t, ms, ok(tc_fwd_residual_add_max_cuda(x, p32, NULL, dt, T, H, acc, s), "residual"));
    report(&t, "residual with maxima", ms, (double)T * H * (4 + 2 + 2));

    void *g = dev_fill((size_t)T * I, 0), *u = dev_fill((size_t)T * I, 0);
    void *a = dev_fill((size_t)T * I, 0);
    TIME(&t, ms, ok(tc_fwd_silu_mul_max_cuda(a, g, u, dt, T, I, acc, acc2, acc3, s), "silu"));
    report(&t, "silu*mul with 3 maxima", ms, (double)T * I * 6);
    TIME(&t, ms, ok(tc_fwd_silu_mul_cuda(a, g, u, dt, (size_t)T * I, s), "silu"));
    report(&t, "silu*mul alone", ms, (double)T * I * 6);
    /* The slab height (fewer atomics against fewer blocks in flight) and the
     * read-ahead (two rows of loads in flight per thread, more registers). */
    const int64_t slabs[] = { 8, 16, 32, 64, 128 };
    for (int ahead = 0; ahead < 2; ahead++)
        for (size_t i = 0; i < sizeof slabs / sizeof slabs[0]; i++) {
            char name[64];
            TIME(&t, ms, ok(tc_fwd_silu_mul_max_rows_cuda(a, g, u, dt, T, I, acc, acc2, acc3,
                                                          slabs[i], ahead, 1, s), "silu"));
            snprintf(name, sizeof name, "silu*mul with maxima, %lld rows%s", (long long)slabs[i],
                     ahead ? ", ahead" : "");
            report(&t, name, ms, (double)T * I * 6);
            TIME(&t, ms, ok(tc_fwd_residual_add_max_rows_cuda(x, p32, NULL, dt, T, H, acc,
                                                              slabs[i], ahead, 1, s), "residual"));
            snprintf(name, sizeof name, "residual with maxima, %lld rows%s", (long long)slabs[i],
                     ahead ? ", ahead" : "");
            report(&t, name, ms, (double)T * H * (4 + 2 + 2));
        }
    /* The same with 2-8 slabs per block (row warps), read-ahead on: the
     * atomics divided by the warps at the same rows per thread. */
    for (size_t i = 0; i < sizeof rw_slabs / sizeof rw_slabs[0]; i++)
        for (int rw = 2; rw <= 8; rw *= 2) {
            char name[80];
            TIME(&t, ms, ok(tc_fwd_silu_mul_max_rows_cuda(a, g, u, dt, T, I, acc, acc2, acc3,
                                                          rw_slabs[i], 1, rw, s), "silu"));
            snprintf(name, sizeof name, "silu*mul with maxima, %lld rows x %d warps, ahead",
                     (long long)rw_slabs[i], rw);
            report(&t, name, ms, (double)T * I * 6);
            TIME(&t, ms, ok(tc_fwd_residual_add_max_rows_cuda(x, p32, NULL, dt, T, H, acc,
                                                              rw_slabs[i], 1, rw, s), "residual"));
            snprintf(name, sizeof name, "residual with maxima, %lld rows x %d warps, ahead",
                     (long long)rw_slabs[i], rw);
            report(&t, name, ms, (double)T * H * (4 + 2 + 2));
        }
    TIME(&t, ms, ok(tc_fwd_residual_add_cuda(x, p32, NULL, dt, T, H, s), "residual"));
    report(&t, "residual alone", ms, (double)T * H * (4 + 2 + 2));
    return 0;
}
