/* fwd_pair.h: what the forward-pass GPU tests share (test_fwd_cuda.c,
 * test_calib_fused_cuda.c): a GPU and a CPU backend side by side, the same
 * bytes put on both, their results compared in units in the last place or
 * byte for byte, and a batch of sequences with its metadata on both. Plain
 * C; include after gpu_check.h, once per program. */
#ifndef TRTCONV_TESTS_FWD_PAIR_H
#define TRTCONV_TESTS_FWD_PAIR_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "trtconv/core/dtype.h"
#include "trtconv/core/log.h"
#include "trtconv/fwd/backend.h"
#include "trtconv/mpi/gpu.h"

typedef struct pair {
    fwd_backend *g, *c;
} pair;

/* n values of dtype dt (2 bytes), spread over [-scale, scale], with zeros
 * and negative zeros. */
static inline uint16_t *fill(tc_dtype dt, size_t n, double scale)
{
    uint16_t *h = malloc(n * 2);
    for (size_t i = 0; i < n; i++) {
        float v = (float)((urand() * 2.0 - 1.0) * scale);
        if (i % 101 == 0)
            v = i % 202 ? -0.0f : 0.0f;
        h[i] = dt == TC_DT_F16 ? tc_f32_to_f16(v) : tc_f32_to_bf16(v);
    }
    return h;
}

static inline float to_f32(tc_dtype dt, uint16_t h)
{
    return dt == TC_DT_F16 ? tc_f16_to_f32(h) : tc_bf16_to_f32(h);
}

/* The same bytes on both backends: *g on the GPU, *c on the CPU. `pad`
 * extra leading bytes let a caller pass a misaligned pointer. */
typedef struct dual {
    void *g, *c;
} dual;

static inline int put(pair *p, const void *host, size_t bytes, dual *d)
{
    d->g = d->c = NULL;
    if (p->g->ops->alloc(p->g, bytes + 16, &d->g) != TC_OK ||
        p->c->ops->alloc(p->c, bytes + 16, &d->c) != TC_OK)
        return 0;
    if (host)
        return p->g->ops->upload(p->g, d->g, host, bytes) == TC_OK &&
               p->c->ops->upload(p->c, d->c, host, bytes) == TC_OK;
    return 1;
}

static inline void drop(pair *p, dual *d)
{
    if (d->g)
        p->g->ops->release(p->g, d->g);
    if (d->c)
        p->c->ops->release(p->c, d->c);
}

/* Worst distance in units in the last place between two 2-byte arrays
 * (the bit patterns as ordered integers), -1 if NaN-ness differs. */
static inline long worst_ulps(const uint16_t *a, const uint16_t *b, size_t n, tc_dtype dt)
{
    long worst = 0;
    for (size_t i = 0; i < n; i++) {
        const float x = to_f32(dt, a[i]), y = to_f32(dt, b[i]);
        if (isnan(x) || isnan(y)) {
            if (isnan(x) != isnan(y))
                return -1;
            continue;
        }
        const long ox = a[i] & 0x8000 ? -(long)(a[i] & 0x7fff) : (long)a[i];
        const long oy = b[i] & 0x8000 ? -(long)(b[i] & 0x7fff) : (long)b[i];
        const long dd = labs(ox - oy);
        worst = dd > worst ? dd : worst;
    }
    return worst;
}

/* Download both results (n 2-byte values at byte offset off) and compare. */
static inline long compare(pair *p, const dual *d, size_t off, size_t n, tc_dtype dt)
{
    uint16_t *a = malloc(n * 2), *b = malloc(n * 2);
    long w = -1;
    if (p->g->ops->sync(p->g) == TC_OK &&
        p->g->ops->download(p->g, a, (char *)d->g + off, n * 2) == TC_OK &&
        p->c->ops->download(p->c, b, (char *)d->c + off, n * 2) == TC_OK)
        w = worst_ulps(a, b, n, dt);
    free(a);
    free(b);
    return w;
}

static inline const char *dtn(tc_dtype dt) { return tc_dtype_name(dt); }

static inline void *gput(pair *p, const void *host, size_t bytes)
{
    void *d = NULL;
    if (p->g->ops->alloc(p->g, bytes + 16, &d) != TC_OK)
        return NULL;
    if (host && p->g->ops->upload(p->g, d, host, bytes) != TC_OK) {
        p->g->ops->release(p->g, d);
        return NULL;
    }
    return d;
}

/* Both GPU buffers of `bytes` equal after the queued work. */
static inline int gsame(pair *p, const void *a, const void *b, size_t bytes)
{
    char *x = malloc(bytes), *y = malloc(bytes);
    int same = x && y && p->g->ops->sync(p->g) == TC_OK &&
               p->g->ops->download(p->g, x, a, bytes) == TC_OK &&
               p->g->ops->download(p->g, y, b, bytes) == TC_OK && !memcmp(x, y, bytes);
    free(x);
    free(y);
    return same;
}

/* A batch of sequences of the given lengths, metadata on both backends. */
typedef struct batch2 {
    fwd_batch g, c;
    dual ids, pos, start, len, cos, sin;
    int64_t *offsets;
} batch2;

static inline int make_batch(pair *p, const int64_t *lens, int n_seqs, int64_t d, tc_dtype dt,
                      batch2 *b)
{
    memset(b, 0, sizeof *b);
    int64_t T = 0, max_len = 0;
    for (int s = 0; s < n_seqs; s++) {
        T += lens[s];
        max_len = lens[s] > max_len ? lens[s] : max_len;
    }
    const int64_t half = d / 2;
    int32_t *ids = calloc((size_t)T, 4), *pos = malloc((size_t)T * 4);
    int32_t *start = malloc((size_t)T * 4), *len = malloc((size_t)T * 4);
    float *cs = malloc((size_t)(max_len * half) * 4), *sn = malloc((size_t)(max_len * half) * 4);
    b->offsets = malloc((size_t)(n_seqs + 1) * sizeof(int64_t));
    int64_t t = 0;
    for (int s = 0; s < n_seqs; s++) {
        b->offsets[s] = t;
        for (int64_t i = 0; i < lens[s]; i++, t++) {
            pos[t] = (int32_t)i;
            start[t] = (int32_t)b->offsets[s];
            len[t] = (int32_t)lens[s];
        }
    }
    b->offsets[n_seqs] = t;
    for (int64_t q = 0; q < max_len; q++)
        for (int64_t e = 0; e < half; e++) {
            const double f = (double)q * pow(10000.0, -2.0 * (double)e / (double)d);
            cs[q * half + e] = tc_round_to_dtype(dt, (float)cos(f));
            sn[q * half + e] = tc_round_to_dtype(dt, (float)sin(f));
        }
    const size_t tb = (size_t)T * 4, rb = (size_t)(max_len * half) * 4;
    const int ok = put(p, ids, tb, &b->ids) && put(p, pos, tb, &b->pos) &&
                   put(p, start, tb, &b->start) && put(p, len, tb, &b->len) &&
                   put(p, cs, rb, &b->cos) && put(p, sn, rb, &b->sin);
    free(ids), free(pos), free(start), free(len), free(cs), free(sn);
    fwd_batch common = { .n_tokens = T, .n_seqs = n_seqs, .max_len = max_len,
                         .h_offsets = b->offsets };
    b->g = b->c = common;
    b->g.ids = b->ids.g, b->g.pos = b->pos.g, b->g.seq_start = b->start.g;
    b->g.seq_len = b->len.g, b->g.cos = b->cos.g, b->g.sin = b->sin.g;
    b->c.ids = b->ids.c, b->c.pos = b->pos.c, b->c.seq_start = b->start.c;
    b->c.seq_len = b->len.c, b->c.cos = b->cos.c, b->c.sin = b->sin.c;
    return ok;
}

static inline void free_batch(pair *p, batch2 *b)
{
    drop(p, &b->ids), drop(p, &b->pos), drop(p, &b->start);
    drop(p, &b->len), drop(p, &b->cos), drop(p, &b->sin);
    free(b->offsets);
}

/* rmsnorm on both backends: within rmsnorm's two units (test_fwd_cuda.c
 * says why). */
static inline void case_rmsnorm(pair *p, tc_dtype dt, int64_t T, int64_t H)
{
    const size_t n = (size_t)(T * H);
    uint16_t *x = fill(dt, n, 30.0), *w = fill(dt, (size_t)H, 2.0);
    dual dx, dout, dw = { NULL, NULL };
    int ok = put(p, x, n * 2, &dx) && put(p, NULL, n * 2, &dout) &&
             p->g->ops->alloc(p->g, (size_t)H * p->g->ops->weight_elem_bytes(dt), &dw.g) == TC_OK &&
             p->c->ops->alloc(p->c, (size_t)H * p->c->ops->weight_elem_bytes(dt), &dw.c) == TC_OK &&
             p->g->ops->upload_weight(p->g, dw.g, 0, w, dt, (size_t)H) == TC_OK &&
             p->c->ops->upload_weight(p->c, dw.c, 0, w, dt, (size_t)H) == TC_OK &&
             p->g->ops->rmsnorm(p->g, dout.g, dx.g, dw.g, dt, T, H, 1e-5f) == TC_OK &&
             p->c->ops->rmsnorm(p->c, dout.c, dx.c, dw.c, dt, T, H, 1e-5f) == TC_OK;
    const long wu = ok ? compare(p, &dout, 0, n, dt) : -1;
    result(wu >= 0 && wu <= 2, "rmsnorm %s %lld x %lld: within 2 ulp (worst %ld)", dtn(dt),
           (long long)T, (long long)H, wu);
    drop(p, &dx);
    drop(p, &dout);
    drop(p, &dw);
    free(x);
    free(w);
}

/* The programs' start: the log, the skip without a device, the seed, a GPU
 * backend beside a CPU one (p) and a second GPU backend on the cuBLAS
 * attention path (TRTCONV_ATTENTION=cublas, materialised scores) sharing
 * p's CPU backend (pb); with fused_maxima, both GPU backends take the
 * attention block's maxima in the kernels of calib_fused.cu. Returns 0 when both pairs are ready, GPU_SKIP
 * without a device, 1 on a failure: main returns anything else at once. */
static inline int open_pairs(uint64_t seed, bool fused_maxima, pair *p, pair *pb)
{
    /* fused_maxima: both GPU backends with TRTCONV_CALIB_MAXIMA=fused. */
    if (fused_maxima ? setenv("TRTCONV_CALIB_MAXIMA", "fused", 1)
                     : unsetenv("TRTCONV_CALIB_MAXIMA"))
        return 1;
    tc_log_init(0, 1, NULL);
    if (!have_gpu())
        return GPU_SKIP;
    rng_seed(seed);
    tc_gpu_info gpu;
    const fwd_attn a = { 8, 2, 128, 1.0f }; /* scratch sizing only */
    if (tc_gpu_probe(0, 1, "localhost", &gpu) != TC_OK ||
        tc_fwd_gpu_backend(&gpu, 1024, 320, &a, &p->g) != TC_OK ||
        tc_fwd_cpu_backend(2, 1024, 320, &a, &p->c) != TC_OK ||
        setenv("TRTCONV_ATTENTION", "cublas", 1) ||
        tc_fwd_gpu_backend(&gpu, 1024, 320, &a, &pb->g) != TC_OK)
        return 1;
    unsetenv("TRTCONV_ATTENTION");
    pb->c = p->c;
    return 0;
}

/* The programs' end: no CUDA error pending, the backends destroyed, the
 * summary line; main's exit status. */
static inline int close_pairs(pair *p, pair *pb)
{
    result(cuda_ok(cudaDeviceSynchronize(), "final synchronize"), "no pending CUDA error");
    p->g->ops->destroy(p->g);
    pb->g->ops->destroy(pb->g);
    p->c->ops->destroy(p->c);
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
}

#endif
