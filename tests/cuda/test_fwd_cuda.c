/* test_fwd_cuda.c: the forward-pass kernels of the CUDA backend
 * (kernels/fwd.cu via src/fwd/fwd_gpu.c) against the CPU backend
 * (src/fwd/fwd_cpu.c, the scalar reference), on the shapes that take the
 * 16-byte vector kernels (multiples of 8, aligned) and on shapes and
 * misaligned pointers that take the scalar ones:
 *   float32 <-> dtype          bit for bit against core/dtype.c, NaN
 *   conversions                payloads included: every float16 / bfloat16
 *                              pattern widened, and every float32 sign,
 *                              exponent and leading mantissa (the upper 16
 *                              bits) with 16 lower halves (ties, one off a
 *                              tie, random) rounded, through the vector
 *                              kernels (paired hardware conversions) and
 *                              the scalar ones;
 *   residual_add, rope_split   bit for bit (the same rounding steps);
 *   the quantized engines'    bit for bit against the tc_fq_* references
 *   steps (fake_quant.h)       (int8 and FP8, static and per token);
 *   residual_add_max,          bit for bit against the GPU's own plain op
 *   silu_mul_max               followed by absmax_cols (output and maxima);
 *   silu_mul                   within one unit in the last place (CUDA's
 *                              expf and the C library's differ in the last
 *                              float32 bit, which rarely survives rounding);
 *   rmsnorm                    within two units in the last place (the sum
 *                              of squares is a tree on the GPU, so the
 *                              reciprocal may differ in its last float32
 *                              bit, and both roundings, x * r to the dtype
 *                              and the product with the weight, may then
 *                              each move by one unit);
 *   attention                  (the fused kernel and the cuBLAS path)
 *                              within 2^-8 of the output's largest value
 *                              (scores and softmax in another order; the
 *                              point is the head layout, which a wrong
 *                              index breaks by whole values).
 * Dtypes float16 and bfloat16. Exits 77 without a GPU. Last line:
 * "N passed, M failed". */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "trtconv/fwd/backend.h"
#include "trtconv/fwd/fake_quant.h"
#include "trtconv/core/dtype.h"
#include "trtconv/mpi/gpu.h"
#include "trtconv/core/log.h"
#include "trtconv/kernels/fwd.h"
#include "gpu_check.h"
#include "fwd_pair.h"


/* tc_fwd_round_f32_cuda and tc_fwd_to_f32_cuda against the CPU's
 * conversions; mis 1 takes the scalar kernels (pointers off 16 bytes). */
static void case_conversions(pair *p, tc_dtype dt, size_t mis)
{
    static const uint16_t lows[16] = { 0x0000, 0x0001, 0x0FFF, 0x1000, 0x1001, 0x1FFF,
                                       0x3000, 0x5000, 0x7FFF, 0x8000, 0x8001, 0xEFFF,
                                       0xF000, 0xFFFF, 0, 0 };
    const size_t n = (size_t)65536 * 16, nh = 65536;
    float *x = malloc((n + 8) * 4), *wide = malloc(nh * 4);
    uint16_t *want = malloc(n * 2), *got = malloc(n * 2), *all = malloc((nh + 8) * 2);
    uint32_t *got32 = malloc(nh * 4);
    int ok = x && wide && want && got && all && got32;
    for (size_t i = 0; ok && i < n; i++) {
        const uint32_t lo = i % 16 < 14 ? lows[i % 16] : (uint32_t)(urand() * 65536.0) & 0xFFFFu;
        const uint32_t bits = (uint32_t)(i / 16) << 16 | lo;
        memcpy(&x[mis + i], &bits, 4);
        want[i] = dt == TC_DT_F16 ? tc_f32_to_f16(x[mis + i]) : tc_f32_to_bf16(x[mis + i]);
    }
    for (size_t i = 0; ok && i < nh; i++) {
        all[mis + i] = (uint16_t)i;
        wide[i] = to_f32(dt, (uint16_t)i);
    }
    float *dx = ok ? gput(p, x, (n + 8) * 4) : NULL, *dw = gput(p, NULL, nh * 4 + 32);
    uint16_t *dy = gput(p, NULL, (n + 8) * 2), *da = ok ? gput(p, all, (nh + 8) * 2) : NULL;
    ok = ok && dx && dw && dy && da && p->g->ops->sync(p->g) == TC_OK &&
         tc_fwd_round_f32_cuda(dy + mis, dt, dx + mis, n, NULL) == TC_OK &&
         tc_fwd_to_f32_cuda(dw + mis, da + mis, dt, nh, NULL) == TC_OK &&
         cudaDeviceSynchronize() == cudaSuccess &&
         cudaMemcpy(got, dy + mis, n * 2, cudaMemcpyDeviceToHost) == cudaSuccess &&
         cudaMemcpy(got32, dw + mis, nh * 4, cudaMemcpyDeviceToHost) == cudaSuccess;
    size_t bad_round = 0, bad_widen = 0;
    for (size_t i = 0; ok && i < n; i++)
        bad_round += got[i] != want[i];
    for (size_t i = 0; ok && i < nh; i++)
        bad_widen += memcmp(&got32[i], &wide[i], 4) != 0;
    result(ok && bad_round == 0 && bad_widen == 0,
           "%s conversions%s: %zu float32 rounded (%zu differ from core/dtype.c), all %zu "
           "patterns widened (%zu differ)", dtn(dt), mis ? " (scalar kernels)" : "", n,
           bad_round, nh, bad_widen);
    void *bufs[] = { dx, dw, dy, da };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i])
            p->g->ops->release(p->g, bufs[i]);
    free(x), free(wide), free(want), free(got), free(all), free(got32);
}

static void case_residual(pair *p, tc_dtype dt, int64_t T, int64_t H, size_t mis)
{
    const size_t n = (size_t)(T * H);
    uint16_t *h = fill(dt, n + 8, 8.0);
    float *p32 = malloc((n + 8) * 4);
    for (size_t i = 0; i < n + 8; i++)
        p32[i] = (float)((urand() * 2.0 - 1.0) * 8.0) * (i % 97 == 0 ? 1e4f : 1.0f);
    p32[0] = -0.0f;
    dual dh, dp;
    int ok = put(p, h, (n + 8) * 2, &dh) && put(p, p32, (n + 8) * 4, &dp) &&
             p->g->ops->residual_add(p->g, (uint16_t *)dh.g + mis, (float *)dp.g + mis, NULL, dt,
                                     T, H) == TC_OK &&
             p->c->ops->residual_add(p->c, (uint16_t *)dh.c + mis, (float *)dp.c + mis, NULL, dt,
                                     T, H) == TC_OK;
    const long w = ok ? compare(p, &dh, mis * 2, n, dt) : -1;
    result(w == 0, "residual_add %s %lld x %lld%s: bit for bit (worst %ld ulp)", dtn(dt),
           (long long)T, (long long)H, mis ? " misaligned" : "", w);
    drop(p, &dh);
    drop(p, &dp);
    free(h);
    free(p32);
}

static void case_silu(pair *p, tc_dtype dt, size_t n, size_t mis)
{
    uint16_t *g = fill(dt, n + 8, 12.0), *u = fill(dt, n + 8, 3.0);
    dual dg, du, dout;
    int ok = put(p, g, (n + 8) * 2, &dg) && put(p, u, (n + 8) * 2, &du) &&
             put(p, NULL, (n + 8) * 2, &dout) &&
             p->g->ops->silu_mul(p->g, (uint16_t *)dout.g + mis, (uint16_t *)dg.g + mis,
                                 (uint16_t *)du.g + mis, dt, n) == TC_OK &&
             p->c->ops->silu_mul(p->c, (uint16_t *)dout.c + mis, (uint16_t *)dg.c + mis,
                                 (uint16_t *)du.c + mis, dt, n) == TC_OK;
    const long w = ok ? compare(p, &dout, mis * 2, n, dt) : -1;
    result(w >= 0 && w <= 1, "silu_mul %s n=%zu%s: within 1 ulp (worst %ld)", dtn(dt), n,
           mis ? " misaligned" : "", w);
    drop(p, &dg);
    drop(p, &du);
    drop(p, &dout);
    free(g);
    free(u);
}

/* GPU memory holding `bytes` of host (or uninitialised when host is NULL),
 * 16 spare bytes for misaligned views; NULL on failure. */
/* residual_add_max against residual_add followed by absmax_cols on the same
 * GPU: the same h and maxima, bit for bit (mis > 0: the fallback path). */
static void case_residual_max(pair *p, tc_dtype dt, int64_t T, int64_t H, int bias, size_t mis)
{
    const size_t n = (size_t)(T * H);
    uint16_t *h = fill(dt, n + 8, 8.0), *bh = fill(dt, (size_t)H, 2.0);
    float *p32 = malloc((n + 8) * 4), *acc0 = malloc((size_t)H * 4);
    for (size_t i = 0; i < n + 8; i++)
        p32[i] = (float)((urand() * 2.0 - 1.0) * 8.0) * (i % 97 == 0 ? 1e4f : 1.0f);
    p32[0] = -0.0f;
    for (int64_t c = 0; c < H; c++)
        acc0[c] = c % 3 ? 0.0f : 5.0f; /* earlier batches' maxima */
    void *h1 = gput(p, h, (n + 8) * 2), *h2 = gput(p, h, (n + 8) * 2);
    void *dp = gput(p, p32, (n + 8) * 4), *db = bias ? gput(p, bh, (size_t)H * 2) : NULL;
    float *a1 = gput(p, acc0, (size_t)H * 4), *a2 = gput(p, acc0, (size_t)H * 4);
    const fwd_ops *o = p->g->ops;
    int ok = h1 && h2 && dp && (!bias || db) && a1 && a2 &&
             o->residual_add_max(p->g, (uint16_t *)h1 + mis, (float *)dp + mis, db, dt, T, H,
                                 a1) == TC_OK &&
             o->absmax_cols(p->g, a2, (float *)dp + mis, true, db, dt, T, H, 0, H) == TC_OK &&
             o->residual_add(p->g, (uint16_t *)h2 + mis, (float *)dp + mis, db, dt, T, H) == TC_OK;
    ok = ok && gsame(p, h1, h2, (n + 8) * 2) && gsame(p, a1, a2, (size_t)H * 4);
    result(ok, "residual_add_max %s %lld x %lld%s%s: h and maxima those of residual_add + "
           "absmax_cols", dtn(dt), (long long)T, (long long)H, bias ? " bias" : "",
           mis ? " misaligned" : "");
    void *bufs[] = { h1, h2, dp, db, a1, a2 };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i])
            o->release(p->g, bufs[i]);
    free(h);
    free(bh);
    free(p32);
    free(acc0);
}

/* silu_mul_max against silu_mul and three absmax_cols on the same GPU. */
static void case_silu_max(pair *p, tc_dtype dt, int64_t T, int64_t I, size_t mis)
{
    const size_t n = (size_t)(T * I);
    uint16_t *g = fill(dt, n + 8, 12.0), *u = fill(dt, n + 8, 3.0);
    float *acc0 = calloc((size_t)I, 4);
    acc0[0] = 1e3f;
    void *dg = gput(p, g, (n + 8) * 2), *du = gput(p, u, (n + 8) * 2);
    void *o1 = gput(p, NULL, (n + 8) * 2), *o2 = gput(p, NULL, (n + 8) * 2);
    float *acc[6];
    int ok = dg && du && o1 && o2;
    for (int i = 0; i < 6; i++)
        ok = (acc[i] = gput(p, acc0, (size_t)I * 4)) != NULL && ok;
    const fwd_ops *o = p->g->ops;
    uint16_t *G = (uint16_t *)dg + mis, *U = (uint16_t *)du + mis;
    uint16_t *O1 = (uint16_t *)o1 + mis, *O2 = (uint16_t *)o2 + mis;
    ok = ok && o->silu_mul_max(p->g, O1, G, U, dt, T, I, acc[0], acc[1], acc[2]) == TC_OK &&
         o->silu_mul(p->g, O2, G, U, dt, n) == TC_OK &&
         o->absmax_cols(p->g, acc[3], G, false, NULL, dt, T, I, 0, I) == TC_OK &&
         o->absmax_cols(p->g, acc[4], U, false, NULL, dt, T, I, 0, I) == TC_OK &&
         o->absmax_cols(p->g, acc[5], O2, false, NULL, dt, T, I, 0, I) == TC_OK;
    ok = ok && gsame(p, O1, O2, n * 2);
    for (int i = 0; ok && i < 3; i++)
        ok = gsame(p, acc[i], acc[i + 3], (size_t)I * 4);
    result(ok, "silu_mul_max %s %lld x %lld%s: output and the three maxima those of silu_mul + "
           "absmax_cols", dtn(dt), (long long)T, (long long)I, mis ? " misaligned" : "");
    void *bufs[] = { dg, du, o1, o2, acc[0], acc[1], acc[2], acc[3], acc[4], acc[5] };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i])
            o->release(p->g, bufs[i]);
    free(g);
    free(u);
    free(acc0);
}

/* trtconv eval's quantized engines: the GPU's act_quant, dequant, div_cols
 * and qdq against the tc_fq_* references (fake_quant.h), bit for bit. */
static void case_fake_quant(pair *p, tc_dtype dt, int kind, bool per_token, int64_t T, int64_t K)
{
    /* FP8 per token with clamp_val (FP8 rowwise), the rest without. */
    const tc_fq_clamp clamp = { kind == TC_FQ_FP8 && per_token, -30.0f, 25.0f };
    const size_t n = (size_t)(T * K);
    uint16_t *x = fill(dt, n, 40.0), *ref = malloc(n * 2), *got = malloc(n * 2);
    for (size_t i = 0; i < n; i += 13)
        x[i] = dt == TC_DT_F16 ? tc_f32_to_f16(i % 2 ? 600.0f : -0.0f) : tc_f32_to_bf16(600.0f);
    float *row_ref = malloc((size_t)T * 4), *row_got = malloc((size_t)T * 4);
    float *s = malloc((size_t)K * 4), *acc = malloc(n * 4), *col = malloc((size_t)K * 4);
    for (int64_t c = 0; c < K; c++) {
        s[c] = tc_round_to_dtype(dt, (float)(0.5 + urand() * 4.0));
        col[c] = (float)(urand() * 0.01);
    }
    for (size_t i = 0; i < n; i++)
        acc[i] = (float)((urand() * 2.0 - 1.0) * 5000.0);
    void *dx = gput(p, x, n * 2), *dq = gput(p, NULL, n * 2), *ds = gput(p, s, (size_t)K * 4);
    float *drow = gput(p, NULL, (size_t)T * 4), *dacc = gput(p, acc, n * 4);
    float *dcol = gput(p, col, (size_t)K * 4);
    void *dout = gput(p, NULL, n * 2);
    const fwd_ops *o = p->g->ops;
    int ok = dx && dq && ds && drow && dacc && dcol && dout;
    /* div_cols, then act_quant of the result (as the dense input goes). */
    memcpy(ref, x, n * 2);
    tc_fq_div_cols(ref, s, dt, T, K);
    ok = ok && o->div_cols(p->g, dx, ds, dt, T, K) == TC_OK &&
         o->download(p->g, got, dx, n * 2) == TC_OK && !memcmp(ref, got, n * 2);
    tc_fq_act_rows(ref, ref, dt, T, K, kind, per_token, 3.0f, 0.25f, clamp, row_ref);
    ok = ok && o->act_quant(p->g, dq, dx, dt, T, K, kind, per_token, 3.0f, 0.25f, clamp, drow) == TC_OK &&
         o->download(p->g, got, dq, n * 2) == TC_OK && !memcmp(ref, got, n * 2) &&
         o->download(p->g, row_got, drow, (size_t)T * 4) == TC_OK &&
         !memcmp(row_ref, row_got, (size_t)T * 4);
    /* dequant with per-channel factors (N = K here), into the dtype. */
    tc_fq_dequant(ref, false, acc, row_ref, col, true, NULL, dt, T, K);
    ok = ok && o->dequant(p->g, dout, false, dacc, drow, dcol, true, dt, T, K) == TC_OK &&
         o->download(p->g, got, dout, n * 2) == TC_OK && !memcmp(ref, got, n * 2);
    /* The KV cache's store and read-back (INT8, FP8: no NVFP4 cache). */
    memcpy(ref, x, n * 2);
    tc_fq_qdq(ref, dt, n, kind, 1.0f / 0.37f, 0.37f);
    ok = ok && (kind == TC_FQ_NVFP4 || (o->upload(p->g, dx, x, n * 2) == TC_OK &&
         o->qdq(p->g, dx, dt, n, kind, 1.0f / 0.37f, 0.37f) == TC_OK &&
         o->download(p->g, got, dx, n * 2) == TC_OK && !memcmp(ref, got, n * 2)));
    result(ok, "fake quant %s %s %s %lld x %lld: div_cols, act_quant, dequant, qdq bit for bit",
           dtn(dt), kind == TC_FQ_NVFP4 ? "nvfp4" : kind == TC_FQ_FP8 ? "fp8" : "int8",
           per_token ? "per token" : "static",
           (long long)T, (long long)K);
    void *bufs[] = { dx, dq, ds, drow, dacc, dcol, dout };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i])
            o->release(p->g, bufs[i]);
    free(x), free(ref), free(got), free(row_ref), free(row_got), free(s), free(acc), free(col);
}

/* rope_split, then attention on its outputs, for nh query heads over nkv
 * key/value heads of size d, sequences of lengths lens. */
static void case_attention(pair *p, const char *path, tc_dtype dt, int64_t nh, int64_t nkv,
                           int64_t d, const int64_t *lens, int n_seqs)
{
    batch2 b;
    const int mk = make_batch(p, lens, n_seqs, d, dt, &b);
    const int64_t T = b.g.n_tokens, width = (nh + 2 * nkv) * d;
    const fwd_attn a = { nh, nkv, d, (float)(1.0 / sqrt((double)d)) };
    uint16_t *qkv = fill(dt, (size_t)(T * width), 4.0);
    dual dqkv, dq, dk, dv, dout;
    int ok = mk && put(p, qkv, (size_t)(T * width) * 2, &dqkv) &&
             put(p, NULL, (size_t)(T * nh * d) * 2, &dq) &&
             put(p, NULL, (size_t)(T * nkv * d) * 2, &dk) &&
             put(p, NULL, (size_t)(T * nkv * d) * 2, &dv) &&
             put(p, NULL, (size_t)(T * nh * d) * 2, &dout) &&
             p->g->ops->rope_split(p->g, dq.g, dk.g, dv.g, dqkv.g, dt, &a, &b.g) == TC_OK &&
             p->c->ops->rope_split(p->c, dq.c, dk.c, dv.c, dqkv.c, dt, &a, &b.c) == TC_OK;
    const long wq = ok ? compare(p, &dq, 0, (size_t)(T * nh * d), dt) : -1;
    const long wk = ok ? compare(p, &dk, 0, (size_t)(T * nkv * d), dt) : -1;
    const long wv = ok ? compare(p, &dv, 0, (size_t)(T * nkv * d), dt) : -1;
    result(wq == 0 && wk == 0 && wv == 0,
           "rope_split %s heads %lld/%lld d %lld, %d sequences: q, k, v bit for bit (worst %ld %ld %ld ulp)",
           dtn(dt), (long long)nh, (long long)nkv, (long long)d, n_seqs, wq, wk, wv);
    ok = ok && p->g->ops->attention(p->g, dout.g, dq.g, dk.g, dv.g, dt, &a, &b.g) == TC_OK &&
         p->c->ops->attention(p->c, dout.c, dq.c, dk.c, dv.c, dt, &a, &b.c) == TC_OK &&
         p->g->ops->sync(p->g) == TC_OK;
    const size_t n = (size_t)(T * nh * d);
    uint16_t *og = malloc(n * 2), *oc = malloc(n * 2);
    double worst = -1.0, top = 0.0;
    if (ok && p->g->ops->download(p->g, og, dout.g, n * 2) == TC_OK &&
        p->c->ops->download(p->c, oc, dout.c, n * 2) == TC_OK) {
        worst = 0.0;
        for (size_t i = 0; i < n; i++) {
            const double x = to_f32(dt, og[i]), y = to_f32(dt, oc[i]);
            worst = fabs(x - y) > worst || isnan(x - y) ? fabs(x - y) : worst;
            top = fabs(y) > top ? fabs(y) : top;
        }
    }
    result(worst >= 0.0 && worst <= top / 256.0,
           "attention (%s) %s heads %lld/%lld d %lld, %d sequences: within 2^-8 of max |out| "
           "(worst %.3g of %.3g)", path, dtn(dt), (long long)nh, (long long)nkv, (long long)d,
           n_seqs, worst, top);
    free(og), free(oc), free(qkv);
    drop(p, &dqkv), drop(p, &dq), drop(p, &dk), drop(p, &dv), drop(p, &dout);
    free_batch(p, &b);
}

int main(void)
{
    pair p, pb;
    const int rc = open_pairs(0x2545f4914f6cdd1dull, false, &p, &pb);
    if (rc)
        return rc;
    const tc_dtype dts[] = { TC_DT_F16, TC_DT_BF16 };
    const int64_t lens_a[] = { 37, 64, 5, 64 }, lens_b[] = { 9, 3 };
    /* Several key blocks of 64 and query tiles that end inside a sequence. */
    const int64_t lens_c[] = { 300, 300, 77, 130 };
    for (int i = 0; i < 2; i++) {
        const tc_dtype dt = dts[i];
        case_conversions(&p, dt, 0);
        case_conversions(&p, dt, 1);
        case_residual(&p, dt, 64, 4096, 0);    /* vector kernel */
        case_residual(&p, dt, 3, 37, 0);       /* scalar: n not a multiple of 8 */
        case_residual(&p, dt, 16, 64, 1);      /* scalar: misaligned */
        case_silu(&p, dt, 64 * 14336, 0);
        case_silu(&p, dt, 1001, 0);
        case_silu(&p, dt, 4096, 3);
        case_residual_max(&p, dt, 100, 4096, 0, 0);  /* fused kernel, rows not a multiple of 32 */
        case_residual_max(&p, dt, 64, 1024, 1, 0);   /* fused, with a bias */
        case_residual_max(&p, dt, 5, 36, 1, 0);      /* fallback: H not a multiple of 8 */
        case_residual_max(&p, dt, 16, 64, 0, 1);     /* fallback: misaligned */
        case_silu_max(&p, dt, 70, 14336, 0);
        case_silu_max(&p, dt, 3, 1001, 0);            /* fallback */
        case_silu_max(&p, dt, 8, 512, 3);             /* fallback: misaligned */
        for (int kind = TC_FQ_INT8; kind <= TC_FQ_FP8; kind++)
            for (int pt = 0; pt < 2; pt++)
                case_fake_quant(&p, dt, kind, pt, 37, 520);
        case_fake_quant(&p, dt, TC_FQ_NVFP4, false, 37, 528); /* blocks of 16 */
        case_rmsnorm(&p, dt, 64, 4096);
        case_rmsnorm(&p, dt, 5, 40);
        case_rmsnorm(&p, dt, 9, 36);           /* scalar: H not a multiple of 8 */
        for (int k = 0; k < 2; k++) {
            pair *q = k ? &pb : &p;
            const char *path = k ? "cuBLAS" : "default";
            case_attention(q, path, dt, 8, 2, 128, lens_a, 4); /* vector rope and gather */
            case_attention(q, path, dt, 4, 4, 64, lens_b, 2);
            case_attention(q, path, dt, 8, 1, 128, lens_c, 4);  /* g 8: fused, many blocks */
            case_attention(q, path, dt, 4, 2, 64, lens_c, 4);
            case_attention(q, path, dt, 6, 3, 12, lens_b, 2);  /* scalar: d / 2 not a multiple of 8 */
        }
    }
    return close_pairs(&p, &pb);
}
