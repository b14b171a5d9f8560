/* test_calib_fused_cuda.c: the calibration forms of rmsnorm, rope_split and
 * attention on the CUDA backend (kernels/calib_fused.cu, the maxima in
 * attention.cu's epilogue; backend.h rmsnorm_max, rope_split_max,
 * attention_max) against the same GPU's plain operation followed by
 * absmax_cols over the same values: outputs and maxima equal byte for
 * byte, on shapes that take the fused kernels (hidden 4096 and 8192, GQA
 * groups of 4 and 8, head_dim 128 and 64, sequences that end inside a
 * block) and on shapes and misaligned pointers that take the fallbacks.
 * The maxima start from earlier values (some larger than this batch's) and
 * one NaN input must reach its column; and the slab rmsnorm against the
 * CPU reference within rmsnorm's two units. silu_mul_max and
 * residual_add_max with each slab height, read-ahead and row-warp count
 * that bench_fwd_kernels sweeps against the engine's launch, byte for
 * byte; so are the column maxima's (case_launch_variants) and rope_split's
 * block sizes. The GPU backends run with
 * TRTCONV_CALIB_MAXIMA=fused (fwd_gpu.c: the default keeps separate
 * passes; the fused form gained nothing on an H100, performance.md).
 * absmax_cols_qkv (the q, k and v maxima in one launch) against three
 * absmax_cols, on the GPU and the CPU backend. Dtypes float16 and
 * bfloat16. Exits 77 without a GPU. Last line:
 * "N passed, M failed". */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "trtconv/fwd/backend.h"
#include "trtconv/core/dtype.h"
#include "trtconv/core/log.h"
#include "trtconv/kernels/fwd.h"
#include "trtconv/mpi/gpu.h"
#include "trtconv/core/log.h"
#include "gpu_check.h"
#include "fwd_pair.h"

/* n float32 maxima of earlier batches: zeros, and every third one large. */
static float *earlier(size_t n)
{
    float *a = malloc(n * 4);
    for (size_t i = 0; a && i < n; i++)
        a[i] = i % 3 ? 0.0f : 7.5f;
    return a;
}

static void release_all(pair *p, void **bufs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (bufs[i])
            p->g->ops->release(p->g, bufs[i]);
}

/* A NaN at (row, col) of a [rows, cols] 2-byte array. */
static void put_nan(tc_dtype dt, uint16_t *h, int64_t cols, int64_t row, int64_t col)
{
    h[row * cols + col] = dt == TC_DT_F16 ? 0x7e00 : 0x7fc0;
}

/* rmsnorm_max against rmsnorm + absmax_cols; mis > 0 misaligns the input
 * (the fallback). */
static void case_rmsnorm_max(pair *p, tc_dtype dt, int64_t T, int64_t H, size_t mis, int nan)
{
    const size_t n = (size_t)(T * H);
    uint16_t *x = fill(dt, n + 8, 30.0), *w = fill(dt, (size_t)H, 2.0);
    if (nan)
        put_nan(dt, x + mis, H, T / 2, H / 3);
    float *a0 = earlier((size_t)H);
    void *dx = gput(p, x, (n + 8) * 2), *dw = gput(p, w, (size_t)H * 2);
    void *o1 = gput(p, NULL, (n + 8) * 2), *o2 = gput(p, NULL, (n + 8) * 2);
    float *a1 = gput(p, a0, (size_t)H * 4), *a2 = gput(p, a0, (size_t)H * 4);
    const fwd_ops *o = p->g->ops;
    uint16_t *X = (uint16_t *)dx + mis;
    int ok = dx && dw && o1 && o2 && a1 && a2 &&
             o->rmsnorm_max(p->g, o1, X, dw, dt, T, H, 1e-5f, a1) == TC_OK &&
             o->rmsnorm(p->g, o2, X, dw, dt, T, H, 1e-5f) == TC_OK &&
             o->absmax_cols(p->g, a2, o2, false, NULL, dt, T, H, 0, H) == TC_OK;
    ok = ok && gsame(p, o1, o2, n * 2) && gsame(p, a1, a2, (size_t)H * 4);
    float *got = malloc((size_t)H * 4);
    size_t nans = 0;
    if (ok && o->download(p->g, got, a1, (size_t)H * 4) == TC_OK)
        for (int64_t c = 0; c < H; c++)
            nans += isnan(got[c]) != 0;
    /* A NaN input makes its row's sum NaN: every column of that row. */
    ok = ok && nans == (nan ? (size_t)H : 0);
    result(ok, "rmsnorm_max %s %lld x %lld%s%s: output and maxima those of rmsnorm + absmax_cols",
           dtn(dt), (long long)T, (long long)H, mis ? " misaligned" : "", nan ? " NaN" : "");
    void *bufs[] = { dx, dw, o1, o2, a1, a2 };
    release_all(p, bufs, sizeof bufs / sizeof bufs[0]);
    free(x), free(w), free(a0), free(got);
}

/* absmax_cols_qkv against three absmax_cols over qkv's q, k and v columns
 * on the GPU and on the CPU backend: the same maxima bit for bit, from
 * earlier values, a NaN in a v column reaching its column. */
static void case_absmax_qkv(pair *p, tc_dtype dt, int64_t T, int64_t nq, int64_t nkv)
{
    const int64_t width = nq + 2 * nkv;
    uint16_t *qkv = fill(dt, (size_t)(T * width), 4.0);
    put_nan(dt, qkv, width, T / 2, nq + nkv + 3);
    float *a0 = earlier((size_t)width);
    float *host[2][3] = { { NULL } };
    void *dqkv = gput(p, qkv, (size_t)(T * width) * 2);
    void *cqkv = NULL;
    float *acc[6], *cacc[3] = { NULL };
    const int64_t n[3] = { nq, nkv, nkv }, c0[3] = { 0, nq, nq + nkv };
    int ok = dqkv != NULL && p->c->ops->alloc(p->c, (size_t)(T * width) * 2, &cqkv) == TC_OK &&
             p->c->ops->upload(p->c, cqkv, qkv, (size_t)(T * width) * 2) == TC_OK;
    for (int i = 0; i < 6; i++)
        ok = (acc[i] = gput(p, a0, (size_t)n[i % 3] * 4)) != NULL && ok;
    for (int i = 0; i < 3; i++) {
        void *c = NULL;
        ok = ok && p->c->ops->alloc(p->c, (size_t)n[i] * 4, &c) == TC_OK &&
             p->c->ops->upload(p->c, c, a0, (size_t)n[i] * 4) == TC_OK;
        cacc[i] = c;
    }
    const fwd_ops *o = p->g->ops, *oc = p->c->ops;
    ok = ok && o->absmax_cols_qkv(p->g, acc[0], acc[1], acc[2], dqkv, dt, T, nq, nkv) == TC_OK;
    for (int i = 0; ok && i < 3; i++)
        ok = o->absmax_cols(p->g, acc[3 + i], dqkv, false, NULL, dt, T, width, c0[i], n[i]) ==
                 TC_OK &&
             oc->absmax_cols(p->c, cacc[i], cqkv, false, NULL, dt, T, width, c0[i], n[i]) ==
                 TC_OK;
    for (int i = 0; ok && i < 3; i++) {
        ok = gsame(p, acc[i], acc[3 + i], (size_t)n[i] * 4);
        host[0][i] = malloc((size_t)n[i] * 4), host[1][i] = malloc((size_t)n[i] * 4);
        ok = ok && host[0][i] && host[1][i] &&
             o->download(p->g, host[0][i], acc[i], (size_t)n[i] * 4) == TC_OK &&
             oc->download(p->c, host[1][i], cacc[i], (size_t)n[i] * 4) == TC_OK &&
             memcmp(host[0][i], host[1][i], (size_t)n[i] * 4) == 0;
    }
    ok = ok && isnan(host[0][2][3]) && !isnan(host[0][2][2]);
    result(ok, "absmax_cols_qkv %s %lld x (%lld + 2 x %lld): the maxima of three absmax_cols, "
           "GPU and CPU", dtn(dt), (long long)T, (long long)nq, (long long)nkv);
    for (int i = 0; i < 3; i++) {
        free(host[0][i]), free(host[1][i]);
        if (cacc[i])
            p->c->ops->release(p->c, cacc[i]);
    }
    if (cqkv)
        p->c->ops->release(p->c, cqkv);
    void *bufs[] = { dqkv, acc[0], acc[1], acc[2], acc[3], acc[4], acc[5] };
    release_all(p, bufs, sizeof bufs / sizeof bufs[0]);
    free(qkv), free(a0);
}

/* rope_split_max against rope_split + three absmax_cols over qkv's q, k
 * and v columns. */
static void case_rope_max(pair *p, tc_dtype dt, int64_t nh, int64_t nkv, int64_t d,
                          const int64_t *lens, int n_seqs)
{
    batch2 b;
    const int mk = make_batch(p, lens, n_seqs, d, dt, &b);
    const int64_t T = b.g.n_tokens, width = (nh + 2 * nkv) * d;
    const fwd_attn a = { nh, nkv, d, (float)(1.0 / sqrt((double)d)) };
    const size_t nq = (size_t)(T * nh * d), nkvv = (size_t)(T * nkv * d);
    uint16_t *qkv = fill(dt, (size_t)(T * width), 4.0);
    put_nan(dt, qkv, width, T - 1, nh * d + 1); /* a k column */
    float *a0 = earlier((size_t)(nh * d));
    void *dqkv = gput(p, qkv, (size_t)(T * width) * 2);
    void *q[2], *k[2], *v[2];
    float *acc[6];
    int ok = mk && dqkv;
    for (int i = 0; i < 2; i++) {
        ok = (q[i] = gput(p, NULL, nq * 2)) != NULL && ok;
        ok = (k[i] = gput(p, NULL, nkvv * 2)) != NULL && ok;
        ok = (v[i] = gput(p, NULL, nkvv * 2)) != NULL && ok;
    }
    for (int i = 0; i < 6; i++)
        ok = (acc[i] = gput(p, a0, (size_t)((i % 3 == 0 ? nh : nkv) * d) * 4)) != NULL && ok;
    const fwd_ops *o = p->g->ops;
    ok = ok &&
         o->rope_split_max(p->g, q[0], k[0], v[0], dqkv, dt, &a, &b.g, acc[0], acc[1], acc[2]) ==
             TC_OK &&
         o->rope_split(p->g, q[1], k[1], v[1], dqkv, dt, &a, &b.g) == TC_OK &&
         o->absmax_cols(p->g, acc[3], dqkv, false, NULL, dt, T, width, 0, nh * d) == TC_OK &&
         o->absmax_cols(p->g, acc[4], dqkv, false, NULL, dt, T, width, nh * d, nkv * d) == TC_OK &&
         o->absmax_cols(p->g, acc[5], dqkv, false, NULL, dt, T, width, (nh + nkv) * d, nkv * d) ==
             TC_OK;
    ok = ok && gsame(p, q[0], q[1], nq * 2) && gsame(p, k[0], k[1], nkvv * 2) &&
         gsame(p, v[0], v[1], nkvv * 2);
    for (int i = 0; ok && i < 3; i++)
        ok = gsame(p, acc[i], acc[i + 3], (size_t)((i == 0 ? nh : nkv) * d) * 4);
    float kmax = 0.0f;
    ok = ok && o->download(p->g, &kmax, acc[1] + 1, 4) == TC_OK && isnan(kmax);
    result(ok, "rope_split_max %s heads %lld/%lld d %lld, %d sequences: q, k, v and the three "
           "maxima those of rope_split + absmax_cols", dtn(dt), (long long)nh, (long long)nkv,
           (long long)d, n_seqs);
    void *bufs[] = { dqkv, q[0], q[1], k[0], k[1], v[0], v[1],
                     acc[0], acc[1], acc[2], acc[3], acc[4], acc[5] };
    release_all(p, bufs, sizeof bufs / sizeof bufs[0]);
    free(qkv), free(a0);
    free_batch(p, &b);
}

/* attention_max against attention + absmax_cols over o (path: the
 * backend's attention, fused kernel or cuBLAS). */
static void case_attention_max(pair *p, const char *path, tc_dtype dt, int64_t nh, int64_t nkv,
                               int64_t d, const int64_t *lens, int n_seqs)
{
    batch2 b;
    const int mk = make_batch(p, lens, n_seqs, d, dt, &b);
    const int64_t T = b.g.n_tokens, width = (nh + 2 * nkv) * d;
    const fwd_attn a = { nh, nkv, d, (float)(1.0 / sqrt((double)d)) };
    const size_t nq = (size_t)(T * nh * d), nkvv = (size_t)(T * nkv * d);
    uint16_t *qkv = fill(dt, (size_t)(T * width), 4.0);
    float *a0 = earlier((size_t)(nh * d));
    void *dqkv = gput(p, qkv, (size_t)(T * width) * 2), *q = gput(p, NULL, nq * 2);
    void *k = gput(p, NULL, nkvv * 2), *v = gput(p, NULL, nkvv * 2);
    void *o1 = gput(p, NULL, nq * 2), *o2 = gput(p, NULL, nq * 2);
    float *a1 = gput(p, a0, (size_t)(nh * d) * 4), *a2 = gput(p, a0, (size_t)(nh * d) * 4);
    const fwd_ops *o = p->g->ops;
    int ok = mk && dqkv && q && k && v && o1 && o2 && a1 && a2 &&
             o->rope_split(p->g, q, k, v, dqkv, dt, &a, &b.g) == TC_OK &&
             o->attention_max(p->g, o1, q, k, v, dt, &a, &b.g, a1) == TC_OK &&
             o->attention(p->g, o2, q, k, v, dt, &a, &b.g) == TC_OK &&
             o->absmax_cols(p->g, a2, o2, false, NULL, dt, T, nh * d, 0, nh * d) == TC_OK;
    ok = ok && gsame(p, o1, o2, nq * 2) && gsame(p, a1, a2, (size_t)(nh * d) * 4);
    result(ok, "attention_max (%s) %s heads %lld/%lld d %lld, %d sequences: o and maxima those "
           "of attention + absmax_cols", path, dtn(dt), (long long)nh, (long long)nkv,
           (long long)d, n_seqs);
    void *bufs[] = { dqkv, q, k, v, o1, o2, a1, a2 };
    release_all(p, bufs, sizeof bufs / sizeof bufs[0]);
    free(qkv), free(a0);
    free_batch(p, &b);
}

/* silu_mul_max and residual_add_max with other slab heights and the
 * read-ahead (kernels/calib_max.cu, the choices bench_fwd_kernels sweeps)
 * against the engine's launch: the same outputs and maxima. Launched on the
 * legacy stream between syncs of the backend's own. */
static void case_slab_variants(pair *p, tc_dtype dt, int64_t T, int64_t I)
{
    const size_t n = (size_t)(T * I);
    uint16_t *g = fill(dt, n, 12.0), *u = fill(dt, n, 3.0), *h = fill(dt, n, 40.0);
    float *p32 = malloc(n * 4), *a0 = earlier((size_t)I * 3);
    for (size_t i = 0; p32 && i < n; i++)
        p32[i] = to_f32(dt, g[(i * 7919) % n]) * 0.37f;
    if (p32)
        put_nan(dt, g, I, T - 1, I / 2);
    void *dg = gput(p, g, n * 2), *du = gput(p, u, n * 2), *dh0 = gput(p, h, n * 2);
    void *dp = gput(p, p32, n * 4), *o1 = gput(p, NULL, n * 2), *o2 = gput(p, NULL, n * 2);
    void *h1 = gput(p, NULL, n * 2), *h2 = gput(p, NULL, n * 2);
    float *a1 = gput(p, a0, (size_t)I * 12), *a2 = gput(p, NULL, (size_t)I * 12);
    int ok = g && u && h && p32 && a0 && dg && du && dh0 && dp && o1 && o2 && h1 && h2 && a1 &&
             a2 && p->g->ops->sync(p->g) == TC_OK;
    const size_t ab = (size_t)I * 4;
    ok = ok && cudaMemcpy(h1, dh0, n * 2, cudaMemcpyDeviceToDevice) == cudaSuccess &&
         tc_fwd_silu_mul_max_cuda(o1, dg, du, dt, T, I, a1, a1 + I, a1 + 2 * I, NULL) == TC_OK &&
         tc_fwd_residual_add_max_cuda(h1, dp, NULL, dt, T, I, a1, NULL) == TC_OK &&
         cudaDeviceSynchronize() == cudaSuccess;
    const int64_t slabs[] = { 8, 16, 32, 64, 128, 3 };
    int variants = 0;
    for (size_t s = 0; ok && s < sizeof slabs / sizeof slabs[0]; s++)
        for (int ahead = 0; ok && ahead < 2; ahead++)
            for (int rw = 1; ok && rw <= 8; rw *= 2) {
                ok = cudaMemcpy(a2, a0, ab * 3, cudaMemcpyHostToDevice) == cudaSuccess &&
                     cudaMemcpy(h2, dh0, n * 2, cudaMemcpyDeviceToDevice) == cudaSuccess &&
                     cudaMemset(o2, 0, n * 2) == cudaSuccess &&
                     tc_fwd_silu_mul_max_rows_cuda(o2, dg, du, dt, T, I, a2, a2 + I, a2 + 2 * I,
                                                   slabs[s], ahead, rw, NULL) == TC_OK &&
                     tc_fwd_residual_add_max_rows_cuda(h2, dp, NULL, dt, T, I, a2, slabs[s],
                                                       ahead, rw, NULL) == TC_OK &&
                     cudaDeviceSynchronize() == cudaSuccess && gsame(p, o1, o2, n * 2) &&
                     gsame(p, h1, h2, n * 2) && gsame(p, a1, a2, ab * 3);
                variants += ok;
            }
    /* A row-warp count the kernels do not have is refused, not launched. */
    tc_log_push_quiet();
    ok = ok && tc_fwd_silu_mul_max_rows_cuda(o2, dg, du, dt, T, I, a2, a2 + I, a2 + 2 * I, 32, 1,
                                             3, NULL) == TC_E_INTERNAL;
    tc_log_pop_quiet();
    float *got = malloc(ab);
    ok = ok && got && p->g->ops->download(p->g, got, a1, ab) == TC_OK && isnan(got[I / 2]);
    result(ok, "silu_mul_max and residual_add_max %s %lld x %lld: %d slab heights x read-ahead "
           "and row warps give the default launch's outputs and maxima (a NaN reaches its column)",
           dtn(dt), (long long)T, (long long)I, variants);
    void *bufs[] = { dg, du, dh0, dp, o1, o2, h1, h2, a1, a2 };
    release_all(p, bufs, sizeof bufs / sizeof bufs[0]);
    free(g), free(u), free(h), free(p32), free(a0), free(got);
}

/* The launch choices bench_fwd_kernels sweeps for the column maxima and
 * rope_split (calib_max.cu, fwd.cu), against the defaults: every (slab,
 * rows ahead) of the column maxima, over a float16 slice with a NaN and a
 * float32 array with a bias, gives the default's maxima; every rope_split
 * block size gives its q, k and v. */
static void case_launch_variants(pair *p, tc_dtype dt)
{
    int ok;
    /* Column maxima: columns [24, 24 + 1000) of a [301, 1040] array. */
    const int64_t R = 301, LD = 1040, C0 = 24, C = 1000;
    uint16_t *x = fill(dt, (size_t)(R * LD), 9.0), *bias = fill(dt, (size_t)C, 3.0);
    float *x32 = malloc((size_t)(R * LD) * 4), *a0 = earlier((size_t)C * 2);
    for (size_t i = 0; x && x32 && i < (size_t)(R * LD); i++)
        x32[i] = to_f32(dt, x[(i * 7919) % (size_t)(R * LD)]) * 1.7f;
    if (x)
        put_nan(dt, x, LD, R - 2, C0 + C / 3);
    void *dx = gput(p, x, (size_t)(R * LD) * 2), *dx32 = gput(p, x32, (size_t)(R * LD) * 4);
    void *db = gput(p, bias, (size_t)C * 2);
    float *a1 = gput(p, a0, (size_t)C * 8), *a2 = gput(p, NULL, (size_t)C * 8);
    ok = x && bias && x32 && a0 && dx && dx32 && db && a1 && a2 && p->g->ops->sync(p->g) == TC_OK &&
         tc_fwd_absmax_cols_cuda(a1, dx, 0, NULL, dt, R, LD, C0, C, NULL) == TC_OK &&
         tc_fwd_absmax_cols_cuda(a1 + C, dx32, 1, db, dt, R, LD, C0, C, NULL) == TC_OK &&
         cudaDeviceSynchronize() == cudaSuccess;
    const int64_t slabs[] = { 16, 32, 64, 128, 3, 1 };
    int cols_variants = 0;
    for (size_t s = 0; ok && s < sizeof slabs / sizeof slabs[0]; s++)
        for (int ahead = 1; ok && ahead <= 8; ahead *= 2)
            for (int rw = 1; ok && rw <= 8; rw *= 2) {
                ok = cudaMemcpy(a2, a0, (size_t)C * 8, cudaMemcpyHostToDevice) == cudaSuccess &&
                     tc_fwd_absmax_cols_rows_cuda(a2, dx, 0, NULL, dt, R, LD, C0, C, slabs[s],
                                                  ahead, rw, NULL) == TC_OK &&
                     tc_fwd_absmax_cols_rows_cuda(a2 + C, dx32, 1, db, dt, R, LD, C0, C,
                                                  slabs[s], ahead, rw, NULL) == TC_OK &&
                     cudaDeviceSynchronize() == cudaSuccess && gsame(p, a1, a2, (size_t)C * 8);
                cols_variants += ok;
            }
    float got = 0.0f;
    ok = ok && cudaMemcpy(&got, a1 + C / 3, 4, cudaMemcpyDeviceToHost) == cudaSuccess &&
         isnan(got);
    result(ok, "absmax_cols %s: %d (rows per thread, rows ahead, row warps) launches give the default's "
           "maxima of a float16 slice and of float32 + bias (a NaN reaches its column)",
           dtn(dt), cols_variants);
    void *cbufs[] = { dx, dx32, db, a1, a2 };
    release_all(p, cbufs, sizeof cbufs / sizeof cbufs[0]);
    free(x), free(bias), free(x32), free(a0);

    /* rope_split at the 8B heads (32/8 of 128) over sequences of 300, 77
     * and 130 tokens. */
    const int64_t lens[] = { 300, 77, 130 }, nh = 32, nkv = 8, d = 128;
    batch2 b;
    const int mk = make_batch(p, lens, 3, d, dt, &b);
    const int64_t Tr = b.g.n_tokens, width = (nh + 2 * nkv) * d;
    const fwd_attn a = { nh, nkv, d, (float)(1.0 / sqrt((double)d)) };
    const size_t nq = (size_t)(Tr * nh * d), nkvv = (size_t)(Tr * nkv * d);
    uint16_t *qkv = fill(dt, (size_t)(Tr * width), 4.0);
    void *dqkv = gput(p, qkv, (size_t)(Tr * width) * 2), *q[2], *k[2], *v[2];
    ok = mk && qkv && dqkv;
    for (int i = 0; i < 2; i++) {
        ok = (q[i] = gput(p, NULL, nq * 2)) != NULL && ok;
        ok = (k[i] = gput(p, NULL, nkvv * 2)) != NULL && ok;
        ok = (v[i] = gput(p, NULL, nkvv * 2)) != NULL && ok;
    }
    ok = ok && p->g->ops->rope_split(p->g, q[0], k[0], v[0], dqkv, dt, &a, &b.g) == TC_OK &&
         p->g->ops->sync(p->g) == TC_OK;
    const int rthreads[] = { 32, 64, 128, 256, 448, 1024 };
    int rope_variants = 0;
    for (size_t j = 0; ok && j < sizeof rthreads / sizeof rthreads[0]; j++) {
        ok = cudaMemset(q[1], 0, nq * 2) == cudaSuccess &&
             cudaMemset(k[1], 0, nkvv * 2) == cudaSuccess &&
             cudaMemset(v[1], 0, nkvv * 2) == cudaSuccess &&
             tc_fwd_rope_split_threads_cuda(q[1], k[1], v[1], dqkv, dt, nh, nkv, d, Tr, b.g.pos,
                                            b.g.seq_start, b.g.seq_len, b.g.cos, b.g.sin,
                                            rthreads[j], NULL) == TC_OK &&
             cudaDeviceSynchronize() == cudaSuccess && gsame(p, q[0], q[1], nq * 2) &&
             gsame(p, k[0], k[1], nkvv * 2) && gsame(p, v[0], v[1], nkvv * 2);
        rope_variants += ok;
    }
    result(ok, "rope_split %s heads 32/8 d 128: %d block sizes give the default's q, k and v",
           dtn(dt), rope_variants);
    void *rbufs[] = { dqkv, q[0], q[1], k[0], k[1], v[0], v[1] };
    release_all(p, rbufs, sizeof rbufs / sizeof rbufs[0]);
    free(qkv);
    free_batch(p, &b);
}

int main(void)
{
    pair p, pb;
    const int rc = open_pairs(0x6a09e667f3bcc908ull, true, &p, &pb);
    if (rc)
        return rc;
    const tc_dtype dts[] = { TC_DT_F16, TC_DT_BF16 };
    const int64_t lens_a[] = { 37, 64, 5, 64 }, lens_b[] = { 9, 3 };
    const int64_t lens_c[] = { 300, 300, 77, 130 };
    for (int i = 0; i < 2; i++) {
        const tc_dtype dt = dts[i];
        case_rmsnorm_max(&p, dt, 100, 4096, 0, 0); /* slab: 512 threads, last block partial */
        case_rmsnorm_max(&p, dt, 37, 8192, 0, 1);  /* slab: 1024 threads, a NaN */
        case_rmsnorm_max(&p, dt, 16, 256, 0, 0);   /* slab: one warp */
        case_rmsnorm_max(&p, dt, 9, 40, 0, 0);     /* fallback: H not a multiple of 256 */
        case_rmsnorm_max(&p, dt, 20, 4096, 3, 0);  /* fallback: misaligned */
        case_rmsnorm(&p, dt, 64, 4096);            /* the slab kernel against the CPU */
        case_rmsnorm(&p, dt, 37, 8192);
        case_rope_max(&p, dt, 8, 2, 128, lens_a, 4); /* slab kernel */
        case_rope_max(&p, dt, 4, 4, 64, lens_b, 2);
        case_rope_max(&p, dt, 32, 8, 128, lens_c, 4); /* the 8B heads: two blocks of units */
        case_rope_max(&p, dt, 6, 3, 12, lens_b, 2);   /* fallback: d / 2 not a multiple of 8 */
        case_absmax_qkv(&p, dt, 4096, 4096, 1024); /* the 8B micro-batch's qkv */
        case_absmax_qkv(&p, dt, 301, 1024, 128);   /* last slab partial */
        case_absmax_qkv(&p, dt, 37, 36, 12);       /* three launches: 36 not a multiple of 8 */
        case_slab_variants(&p, dt, 301, 1024); /* last slabs partial, 8 blocks across */
        case_slab_variants(&p, dt, 7, 14336);  /* fewer rows than a slab; the 8B width */
        case_launch_variants(&p, dt);
        for (int k = 0; k < 2; k++) {
            pair *q = k ? &pb : &p;
            const char *path = k ? "cuBLAS" : "default";
            case_attention_max(q, path, dt, 8, 2, 128, lens_a, 4);
            case_attention_max(q, path, dt, 8, 1, 128, lens_c, 4); /* g 8, many blocks */
            case_attention_max(q, path, dt, 4, 2, 64, lens_c, 4);
            case_attention_max(q, path, dt, 6, 3, 12, lens_b, 2); /* not fused: d 12 */
        }
    }
    return close_pairs(&p, &pb);
}
