/* model.c: the tensor list and the value of every element (genmodel.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "genmodel.h"
#include "trtconv/core/fsutil.h"
#include "trtconv/core/log.h"
#include "trtconv/formats/st_writer.h"
#include "trtconv/formats/torchwrite.h"
#include "trtconv/formats/zipread.h"

/* ------------------------------------------------------------------ */
/* Tensor list                                                          */







static uint64_t gm_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t gm_fnv1a(const char *s)
{
    uint64_t h = 0xCBF29CE484222325ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001B3ULL;
    }
    return h;
}

/* a * b into *out unless it exceeds INT64_MAX. */
static int gm_mul(int64_t a, int64_t b, int64_t *out)
{
    if (a < 0 || b < 0 || (a != 0 && b > INT64_MAX / a))
        return -1;
    *out = a * b;
    return 0;
}



static tc_status gm_add(struct gm_model *m, const struct gm_opts *o,
                        enum gm_kind kind, int64_t d0, int64_t d1,
                        const char *name)
{
    struct gm_tensor *t = &m->t[m->n];
    unsigned esize = tc_dtype_bits(tc_float_type_dtype(o->ft)) / 8;
    int64_t ne = d0;
    size_t len = strlen(name);

    memset(t, 0, sizeof *t);
    if (len >= sizeof t->name)
        return tc_fail(TC_E_INTERNAL, "tensor name too long: %s", name);
    memcpy(t->name, name, len + 1);
    t->kind = kind;
    t->ndim = d1 > 0 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1;
    if (d1 > 0 && gm_mul(d0, d1, &ne) != 0)
        return tc_fail(TC_E_USAGE, "%s: shape [%lld, %lld] too large",
                       t->name, (long long)d0, (long long)d1);
    t->nelem = (uint64_t)ne;
    if (t->nelem > GM_MAX_TOTAL / esize)
        return tc_fail(TC_E_USAGE, "%s: tensor too large", t->name);
    t->nbytes = t->nelem * esize;
    if (m->total_bytes > GM_MAX_TOTAL - t->nbytes)
        return tc_fail(TC_E_USAGE, "model larger than %llu bytes",
                       (unsigned long long)GM_MAX_TOTAL);
    m->total_bytes += t->nbytes;
    t->key = gm_mix((uint64_t)o->seed ^ gm_mix(gm_fnv1a(t->name)));
    switch (kind) {
    case GM_K_EMBED: t->scale = 0.05f; break;
    case GM_K_LINEAR: t->scale = (float)(1.0 / sqrt((double)d1)); break;
    case GM_K_NORM: t->scale = 0.05f; break;
    case GM_K_BIAS: t->scale = 0.01f; break;
    }
    /* Activation outliers: the decoder layers' norm gains of evenly spaced
     * channels (not the final norm, which feeds only lm_head). */
    if (kind == GM_K_NORM && o->outlier_channels > 0 && strncmp(t->name, "model.layers.", 13) == 0) {
        t->outlier_every = o->hidden / o->outlier_channels;
        t->outlier_gain = (float)o->outlier_gain;
    }
    t->special = o->special_values &&
        (strcmp(t->name, "model.embed_tokens.weight") == 0 ||
         strcmp(t->name, "model.layers.0.self_attn.q_proj.weight") == 0);
    m->n++;
    return TC_OK;
}

/* Build the tensor list in HF state_dict order and assign shards. */
tc_status gm_model_build(const struct gm_opts *o, struct gm_model *m)
{
    tc_status st = TC_OK;
    int64_t H = o->hidden, I = o->intermediate, V = o->vocab;
    int64_t qd, kvd, L;
    size_t cap, i;
    char name[GM_NAME_MAX];
    uint64_t target, cum = 0;
    int prev = -1;

    if (gm_mul(o->heads, o->head_dim, &qd) != 0 || qd > GM_MAX_DIM ||
        gm_mul(o->kv_heads, o->head_dim, &kvd) != 0)
        return tc_fail(TC_E_USAGE, "--heads * --head_dim too large");
    cap = 3 + (size_t)o->layers * (12 + 1 + 3 * (size_t)o->experts);
    m->t = calloc(cap, sizeof *m->t);
    if (!m->t)
        return tc_fail(TC_E_INTERNAL, "out of memory (%zu tensors)", cap);
    m->n = 0;
    m->total_bytes = 0;

#define GM_ADD(kind, d0, d1, name)                                      \
    do {                                                                \
        st = gm_add(m, o, kind, d0, d1, name);                          \
        if (st != TC_OK)                                                \
            return st;                                                  \
    } while (0)
#define GM_ADD_L(kind, d0, d1, suffix)                                  \
    do {                                                                \
        int len_ = snprintf(name, sizeof name, "model.layers.%lld.%s",  \
                            (long long)L, suffix);                      \
        if (len_ < 0 || (size_t)len_ >= sizeof name)                    \
            return tc_fail(TC_E_INTERNAL, "tensor name too long");      \
        GM_ADD(kind, d0, d1, name);                                     \
    } while (0)

    GM_ADD(GM_K_EMBED, V, H, "model.embed_tokens.weight");
    for (L = 0; L < o->layers; L++) {
        GM_ADD_L(GM_K_LINEAR, qd, H, "self_attn.q_proj.weight");
        if (o->attention_bias)
            GM_ADD_L(GM_K_BIAS, qd, 0, "self_attn.q_proj.bias");
        GM_ADD_L(GM_K_LINEAR, kvd, H, "self_attn.k_proj.weight");
        if (o->attention_bias)
            GM_ADD_L(GM_K_BIAS, kvd, 0, "self_attn.k_proj.bias");
        GM_ADD_L(GM_K_LINEAR, kvd, H, "self_attn.v_proj.weight");
        if (o->attention_bias)
            GM_ADD_L(GM_K_BIAS, kvd, 0, "self_attn.v_proj.bias");
        GM_ADD_L(GM_K_LINEAR, H, qd, "self_attn.o_proj.weight");
        if (o->experts) {
            /* Mixtral: router, then per expert w1 (gate), w2 (down), w3 (up). */
            GM_ADD_L(GM_K_LINEAR, o->experts, H, "block_sparse_moe.gate.weight");
            for (int64_t e = 0; e < o->experts; e++) {
                char sfx[96];
                static const char *const w[3] = { "w1", "w2", "w3" };
                for (int k = 0; k < 3; k++) {
                    snprintf(sfx, sizeof sfx, "block_sparse_moe.experts.%lld.%s.weight",
                             (long long)e, w[k]);
                    GM_ADD_L(GM_K_LINEAR, k == 1 ? H : I, k == 1 ? I : H, sfx);
                }
            }
        } else {
            GM_ADD_L(GM_K_LINEAR, I, H, "mlp.gate_proj.weight");
            GM_ADD_L(GM_K_LINEAR, I, H, "mlp.up_proj.weight");
            GM_ADD_L(GM_K_LINEAR, H, I, "mlp.down_proj.weight");
        }
        GM_ADD_L(GM_K_NORM, H, 0, "input_layernorm.weight");
        GM_ADD_L(GM_K_NORM, H, 0, "post_attention_layernorm.weight");
    }
    GM_ADD(GM_K_NORM, H, 0, "model.norm.weight");
    if (!o->tied)
        GM_ADD(GM_K_LINEAR, V, H, "lm_head.weight");
#undef GM_ADD_L
#undef GM_ADD

    if ((uint64_t)o->shards > m->n)
        return tc_fail(TC_E_USAGE, "--shards %lld exceeds the number of "
                       "tensors (%zu)", (long long)o->shards, m->n);
    /* Consecutive runs balanced by bytes: a tensor goes to the shard that
     * holds the midpoint of its byte range, kept monotone, one step at a
     * time, and leaving at least one tensor for every later shard. */
    m->first = calloc((size_t)o->shards + 1, sizeof *m->first);
    if (!m->first)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    target = (m->total_bytes + (uint64_t)o->shards - 1) / (uint64_t)o->shards;
    if (target == 0)
        target = 1;
    for (i = 0; i < m->n; i++) {
        uint64_t mid = cum + m->t[i].nbytes / 2;
        int64_t s = (int64_t)(mid / target);
        int64_t lo = (int64_t)o->shards - (int64_t)(m->n - i);
        int64_t hi = (int64_t)prev + 1;
        if (lo < prev)
            lo = prev;
        if (hi > o->shards - 1)
            hi = o->shards - 1;
        if (s < lo)
            s = lo;
        if (s > hi)
            s = hi;
        m->t[i].shard = (int)s;
        if (s != prev)
            m->first[s] = i;
        prev = (int)s;
        cum += m->t[i].nbytes;
    }
    m->first[o->shards] = m->n;
    return TC_OK;
}

/* ------------------------------------------------------------------ */
/* Values                                                               */

/* f32 bit patterns of the --special_values, per output dtype. */
static const uint32_t gm_special_f16[] = {
    0x7F800000u, 0xFF800000u, 0x7FC00000u, 0xFFC00000u, 0x80000000u,
    0x477FE000u, 0xC77FE000u,  /* +-65504, largest finite f16 */
    0x33800000u, 0xB3800000u,  /* +-2^-24, smallest f16 subnormal */
};
static const uint32_t gm_special_bf16[] = {
    0x7F800000u, 0xFF800000u, 0x7FC00000u, 0xFFC00000u, 0x80000000u,
    0x7F7F0000u, 0xFF7F0000u,  /* largest finite bf16 */
    0x00010000u, 0x80010000u,  /* smallest bf16 subnormal */
};
static const uint32_t gm_special_f32[] = {
    0x7F800000u, 0xFF800000u, 0x7FC00000u, 0xFFC00000u, 0x80000000u,
    0x7F7FFFFFu, 0xFF7FFFFFu,  /* largest finite f32 */
    0x00000001u, 0x80000001u,  /* smallest f32 subnormal */
    0x477FE000u, 0x33800000u,  /* f16 largest finite, smallest subnormal */
    0x7F7F0000u, 0x00010000u,  /* bf16 largest finite, smallest subnormal */
    /* f16 ties (round to nearest even) and near-ties: */
    0x3F801000u,  /* 1 + 2^-11: tie, down to 1.0 */
    0x3F803000u,  /* 1 + 3*2^-11: tie, up to 1 + 2^-9 */
    0xBF801000u,  /* -(1 + 2^-11): tie, to -1.0 */
    0x3F801001u,  /* just above a tie: up to 1 + 2^-10 */
    0x477FF000u,  /* 65520: tie between 65504 and 2^16: to +Inf */
    0x33000000u,  /* 2^-25: tie between 0 and 2^-24: to 0 */
    0x33400000u,  /* 1.5*2^-25: above that tie: to 2^-24 */
    0x33C00000u,  /* 1.5*2^-24: subnormal tie, up to 2^-23 */
    0x34200000u,  /* 2.5*2^-24: subnormal tie, down to 2^-23 */
    0x387FE000u,  /* 2^-14 - 2^-25: tie, up to the smallest normal */
    /* bf16 ties and near-ties: */
    0x3F808000u,  /* tie, down to 0x3F80 */
    0x3F818000u,  /* tie, up to 0x3F82 */
    0xBF808000u,  /* tie, to 0xBF80 */
    0x3F808001u,  /* just above a tie: up to 0x3F81 */
    0x7F7F8000u,  /* tie above the largest finite bf16: to +Inf */
    0x00008000u,  /* tie between 0 and the smallest subnormal: to 0 */
    0x00018000u,  /* subnormal tie: up to 0x0002 */
};

void gm_special_list(tc_float_type ft, const uint32_t **v, size_t *n)
{
    switch (ft) {
    case TC_FT_FLOAT16:
        *v = gm_special_f16;
        *n = sizeof gm_special_f16 / sizeof gm_special_f16[0];
        return;
    case TC_FT_BFLOAT16:
        *v = gm_special_bf16;
        *n = sizeof gm_special_bf16 / sizeof gm_special_bf16[0];
        return;
    case TC_FT_FLOAT32:
        break;
    }
    *v = gm_special_f32;
    *n = sizeof gm_special_f32 / sizeof gm_special_f32[0];
}

float gm_value(const struct gm_tensor *t, uint64_t i)
{
    uint64_t z = gm_mix(t->key + (i + 1) * GM_PHI64);
    float x = (float)((int64_t)(z >> 40) - ((int64_t)1 << 23)) * 0x1p-23f;

    if (t->kind == GM_K_NORM && t->outlier_every > 0 && i % (uint64_t)t->outlier_every == 0)
        return (float)((1.0 + (double)x * (double)t->scale) * (double)t->outlier_gain);
    if (t->kind == GM_K_NORM)
        return (float)(1.0 + (double)x * (double)t->scale);
    return x * t->scale;
}

float gm_f32_of_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Little-endian F32 bytes of elements [e0, e0 + n) of t. */
static void gm_fill_f32(const struct gm_tensor *t, uint64_t e0, size_t n,
                        unsigned char *p)
{
    size_t k;

    for (k = 0; k < n; k++) {
        float f = gm_value(t, e0 + k);
        uint32_t u;
        memcpy(&u, &f, sizeof u);
        p[4 * k] = (unsigned char)(u & 0xFF);
        p[4 * k + 1] = (unsigned char)((u >> 8) & 0xFF);
        p[4 * k + 2] = (unsigned char)((u >> 16) & 0xFF);
        p[4 * k + 3] = (unsigned char)(u >> 24);
    }
}

/* Little-endian bytes of elements [e0, e0 + n) of t in dtype ft. For F16
 * and BF16 the F32 values go through scratch (GM_SCRATCH_ELEMS floats) and
 * tc_convert, which rounds exactly as tc_f32_to_f16 / tc_f32_to_bf16. */
void gm_fill(const struct gm_tensor *t, tc_float_type ft, uint64_t e0,
                    size_t n, unsigned char *p, unsigned char *scratch)
{
    size_t k;

    if (ft == TC_FT_FLOAT32) {
        gm_fill_f32(t, e0, n, p);
    } else {
        tc_dtype dt = tc_float_type_dtype(ft);
        for (k = 0; k < n; k += GM_SCRATCH_ELEMS) {
            size_t m = n - k < GM_SCRATCH_ELEMS ? n - k : GM_SCRATCH_ELEMS;
            gm_fill_f32(t, e0 + k, m, scratch);
            tc_convert(p + 2 * k, dt, scratch, TC_DT_F32, m);
        }
    }
    if (t->special) {
        const uint32_t *sv;
        size_t ns;
        gm_special_list(ft, &sv, &ns);
        if (ns > t->nelem)
            ns = (size_t)t->nelem;
        for (k = 0; k < n && e0 + k < ns; k++) {
            uint32_t u = sv[e0 + k];
            uint16_t h;
            switch (ft) {
            case TC_FT_FLOAT16:
                h = tc_f32_to_f16(gm_f32_of_bits(u));
                p[2 * k] = (unsigned char)(h & 0xFF);
                p[2 * k + 1] = (unsigned char)(h >> 8);
                break;
            case TC_FT_BFLOAT16:
                h = tc_f32_to_bf16(gm_f32_of_bits(u));
                p[2 * k] = (unsigned char)(h & 0xFF);
                p[2 * k + 1] = (unsigned char)(h >> 8);
                break;
            case TC_FT_FLOAT32:
                p[4 * k] = (unsigned char)(u & 0xFF);
                p[4 * k + 1] = (unsigned char)((u >> 8) & 0xFF);
                p[4 * k + 2] = (unsigned char)((u >> 16) & 0xFF);
                p[4 * k + 3] = (unsigned char)(u >> 24);
                break;
            }
        }
    }
}
