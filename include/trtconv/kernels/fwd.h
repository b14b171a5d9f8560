/* fwd_kernels.h: C entry points of the forward-pass kernels (kernels/fwd.cu).
 *
 * Every launcher queues work on `stream` (a cudaStream_t as void *, NULL =
 * legacy default stream) and returns at once; device buffers belong to the
 * caller and must stay valid until the stream has run the work. Element
 * types are F16, BF16 or F32 (`dt`); loads and stores of F16/BF16 use the
 * bit-exact conversions of kernels/fp_bits.cuh (the CPU path's tc_convert),
 * and the file is built with --fmad=false, so every rounding point is the
 * one written in fwd_backend.h. Errors: TC_E_INTERNAL with CUDA's message
 * (launch failures), TC_E_USAGE for an unsupported dtype.
 * Declared always; defined only when TRTCONV_HAVE_CUDA. */
#ifndef TRTCONV_FWD_KERNELS_H
#define TRTCONV_FWD_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include "trtconv/core/dtype.h"
#include "trtconv/core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out[i] = in[i] + in[n + i] + ... + in[(nslices-1) n + i], left to right. */
tc_status tc_sum_slices_f32_cuda(float *out, const float *in, int nslices, size_t n, void *stream);

tc_status tc_fwd_embed_cuda(float *out32, const void *table, tc_dtype dt, int64_t row0,
                            int64_t rows, int64_t col0, int64_t cols, int64_t H,
                            const int32_t *ids, int64_t T, void *stream);
tc_status tc_fwd_round_f32_cuda(void *out, tc_dtype dt, const float *in32, size_t n, void *stream);
tc_status tc_fwd_to_f32_cuda(float *out32, const void *in, tc_dtype dt, size_t n, void *stream);
tc_status tc_fwd_rmsnorm_cuda(void *out, const void *in, const void *w, tc_dtype dt, int64_t T,
                              int64_t H, float eps, void *stream);
/* out[M, N] = in32[M, N] + bias[N]: f32 when out_f32, else rounded to dt. */
tc_status tc_fwd_bias_cuda(void *out, int out_f32, const float *in32, const void *bias,
                           tc_dtype dt, int64_t M, int64_t N, void *stream);
tc_status tc_fwd_rope_split_cuda(void *q, void *k, void *v, const void *qkv, tc_dtype dt,
                                 int64_t nh, int64_t nkv, int64_t d, int64_t T,
                                 const int32_t *pos, const int32_t *seq_start,
                                 const int32_t *seq_len, const float *cos, const float *sin,
                                 void *stream);
/* The same with `threads` per block (0: the default, one row's units in
 * even passes of whole warps; at most 512); the same bytes whatever it is. */
tc_status tc_fwd_rope_split_threads_cuda(void *q, void *k, void *v, const void *qkv, tc_dtype dt,
                                         int64_t nh, int64_t nkv, int64_t d, int64_t T,
                                         const int32_t *pos, const int32_t *seq_start,
                                         const int32_t *seq_len, const float *cos,
                                         const float *sin, int threads, void *stream);
/* p[rows, ls] (dt) = causal softmax of s[rows, ls] (f32, already scaled);
 * row r attends to keys 0 .. (r % (ls * g)) / g. */
tc_status tc_fwd_softmax_cuda(void *p, const float *s, tc_dtype dt, int64_t rows, int64_t ls,
                              int64_t g, void *stream);
/* o[T, nh*d] from og laid out per sequence as [kv head][t][g][d]. */
tc_status tc_fwd_gather_heads_cuda(void *o, const void *og, tc_dtype dt, int64_t nh, int64_t nkv,
                                   int64_t d, int64_t T, const int32_t *seq_start,
                                   const int32_t *seq_len, void *stream);
/* Causal attention without materialised scores (kernels/attention.cu) for
 * a run of n_seqs consecutive sequences of len tokens each: q, k, v in
 * rope_split's layout from the run's first sequence, o [tokens, nh * d]
 * from its first token. Supported: float16 / bfloat16, head_dim 64 or 128
 * (tc_fwd_attention_fused_supported), 16-byte aligned buffers. */
int tc_fwd_attention_fused_supported(tc_dtype dt, int64_t head_dim);
/* omax (may be NULL; [nh * d] float32, the run's heads from 0) gets the
 * column maxima of |o| as stored, as tc_fwd_absmax_cols_cuda over o would
 * (backend.h attention_max), where tc_fwd_attention_max_supported. */
int tc_fwd_attention_max_supported(int64_t nh, int64_t nkv, int64_t head_dim);
tc_status tc_fwd_attention_fused_cuda(void *o, const void *q, const void *k, const void *v,
                                      tc_dtype dt, int64_t nh, int64_t nkv, int64_t head_dim,
                                      int64_t len, int64_t n_seqs, float scale, float *omax,
                                      void *stream);
tc_status tc_fwd_residual_add_cuda(void *h, const float *p32, const void *bias, tc_dtype dt,
                                   int64_t T, int64_t H, void *stream);
tc_status tc_fwd_silu_mul_cuda(void *out, const void *g, const void *u, tc_dtype dt, size_t n,
                               void *stream);
/* acc32[t, :] += round(y[t, :] * w32[t]) where w32[t] != 0 (backend.h expert_add). */
tc_status tc_fwd_expert_add_cuda(float *acc32, const void *y, const float *w32, tc_dtype dt,
                                 int64_t T, int64_t H, void *stream);

/* Calibration maxima (fwd_backend.h absmax_cols / absmax_rows): acc and out
 * are float32 device arrays; x is float32 when x_f32, else dt. */
tc_status tc_fwd_absmax_cols_cuda(float *acc, const void *x, int x_f32, const void *bias,
                                  tc_dtype dt, int64_t rows, int64_t ld, int64_t c0, int64_t cols,
                                  void *stream);
tc_status tc_fwd_absmax_rows_cuda(float *out, const void *w, tc_dtype dt, int64_t rows,
                                  int64_t cols, void *stream);
/* tc_fwd_absmax_cols_cuda with `slab` rows per thread (default 32),
 * `ahead` rows loaded before they are folded in (1, 2, 4 or 8; default 4)
 * and `row_warps` slabs per block (1, 2, 4 or 8; default 1) whose maxima
 * meet in shared memory before the one atomicMax per column and block:
 * swept by bench_fwd_kernels, the same maxima whatever the choice
 * (cuda_calib_fused); slab 0 takes the scalar kernel. */
tc_status tc_fwd_absmax_cols_rows_cuda(float *acc, const void *x, int x_f32, const void *bias,
                                       tc_dtype dt, int64_t rows, int64_t ld, int64_t c0,
                                       int64_t cols, int64_t slab, int ahead, int row_warps,
                                       void *stream);
/* tc_fwd_absmax_cols_cuda over qkv [rows, nq + 2 nkv]'s columns 0 .. nq
 * into acc_q, the next nkv into acc_k and the last nkv into acc_v (backend.h
 * absmax_cols_qkv): one launch where nq and nkv are multiples of 8. */
tc_status tc_fwd_absmax_cols_qkv_cuda(float *acc_q, float *acc_k, float *acc_v, const void *qkv,
                                      tc_dtype dt, int64_t rows, int64_t nq, int64_t nkv,
                                      void *stream);
/* residual_add / silu_mul with the maxima of their values in the same pass
 * (fwd_backend.h residual_add_max / silu_mul_max): the bytes of the plain
 * kernel followed by tc_fwd_absmax_cols_cuda over the same values. */
tc_status tc_fwd_residual_add_max_cuda(void *h, const float *p32, const void *bias, tc_dtype dt,
                                       int64_t T, int64_t H, float *acc, void *stream);
tc_status tc_fwd_silu_mul_max_cuda(void *out, const void *g, const void *u, tc_dtype dt,
                                   int64_t T, int64_t I, float *acc_g, float *acc_u,
                                   float *acc_out, void *stream);
/* The same with `slab` rows per thread instead of the default (32) and
 * `row_warps` such slabs per block (1, 2, 4 or 8): the trade between
 * atomics (one per column per block) and blocks in flight; `ahead`
 * nonzero: each thread issues the next row's loads before this row's
 * arithmetic (more loads in flight, more registers). Swept by
 * bench_fwd_kernels, the same bytes whatever the choice (cuda_calib_fused);
 * the engine takes the defaults. */
tc_status tc_fwd_residual_add_max_rows_cuda(void *h, const float *p32, const void *bias,
                                            tc_dtype dt, int64_t T, int64_t H, float *acc,
                                            int64_t slab, int ahead, int row_warps, void *stream);
tc_status tc_fwd_silu_mul_max_rows_cuda(void *out, const void *g, const void *u, tc_dtype dt,
                                        int64_t T, int64_t I, float *acc_g, float *acc_u,
                                        float *acc_out, int64_t slab, int ahead, int row_warps,
                                        void *stream);

/* kernels/calib_fused.cu: rmsnorm and rope+split over slabs of rows with
 * the column maxima of their values in the same pass (backend.h
 * rmsnorm_max, rope_split_max): the bytes of the plain kernel followed by
 * tc_fwd_absmax_cols_cuda over the same values, whichever kernel runs.
 * tc_fwd_rmsnorm_slab_cuda is the slab kernel alone (acc may be NULL), for
 * the dtypes and widths tc_fwd_rmsnorm_slab_supported accepts (16-byte
 * aligned buffers); tc_fwd_rmsnorm_max_cuda with acc NULL is the plain
 * rmsnorm through the slab kernel where it applies (its bits differ from
 * tc_fwd_rmsnorm_cuda's in the sum's order). */
int tc_fwd_rmsnorm_slab_supported(tc_dtype dt, int64_t H);
tc_status tc_fwd_rmsnorm_slab_cuda(void *out, const void *in, const void *w, tc_dtype dt,
                                   int64_t T, int64_t H, float eps, float *acc, void *stream);
tc_status tc_fwd_rmsnorm_max_cuda(void *out, const void *in, const void *w, tc_dtype dt,
                                  int64_t T, int64_t H, float eps, float *acc, void *stream);
/* acc_q [nh*d], acc_k, acc_v [nkv*d]: maxima over the q, k and v columns
 * of qkv as read (before rope); all NULL: rope+split alone. */
tc_status tc_fwd_rope_split_max_cuda(void *q, void *k, void *v, const void *qkv, tc_dtype dt,
                                     int64_t nh, int64_t nkv, int64_t d, int64_t T,
                                     const int32_t *pos, const int32_t *seq_start,
                                     const int32_t *seq_len, const float *cos, const float *sin,
                                     float *acc_q, float *acc_k, float *acc_v, void *stream);

/* trtconv eval's quantized engines (kernels/fake_quant.cu; the tc_fq_*
 * functions of trtconv/fwd/fake_quant.h are the reference, bit for bit;
 * kind: 1 int8, 2 FP8, as TC_FQ_INT8 / TC_FQ_FP8). */
tc_status tc_fq_act_quant_cuda(void *out, const void *x, tc_dtype dt, int64_t T, int64_t K,
                               int kind, int per_token, float scale, float row_static, int clamp,
                               float clamp_lo, float clamp_hi, float *row, void *stream);
tc_status tc_fq_dequant_cuda(void *out, int out_f32, const float *acc, const float *row,
                             const float *col, int per_channel, tc_dtype dt, int64_t T, int64_t N,
                             void *stream);
tc_status tc_fq_div_cols_cuda(void *x, const float *s, tc_dtype dt, int64_t T, int64_t K,
                              void *stream);
tc_status tc_fq_qdq_cuda(void *x, tc_dtype dt, size_t n, int kind, float to_q, float back,
                         void *stream);

/* SmoothQuant (fwd_backend.h smooth_cols / quantize_i8; CPU reference in
 * src/fwd/fwd_cpu.c, byte-identical results). */
tc_status tc_sq_smooth_cols_cuda(void *w, tc_dtype dt, int64_t rows, int64_t cols, const double *s,
                                 int divide, void *stream);
tc_status tc_sq_quantize_i8_cuda(int8_t *q, const void *w, tc_dtype dt, tc_dtype qdt, int64_t rows,
                                 int64_t cols, const float *scale, int mode, void *stream);

#ifdef __cplusplus
}
#endif

#endif
