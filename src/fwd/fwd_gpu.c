/* fwd_gpu.c: the CUDA backend of the forward pass (see fwd_backend.h).
 *
 * GEMMs are cuBLAS calls with float32 accumulation (CUBLAS_COMPUTE_32F, no
 * TF32, which is what torch does for float16/bfloat16 matmuls); everything
 * else is a kernel of kernels/fwd.cu. All work is queued on one stream per
 * rank; the communicators (coll.h) are ordered on the same stream.
 *
 * Attention per sequence: q of one KV group is laid out [t][g][d] by
 * rope_split, so S = q k^T of the whole group is one [ls*g, ls] GEMM and
 * all groups of a sequence are one strided-batched call; likewise P v. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include "trtconv/fwd/backend.h"
#include "trtconv/mpi/gpu_errors.h"
#include "trtconv/build_config.h"
#include "trtconv/core/log.h"

#if TRTCONV_HAVE_CUDA
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include "trtconv/kernels/fwd.h"

typedef struct gpu_backend {
    fwd_backend base;
    int device;
    cudaStream_t main, side; /* where operations go: cur_stream */
    cublasHandle_t blas_main, blas_side; /* one per stream: each has its workspace */
    cudaStream_t xfer;    /* weight uploads from the read-ahead thread */
    float *gemm32;        /* [T, N] f32 GEMM output before a bias */
    size_t gemm32_elems;
    float *scores;        /* [nh, max_len, max_len] f32 */
    void *probs;          /* same shape, dtype */
    void *og;             /* [max_tokens, nh*d] dtype, attention output per group */
    size_t scores_elems, og_elems;
    /* Attention by kernels/attention.cu where it applies (float16/bfloat16,
     * head_dim 64 or 128); TRTCONV_ATTENTION=cublas keeps the materialised
     * scores (scores, probs, og above; for comparisons). */
    bool fused_attention;
    /* The attention block's calibration maxima inside the norm, rope and
     * attention kernels (kernels/calib_fused.cu; the plain rmsnorm then
     * takes the same slab kernel, so that both give the same bits), with
     * TRTCONV_CALIB_MAXIMA=fused. By default (separate) this backend's ops
     * have no rmsnorm_max, rope_split_max or attention_max, and the engine
     * takes those maxima by absmax_cols after each step (fwd.c): measured
     * on an H100 the fused form gained nothing end to end (its slab norm
     * and rope kernels are slower than the row kernels) and changes the
     * norm's float32 order (docs/performance.md, session 16). */
    bool fused_maxima;
    fwd_ops ops; /* gpu_ops, less the fused maxima when off */
} gpu_backend;

/* use_side_stream's choice, per host thread: while the main thread runs a
 * method's hook on the side stream (and its cuBLAS handle), a helper thread
 * of the backend keeps its own choice. */
static _Thread_local bool tl_side;

static inline cudaStream_t cur_stream(const gpu_backend *g)
{
    return tl_side ? g->side : g->main;
}

static inline cublasHandle_t cur_blas(const gpu_backend *g)
{
    return tl_side ? g->blas_side : g->blas_main;
}

static tc_status blas_ok(cublasStatus_t s, const char *what)
{
    if (s == CUBLAS_STATUS_SUCCESS)
        return TC_OK;
    return tc_fail(TC_E_INTERNAL, "cuBLAS %s failed: %s", what, cublasGetStatusString(s));
}

static cudaDataType_t cuda_type(tc_dtype dt)
{
    switch (dt) {
    case TC_DT_F16: return CUDA_R_16F;
    case TC_DT_BF16: return CUDA_R_16BF;
    default: return CUDA_R_32F;
    }
}

static void gpu_destroy(fwd_backend *b)
{
    gpu_backend *g = (gpu_backend *)b;
    if (g->main)
        cudaStreamSynchronize(g->main);
    if (g->side)
        cudaStreamSynchronize(g->side);
    cudaFree(g->gemm32);
    cudaFree(g->scores);
    cudaFree(g->probs);
    cudaFree(g->og);
    if (g->blas_main)
        cublasDestroy(g->blas_main);
    if (g->blas_side)
        cublasDestroy(g->blas_side);
    if (g->main)
        cudaStreamDestroy(g->main);
    if (g->side)
        cudaStreamDestroy(g->side);
    if (g->xfer)
        cudaStreamDestroy(g->xfer);
    free(g);
}

static tc_status gpu_alloc(fwd_backend *b, size_t bytes, void **p)
{
    (void)b;
    *p = NULL;
    cudaError_t e = cudaMalloc(p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        *p = NULL;
        return tc_fail(TC_E_INTERNAL, "cudaMalloc of %zu bytes for the forward pass: %s", bytes,
                       cudaGetErrorString(e));
    }
    return TC_OK;
}

static void gpu_release(fwd_backend *b, void *p)
{
    (void)b;
    cudaFree(p);
}

/* Synchronous on purpose: the host buffers are reused right after. */
static tc_status copy_sync(fwd_backend *b, void *dst, const void *src, size_t bytes,
                           enum cudaMemcpyKind kind)
{
    gpu_backend *g = (gpu_backend *)b;
    if (!bytes)
        return TC_OK;
    tc_status st = TC_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, kind, cur_stream(g)));
    if (st == TC_OK)
        st = TC_CUDA_TRY(cudaStreamSynchronize(cur_stream(g)));
    return st;
}

static tc_status gpu_upload(fwd_backend *b, void *dst, const void *host, size_t bytes)
{
    return copy_sync(b, dst, host, bytes, cudaMemcpyHostToDevice);
}

static tc_status gpu_download(fwd_backend *b, void *host, const void *src, size_t bytes)
{
    return copy_sync(b, host, src, bytes, cudaMemcpyDeviceToHost);
}

static tc_status gpu_upload_async(fwd_backend *b, void *dst, const void *host, size_t bytes)
{
    gpu_backend *g = (gpu_backend *)b;
    if (!bytes)
        return TC_OK;
    return TC_CUDA_TRY(cudaMemcpyAsync(dst, host, bytes, cudaMemcpyHostToDevice, cur_stream(g)));
}

static tc_status gpu_sync(fwd_backend *b)
{
    return TC_CUDA_TRY(cudaStreamSynchronize(cur_stream((gpu_backend *)b)));
}

static void *gpu_stream(fwd_backend *b)
{
    return cur_stream((gpu_backend *)b);
}

static size_t gpu_mem_available(fwd_backend *b)
{
    (void)b;
    size_t free_b = 0, total = 0;
    return cudaMemGetInfo(&free_b, &total) == cudaSuccess ? free_b : 0;
}

static void gpu_pin_host(fwd_backend *b, void *p, size_t bytes)
{
    (void)b;
    if (cudaHostRegister(p, bytes, cudaHostRegisterDefault) != cudaSuccess)
        (void)cudaGetLastError(); /* stays pageable: slower uploads only */
}

static void gpu_unpin_host(fwd_backend *b, void *p)
{
    (void)b;
    if (cudaHostUnregister(p) != cudaSuccess)
        (void)cudaGetLastError();
}

static size_t gpu_weight_elem_bytes(tc_dtype dt)
{
    return tc_dtype_bits(dt) / 8;
}

static tc_status gpu_upload_weight(fwd_backend *b, void *w, size_t off, const void *host,
                                   tc_dtype dt, size_t n)
{
    const size_t es = tc_dtype_bits(dt) / 8;
    return gpu_upload(b, (char *)w + off * es, host, n * es);
}

static void gpu_use_side_stream(fwd_backend *b, bool side)
{
    (void)b;
    tl_side = side;
}

static tc_status gpu_thread_enter(fwd_backend *b)
{
    return TC_CUDA_TRY(cudaSetDevice(((gpu_backend *)b)->device));
}

static tc_status gpu_upload_weight_bg(fwd_backend *b, void *w, size_t off, const void *host,
                                      tc_dtype dt, size_t n)
{
    gpu_backend *g = (gpu_backend *)b;
    const size_t es = tc_dtype_bits(dt) / 8;
    if (!n)
        return TC_OK;
    tc_status st = TC_CUDA_TRY(cudaMemcpyAsync((char *)w + off * es, host, n * es,
                                               cudaMemcpyHostToDevice, g->xfer));
    if (st == TC_OK)
        st = TC_CUDA_TRY(cudaStreamSynchronize(g->xfer));
    return st;
}

static tc_status gpu_embed(fwd_backend *b, float *out32, const void *table, tc_dtype dt,
                           int64_t row0, int64_t rows, int64_t col0, int64_t cols, int64_t H,
                           const fwd_batch *bt)
{
    gpu_backend *g = (gpu_backend *)b;
    return tc_fwd_embed_cuda(out32, table, dt, row0, rows, col0, cols, H, bt->ids, bt->n_tokens,
                             cur_stream(g));
}

static tc_status gpu_round_f32(fwd_backend *b, void *out, tc_dtype dt, const float *in32, size_t n)
{
    return tc_fwd_round_f32_cuda(out, dt, in32, n, cur_stream((gpu_backend *)b));
}

static tc_status gpu_to_f32(fwd_backend *b, float *out32, const void *in, tc_dtype dt, size_t n)
{
    return tc_fwd_to_f32_cuda(out32, in, dt, n, cur_stream((gpu_backend *)b));
}

static tc_status gpu_rmsnorm(fwd_backend *b, void *out, const void *in, const void *w, tc_dtype dt,
                             int64_t T, int64_t H, float eps)
{
    gpu_backend *g = (gpu_backend *)b;
    if (g->fused_maxima)
        return tc_fwd_rmsnorm_max_cuda(out, in, w, dt, T, H, eps, NULL, cur_stream(g));
    return tc_fwd_rmsnorm_cuda(out, in, w, dt, T, H, eps, cur_stream(g));
}

static tc_status grow(void **p, size_t *have, size_t need, size_t elem)
{
    if (*have >= need)
        return TC_OK;
    cudaFree(*p);
    *p = NULL;
    *have = 0;
    tc_status st = TC_CUDA_TRY(cudaMalloc(p, need * elem));
    if (st == TC_OK)
        *have = need;
    return st;
}

/* Row-major C[M, N] = A[M, K] B[N, K]^T (B "transposed": weights, keys). */
static tc_status gemm_nt(gpu_backend *g, void *c, cudaDataType_t ct, const void *a, const void *bm,
                         cudaDataType_t abt, int64_t M, int64_t N, int64_t K, float alpha,
                         int64_t lda, int64_t ldb, int64_t ldc, int batch, long long sa,
                         long long sb, long long sc)
{
    const float beta = 0.0f;
    if (M > INT32_MAX || N > INT32_MAX || K > INT32_MAX)
        return tc_fail(TC_E_INTERNAL, "GEMM [%lld x %lld x %lld] exceeds cuBLAS int sizes",
                       (long long)M, (long long)N, (long long)K);
    /* One matrix (the linears) through cublasGemmEx: the strided-batched
     * entry point with batch 1 took a kernel at half the speed for the
     * 8B qkv shape (bench/gemm_algos.cu "batched1" rows). */
    if (batch == 1)
        return blas_ok(cublasGemmEx(cur_blas(g), CUBLAS_OP_T, CUBLAS_OP_N, (int)N, (int)M, (int)K,
                                    &alpha, bm, abt, (int)ldb, a, abt, (int)lda, &beta, c, ct,
                                    (int)ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                       "GemmEx (NT)");
    return blas_ok(cublasGemmStridedBatchedEx(cur_blas(g), CUBLAS_OP_T, CUBLAS_OP_N, (int)N, (int)M,
                                              (int)K, &alpha, bm, abt, (int)ldb, sb, a, abt,
                                              (int)lda, sa, &beta, c, ct, (int)ldc, sc, batch,
                                              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                   "GemmStridedBatchedEx (NT)");
}

/* Row-major C[M, N] = A[M, K] B[K, N] (probabilities times values). */
static tc_status gemm_nn(gpu_backend *g, void *c, cudaDataType_t ct, const void *a, const void *bm,
                         cudaDataType_t abt, int64_t M, int64_t N, int64_t K, int batch,
                         long long sa, long long sb, long long sc)
{
    const float alpha = 1.0f, beta = 0.0f;
    return blas_ok(cublasGemmStridedBatchedEx(cur_blas(g), CUBLAS_OP_N, CUBLAS_OP_N, (int)N, (int)M,
                                              (int)K, &alpha, bm, abt, (int)N, sb, a, abt, (int)K,
                                              sa, &beta, c, ct, (int)N, sc, batch,
                                              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                   "GemmStridedBatchedEx (NN)");
}

static tc_status gpu_linear(fwd_backend *b, void *out, bool out_f32, const void *in, const void *w,
                            const void *bias, tc_dtype dt, int64_t M, int64_t N, int64_t K)
{
    gpu_backend *g = (gpu_backend *)b;
    if (M == 0)
        return TC_OK;
    if (!bias)
        return gemm_nt(g, out, out_f32 ? CUDA_R_32F : cuda_type(dt), in, w, cuda_type(dt), M, N,
                       K, 1.0f, K, K, N, 1, 0, 0, 0);
    /* The bias joins the f32 accumulator before the single rounding, as
     * torch's addmm epilogue does. */
    tc_status st = grow((void **)&g->gemm32, &g->gemm32_elems, (size_t)(M * N), sizeof(float));
    if (st == TC_OK)
        st = gemm_nt(g, g->gemm32, CUDA_R_32F, in, w, cuda_type(dt), M, N, K, 1.0f, K, K, N, 1, 0,
                     0, 0);
    if (st == TC_OK)
        st = tc_fwd_bias_cuda(out, out_f32, g->gemm32, bias, dt, M, N, cur_stream(g));
    return st;
}

static tc_status gpu_rope_split(fwd_backend *b, void *q, void *k, void *v, const void *qkv,
                                tc_dtype dt, const fwd_attn *a, const fwd_batch *bt)
{
    return tc_fwd_rope_split_cuda(q, k, v, qkv, dt, a->heads, a->kv_heads, a->head_dim,
                                  bt->n_tokens, bt->pos, bt->seq_start, bt->seq_len, bt->cos,
                                  bt->sin, cur_stream((gpu_backend *)b));
}

/* omax: NULL, or the column maxima of o (attention_max); the fused kernel
 * takes them in its epilogue, the cuBLAS path by a pass over o. */
static tc_status attention(fwd_backend *b, void *o, const void *q, const void *k, const void *v,
                           tc_dtype dt, const fwd_attn *a, const fwd_batch *bt, float *omax)
{
    gpu_backend *g = (gpu_backend *)b;
    const int64_t nh = a->heads, nkv = a->kv_heads, d = a->head_dim, gq = nh / nkv;
    const size_t es = tc_dtype_bits(dt) / 8;
    const cudaDataType_t ct = cuda_type(dt);
    tc_status st = TC_OK;
    if (g->fused_attention && tc_fwd_attention_fused_supported(dt, d) &&
        (!omax || tc_fwd_attention_max_supported(nh, nkv, d))) {
        /* One launch per run of consecutive sequences of equal length. */
        for (int s = 0; st == TC_OK && s < bt->n_seqs;) {
            const int64_t os = bt->h_offsets[s], ls = bt->h_offsets[s + 1] - os;
            int n = 1;
            while (s + n < bt->n_seqs && n < 65535 &&
                   bt->h_offsets[s + n + 1] - bt->h_offsets[s + n] == ls)
                n++;
            st = tc_fwd_attention_fused_cuda((char *)o + (size_t)(os * nh * d) * es,
                                             (const char *)q + (size_t)(os * nh * d) * es,
                                             (const char *)k + (size_t)(os * nkv * d) * es,
                                             (const char *)v + (size_t)(os * nkv * d) * es, dt, nh,
                                             nkv, d, ls, n, a->scale, omax, cur_stream(g));
            s += n;
        }
        return st;
    }
    size_t need_s = (size_t)(nh * bt->max_len * bt->max_len);
    size_t have_p = g->scores_elems;
    if (need_s > g->scores_elems) {
        st = grow((void **)&g->scores, &g->scores_elems, need_s, sizeof(float));
        if (st == TC_OK)
            st = grow(&g->probs, &have_p, need_s, sizeof(float)); /* widest dtype */
    }
    if (st == TC_OK)
        st = grow(&g->og, &g->og_elems, (size_t)(bt->n_tokens * nh * d), sizeof(float));
    /* Consecutive sequences of equal length share one batched call: their
     * per-group regions are evenly spaced (a sequence's q region holds nkv
     * groups of ls*g*d values), as many as the score buffer holds. */
    for (int s = 0; st == TC_OK && s < bt->n_seqs;) {
        const int64_t os = bt->h_offsets[s], ls = bt->h_offsets[s + 1] - os;
        const int64_t fit = (int64_t)(g->scores_elems / (size_t)(nh * ls * ls));
        int n = 1;
        while (s + n < bt->n_seqs && n < fit &&
               bt->h_offsets[s + n + 1] - bt->h_offsets[s + n] == ls)
            n++;
        const int batch = (int)(n * nkv);
        const char *qs = (const char *)q + (size_t)(os * nh * d) * es;
        const char *ks = (const char *)k + (size_t)(os * nkv * d) * es;
        const char *vs = (const char *)v + (size_t)(os * nkv * d) * es;
        char *os_out = (char *)g->og + (size_t)(os * nh * d) * es;
        /* S[grp] = Q[grp] K[grp]^T * scale: [ls*g, ls] per KV group. */
        st = gemm_nt(g, g->scores, CUDA_R_32F, qs, ks, ct, ls * gq, ls, d, a->scale, d, d, ls, batch,
                     (long long)(ls * gq * d), (long long)(ls * d), (long long)(ls * gq * ls));
        if (st == TC_OK)
            st = tc_fwd_softmax_cuda(g->probs, g->scores, dt, (int64_t)batch * ls * gq, ls, gq,
                                     cur_stream(g));
        /* O[grp] = P[grp] V[grp]: [ls*g, d]. */
        if (st == TC_OK)
            st = gemm_nn(g, os_out, ct, g->probs, vs, ct, ls * gq, d, ls, batch,
                         (long long)(ls * gq * ls), (long long)(ls * d), (long long)(ls * gq * d));
        s += n;
    }
    if (st == TC_OK)
        st = tc_fwd_gather_heads_cuda(o, g->og, dt, nh, nkv, d, bt->n_tokens, bt->seq_start,
                                      bt->seq_len, cur_stream(g));
    if (st == TC_OK && omax)
        st = tc_fwd_absmax_cols_cuda(omax, o, 0, NULL, dt, bt->n_tokens, nh * d, 0, nh * d,
                                     cur_stream(g));
    return st;
}

static tc_status gpu_attention(fwd_backend *b, void *o, const void *q, const void *k, const void *v,
                               tc_dtype dt, const fwd_attn *a, const fwd_batch *bt)
{
    return attention(b, o, q, k, v, dt, a, bt, NULL);
}

static tc_status gpu_attention_max(fwd_backend *b, void *o, const void *q, const void *k,
                                   const void *v, tc_dtype dt, const fwd_attn *a,
                                   const fwd_batch *bt, float *acc)
{
    return attention(b, o, q, k, v, dt, a, bt, acc);
}

static tc_status gpu_rmsnorm_max(fwd_backend *b, void *out, const void *in, const void *w,
                                 tc_dtype dt, int64_t T, int64_t H, float eps, float *acc)
{
    return tc_fwd_rmsnorm_max_cuda(out, in, w, dt, T, H, eps, acc, cur_stream((gpu_backend *)b));
}

static tc_status gpu_rope_split_max(fwd_backend *b, void *q, void *k, void *v, const void *qkv,
                                    tc_dtype dt, const fwd_attn *a, const fwd_batch *bt,
                                    float *acc_q, float *acc_k, float *acc_v)
{
    return tc_fwd_rope_split_max_cuda(q, k, v, qkv, dt, a->heads, a->kv_heads, a->head_dim,
                                      bt->n_tokens, bt->pos, bt->seq_start, bt->seq_len, bt->cos,
                                      bt->sin, acc_q, acc_k, acc_v, cur_stream((gpu_backend *)b));
}

static tc_status gpu_residual_add(fwd_backend *b, void *h, const float *p32, const void *bias,
                                  tc_dtype dt, int64_t T, int64_t H)
{
    return tc_fwd_residual_add_cuda(h, p32, bias, dt, T, H, cur_stream((gpu_backend *)b));
}

static tc_status gpu_silu_mul(fwd_backend *b, void *out, const void *gv, const void *u, tc_dtype dt,
                              size_t n)
{
    return tc_fwd_silu_mul_cuda(out, gv, u, dt, n, cur_stream((gpu_backend *)b));
}

static tc_status gpu_zero_f32(fwd_backend *b, float *p, size_t n)
{
    return TC_CUDA_TRY(cudaMemsetAsync(p, 0, n * sizeof *p, cur_stream((gpu_backend *)b)));
}

static tc_status gpu_expert_add(fwd_backend *b, float *acc32, const void *y, const float *w32,
                                tc_dtype dt, int64_t T, int64_t H)
{
    return tc_fwd_expert_add_cuda(acc32, y, w32, dt, T, H, cur_stream((gpu_backend *)b));
}

static tc_status gpu_residual_add_max(fwd_backend *b, void *h, const float *p32, const void *bias,
                                      tc_dtype dt, int64_t T, int64_t H, float *acc)
{
    return tc_fwd_residual_add_max_cuda(h, p32, bias, dt, T, H, acc, cur_stream((gpu_backend *)b));
}

static tc_status gpu_silu_mul_max(fwd_backend *b, void *out, const void *gv, const void *u,
                                  tc_dtype dt, int64_t T, int64_t I, float *acc_g, float *acc_u,
                                  float *acc_out)
{
    return tc_fwd_silu_mul_max_cuda(out, gv, u, dt, T, I, acc_g, acc_u, acc_out,
                                    cur_stream((gpu_backend *)b));
}

/* kernels/fake_quant.cu takes the kinds as numbers (it may not include fwd/). */
_Static_assert(TC_FQ_INT8 == 1 && TC_FQ_FP8 == 2 && TC_FQ_NVFP4 == 3,
               "kernels/fake_quant.cu's quantizer kinds");

static tc_status gpu_act_quant(fwd_backend *b, void *out, const void *x, tc_dtype dt, int64_t T,
                               int64_t K, int kind, bool per_token, float scale, float row_static,
                               tc_fq_clamp clamp, float *row)
{
    return tc_fq_act_quant_cuda(out, x, dt, T, K, kind, per_token, scale, row_static, clamp.on,
                                clamp.lo, clamp.hi, row, cur_stream((gpu_backend *)b));
}

static tc_status gpu_dequant(fwd_backend *b, void *out, bool out_f32, const float *acc,
                             const float *row, const float *col, bool per_channel, tc_dtype dt,
                             int64_t T, int64_t N)
{
    return tc_fq_dequant_cuda(out, out_f32, acc, row, col, per_channel, dt, T, N,
                              cur_stream((gpu_backend *)b));
}

static tc_status gpu_div_cols(fwd_backend *b, void *x, const float *s, tc_dtype dt, int64_t T,
                              int64_t K)
{
    return tc_fq_div_cols_cuda(x, s, dt, T, K, cur_stream((gpu_backend *)b));
}

static tc_status gpu_qdq(fwd_backend *b, void *x, tc_dtype dt, size_t n, int kind, float to_q,
                         float back)
{
    return tc_fq_qdq_cuda(x, dt, n, kind, to_q, back, cur_stream((gpu_backend *)b));
}

static tc_status gpu_absmax_cols(fwd_backend *b, float *acc, const void *x, bool x_f32,
                                 const void *bias, tc_dtype dt, int64_t rows, int64_t ld,
                                 int64_t c0, int64_t cols)
{
    return tc_fwd_absmax_cols_cuda(acc, x, x_f32, bias, dt, rows, ld, c0, cols,
                                   cur_stream((gpu_backend *)b));
}

static tc_status gpu_absmax_cols_qkv(fwd_backend *b, float *acc_q, float *acc_k, float *acc_v,
                                     const void *qkv, tc_dtype dt, int64_t rows, int64_t nq,
                                     int64_t nkv)
{
    return tc_fwd_absmax_cols_qkv_cuda(acc_q, acc_k, acc_v, qkv, dt, rows, nq, nkv,
                                       cur_stream((gpu_backend *)b));
}

static tc_status gpu_absmax_rows(fwd_backend *b, float *out, const void *w, tc_dtype dt,
                                 int64_t rows, int64_t cols)
{
    return tc_fwd_absmax_rows_cuda(out, w, dt, rows, cols, cur_stream((gpu_backend *)b));
}

static tc_status gpu_smooth_cols(fwd_backend *b, void *w, tc_dtype dt, int64_t rows, int64_t cols,
                                 const double *s, bool divide)
{
    return tc_sq_smooth_cols_cuda(w, dt, rows, cols, s, divide, cur_stream((gpu_backend *)b));
}

static tc_status gpu_quantize_i8(fwd_backend *b, int8_t *q, const void *w, tc_dtype dt,
                                 tc_dtype qdt,
                                 int64_t rows, int64_t cols, const float *scale, int mode)
{
    return tc_sq_quantize_i8_cuda(q, w, dt, qdt, rows, cols, scale, mode,
                                  cur_stream((gpu_backend *)b));
}

static const fwd_ops gpu_ops = {
    .name = "cuda",
    .destroy = gpu_destroy,
    .alloc = gpu_alloc,
    .release = gpu_release,
    .upload = gpu_upload,
    .download = gpu_download,
    .upload_async = gpu_upload_async,
    .sync = gpu_sync,
    .stream = gpu_stream,
    .mem_available = gpu_mem_available,
    .pin_host = gpu_pin_host,
    .unpin_host = gpu_unpin_host,
    .weight_elem_bytes = gpu_weight_elem_bytes,
    .upload_weight = gpu_upload_weight,
    .thread_enter = gpu_thread_enter,
    .use_side_stream = gpu_use_side_stream,
    .upload_weight_bg = gpu_upload_weight_bg,
    .embed = gpu_embed,
    .round_f32 = gpu_round_f32,
    .rmsnorm = gpu_rmsnorm,
    .linear = gpu_linear,
    .rope_split = gpu_rope_split,
    .attention = gpu_attention,
    .residual_add = gpu_residual_add,
    .silu_mul = gpu_silu_mul,
    .expert_add = gpu_expert_add,
    .zero_f32 = gpu_zero_f32,
    .to_f32 = gpu_to_f32,
    .absmax_cols = gpu_absmax_cols,
    .absmax_cols_qkv = gpu_absmax_cols_qkv,
    .residual_add_max = gpu_residual_add_max,
    .act_quant = gpu_act_quant,
    .dequant = gpu_dequant,
    .div_cols = gpu_div_cols,
    .qdq = gpu_qdq,
    .silu_mul_max = gpu_silu_mul_max,
    .rmsnorm_max = gpu_rmsnorm_max,
    .rope_split_max = gpu_rope_split_max,
    .attention_max = gpu_attention_max,
    .absmax_rows = gpu_absmax_rows,
    .smooth_cols = gpu_smooth_cols,
    .quantize_i8 = gpu_quantize_i8,
};

/* A cuBLAS handle on `stream`: float32 accumulation, no TF32, and split-K
 * partial sums in float32 too (allowing the output type for them changed
 * the 8B-shape benchmark by under 3%, so accuracy wins). */
static tc_status blas_create(cudaStream_t stream, cublasHandle_t *h)
{
    tc_status st = blas_ok(cublasCreate(h), "cublasCreate");
    if (st == TC_OK)
        st = blas_ok(cublasSetStream(*h, stream), "cublasSetStream");
    if (st == TC_OK)
        st = blas_ok(cublasSetMathMode(*h, (cublasMath_t)(CUBLAS_DEFAULT_MATH |
                                                CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)),
                     "cublasSetMathMode");
    return st;
}

tc_status tc_fwd_gpu_backend(const tc_gpu_info *gpu, int64_t max_tokens, int64_t max_len,
                             const fwd_attn *a, fwd_backend **out)
{
    *out = NULL;
    gpu_backend *g = calloc(1, sizeof *g);
    if (!g)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    g->ops = gpu_ops;
    g->base.ops = &g->ops;
    g->device = gpu->device;
    tc_status st = TC_CUDA_TRY(cudaSetDevice(gpu->device));
    /* The side stream runs a method's work on the previous layer (the
     * SmoothQuant hook) while the host waits for it: at the highest
     * priority its few kernels take SMs as the next layer's GEMM blocks
     * retire instead of queueing behind them, and the host gets back to
     * queueing work sooner. But a GEMM that loses SMs to them mid-wave
     * runs a tail: TRTCONV_STREAM_PRIORITY=equal (both streams at the
     * default) or =main (the forward pass first) measure that trade
     * (docs/forward.md). */
    int prio_least = 0, prio_greatest = 0;
    if (st == TC_OK)
        st = TC_CUDA_TRY(cudaDeviceGetStreamPriorityRange(&prio_least, &prio_greatest));
    const char *prio = getenv("TRTCONV_STREAM_PRIORITY");
    const bool main_first = prio && strcmp(prio, "main") == 0;
    const bool equal = prio && strcmp(prio, "equal") == 0;
    if (prio && *prio && !main_first && !equal && strcmp(prio, "side") != 0)
        tc_log(TC_LOG_WARNING, "TRTCONV_STREAM_PRIORITY=%s is not side, main or equal: side (the "
               "default) is used", prio);
    if (st == TC_OK)
        st = TC_CUDA_TRY(cudaStreamCreateWithPriority(&g->main, cudaStreamNonBlocking,
                                                      main_first ? prio_greatest : prio_least));
    if (st == TC_OK)
        st = TC_CUDA_TRY(cudaStreamCreateWithPriority(&g->side, cudaStreamNonBlocking,
                                                      main_first || equal ? prio_least
                                                                          : prio_greatest));
    if (st == TC_OK)
        st = TC_CUDA_TRY(cudaStreamCreateWithFlags(&g->xfer, cudaStreamNonBlocking));
    if (st == TC_OK)
        st = blas_create(g->main, &g->blas_main);
    if (st == TC_OK)
        st = blas_create(g->side, &g->blas_side);
    const char *att = getenv("TRTCONV_ATTENTION");
    int cc_major = 0;
    if (st == TC_OK)
        st = TC_CUDA_TRY(cudaDeviceGetAttribute(&cc_major, cudaDevAttrComputeCapabilityMajor,
                                                gpu->device));
    /* The fused kernel uses sm_80's tensor-core instructions. */
    g->fused_attention = !(att && strcmp(att, "cublas") == 0) && cc_major >= 8;
    const char *maxima = getenv("TRTCONV_CALIB_MAXIMA");
    g->fused_maxima = maxima && strcmp(maxima, "fused") == 0;
    if (!g->fused_maxima) {
        g->ops.rmsnorm_max = NULL;
        g->ops.rope_split_max = NULL;
        g->ops.attention_max = NULL;
    }
    /* Room for the scores of up to 8 sequences of max_len at once (fewer
     * when a batch cannot hold that many); none for the fused kernel (a
     * float32 forward, which it does not cover, grows them on demand). */
    int64_t seqs = max_len > 0 ? max_tokens / max_len : 1;
    seqs = seqs < 1 ? 1 : seqs > 8 ? 8 : seqs;
    size_t s_elems = (size_t)(a->heads * max_len * max_len * seqs);
    size_t have_p = 0;
    const bool scores = !g->fused_attention || !tc_fwd_attention_fused_supported(TC_DT_F16,
                                                                                 a->head_dim);
    if (st == TC_OK && scores)
        st = grow((void **)&g->scores, &g->scores_elems, s_elems, sizeof(float));
    if (st == TC_OK && scores)
        st = grow(&g->probs, &have_p, s_elems, sizeof(float));
    if (st == TC_OK && scores)
        st = grow(&g->og, &g->og_elems, (size_t)(max_tokens * a->heads * a->head_dim), sizeof(float));
    if (st != TC_OK) {
        gpu_destroy(&g->base);
        return st;
    }
    *out = &g->base;
    return TC_OK;
}

#else /* !TRTCONV_HAVE_CUDA */

tc_status tc_fwd_gpu_backend(const tc_gpu_info *gpu, int64_t max_tokens, int64_t max_len,
                             const fwd_attn *a, fwd_backend **out)
{
    (void)gpu;
    (void)max_tokens;
    (void)max_len;
    (void)a;
    *out = NULL;
    return tc_fail(TC_E_USAGE, "this trtconv was built without CUDA; the forward pass runs on the CPU");
}

#endif
