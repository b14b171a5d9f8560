/* fwd_moe.c: the mixture-of-experts MLP of the forward pass (Mixtral; the
 * rest of the layer is fwd.c's), on either backend (backend.h).
 *
 * As transformers' MixtralSparseMoeBlock computes it: router logits in the
 * model dtype (x W_r^T, the F32 router weight rounded back to the dtype it
 * was stored in), softmax in float32, the top-k experts per token (ties to
 * the lower index, as torch.topk), renormalized to sum 1 when the model's
 * normalization mode is RENORMALIZE (Mixtral), rounded to the model dtype;
 * each expert w2(silu(w1 x) * w3 x) weighted by its routing weight and
 * summed. The routing runs on the host (T x E numbers per layer). A rank
 * computes the experts and the moe_tp slice it holds for every token
 * routed to them; its partial sums are completed by the tp all-reduce that
 * follows (every (expert, slice) pair lives on exactly one tp rank). In
 * calibration every expert also runs on the tokens not routed to it, for its
 * statistics (tc_fwd_moe_run). */
#include "trtconv/fwd/fwd_moe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "trtconv/core/log.h"

struct fwd_moe {
    fwd_moe_geom g;
    void *logits;          /* backend: [T, E] dt */
    float *d_w;            /* backend: [E_l][T] routing weights */
    void *y;               /* backend: [T, H] dt, one expert's output */
    uint8_t *h_logits;     /* host: [T, E] dt */
    float *h_l32;          /* host: [T, E] */
    float *h_w;            /* host: [E_l][T] */
};

tc_status tc_fwd_moe_create(const fwd_ops *ops, fwd_backend *b, const fwd_moe_geom *g,
                            fwd_moe **out)
{
    *out = NULL;
    if (g->E > 4096 || g->top_k > 64 || g->top_k > g->E)
        return tc_fail(TC_E_INPUT, "MoE block: %lld experts, top-%lld: at most 4096 experts and "
                       "top-64 are supported", (long long)g->E, (long long)g->top_k);
    fwd_moe *m = calloc(1, sizeof *m);
    if (!m)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    m->g = *g;
    const size_t es = tc_dtype_bits(g->dt) / 8, T = (size_t)g->max_tokens, E = (size_t)g->E;
    m->h_logits = malloc(T * E * es);
    m->h_l32 = malloc(T * E * sizeof(float));
    m->h_w = malloc((size_t)g->E_l * T * sizeof(float));
    tc_status st = m->h_logits && m->h_l32 && m->h_w ? TC_OK
                                                     : tc_fail(TC_E_INTERNAL, "out of memory");
    if (st == TC_OK)
        st = ops->alloc(b, T * E * es, &m->logits);
    if (st == TC_OK)
        st = ops->alloc(b, (size_t)g->E_l * T * sizeof(float), (void **)&m->d_w);
    if (st == TC_OK)
        st = ops->alloc(b, T * (size_t)g->H * es, &m->y);
    if (st != TC_OK) {
        tc_fwd_moe_free(m, ops, b);
        return st;
    }
    *out = m;
    return TC_OK;
}

void tc_fwd_moe_free(fwd_moe *m, const fwd_ops *ops, fwd_backend *b)
{
    if (!m)
        return;
    if (m->logits)
        ops->release(b, m->logits);
    if (m->d_w)
        ops->release(b, m->d_w);
    if (m->y)
        ops->release(b, m->y);
    free(m->h_logits);
    free(m->h_l32);
    free(m->h_w);
    free(m);
}

/* Routing weights of the local experts for T tokens from the logits. */
static void route(fwd_moe *m, int64_t T)
{
    const fwd_moe_geom *g = &m->g;
    const int64_t E = g->E, K = g->top_k;
    memset(m->h_w, 0, (size_t)(g->E_l * T) * sizeof(float));
    int64_t pick[64];
    float p[4096];
    for (int64_t t = 0; t < T; t++) {
        const float *l = m->h_l32 + t * E;
        float mx = -INFINITY, sum = 0.0f;
        for (int64_t e = 0; e < E; e++)
            mx = l[e] > mx ? l[e] : mx;
        for (int64_t e = 0; e < E; e++) {
            p[e] = expf(l[e] - mx);
            sum += p[e];
        }
        for (int64_t e = 0; e < E; e++)
            p[e] /= sum;
        /* top-k, largest first, ties to the lower index */
        float ksum = 0.0f;
        for (int64_t k = 0; k < K; k++) {
            int64_t best = -1;
            for (int64_t e = 0; e < E; e++) {
                bool taken = false;
                for (int64_t j = 0; j < k; j++)
                    taken = taken || pick[j] == e;
                if (!taken && (best < 0 || p[e] > p[best]))
                    best = e;
            }
            pick[k] = best;
            ksum += p[best];
        }
        for (int64_t k = 0; k < K; k++) {
            float w = p[pick[k]];
            if (g->renormalize)
                w /= ksum;
            float r;
            uint32_t tmp;
            tc_convert(&tmp, g->dt, &w, TC_DT_F32, 1);     /* round to the model dtype */
            tc_convert(&r, TC_DT_F32, &tmp, g->dt, 1);
            const int64_t local = pick[k] - g->e0;
            if (local >= 0 && local < g->E_l)
                m->h_w[local * T + t] = r;
        }
    }
}

/* out [T, N] = in [T, K] x W^T for one expert's linear, quantized when q:
 * the input quantized statically with (act, row), the float32 GEMM
 * multiplied back by the row factor and the expert's weight scale *col. */
static tc_status expert_linear(const fwd_ops *ops, fwd_backend *b, const fwd_moe_quant *q,
                               float act, float row, const float *col, void *out, const void *in,
                               const void *w, tc_dtype dt, int64_t T, int64_t N, int64_t K)
{
    if (!q)
        return ops->linear(b, out, false, in, w, NULL, dt, T, N, K);
    const tc_fq_clamp none = { false, 0.0f, 0.0f };
    TC_TRY(ops->act_quant(b, q->q_in, in, dt, T, K, TC_FQ_FP8, false, act, row, none, q->q_row));
    TC_TRY(ops->linear(b, q->q_acc, true, q->q_in, w, NULL, dt, T, N, K));
    return ops->dequant(b, out, false, q->q_acc, q->q_row, col, false, dt, T, N);
}

tc_status tc_fwd_moe_run(fwd_moe *m, const fwd_ops *ops, fwd_backend *b, const fwd_moe_weights *w,
                         const void *x, void *g_buf, void *u_buf, void *a_buf, float *p32, int64_t T,
                         fwd_moe_stats_fn stats, void *stats_ctx)
{
    const fwd_moe_geom *g = &m->g;
    const tc_dtype dt = g->dt;
    const size_t es = tc_dtype_bits(dt) / 8, wes = ops->weight_elem_bytes(dt);
    const int64_t H = g->H, I = g->I_l, E = g->E;
    if (T > g->max_tokens)
        return tc_fail(TC_E_INTERNAL, "MoE block: %lld tokens for %lld", (long long)T,
                       (long long)g->max_tokens);
    TC_TRY(ops->linear(b, m->logits, false, x, w->router, NULL, dt, T, E, H));
    TC_TRY(ops->download(b, m->h_logits, m->logits, (size_t)(T * E) * es));
    tc_convert(m->h_l32, TC_DT_F32, m->h_logits, dt, (size_t)(T * E));
    route(m, T);
    TC_TRY(ops->upload(b, m->d_w, m->h_w, (size_t)(g->E_l * T) * sizeof(float)));
    TC_TRY(ops->zero_f32(b, p32, (size_t)(T * H)));
    for (int64_t j = 0; j < g->E_l; j++) {
        bool used = false;
        for (int64_t t = 0; t < T && !used; t++)
            used = m->h_w[j * T + t] != 0.0f;
        if (!used && !stats)
            continue; /* no token of this micro-batch chose the expert */
        /* fc rows of expert j: [w3 slice (up); w1 slice (gate)], each [I, H] */
        const char *fc = (const char *)w->fc + (size_t)(j * 2 * I * H) * wes;
        const char *proj = (const char *)w->proj + (size_t)(j * H * I) * wes;
        const fwd_moe_quant *q = w->q;
        TC_TRY(expert_linear(ops, b, q, q ? q->fc_act : 0, q ? q->fc_row : 0,
                             q ? q->fc_col + j : NULL, u_buf, x, fc, dt, T, I, H));
        TC_TRY(expert_linear(ops, b, q, q ? q->fc_act : 0, q ? q->fc_row : 0,
                             q ? q->fc_col + j : NULL, g_buf, x, fc + (size_t)(I * H) * wes, dt, T,
                             I, H));
        TC_TRY(ops->silu_mul(b, a_buf, g_buf, u_buf, dt, (size_t)(T * I)));
        if (stats)
            TC_TRY(stats(stats_ctx, j, g_buf, u_buf, a_buf, T));
        if (!used)
            continue;
        TC_TRY(expert_linear(ops, b, q, q ? q->proj_act : 0, q ? q->proj_row : 0,
                             q ? q->proj_col + j : NULL, m->y, a_buf, proj, dt, T, H, I));
        TC_TRY(ops->expert_add(b, p32, m->y, m->d_w + j * T, dt, T, H));
    }
    return TC_OK;
}
