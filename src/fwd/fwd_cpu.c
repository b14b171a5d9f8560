/* fwd_cpu.c: the C thread backend of the forward pass (see fwd_backend.h).
 *
 * Weights are converted to float32 once at load (exact for F16/BF16), so the
 * GEMM inner loops are plain float dot products; activations stay in the
 * model dtype and are rounded exactly where the CUDA kernels round them. The
 * work of each operation is split into contiguous ranges over `threads`
 * POSIX threads (created per operation: the CPU path serves CI and machines
 * without a GPU, where per-operation work dwarfs thread creation). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "trtconv/fwd/backend.h"
#include "trtconv/fwd/fake_quant.h"
#include "trtconv/core/log.h"

typedef struct cpu_backend {
    fwd_backend base;
    int threads;
    float *in32;          /* [max_tokens, max K] activations widened for linear() */
    size_t in32_elems;
} cpu_backend;

/* The value torch keeps after an operation in dtype dt. */
static inline float round_dt(float v, tc_dtype dt)
{
    return tc_round_to_dtype(dt, v);
}

/* ---- parallel ranges ---- */

typedef void (*range_fn)(void *ctx, int64_t begin, int64_t end);

typedef struct range_task {
    range_fn fn;
    void *ctx;
    int64_t begin, end;
} range_task;

static void *range_main(void *arg)
{
    range_task *t = arg;
    t->fn(t->ctx, t->begin, t->end);
    return NULL;
}

#define CPU_MAX_THREADS 256

static void parallel_for(int threads, int64_t n, range_fn fn, void *ctx)
{
    if (n <= 0)
        return;
    int k = threads < 1 ? 1 : threads;
    if (k > CPU_MAX_THREADS)
        k = CPU_MAX_THREADS;
    if ((int64_t)k > n)
        k = (int)n;
    range_task tasks[CPU_MAX_THREADS];
    pthread_t tids[CPU_MAX_THREADS];
    bool started[CPU_MAX_THREADS];
    for (int i = 0; i < k; i++) {
        tasks[i] = (range_task){ fn, ctx, n * i / k, n * (i + 1) / k };
        started[i] = false;
    }
    for (int i = 1; i < k; i++)
        started[i] = pthread_create(&tids[i], NULL, range_main, &tasks[i]) == 0;
    range_main(&tasks[0]);
    for (int i = 1; i < k; i++) {
        if (started[i])
            pthread_join(tids[i], NULL);
        else
            range_main(&tasks[i]); /* could not start a thread: do its share here */
    }
}

/* ---- memory ---- */

static void cpu_destroy(fwd_backend *b)
{
    cpu_backend *c = (cpu_backend *)b;
    free(c->in32);
    free(c);
}

static tc_status cpu_alloc(fwd_backend *b, size_t bytes, void **p)
{
    (void)b;
    *p = calloc(1, bytes ? bytes : 1);
    if (!*p)
        return tc_fail(TC_E_INTERNAL, "out of host memory allocating %zu bytes for the forward pass",
                       bytes);
    return TC_OK;
}

static void cpu_release(fwd_backend *b, void *p)
{
    (void)b;
    free(p);
}

static tc_status cpu_copy(fwd_backend *b, void *dst, const void *src, size_t bytes)
{
    (void)b;
    if (bytes)
        memcpy(dst, src, bytes);
    return TC_OK;
}

static tc_status cpu_sync(fwd_backend *b)
{
    (void)b;
    return TC_OK;
}

static void *cpu_stream(fwd_backend *b)
{
    (void)b;
    return NULL;
}

static size_t cpu_mem_available(fwd_backend *b)
{
    (void)b;
    const long pages = sysconf(_SC_AVPHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (size_t)pages * (size_t)size : 0;
}

static void cpu_pin_host(fwd_backend *b, void *p, size_t bytes)
{
    (void)b; (void)p; (void)bytes;
}

static void cpu_unpin_host(fwd_backend *b, void *p)
{
    (void)b; (void)p;
}

static size_t cpu_weight_elem_bytes(tc_dtype dt)
{
    (void)dt;
    return sizeof(float);
}

static tc_status cpu_thread_enter(fwd_backend *b)
{
    (void)b;
    return TC_OK;
}

static tc_status cpu_upload_weight(fwd_backend *b, void *w, size_t off, const void *host,
                                   tc_dtype dt, size_t n)
{
    (void)b;
    tc_convert((float *)w + off, TC_DT_F32, host, dt, n);
    return TC_OK;
}

/* ---- elementwise ---- */

static tc_status cpu_embed(fwd_backend *b, float *out32, const void *table, tc_dtype dt,
                           int64_t row0, int64_t rows, int64_t col0, int64_t cols, int64_t H,
                           const fwd_batch *bt)
{
    (void)b;
    (void)dt; /* the CPU table is float32 already */
    const float *tab = table;
    memset(out32, 0, (size_t)bt->n_tokens * (size_t)H * sizeof(float));
    for (int64_t t = 0; t < bt->n_tokens; t++) {
        int64_t r = (int64_t)bt->ids[t] - row0;
        if (r >= 0 && r < rows)
            memcpy(out32 + t * H + col0, tab + r * cols, (size_t)cols * sizeof(float));
    }
    return TC_OK;
}

static tc_status cpu_round_f32(fwd_backend *b, void *out, tc_dtype dt, const float *in32, size_t n)
{
    (void)b;
    for (size_t i = 0; i < n; i++)
        tc_store_f32(out, dt, i, in32[i]);
    return TC_OK;
}

static tc_status cpu_to_f32(fwd_backend *b, float *out32, const void *in, tc_dtype dt, size_t n)
{
    (void)b;
    for (size_t i = 0; i < n; i++)
        out32[i] = tc_load_f32(in, dt, i);
    return TC_OK;
}

typedef struct norm_ctx {
    void *out;
    const void *in;
    const float *w;
    tc_dtype dt;
    int64_t H;
    float eps;
} norm_ctx;

static void norm_rows(void *arg, int64_t begin, int64_t end)
{
    norm_ctx *c = arg;
    for (int64_t t = begin; t < end; t++) {
        size_t base = (size_t)(t * c->H);
        float ss = 0.0f;
        for (int64_t i = 0; i < c->H; i++) {
            float x = tc_load_f32(c->in, c->dt, base + (size_t)i);
            ss += x * x;
        }
        float r = 1.0f / sqrtf(ss / (float)c->H + c->eps);
        for (int64_t i = 0; i < c->H; i++) {
            float x = tc_load_f32(c->in, c->dt, base + (size_t)i);
            tc_store_f32(c->out, c->dt, base + (size_t)i, c->w[i] * round_dt(x * r, c->dt));
        }
    }
}

static tc_status cpu_rmsnorm(fwd_backend *b, void *out, const void *in, const void *w, tc_dtype dt,
                             int64_t T, int64_t H, float eps)
{
    norm_ctx c = { out, in, w, dt, H, eps };
    parallel_for(((cpu_backend *)b)->threads, T, norm_rows, &c);
    return TC_OK;
}

static tc_status cpu_residual_add(fwd_backend *b, void *h, const float *p32, const void *bias,
                                  tc_dtype dt, int64_t T, int64_t H)
{
    (void)b;
    const float *bs = bias;
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < H; i++) {
            size_t k = (size_t)(t * H + i);
            float p = round_dt(p32[k] + (bs ? bs[i] : 0.0f), dt);
            tc_store_f32(h, dt, k, tc_load_f32(h, dt, k) + p);
        }
    return TC_OK;
}

static tc_status cpu_silu_mul(fwd_backend *b, void *out, const void *g, const void *u, tc_dtype dt,
                              size_t n)
{
    (void)b;
    for (size_t i = 0; i < n; i++) {
        float x = tc_load_f32(g, dt, i);
        float s = round_dt(x / (1.0f + expf(-x)), dt);
        tc_store_f32(out, dt, i, s * tc_load_f32(u, dt, i));
    }
    return TC_OK;
}

static tc_status cpu_zero_f32(fwd_backend *b, float *p, size_t n)
{
    (void)b;
    memset(p, 0, n * sizeof *p);
    return TC_OK;
}

static tc_status cpu_expert_add(fwd_backend *b, float *acc32, const void *y, const float *w32,
                                tc_dtype dt, int64_t T, int64_t H)
{
    (void)b;
    for (int64_t t = 0; t < T; t++) {
        if (w32[t] == 0.0f)
            continue;
        for (int64_t c = 0; c < H; c++) {
            const size_t i = (size_t)(t * H + c);
            acc32[i] += round_dt(tc_load_f32(y, dt, i) * w32[t], dt);
        }
    }
    return TC_OK;
}

/* ---- GEMM ---- */

typedef struct gemm_ctx {
    void *out;
    bool out_f32;
    const float *a;       /* [M, K] f32 */
    const float *w;       /* [N, K] f32 */
    const float *bias;    /* [N] or NULL */
    tc_dtype dt;
    int64_t M, N, K;
} gemm_ctx;

#define GEMM_BLOCK 4

static void gemm_store(const gemm_ctx *c, int64_t m, int64_t n, float acc)
{
    if (c->bias)
        acc += c->bias[n];
    size_t k = (size_t)(m * c->N + n);
    if (c->out_f32)
        ((float *)c->out)[k] = acc;
    else
        tc_store_f32(c->out, c->dt, k, acc);
}

/* Columns [nb*4, ...) of every row: 4x4 register blocks over a shared K loop. */
static void gemm_cols(void *arg, int64_t begin, int64_t end)
{
    const gemm_ctx *c = arg;
    const int64_t K = c->K;
    for (int64_t nb = begin; nb < end; nb++) {
        int64_t n0 = nb * GEMM_BLOCK;
        int64_t nn = c->N - n0 < GEMM_BLOCK ? c->N - n0 : GEMM_BLOCK;
        for (int64_t m0 = 0; m0 < c->M; m0 += GEMM_BLOCK) {
            int64_t mm = c->M - m0 < GEMM_BLOCK ? c->M - m0 : GEMM_BLOCK;
            float acc[GEMM_BLOCK][GEMM_BLOCK] = { { 0 } };
            if (mm == GEMM_BLOCK && nn == GEMM_BLOCK) {
                const float *a0 = c->a + m0 * K, *w0 = c->w + n0 * K;
                for (int64_t k = 0; k < K; k++)
                    for (int i = 0; i < GEMM_BLOCK; i++)
                        for (int j = 0; j < GEMM_BLOCK; j++)
                            acc[i][j] += a0[i * K + k] * w0[j * K + k];
            } else {
                for (int64_t i = 0; i < mm; i++)
                    for (int64_t j = 0; j < nn; j++) {
                        const float *ar = c->a + (m0 + i) * K, *wr = c->w + (n0 + j) * K;
                        float s = 0.0f;
                        for (int64_t k = 0; k < K; k++)
                            s += ar[k] * wr[k];
                        acc[i][j] = s;
                    }
            }
            for (int64_t i = 0; i < mm; i++)
                for (int64_t j = 0; j < nn; j++)
                    gemm_store(c, m0 + i, n0 + j, acc[i][j]);
        }
    }
}

static tc_status cpu_linear(fwd_backend *b, void *out, bool out_f32, const void *in, const void *w,
                            const void *bias, tc_dtype dt, int64_t M, int64_t N, int64_t K)
{
    cpu_backend *c = (cpu_backend *)b;
    size_t need = (size_t)M * (size_t)K;
    if (need > c->in32_elems) {
        float *p = realloc(c->in32, need * sizeof(float));
        if (!p)
            return tc_fail(TC_E_INTERNAL, "out of host memory for a [%lld, %lld] GEMM input",
                           (long long)M, (long long)K);
        c->in32 = p;
        c->in32_elems = need;
    }
    tc_convert(c->in32, TC_DT_F32, in, dt, need);
    gemm_ctx g = { out, out_f32, c->in32, w, bias, dt, M, N, K };
    parallel_for(c->threads, (N + GEMM_BLOCK - 1) / GEMM_BLOCK, gemm_cols, &g);
    return TC_OK;
}

/* ---- rope and attention ---- */

static tc_status cpu_rope_split(fwd_backend *b, void *q, void *k, void *v, const void *qkv,
                                tc_dtype dt, const fwd_attn *a, const fwd_batch *bt)
{
    (void)b;
    const int64_t nh = a->heads, nkv = a->kv_heads, d = a->head_dim, half = d / 2;
    const int64_t g = nh / nkv, width = (nh + 2 * nkv) * d;
    for (int64_t t = 0; t < bt->n_tokens; t++) {
        const int64_t os = bt->seq_start[t], pos = bt->pos[t], tt = t - os;
        const int64_t ls = bt->seq_len[t];
        const float *cs = bt->cos + pos * half, *sn = bt->sin + pos * half;
        const size_t row = (size_t)(t * width);
        for (int64_t h = 0; h < nh + nkv; h++) {
            size_t src = row + (size_t)(h * d);
            size_t dst;
            void *out;
            if (h < nh) {
                out = q;
                dst = (size_t)(os * nh * d + (((h / g) * ls + tt) * g + h % g) * d);
            } else {
                out = k;
                dst = (size_t)(os * nkv * d + ((h - nh) * ls + tt) * d);
            }
            for (int64_t e = 0; e < half; e++) {
                float x1 = tc_load_f32(qkv, dt, src + (size_t)e);
                float x2 = tc_load_f32(qkv, dt, src + (size_t)(e + half));
                float lo = round_dt(x1 * cs[e], dt) + round_dt(-x2 * sn[e], dt);
                float hi = round_dt(x2 * cs[e], dt) + round_dt(x1 * sn[e], dt);
                tc_store_f32(out, dt, dst + (size_t)e, lo);
                tc_store_f32(out, dt, dst + (size_t)(e + half), hi);
            }
        }
        for (int64_t h = 0; h < nkv; h++) {
            size_t src = row + (size_t)((nh + nkv + h) * d);
            size_t dst = (size_t)(os * nkv * d + (h * ls + tt) * d);
            for (int64_t e = 0; e < d; e++)
                tc_store_f32(v, dt, dst + (size_t)e, tc_load_f32(qkv, dt, src + (size_t)e));
        }
    }
    return TC_OK;
}

typedef struct attn_ctx {
    void *o;
    const void *q, *k, *v;
    tc_dtype dt;
    const fwd_attn *a;
    const fwd_batch *bt;
    atomic_int out_of_memory;   /* a thread could not get its scratch */
} attn_ctx;

/* Tasks are (sequence, head) pairs. */
static void attn_tasks(void *arg, int64_t begin, int64_t end)
{
    const attn_ctx *c = arg;
    const int64_t nh = c->a->heads, nkv = c->a->kv_heads, d = c->a->head_dim, g = nh / nkv;
    const size_t L = (size_t)c->bt->max_len;
    /* The sequence's q (this head), k and v (its group) widened to float32
     * once per task: the score and value loops then read floats, instead
     * of converting every element again for every query (O(L d) widenings,
     * not O(L^2 d)). The arithmetic and its order are unchanged. */
    float *p = malloc(L * sizeof(float));
    float *acc = malloc((size_t)d * sizeof(float));
    float *qf = malloc(L * (size_t)d * sizeof(float));
    float *kf = malloc(L * (size_t)d * sizeof(float));
    float *vf = malloc(L * (size_t)d * sizeof(float));
    if (!p || !acc || !qf || !kf || !vf) {
        free(p);
        free(acc);
        free(qf);
        free(kf);
        free(vf);
        atomic_store(&((attn_ctx *)arg)->out_of_memory, 1);
        return;
    }
    for (int64_t task = begin; task < end; task++) {
        const int s = (int)(task / nh);
        const int64_t h = task % nh, grp = h / g;
        const int64_t os = c->bt->h_offsets[s], ls = c->bt->h_offsets[s + 1] - os;
        const size_t qb = (size_t)(os * nh * d), kb = (size_t)(os * nkv * d);
        for (int64_t tt = 0; tt < ls; tt++) {
            const size_t qi = qb + (size_t)(((grp * ls + tt) * g + h % g) * d);
            const size_t ki = kb + (size_t)((grp * ls + tt) * d);
            for (int64_t e = 0; e < d; e++) {
                qf[tt * d + e] = tc_load_f32(c->q, c->dt, qi + (size_t)e);
                kf[tt * d + e] = tc_load_f32(c->k, c->dt, ki + (size_t)e);
                vf[tt * d + e] = tc_load_f32(c->v, c->dt, ki + (size_t)e);
            }
        }
        for (int64_t tt = 0; tt < ls; tt++) {
            const float *qr = qf + tt * d;
            float mx = -INFINITY;
            for (int64_t j = 0; j <= tt; j++) {
                const float *kr = kf + j * d;
                float sdot = 0.0f;
                for (int64_t e = 0; e < d; e++)
                    sdot += qr[e] * kr[e];
                p[j] = sdot * c->a->scale;
                if (p[j] > mx)
                    mx = p[j];
            }
            float sum = 0.0f;
            for (int64_t j = 0; j <= tt; j++) {
                p[j] = expf(p[j] - mx);
                sum += p[j];
            }
            for (int64_t e = 0; e < d; e++)
                acc[e] = 0.0f;
            for (int64_t j = 0; j <= tt; j++) {
                const float w = round_dt(p[j] / sum, c->dt);
                const float *vr = vf + j * d;
                for (int64_t e = 0; e < d; e++)
                    acc[e] += w * vr[e];
            }
            size_t oi = (size_t)((os + tt) * nh * d + h * d);
            for (int64_t e = 0; e < d; e++)
                tc_store_f32(c->o, c->dt, oi + (size_t)e, acc[e]);
        }
    }
    free(p);
    free(acc);
    free(qf);
    free(kf);
    free(vf);
}

static tc_status cpu_attention(fwd_backend *b, void *o, const void *q, const void *k, const void *v,
                               tc_dtype dt, const fwd_attn *a, const fwd_batch *bt)
{
    attn_ctx c = { o, q, k, v, dt, a, bt, 0 };
    parallel_for(((cpu_backend *)b)->threads, (int64_t)bt->n_seqs * a->heads, attn_tasks, &c);
    if (atomic_load(&c.out_of_memory))
        return tc_fail(TC_E_INTERNAL, "out of host memory for attention scratch");
    return TC_OK;
}

/* ---- calibration statistics ---- */

/* |v| as integer bits: for non-negative floats the integer order is the
 * float order, and a NaN (exponent all ones, mantissa non-zero) is larger
 * than every number, so it survives the maximum. */
static uint32_t abs_bits(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return u & 0x7fffffffu;
}

static float bits_float(uint32_t u)
{
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

static tc_status cpu_absmax_cols(fwd_backend *b, float *acc, const void *x, bool x_f32,
                                 const void *bias, tc_dtype dt, int64_t rows, int64_t ld,
                                 int64_t c0, int64_t cols)
{
    (void)b;
    for (int64_t c = 0; c < cols; c++) {
        uint32_t m = abs_bits(acc[c]);
        const float bc = bias ? tc_load_f32(bias, dt, (size_t)c) : 0.0f;
        for (int64_t r = 0; r < rows; r++) {
            const size_t i = (size_t)(r * ld + c0 + c);
            float v = x_f32 ? ((const float *)x)[i] : tc_load_f32(x, dt, i);
            if (bias)
                v += bc;
            const uint32_t a = abs_bits(v);
            if (a > m)
                m = a;
        }
        acc[c] = bits_float(m);
    }
    return TC_OK;
}

static tc_status cpu_act_quant(fwd_backend *b, void *out, const void *x, tc_dtype dt, int64_t T,
                               int64_t K, int kind, bool per_token, float scale, float row_static,
                               tc_fq_clamp clamp, float *row)
{
    (void)b;
    tc_fq_act_rows(out, x, dt, T, K, kind, per_token, scale, row_static, clamp, row);
    return TC_OK;
}

static tc_status cpu_dequant(fwd_backend *b, void *out, bool out_f32, const float *acc,
                             const float *row, const float *col, bool per_channel, tc_dtype dt,
                             int64_t T, int64_t N)
{
    (void)b;
    tc_fq_dequant(out, out_f32, acc, row, col, per_channel, NULL, dt, T, N);
    return TC_OK;
}

static tc_status cpu_div_cols(fwd_backend *b, void *x, const float *s, tc_dtype dt, int64_t T,
                              int64_t K)
{
    (void)b;
    tc_fq_div_cols(x, s, dt, T, K);
    return TC_OK;
}

static tc_status cpu_qdq(fwd_backend *b, void *x, tc_dtype dt, size_t n, int kind, float to_q,
                         float back)
{
    (void)b;
    tc_fq_qdq(x, dt, n, kind, to_q, back);
    return TC_OK;
}

static tc_status cpu_absmax_rows(fwd_backend *b, float *out, const void *w, tc_dtype dt,
                                 int64_t rows, int64_t cols)
{
    (void)b;
    (void)dt; /* CPU weights are float32 */
    const float *wf = w;
    for (int64_t r = 0; r < rows; r++) {
        uint32_t m = 0;
        for (int64_t c = 0; c < cols; c++) {
            const uint32_t a = abs_bits(wf[r * cols + c]);
            if (a > m)
                m = a;
        }
        out[r] = bits_float(m);
    }
    return TC_OK;
}

/* ---- SmoothQuant ---- */

static tc_status cpu_smooth_cols(fwd_backend *b, void *w, tc_dtype dt, int64_t rows, int64_t cols,
                                 const double *s, bool divide)
{
    (void)b;
    float *wf = w; /* CPU weights are float32 holding dt values */
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            const double v = (double)wf[r * cols + c];
            wf[r * cols + c] = round_dt((float)(divide ? v / s[c] : v * s[c]), dt);
        }
    return TC_OK;
}

static int8_t to_i8(float v)
{
    float r = rintf(v); /* the default rounding mode: half to even, as torch.round */
    if (r > 127.0f)
        r = 127.0f;
    if (r < -127.0f)
        r = -127.0f;
    return (int8_t)r;
}

static tc_status cpu_quantize_i8(fwd_backend *b, int8_t *q, const void *w, tc_dtype dt,
                                 tc_dtype qdt, int64_t rows, int64_t cols, const float *scale,
                                 int mode)
{
    (void)b;
    (void)dt; /* the CPU backend holds every weight as float32 */
    const float *wf = w;
    for (int64_t r = 0; r < rows; r++) {
        const float sc = scale[r];
        for (int64_t c = 0; c < cols; c++) {
            const float x = round_dt(wf[r * cols + c], qdt);
            float v;
            if (mode == FWD_Q_DT_MUL)
                v = round_dt(x * round_dt(sc, qdt), qdt);
            else if (mode == FWD_Q_DT_DIV)
                v = round_dt(x / sc, qdt);
            else
                v = x * sc;
            q[r * cols + c] = to_i8(v);
        }
    }
    return TC_OK;
}

static const fwd_ops cpu_ops = {
    .name = "cpu",
    .destroy = cpu_destroy,
    .alloc = cpu_alloc,
    .release = cpu_release,
    .upload = cpu_copy,
    .download = cpu_copy,
    .upload_async = cpu_copy,
    .sync = cpu_sync,
    .stream = cpu_stream,
    .mem_available = cpu_mem_available,
    .pin_host = cpu_pin_host,
    .unpin_host = cpu_unpin_host,
    .weight_elem_bytes = cpu_weight_elem_bytes,
    .upload_weight = cpu_upload_weight,
    .thread_enter = cpu_thread_enter,
    .upload_weight_bg = cpu_upload_weight,
    .embed = cpu_embed,
    .round_f32 = cpu_round_f32,
    .rmsnorm = cpu_rmsnorm,
    .linear = cpu_linear,
    .rope_split = cpu_rope_split,
    .attention = cpu_attention,
    .residual_add = cpu_residual_add,
    .silu_mul = cpu_silu_mul,
    .expert_add = cpu_expert_add,
    .zero_f32 = cpu_zero_f32,
    .to_f32 = cpu_to_f32,
    .absmax_cols = cpu_absmax_cols,
    .act_quant = cpu_act_quant,
    .dequant = cpu_dequant,
    .div_cols = cpu_div_cols,
    .qdq = cpu_qdq,
    .absmax_rows = cpu_absmax_rows,
    .smooth_cols = cpu_smooth_cols,
    .quantize_i8 = cpu_quantize_i8,
};

tc_status tc_fwd_cpu_backend(int threads, int64_t max_tokens, int64_t max_len, const fwd_attn *a,
                             fwd_backend **out)
{
    (void)max_tokens;
    (void)max_len;
    (void)a;
    cpu_backend *c = calloc(1, sizeof *c);
    if (!c)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    c->base.ops = &cpu_ops;
    c->threads = threads < 1 ? 1 : threads;
    *out = &c->base;
    return TC_OK;
}
