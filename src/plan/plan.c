/* plan.c: per-cell tensor plans (see plan.h).
 *
 * The rules come from trtllm-checkpoint.md §4.1-4.5 (Era B legacy loader):
 *  - qkv: [Wq_r; Wk_r; Wv_r], each split into tp row chunks; with GQA and
 *    nkv < tp each KV head is first repeated tp/nkv times, so rank r gets
 *    KV head floor(r * nkv / tp) (§4.3);
 *  - dense/proj are row-parallel (split the HF input dim 1), fc/gate
 *    column-parallel (split HF dim 0); fc = gate_proj, gate = up_proj;
 *  - lm_head is padded with zero rows to ceil(V/tp)*tp, then split (§4.4);
 *  - vocab_embedding is whole, or split by rows (dim 0, chunk ceil(V/tp),
 *    zero-padded as the v0.12 unified loader does) or by columns (dim 1). */
#define _POSIX_C_SOURCE 200809L
#include "trtconv/plan/plan.h"
#include "plan_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "trtconv/core/log.h"

int64_t tc_pad_vocab(int64_t vocab, int64_t tp)
{
    return (vocab + tp - 1) / tp * tp;
}

tc_status tc_plan_check_model(const tc_hf_config *c, const tc_plan_params *pp)
{
    const int64_t tp = pp->layout.tp;
    TC_TRY(tc_layout_check_model(&pp->layout, c));
    if (pp->emb.parallel && pp->emb.sharding_dim == 1 && c->hidden_size % tp != 0)
        return tc_fail(TC_E_INPUT,
                       "hidden_size = %lld is not divisible by tp_size = %lld "
                       "(--use_parallel_embedding --embedding_sharding_dim 1)",
                       (long long)c->hidden_size, (long long)tp);
    if (c->mlp_bias)
        return tc_fail(TC_E_INPUT, "mlp_bias = true is not supported by the TensorRT-LLM v0.12 "
                       "LLaMA checkpoint format");
    if (pp->emb.share) {
        if (pp->layout.pp != 1)
            return tc_fail(TC_E_USAGE, "--use_embedding_sharing needs pp_size = 1 "
                           "(lm_head and the embedding must be on the same rank)");
        if (tp != 1 && !(pp->emb.parallel && pp->emb.sharding_dim == 0))
            return tc_fail(TC_E_USAGE, "--use_embedding_sharing with tp_size > 1 needs "
                           "--use_parallel_embedding --embedding_sharding_dim 0");
    }
    return TC_OK;
}


tc_status tcp_begin_tensor(builder *b, const char *name, tc_dtype dt, int ndim,
                              int64_t rows, int64_t cols)
{
    tc_plan *p = b->plan;
    if (p->n_tensors == b->cap_tensors) {
        size_t cap = b->cap_tensors ? 2 * b->cap_tensors : 64;
        tc_plan_tensor *t = realloc(p->tensors, cap * sizeof *t);
        if (!t)
            return tc_fail(TC_E_INTERNAL, "out of memory building the plan");
        p->tensors = t;
        b->cap_tensors = cap;
    }
    tc_plan_tensor *t = &p->tensors[p->n_tensors++];
    memset(t, 0, sizeof *t);
    if ((size_t)snprintf(t->name, sizeof t->name, "%s", name) >= sizeof t->name)
        return tc_fail(TC_E_INTERNAL, "tensor name too long: %s", name);
    t->dtype = dt;
    t->slice_dtype = dt;
    t->ndim = ndim;
    t->rows = rows;
    t->cols = cols;
    t->shape[0] = rows;
    t->shape[1] = ndim >= 2 ? cols : 0;
    t->scale_index = -1;
    t->scale_of = -1;
    b->cur = t;
    b->fill = 0;
    b->cap_pieces = 0;
    return TC_OK;
}

/* Append one stored rectangle (or zero rows when src is NULL) at slice
 * position (dst_row, dst_col). */
static tc_status push_piece(builder *b, const tc_st_file *f, const tc_st_tensor *src,
                            int64_t src_row, int64_t step, int64_t src_col, int64_t rows,
                            int64_t dst_row, int64_t dst_col, int64_t cols)
{
    tc_plan_tensor *t = b->cur;
    if (rows <= 0 || cols <= 0)
        return TC_OK;
    if (t->n_pieces == b->cap_pieces) {
        size_t cap = b->cap_pieces ? 2 * b->cap_pieces : 4;
        tc_piece *np = realloc(t->pieces, cap * sizeof *np);
        if (!np)
            return tc_fail(TC_E_INTERNAL, "out of memory building the plan");
        t->pieces = np;
        b->cap_pieces = cap;
    }
    tc_piece *pc = &t->pieces[t->n_pieces++];
    pc->src_file = f;
    pc->src = src;
    pc->src_row = src_row;
    pc->src_row_step = step;
    pc->src_col = src_col;
    pc->rows = rows;
    pc->dst_row = dst_row;
    pc->dst_col = dst_col;
    pc->cols = cols;
    if (src)
        b->plan->read_bytes += (uint64_t)rows * (uint64_t)cols * tc_dtype_bits(src->dtype) / 8;
    return TC_OK;
}

/* Stored rows [m0, m0 + step*rows) of the logical tensor s (step 1 or 2),
 * columns [c0, c0 + cols), landing at slice rows from dst_row: cut along
 * the model-parallel parts that hold them. */
static tc_status add_run(builder *b, const tc_hf_tensor *s, int64_t m0, int64_t step,
                         int64_t rows, int64_t c0, int64_t dst_row)
{
    const int64_t cols = b->cur->cols;
    if (s->split_dim == 1) {
        const int64_t w = s->parts[0]->shape[1];
        for (size_t p = 0; p < s->n_parts; p++) {
            int64_t lo = (int64_t)p * w, hi = lo + w;
            int64_t a = c0 > lo ? c0 : lo, e = c0 + cols < hi ? c0 + cols : hi;
            if (a < e)
                TC_TRY(push_piece(b, s->files[p], s->parts[p], m0, step, a - lo, rows, dst_row,
                                  a - c0, e - a));
        }
        return TC_OK;
    }
    if (s->split_dim == 0) {
        const int64_t h = s->parts[0]->shape[0];
        while (rows > 0) {
            size_t p = (size_t)(m0 / h);
            int64_t local = m0 % h;
            int64_t n = (h - local + step - 1) / step; /* rows left in this part */
            if (n > rows)
                n = rows;
            TC_TRY(push_piece(b, s->files[p], s->parts[p], local, step, c0, n, dst_row, 0, cols));
            rows -= n;
            m0 += n * step;
            dst_row += n;
        }
        return TC_OK;
    }
    return push_piece(b, s->files[0], s->parts[0], m0, step, c0, rows, dst_row, 0, cols);
}

/* Logical rows [src_row, src_row+rows), columns [src_col, +slice cols) of
 * s (NULL: zero rows) as the next rows of the slice being built. */
tc_status tcp_add_piece(builder *b, const tc_hf_tensor *s, int64_t src_row, int64_t src_col,
                           int64_t rows)
{
    const int64_t dst = b->fill;
    if (rows <= 0)
        return TC_OK;
    b->fill += rows;
    if (!s)
        return push_piece(b, NULL, NULL, 0, 1, 0, rows, dst, 0, b->cur->cols);
    if (s->rope_head_dim == 0)
        return add_run(b, s, src_row, 1, rows, src_col, dst);
    /* Meta stores head h's rotary pairs interleaved: Hugging Face row
     * h*d + half*d/2 + i is Meta row h*d + 2*i + half (the permutation of
     * transformers' convert_llama_weights_to_hf.py and of TensorRT-LLM's
     * load_from_meta_llama: view(nH, d/2, 2, in).transpose(1, 2)). Each
     * half-head is one run of stored rows with step 2. */
    const int64_t d = s->rope_head_dim, half = d / 2;
    for (int64_t r = src_row, done = 0; done < rows;) {
        int64_t h = r / d, j = r % d, hb = j / half, i = j % half;
        int64_t n = half - i;
        if (n > rows - done)
            n = rows - done;
        TC_TRY(add_run(b, s, h * d + 2 * i + hb, 2, n, src_col, dst + done));
        r += n;
        done += n;
    }
    return TC_OK;
}

/* Look up a source tensor and check its shape against what config.json
 * implies. ndim 1: [d0]; ndim 2: [d0, d1]. */
static tc_status need_dt(builder *b, const char *name, int ndim, int64_t d0, int64_t d1,
                         tc_hf_tensor *x, bool fp8_ok);

tc_status tcp_need(builder *b, const char *name, int ndim, int64_t d0, int64_t d1,
                      tc_hf_tensor *x)
{
    return need_dt(b, name, ndim, d0, d1, x, false);
}

/* need, also accepting F8_E4M3 weights when fp8_ok (fbgemm_fp8 inputs). */
static tc_status need_dt(builder *b, const char *name, int ndim, int64_t d0, int64_t d1,
                         tc_hf_tensor *x, bool fp8_ok)
{
    TC_TRY(tc_hf_get(b->m, name, true, x));
    bool ok = x->ndim == ndim && x->shape[0] == d0 && (ndim == 1 || x->shape[1] == d1);
    if (!ok) {
        char got[96] = "[";
        size_t len = 1;
        if (x->n_parts == 1 || x->ndim > 2) {
            const tc_st_tensor *t = x->parts[0];
            for (int i = 0; i < t->ndim && len < sizeof got - 24; i++)
                len += (size_t)snprintf(got + len, sizeof got - len, "%s%lld", i ? ", " : "",
                                        (long long)t->shape[i]);
        } else {
            for (int i = 0; i < x->ndim; i++)
                len += (size_t)snprintf(got + len, sizeof got - len, "%s%lld", i ? ", " : "",
                                        (long long)x->shape[i]);
        }
        snprintf(got + len, sizeof got - len, "]");
        char want[64];
        if (ndim == 1)
            snprintf(want, sizeof want, "[%lld]", (long long)d0);
        else
            snprintf(want, sizeof want, "[%lld, %lld]", (long long)d0, (long long)d1);
        return tc_fail(TC_E_INPUT, "%s: tensor '%s' has shape %s but %s implies %s%s", x->path,
                       name, got, b->m->config_name ? b->m->config_name : "config.json", want,
                       x->n_parts > 1 ? " (assembled from the model-parallel shards)" : "");
    }
    if (!tc_dtype_is_convertible(x->dtype) && !(fp8_ok && x->dtype == TC_DT_F8_E4M3))
        return tc_fail(TC_E_INPUT, "%s: tensor '%s' has dtype %s; only F32, F16 and BF16 "
                       "weights can be converted%s", x->path, name, tc_dtype_name(x->dtype),
                       x->dtype == TC_DT_F8_E4M3 ? " (F8_E4M3 only as the MLP weights of an "
                       "fbgemm_fp8 checkpoint)" : "");
    return TC_OK;
}

#define TRY(expr) TC_TRY(expr)

/* A whole tensor, replicated on every rank (norms, unsplit embedding). */
static tc_status plan_replicated(builder *b, const char *out, const char *in, int ndim,
                                 int64_t d0, int64_t d1, tc_dtype dt)
{
    tc_hf_tensor t;
    TRY(tcp_need(b, in, ndim, d0, d1, &t));
    TRY(tcp_begin_tensor(b, out, dt, ndim, d0, ndim == 1 ? 1 : d1));
    return tcp_add_piece(b, &t, 0, 0, d0);
}

/* Row range [row0, row0+rows) of a tensor of `total` rows, zero-filled
 * where it runs past the source (vocab padding). */
static tc_status add_rows_padded(builder *b, const tc_hf_tensor *t, int64_t total, int64_t row0,
                                 int64_t rows)
{
    int64_t avail = total - row0;
    if (avail < 0)
        avail = 0;
    if (avail > rows)
        avail = rows;
    TRY(tcp_add_piece(b, t, row0, 0, avail));
    return tcp_add_piece(b, NULL, 0, 0, rows - avail);
}

/* The q, k or v rows a rank takes (§4.3). */
static void qkv_rows(int64_t heads, int64_t d, int64_t tp, int64_t r, int64_t *row0, int64_t *rows)
{
    if (heads >= tp) {
        *rows = heads / tp * d;
        *row0 = r * *rows;
    } else {
        *rows = d;
        *row0 = (r * heads / tp) * d;
    }
}

/* The tensor just planned is a linear's weight: a quantization method may
 * rewrite it (quant/method.h). */
void tcp_mark_linear(builder *b)
{
    b->cur->linear = true;
}

/* One MLP linear of HF shape [N, K]: slice rows [r0, r0+rows), columns
 * [c0, c0+cols). An fbgemm_fp8 checkpoint's F8_E4M3 weight is kept as
 * stored (v0.12 get_weight_and_scale: weight and weight_scale taken as they
 * are) with its `weight_scale` [N, 1] rows as per_channel_scale F32;
 * otherwise the weight is planned in dt and marked for the quantization
 * methods. */
static tc_status plan_mlp_linear(builder *b, int64_t g, int64_t local, const char *hf,
                                 const char *trt, int64_t N, int64_t K, int64_t r0, int64_t rows,
                                 int64_t c0, int64_t cols, tc_dtype dt)
{
    char in[256], out[160];
    tc_hf_tensor w;
    snprintf(in, sizeof in, "model.layers.%lld.mlp.%s.weight", (long long)g, hf);
    TRY(need_dt(b, in, 2, N, K, &w, b->m->cfg.fbgemm_fp8));
    snprintf(out, sizeof out, "transformer.layers.%lld.mlp.%s.weight", (long long)local, trt);
    if (w.dtype != TC_DT_F8_E4M3) {
        TRY(tcp_begin_tensor(b, out, dt, 2, rows, cols));
        TRY(tcp_add_piece(b, &w, r0, c0, rows));
        tcp_mark_linear(b);
        return TC_OK;
    }
    TRY(tcp_begin_tensor(b, out, TC_DT_F8_E4M3, 2, rows, cols));
    TRY(tcp_add_piece(b, &w, r0, c0, rows));
    tc_hf_tensor s;
    snprintf(in, sizeof in, "model.layers.%lld.mlp.%s.weight_scale", (long long)g, hf);
    TRY(tcp_need(b, in, 2, N, 1, &s));
    if (s.dtype != TC_DT_F32)
        return tc_fail(TC_E_INPUT, "%s: tensor '%s' has dtype %s; an fbgemm_fp8 weight_scale "
                       "is F32 [N, 1]", s.path, in, tc_dtype_name(s.dtype));
    snprintf(out, sizeof out, "transformer.layers.%lld.mlp.%s.per_channel_scale", (long long)local,
             trt);
    TRY(tcp_begin_tensor(b, out, TC_DT_F32, 1, rows, 1));
    return tcp_add_piece(b, &s, r0, 0, rows);
}

static tc_status plan_layer(builder *b, const tc_hf_config *c, tc_dtype dt,
                            int64_t g, int64_t local, const tc_layout *lay, int cell)
{
    const int64_t tp = lay->tp, r = tc_layout_tp_rank(lay, cell);
    const int64_t H = c->hidden_size, nh = c->num_attention_heads;
    const int64_t nkv = c->num_key_value_heads, d = c->head_dim;
    const int64_t I = c->intermediate_size;
    char in[256], out[160];
    tc_hf_tensor t[3];
#define IN(fmt_) (snprintf(in, sizeof in, "model.layers.%lld." fmt_, (long long)g), in)
#define OUT(fmt_) (snprintf(out, sizeof out, "transformer.layers.%lld." fmt_, (long long)local), out)

    TRY(plan_replicated(b, OUT("input_layernorm.weight"), IN("input_layernorm.weight"), 1, H, 0, dt));

    int64_t q0, qn, k0, kn;
    qkv_rows(nh, d, tp, r, &q0, &qn);
    qkv_rows(nkv, d, tp, r, &k0, &kn);
    static const char *const proj[3] = { "q_proj", "k_proj", "v_proj" };
    /* --remove_duplicated_kv_heads: stored KV head 2h is head h. */
    const int64_t twice = c->kv_heads_stored_twice ? 2 : 1;
    for (int i = 0; i < 3; i++) {
        char nm[64];
        snprintf(nm, sizeof nm, "self_attn.%s.weight", proj[i]);
        snprintf(in, sizeof in, "model.layers.%lld.%s", (long long)g, nm);
        TRY(tcp_need(b, in, 2, (i == 0 ? nh : nkv * twice) * d, H, &t[i]));
    }
    TRY(tcp_begin_tensor(b, OUT("attention.qkv.weight"), dt, 2, qn + 2 * kn, H));
    TRY(tcp_add_piece(b, &t[0], q0, 0, qn));
    for (int i = 1; i < 3; i++) {
        if (twice == 1)
            TRY(tcp_add_piece(b, &t[i], k0, 0, kn));
        for (int64_t h = k0 / d; twice > 1 && h < (k0 + kn) / d; h++)
            TRY(tcp_add_piece(b, &t[i], h * twice * d, 0, d));
    }
    tcp_mark_linear(b);
    if (c->attention_bias) {
        for (int i = 0; i < 3; i++) {
            snprintf(in, sizeof in, "model.layers.%lld.self_attn.%s.bias", (long long)g, proj[i]);
            TRY(tcp_need(b, in, 1, (i == 0 ? nh : nkv) * d, 0, &t[i]));
        }
        TRY(tcp_begin_tensor(b, OUT("attention.qkv.bias"), dt, 1, qn + 2 * kn, 1));
        TRY(tcp_add_piece(b, &t[0], q0, 0, qn));
        TRY(tcp_add_piece(b, &t[1], k0, 0, kn));
        TRY(tcp_add_piece(b, &t[2], k0, 0, kn));
    }

    /* dense: row-parallel, HF o_proj [H, nh*d] split along its input dim. */
    TRY(tcp_need(b, IN("self_attn.o_proj.weight"), 2, H, nh * d, &t[0]));
    TRY(tcp_begin_tensor(b, OUT("attention.dense.weight"), dt, 2, H, nh * d / tp));
    TRY(tcp_add_piece(b, &t[0], 0, r * (nh * d / tp), H));
    tcp_mark_linear(b);
    if (c->attention_bias) {
        /* Row-parallel bias is added once after the all-reduce: whole. */
        tc_hf_tensor bt;
        TRY(tc_hf_get(b->m, IN("self_attn.o_proj.bias"), false, &bt));
        if (bt.n_parts > 0) {
            TRY(plan_replicated(b, OUT("attention.dense.bias"), in, 1, H, 0, dt));
        }
    }

    TRY(plan_replicated(b, OUT("post_layernorm.weight"),
                        IN("post_attention_layernorm.weight"), 1, H, 0, dt));

    if (tc_hf_is_moe(c))
        return tcp_plan_moe(b, c, dt, g, local, lay, cell);
    /* fc = gate_proj (through SiLU), gate = up_proj: column-parallel. */
    TRY(plan_mlp_linear(b, g, local, "gate_proj", "fc", I, H, r * (I / tp), I / tp, 0, H, dt));
    TRY(plan_mlp_linear(b, g, local, "up_proj", "gate", I, H, r * (I / tp), I / tp, 0, H, dt));
    TRY(plan_mlp_linear(b, g, local, "down_proj", "proj", H, I, 0, H, r * (I / tp), I / tp, dt));
#undef IN
#undef OUT
    return TC_OK;
}

/* The three float32 rotary buffers every rank file of the per-rank path
 * holds (rope.h); the SmoothQuant / INT8-KV quantize path writes none. */
static tc_status plan_rope(builder *b, const tc_hf_config *c)
{
    tc_plan *p = b->plan;
    char label[4096];
    snprintf(label, sizeof label, "%s/%s", b->m->dir, b->m->config_name);
    TRY(tc_rope_tables_init(label, c->rope_scaling, c->rope_theta, c->max_position_embeddings,
                            c->head_dim, &p->rope));
    const int64_t P = c->max_position_embeddings, D = c->head_dim;
    static const tc_rope_buffer kinds[3] = { TC_ROPE_EMBED_POSITIONS, TC_ROPE_INV_FREQ,
                                             TC_ROPE_FOR_GPT_ATTENTION };
    for (int k = 0; k < 3; k++) {
        const bool freq = kinds[k] == TC_ROPE_INV_FREQ;
        TRY(tcp_begin_tensor(b, tc_rope_buffer_name(kinds[k]), TC_DT_F32, 1, freq ? D / 2 : P,
                         freq ? 1 : D));
        tc_plan_tensor *t = b->cur;
        t->rope = kinds[k];
        t->rope_tables = &p->rope;
        if (kinds[k] == TC_ROPE_EMBED_POSITIONS) {
            t->ndim = 3;                 /* [1, P, D] */
            t->shape[0] = 1;
            t->shape[1] = P;
            t->shape[2] = D;
        } else if (kinds[k] == TC_ROPE_FOR_GPT_ATTENTION) {
            t->ndim = 2;                 /* [1, P * D] */
            t->shape[0] = 1;
            t->shape[1] = P * D;
        }
    }
    return TC_OK;
}

static tc_status plan_cell(builder *b, const tc_plan_params *pa, int rank)
{
    const tc_hf_config *c = &b->m->cfg;
    const tc_dtype dt = pa->out_dtype;
    const int64_t tp = pa->layout.tp, pp = pa->layout.pp;
    const int64_t r = tc_layout_tp_rank(&pa->layout, rank), p = tc_layout_pp_rank(&pa->layout, rank);
    const int64_t H = c->hidden_size, V = c->vocab_size;
    const int64_t per_stage = c->num_hidden_layers / pp;
    tc_hf_tensor t;

    b->plan->rank = rank;
    b->plan->tp_rank = (int)r;
    b->plan->pp_rank = (int)p;
    b->plan->layer0 = p * per_stage;
    b->plan->layers_total = c->num_hidden_layers;
    if (pa->rope_buffers)
        TRY(plan_rope(b, c));

    if (p == 0) {
        TRY(tcp_need(b, "model.embed_tokens.weight", 2, V, H, &t));
        const char *name = "transformer.vocab_embedding.weight";
        if (!pa->emb.parallel) {
            TRY(tcp_begin_tensor(b, name, dt, 2, V, H));
            TRY(tcp_add_piece(b, &t, 0, 0, V));
        } else if (pa->emb.sharding_dim == 0) {
            int64_t chunk = tc_layout_vocab_rows(&pa->layout, V);
            TRY(tcp_begin_tensor(b, name, dt, 2, chunk, H));
            TRY(add_rows_padded(b, &t, V, r * chunk, chunk));
        } else {
            TRY(tcp_begin_tensor(b, name, dt, 2, V, H / tp));
            TRY(tcp_add_piece(b, &t, 0, r * (H / tp), V));
        }
    }
    for (int64_t i = 0; i < per_stage; i++)
        TRY(plan_layer(b, c, dt, p * per_stage + i, i, &pa->layout, rank));
    if (p == pp - 1) {
        TRY(plan_replicated(b, "transformer.ln_f.weight", "model.norm.weight", 1, H, 0, dt));
        bool share = false;
        const char *src = "lm_head.weight";
        if (c->tie_word_embeddings) {
            src = "model.embed_tokens.weight";
            share = pa->emb.share;
        }
        if (!share) {
            const int64_t rows = tc_pad_vocab(V, tp) / tp;
            tc_status st = tcp_need(b, src, 2, V, H, &t);
            if (st != TC_OK)
                return st;
            TRY(tcp_begin_tensor(b, "lm_head.weight", dt, 2, rows, H));
            TRY(add_rows_padded(b, &t, V, r * rows, rows));
        }
    }
    return TC_OK;
}

tc_status tc_plan_build(tc_hf_model *m, const tc_plan_params *params, int cell, tc_plan **plan)
{
    *plan = NULL;
    builder b;
    memset(&b, 0, sizeof b);
    b.m = m;
    b.plan = calloc(1, sizeof *b.plan);
    if (!b.plan)
        return tc_fail(TC_E_INTERNAL, "out of memory building the plan");
    tc_status st = plan_cell(&b, params, cell);
    if (st != TC_OK) {
        tc_plan_free(b.plan);
        return st;
    }
    tc_plan_recount(b.plan);
    *plan = b.plan;
    return TC_OK;
}

void tc_plan_free(tc_plan *p)
{
    if (!p)
        return;
    tc_rope_tables_free(&p->rope);
    for (size_t i = 0; i < p->n_tensors; i++) {
        free(p->tensors[i].pieces);
        free(p->tensors[i].constant_values);
    }
    free(p->tensors);
    free(p);
}

void tc_plan_out_tensors(const tc_plan *p, tc_st_out_tensor *out)
{
    for (size_t i = 0; i < p->n_tensors; i++) {
        const tc_plan_tensor *t = &p->tensors[i];
        memset(&out[i], 0, sizeof out[i]);
        out[i].name = t->name;
        out[i].dtype = t->dtype;
        out[i].ndim = t->ndim;
        for (int d = 0; d < t->ndim; d++)
            out[i].shape[d] = t->shape[d];
    }
}

int tc_plan_find(const tc_plan *p, const char *name)
{
    for (size_t i = 0; i < p->n_tensors; i++)
        if (!strcmp(p->tensors[i].name, name))
            return (int)i;
    return -1;
}

uint64_t tc_plan_tensor_elems(const tc_plan_tensor *t)
{
    uint64_t elems = 1;
    for (int d = 0; d < t->ndim; d++)
        elems *= (uint64_t)t->shape[d];
    return elems;
}

static uint64_t tensor_bytes(const tc_plan_tensor *t)
{
    return tc_plan_tensor_elems(t) * tc_dtype_bits(t->dtype) / 8;
}

void tc_plan_recount(tc_plan *p)
{
    uint64_t wb = 0;
    for (size_t i = 0; i < p->n_tensors; i++)
        wb += tensor_bytes(&p->tensors[i]);
    p->write_bytes = wb;
}

tc_status tc_plan_add_computed(tc_plan *p, const char *name, tc_dtype dt, int ndim, int64_t d0,
                               int64_t d1)
{
    tc_plan_tensor *nt = realloc(p->tensors, (p->n_tensors + 1) * sizeof *nt);
    if (!nt)
        return tc_fail(TC_E_INTERNAL, "out of memory extending the plan");
    p->tensors = nt;
    tc_plan_tensor *t = &nt[p->n_tensors];
    memset(t, 0, sizeof *t);
    if ((size_t)snprintf(t->name, sizeof t->name, "%s", name) >= sizeof t->name)
        return tc_fail(TC_E_INTERNAL, "tensor name too long: %s", name);
    t->dtype = t->slice_dtype = dt;
    t->ndim = ndim;
    t->shape[0] = t->rows = d0;
    t->shape[1] = ndim == 2 ? d1 : 0;
    t->cols = ndim == 2 ? d1 : 1;
    t->scale_index = t->scale_of = -1;
    t->computed = true;
    p->n_tensors++;
    p->write_bytes += tensor_bytes(t);
    return TC_OK;
}

tc_status tc_plan_add_constant(tc_plan *p, const char *name, int64_t rows, int64_t cols,
                               const float *values, int64_t n_values)
{
    if (n_values < 1 || n_values > (cols > 0 ? rows * cols : rows))
        return tc_fail(TC_E_INTERNAL, "%s: %lld constant values", name, (long long)n_values);
    float *v = malloc((size_t)n_values * sizeof *v);
    if (!v)
        return tc_fail(TC_E_INTERNAL, "out of memory extending the plan");
    memcpy(v, values, (size_t)n_values * sizeof *v);
    tc_status st = tc_plan_add_computed(p, name, TC_DT_F32, cols > 0 ? 2 : 1, rows, cols);
    if (st != TC_OK) {
        free(v);
        return st;
    }
    tc_plan_tensor *t = &p->tensors[p->n_tensors - 1];
    t->computed = false;
    t->constant = true;
    t->n_constant = n_values;
    t->constant_values = v;
    return TC_OK;
}

void tc_plan_set_computed(tc_plan *p, int i, tc_dtype dt)
{
    tc_plan_tensor *t = &p->tensors[i];
    p->write_bytes -= tensor_bytes(t);
    t->dtype = dt;
    t->computed = true;
    p->write_bytes += tensor_bytes(t);
}
