/* fwd_backend.h (private): the operations of the forward pass that run on a
 * device: the CUDA backend (fwd_gpu.c + kernels/fwd.cu) and the C thread
 * backend (fwd_cpu.c). Same semantics and the same rounding points; only
 * float32 summation order differs.
 *
 * Memory: every pointer is backend memory (device memory for CUDA, host
 * memory for the CPU) obtained from alloc, except the explicit host
 * arguments of upload/download. `dt` is the activation dtype (F16, BF16,
 * F32). Weights are in the backend's own representation (load_weight): the
 * model dtype on the GPU, float32 on the CPU. Operations may be queued
 * asynchronously; download and sync wait. */
#ifndef TRTCONV_FWD_BACKEND_H
#define TRTCONV_FWD_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "trtconv/core/dtype.h"
#include "trtconv/fwd/fake_quant.h"
#include "trtconv/mpi/gpu.h"
#include "trtconv/core/status.h"

/* Per-micro-batch geometry, resident in backend memory where kernels need it. */
typedef struct fwd_batch {
    int64_t n_tokens;        /* T */
    int n_seqs;
    int64_t max_len;
    const int64_t *h_offsets;     /* host: n_seqs + 1 token offsets */
    const int32_t *ids;           /* backend: [T] token ids */
    const int32_t *pos;           /* backend: [T] position within its sequence */
    const int32_t *seq_start;     /* backend: [T] offset of the token's sequence */
    const int32_t *seq_len;       /* backend: [T] length of the token's sequence */
    const float *cos, *sin;       /* backend: [max_len, head_dim/2], dtype-rounded values */
} fwd_batch;

/* Attention geometry of one rank (local heads). */
typedef struct fwd_attn {
    int64_t heads, kv_heads, head_dim;   /* local */
    float scale;                          /* head_dim^-0.5 */
} fwd_attn;

typedef struct fwd_backend fwd_backend;

typedef struct fwd_ops {
    const char *name;
    void (*destroy)(fwd_backend *b);
    tc_status (*alloc)(fwd_backend *b, size_t bytes, void **p);
    void (*release)(fwd_backend *b, void *p);
    tc_status (*upload)(fwd_backend *b, void *dst, const void *host, size_t bytes);
    tc_status (*download)(fwd_backend *b, void *host, const void *src, size_t bytes);
    /* upload without waiting for it (nor for the work queued before it):
     * `host` must stay unchanged until the next sync or download. Lets a
     * caller queue several uploads and kernels and wait once, where upload
     * waits each time (for the GPU's earlier work too). */
    tc_status (*upload_async)(fwd_backend *b, void *dst, const void *host, size_t bytes);
    tc_status (*sync)(fwd_backend *b);
    void *(*stream)(fwd_backend *b);      /* cudaStream_t, or NULL */
    /* Bytes the backend could still allocate (the GPU's free memory; the
     * host's available memory for the CPU). */
    size_t (*mem_available)(fwd_backend *b);
    /* Make a host buffer faster to upload from (page-locked on the GPU;
     * nothing on the CPU) until unpin_host; failure only costs speed. */
    void (*pin_host)(fwd_backend *b, void *p, size_t bytes);
    void (*unpin_host)(fwd_backend *b, void *p);
    /* Weights: a tensor of n elements of model dtype dt takes
     * n * weight_elem_bytes(dt) bytes of backend memory (alloc); upload_weight
     * fills elements [off, off + n) of it from a host slice in dtype dt. */
    size_t (*weight_elem_bytes)(tc_dtype dt);
    tc_status (*upload_weight)(fwd_backend *b, void *w, size_t off, const void *host, tc_dtype dt,
                               size_t n);
    /* From a helper thread while the engine computes (the layer read-ahead
     * of fwd_stream.c): thread_enter once in that thread (the CUDA device),
     * then upload_weight_bg as upload_weight, through the backend's own
     * transfer stream so that it does not wait behind the computation;
     * complete (host buffer reusable) on return. */
    tc_status (*thread_enter)(fwd_backend *b);
    /* Until called again with false, the operations of the calling host
     * thread (only that thread's: the choice is per thread) go to a second
     * stream that runs beside the first (a method's work on one layer next
     * to the next layer's forward pass); sync waits for that stream. May be
     * NULL (the CPU's operations are synchronous). */
    void (*use_side_stream)(fwd_backend *b, bool side);
    tc_status (*upload_weight_bg)(fwd_backend *b, void *w, size_t off, const void *host,
                                  tc_dtype dt, size_t n);
    /* out32[T, H] = 0, then row `id - row0` (when in [0, rows)) of the table
     * [rows, cols] (loaded from dtype dt) into columns [col0, col0 + cols). */
    tc_status (*embed)(fwd_backend *b, float *out32, const void *table, tc_dtype dt,
                       int64_t row0, int64_t rows, int64_t col0, int64_t cols, int64_t H,
                       const fwd_batch *bt);
    /* out[n] (dt) = round(in32[n]). */
    tc_status (*round_f32)(fwd_backend *b, void *out, tc_dtype dt, const float *in32, size_t n);
    /* out[T, H] = round(w * round(x * rsqrt(mean(x^2) + eps))), x = in as f32. */
    tc_status (*rmsnorm)(fwd_backend *b, void *out, const void *in, const void *w, tc_dtype dt,
                         int64_t T, int64_t H, float eps);
    /* out[M, N] = in[M, K] W[N, K]^T (+ bias[N]) with f32 accumulation;
     * out is f32 when out_f32 (no rounding), else rounded to dt. */
    tc_status (*linear)(fwd_backend *b, void *out, bool out_f32, const void *in, const void *w,
                        const void *bias, tc_dtype dt, int64_t M, int64_t N, int64_t K);
    /* Split qkv [T, (nh + 2 nkv) d], apply rope to q and k, and store
     * q [seq][kv group][t][g][d], k, v [seq][kv head][t][d]
     * (sequence regions at token offset * nh*d resp. nkv*d). */
    tc_status (*rope_split)(fwd_backend *b, void *q, void *k, void *v, const void *qkv,
                            tc_dtype dt, const fwd_attn *a, const fwd_batch *bt);
    /* o[T, nh*d] = causal softmax(q k^T * scale) v per sequence and head. */
    tc_status (*attention)(fwd_backend *b, void *o, const void *q, const void *k, const void *v,
                           tc_dtype dt, const fwd_attn *a, const fwd_batch *bt);
    /* h[n] = round(h + round(p32 + bias)) over [T, H] (bias may be NULL). */
    tc_status (*residual_add)(fwd_backend *b, void *h, const float *p32, const void *bias,
                              tc_dtype dt, int64_t T, int64_t H);
    /* out[n] = round(round(silu(g)) * u). */
    tc_status (*silu_mul)(fwd_backend *b, void *out, const void *g, const void *u, tc_dtype dt,
                          size_t n);
    /* p[n] = 0 (float32). */
    tc_status (*zero_f32)(fwd_backend *b, float *p, size_t n);
    /* Mixture of experts: acc32[t, :] += round(y[t, :] * w32[t]) for the
     * tokens t with w32[t] != 0 (an expert's output weighted by its routing
     * weight; tokens not routed to the expert are skipped, not multiplied
     * by 0, so an overflow there cannot turn into NaN). y [T, H] in dt. */
    tc_status (*expert_add)(fwd_backend *b, float *acc32, const void *y, const float *w32,
                            tc_dtype dt, int64_t T, int64_t H);
    /* out32[n] = float(in[n]) (dt -> f32, for reports). */
    tc_status (*to_f32)(fwd_backend *b, float *out32, const void *in, tc_dtype dt, size_t n);
    /* Calibration statistics (calib_stats.h). acc[c] = max(acc[c], max over
     * r < rows of |x[r * ld + c0 + c] (+ bias[c])|) for c < cols, where x is
     * float32 when x_f32, else dt, and the bias (dt, may be NULL) is added in
     * float32. Maxima compare the bits of |v| as integers, so a NaN wins and
     * reaches the caller's check. */
    tc_status (*absmax_cols)(fwd_backend *b, float *acc, const void *x, bool x_f32,
                             const void *bias, tc_dtype dt, int64_t rows, int64_t ld, int64_t c0,
                             int64_t cols);
    /* absmax_cols over qkv [rows, nq + 2 nkv] (dt) in one call: columns
     * 0 .. nq into acc_q, the next nkv into acc_k, the last nkv into acc_v.
     * May be NULL: the engine then calls absmax_cols three times. */
    tc_status (*absmax_cols_qkv)(fwd_backend *b, float *acc_q, float *acc_k, float *acc_v,
                                 const void *qkv, tc_dtype dt, int64_t rows, int64_t nq,
                                 int64_t nkv);
    /* out[r] = max over c of |W[r, c]| for a weight of `rows` x `cols` in the
     * backend's weight representation (model dtype dt). */
    tc_status (*absmax_rows)(fwd_backend *b, float *out, const void *w, tc_dtype dt, int64_t rows,
                             int64_t cols);
    /* Calibration forms of residual_add and silu_mul that also take, in the
     * same pass, the maxima absmax_cols would of the same values (results
     * bit for bit those of the plain op followed by absmax_cols). May be
     * NULL: the engine then calls the two. residual_add_max: acc[H] over
     * |p32 + bias| (float32, bias only where given). silu_mul_max over
     * [T, I]: acc_g, acc_u and acc_out over g, u and out. */
    tc_status (*residual_add_max)(fwd_backend *b, void *h, const float *p32, const void *bias,
                                  tc_dtype dt, int64_t T, int64_t H, float *acc);
    tc_status (*silu_mul_max)(fwd_backend *b, void *out, const void *g, const void *u,
                              tc_dtype dt, int64_t T, int64_t I, float *acc_g, float *acc_u,
                              float *acc_out);
    /* The same for the attention block's maxima, NULL together or not at
     * all: rmsnorm_max acc[H] over |out| (the linear inputs after a norm);
     * rope_split_max acc_q[nh*d], acc_k, acc_v[nkv*d] over the q, k and v
     * columns of qkv as read (the projections' outputs, before rope);
     * attention_max acc[nh*d] over |o| (o_proj's input). */
    tc_status (*rmsnorm_max)(fwd_backend *b, void *out, const void *in, const void *w,
                             tc_dtype dt, int64_t T, int64_t H, float eps, float *acc);
    tc_status (*rope_split_max)(fwd_backend *b, void *q, void *k, void *v, const void *qkv,
                                tc_dtype dt, const fwd_attn *a, const fwd_batch *bt,
                                float *acc_q, float *acc_k, float *acc_v);
    tc_status (*attention_max)(fwd_backend *b, void *o, const void *q, const void *k,
                               const void *v, tc_dtype dt, const fwd_attn *a,
                               const fwd_batch *bt, float *acc);
    /* The quantized engines trtconv eval emulates: the steps of
     * fake_quant.h (its tc_fq_* functions define them; the CPU backend runs
     * them, the GPU's kernels match them bit for bit). row, col and s are
     * float32 backend memory. */
    tc_status (*act_quant)(fwd_backend *b, void *out, const void *x, tc_dtype dt, int64_t T,
                           int64_t K, int kind, bool per_token, float scale, float row_static,
                           tc_fq_clamp clamp, float *row);
    tc_status (*dequant)(fwd_backend *b, void *out, bool out_f32, const float *acc,
                         const float *row, const float *col, bool per_channel, tc_dtype dt,
                         int64_t T, int64_t N);
    tc_status (*div_cols)(fwd_backend *b, void *x, const float *s, tc_dtype dt, int64_t T,
                          int64_t K);
    tc_status (*qdq)(fwd_backend *b, void *x, tc_dtype dt, size_t n, int kind, float to_q,
                     float back);
    /* SmoothQuant (sq.c, trtllm-checkpoint.md §5.3): in place on a weight
     * [rows, cols] of model dtype dt, with s[cols] float64 in backend memory:
     * w = round_dt(float(double(w) * s[c])), or w / s[c] when divide (the
     * layernorm weights). torch computes the float64 result and casts it to
     * half through float. */
    tc_status (*smooth_cols)(fwd_backend *b, void *w, tc_dtype dt, int64_t rows, int64_t cols,
                             const double *s, bool divide);
    /* SmoothQuant int8 weights (§5.4): q[r, c] = clamp(rint(v), -127, 127)
     * with rint rounding half to even. The weight w is stored in dt;
     * upstream quantizes it held in qdt (the qkv in the model's float16,
     * the other linears after get_weight's cast to --dtype), so with
     * x = round_qdt(w) and, by mode, v =
     *   FWD_Q_DT_MUL: round_qdt(x * round_qdt(scale[r]))  (qdt tensor x 0-d
     *                 tensor: the scalar is cast to qdt first)
     *   FWD_Q_DT_DIV: round_qdt(x / scale[r])   (GQA qkv per tensor)
     *   FWD_Q_F32_MUL: x * scale[r]             (float32 product)
     * round_qdt is the identity for F32. scale is float32 backend memory,
     * q int8 backend memory [rows, cols]. */
    tc_status (*quantize_i8)(fwd_backend *b, int8_t *q, const void *w, tc_dtype dt, tc_dtype qdt,
                             int64_t rows, int64_t cols, const float *scale, int mode);
} fwd_ops;

enum { FWD_Q_DT_MUL = 0, FWD_Q_DT_DIV = 1, FWD_Q_F32_MUL = 2 };

struct fwd_backend {
    const fwd_ops *ops;
};

/* Backend constructors. Scratch sized for max_tokens tokens and sequences of
 * at most max_len tokens with the given attention geometry. */
tc_status tc_fwd_cpu_backend(int threads, int64_t max_tokens, int64_t max_len,
                             const fwd_attn *a, fwd_backend **out);
tc_status tc_fwd_gpu_backend(const tc_gpu_info *gpu, int64_t max_tokens, int64_t max_len,
                             const fwd_attn *a, fwd_backend **out);

#endif
