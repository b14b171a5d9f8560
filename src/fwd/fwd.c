/* fwd.c: the distributed forward pass engine (see fwd.h): creation, the
 * micro-batch loop, tensor/pipeline/data-parallel communication, the
 * calibration statistics. The arithmetic lives in the backends
 * (fwd_backend.h), the weights' loading in fwd_weights.c, the
 * layer-streamed calibration schedule in fwd_stream.c, the reports to the
 * caller in fwd_report.c, over the steps fwd_internal.h declares. */
#define _POSIX_C_SOURCE 200809L
#include "fwd_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "trtconv/fwd/backend.h"
#include "trtconv/fwd/fwd_moe.h"
#include "trtconv/calib/calib_stats.h"
#include "trtconv/mpi/coll.h"
#include "trtconv/core/jsonutil.h"
#include "trtconv/core/log.h"
#include "trtconv/plan/plan.h"

static void rope_tables(const tc_fwd_engine *e, int64_t len, float *cosv, float *sinv)
{
    const int64_t half = e->attn.head_dim / 2;
    float inv[1024];
    float scaling;
    tc_fwd_rope_inv_freq(e->cfg, len, inv, &scaling);
    for (int64_t p = 0; p < len; p++)
        for (int64_t i = 0; i < half; i++) {
            const float fr = inv[i] * (float)p;
            float c = (float)cos((double)fr) * scaling, s = (float)sin((double)fr) * scaling;
            uint16_t hc, hs;
            switch (e->dt) {
            case TC_DT_F16:
                hc = tc_f32_to_f16(c), hs = tc_f32_to_f16(s);
                c = tc_f16_to_f32(hc), s = tc_f16_to_f32(hs);
                break;
            case TC_DT_BF16:
                hc = tc_f32_to_bf16(c), hs = tc_f32_to_bf16(s);
                c = tc_bf16_to_f32(hc), s = tc_bf16_to_f32(hs);
                break;
            default:
                break;
            }
            cosv[p * half + i] = c;
            sinv[p * half + i] = s;
        }
}

/* ---- batches ---- */

int64_t tc_fwd_batch_count(const tc_token_set *t, int64_t batch_size)
{
    return ((int64_t)t->n_seqs + batch_size - 1) / batch_size;
}

int64_t tc_fwd_max_batch_tokens(const tc_token_set *t, int64_t batch_size)
{
    int64_t best = 0;
    for (size_t s = 0; s < t->n_seqs; s += (size_t)batch_size) {
        size_t end = s + (size_t)batch_size < t->n_seqs ? s + (size_t)batch_size : t->n_seqs;
        int64_t n = t->offsets[end] - t->offsets[s];
        if (n > best)
            best = n;
    }
    return best;
}

/* ---- engine ---- */

static tc_status alloc_act(tc_fwd_engine *e, void **p, size_t elems, size_t es)
{
    return e->ops->alloc(e->be, elems * es, p);
}

static tc_status alloc_activations(tc_fwd_engine *e)
{
    const size_t T = (size_t)e->max_tokens, es = e->es;
    const size_t nh = (size_t)e->attn.heads, nkv = (size_t)e->attn.kv_heads, d = (size_t)e->attn.head_dim;
    TRY(alloc_act(e, &e->h, T * (size_t)e->H, es));
    TRY(alloc_act(e, &e->x, T * (size_t)e->H, es));
    TRY(alloc_act(e, &e->qkv, T * (size_t)e->qkv_width, es));
    TRY(alloc_act(e, &e->q, T * nh * d, es));
    TRY(alloc_act(e, &e->k, T * nkv * d, es));
    TRY(alloc_act(e, &e->v, T * nkv * d, es));
    TRY(alloc_act(e, &e->o, T * nh * d, es));
    TRY(alloc_act(e, &e->g, T * (size_t)e->inter, es));
    TRY(alloc_act(e, &e->u, T * (size_t)e->inter, es));
    TRY(alloc_act(e, &e->a, T * (size_t)e->inter, es));
    TRY(alloc_act(e, (void **)&e->p32, T * (size_t)e->H, sizeof(float)));
    if (e->tp > 1)
        TRY(alloc_act(e, (void **)&e->red, (size_t)e->tp * T * (size_t)e->H, sizeof(float)));
    if (e->pp_rank == e->pp - 1 && !e->skip_head)
        TRY(alloc_act(e, &e->logits, T * (size_t)e->vocab_local, es));
    TRY(alloc_act(e, (void **)&e->d_meta, 4 * T, sizeof(int32_t)));
    const size_t rope = 2 * (size_t)e->max_len * (d / 2);
    TRY(alloc_act(e, (void **)&e->d_rope, rope, sizeof(float)));
    e->h_meta = malloc(4 * T * sizeof(int32_t));
    e->h_rope = malloc(rope * sizeof(float));
    if (!e->h_meta || !e->h_rope)
        return tc_fail(TC_E_INTERNAL, "out of host memory for batch metadata");
    return TC_OK;
}

tc_status tc_fwd_create(const tc_fwd_setup *s, tc_fwd_engine **out)
{
    *out = NULL;
    const tc_hf_config *cfg = &s->model->cfg;
    tc_fwd_engine *e = calloc(1, sizeof *e);
    if (!e)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    e->comm = s->comm;
    e->weights_only = s->weights_only;
    e->stream_layers = s->stream_layers && !s->weights_only;
    e->skip_head = s->skip_head;
    if (s->weights)
        e->wsrc = *s->weights;
    e->cfg = cfg;
    e->dt = s->dtype;
    e->es = tc_dtype_bits(s->dtype) / 8;
    tc_layout lay = s->layout;
    lay.ranks = s->weights_only ? 1 : s->comm->size;
    e->tp = lay.tp;
    e->pp = lay.pp;
    const int cells = tc_layout_cells(&lay);
    const tc_plan_params pparams = { .layout = lay, .emb = s->emb, .out_dtype = s->dtype };
    const bool wonly = s->weights_only;
    tc_status st = TC_OK;
    if (wonly && (s->cell < 0 || s->cell >= cells))
        st = tc_fail(TC_E_INTERNAL, "forward pass: cell %d out of range", s->cell);
    else if (!wonly && lay.ranks % cells != 0)
        st = tc_fail(TC_E_INTERNAL, "forward pass: %d ranks for %d cells (the caller checks "
                     "tc_layout_check_replicas)", lay.ranks, cells);
    if (st == TC_OK && s->dtype != TC_DT_F16 && s->dtype != TC_DT_BF16 && s->dtype != TC_DT_F32)
        st = tc_fail(TC_E_USAGE, "the forward pass runs in float16, bfloat16 or float32");
    if (st == TC_OK && cfg->head_dim / 2 > 1024)
        st = tc_fail(TC_E_INPUT, "head_dim = %lld is larger than supported (2048)",
                     (long long)cfg->head_dim);
    if (st == TC_OK)
        st = tc_fwd_rope_check(cfg);
    if (st == TC_OK && cfg->fbgemm_fp8)
        st = tc_fail(TC_E_USAGE, "the forward pass (calibration) reads float weights: an "
                     "fbgemm_fp8 checkpoint cannot be calibrated (convert it without "
                     "--int8_kv_cache, --calibrate_fp8_kv_scale or --smoothquant)");
    if (st == TC_OK && strcmp(cfg->hidden_act, "silu") != 0)
        st = tc_fail(TC_E_INPUT, "hidden_act \"%s\" is not supported by the forward pass (silu)",
                     cfg->hidden_act);
    if (st != TC_OK) {
        free(e);
        return st;
    }
    const int cell = wonly ? s->cell : tc_layout_replica_cell(&lay, s->comm->rank);
    e->dp = wonly ? 1 : tc_layout_dp(&lay);
    e->dp_rank = wonly ? 0 : tc_layout_replica(&lay, s->comm->rank);
    e->pp_rank = tc_layout_pp_rank(&lay, cell);
    e->tp_rank = tc_layout_tp_rank(&lay, cell);
    e->n_layers = cfg->num_hidden_layers / e->pp;
    e->layer0 = (int64_t)e->pp_rank * e->n_layers;
    e->H = cfg->hidden_size;
    e->vocab = cfg->vocab_size;
    const bool moe = tc_hf_is_moe(cfg);
    const int moe_tp = lay.moe_tp > 0 ? lay.moe_tp : lay.tp, moe_ep = lay.moe_ep > 0 ? lay.moe_ep : 1;
    e->inter = cfg->intermediate_size / (moe ? moe_tp : e->tp);
    /* moe_tp rank = tp rank / moe_ep, moe_ep rank = tp rank % moe_ep
     * (TensorRT-LLM Mapping; docs/moe.md). */
    e->inter0 = (int64_t)(moe ? e->tp_rank / moe_ep : e->tp_rank) * e->inter;
    e->moe_E_l = moe ? cfg->moe_num_experts / moe_ep : 0;
    e->moe_e0 = (int64_t)(e->tp_rank % moe_ep) * e->moe_E_l;
    e->attn.heads = cfg->num_attention_heads / e->tp;
    e->attn.kv_heads = cfg->num_key_value_heads >= e->tp ? cfg->num_key_value_heads / e->tp : 1;
    e->attn.head_dim = cfg->head_dim;
    e->attn.scale = (float)(1.0 / sqrt((double)cfg->head_dim));
    e->qkv_width = (e->attn.heads + 2 * e->attn.kv_heads) * cfg->head_dim;
    e->eps = (float)cfg->rms_norm_eps;
    e->profile = tc_fwd_prof_mode_from_env();
    e->max_tokens = s->max_batch_tokens > 0 ? s->max_batch_tokens : 1;
    e->max_len = s->max_seq_len > 0 ? s->max_seq_len : 1;

    const bool gpu = s->gpu && s->gpu->device >= 0;
    if (gpu)
        st = tc_fwd_gpu_backend(s->gpu, e->max_tokens, e->max_len, &e->attn, &e->be);
    else
        st = tc_fwd_cpu_backend(s->threads, e->max_tokens, e->max_len, &e->attn, &e->be);
    if (st == TC_OK)
        e->ops = e->be->ops;
    if (st == TC_OK && e->profile == FWD_PROF_EVENTS && !tc_fwd_prof_events_supported(e))
        e->profile = FWD_PROF_SYNC;

    /* Communicators, created by every rank in the same order. */
    if (!wonly) {
        void *stream = st == TC_OK ? e->ops->stream(e->be) : NULL;
        const tc_gpu_info *cg = gpu ? s->gpu : NULL;
        const int me = s->comm->rank;
        tc_status cst = tc_coll_create(s->comm->world, e->dp_rank * e->pp + e->pp_rank, me, cg,
                                       stream, &e->tp_c);
        if (cst == TC_OK)
            cst = tc_coll_create(s->comm->world, e->dp_rank * e->tp + e->tp_rank, me, cg, stream,
                                 &e->pp_c);
        if (cst == TC_OK)
            cst = tc_coll_create(s->comm->world, cell, me, cg, stream,
                                 &e->dp_c);
        if (st == TC_OK)
            st = cst;
    }

    /* The cell's plan, without quantization: the slices a conversion reads. */
    double t0 = tc_now_seconds();
    if (e->profile)
        tc_log(TC_LOG_VERBOSE, "profile: backend and communicators ready, loading the weights");
    if (st == TC_OK)
        st = tc_plan_build(s->model, &pparams, cell, &e->plan);
    if (st == TC_OK)
        st = tc_fwd_load_weights(e, &s->emb);
    if (st == TC_OK)
        st = e->ops->sync(e->be);
    e->load_seconds = tc_now_seconds() - t0;
    if (e->profile)
        tc_log(TC_LOG_VERBOSE, "profile: resident weights loaded in %.2f s", e->load_seconds);
    if (st == TC_OK && !wonly)
        st = alloc_activations(e);
    if (st == TC_OK && e->profile)
        tc_log(TC_LOG_VERBOSE, "profile: activation buffers allocated");
    if (st == TC_OK && !wonly && moe) {
        const int64_t E_l = e->moe_E_l;
        const fwd_moe_geom g = {
            .dt = e->dt, .H = e->H, .E = cfg->moe_num_experts, .top_k = cfg->moe_top_k,
            .E_l = E_l, .e0 = e->moe_e0, .I_l = e->inter,
            .renormalize = cfg->moe_normalization_mode == 1, .max_tokens = e->max_tokens,
        };
        st = tc_fwd_moe_create(e->ops, e->be, &g, &e->moe);
    }
    if (st != TC_OK) {
        tc_fwd_destroy(e);
        return st;
    }
    *out = e;
    return TC_OK;
}

void tc_fwd_destroy(tc_fwd_engine *e)
{
    if (!e)
        return;
    if (e->be) {
        const fwd_ops *ops = e->be->ops;
        fwd_backend *b = e->be;
        ops->sync(b);
        tc_fwd_prof_free(e);
        void *bufs[] = { e->h, e->x, e->qkv, e->q, e->k, e->v, e->o, e->g, e->u, e->a, e->logits,
                         e->p32, e->red, e->d_meta, e->d_rope, e->d_report, e->embed, e->ln_f,
                         e->d_stats, e->q_acc, e->q_row, e->q_in };
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
            if (bufs[i])
                ops->release(b, bufs[i]);
        if (e->lm_head && !e->lm_head_shared)
            ops->release(b, e->lm_head);
        tc_fwd_moe_free(e->moe, ops, b);
        for (int64_t i = 0; e->layers && i < e->n_layers; i++)
            tc_fwd_release_layer(e, i);
    }
    tc_coll_free(&e->tp_c);
    tc_coll_free(&e->pp_c);
    tc_coll_free(&e->dp_c);
    if (e->be)
        e->be->ops->destroy(e->be);
    free(e->layers);
    free(e->h_meta);
    free(e->h_rope);
    free(e->h_report);
    free(e->h_inject);
    tc_plan_free(e->plan);
    free(e);
}

void tc_fwd_get_layout(const tc_fwd_engine *e, tc_fwd_layout *out)
{
    out->dp = e->dp;
    out->tp = e->tp;
    out->pp = e->pp;
    out->dp_rank = e->dp_rank;
    out->tp_rank = e->tp_rank;
    out->pp_rank = e->pp_rank;
    out->layer0 = e->layer0;
    out->n_layers = e->n_layers;
    out->backend = e->ops->name;
    out->coll_tp = tc_coll_backend_name(&e->tp_c);
    out->coll_pp = tc_coll_backend_name(&e->pp_c);
    out->coll_dp = tc_coll_backend_name(&e->dp_c);
    out->weight_bytes = e->weight_bytes;
    out->load_seconds = e->load_seconds;
}

/* ---- one micro-batch ---- */

size_t tc_fwd_meta_bytes(const tc_fwd_engine *e)
{
    return 4 * (size_t)e->max_tokens * sizeof(int32_t);
}

size_t tc_fwd_rope_bytes(const tc_fwd_engine *e)
{
    return 2 * (size_t)e->max_len * (size_t)(e->attn.head_dim / 2) * sizeof(float);
}

tc_status tc_fwd_setup_batch(tc_fwd_engine *e, const tc_token_set *t, size_t s0, size_t s1,
                             int64_t *offsets, fwd_batch *bt)
{
    return tc_fwd_setup_batch_into(e, t, s0, s1, offsets, e->d_meta, e->d_rope, bt);
}

tc_status tc_fwd_setup_batch_into(tc_fwd_engine *e, const tc_token_set *t, size_t s0, size_t s1,
                                  int64_t *offsets, int32_t *d_meta, float *d_rope, fwd_batch *bt)
{
    const int64_t base = t->offsets[s0];
    const int64_t T = t->offsets[s1] - base;
    int64_t max_len = 0;
    for (size_t s = s0; s <= s1; s++)
        offsets[s - s0] = t->offsets[s] - base;
    /* ids | pos | seq_start | seq_len, each with stride max_tokens. */
    const int64_t M = e->max_tokens;
    int32_t *ids = e->h_meta, *pos = ids + M, *start = pos + M, *len = start + M;
    for (size_t s = s0; s < s1; s++) {
        const int64_t a = t->offsets[s] - base, b = t->offsets[s + 1] - base;
        if (b - a > max_len)
            max_len = b - a;
        for (int64_t i = a; i < b; i++) {
            ids[i] = t->ids[base + i];
            pos[i] = (int32_t)(i - a);
            start[i] = (int32_t)a;
            len[i] = (int32_t)(b - a);
        }
    }
    const int64_t half = e->attn.head_dim / 2;
    rope_tables(e, max_len, e->h_rope, e->h_rope + max_len * half);
    int32_t *d = d_meta;
    TRY(e->ops->upload(e->be, d, e->h_meta, 4 * (size_t)M * sizeof(int32_t)));
    TRY(e->ops->upload(e->be, d_rope, e->h_rope, 2 * (size_t)(max_len * half) * sizeof(float)));
    bt->n_tokens = T;
    bt->n_seqs = (int)(s1 - s0);
    bt->max_len = max_len;
    bt->h_offsets = offsets;
    bt->ids = d;
    bt->pos = d + e->max_tokens;
    bt->seq_start = d + 2 * e->max_tokens;
    bt->seq_len = d + 3 * e->max_tokens;
    bt->cos = d_rope;
    bt->sin = d_rope + max_len * half;
    return TC_OK;
}

static tc_status tp_allreduce(tc_fwd_engine *e, float *buf, size_t n)
{
    if (e->tp == 1)
        return TC_OK;
    return tc_coll_allreduce_sum_f32(&e->tp_c, buf, n, e->red);
}

/* ---- calibration statistics ---- */

/* Device pointer to statistic (layer, lin, k) at channel ch. */
static float *stat_at(const tc_fwd_engine *e, int64_t layer, tc_linear lin, tc_stat_kind k,
                      int64_t ch)
{
    return e->d_stats + tc_calib_offset(&e->sd, layer, lin, k) + ch;
}

/* First channel of this rank's key/value heads in the model's k/v outputs
 * (with fewer KV heads than tp ranks a rank holds head r * nkv / tp). */
static int64_t kv_channel0(const tc_fwd_engine *e)
{
    const int64_t nkv = e->cfg->num_key_value_heads;
    const int64_t head = nkv >= e->tp ? (int64_t)e->tp_rank * e->attn.kv_heads
                                      : (int64_t)e->tp_rank * nkv / e->tp;
    return head * e->attn.head_dim;
}

/* Per-channel maxima of one activation [T, ld] (columns c0 .. c0 + cols). */
static tc_status stat_cols(tc_fwd_engine *e, int64_t layer, tc_linear lin, tc_stat_kind k,
                           int64_t ch0, const void *x, bool x_f32, const void *bias, int64_t T,
                           int64_t ld, int64_t c0, int64_t cols)
{
    return e->ops->absmax_cols(e->be, stat_at(e, layer, lin, k, ch0), x, x_f32, bias, e->dt, T,
                               ld, c0, cols);
}

/* The attention block's steps, each with the maxima of its values when
 * collecting, in the same pass where the backend has the fused form
 * (backend.h rmsnorm_max, rope_split_max, attention_max), else by
 * absmax_cols after it: the same maxima either way. */

/* x = rmsnorm(h) with w; acc (collecting) gets the maxima of x, the input
 * of the linears after the norm (q/k/v share it: k and v get q's when
 * collected; likewise gate and up). */
static tc_status norm(tc_fwd_engine *e, const void *w, int64_t T, float *acc)
{
    const fwd_ops *ops = e->ops;
    if (!acc)
        return ops->rmsnorm(e->be, e->x, e->h, w, e->dt, T, e->H, e->eps);
    if (ops->rmsnorm_max)
        return ops->rmsnorm_max(e->be, e->x, e->h, w, e->dt, T, e->H, e->eps, acc);
    TRY(ops->rmsnorm(e->be, e->x, e->h, w, e->dt, T, e->H, e->eps));
    return ops->absmax_cols(e->be, acc, e->x, false, NULL, e->dt, T, e->H, 0, e->H);
}

/* rope + split of qkv, and when collecting the q, k and v projections'
 * output maxima over qkv (before rope). */
static tc_status rope(tc_fwd_engine *e, int64_t layer, const fwd_batch *bt)
{
    const fwd_ops *ops = e->ops;
    if (!e->d_stats)
        return ops->rope_split(e->be, e->q, e->k, e->v, e->qkv, e->dt, &e->attn, bt);
    const int64_t q = e->attn.heads * e->attn.head_dim, kv = e->attn.kv_heads * e->attn.head_dim;
    const int64_t q0 = (int64_t)e->tp_rank * q, kv0 = kv_channel0(e), T = bt->n_tokens;
    if (ops->rope_split_max)
        return ops->rope_split_max(e->be, e->q, e->k, e->v, e->qkv, e->dt, &e->attn, bt,
                                   stat_at(e, layer, TC_LIN_Q, TC_STAT_Y, q0),
                                   stat_at(e, layer, TC_LIN_K, TC_STAT_Y, kv0),
                                   stat_at(e, layer, TC_LIN_V, TC_STAT_Y, kv0));
    TRY(ops->rope_split(e->be, e->q, e->k, e->v, e->qkv, e->dt, &e->attn, bt));
    if (ops->absmax_cols_qkv) /* qkv_width is q + 2 kv */
        return ops->absmax_cols_qkv(e->be, stat_at(e, layer, TC_LIN_Q, TC_STAT_Y, q0),
                                    stat_at(e, layer, TC_LIN_K, TC_STAT_Y, kv0),
                                    stat_at(e, layer, TC_LIN_V, TC_STAT_Y, kv0), e->qkv, e->dt, T,
                                    q, kv);
    TRY(stat_cols(e, layer, TC_LIN_Q, TC_STAT_Y, q0, e->qkv, false, NULL, T, e->qkv_width, 0, q));
    TRY(stat_cols(e, layer, TC_LIN_K, TC_STAT_Y, kv0, e->qkv, false, NULL, T, e->qkv_width, q, kv));
    return stat_cols(e, layer, TC_LIN_V, TC_STAT_Y, kv0, e->qkv, false, NULL, T, e->qkv_width,
                     q + kv, kv);
}

/* o = attention, and when collecting o_proj's input maxima over o. */
static tc_status attention(tc_fwd_engine *e, int64_t layer, const fwd_batch *bt)
{
    const fwd_ops *ops = e->ops;
    for (int s = 0; s < bt->n_seqs; s++) {
        const double L = (double)(bt->h_offsets[s + 1] - bt->h_offsets[s]);
        e->prof_flop += 4.0 * (double)(e->attn.heads * e->attn.head_dim) * L * (L + 1.0) / 2.0;
    }
    if (!e->d_stats)
        return ops->attention(e->be, e->o, e->q, e->k, e->v, e->dt, &e->attn, bt);
    const int64_t q = e->attn.heads * e->attn.head_dim;
    float *acc = stat_at(e, layer, TC_LIN_O, TC_STAT_X, (int64_t)e->tp_rank * q);
    if (ops->attention_max)
        return ops->attention_max(e->be, e->o, e->q, e->k, e->v, e->dt, &e->attn, bt, acc);
    TRY(ops->attention(e->be, e->o, e->q, e->k, e->v, e->dt, &e->attn, bt));
    return ops->absmax_cols(e->be, acc, e->o, false, NULL, e->dt, bt->n_tokens, q, 0, q);
}

/* The statistics of local expert j (calib_stats.h: stacked over the
 * experts; its gate x, the same for every expert, is expert e0's and
 * copied to the others at collection). */
typedef struct expert_stats_ctx {
    tc_fwd_engine *e;
    int64_t layer;
} expert_stats_ctx;

static tc_status expert_stats(void *ctx, int64_t j, const void *g, const void *u, const void *a,
                              int64_t T)
{
    const expert_stats_ctx *c = ctx;
    tc_fwd_engine *e = c->e;
    const int64_t I = e->inter, ch = (e->moe_e0 + j) * e->sd.inter + e->inter0;
    TRY(stat_cols(e, c->layer, TC_LIN_GATE, TC_STAT_Y, ch, g, false, NULL, T, I, 0, I));
    TRY(stat_cols(e, c->layer, TC_LIN_UP, TC_STAT_Y, ch, u, false, NULL, T, I, 0, I));
    return stat_cols(e, c->layer, TC_LIN_DOWN, TC_STAT_X, ch, a, false, NULL, T, I, 0, I);
}

static tc_status stats_mlp(tc_fwd_engine *e, int64_t layer, int64_t T)
{
    const int64_t i0 = e->inter0;
    TRY(stat_cols(e, layer, TC_LIN_GATE, TC_STAT_Y, i0, e->g, false, NULL, T, e->inter, 0, e->inter));
    TRY(stat_cols(e, layer, TC_LIN_UP, TC_STAT_Y, i0, e->u, false, NULL, T, e->inter, 0, e->inter));
    return stat_cols(e, layer, TC_LIN_DOWN, TC_STAT_X, i0, e->a, false, NULL, T, e->inter, 0,
                     e->inter);
}

/* h += round(p32 + bias), and when collecting, the output maxima of `lin`
 * (o_proj, down_proj) over p32 + bias in float32: rounded at collection
 * (rounding is monotonic and odd). Fused where the backend has it. */
static tc_status residual(tc_fwd_engine *e, int64_t layer, tc_linear lin, const void *bias,
                          int64_t T)
{
    const fwd_ops *ops = e->ops;
    const int64_t H = e->H;
    if (!e->d_stats) {
        OP(P_RESID, ops->residual_add(e->be, e->h, e->p32, bias, e->dt, T, H));
        return TC_OK;
    }
    float *acc = stat_at(e, layer, lin, TC_STAT_Y, 0);
    if (ops->residual_add_max) {
        OP(P_RESID, ops->residual_add_max(e->be, e->h, e->p32, bias, e->dt, T, H, acc));
        return TC_OK;
    }
    OP(P_STATS, stat_cols(e, layer, lin, TC_STAT_Y, 0, e->p32, true, bias, T, H, 0, H));
    OP(P_RESID, ops->residual_add(e->be, e->h, e->p32, bias, e->dt, T, H));
    return TC_OK;
}

/* a = silu(g) * u, and when collecting the MLP's maxima (gate/up outputs,
 * down_proj input), fused where the backend has it. */
static tc_status silu_mul(tc_fwd_engine *e, int64_t layer, int64_t T)
{
    const fwd_ops *ops = e->ops;
    if (e->d_stats && ops->silu_mul_max) {
        const int64_t i0 = e->inter0;
        OP(P_SILU, ops->silu_mul_max(e->be, e->a, e->g, e->u, e->dt, T, e->inter,
                                     stat_at(e, layer, TC_LIN_GATE, TC_STAT_Y, i0),
                                     stat_at(e, layer, TC_LIN_UP, TC_STAT_Y, i0),
                                     stat_at(e, layer, TC_LIN_DOWN, TC_STAT_X, i0)));
        return TC_OK;
    }
    OP(P_SILU, ops->silu_mul(e->be, e->a, e->g, e->u, e->dt, (size_t)(T * e->inter)));
    if (e->d_stats)
        OP(P_STATS, stats_mlp(e, layer, T));
    return TC_OK;
}

tc_status tc_fwd_run_layer(tc_fwd_engine *e, int64_t li, const fwd_batch *bt)
{
    const layer_weights *w = &e->layers[li];
    const int64_t layer = e->layer0 + li;
    const bool stats = e->d_stats != NULL;
    const fwd_ops *ops = e->ops;
    fwd_backend *b = e->be;
    const int64_t T = bt->n_tokens, H = e->H;
    const int64_t od = e->attn.heads * e->attn.head_dim;
    OP(P_NORM, norm(e, w->in_norm, T, stats ? stat_at(e, layer, TC_LIN_Q, TC_STAT_X, 0) : NULL));
    OP(P_QKV, tc_fwd_qlinear(e, &w->q[LQ_QKV], true, e->qkv, false, e->x, w->qkv, w->qkv_bias, T,
                             e->qkv_width, H));
    TRY(tc_fwd_report_linear(e, "qkv", layer, (int64_t)e->tp_rank * e->qkv_width, e->qkv, e->dt,
                             T, e->qkv_width));
    OP(P_ROPE, rope(e, layer, bt));
    TRY(tc_fwd_kv_quant(e, w, T));
    OP(P_ATTN, attention(e, layer, bt));
    OP(P_DENSE, tc_fwd_qlinear(e, &w->q[LQ_DENSE], true, e->p32, true, e->o, w->dense, NULL, T, H,
                               od));
    OP(P_TP_SUM, tp_allreduce(e, e->p32, (size_t)(T * H)));
    TRY(tc_fwd_report_linear(e, "dense", layer, 0, e->p32, TC_DT_F32, T, H));
    TRY(residual(e, layer, TC_LIN_O, w->dense_bias, T));
    OP(P_NORM, norm(e, w->post_norm, T,
                    stats ? stat_at(e, layer, TC_LIN_GATE, TC_STAT_X, e->moe ? e->moe_e0 * H : 0)
                          : NULL));
    if (e->moe) {
        /* FP8 experts (trtconv eval): fc's and proj's static input scales
         * and per-expert weight scales from the weight source. */
        const lin_quant *qf = &w->q[LQ_FC], *qp = &w->q[LQ_PROJ];
        const fwd_moe_quant mq = {
            .fc_act = qf->act_scale, .fc_row = qf->row_scale, .proj_act = qp->act_scale,
            .proj_row = qp->row_scale, .fc_col = qf->col, .proj_col = qp->col,
            .q_in = e->q_in, .q_acc = e->q_acc, .q_row = e->q_row,
        };
        const fwd_moe_weights mw = { .router = w->router, .fc = w->fc, .proj = w->proj,
                                     .q = qf->act == TC_FQ_FP8 ? &mq : NULL };
        expert_stats_ctx sc = { e, layer };
        OP(P_FC_GATE, tc_fwd_moe_run(e->moe, ops, b, &mw, e->x, e->g, e->u, e->a, e->p32, T,
                                     stats ? expert_stats : NULL, &sc));
        OP(P_TP_SUM, tp_allreduce(e, e->p32, (size_t)(T * H)));
        OP(P_RESID, ops->residual_add(b, e->h, e->p32, NULL, e->dt, T, H));
        return TC_OK;
    }
    /* fc and gate read the same post-norm input: quantized once when their
     * input quantization is the same (SmoothQuant's post_layernorm). */
    const lin_quant *qf = &w->q[LQ_FC], *qg = &w->q[LQ_GATE];
    const bool shared = qf->act == qg->act && qf->per_token == qg->per_token &&
                        qf->act_scale == qg->act_scale && qf->row_scale == qg->row_scale &&
                        qf->clamp.on == qg->clamp.on && qf->clamp.lo == qg->clamp.lo &&
                        qf->clamp.hi == qg->clamp.hi;
    OP(P_FC_GATE, tc_fwd_qlinear(e, qf, true, e->g, false, e->x, w->fc, NULL, T, e->inter, H));
    OP(P_FC_GATE, tc_fwd_qlinear(e, qg, !shared, e->u, false, e->x, w->gate, NULL, T, e->inter, H));
    TRY(tc_fwd_report_linear(e, "fc", layer, e->inter0, e->g, e->dt, T, e->inter));
    TRY(tc_fwd_report_linear(e, "gate", layer, e->inter0, e->u, e->dt, T, e->inter));
    TRY(silu_mul(e, layer, T));
    OP(P_PROJ, tc_fwd_qlinear(e, &w->q[LQ_PROJ], true, e->p32, true, e->a, w->proj, NULL, T, H,
                              e->inter));
    OP(P_TP_SUM, tp_allreduce(e, e->p32, (size_t)(T * H)));
    TRY(tc_fwd_report_linear(e, "proj", layer, 0, e->p32, TC_DT_F32, T, H));
    return residual(e, layer, TC_LIN_DOWN, NULL, T);
}

tc_status tc_fwd_stage_input(tc_fwd_engine *e, const fwd_batch *bt)
{
    const fwd_ops *ops = e->ops;
    fwd_backend *b = e->be;
    const int64_t T = bt->n_tokens, H = e->H;
    if (e->pp_rank > 0) {
        OP(P_PIPE, tc_coll_recv(&e->pp_c, e->h, (size_t)(T * H) * e->es, e->pp_rank - 1));
        return TC_OK;
    }
    OP(P_EMBED, ops->embed(b, e->p32, e->embed, e->dt, e->emb_row0, e->emb_rows, e->emb_col0,
                           e->emb_cols, H, bt));
    if (e->emb_split)
        TRY(tp_allreduce(e, e->p32, (size_t)(T * H)));
    return ops->round_f32(b, e->h, e->dt, e->p32, (size_t)(T * H));
}

tc_status tc_fwd_head(tc_fwd_engine *e, int64_t T)
{
    if (e->skip_head)
        return TC_OK;
    const fwd_ops *ops = e->ops;
    fwd_backend *b = e->be;
    const int64_t H = e->H;
    TRY(ops->rmsnorm(b, e->x, e->h, e->ln_f, e->dt, T, H, e->eps));
    OP(P_LM_HEAD, ops->linear(b, e->logits, false, e->x, e->lm_head, NULL, e->dt, T, e->vocab_local, H));
    if (e->d_stats) {
        const int64_t c0 = (int64_t)e->tp_rank * e->vocab_local;
        const int64_t valid = e->vocab - c0 < e->vocab_local ? e->vocab - c0 : e->vocab_local;
        OP(P_STATS, stat_cols(e, -1, TC_LIN_LM_HEAD, TC_STAT_X, 0, e->x, false, NULL, T, H, 0, H));
        if (valid > 0)
            OP(P_STATS, stat_cols(e, -1, TC_LIN_LM_HEAD, TC_STAT_Y, c0, e->logits, false, NULL, T,
                                  e->vocab_local, 0, valid));
    }
    return TC_OK;
}

static tc_status run_batch(tc_fwd_engine *e, const tc_token_set *t, int64_t batch, size_t s0,
                           size_t s1, int64_t *offsets, tc_fwd_sink sink, void *ctx)
{
    fwd_batch bt;
    TRY(tc_fwd_setup_batch(e, t, s0, s1, offsets, &bt));
    const int64_t T = bt.n_tokens, H = e->H;
    const bool reporter = sink && (e->tp_rank == 0 || e->report_all);
    TRY(tc_fwd_stage_input(e, &bt));
    if (reporter && e->pp_rank == 0)
        TRY(tc_fwd_report(e, sink, ctx, batch, "embed", -1, 0, e->h, T, H, 0, H));
    else if (reporter && e->report_all)
        TRY(tc_fwd_report(e, sink, ctx, batch, "input", e->layer0 - 1, 0, e->h, T, H, 0, H));
    for (int64_t i = 0; i < e->n_layers; i++) {
        TRY(tc_fwd_inject_input(e, batch, e->layer0 + i, T));
        TRY(tc_fwd_run_layer(e, i, &bt));
        if (reporter)
            TRY(tc_fwd_report(e, sink, ctx, batch, "layer", e->layer0 + i, 0, e->h, T, H, 0, H));
    }
    if (e->pp_rank < e->pp - 1) {
        OP(P_PIPE, tc_coll_send(&e->pp_c, e->h, (size_t)(T * H) * e->es, e->pp_rank + 1));
        return TC_OK;
    }
    TRY(tc_fwd_head(e, T));
    if (reporter)
        TRY(tc_fwd_report(e, sink, ctx, batch, "norm", -1, 0, e->x, T, H, 0, H));
    e->logits_rows = T;
    if (sink && !e->logits_on_device) {
        int64_t c0, valid;
        tc_fwd_logits_columns(e, &c0, &valid);
        if (valid > 0)
            TRY(tc_fwd_report(e, sink, ctx, batch, "logits", -1, c0, e->logits, T,
                              e->vocab_local, 0, valid));
    }
    return e->ops->sync(e->be);
}

tc_status tc_fwd_run(tc_fwd_engine *e, const tc_token_set *tokens, int64_t batch_size,
                     tc_fwd_sink sink, void *sink_ctx)
{
    if (batch_size < 1)
        return tc_fail(TC_E_USAGE, "batch size must be at least 1");
    if (sink && e->skip_head)
        return tc_fail(TC_E_INTERNAL, "forward pass: an engine without lm_head has no logits to "
                       "report");
    const int64_t nb = tc_fwd_batch_count(tokens, batch_size);
    int64_t *offsets = malloc(((size_t)batch_size + 1) * sizeof *offsets);
    if (!offsets)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    tc_status st = TC_OK;
    for (int64_t bi = e->dp_rank; st == TC_OK && bi < nb; bi += e->dp) {
        size_t s0 = (size_t)(bi * batch_size);
        size_t s1 = s0 + (size_t)batch_size < tokens->n_seqs ? s0 + (size_t)batch_size : tokens->n_seqs;
        const int64_t longest = tc_tokens_longest(tokens, s0, s1);
        /* The batch buffers and rope tables were sized at creation. */
        if (tokens->offsets[s1] - tokens->offsets[s0] > e->max_tokens || longest > e->max_len) {
            st = tc_fail(TC_E_INTERNAL, "micro-batch %lld is larger than the engine was sized for "
                         "(%lld tokens, a sequence of %lld)", (long long)bi,
                         (long long)e->max_tokens, (long long)e->max_len);
            break;
        }
        st = run_batch(e, tokens, bi, s0, s1, offsets, sink, sink_ctx);
    }
    free(offsets);
    return st;
}

/* ---- calibration statistics (fwd.h) ---- */

tc_status tc_fwd_enable_stats(tc_fwd_engine *e)
{
    tc_calib_dims_from_config(e->cfg, &e->sd);
    tc_calib_stats host;
    TRY(tc_calib_stats_alloc(&e->sd, &host));
    tc_status st = e->ops->alloc(e->be, host.n * sizeof(float), (void **)&e->d_stats);
    if (st == TC_OK)
        st = e->ops->upload(e->be, e->d_stats, host.data, host.n * sizeof(float));
    tc_calib_stats_free(&host);
    return st;
}

/* Row maxima of the local experts' weights (fc per expert: up rows, then
 * gate rows; proj: H rows over this rank's intermediate slice, partial
 * under moe_tp), at their stacked model channels. */
static tc_status expert_weight_stats(tc_fwd_engine *e, int64_t L, const layer_weights *w)
{
    const fwd_ops *ops = e->ops;
    const size_t wes = ops->weight_elem_bytes(e->dt);
    const int64_t H = e->H, I = e->inter;
    for (int64_t j = 0; j < e->moe_E_l; j++) {
        const int64_t expert = e->moe_e0 + j, ch = expert * e->sd.inter + e->inter0;
        const char *up = (const char *)w->fc + (size_t)(j * 2 * I * H) * wes;
        TRY(ops->absmax_rows(e->be, stat_at(e, L, TC_LIN_UP, TC_STAT_W, ch), up, e->dt, I, H));
        TRY(ops->absmax_rows(e->be, stat_at(e, L, TC_LIN_GATE, TC_STAT_W, ch),
                             up + (size_t)(I * H) * wes, e->dt, I, H));
        TRY(ops->absmax_rows(e->be, stat_at(e, L, TC_LIN_DOWN, TC_STAT_W, expert * H),
                             (const char *)w->proj + (size_t)(j * H * I) * wes, e->dt, H, I));
    }
    return TC_OK;
}

/* Row maxima of local layer li's weights, written at their model channels
 * (the dense/proj maxima are partial: columns are split over tp). */
tc_status tc_fwd_layer_weight_stats(tc_fwd_engine *e, int64_t li)
{
    const fwd_ops *ops = e->ops;
    fwd_backend *b = e->be;
    const size_t wes = ops->weight_elem_bytes(e->dt);
    const int64_t H = e->H, q = e->attn.heads * e->attn.head_dim;
    const int64_t kv = e->attn.kv_heads * e->attn.head_dim, q0 = (int64_t)e->tp_rank * q;
    const int64_t kv0 = kv_channel0(e), i0 = e->inter0;
    const layer_weights *w = &e->layers[li];
    const int64_t L = e->layer0 + li;
    const char *qkv = w->qkv;
    TRY(ops->absmax_rows(b, stat_at(e, L, TC_LIN_Q, TC_STAT_W, q0), qkv, e->dt, q, H));
    TRY(ops->absmax_rows(b, stat_at(e, L, TC_LIN_K, TC_STAT_W, kv0), qkv + (size_t)(q * H) * wes,
                         e->dt, kv, H));
    TRY(ops->absmax_rows(b, stat_at(e, L, TC_LIN_V, TC_STAT_W, kv0),
                         qkv + (size_t)((q + kv) * H) * wes, e->dt, kv, H));
    TRY(ops->absmax_rows(b, stat_at(e, L, TC_LIN_O, TC_STAT_W, 0), w->dense, e->dt, H, q));
    if (e->moe)
        return expert_weight_stats(e, L, w);
    TRY(ops->absmax_rows(b, stat_at(e, L, TC_LIN_GATE, TC_STAT_W, i0), w->fc, e->dt, e->inter, H));
    TRY(ops->absmax_rows(b, stat_at(e, L, TC_LIN_UP, TC_STAT_W, i0), w->gate, e->dt, e->inter, H));
    return ops->absmax_rows(b, stat_at(e, L, TC_LIN_DOWN, TC_STAT_W, 0), w->proj, e->dt, H, e->inter);
}

/* The weight maxima not yet taken: every layer's unless the streamed
 * schedule took them while each layer was loaded; lm_head's. */
static tc_status stats_weights(tc_fwd_engine *e)
{
    for (int64_t i = 0; i < e->n_layers && !e->layer_stats_taken; i++)
        TRY(tc_fwd_layer_weight_stats(e, i));
    if (e->pp_rank == e->pp - 1 && !e->skip_head) {
        const int64_t c0 = (int64_t)e->tp_rank * e->vocab_local;
        const int64_t valid = e->vocab - c0 < e->vocab_local ? e->vocab - c0 : e->vocab_local;
        if (valid > 0)
            TRY(e->ops->absmax_rows(e->be, stat_at(e, -1, TC_LIN_LM_HEAD, TC_STAT_W, c0),
                                    e->lm_head, e->dt, valid, e->H));
    }
    return TC_OK;
}

tc_status tc_fwd_collect_stats(tc_fwd_engine *e, tc_calib_stats *s)
{
    if (!e->d_stats)
        return tc_fail(TC_E_INTERNAL, "forward pass: statistics were not enabled");
    const size_t bytes = s->n * sizeof(float);
    tc_status st = stats_weights(e);
    if (st == TC_OK)
        st = e->ops->download(e->be, s->data, e->d_stats, bytes);
    /* Check before reducing: a NaN must be named by the rank that saw it,
     * and every rank must learn of it before anyone enters a collective. */
    char where[64];
    snprintf(where, sizeof where, "calibration on rank %d", e->comm->rank);
    if (st == TC_OK)
        st = tc_calib_stats_check(s, where);
    int bad = st != TC_OK, any = 0;
    tc_status cs = TC_MPI_TRY(MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, e->comm->world));
    if (cs != TC_OK)
        return cs;
    if (any)
        return bad ? st : TC_E_CANCELLED;
    TRY(tc_coll_allreduce_max_f32(&e->tp_c, e->d_stats, s->n));
    TRY(tc_coll_allreduce_max_f32(&e->pp_c, e->d_stats, s->n));
    TRY(tc_coll_allreduce_max_f32(&e->dp_c, e->d_stats, s->n));
    TRY(e->ops->download(e->be, s->data, e->d_stats, bytes));
    for (int64_t L = 0; L < e->sd.layers; L++)
        tc_fwd_finalize_layer_stats(e, s, L);
    s->lm_head_absent = e->skip_head;
    return TC_OK;
}

void tc_fwd_finalize_layer_stats(const tc_fwd_engine *e, tc_calib_stats *s, int64_t L)
{
    /* o_proj/down_proj outputs were maximised in float32 before rounding. */
    const tc_linear rounded[2] = { TC_LIN_O, TC_LIN_DOWN };
    for (int j = 0; j < 2; j++) {
        int64_t n;
        float *y = tc_calib_get(s, L, rounded[j], TC_STAT_Y, &n);
        for (int64_t c = 0; c < n; c++)
            y[c] = tc_round_to_dtype(e->dt, y[c]);
    }
    /* One input for q/k/v and one for gate/up: copy the recorded one. */
    int64_t n;
    const float *xq = tc_calib_get(s, L, TC_LIN_Q, TC_STAT_X, &n);
    memcpy(tc_calib_get(s, L, TC_LIN_K, TC_STAT_X, NULL), xq, (size_t)n * sizeof(float));
    memcpy(tc_calib_get(s, L, TC_LIN_V, TC_STAT_X, NULL), xq, (size_t)n * sizeof(float));
    float *xg = tc_calib_get(s, L, TC_LIN_GATE, TC_STAT_X, &n);
    for (int64_t x = 1; x < e->sd.experts; x++) {
        /* Every expert sees the whole input: each ep group recorded it at
         * its first expert. */
        const float *xe = xg + x * e->H;
        for (int64_t c = 0; c < e->H; c++)
            xg[c] = fmaxf(xg[c], xe[c]);
    }
    for (int64_t x = 1; x < e->sd.experts; x++)
        memcpy(xg + x * e->H, xg, (size_t)e->H * sizeof(float));
    memcpy(tc_calib_get(s, L, TC_LIN_UP, TC_STAT_X, NULL), xg, (size_t)n * sizeof(float));
}

tc_status tc_fwd_publish_layer_stats(tc_fwd_engine *e, int64_t li)
{
    if (!e->layer_hook)
        return TC_OK;
    const int64_t L = e->layer0 + li;
    const size_t off = tc_calib_offset(&e->sd, L, TC_LIN_Q, TC_STAT_X);
    const size_t end = L + 1 < e->sd.layers ? tc_calib_offset(&e->sd, L + 1, TC_LIN_Q, TC_STAT_X)
                                            : tc_calib_offset(&e->sd, -1, TC_LIN_LM_HEAD, TC_STAT_X);
    /* The layer's statistics are complete on this stage: every tp rank and
     * replica has run it over its tokens. */
    TRY(tc_coll_allreduce_max_f32(&e->tp_c, e->d_stats + off, end - off));
    TRY(tc_coll_allreduce_max_f32(&e->dp_c, e->d_stats + off, end - off));
    TRY(e->ops->download(e->be, e->hook_stats->data + off, e->d_stats + off,
                         (end - off) * sizeof(float)));
    tc_fwd_finalize_layer_stats(e, e->hook_stats, L);
    return TC_OK;
}

void tc_fwd_set_layer_hook(tc_fwd_engine *e, tc_fwd_layer_hook hook, void *ctx,
                           tc_calib_stats *host)
{
    e->layer_hook = hook;
    e->hook_ctx = ctx;
    e->hook_stats = host;
}

void tc_fwd_layer_ptrs_get(const tc_fwd_engine *e, int64_t i, tc_fwd_layer_ptrs *out)
{
    const layer_weights *w = &e->layers[i];
    out->in_norm = w->in_norm;
    out->post_norm = w->post_norm;
    out->qkv = w->qkv;
    out->dense = w->dense;
    out->fc = w->fc;
    out->gate = w->gate;
    out->proj = w->proj;
}

struct fwd_backend *tc_fwd_backend_get(const tc_fwd_engine *e)
{
    return e->be;
}

tc_dtype tc_fwd_dtype(const tc_fwd_engine *e)
{
    return e->dt;
}
