/* verify.c: `trtconv verify DIR`, an offline check of a finished checkpoint.
 *
 * Three independent checks, each reported with the file and rule broken:
 *   1. commit: config.json and trtconv-manifest.json exist and agree (the
 *      manifest records config.json's SHA-256, the mapping, one entry per
 *      rank);
 *   2. integrity: every rank{r}.safetensors has the recorded size and
 *      SHA-256 and a header that passes the validating reader;
 *   3. format: the tensors of each rank file are exactly those the
 *      TensorRT-LLM v0.12 format requires for the config (names, dtypes,
 *      shapes; trtllm-checkpoint.md §4.5-4.10), derived here from config.json
 *      alone, not from the code that wrote the files. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cjson/cJSON.h>

#include "trtconv/core/dtype.h"
#include "trtconv/model/hf_model.h"
#include "trtconv/core/jsonutil.h"
#include "trtconv/core/log.h"
#include "trtconv/output/manifest.h"
#include "trtconv/plan/rope.h"
#include "trtconv/formats/safetensors.h"
#include "trtconv/output/rankfile.h"
#include "verify_internal.h"

#define CONFIG_MAX_BYTES (1u << 20)
#define MANIFEST_MAX_BYTES (64u << 20)

typedef tc_verify_expected expected;
typedef tc_verify_expect_list expect_list;

typedef struct model_desc {
    int64_t H, nh, nkv, d, I, V, L, tp, pp, P;
    tc_rope_tables rope;          /* built when the format has rope buffers */
    tc_dtype dt;
    int woq_bits;                 /* 0, 8, 4 */
    bool woq_plain;               /* disable_weight_only_quant_plugin */
    bool sq, sq_per_channel, sq_per_token;
    bool kv_int8, kv_fp8, attn_bias;
    bool fp8_rowwise;             /* FP8_PER_CHANNEL_PER_TOKEN (quant/fp8.h) */
    bool fp8_tensor;              /* FP8 per tensor (quant/fp8_tensor.c) */
    bool parallel_embedding, share_embedding;
    int64_t sharding_dim;
    int64_t experts, moe_tp, moe_ep;  /* experts > 1: a mixture of experts */
} model_desc;

static int g_problems;

void tc_verify_problem(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL: ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    g_problems++;
}

int tc_verify_problems(void)
{
    return g_problems;
}

#define problem tc_verify_problem

/* One more tensor the format implies; NULL when the list could not grow
 * (it records that). */
#define expect(l, optional, ...) expect_mark(tc_verify_expect((l), __VA_ARGS__), (optional))

static expected *expect_mark(expected *e, bool optional)
{
    if (e)
        e->optional = optional;
    return e;
}

/* One linear of layer i: weight [N, K] in HF orientation before quantization. */
static void expect_linear(expect_list *l, const model_desc *m, int64_t i, const char *lin,
                          int64_t N, int64_t K, bool per_column_sq)
{
    const char *pre = "transformer.layers";
    if (m->sq) {
        expect(l, false, TC_DT_I8, 2, N, K, "%s.%lld.%s.weight", pre, (long long)i, lin);
        const bool cols = per_column_sq || m->sq_per_channel;
        expect(l, false, TC_DT_F32, 2, 1, cols ? N : 1, "%s.%lld.%s.per_channel_scale", pre,
               (long long)i, lin);
        if (!m->sq_per_token)
            expect(l, false, TC_DT_F32, 2, 1, 1, "%s.%lld.%s.act_scale", pre, (long long)i, lin);
    } else if (m->fp8_tensor) {
        expect(l, false, TC_DT_F8_E4M3, 2, N, K, "%s.%lld.%s.weight", pre, (long long)i, lin);
        expect(l, false, TC_DT_F32, 1, 1, 0, "%s.%lld.%s.weights_scaling_factor", pre,
               (long long)i, lin);
        expect(l, false, TC_DT_F32, 1, 1, 0, "%s.%lld.%s.activation_scaling_factor", pre,
               (long long)i, lin);
    } else if (m->woq_bits && m->woq_plain) {
        expect(l, false, m->dt, 2, K, N, "%s.%lld.%s.weight", pre, (long long)i, lin);
        expect(l, false, m->dt, 1, N, 0, "%s.%lld.%s.per_channel_scale", pre, (long long)i, lin);
    } else if (m->woq_bits) {
        expect(l, false, TC_DT_I8, 2, K, N * m->woq_bits / 8, "%s.%lld.%s.weight", pre,
               (long long)i, lin);
        expect(l, false, m->dt, 1, N, 0, "%s.%lld.%s.per_channel_scale", pre, (long long)i, lin);
    } else {
        expect(l, false, m->dt, 2, N, K, "%s.%lld.%s.weight", pre, (long long)i, lin);
    }
}

/* A stacked-experts linear [E, N, K] (plan_moe.c), as weight-only
 * quantization stores it when it does ([E, K, N*bits/8] + scales [E, N]),
 * or FP8 per tensor (F8 [E, N, K], one weight scale per expert [E, 1] and
 * one activation scale [1]; docs/moe.md). */
static void expect_experts(expect_list *l, const model_desc *m, int64_t i, const char *lin,
                           int64_t E, int64_t N, int64_t K)
{
    const char *pre = "transformer.layers";
    const int64_t bits = m->woq_bits;
    if (m->fp8_tensor) {
        expected *w = expect(l, false, TC_DT_F8_E4M3, 3, E, N, "%s.%lld.%s.weight", pre,
                             (long long)i, lin);
        if (w)
            w->shape[2] = K;
        expect(l, false, TC_DT_F32, 2, E, 1, "%s.%lld.%s.weights_scaling_factor", pre,
               (long long)i, lin);
        expect(l, false, TC_DT_F32, 1, 1, 0, "%s.%lld.%s.activation_scaling_factor", pre,
               (long long)i, lin);
        return;
    }
    expected *w = expect(l, false, bits && !m->woq_plain ? TC_DT_I8 : m->dt, 3, E, bits ? K : N,
                         "%s.%lld.%s.weight", pre, (long long)i, lin);
    if (w)
        w->shape[2] = bits ? (m->woq_plain ? N : N * bits / 8) : K;
    if (bits)
        expect(l, false, m->dt, 2, E, N, "%s.%lld.%s.per_channel_scale", pre, (long long)i, lin);
}

static void expected_for_rank(const model_desc *m, int64_t rank, expect_list *l)
{
    const int64_t p = rank / m->tp, tp = m->tp;
    const int64_t kv_l = (m->nkv + tp - 1) / tp; /* KV heads per rank, duplicated when < tp */
    const int64_t Nq = (m->nh / tp + 2 * kv_l) * m->d, Q_l = m->nh * m->d / tp, I_l = m->I / tp;
    const char *pre = "transformer.layers";
    l->n = 0;
    if (p == 0) {
        int64_t rows = m->V, cols = m->H;
        if (m->parallel_embedding && m->sharding_dim == 0)
            rows = (m->V + tp - 1) / tp;
        else if (m->parallel_embedding)
            cols = m->H / tp;
        expect(l, false, m->dt, 2, rows, cols, "transformer.vocab_embedding.weight");
    }
    for (int64_t i = 0; i < m->L / m->pp; i++) {
        expect(l, false, m->dt, 1, m->H, 0, "%s.%lld.input_layernorm.weight", pre, (long long)i);
        expect(l, false, m->dt, 1, m->H, 0, "%s.%lld.post_layernorm.weight", pre, (long long)i);
        expect_linear(l, m, i, "attention.qkv", Nq, m->H, true);
        expect_linear(l, m, i, "attention.dense", m->H, Q_l, false);
        const int64_t g = p * (m->L / m->pp) + i;
        if (m->fp8_rowwise && g > 0 && g < m->L - 1) {
            /* v0.12: the MLP linears of every layer but the first and last. */
            static const char *const mlp[3] = { "mlp.fc", "mlp.gate", "mlp.proj" };
            for (int k = 0; k < 3; k++) {
                const int64_t N = k < 2 ? I_l : m->H, K = k < 2 ? m->H : I_l;
                expect(l, false, TC_DT_F8_E4M3, 2, N, K, "%s.%lld.%s.weight", pre, (long long)i,
                       mlp[k]);
                expect(l, false, TC_DT_F32, 1, N, 0, "%s.%lld.%s.per_channel_scale", pre,
                       (long long)i, mlp[k]);
            }
            expect(l, false, TC_DT_F32, 1, 2, 0, "%s.%lld.mlp.clamp_val", pre, (long long)i);
            expect(l, false, TC_DT_F32, 1, 2, 0, "%s.%lld.post_layernorm.clamp_val", pre,
                   (long long)i);
        } else if (m->experts > 1) {
            const int64_t E_l = m->experts / m->moe_ep, Im = m->I / m->moe_tp;
            expect(l, false, TC_DT_F32, 2, m->experts, m->H, "%s.%lld.mlp.router.weight", pre,
                   (long long)i);
            expect_experts(l, m, i, "mlp.fc", E_l, 2 * Im, m->H);
            expect_experts(l, m, i, "mlp.proj", E_l, m->H, Im);
        } else {
            expect_linear(l, m, i, "mlp.fc", I_l, m->H, false);
            expect_linear(l, m, i, "mlp.gate", I_l, m->H, false);
            expect_linear(l, m, i, "mlp.proj", m->H, I_l, false);
        }
        if (m->attn_bias) {
            expect(l, false, m->dt, 1, Nq, 0, "%s.%lld.attention.qkv.bias", pre, (long long)i);
            expect(l, true, m->dt, 1, m->H, 0, "%s.%lld.attention.dense.bias", pre, (long long)i);
        }
        if (m->sq) {
            expect(l, false, TC_DT_F32, 1, 1, 0, "%s.%lld.input_layernorm.scale_to_int", pre,
                   (long long)i);
            expect(l, false, TC_DT_F32, 1, 1, 0, "%s.%lld.post_layernorm.scale_to_int", pre,
                   (long long)i);
            expect(l, false, TC_DT_F32, 2, 1, Q_l, "%s.%lld.attention.dense.smoother", pre,
                   (long long)i);
            expect(l, false, TC_DT_F32, 2, 1, I_l, "%s.%lld.mlp.proj.smoother", pre,
                   (long long)i);
            if (!m->sq_per_token) {
                expect(l, false, TC_DT_F32, 1, 1, 0,
                       "%s.%lld.attention.quantization_scaling_factor", pre, (long long)i);
                expect(l, false, TC_DT_F32, 1, 1, 0, "%s.%lld.mlp.quantization_scaling_factor",
                       pre, (long long)i);
            }
        }
        if (m->kv_int8 || m->kv_fp8)
            expect(l, false, TC_DT_F32, 1, 1, 0, "%s.%lld.attention.kv_cache_scaling_factor",
                   pre, (long long)i);
    }
    if (p == m->pp - 1) {
        expect(l, false, m->dt, 1, m->H, 0, "transformer.ln_f.weight");
        if (!m->share_embedding)
            expect(l, false, m->dt, 2, (m->V + tp - 1) / tp, m->H, "lm_head.weight");
    }
}

/* ---- config.json ---- */

static bool get_int(const cJSON *o, const char *key, int64_t lo, int64_t hi, int64_t *v,
                    const char *file)
{
    if (tc_json_int(tc_json_get(o, key), lo, hi, v))
        return true;
    problem("%s: \"%s\" missing or not an integer in [%lld, %lld]", file, key, (long long)lo,
            (long long)hi);
    return false;
}

static bool get_bool(const cJSON *o, const char *key)
{
    return cJSON_IsTrue(tc_json_get(o, key));
}

static const char *get_str(const cJSON *o, const char *key)
{
    const cJSON *v = tc_json_get(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool describe_model(const cJSON *c, const char *file, model_desc *m)
{
    const int64_t big = INT64_C(1) << 40;
    const cJSON *map = tc_json_get(c, "mapping"), *q = tc_json_get(c, "quantization");
    memset(m, 0, sizeof *m);
    bool ok = get_int(c, "hidden_size", 1, big, &m->H, file) &&
              get_int(c, "num_attention_heads", 1, 1 << 20, &m->nh, file) &&
              get_int(c, "num_key_value_heads", 1, 1 << 20, &m->nkv, file) &&
              get_int(c, "head_size", 1, 1 << 20, &m->d, file) &&
              get_int(c, "intermediate_size", 1, big, &m->I, file) &&
              get_int(c, "vocab_size", 1, big, &m->V, file) &&
              get_int(c, "num_hidden_layers", 1, 1 << 20, &m->L, file) &&
              get_int(map, "tp_size", 1, 1 << 16, &m->tp, file) &&
              get_int(map, "pp_size", 1, 1 << 16, &m->pp, file);
    if (!ok)
        return false;
    const cJSON *moe = tc_json_get(c, "moe");
    if (cJSON_IsObject(moe) && !get_int(moe, "num_experts", 0, 1 << 20, &m->experts, file))
        return false;
    m->moe_tp = m->tp;
    m->moe_ep = 1;
    if (m->experts > 1 && !(get_int(map, "moe_tp_size", 1, 1 << 16, &m->moe_tp, file) &&
                            get_int(map, "moe_ep_size", 1, 1 << 16, &m->moe_ep, file)))
        return false;
    if (m->experts > 1 && (m->moe_tp * m->moe_ep != m->tp || m->experts % m->moe_ep ||
                           m->I % m->moe_tp)) {
        problem("%s: moe_tp_size %lld x moe_ep_size %lld does not split tp_size %lld, the "
                "%lld experts or intermediate_size %lld", file, (long long)m->moe_tp,
                (long long)m->moe_ep, (long long)m->tp, (long long)m->experts, (long long)m->I);
        return false;
    }
    const char *dt = get_str(c, "dtype");
    tc_float_type ft;
    if (!dt || tc_float_type_parse(dt, &ft) != 0) {
        problem("%s: dtype \"%s\" is not float16, bfloat16 or float32", file, dt ? dt : "(none)");
        return false;
    }
    m->dt = tc_float_type_dtype(ft);
    if (m->L % m->pp || m->nh % m->tp || (m->experts <= 1 && m->I % m->tp) ||
        (m->nkv >= m->tp ? m->nkv % m->tp : m->tp % m->nkv)) {
        problem("%s: the mapping tp %lld x pp %lld does not divide the model", file,
                (long long)m->tp, (long long)m->pp);
        return false;
    }
    const char *qa = get_str(q, "quant_algo"), *kv = get_str(q, "kv_cache_quant_algo");
    if (qa && strcmp(qa, "W8A16") == 0) {
        m->woq_bits = 8;
    } else if (qa && strcmp(qa, "W4A16") == 0) {
        m->woq_bits = 4;
    } else if (qa && strcmp(qa, "FP8") == 0) {
        m->fp8_tensor = true;
    } else if (qa && strcmp(qa, "FP8_PER_CHANNEL_PER_TOKEN") == 0) {
        m->fp8_rowwise = true;
    } else if (qa && strncmp(qa, "W8A8_SQ_", 8) == 0) {
        m->sq = true;
        m->sq_per_channel = strstr(qa, "PER_CHANNEL") != NULL;
        m->sq_per_token = strstr(qa, "PER_TOKEN") != NULL;
    } else if (qa) {
        problem("%s: quant_algo %s is not one trtconv writes", file, qa);
        return false;
    }
    if (kv && strcmp(kv, "INT8") != 0 && strcmp(kv, "FP8") != 0) {
        problem("%s: kv_cache_quant_algo %s is not one trtconv writes", file, kv);
        return false;
    }
    m->kv_int8 = kv && strcmp(kv, "INT8") == 0;
    m->kv_fp8 = kv && strcmp(kv, "FP8") == 0;
    m->woq_plain = get_bool(c, "disable_weight_only_quant_plugin");
    m->attn_bias = get_bool(c, "attn_bias");
    m->parallel_embedding = get_bool(c, "use_parallel_embedding");
    m->share_embedding = get_bool(c, "share_embedding_table");
    if (tc_json_get(c, "embedding_sharding_dim") &&
        !get_int(c, "embedding_sharding_dim", 0, 1, &m->sharding_dim, file))
        return false;
    if (!m->sq && !m->kv_int8 && !m->fp8_tensor) {
        const cJSON *base = tc_json_get(c, "rotary_base");
        if (!get_int(c, "max_position_embeddings", 1, INT64_C(1) << 26, &m->P, file))
            return false;
        if (!cJSON_IsNumber(base)) {
            problem("%s: \"rotary_base\" missing or not a number", file);
            return false;
        }
        if (tc_rope_tables_init(file, tc_json_get(c, "rotary_scaling"), base->valuedouble, m->P,
                                m->d, &m->rope) != TC_OK) {
            problem("%s: its rotary settings give no rope buffers (see the error above)", file);
            return false;
        }
    }
    return true;
}

static cJSON *read_json(const char *path, size_t cap)
{
    char *text = NULL;
    size_t len = 0;
    if (tc_read_small_file(path, cap, &text, &len) != TC_OK) {
        problem("%s: cannot read (see the error above)", path);
        return NULL;
    }
    cJSON *j = tc_json_parse(path, text, len);
    free(text);
    if (!j || !cJSON_IsObject(j) || tc_json_find_duplicate_key(j)) {
        problem("%s: not a JSON object (or a key appears twice)", path);
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

static void format_shape(int ndim, const int64_t *shape, char *buf, size_t n)
{
    size_t len = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (len < n)
        snprintf(buf + len, n - len, "]");
}

/* The rotary buffers of the per-rank path (rope.h): every rank file of a
 * conversion that is not SmoothQuant / INT8 KV holds them. */
static void expect_rope(expect_list *l, const model_desc *m)
{
    const int64_t P = m->rope.max_pos, D = m->rope.dim;
    expected *x = expect(l, false, TC_DT_F32, 2, 1, P * D, "%s",
                         tc_rope_buffer_name(TC_ROPE_FOR_GPT_ATTENTION));
    if (x)
        x->rope = TC_ROPE_FOR_GPT_ATTENTION;
    x = expect(l, false, TC_DT_F32, 1, D / 2, 0, "%s", tc_rope_buffer_name(TC_ROPE_INV_FREQ));
    if (x)
        x->rope = TC_ROPE_INV_FREQ;
    x = expect(l, false, TC_DT_F32, 3, 1, P, "%s", tc_rope_buffer_name(TC_ROPE_EMBED_POSITIONS));
    if (x) {
        x->shape[2] = D;
        x->rope = TC_ROPE_EMBED_POSITIONS;
    }
}

/* A scale (or smoother) tensor must hold finite values only: an Inf or NaN
 * scale builds into an engine that computes garbage. */
static void check_finite(const char *path, tc_st_file *f, const tc_st_tensor *t)
{
    const size_t es = tc_dtype_bits(t->dtype) / 8;
    const uint64_t n = (t->end - t->begin) / es, chunk = 1 << 16;
    char *raw = malloc(chunk * es);
    for (uint64_t i0 = 0; raw && i0 < n; i0 += chunk) {
        const uint64_t m = n - i0 < chunk ? n - i0 : chunk;
        if (tc_st_read(f, t->begin + i0 * es, raw, m * es) != TC_OK) {
            problem("%s: cannot read tensor %s", path, t->name);
            break;
        }
        float v;
        const size_t k = tc_first_nonfinite(raw, t->dtype, (size_t)m, &v);
        if (k < m) {
            problem("%s: tensor %s[%llu] = %g is not finite (a scale must be)", path, t->name,
                    (unsigned long long)(i0 + k), (double)v);
            break;
        }
    }
    free(raw);
}

/* Values equal to what config.json's rotary settings give, bit for bit. */
static void check_rope_values(const char *path, tc_st_file *f, const tc_st_tensor *t,
                              const model_desc *m, tc_rope_buffer which)
{
    const int64_t cols = which == TC_ROPE_INV_FREQ ? 1 : m->rope.dim;
    const int64_t rows = which == TC_ROPE_INV_FREQ ? m->rope.dim / 2 : m->rope.max_pos;
    const int64_t chunk = 4096;
    float *want = malloc((size_t)(chunk * cols) * sizeof(float));
    float *have = malloc((size_t)(chunk * cols) * sizeof(float));
    for (int64_t r0 = 0; want && have && r0 < rows; r0 += chunk) {
        const int64_t n = rows - r0 < chunk ? rows - r0 : chunk;
        const size_t bytes = (size_t)(n * cols) * sizeof(float);
        if (tc_st_read(f, t->begin + (uint64_t)(r0 * cols) * sizeof(float), have, bytes) != TC_OK) {
            problem("%s: cannot read tensor %s", path, t->name);
            break;
        }
        tc_rope_fill(&m->rope, which, r0, n, want);
        if (memcmp(want, have, bytes) != 0) {
            problem("%s: tensor %s differs from the rotary table config.json describes (rows "
                    "%lld..%lld)", path, t->name, (long long)r0, (long long)(r0 + n - 1));
            break;
        }
    }
    free(want);
    free(have);
}

static void check_rank_file(const char *dir, const model_desc *m, const tc_rank_entry *e,
                            bool hash, expect_list *exp)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, e->file);
    struct stat sb;
    if (lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        problem("%s: missing (or not a regular file)", path);
        return;
    }
    if ((uint64_t)sb.st_size != e->size) {
        problem("%s: %llu bytes, the manifest records %llu", path,
                (unsigned long long)sb.st_size, (unsigned long long)e->size);
        return;
    }
    tc_st_file *f = NULL;
    tc_st_error err = TC_ST_OK;
    if (tc_st_open(path, &f, &err) != TC_OK) {
        problem("%s: header invalid (%s)", path, tc_st_error_name(err));
        return;
    }
    if (f->n_tensors != e->tensors)
        problem("%s: %zu tensors, the manifest records %llu", path, f->n_tensors,
                (unsigned long long)e->tensors);
    expected_for_rank(m, e->rank, exp);
    if (m->rope.dim)
        expect_rope(exp, m);
    if (exp->out_of_memory) {
        problem("%s: out of memory listing the tensors the format implies", path);
        tc_st_close(f);
        return;
    }
    for (size_t k = 0; k < exp->n; k++) {
        expected *x = &exp->v[k];
        const tc_st_tensor *t = tc_st_find(f, x->name);
        if (!t) {
            if (!x->optional)
                problem("%s: tensor %s missing", path, x->name);
            continue;
        }
        x->seen = true;
        bool shape_ok = t->ndim == x->ndim;
        for (int d = 0; shape_ok && d < x->ndim; d++)
            shape_ok = t->shape[d] == x->shape[d];
        if (t->dtype != x->dtype || !shape_ok) {
            char have[96], want[96];
            format_shape(t->ndim, t->shape, have, sizeof have);
            format_shape(x->ndim, x->shape, want, sizeof want);
            problem("%s: tensor %s is %s %s, the format requires %s %s", path, x->name,
                    tc_dtype_name(t->dtype), have, tc_dtype_name(x->dtype), want);
        } else if (x->rope) {
            check_rope_values(path, f, t, m, x->rope);
        } else if ((m->sq || m->kv_int8 || m->kv_fp8 || m->fp8_rowwise || m->fp8_tensor) &&
                   x->dtype == TC_DT_F32 &&
                   (strstr(x->name, "scal") || strstr(x->name, "smoother"))) {
            /* Scales computed from calibration statistics. (Weight-only
             * scales follow the weights: a source with Inf weights gives
             * Inf scales, in upstream's output too.) */
            check_finite(path, f, t);
        }
    }
    for (size_t k = 0; k < f->n_tensors; k++)
        if (!tc_verify_expect_find(exp, f->tensors[k].name))
            problem("%s: tensor %s is not part of the format for this config", path,
                    f->tensors[k].name);
    tc_st_close(f);
    if (hash) {
        char hex[TC_SHA256_HEX];
        uint64_t size = 0;
        if (tc_sha256_tree_file(path, TC_HASH_THREADS, hex, &size) != TC_OK)
            problem("%s: cannot be read to hash it", path);
        else if (strcmp(hex, e->sha256) != 0)
            problem("%s: sha256_tree %s, the manifest records %s", path, hex, e->sha256);
    }
}

static void usage(FILE *f)
{
    fprintf(f, "usage: trtconv verify [--no-hash] DIR\n"
               "  Checks a TensorRT-LLM checkpoint written by trtconv: config.json and\n"
               "  trtconv-manifest.json present and consistent, every rank file of the\n"
               "  recorded size and digest (sha256_tree) with a valid header, and exactly\n"
               "  the tensors\n"
               "  (names, dtypes, shapes) the format requires for config.json.\n"
               "  --no-hash  skip the digests of the rank files (sizes, headers and\n"
               "             tensors are still checked)\n"
               "  exit 0: complete and intact; 3: a problem (each printed as FAIL: ...);\n"
               "  2: usage\n");
}

int tc_verify_main(int argc, char **argv)
{
    const char *dir = NULL;
    bool hash = true;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--no-hash") == 0) {
            hash = false;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] == '-' || dir) {
            usage(stderr);
            return TC_E_USAGE;
        } else {
            dir = argv[i];
        }
    }
    if (!dir) {
        usage(stderr);
        return TC_E_USAGE;
    }
    g_problems = 0;
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    struct stat sb;
    if (stat(path, &sb) != 0) {
        problem("%s: missing: the checkpoint was never committed (a run failed or is still "
                "going)", path);
        printf("%s: NOT a complete checkpoint\n", dir);
        return TC_E_INPUT;
    }
    cJSON *config = read_json(path, CONFIG_MAX_BYTES);
    snprintf(path, sizeof path, "%s/%s", dir, TC_MANIFEST_NAME);
    cJSON *man = config ? read_json(path, MANIFEST_MAX_BYTES) : NULL;
    model_desc m;
    memset(&m, 0, sizeof m);
    expect_list exp = { 0 };
    int64_t world = 0, files_ok = 0;
    uint64_t bytes = 0;
    bool hf = false;
    if (!config || !man)
        goto done;
    const cJSON *fmt = tc_json_get(man, "format"), *files = tc_json_get(man, "files");
    int64_t version = 0, mw = 0, mtp = 0, mpp = 0;
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "trtconv-manifest") != 0 ||
        !tc_json_int(tc_json_get(man, "version"), 1, 1, &version)) {
        problem("%s: not a trtconv manifest of version 1", path);
        goto done;
    }
    {
        char *text = NULL;
        size_t len = 0;
        char hex[TC_SHA256_HEX];
        snprintf(path, sizeof path, "%s/config.json", dir);
        const char *rec = get_str(man, "config_sha256");
        if (tc_read_small_file(path, CONFIG_MAX_BYTES, &text, &len) == TC_OK) {
            tc_sha256_hex_of(text, len, hex);
            if (!rec || strcmp(rec, hex) != 0)
                problem("%s: SHA-256 %s, the manifest records %s", path, hex,
                        rec ? rec : "(none)");
        }
        free(text);
    }
    /* A Hugging Face-style checkpoint (--output_format hf): its own checks. */
    const cJSON *of = tc_json_get(tc_json_get(man, "parameters"), "output_format");
    hf = cJSON_IsString(of) && !strcmp(of->valuestring, "hf");
    if (hf) {
        tc_verify_hf(dir, config, man, hash, &files_ok, &bytes);
        goto done;
    }
    if (!describe_model(config, "config.json", &m))
        goto done;
    if (!get_int(man, "world_size", 1, 1 << 20, &mw, TC_MANIFEST_NAME) ||
        !get_int(man, "tp_size", 1, 1 << 16, &mtp, TC_MANIFEST_NAME) ||
        !get_int(man, "pp_size", 1, 1 << 16, &mpp, TC_MANIFEST_NAME))
        goto done;
    world = m.tp * m.pp;
    if (mw != world || mtp != m.tp || mpp != m.pp)
        problem("%s/%s: mapping %lld = %lld x %lld, config.json says %lld x %lld", dir,
                TC_MANIFEST_NAME, (long long)mw, (long long)mtp, (long long)mpp,
                (long long)m.tp, (long long)m.pp);
    if (!cJSON_IsArray(files) || cJSON_GetArraySize(files) != world) {
        problem("%s/%s: \"files\" must list %lld rank files", dir, TC_MANIFEST_NAME,
                (long long)world);
        goto done;
    }
    for (int64_t r = 0; r < world; r++) {
        tc_rank_entry e;
        char why[256];
        long shards = 0;
        if (!tc_rank_entry_parse(cJSON_GetArrayItem(files, (int)r), &e, why, sizeof why) ||
            e.rank != r || tc_cell_file_index(e.file, &shards) != r || shards != -1) {
            problem("%s/%s: files[%lld]: %s", dir, TC_MANIFEST_NAME, (long long)r,
                    e.rank != r || shards != -1 ? "not rank file r in order" : why);
            continue;
        }
        const int before = g_problems;
        check_rank_file(dir, &m, &e, hash, &exp);
        if (g_problems == before) {
            files_ok++;
            bytes += e.size;
        }
    }
done:
    tc_rope_tables_free(&m.rope);
    tc_verify_expect_free(&exp);
    cJSON_Delete(config);
    cJSON_Delete(man);
    if (g_problems) {
        printf("%s: NOT a complete, intact checkpoint: %d problem(s)\n", dir, g_problems);
        return TC_E_INPUT;
    }
    printf("%s: OK: config.json + %lld %s, %.3f GB%s, tensors as the format "
           "requires\n", dir, (long long)files_ok, hf ? "shard(s)" : "rank file(s)",
           (double)bytes / 1e9,
           hash ? ", digests as recorded" : " (digests not checked)");
    return TC_OK;
}
