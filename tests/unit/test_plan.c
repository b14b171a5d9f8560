/* test_plan.c: Check suite for plan.c (which tensors a (tp, pp) cell writes
 * and where each of their rows comes from; trtllm-checkpoint.md §2,
 * §4.1-4.5). Every test writes a tiny LLaMA model directory (config.json +
 * model.safetensors of zeros: only shapes matter for plans). */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "trtconv/model/hf_model.h"
#include "trtconv/core/log.h"
#include "trtconv/plan/plan.h"
#include "trtconv/formats/st_writer.h"

/* ---------------------------------------------------------------------------
 * Model fixture
 * ------------------------------------------------------------------------- */

typedef struct model_spec {
    int64_t V, H, I, L, nh, nkv, d;
    bool tie, bias;
    const char *omit;      /* tensor left out of model.safetensors */
    const char *widen;     /* tensor written with one extra leading row */
    const char *as_int;    /* tensor written as I16 instead of F16 */
} model_spec;

/* V=10, H=32, I=64, 2 layers, 4 heads of 8 (MHA). */
static model_spec base_spec(void)
{
    model_spec s;
    memset(&s, 0, sizeof s);
    s.V = 10;
    s.H = 32;
    s.I = 64;
    s.L = 2;
    s.nh = 4;
    s.nkv = 4;
    s.d = 8;
    return s;
}

#define MAX_TENSORS 256

typedef struct tensor_list {
    size_t n;
    char names[MAX_TENSORS][96];
    tc_st_out_tensor t[MAX_TENSORS];
} tensor_list;

static void add_tensor(tensor_list *l, const model_spec *s, const char *name, int ndim,
                       int64_t d0, int64_t d1)
{
    if (s->omit && strcmp(name, s->omit) == 0)
        return;
    ck_assert_uint_lt(l->n, MAX_TENSORS);
    tc_st_out_tensor *t = &l->t[l->n];
    snprintf(l->names[l->n], sizeof l->names[l->n], "%s", name);
    memset(t, 0, sizeof *t);
    t->name = l->names[l->n];
    t->dtype = TC_DT_F16;
    if (s->as_int && strcmp(name, s->as_int) == 0)
        t->dtype = TC_DT_I16;
    t->ndim = ndim;
    t->shape[0] = d0 + (s->widen && strcmp(name, s->widen) == 0 ? 1 : 0);
    if (ndim == 2)
        t->shape[1] = d1;
    l->n++;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
}

/* Create the model directory; dir receives its path. */
static void make_model(const model_spec *s, char dir[64])
{
    snprintf(dir, 64, "/tmp/tc_plan_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));

    char path[128], cfg[1024];
    snprintf(cfg, sizeof cfg,
             "{\n"
             "  \"architectures\": [\"LlamaForCausalLM\"],\n"
             "  \"model_type\": \"llama\",\n"
             "  \"vocab_size\": %lld,\n"
             "  \"hidden_size\": %lld,\n"
             "  \"intermediate_size\": %lld,\n"
             "  \"num_hidden_layers\": %lld,\n"
             "  \"num_attention_heads\": %lld,\n"
             "  \"num_key_value_heads\": %lld,\n"
             "  \"head_dim\": %lld,\n"
             "  \"torch_dtype\": \"float16\",\n"
             "  \"tie_word_embeddings\": %s,\n"
             "  \"attention_bias\": %s\n"
             "}\n",
             (long long)s->V, (long long)s->H, (long long)s->I, (long long)s->L,
             (long long)s->nh, (long long)s->nkv, (long long)s->d, s->tie ? "true" : "false",
             s->bias ? "true" : "false");
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_text(path, cfg);

    tensor_list *l = calloc(1, sizeof *l);
    ck_assert_ptr_nonnull(l);
    const int64_t H = s->H, q = s->nh * s->d, kv = s->nkv * s->d;
    add_tensor(l, s, "model.embed_tokens.weight", 2, s->V, H);
    for (int64_t g = 0; g < s->L; g++) {
        char n[96];
#define T(suffix, ndim, d0, d1)                                                   \
    do {                                                                          \
        snprintf(n, sizeof n, "model.layers.%lld.%s", (long long)g, suffix);      \
        add_tensor(l, s, n, ndim, d0, d1);                                        \
    } while (0)
        T("input_layernorm.weight", 1, H, 0);
        T("self_attn.q_proj.weight", 2, q, H);
        T("self_attn.k_proj.weight", 2, kv, H);
        T("self_attn.v_proj.weight", 2, kv, H);
        T("self_attn.o_proj.weight", 2, H, q);
        if (s->bias) {
            T("self_attn.q_proj.bias", 1, q, 0);
            T("self_attn.k_proj.bias", 1, kv, 0);
            T("self_attn.v_proj.bias", 1, kv, 0);
            T("self_attn.o_proj.bias", 1, H, 0);
        }
        T("post_attention_layernorm.weight", 1, H, 0);
        T("mlp.gate_proj.weight", 2, s->I, H);
        T("mlp.up_proj.weight", 2, s->I, H);
        T("mlp.down_proj.weight", 2, H, s->I);
#undef T
    }
    add_tensor(l, s, "model.norm.weight", 1, H, 0);
    if (!s->tie)
        add_tensor(l, s, "lm_head.weight", 2, s->V, H);

    /* One zero buffer serves every tensor. */
    uint64_t max_bytes = 0;
    for (size_t i = 0; i < l->n; i++) {
        uint64_t b = 2 * (uint64_t)l->t[i].shape[0] *
                     (uint64_t)(l->t[i].ndim == 2 ? l->t[i].shape[1] : 1);
        if (b > max_bytes)
            max_bytes = b;
    }
    void *zeros = calloc(1, (size_t)max_bytes);
    const void **data = calloc(l->n, sizeof *data);
    ck_assert_ptr_nonnull(zeros);
    ck_assert_ptr_nonnull(data);
    for (size_t i = 0; i < l->n; i++)
        data[i] = zeros;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    ck_assert_int_eq(tc_st_write_file(path, l->t, data, l->n, "{\"format\":\"pt\"}"), TC_OK);
    free(data);
    free(zeros);
    free(l);
}

static void remove_model(const char *dir)
{
    char path[128];
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    rmdir(dir);
}

/* Plan parameters as the command line's defaults give them: tp 1, pp 1,
 * float16, rotary buffers on. */
static void params_init(tc_plan_params *p)
{
    memset(p, 0, sizeof *p);
    p->layout.tp = p->layout.pp = p->layout.ranks = 1;
    p->out_dtype = TC_DT_F16;
    p->rope_buffers = true;
}

static tc_status plan_build_dt(tc_hf_model *m, tc_plan_params *p, tc_dtype dt, int cell,
                               tc_plan **out)
{
    p->out_dtype = dt;
    return tc_plan_build(m, p, cell, out);
}

/* A model directory opened with tc_hf_open, and plan parameters for it. */
typedef struct fixture {
    char dir[64];
    tc_hf_model *m;
    tc_plan_params o;
} fixture;

/* The directory is removed as soon as its shard is open (the open file
 * stays readable), so a failing assertion, which ends the forked test with
 * _exit, leaves nothing behind in /tmp. */
static void fixture_open(fixture *fx, const model_spec *s, int64_t tp, int64_t pp)
{
    make_model(s, fx->dir);
    tc_status st = tc_hf_open(fx->dir, &fx->m);
    if (st == TC_OK) {
        const tc_st_file *f = NULL;
        const tc_st_tensor *t = NULL;
        st = tc_hf_lookup_tensor(fx->m, "model.norm.weight", &f, &t);
    }
    remove_model(fx->dir);
    ck_assert_msg(st == TC_OK, "tc_hf_open: %s", tc_first_error());
    params_init(&fx->o);
    fx->o.layout.tp = tp;
    fx->o.layout.pp = pp;
}

static void fixture_close(fixture *fx)
{
    tc_hf_close(fx->m);
    fx->m = NULL;
}

static tc_plan *build(fixture *fx, int rank)
{
    tc_plan *p = NULL;
    ck_assert_int_eq(tc_plan_check_model(&fx->m->cfg, &fx->o), TC_OK);
    tc_status st = plan_build_dt(fx->m, &fx->o, TC_DT_F16, rank, &p);
    ck_assert_msg(st == TC_OK, "tc_plan_build(rank %d): %s", rank, tc_first_error());
    ck_assert_ptr_nonnull(p);
    return p;
}

static const tc_plan_tensor *find(const tc_plan *p, const char *name)
{
    for (size_t i = 0; i < p->n_tensors; i++)
        if (strcmp(p->tensors[i].name, name) == 0)
            return &p->tensors[i];
    return NULL;
}

static const tc_plan_tensor *get(const tc_plan *p, const char *name)
{
    const tc_plan_tensor *t = find(p, name);
    ck_assert_msg(t != NULL, "rank %d has no tensor %s", p->rank, name);
    return t;
}

static void expect_shape(const tc_plan_tensor *t, int ndim, int64_t rows, int64_t cols)
{
    ck_assert_msg(t->ndim == ndim && t->rows == rows && t->cols == cols,
                  "%s: ndim %d [%lld, %lld], expected ndim %d [%lld, %lld]", t->name, t->ndim,
                  (long long)t->rows, (long long)t->cols, ndim, (long long)rows,
                  (long long)cols);
}

/* Piece i of t: from `src` (NULL: zero rows) at (row, col), `rows` rows. */
static void expect_piece(const tc_plan_tensor *t, size_t i, const char *src, int64_t row,
                         int64_t col, int64_t rows)
{
    ck_assert_msg(i < t->n_pieces, "%s has %zu pieces, wanted piece %zu", t->name,
                  t->n_pieces, i);
    const tc_piece *pc = &t->pieces[i];
    if (src) {
        ck_assert_msg(pc->src != NULL && pc->src_file != NULL, "%s piece %zu: no source",
                      t->name, i);
        ck_assert_msg(strcmp(pc->src->name, src) == 0, "%s piece %zu: source %s, expected %s",
                      t->name, i, pc->src->name, src);
        ck_assert_msg(pc->src_row == row && pc->src_col == col,
                      "%s piece %zu: src (%lld, %lld), expected (%lld, %lld)", t->name, i,
                      (long long)pc->src_row, (long long)pc->src_col, (long long)row,
                      (long long)col);
    } else {
        ck_assert_msg(pc->src == NULL && pc->src_file == NULL,
                      "%s piece %zu: expected zero rows, got source %s", t->name, i,
                      pc->src ? pc->src->name : "?");
    }
    ck_assert_msg(pc->rows == rows, "%s piece %zu: %lld rows, expected %lld", t->name, i,
                  (long long)pc->rows, (long long)rows);
}

/* Invariants of every plan: pieces cover the rows exactly, stay inside
 * their sources, names are unique, byte counts add up. */
static void check_invariants(const tc_plan *p, unsigned out_bytes)
{
    uint64_t wb = 0, rb = 0;
    for (size_t i = 0; i < p->n_tensors; i++) {
        const tc_plan_tensor *t = &p->tensors[i];
        for (size_t j = i + 1; j < p->n_tensors; j++)
            ck_assert_msg(strcmp(t->name, p->tensors[j].name) != 0, "duplicate %s", t->name);
        if (t->rope) {
            /* generated float32 rows, no source */
            ck_assert_uint_eq(t->n_pieces, 0);
            ck_assert_int_eq(t->dtype, TC_DT_F32);
            ck_assert_ptr_eq(t->rope_tables, &p->rope);
            ck_assert_uint_eq(tc_plan_tensor_elems(t), (uint64_t)t->rows * (uint64_t)t->cols);
            wb += tc_plan_tensor_elems(t) * 4;
            continue;
        }
        ck_assert(t->ndim == 1 || t->ndim == 2);
        if (t->ndim == 1)
            ck_assert_int_eq(t->cols, 1);
        int64_t covered = 0;
        for (size_t k = 0; k < t->n_pieces; k++) {
            const tc_piece *pc = &t->pieces[k];
            ck_assert_msg(pc->rows > 0, "%s piece %zu is empty", t->name, k);
            covered += pc->rows;
            if (!pc->src)
                continue;
            ck_assert_int_ge(pc->src_row, 0);
            ck_assert_int_ge(pc->src_col, 0);
            ck_assert_msg(pc->src_row + pc->rows <= pc->src->shape[0],
                          "%s piece %zu runs past the rows of %s", t->name, k, pc->src->name);
            if (pc->src->ndim == 2) {
                ck_assert_int_eq(t->ndim, 2);
                ck_assert_msg(pc->src_col + t->cols <= pc->src->shape[1],
                              "%s piece %zu runs past the columns of %s", t->name, k,
                              pc->src->name);
            } else {
                ck_assert_int_eq(pc->src->ndim, 1);
                ck_assert_int_eq(t->ndim, 1);
                ck_assert_int_eq(pc->src_col, 0);
            }
            rb += (uint64_t)pc->rows * (uint64_t)t->cols * 2; /* sources are F16 */
        }
        ck_assert_msg(covered == t->rows, "%s: pieces cover %lld of %lld rows", t->name,
                      (long long)covered, (long long)t->rows);
        wb += (uint64_t)t->rows * (uint64_t)t->cols * out_bytes;
    }
    ck_assert_uint_eq(p->write_bytes, wb);
    ck_assert_uint_eq(p->read_bytes, rb);
}

static char *layer_name(char *buf, size_t size, const char *prefix, int64_t i,
                        const char *suffix)
{
    snprintf(buf, size, "%s.%lld.%s", prefix, (long long)i, suffix);
    return buf;
}

#define OUT_L(i, sfx) layer_name(on, sizeof on, "transformer.layers", (i), (sfx))
#define IN_L(i, sfx) layer_name(in, sizeof in, "model.layers", (i), (sfx))

static void setup(void)
{
    tc_log_set_quiet(1);
    tc_clear_first_error();
}

/* ---------------------------------------------------------------------------
 * Mapping and pipeline stages
 * ------------------------------------------------------------------------- */

START_TEST(pad_vocab_should_round_up_to_a_multiple_of_tp)
{
    ck_assert_int_eq(tc_pad_vocab(32000, 3), 32001);
    ck_assert_int_eq(tc_pad_vocab(32000, 1), 32000);
    ck_assert_int_eq(tc_pad_vocab(32000, 8), 32000);
    ck_assert_int_eq(tc_pad_vocab(10, 4), 12);
    ck_assert_int_eq(tc_pad_vocab(12, 4), 12);
    ck_assert_int_eq(tc_pad_vocab(1, 4), 4);
    ck_assert_int_eq(tc_pad_vocab(128256, 3), 128256);
    ck_assert_int_eq(tc_pad_vocab(32001, 2), 32002);
}
END_TEST

START_TEST(plan_should_number_ranks_pp_major)
{
    model_spec s = base_spec();
    s.L = 4;
    fixture fx;
    fixture_open(&fx, &s, 2, 2);
    for (int rank = 0; rank < 4; rank++) {
        tc_plan *p = build(&fx, rank);
        ck_assert_int_eq(p->rank, rank);
        ck_assert_int_eq(p->tp_rank, rank % 2);
        ck_assert_int_eq(p->pp_rank, rank / 2);
        check_invariants(p, 2);
        tc_plan_free(p);
    }
    fixture_close(&fx);
}
END_TEST

START_TEST(plan_should_name_layers_with_local_indices_within_the_stage)
{
    model_spec s = base_spec();
    s.L = 4;
    fixture fx;
    fixture_open(&fx, &s, 1, 2);
    char on[128], in[128];
    for (int stage = 0; stage < 2; stage++) {
        tc_plan *p = build(&fx, stage);
        ck_assert_int_eq(p->pp_rank, stage);
        for (int64_t i = 0; i < 2; i++) {
            const int64_t g = 2 * stage + i;
            expect_piece(get(p, OUT_L(i, "input_layernorm.weight")), 0,
                         IN_L(g, "input_layernorm.weight"), 0, 0, s.H);
            const tc_plan_tensor *qkv = get(p, OUT_L(i, "attention.qkv.weight"));
            expect_piece(qkv, 0, IN_L(g, "self_attn.q_proj.weight"), 0, 0, s.nh * s.d);
            expect_piece(qkv, 1, IN_L(g, "self_attn.k_proj.weight"), 0, 0, s.nkv * s.d);
            expect_piece(qkv, 2, IN_L(g, "self_attn.v_proj.weight"), 0, 0, s.nkv * s.d);
            expect_piece(get(p, OUT_L(i, "attention.dense.weight")), 0,
                         IN_L(g, "self_attn.o_proj.weight"), 0, 0, s.H);
            expect_piece(get(p, OUT_L(i, "post_layernorm.weight")), 0,
                         IN_L(g, "post_attention_layernorm.weight"), 0, 0, s.H);
            expect_piece(get(p, OUT_L(i, "mlp.proj.weight")), 0,
                         IN_L(g, "mlp.down_proj.weight"), 0, 0, s.H);
        }
        /* No global index leaks into the names. */
        ck_assert_ptr_null(find(p, "transformer.layers.2.input_layernorm.weight"));
        ck_assert_ptr_null(find(p, "transformer.layers.3.input_layernorm.weight"));
        check_invariants(p, 2);
        tc_plan_free(p);
    }
    fixture_close(&fx);
}
END_TEST

START_TEST(plan_should_put_the_embedding_on_the_first_stage_and_ln_f_and_lm_head_on_the_last)
{
    model_spec s = base_spec();
    s.L = 4;
    fixture fx;
    fixture_open(&fx, &s, 2, 2);
    for (int rank = 0; rank < 4; rank++) {
        tc_plan *p = build(&fx, rank);
        bool first = p->pp_rank == 0, last = p->pp_rank == 1;
        ck_assert_int_eq(find(p, "transformer.vocab_embedding.weight") != NULL, first);
        ck_assert_int_eq(find(p, "transformer.ln_f.weight") != NULL, last);
        ck_assert_int_eq(find(p, "lm_head.weight") != NULL, last);
        /* 3 rope buffers + 2 layers of 7 tensors + embedding (first) or ln_f
         * and lm_head (last). */
        ck_assert_uint_eq(p->n_tensors, 3 + 2 * 7 + (first ? 1 : 2));
        tc_plan_free(p);
    }
    fixture_close(&fx);

    fixture_open(&fx, &s, 1, 1);
    tc_plan *p = build(&fx, 0);
    ck_assert_ptr_nonnull(find(p, "transformer.vocab_embedding.weight"));
    ck_assert_ptr_nonnull(find(p, "transformer.ln_f.weight"));
    ck_assert_ptr_nonnull(find(p, "lm_head.weight"));
    ck_assert_uint_eq(p->n_tensors, 3 + 4 * 7 + 3);
    expect_piece(get(p, "transformer.ln_f.weight"), 0, "model.norm.weight", 0, 0, s.H);
    expect_shape(get(p, "transformer.ln_f.weight"), 1, s.H, 1);
    check_invariants(p, 2);
    tc_plan_free(p);
    fixture_close(&fx);
}
END_TEST

START_TEST(plan_should_not_need_tensors_of_other_stages)
{
    /* Stage 0 never looks at lm_head / model.norm. */
    model_spec s = base_spec();
    s.L = 4;
    s.omit = "lm_head.weight";
    fixture fx;
    fixture_open(&fx, &s, 1, 2);
    tc_plan *p = build(&fx, 0);
    tc_plan_free(p);
    fixture_close(&fx);

    /* Stage 1 never looks at the embedding or at layers 0-1. */
    s.omit = "model.embed_tokens.weight";
    fixture_open(&fx, &s, 1, 2);
    p = build(&fx, 1);
    tc_plan_free(p);
    fixture_close(&fx);

    s.omit = "model.layers.0.mlp.up_proj.weight";
    fixture_open(&fx, &s, 1, 2);
    p = build(&fx, 1);
    tc_plan_free(p);
    fixture_close(&fx);
}
END_TEST

/* ---------------------------------------------------------------------------
 * Attention: QKV fusion and split
 * ------------------------------------------------------------------------- */

START_TEST(plan_should_split_mha_qkv_into_each_ranks_q_k_and_v_rows)
{
    model_spec s = base_spec(); /* nh = nkv = 4, d = 8 */
    fixture fx;
    fixture_open(&fx, &s, 2, 1);
    char on[128], in[128];
    for (int r = 0; r < 2; r++) {
        tc_plan *p = build(&fx, r);
        const tc_plan_tensor *qkv = get(p, OUT_L(0, "attention.qkv.weight"));
        const int64_t part = s.nh / 2 * s.d; /* 16 */
        expect_shape(qkv, 2, 3 * part, s.H);
        ck_assert_uint_eq(qkv->n_pieces, 3);
        expect_piece(qkv, 0, IN_L(0, "self_attn.q_proj.weight"), r * part, 0, part);
        expect_piece(qkv, 1, IN_L(0, "self_attn.k_proj.weight"), r * part, 0, part);
        expect_piece(qkv, 2, IN_L(0, "self_attn.v_proj.weight"), r * part, 0, part);
        ck_assert_int_eq(qkv->dtype, TC_DT_F16);
        check_invariants(p, 2);
        tc_plan_free(p);
    }
    fixture_close(&fx);
}
END_TEST

START_TEST(plan_should_split_kv_heads_when_they_are_a_multiple_of_tp)
{
    model_spec s = base_spec();
    s.nh = 8;
    s.nkv = 4;
    s.d = 4;
    fixture fx;
    fixture_open(&fx, &s, 2, 1);
    char on[128], in[128];
    for (int r = 0; r < 2; r++) {
        tc_plan *p = build(&fx, r);
        const tc_plan_tensor *qkv = get(p, OUT_L(1, "attention.qkv.weight"));
        /* (nh/tp + 2*max(nkv,tp)/tp) * d = (4 + 2*2) * 4 */
        expect_shape(qkv, 2, (4 + 2 * 2) * 4, s.H);
        ck_assert_uint_eq(qkv->n_pieces, 3);
        expect_piece(qkv, 0, IN_L(1, "self_attn.q_proj.weight"), r * 16, 0, 16);
        expect_piece(qkv, 1, IN_L(1, "self_attn.k_proj.weight"), r * 8, 0, 8);
        expect_piece(qkv, 2, IN_L(1, "self_attn.v_proj.weight"), r * 8, 0, 8);
        check_invariants(p, 2);
        tc_plan_free(p);
    }
    fixture_close(&fx);
}
END_TEST

START_TEST(plan_should_duplicate_kv_heads_when_tp_exceeds_kv_heads)
{
    model_spec s = base_spec();
    s.nh = 8;
    s.nkv = 2;
    s.d = 4;
    const int tp = 4;
    fixture fx;
    fixture_open(&fx, &s, tp, 1);
    char on[128], in[128];
    for (int r = 0; r < tp; r++) {
        tc_plan *p = build(&fx, r);
        const tc_plan_tensor *qkv = get(p, OUT_L(0, "attention.qkv.weight"));
        const int64_t qrows = s.nh / tp * s.d;          /* 8 */
        const int64_t kvh = (int64_t)r * s.nkv / tp;    /* 0, 0, 1, 1 */
        expect_shape(qkv, 2, (s.nh / tp + 2 * tp / tp) * s.d, s.H);
        ck_assert_uint_eq(qkv->n_pieces, 3);
        expect_piece(qkv, 0, IN_L(0, "self_attn.q_proj.weight"), r * qrows, 0, qrows);
        expect_piece(qkv, 1, IN_L(0, "self_attn.k_proj.weight"), kvh * s.d, 0, s.d);
        expect_piece(qkv, 2, IN_L(0, "self_attn.v_proj.weight"), kvh * s.d, 0, s.d);
        check_invariants(p, 2);
        tc_plan_free(p);
    }
    fixture_close(&fx);
}
END_TEST

START_TEST(plan_should_give_every_rank_the_single_kv_head_of_an_mqa_model)
{
    model_spec s = base_spec();
    s.nh = 8;
    s.nkv = 1;
    s.d = 4;
    fixture fx;
    fixture_open(&fx, &s, 8, 1);
    char on[128], in[128];
    for (int r = 0; r < 8; r++) {
        tc_plan *p = build(&fx, r);
        const tc_plan_tensor *qkv = get(p, OUT_L(0, "attention.qkv.weight"));
        expect_shape(qkv, 2, 3 * s.d, s.H);
        expect_piece(qkv, 0, IN_L(0, "self_attn.q_proj.weight"), r * s.d, 0, s.d);
        expect_piece(qkv, 1, IN_L(0, "self_attn.k_proj.weight"), 0, 0, s.d);
        expect_piece(qkv, 2, IN_L(0, "self_attn.v_proj.weight"), 0, 0, s.d);
        check_invariants(p, 2);
        tc_plan_free(p);
    }
    fixture_close(&fx);
}
END_TEST

START_TEST(plan_should_use_head_dim_from_config_when_it_differs_from_hidden_over_heads)
{
    model_spec s = base_spec();
    s.H = 32;
    s.nh = 4;
    s.nkv = 2;
    s.d = 16; /* nh * d = 64 != H */
    fixture fx;
    fixture_open(&fx, &s, 2, 1);
    char on[128], in[128];
    tc_plan *p = build(&fx, 1);
    const tc_plan_tensor *qkv = get(p, OUT_L(0, "attention.qkv.weight"));
    expect_shape(qkv, 2, (2 + 2 * 1) * 16, s.H);
    expect_piece(qkv, 0, IN_L(0, "self_attn.q_proj.weight"), 32, 0, 32);
    expect_piece(qkv, 1, IN_L(0, "self_attn.k_proj.weight"), 16, 0, 16);
    const tc_plan_tensor *dense = get(p, OUT_L(0, "attention.dense.weight"));
    expect_shape(dense, 2, s.H, 32);
    expect_piece(dense, 0, IN_L(0, "self_attn.o_proj.weight"), 0, 32, s.H);
    check_invariants(p, 2);
    tc_plan_free(p);
    fixture_close(&fx);
}
END_TEST

START_TEST(plan_should_add_qkv_and_dense_biases_with_attention_bias)
{
    model_spec s = base_spec();
    s.nh = 8;
    s.nkv = 2;
    s.d = 4;
    s.bias = true;
    const int tp = 4;
    fixture fx;
    fixture_open(&fx, &s, tp, 1);
    char on[128], in[128];
    for (int r = 0; r < tp; r++) {
        tc_plan *p = build(&fx, r);
        const int64_t kvh = (int64_t)r * s.nkv / tp;
        const tc_plan_tensor *b = get(p, OUT_L(0, "attention.qkv.bias"));
        expect_shape(b, 1, (2 + 2) * s.d, 1);
        ck_assert_uint_eq(b->n_pieces, 3);
        expect_piece(b, 0, IN_L(0, "self_attn.q_proj.bias"), r * 8, 0, 8);
        expect_piece(b, 1, IN_L(0, "self_attn.k_proj.bias"), kvh * s.d, 0, s.d);
        expect_piece(b, 2, IN_L(0, "self_attn.v_proj.bias"), kvh * s.d, 0, s.d);
        const tc_plan_tensor *db = get(p, OUT_L(1, "attention.dense.bias"));
        expect_shape(db, 1, s.H, 1);
        ck_assert_uint_eq(db->n_pieces, 1);
        expect_piece(db, 0, IN_L(1, "self_attn.o_proj.bias"), 0, 0, s.H);
        ck_assert_uint_eq(p->n_tensors, 3 + 1 + 2 * 9 + 2);
        check_invariants(p, 2);
        tc_plan_free(p);
    }
    fixture_close(&fx);

    /* Without attention_bias: no bias tensors at all. */
    s.bias = false;
    fixture_open(&fx, &s, 1, 1);
    tc_plan *p = build(&fx, 0);
    for (size_t i = 0; i < p->n_tensors; i++)
        ck_assert_msg(strstr(p->tensors[i].name, "bias") == NULL, "unexpected %s",
                      p->tensors[i].name);
    tc_plan_free(p);
    fixture_close(&fx);
}
END_TEST

/* ---------------------------------------------------------------------------
 * Dense and MLP
 * ------------------------------------------------------------------------- */

START_TEST(plan_should_split_dense_and_proj_by_their_input_columns)
{
    model_spec s = base_spec(); /* H 32, I 64, nh*d 32 */
    const int tp = 4;
    fixture fx;
    fixture_open(&fx, &s, tp, 1);
    char on[128], in[128];
    for (int r = 0; r < tp; r++) {
        tc_plan *p = build(&fx, r);
        const tc_plan_tensor *dense = get(p, OUT_L(0, "attention.dense.weight"));
        expect_shape(dense, 2, s.H, s.nh * s.d / tp);
        ck_assert_uint_eq(dense->n_pieces, 1);
        expect_piece(dense, 0, IN_L(0, "self_attn.o_proj.weight"), 0, r * dense->cols, s.H);
        const tc_plan_tensor *proj = get(p, OUT_L(0, "mlp.proj.weight"));
        expect_shape(proj, 2, s.H, s.I / tp);
        ck_assert_uint_eq(proj->n_pieces, 1);
        expect_piece(proj, 0, IN_L(0, "mlp.down_proj.weight"), 0, r * proj->cols, s.H);
        check_invariants(p, 2);
        tc_plan_free(p);
    }
    fixture_close(&fx);
}
END_TEST

START_TEST(plan_should_take_fc_from_gate_proj_and_gate_from_up_proj)
{
    model_spec s = base_spec();
    const int tp = 2;
    fixture fx;
    fixture_open(&fx, &s, tp, 1);
    char on[128], in[128];
    for (int r = 0; r < tp; r++) {
        tc_plan *p = build(&fx, r);
        const int64_t rows = s.I / tp;
        const tc_plan_tensor *fc = get(p, OUT_L(1, "mlp.fc.weight"));
        expect_shape(fc, 2, rows, s.H);
        ck_assert_uint_eq(fc->n_pieces, 1);
        expect_piece(fc, 0, IN_L(1, "mlp.gate_proj.weight"), r * rows, 0, rows);
        const tc_plan_tensor *gate = get(p, OUT_L(1, "mlp.gate.weight"));
        expect_shape(gate, 2, rows, s.H);
        ck_assert_uint_eq(gate->n_pieces, 1);
        expect_piece(gate, 0, IN_L(1, "mlp.up_proj.weight"), r * rows, 0, rows);
        tc_plan_free(p);
    }
    fixture_close(&fx);
}
END_TEST

START_TEST(plan_should_replicate_the_norms_on_every_rank)
{
    model_spec s = base_spec();
    fixture fx;
    fixture_open(&fx, &s, 4, 1);
    char on[128], in[128];
    for (int r = 0; r < 4; r++) {
        tc_plan *p = build(&fx, r);
        const tc_plan_tensor *t = get(p, OUT_L(1, "input_layernorm.weight"));
        expect_shape(t, 1, s.H, 1);
        ck_assert_uint_eq(t->n_pieces, 1);
        expect_piece(t, 0, IN_L(1, "input_layernorm.weight"), 0, 0, s.H);
        t = get(p, OUT_L(1, "post_layernorm.weight"));
        expect_shape(t, 1, s.H, 1);
        expect_piece(t, 0, IN_L(1, "post_attention_layernorm.weight"), 0, 0, s.H);
        t = get(p, "transformer.ln_f.weight");
        expect_shape(t, 1, s.H, 1);
        expect_piece(t, 0, "model.norm.weight", 0, 0, s.H);
        tc_plan_free(p);
    }
    fixture_close(&fx);
}
END_TEST

/* ---------------------------------------------------------------------------
 * Embedding and lm_head
 * ------------------------------------------------------------------------- */

START_TEST(plan_should_pad_lm_head_vocab_with_zero_rows_on_the_last_rank)
{
    model_spec s = base_spec(); /* V = 10 */
    const int tp = 4;           /* padded 12: 3 rows per rank */
    fixture fx;
    fixture_open(&fx, &s, tp, 1);
    for (int r = 0; r < tp; r++) {
        tc_plan *p = build(&fx, r);
        const tc_plan_tensor *t = get(p, "lm_head.weight");
        expect_shape(t, 2, 3, s.H);
        if (r < 3) {
            ck_assert_uint_eq(t->n_pieces, 1);
            expect_piece(t, 0, "lm_head.weight", 3 * r, 0, 3);
        } else {
            ck_assert_uint_eq(t->n_pieces, 2);
            expect_piece(t, 0, "lm_head.weight", 9, 0, 1);
            expect_piece(t, 1, NULL, 0, 0, 2);
        }
        check_invariants(p, 2);
        tc_plan_free(p);
    }
    fixture_close(&fx);
}
END_TEST

START_TEST(plan_should_give_a_rank_only_zero_rows_when_its_lm_head_chunk_is_all_padding)
{
    model_spec s = base_spec();
    s.V = 9; /* tp 4: padded 12, 3 rows per rank, rank 3 holds rows 9..11 */
    fixture fx;
    fixture_open(&fx, &s, 4, 1);
    tc_plan *p = build(&fx, 3);
    const tc_plan_tensor *t = get(p, "lm_head.weight");
    expect_shape(t, 2, 3, s.H);
    ck_assert_uint_eq(t->n_pieces, 1);
    expect_piece(t, 0, NULL, 0, 0, 3);
    check_invariants(p, 2);
    tc_plan_free(p);
    fixture_close(&fx);
}
END_TEST

START_TEST(plan_should_build_lm_head_from_embed_tokens_when_tied)
{
    model_spec s = base_spec();
    s.tie = true; /* no lm_head.weight in the file */
    fixture fx;
    fixture_open(&fx, &s, 4, 1);
    for (int r = 0; r < 4; r++) {
        tc_plan *p = build(&fx, r);
        const tc_plan_tensor *t = get(p, "lm_head.weight");
        expect_shape(t, 2, 3, s.H);
        if (r < 3) {
            expect_piece(t, 0, "model.embed_tokens.weight", 3 * r, 0, 3);
        } else {
            expect_piece(t, 0, "model.embed_tokens.weight", 9, 0, 1);
            expect_piece(t, 1, NULL, 0, 0, 2);
        }
        check_invariants(p, 2);
        tc_plan_free(p);
    }
    fixture_close(&fx);
}
END_TEST

START_TEST(plan_should_drop_lm_head_when_a_tied_model_shares_the_embedding)
{
    model_spec s = base_spec();
    s.tie = true;
    fixture fx;
    fixture_open(&fx, &s, 1, 1);
    fx.o.emb.share = true;
    tc_plan *p = build(&fx, 0);
    ck_assert_ptr_null(find(p, "lm_head.weight"));
    ck_assert_ptr_nonnull(find(p, "transformer.vocab_embedding.weight"));
    ck_assert_ptr_nonnull(find(p, "transformer.ln_f.weight"));
    check_invariants(p, 2);
    tc_plan_free(p);
    fixture_close(&fx);
}
END_TEST

START_TEST(plan_should_keep_the_whole_embedding_on_every_rank_by_default)
{
    model_spec s = base_spec();
    fixture fx;
    fixture_open(&fx, &s, 4, 1);
    for (int r = 0; r < 4; r++) {
        tc_plan *p = build(&fx, r);
        const tc_plan_tensor *t = get(p, "transformer.vocab_embedding.weight");
        expect_shape(t, 2, s.V, s.H);
        ck_assert_uint_eq(t->n_pieces, 1);
        expect_piece(t, 0, "model.embed_tokens.weight", 0, 0, s.V);
        tc_plan_free(p);
    }
    fixture_close(&fx);
}
END_TEST

START_TEST(plan_should_shard_the_embedding_by_vocab_rows_with_parallel_embedding_dim_0)
{
    model_spec s = base_spec(); /* V = 10, tp 4: chunk 3 */
    fixture fx;
    fixture_open(&fx, &s, 4, 1);
    fx.o.emb.parallel = true;
    fx.o.emb.sharding_dim = 0;
    for (int r = 0; r < 4; r++) {
        tc_plan *p = build(&fx, r);
        const tc_plan_tensor *t = get(p, "transformer.vocab_embedding.weight");
        expect_shape(t, 2, 3, s.H);
        if (r < 3) {
            ck_assert_uint_eq(t->n_pieces, 1);
            expect_piece(t, 0, "model.embed_tokens.weight", 3 * r, 0, 3);
        } else {
            ck_assert_uint_eq(t->n_pieces, 2);
            expect_piece(t, 0, "model.embed_tokens.weight", 9, 0, 1);
            expect_piece(t, 1, NULL, 0, 0, 2);
        }
        check_invariants(p, 2);
        tc_plan_free(p);
    }
    fixture_close(&fx);
}
END_TEST

START_TEST(plan_should_shard_the_embedding_by_hidden_columns_with_parallel_embedding_dim_1)
{
    model_spec s = base_spec(); /* H 32, tp 4: 8 columns */
    fixture fx;
    fixture_open(&fx, &s, 4, 1);
    fx.o.emb.parallel = true;
    fx.o.emb.sharding_dim = 1;
    for (int r = 0; r < 4; r++) {
        tc_plan *p = build(&fx, r);
        const tc_plan_tensor *t = get(p, "transformer.vocab_embedding.weight");
        expect_shape(t, 2, s.V, s.H / 4);
        ck_assert_uint_eq(t->n_pieces, 1);
        expect_piece(t, 0, "model.embed_tokens.weight", 0, r * s.H / 4, s.V);
        /* lm_head is unaffected: padded vocab rows, all columns. */
        expect_shape(get(p, "lm_head.weight"), 2, 3, s.H);
        check_invariants(p, 2);
        tc_plan_free(p);
    }
    fixture_close(&fx);
}
END_TEST

START_TEST(plan_should_share_a_row_sharded_embedding_with_lm_head_across_tp)
{
    model_spec s = base_spec();
    s.tie = true;
    fixture fx;
    fixture_open(&fx, &s, 2, 1);
    fx.o.emb.parallel = true;
    fx.o.emb.share = true;
    for (int r = 0; r < 2; r++) {
        tc_plan *p = build(&fx, r);
        ck_assert_ptr_null(find(p, "lm_head.weight"));
        const tc_plan_tensor *t = get(p, "transformer.vocab_embedding.weight");
        expect_shape(t, 2, 5, s.H);
        expect_piece(t, 0, "model.embed_tokens.weight", 5 * r, 0, 5);
        tc_plan_free(p);
    }
    fixture_close(&fx);
}
END_TEST

/* ---------------------------------------------------------------------------
 * Sizes and writer descriptors
 * ------------------------------------------------------------------------- */

START_TEST(plan_write_bytes_should_equal_the_sum_of_the_output_tensor_sizes)
{
    model_spec s = base_spec();
    s.nh = 8;
    s.nkv = 2;
    s.d = 4;
    s.bias = true;
    fixture fx;
    fixture_open(&fx, &s, 4, 1);
    tc_plan *p = build(&fx, 3);
    uint64_t sum = 0, rope = 0;
    for (size_t i = 0; i < p->n_tensors; i++) {
        const tc_plan_tensor *t = &p->tensors[i];
        const uint64_t b = tc_plan_tensor_elems(t) * tc_dtype_bits(t->dtype) / 8;
        sum += b;
        if (t->rope)
            rope += b;
    }
    ck_assert_uint_eq(p->write_bytes, sum);
    /* By hand: embedding 10*32, 2 layers of (ln 32, qkv 16*32, qkv.bias 16,
     * dense 32*8, dense.bias 32, post ln 32, fc 16*32, gate 16*32, proj 32*16),
     * ln_f 32, lm_head 3*32 elements, 2 bytes each; the rope buffers
     * 2048 positions x head size 4 twice and 2 frequencies, float32. */
    const uint64_t layer = 32 + 16 * 32 + 16 + 32 * 8 + 32 + 32 + 3 * 16 * 32;
    ck_assert_uint_eq(rope, 4 * (2 * 2048 * 4 + 2));
    ck_assert_uint_eq(p->write_bytes, 2 * (10 * 32 + 2 * layer + 32 + 3 * 32) + rope);
    check_invariants(p, 2);
    tc_plan_free(p);

    /* F32 output doubles the bytes written (the rope buffers are float32
     * already), not the bytes read. */
    tc_plan *p32 = NULL;
    ck_assert_int_eq(plan_build_dt(fx.m, &fx.o, TC_DT_F32, 3, &p32), TC_OK);
    ck_assert_uint_eq(p32->write_bytes, 2 * (sum - rope) + rope);
    check_invariants(p32, 4);
    tc_plan_free(p32);
    fixture_close(&fx);
}
END_TEST

START_TEST(plan_out_tensors_should_describe_names_dtypes_and_shapes_in_plan_order)
{
    model_spec s = base_spec();
    s.bias = true;
    fixture fx;
    fixture_open(&fx, &s, 2, 1);
    tc_plan *p = NULL;
    ck_assert_int_eq(plan_build_dt(fx.m, &fx.o, TC_DT_BF16, 1, &p), TC_OK);
    tc_st_out_tensor *out = calloc(p->n_tensors, sizeof *out);
    ck_assert_ptr_nonnull(out);
    memset(out, 0x5A, p->n_tensors * sizeof *out);
    tc_plan_out_tensors(p, out);
    for (size_t i = 0; i < p->n_tensors; i++) {
        const tc_plan_tensor *t = &p->tensors[i];
        ck_assert_ptr_eq(out[i].name, t->name);
        ck_assert_int_eq(t->dtype, t->rope ? TC_DT_F32 : TC_DT_BF16);
        ck_assert_int_eq(out[i].dtype, t->dtype);
        ck_assert_int_eq(out[i].ndim, t->ndim);
        for (int d = 0; d < t->ndim; d++)
            ck_assert_int_eq(out[i].shape[d], t->shape[d]);
        for (int d = t->ndim; d < TC_ST_OUT_MAX_DIMS; d++)
            ck_assert_int_eq(out[i].shape[d], 0);
        if (t->rope)
            continue;
        ck_assert_int_eq(out[i].shape[0], t->rows);
        if (t->ndim == 2)
            ck_assert_int_eq(out[i].shape[1], t->cols);
    }
    /* The rope buffers: [1, P, D], [D/2], [1, P*D] (P 2048, D 8). */
    for (size_t i = 0; i < p->n_tensors; i++) {
        if (!strcmp(out[i].name, "embed_positions")) {
            ck_assert_int_eq(out[i].ndim, 3);
            ck_assert(out[i].shape[0] == 1 && out[i].shape[1] == 2048 && out[i].shape[2] == 8);
        } else if (!strcmp(out[i].name, "rotary_inv_freq")) {
            ck_assert(out[i].ndim == 1 && out[i].shape[0] == 4);
        } else if (!strcmp(out[i].name, "embed_positions_for_gpt_attention")) {
            ck_assert(out[i].ndim == 2 && out[i].shape[0] == 1 && out[i].shape[1] == 2048 * 8);
        }
    }
    ck_assert_ptr_nonnull(find(p, "embed_positions"));
    ck_assert_ptr_nonnull(find(p, "rotary_inv_freq"));
    ck_assert_ptr_nonnull(find(p, "embed_positions_for_gpt_attention"));
    /* Spot checks of shapes. */
    for (size_t i = 0; i < p->n_tensors; i++) {
        if (strcmp(out[i].name, "transformer.layers.0.attention.qkv.bias") == 0) {
            ck_assert_int_eq(out[i].ndim, 1);
            ck_assert_int_eq(out[i].shape[0], 3 * 16);
        } else if (strcmp(out[i].name, "transformer.layers.0.attention.qkv.weight") == 0) {
            ck_assert_int_eq(out[i].ndim, 2);
            ck_assert_int_eq(out[i].shape[0], 3 * 16);
            ck_assert_int_eq(out[i].shape[1], 32);
        } else if (strcmp(out[i].name, "lm_head.weight") == 0) {
            ck_assert_int_eq(out[i].shape[0], 5);
            ck_assert_int_eq(out[i].shape[1], 32);
        }
    }
    /* The descriptors are fit for the writer. */
    char *prefix = NULL;
    size_t prefix_len = 0;
    uint64_t file_size = 0;
    ck_assert_int_eq(tc_st_layout(out, p->n_tensors, &prefix, &prefix_len, &file_size), TC_OK);
    ck_assert_uint_eq(file_size, prefix_len + p->write_bytes);
    free(prefix);
    free(out);
    tc_plan_free(p);
    fixture_close(&fx);
}
END_TEST

START_TEST(plan_pieces_should_cover_every_row_inside_their_sources_for_many_layouts)
{
    static const struct {
        int64_t nh, nkv, d, L, tp, pp;
        bool tie, bias, par_emb;
        int dim;
    } cases[] = {
        { 4, 4, 8, 2, 1, 1, false, false, false, 0 },
        { 4, 4, 8, 2, 2, 2, false, true, false, 0 },
        { 4, 4, 8, 4, 4, 4, true, false, true, 0 },
        { 8, 2, 4, 2, 4, 2, false, true, true, 1 },
        { 8, 2, 4, 2, 8, 1, true, true, true, 0 },
        { 8, 4, 4, 2, 2, 1, false, false, true, 1 },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        model_spec s = base_spec();
        s.nh = cases[c].nh;
        s.nkv = cases[c].nkv;
        s.d = cases[c].d;
        s.L = cases[c].L;
        s.tie = cases[c].tie;
        s.bias = cases[c].bias;
        fixture fx;
        fixture_open(&fx, &s, cases[c].tp, cases[c].pp);
        fx.o.emb.parallel = cases[c].par_emb;
        fx.o.emb.sharding_dim = cases[c].dim;
        for (int r = 0; r < cases[c].tp * cases[c].pp; r++) {
            tc_plan *p = build(&fx, r);
            check_invariants(p, 2);
            tc_plan_free(p);
        }
        fixture_close(&fx);
    }
}
END_TEST

/* ---------------------------------------------------------------------------
 * tc_plan_check_model
 * ------------------------------------------------------------------------- */

static tc_hf_config small_config(void)
{
    tc_hf_config c;
    memset(&c, 0, sizeof c);
    c.vocab_size = 10;
    c.hidden_size = 32;
    c.intermediate_size = 64;
    c.num_hidden_layers = 4;
    c.num_attention_heads = 8;
    c.num_key_value_heads = 8;
    c.head_dim = 4;
    return c;
}

static void expect_check(const tc_hf_config *c, int64_t tp, int64_t pp, tc_status want,
                         const char *needle)
{
    tc_plan_params o;
    params_init(&o);
    o.layout.tp = tp;
    o.layout.pp = pp;
    tc_clear_first_error();
    tc_status st = tc_plan_check_model(c, &o);
    ck_assert_msg(st == want, "tp %lld pp %lld: status %d, expected %d (%s)", (long long)tp,
                  (long long)pp, (int)st, (int)want, tc_first_error());
    if (needle)
        ck_assert_msg(strstr(tc_first_error(), needle) != NULL, "'%s' not in: %s", needle,
                      tc_first_error());
}

START_TEST(check_model_should_reject_layers_not_divisible_by_pp)
{
    tc_hf_config c = small_config(); /* 4 layers */
    expect_check(&c, 1, 3, TC_E_INPUT, "num_hidden_layers = 4");
    expect_check(&c, 1, 8, TC_E_INPUT, "pp_size = 8");
    expect_check(&c, 1, 2, TC_OK, NULL);
    expect_check(&c, 1, 4, TC_OK, NULL);
}
END_TEST

START_TEST(check_model_should_reject_heads_not_divisible_by_tp)
{
    tc_hf_config c = small_config(); /* 8 heads, 8 kv heads */
    expect_check(&c, 3, 1, TC_E_INPUT, "num_attention_heads = 8");
    expect_check(&c, 16, 1, TC_E_INPUT, "num_attention_heads");
    expect_check(&c, 8, 1, TC_OK, NULL);
}
END_TEST

START_TEST(check_model_should_reject_tp_that_is_not_a_multiple_of_fewer_kv_heads)
{
    tc_hf_config c = small_config();
    c.num_attention_heads = 12;
    c.num_key_value_heads = 3;
    c.intermediate_size = 48;
    expect_check(&c, 4, 1, TC_E_INPUT, "num_key_value_heads = 3"); /* 3 < 4, 4 % 3 */
    expect_check(&c, 6, 1, TC_OK, NULL);                           /* 6 % 3 == 0 */
    expect_check(&c, 3, 1, TC_OK, NULL);
    expect_check(&c, 12, 1, TC_OK, NULL);

    c.num_key_value_heads = 6; /* 6 >= 4 but 6 % 4 != 0 */
    expect_check(&c, 4, 1, TC_E_INPUT, "num_key_value_heads = 6");
    expect_check(&c, 2, 1, TC_OK, NULL);
}
END_TEST

START_TEST(check_model_should_reject_intermediate_size_not_divisible_by_tp)
{
    tc_hf_config c = small_config();
    c.intermediate_size = 60;
    expect_check(&c, 8, 1, TC_E_INPUT, "intermediate_size = 60");
    expect_check(&c, 4, 1, TC_OK, NULL);
}
END_TEST

START_TEST(check_model_should_reject_mlp_bias)
{
    tc_hf_config c = small_config();
    c.mlp_bias = true;
    expect_check(&c, 1, 1, TC_E_INPUT, "mlp_bias");
}
END_TEST

START_TEST(check_model_should_need_hidden_divisible_by_tp_for_a_column_sharded_embedding)
{
    tc_hf_config c = small_config();
    c.hidden_size = 36; /* head_dim given explicitly, so H need not be nh * d */
    tc_plan_params o;
    params_init(&o);
    o.layout.tp = 8;
    o.emb.parallel = true;
    o.emb.sharding_dim = 1;
    tc_clear_first_error();
    ck_assert_int_eq(tc_plan_check_model(&c, &o), TC_E_INPUT);
    ck_assert(strstr(tc_first_error(), "hidden_size = 36") != NULL);
    o.emb.sharding_dim = 0;
    ck_assert_int_eq(tc_plan_check_model(&c, &o), TC_OK);
    o.emb.parallel = false;
    o.emb.sharding_dim = 1;
    ck_assert_int_eq(tc_plan_check_model(&c, &o), TC_OK);
}
END_TEST

START_TEST(check_model_should_allow_embedding_sharing_only_where_lm_head_can_alias_it)
{
    tc_hf_config c = small_config();
    c.tie_word_embeddings = true;
    tc_plan_params o;
    params_init(&o);
    o.emb.share = true;

    ck_assert_int_eq(tc_plan_check_model(&c, &o), TC_OK); /* tp 1, pp 1 */

    o.layout.pp = 2;
    tc_clear_first_error();
    ck_assert_int_eq(tc_plan_check_model(&c, &o), TC_E_USAGE);
    ck_assert(strstr(tc_first_error(), "--use_embedding_sharing") != NULL);
    ck_assert(strstr(tc_first_error(), "pp_size") != NULL);

    o.layout.pp = 1;
    o.layout.tp = 2;
    tc_clear_first_error();
    ck_assert_int_eq(tc_plan_check_model(&c, &o), TC_E_USAGE);
    ck_assert(strstr(tc_first_error(), "--use_parallel_embedding") != NULL);

    o.emb.parallel = true;
    o.emb.sharding_dim = 1;
    ck_assert_int_eq(tc_plan_check_model(&c, &o), TC_E_USAGE);

    o.emb.sharding_dim = 0;
    ck_assert_int_eq(tc_plan_check_model(&c, &o), TC_OK);
}
END_TEST

/* ---------------------------------------------------------------------------
 * Source errors found while building
 * ------------------------------------------------------------------------- */

static void expect_build_error(const model_spec *s, int64_t tp, int64_t pp, int rank,
                               const char *needle1, const char *needle2)
{
    fixture fx;
    fixture_open(&fx, s, tp, pp);
    ck_assert_int_eq(tc_plan_check_model(&fx.m->cfg, &fx.o), TC_OK);
    tc_clear_first_error();
    tc_plan *p = (tc_plan *)&fx; /* must be reset to NULL */
    tc_status st = plan_build_dt(fx.m, &fx.o, TC_DT_F16, rank, &p);
    ck_assert_msg(st == TC_E_INPUT, "status %d, expected TC_E_INPUT", (int)st);
    ck_assert_ptr_null(p);
    ck_assert_msg(strstr(tc_first_error(), needle1) != NULL, "'%s' not in: %s", needle1,
                  tc_first_error());
    if (needle2)
        ck_assert_msg(strstr(tc_first_error(), needle2) != NULL, "'%s' not in: %s", needle2,
                      tc_first_error());
    fixture_close(&fx);
}

START_TEST(plan_build_should_name_a_missing_tensor)
{
    static const char *const names[] = {
        "model.layers.1.mlp.up_proj.weight",
        "model.layers.0.self_attn.v_proj.weight",
        "model.layers.1.post_attention_layernorm.weight",
        "model.embed_tokens.weight",
        "model.norm.weight",
        "lm_head.weight",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        model_spec s = base_spec();
        s.omit = names[i];
        expect_build_error(&s, 2, 1, 1, names[i], NULL);
    }
    /* attention_bias: a missing q/k/v bias is an error too. */
    model_spec s = base_spec();
    s.bias = true;
    s.omit = "model.layers.0.self_attn.k_proj.bias";
    expect_build_error(&s, 1, 1, 0, s.omit, NULL);
}
END_TEST

START_TEST(plan_build_should_report_a_shape_that_config_json_does_not_imply)
{
    static const char *const names[] = {
        "model.layers.0.mlp.gate_proj.weight",
        "model.layers.1.self_attn.k_proj.weight",
        "model.layers.0.self_attn.o_proj.weight",
        "model.layers.1.input_layernorm.weight",
        "model.embed_tokens.weight",
        "lm_head.weight",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        model_spec s = base_spec();
        s.widen = names[i];
        expect_build_error(&s, 2, 1, 0, "config.json implies", names[i]);
    }
    model_spec s = base_spec();
    s.widen = "model.layers.0.mlp.down_proj.weight"; /* [33, 64] for [32, 64] */
    expect_build_error(&s, 1, 1, 0, "[33, 64]", "[32, 64]");
}
END_TEST

START_TEST(plan_build_should_refuse_a_source_tensor_that_is_not_floating_point)
{
    model_spec s = base_spec();
    s.as_int = "model.layers.1.mlp.up_proj.weight";
    expect_build_error(&s, 1, 1, 0, s.as_int, "I16");
}
END_TEST

static Suite *plan_suite(void)
{
    Suite *s = suite_create("plan");
    TCase *tc = tcase_create("mapping");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, pad_vocab_should_round_up_to_a_multiple_of_tp);
    tcase_add_test(tc, plan_should_number_ranks_pp_major);
    tcase_add_test(tc, plan_should_name_layers_with_local_indices_within_the_stage);
    tcase_add_test(tc, plan_should_put_the_embedding_on_the_first_stage_and_ln_f_and_lm_head_on_the_last);
    tcase_add_test(tc, plan_should_not_need_tensors_of_other_stages);
    suite_add_tcase(s, tc);

    tc = tcase_create("attention");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, plan_should_split_mha_qkv_into_each_ranks_q_k_and_v_rows);
    tcase_add_test(tc, plan_should_split_kv_heads_when_they_are_a_multiple_of_tp);
    tcase_add_test(tc, plan_should_duplicate_kv_heads_when_tp_exceeds_kv_heads);
    tcase_add_test(tc, plan_should_give_every_rank_the_single_kv_head_of_an_mqa_model);
    tcase_add_test(tc, plan_should_use_head_dim_from_config_when_it_differs_from_hidden_over_heads);
    tcase_add_test(tc, plan_should_add_qkv_and_dense_biases_with_attention_bias);
    suite_add_tcase(s, tc);

    tc = tcase_create("mlp");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, plan_should_split_dense_and_proj_by_their_input_columns);
    tcase_add_test(tc, plan_should_take_fc_from_gate_proj_and_gate_from_up_proj);
    tcase_add_test(tc, plan_should_replicate_the_norms_on_every_rank);
    suite_add_tcase(s, tc);

    tc = tcase_create("embedding");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, plan_should_pad_lm_head_vocab_with_zero_rows_on_the_last_rank);
    tcase_add_test(tc, plan_should_give_a_rank_only_zero_rows_when_its_lm_head_chunk_is_all_padding);
    tcase_add_test(tc, plan_should_build_lm_head_from_embed_tokens_when_tied);
    tcase_add_test(tc, plan_should_drop_lm_head_when_a_tied_model_shares_the_embedding);
    tcase_add_test(tc, plan_should_keep_the_whole_embedding_on_every_rank_by_default);
    tcase_add_test(tc, plan_should_shard_the_embedding_by_vocab_rows_with_parallel_embedding_dim_0);
    tcase_add_test(tc, plan_should_shard_the_embedding_by_hidden_columns_with_parallel_embedding_dim_1);
    tcase_add_test(tc, plan_should_share_a_row_sharded_embedding_with_lm_head_across_tp);
    suite_add_tcase(s, tc);

    tc = tcase_create("sizes");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, plan_write_bytes_should_equal_the_sum_of_the_output_tensor_sizes);
    tcase_add_test(tc, plan_out_tensors_should_describe_names_dtypes_and_shapes_in_plan_order);
    tcase_add_test(tc, plan_pieces_should_cover_every_row_inside_their_sources_for_many_layouts);
    suite_add_tcase(s, tc);

    tc = tcase_create("check_model");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, check_model_should_reject_layers_not_divisible_by_pp);
    tcase_add_test(tc, check_model_should_reject_heads_not_divisible_by_tp);
    tcase_add_test(tc, check_model_should_reject_tp_that_is_not_a_multiple_of_fewer_kv_heads);
    tcase_add_test(tc, check_model_should_reject_intermediate_size_not_divisible_by_tp);
    tcase_add_test(tc, check_model_should_reject_mlp_bias);
    tcase_add_test(tc, check_model_should_need_hidden_divisible_by_tp_for_a_column_sharded_embedding);
    tcase_add_test(tc, check_model_should_allow_embedding_sharing_only_where_lm_head_can_alias_it);
    suite_add_tcase(s, tc);

    tc = tcase_create("source_errors");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, plan_build_should_name_a_missing_tensor);
    tcase_add_test(tc, plan_build_should_report_a_shape_that_config_json_does_not_imply);
    tcase_add_test(tc, plan_build_should_refuse_a_source_tensor_that_is_not_floating_point);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    tc_log_set_quiet(1);
    SRunner *sr = srunner_create(plan_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
