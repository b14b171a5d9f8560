/* refconv.c: an independent, deliberately naive reference converter for
 * tests. It follows the steps of TensorRT-LLM's Era B Python converter
 * literally on whole tensors in memory (trtllm-checkpoint.md §4.1-4.5):
 * load each HF tensor whole and cast it, duplicate KV heads, split into tp
 * chunks, concatenate q/k/v, pad lm_head with zero rows, and write every
 * rank file with tc_st_write_file. It shares no planning or slicing code
 * with trtconv, so agreement of the two is a real check. Small models only.
 *
 * usage: tc-refconv --model_dir D --output_dir O [--tp_size N] [--pp_size N]
 *        [--dtype float16|bfloat16|float32] [--use_parallel_embedding]
 *        [--embedding_sharding_dim 0|1] [--use_embedding_sharing]
 *        [--use_weight_only [--weight_only_precision int8|int4] --target_sm SM]
 * Weight-only linears go through tc_woq_quantize_ref, the literal
 * step-by-step reference of §4.7-4.8, on the whole per-rank slice. The
 * three rotary buffers come from rope.h (their values are held to numpy's
 * and upstream's own files by test_golden_fp16.sh and unit_rope, not here). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "trtconv/model/hf_model.h"
#include "trtconv/core/log.h"
#include "trtconv/plan/rope.h"
#include "trtconv/formats/st_writer.h"
#include "trtconv/quant/woq.h"

typedef struct mat {          /* row-major [rows, cols] of element size es */
    char *data;
    int64_t rows, cols;
    size_t es;
} mat;

static tc_dtype g_out;
static tc_hf_model *g_model;

static void die(const char *what)
{
    fprintf(stderr, "tc-refconv: %s\n", what);
    exit(2);
}

static mat load(const char *name)
{
    const tc_st_file *f;
    const tc_st_tensor *t;
    if (tc_hf_find_tensor(g_model, name, &f, &t) != TC_OK)
        die(name);
    mat m;
    m.rows = t->shape[0];
    m.cols = t->ndim == 2 ? t->shape[1] : 1;
    size_t n = (size_t)(m.rows * m.cols);
    size_t ses = tc_dtype_bits(t->dtype) / 8;
    char *raw = malloc(n * ses + 1);
    if (tc_st_read(f, t->begin, raw, n * ses) != TC_OK)
        die("read");
    m.es = tc_dtype_bits(g_out) / 8;
    m.data = malloc(n * m.es + 1);
    tc_convert(m.data, g_out, raw, t->dtype, n); /* the .to(dtype) cast */
    free(raw);
    return m;
}

static mat zeros(int64_t rows, int64_t cols, size_t es)
{
    mat m = { calloc((size_t)(rows * cols) * es + 1, 1), rows, cols, es };
    return m;
}

/* torch.split(x, rows/n, dim=0)[k] */
static mat split_rows(mat x, int64_t n, int64_t k)
{
    int64_t r = x.rows / n;
    mat m = zeros(r, x.cols, x.es);
    memcpy(m.data, x.data + (size_t)(k * r * x.cols) * x.es, (size_t)(r * x.cols) * x.es);
    return m;
}

/* torch.split(x, cols/n, dim=1)[k] */
static mat split_cols(mat x, int64_t n, int64_t k)
{
    int64_t c = x.cols / n;
    mat m = zeros(x.rows, c, x.es);
    for (int64_t i = 0; i < x.rows; i++)
        memcpy(m.data + (size_t)(i * c) * x.es, x.data + (size_t)(i * x.cols + k * c) * x.es,
               (size_t)c * x.es);
    return m;
}

static mat concat_rows(mat a, mat b, mat c)
{
    mat m = zeros(a.rows + b.rows + c.rows, a.cols, a.es);
    size_t rb = (size_t)a.cols * a.es;
    memcpy(m.data, a.data, (size_t)a.rows * rb);
    memcpy(m.data + (size_t)a.rows * rb, b.data, (size_t)b.rows * rb);
    memcpy(m.data + (size_t)(a.rows + b.rows) * rb, c.data, (size_t)c.rows * rb);
    return m;
}

/* dup_kv_weight: view [nkv, d, cols], repeat each head reps times. */
static mat dup_heads(mat x, int64_t nkv, int64_t reps)
{
    int64_t d = x.rows / nkv;
    mat m = zeros(x.rows * reps, x.cols, x.es);
    size_t hb = (size_t)(d * x.cols) * x.es;
    for (int64_t h = 0; h < nkv; h++)
        for (int64_t j = 0; j < reps; j++)
            memcpy(m.data + (size_t)(h * reps + j) * hb, x.data + (size_t)h * hb, hb);
    return m;
}

static mat pad_rows(mat x, int64_t rows)
{
    mat m = zeros(rows, x.cols, x.es);
    memcpy(m.data, x.data, (size_t)(x.rows * x.cols) * x.es);
    return m;
}

typedef struct out_set {
    tc_st_out_tensor t[4096];
    const void *d[4096];
    char names[4096][128];
    size_t n;
} out_set;

static int g_woq_bits, g_sm, g_no_plugin;

static void put(out_set *o, const char *name, mat m, int ndim);

/* A linear: quantized with the reference when weight-only is on. */
static void put_linear(out_set *o, const char *name, mat m)
{
    if (!g_woq_bits) {
        put(o, name, m, 2);
        return;
    }
    int64_t n = m.rows, k = m.cols;
    uint8_t *q = malloc((size_t)(n * k) + 1);
    char *sc = malloc((size_t)n * m.es + 1);
    if (g_no_plugin) {
        /* Non-plugin path: W^T unquantized, plus the op's scales. */
        if (tc_woq_scales_rows(m.data, g_out, n, k, g_woq_bits, sc) != TC_OK)
            die("tc_woq_scales_rows");
        mat tr = zeros(k, n, m.es);
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < k; j++)
                memcpy(tr.data + (size_t)(j * n + i) * m.es, m.data + (size_t)(i * k + j) * m.es, m.es);
        put(o, name, tr, 2);
        char sname0[128];
        snprintf(sname0, sizeof sname0, "%.*s.per_channel_scale", (int)(strlen(name) - 7), name);
        mat s0 = { sc, n, 1, m.es };
        put(o, sname0, s0, 1);
        return;
    }
    if (tc_woq_quantize_ref(m.data, g_out, n, k, g_woq_bits, g_sm, q, sc) != TC_OK)
        die("tc_woq_quantize_ref");
    size_t i = o->n++;
    snprintf(o->names[i], sizeof o->names[i], "%s", name);
    memset(&o->t[i], 0, sizeof o->t[i]);
    o->t[i].name = o->names[i];
    o->t[i].dtype = TC_DT_I8;
    o->t[i].ndim = 2;
    o->t[i].shape[0] = k;
    o->t[i].shape[1] = n * g_woq_bits / 8;
    o->d[i] = q;
    char sname[128];
    snprintf(sname, sizeof sname, "%.*s.per_channel_scale", (int)(strlen(name) - 7), name);
    mat s = { sc, n, 1, m.es };
    put(o, sname, s, 1);
}

static void put(out_set *o, const char *name, mat m, int ndim)
{
    size_t i = o->n++;
    snprintf(o->names[i], sizeof o->names[i], "%s", name);
    memset(&o->t[i], 0, sizeof o->t[i]);
    o->t[i].name = o->names[i];
    o->t[i].dtype = g_out;
    o->t[i].ndim = ndim;
    o->t[i].shape[0] = m.rows;
    o->t[i].shape[1] = m.cols;
    o->d[i] = m.data;
}

int main(int argc, char **argv)
{
    const char *model_dir = NULL, *out_dir = NULL, *dtype = "float16";
    int64_t tp = 1, pp = 1, shard_dim = 0;
    int par_emb = 0, share = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(a, "--model_dir")) { model_dir = v; i++; }
        else if (!strcmp(a, "--output_dir")) { out_dir = v; i++; }
        else if (!strcmp(a, "--tp_size")) { tp = atoll(v); i++; }
        else if (!strcmp(a, "--pp_size")) { pp = atoll(v); i++; }
        else if (!strcmp(a, "--dtype")) { dtype = v; i++; }
        else if (!strcmp(a, "--embedding_sharding_dim")) { shard_dim = atoll(v); i++; }
        else if (!strcmp(a, "--use_parallel_embedding")) par_emb = 1;
        else if (!strcmp(a, "--use_embedding_sharing")) share = 1;
        else if (!strcmp(a, "--use_weight_only")) { if (!g_woq_bits) g_woq_bits = 8; }
        else if (!strcmp(a, "--weight_only_precision")) { g_woq_bits = !strcmp(v, "int4") ? 4 : 8; i++; }
        else if (!strcmp(a, "--target_sm")) { g_sm = atoi(v); i++; }
        else if (!strcmp(a, "--disable_weight_only_quant_plugin")) g_no_plugin = 1;
        else die("unknown argument");
    }
    if (!model_dir || !out_dir)
        die("usage: --model_dir D --output_dir O ...");
    tc_float_type ft;
    if (tc_float_type_parse(dtype, &ft) != 0)
        die("dtype");
    g_out = tc_float_type_dtype(ft);
    if (tc_hf_open(model_dir, &g_model) != TC_OK)
        die("open model");
    const tc_hf_config *c = &g_model->cfg;
    const int64_t V = c->vocab_size, nkv = c->num_key_value_heads;
    const int64_t per = c->num_hidden_layers / pp;
    static out_set o;
    char name[256], nm2[256];

    tc_rope_tables rope;
    if (tc_rope_tables_init("config.json", c->rope_scaling, c->rope_theta,
                            c->max_position_embeddings, c->head_dim, &rope) != TC_OK)
        die("rope tables");
    const int64_t P = c->max_position_embeddings, D = c->head_dim;
    float *ep = malloc((size_t)(P * D) * sizeof(float)), *epg = malloc((size_t)(P * D) * sizeof(float));
    float *inv = malloc((size_t)(D / 2) * sizeof(float));
    if (!ep || !epg || !inv)
        die("out of memory");
    tc_rope_fill(&rope, TC_ROPE_EMBED_POSITIONS, 0, P, ep);
    tc_rope_fill(&rope, TC_ROPE_FOR_GPT_ATTENTION, 0, P, epg);
    tc_rope_fill(&rope, TC_ROPE_INV_FREQ, 0, D / 2, inv);

    for (int64_t rank = 0; rank < tp * pp; rank++) {
        int64_t r = rank % tp, p = rank / tp;
        o.n = 0;
        const int64_t shapes[3][3] = { { 1, P, D }, { D / 2 }, { 1, P * D } };
        const void *bufs[3] = { ep, inv, epg };
        const char *names[3] = { "embed_positions", "rotary_inv_freq",
                                 "embed_positions_for_gpt_attention" };
        const int ndims[3] = { 3, 1, 2 };
        for (int b = 0; b < 3; b++) {
            size_t i = o.n++;
            snprintf(o.names[i], sizeof o.names[i], "%s", names[b]);
            memset(&o.t[i], 0, sizeof o.t[i]);
            o.t[i].name = o.names[i];
            o.t[i].dtype = TC_DT_F32;
            o.t[i].ndim = ndims[b];
            memcpy(o.t[i].shape, shapes[b], sizeof shapes[b]);
            o.d[i] = bufs[b];
        }
        if (p == 0) {
            mat e = load("model.embed_tokens.weight");
            if (!par_emb)
                put(&o, "transformer.vocab_embedding.weight", e, 2);
            else if (shard_dim == 0) {
                int64_t chunk = (V + tp - 1) / tp;
                mat padded = pad_rows(e, chunk * tp);
                put(&o, "transformer.vocab_embedding.weight", split_rows(padded, tp, r), 2);
            } else {
                put(&o, "transformer.vocab_embedding.weight", split_cols(e, tp, r), 2);
            }
        }
        for (int64_t l = 0; l < per; l++) {
            int64_t g = p * per + l;
#define IN(s) (snprintf(name, sizeof name, "model.layers.%lld." s, (long long)g), name)
#define OUT(s) (snprintf(nm2, sizeof nm2, "transformer.layers.%lld." s, (long long)l), nm2)
            put(&o, OUT("input_layernorm.weight"), load(IN("input_layernorm.weight")), 1);
            const char *kinds[2] = { "weight", "bias" };
            for (int kb = 0; kb < (c->attention_bias ? 2 : 1); kb++) {
                char qn[256], kn[256], vn[256];
                snprintf(qn, sizeof qn, "model.layers.%lld.self_attn.q_proj.%s", (long long)g, kinds[kb]);
                snprintf(kn, sizeof kn, "model.layers.%lld.self_attn.k_proj.%s", (long long)g, kinds[kb]);
                snprintf(vn, sizeof vn, "model.layers.%lld.self_attn.v_proj.%s", (long long)g, kinds[kb]);
                mat q = load(qn), k = load(kn), v = load(vn);
                if (nkv < tp) {
                    k = dup_heads(k, nkv, tp / nkv);
                    v = dup_heads(v, nkv, tp / nkv);
                }
                mat qkv = concat_rows(split_rows(q, tp, r), split_rows(k, tp, r), split_rows(v, tp, r));
                snprintf(nm2, sizeof nm2, "transformer.layers.%lld.attention.qkv.%s", (long long)l, kinds[kb]);
                if (kb == 0)
                    put_linear(&o, nm2, qkv);
                else
                    put(&o, nm2, qkv, 1);
            }
            put_linear(&o, OUT("attention.dense.weight"), split_cols(load(IN("self_attn.o_proj.weight")), tp, r));
            if (c->attention_bias) {
                const tc_st_file *bf;
                const tc_st_tensor *bt;
                tc_hf_lookup_tensor(g_model, IN("self_attn.o_proj.bias"), &bf, &bt);
                if (bt)
                    put(&o, OUT("attention.dense.bias"), load(IN("self_attn.o_proj.bias")), 1);
            }
            put(&o, OUT("post_layernorm.weight"), load(IN("post_attention_layernorm.weight")), 1);
            put_linear(&o, OUT("mlp.fc.weight"), split_rows(load(IN("mlp.gate_proj.weight")), tp, r));
            put_linear(&o, OUT("mlp.gate.weight"), split_rows(load(IN("mlp.up_proj.weight")), tp, r));
            put_linear(&o, OUT("mlp.proj.weight"), split_cols(load(IN("mlp.down_proj.weight")), tp, r));
        }
        if (p == pp - 1) {
            put(&o, "transformer.ln_f.weight", load("model.norm.weight"), 1);
            int drop = c->tie_word_embeddings && share;
            if (!drop) {
                mat lm = load(c->tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight");
                int64_t padded = (V + tp - 1) / tp * tp;
                put(&o, "lm_head.weight", split_rows(pad_rows(lm, padded), tp, r), 2);
            }
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/rank%lld.safetensors", out_dir, (long long)rank);
        if (tc_st_write_file(path, o.t, o.d, o.n, NULL) != TC_OK)
            die("write");
        /* Buffers are leaked on purpose: a short-lived test tool. */
    }
    tc_hf_close(g_model);
    return 0;
}
