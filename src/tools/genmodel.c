/* genmodel.c: trtconv-genmodel, a deterministic generator of Hugging Face
 * LLaMA / Mistral checkpoint directories of any shape (docs/genmodel.md).
 *
 * Output (DIR = --out):
 *   DIR/config.json                      transformers 4 or 5 style, indent 2,
 *                                        keys sorted (json.dumps(indent=2,
 *                                        sort_keys=True) + "\n");
 *   DIR/model.safetensors                with --shards 1, or
 *   DIR/model-0000k-of-0000N.safetensors with --shards N > 1, plus
 *   DIR/model.safetensors.index.json     {"metadata":{"total_size":T},
 *                                         "weight_map":{name:file}}.
 * Safetensors files follow st_writer.h (no __metadata__).
 *
 * Values: element i of tensor `name` is a pure function of (seed, name, i):
 *   key = mix(seed ^ mix(fnv1a64(name)));  z = mix(key + (i + 1) * PHI64);
 *   x   = ((int64_t)(z >> 40) - 2^23) * 2^-23        in [-1, 1), exact;
 *   linear weight: x * (float)(1/sqrt(in_features));  embedding: x * 0.05f;
 *   bias: x * 0.01f;  norm weight: (float)(1.0 + (double)x * (double)0.05f)
 * (the double product is exact, so FMA contraction cannot change it),
 * all in binary32/binary64 IEEE arithmetic; then
 * converted to the output dtype by tc_convert (the rounding of
 * tc_f32_to_f16 / tc_f32_to_bf16). --special_values then overwrite the first
 * elements of two tensors (gm_special_*). Each file is filled in 4 MiB
 * chunks by several threads with pwrite; the bytes do not depend on the
 * thread count or the order of the chunks. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "trtconv/core/dtype.h"
#include "trtconv/core/log.h"
#include "trtconv/formats/st_writer.h"
#include "trtconv/core/status.h"
#include "trtconv/formats/torchwrite.h"
#include "trtconv/formats/zipread.h"

/* ------------------------------------------------------------------ */
/* Options                                                              */

#define GM_CHUNK_BYTES ((size_t)4 << 20)  /* bytes per generated chunk */
#define GM_SCRATCH_ELEMS ((size_t)16384)  /* F32 staging block, 64 KiB */
#define GM_MAX_DIM ((int64_t)1 << 31)     /* bound of every dimension */
#define GM_MAX_TOTAL ((uint64_t)1 << 50)  /* bound of the model size */
#define GM_MAX_THREADS 256
#define GM_NAME_MAX 128

enum gm_arch { GM_ARCH_LLAMA, GM_ARCH_MISTRAL };
enum gm_style { GM_STYLE_HF4, GM_STYLE_HF5 };
enum gm_rope { GM_ROPE_NONE, GM_ROPE_LINEAR, GM_ROPE_DYNAMIC, GM_ROPE_LLAMA3 };
enum gm_format { GM_FMT_SAFETENSORS, GM_FMT_BIN, GM_FMT_META };

struct gm_opts {
    const char *out;
    int64_t layers, hidden, heads, kv_heads, head_dim, intermediate, vocab;
    int64_t shards, max_pos, threads, seed, mp, multiple_of;
    enum gm_format format;
    tc_float_type ft;
    int tied, attention_bias, special_values;
    enum gm_arch arch;
    enum gm_style style;
    enum gm_rope rope;
    double rope_theta, rms_norm_eps;
};

enum gm_opt_id {
    OPT_OUT = 256, OPT_LAYERS, OPT_HIDDEN, OPT_HEADS, OPT_KV_HEADS, OPT_HEAD_DIM,
    OPT_INTERMEDIATE, OPT_VOCAB, OPT_DTYPE, OPT_SHARDS, OPT_TIED,
    OPT_ATTENTION_BIAS, OPT_ARCH, OPT_CONFIG_STYLE, OPT_ROPE_THETA,
    OPT_ROPE_SCALING, OPT_MAX_POS, OPT_RMS_NORM_EPS, OPT_SEED,
    OPT_SPECIAL_VALUES, OPT_THREADS, OPT_FORMAT, OPT_MP, OPT_MULTIPLE_OF, OPT_HELP
};

static const struct option gm_long_opts[] = {
    { "out", required_argument, NULL, OPT_OUT },
    { "layers", required_argument, NULL, OPT_LAYERS },
    { "hidden", required_argument, NULL, OPT_HIDDEN },
    { "heads", required_argument, NULL, OPT_HEADS },
    { "kv_heads", required_argument, NULL, OPT_KV_HEADS },
    { "head_dim", required_argument, NULL, OPT_HEAD_DIM },
    { "intermediate", required_argument, NULL, OPT_INTERMEDIATE },
    { "vocab", required_argument, NULL, OPT_VOCAB },
    { "dtype", required_argument, NULL, OPT_DTYPE },
    { "shards", required_argument, NULL, OPT_SHARDS },
    { "tied", no_argument, NULL, OPT_TIED },
    { "attention_bias", no_argument, NULL, OPT_ATTENTION_BIAS },
    { "arch", required_argument, NULL, OPT_ARCH },
    { "config_style", required_argument, NULL, OPT_CONFIG_STYLE },
    { "rope_theta", required_argument, NULL, OPT_ROPE_THETA },
    { "rope_scaling", required_argument, NULL, OPT_ROPE_SCALING },
    { "max_pos", required_argument, NULL, OPT_MAX_POS },
    { "rms_norm_eps", required_argument, NULL, OPT_RMS_NORM_EPS },
    { "seed", required_argument, NULL, OPT_SEED },
    { "special_values", no_argument, NULL, OPT_SPECIAL_VALUES },
    { "threads", required_argument, NULL, OPT_THREADS },
    { "format", required_argument, NULL, OPT_FORMAT },
    { "mp", required_argument, NULL, OPT_MP },
    { "multiple_of", required_argument, NULL, OPT_MULTIPLE_OF },
    { "help", no_argument, NULL, OPT_HELP },
    { NULL, 0, NULL, 0 }
};

static void gm_usage(FILE *f)
{
    fputs(
"usage: trtconv-genmodel --out DIR [options]\n"
"Write a deterministic Hugging Face LLaMA/Mistral checkpoint to DIR.\n"
"\n"
"  --out DIR              output directory (created if missing)\n"
"  --layers N             num_hidden_layers (default 2)\n"
"  --hidden N             hidden_size (default 128)\n"
"  --heads N              num_attention_heads (default 4)\n"
"  --kv_heads N           num_key_value_heads (default = heads)\n"
"  --head_dim N           head_dim (default = hidden / heads)\n"
"  --intermediate N       intermediate_size (default 256)\n"
"  --vocab N              vocab_size, >= 3 (default 512)\n"
"  --dtype T              float16 | bfloat16 | float32 (default float16)\n"
"  --shards N             number of safetensors files (default 1)\n"
"  --tied                 tie_word_embeddings: no lm_head.weight\n"
"  --attention_bias       q/k/v projection biases\n"
"  --arch A               llama | mistral (default llama)\n"
"  --config_style S       hf4 | hf5 (default hf5)\n"
"  --rope_theta X         rope theta (default 10000)\n"
"  --rope_scaling S       none | linear | dynamic | llama3 (default none)\n"
"  --max_pos N            max_position_embeddings (default 2048)\n"
"  --rms_norm_eps X       rms_norm_eps (default 1e-5)\n"
"  --seed N               value seed, 0 .. 2^63-1 (default 0)\n"
"  --special_values       put Inf, NaN, -0, extremes (and rounding ties for\n"
"                         float32) first in layer 0 q_proj and embed_tokens\n"
"  --threads N            generator threads (default: online CPUs, max 8);\n"
"                         the output does not depend on it\n"
"  --format F             safetensors | bin (pytorch_model*.bin, torch.save\n"
"                         layout) | meta (params.json + consolidated.NN.pth)\n"
"                         (default safetensors)\n"
"  --mp N                 meta: model-parallel shards (default 1)\n"
"  --multiple_of N        meta: params.json multiple_of (default 256)\n"
"  --help                 this text\n"
"\n"
"Exit codes: 0 ok, 2 usage, 4 I/O, 7 internal.\n", f);
}

/* Strict integer: decimal digits with an optional '-', nothing else. */
static tc_status gm_parse_int(const char *opt, const char *s, int64_t lo,
                              int64_t hi, int64_t *out)
{
    char *end = NULL;
    long long v;

    if (!((s[0] >= '0' && s[0] <= '9') || s[0] == '-'))
        goto bad;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        goto bad;
    *out = (int64_t)v;
    return TC_OK;
bad:
    return tc_fail(TC_E_USAGE, "--%s: '%s' is not an integer in [%lld, %lld]",
                   opt, s, (long long)lo, (long long)hi);
}

/* Strict positive finite real number. */
static tc_status gm_parse_pos_double(const char *opt, const char *s,
                                     double *out)
{
    char *end = NULL;
    double v;

    if (!((s[0] >= '0' && s[0] <= '9') || s[0] == '.'))
        goto bad;
    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || !(v > 0.0))
        goto bad;
    *out = v;
    return TC_OK;
bad:
    return tc_fail(TC_E_USAGE, "--%s: '%s' is not a positive finite number",
                   opt, s);
}

static tc_status gm_parse_args(int argc, char **argv, struct gm_opts *o,
                               int *help)
{
    tc_status st = TC_OK;
    long ncpu;
    int c;

    memset(o, 0, sizeof *o);
    o->layers = 2;
    o->hidden = 128;
    o->heads = 4;
    o->kv_heads = -1;
    o->head_dim = -1;
    o->intermediate = 256;
    o->vocab = 512;
    o->shards = 1;
    o->max_pos = 2048;
    o->ft = TC_FT_FLOAT16;
    o->arch = GM_ARCH_LLAMA;
    o->style = GM_STYLE_HF5;
    o->rope = GM_ROPE_NONE;
    o->rope_theta = 10000.0;
    o->rms_norm_eps = 1e-5;
    o->mp = 1;
    o->multiple_of = 256;
    o->format = GM_FMT_SAFETENSORS;
    ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    o->threads = ncpu < 1 ? 1 : ncpu > 8 ? 8 : ncpu;
    *help = 0;

    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":", gm_long_opts, NULL)) != -1) {
        const char *a = optarg;
        switch (c) {
        case OPT_OUT:
            if (!a[0])
                return tc_fail(TC_E_USAGE, "--out: empty path");
            o->out = a;
            break;
        case OPT_LAYERS:
            st = gm_parse_int("layers", a, 1, 100000, &o->layers);
            break;
        case OPT_HIDDEN:
            st = gm_parse_int("hidden", a, 1, GM_MAX_DIM, &o->hidden);
            break;
        case OPT_HEADS:
            st = gm_parse_int("heads", a, 1, GM_MAX_DIM, &o->heads);
            break;
        case OPT_KV_HEADS:
            st = gm_parse_int("kv_heads", a, 1, GM_MAX_DIM, &o->kv_heads);
            break;
        case OPT_HEAD_DIM:
            st = gm_parse_int("head_dim", a, 1, GM_MAX_DIM, &o->head_dim);
            break;
        case OPT_INTERMEDIATE:
            st = gm_parse_int("intermediate", a, 1, GM_MAX_DIM,
                              &o->intermediate);
            break;
        case OPT_VOCAB:
            st = gm_parse_int("vocab", a, 3, GM_MAX_DIM, &o->vocab);
            break;
        case OPT_DTYPE:
            if (tc_float_type_parse(a, &o->ft) != 0)
                st = tc_fail(TC_E_USAGE, "--dtype: '%s' is not float16, "
                             "bfloat16 or float32", a);
            break;
        case OPT_SHARDS:
            st = gm_parse_int("shards", a, 1, 99999, &o->shards);
            break;
        case OPT_TIED:
            o->tied = 1;
            break;
        case OPT_ATTENTION_BIAS:
            o->attention_bias = 1;
            break;
        case OPT_ARCH:
            if (strcmp(a, "llama") == 0)
                o->arch = GM_ARCH_LLAMA;
            else if (strcmp(a, "mistral") == 0)
                o->arch = GM_ARCH_MISTRAL;
            else
                st = tc_fail(TC_E_USAGE, "--arch: '%s' is not llama or "
                             "mistral", a);
            break;
        case OPT_CONFIG_STYLE:
            if (strcmp(a, "hf4") == 0)
                o->style = GM_STYLE_HF4;
            else if (strcmp(a, "hf5") == 0)
                o->style = GM_STYLE_HF5;
            else
                st = tc_fail(TC_E_USAGE, "--config_style: '%s' is not hf4 "
                             "or hf5", a);
            break;
        case OPT_ROPE_THETA:
            st = gm_parse_pos_double("rope_theta", a, &o->rope_theta);
            break;
        case OPT_ROPE_SCALING:
            if (strcmp(a, "none") == 0)
                o->rope = GM_ROPE_NONE;
            else if (strcmp(a, "linear") == 0)
                o->rope = GM_ROPE_LINEAR;
            else if (strcmp(a, "dynamic") == 0)
                o->rope = GM_ROPE_DYNAMIC;
            else if (strcmp(a, "llama3") == 0)
                o->rope = GM_ROPE_LLAMA3;
            else
                st = tc_fail(TC_E_USAGE, "--rope_scaling: '%s' is not none, "
                             "linear, dynamic or llama3", a);
            break;
        case OPT_MAX_POS:
            st = gm_parse_int("max_pos", a, 1, GM_MAX_DIM, &o->max_pos);
            break;
        case OPT_RMS_NORM_EPS:
            st = gm_parse_pos_double("rms_norm_eps", a, &o->rms_norm_eps);
            break;
        case OPT_SEED:
            st = gm_parse_int("seed", a, 0, INT64_MAX, &o->seed);
            break;
        case OPT_SPECIAL_VALUES:
            o->special_values = 1;
            break;
        case OPT_THREADS:
            st = gm_parse_int("threads", a, 1, GM_MAX_THREADS, &o->threads);
            break;
        case OPT_FORMAT:
            if (strcmp(a, "safetensors") == 0)
                o->format = GM_FMT_SAFETENSORS;
            else if (strcmp(a, "bin") == 0)
                o->format = GM_FMT_BIN;
            else if (strcmp(a, "meta") == 0)
                o->format = GM_FMT_META;
            else
                st = tc_fail(TC_E_USAGE, "--format: '%s' is not safetensors, "
                             "bin or meta", a);
            break;
        case OPT_MP:
            st = gm_parse_int("mp", a, 1, 64, &o->mp);
            break;
        case OPT_MULTIPLE_OF:
            st = gm_parse_int("multiple_of", a, 1, GM_MAX_DIM, &o->multiple_of);
            break;
        case OPT_HELP:
            *help = 1;
            return TC_OK;
        case ':':
            return tc_fail(TC_E_USAGE, "%s: missing argument",
                           argv[optind - 1]);
        default:
            return tc_fail(TC_E_USAGE, "unknown option '%s'",
                           argv[optind - 1]);
        }
        if (st != TC_OK)
            return st;
    }
    if (optind < argc)
        return tc_fail(TC_E_USAGE, "unexpected argument '%s'", argv[optind]);
    if (!o->out)
        return tc_fail(TC_E_USAGE, "--out is required");

    /* Cross-option checks. */
    if (o->kv_heads < 0)
        o->kv_heads = o->heads;
    if (o->kv_heads > o->heads || o->heads % o->kv_heads != 0)
        return tc_fail(TC_E_USAGE, "--kv_heads %lld must divide --heads %lld",
                       (long long)o->kv_heads, (long long)o->heads);
    if (o->head_dim < 0) {
        if (o->hidden % o->heads != 0)
            return tc_fail(TC_E_USAGE, "--hidden %lld is not a multiple of "
                           "--heads %lld; give --head_dim",
                           (long long)o->hidden, (long long)o->heads);
        o->head_dim = o->hidden / o->heads;
    }
    if (o->format != GM_FMT_META && o->mp != 1)
        return tc_fail(TC_E_USAGE, "--mp needs --format meta");
    if (o->format == GM_FMT_META) {
        /* What a Meta checkpoint can express (docs/genmodel.md). */
        if (o->tied || o->attention_bias || o->arch != GM_ARCH_LLAMA ||
            o->head_dim * o->heads != o->hidden || o->shards != 1)
            return tc_fail(TC_E_USAGE, "--format meta: no --tied, --attention_bias, "
                           "--arch mistral, --shards or a head_dim other than "
                           "hidden / heads (Meta checkpoints have none of these)");
        if (o->rope == GM_ROPE_LINEAR || o->rope == GM_ROPE_DYNAMIC)
            return tc_fail(TC_E_USAGE, "--format meta: --rope_scaling may only be "
                           "none or llama3 (use_scaled_rope)");
        if (o->kv_heads % o->mp || o->intermediate % o->mp ||
            o->vocab % o->mp || o->hidden % o->mp)
            return tc_fail(TC_E_USAGE, "--mp %lld must divide --kv_heads, --heads, "
                           "--intermediate, --vocab and --hidden", (long long)o->mp);
    }
    return TC_OK;
}

/* ------------------------------------------------------------------ */
/* Tensor list                                                          */

enum gm_kind { GM_K_EMBED, GM_K_LINEAR, GM_K_NORM, GM_K_BIAS };

struct gm_tensor {
    char name[GM_NAME_MAX];
    enum gm_kind kind;
    int ndim;
    int64_t shape[2];
    uint64_t nelem;
    uint64_t nbytes;
    uint64_t key;      /* per-tensor hash key */
    float scale;       /* half-width of the value range (see file top) */
    int special;       /* receives --special_values */
    int shard;         /* 0-based file index */
};

#define GM_PHI64 0x9E3779B97F4A7C15ULL

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

struct gm_model {
    struct gm_tensor *t;   /* [n], HF state_dict order */
    size_t n;
    uint64_t total_bytes;
    size_t *first;         /* [shards + 1]: shard s holds t[first[s]..first[s+1]) */
};

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
    t->special = o->special_values &&
        (strcmp(t->name, "model.embed_tokens.weight") == 0 ||
         strcmp(t->name, "model.layers.0.self_attn.q_proj.weight") == 0);
    m->n++;
    return TC_OK;
}

/* Build the tensor list in HF state_dict order and assign shards. */
static tc_status gm_model_build(const struct gm_opts *o, struct gm_model *m)
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
    cap = 3 + (size_t)o->layers * 12;
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
        GM_ADD_L(GM_K_LINEAR, I, H, "mlp.gate_proj.weight");
        GM_ADD_L(GM_K_LINEAR, I, H, "mlp.up_proj.weight");
        GM_ADD_L(GM_K_LINEAR, H, I, "mlp.down_proj.weight");
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

static void gm_special_list(tc_float_type ft, const uint32_t **v, size_t *n)
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

static float gm_value(const struct gm_tensor *t, uint64_t i)
{
    uint64_t z = gm_mix(t->key + (i + 1) * GM_PHI64);
    float x = (float)((int64_t)(z >> 40) - ((int64_t)1 << 23)) * 0x1p-23f;

    if (t->kind == GM_K_NORM)
        return (float)(1.0 + (double)x * (double)t->scale);
    return x * t->scale;
}

static float gm_f32_of_bits(uint32_t u)
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
static void gm_fill(const struct gm_tensor *t, tc_float_type ft, uint64_t e0,
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

/* ------------------------------------------------------------------ */
/* Files                                                                */

static tc_status gm_pwrite_all(int fd, const void *buf, size_t len,
                               uint64_t off, const char *path)
{
    const unsigned char *p = buf;

    while (len > 0) {
        ssize_t w = pwrite(fd, p, len, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return tc_fail(TC_E_IO, "%s: write at offset %llu: %s", path,
                           (unsigned long long)off, strerror(errno));
        }
        if (w == 0)
            return tc_fail(TC_E_IO, "%s: write at offset %llu returned 0",
                           path, (unsigned long long)off);
        p += w;
        len -= (size_t)w;
        off += (uint64_t)w;
    }
    return TC_OK;
}

/* Write a whole small file (config, index) from a NUL-terminated string. */
static tc_status gm_write_text(const char *path, const char *text)
{
    tc_status st = TC_OK;
    int fd = -1;

    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        st = tc_fail(TC_E_IO, "%s: open: %s", path, strerror(errno));
        goto done;
    }
    st = gm_pwrite_all(fd, text, strlen(text), 0, path);
    if (st != TC_OK)
        goto done;
    if (close(fd) != 0) {
        fd = -1;
        st = tc_fail(TC_E_IO, "%s: close: %s", path, strerror(errno));
        goto done;
    }
    fd = -1;
done:
    if (fd >= 0)
        close(fd);
    return st;
}

static tc_status gm_join(char *buf, size_t cap, const char *dir,
                         const char *name)
{
    int len = snprintf(buf, cap, "%s/%s", dir, name);
    if (len < 0 || (size_t)len >= cap)
        return tc_fail(TC_E_USAGE, "--out: path too long: %s/%s", dir, name);
    return TC_OK;
}

/* mkdir -p */
static tc_status gm_mkdirs(const char *dir)
{
    char buf[4096];
    size_t len = strlen(dir), k;
    struct stat sb;

    if (len >= sizeof buf)
        return tc_fail(TC_E_USAGE, "--out: path too long: %s", dir);
    memcpy(buf, dir, len + 1);
    for (k = 1; k <= len; k++) {
        if (buf[k] != '/' && buf[k] != '\0')
            continue;
        buf[k] = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return tc_fail(TC_E_IO, "%s: mkdir: %s", buf, strerror(errno));
        buf[k] = k == len ? '\0' : '/';
    }
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return tc_fail(TC_E_IO, "%s: not a directory", dir);
    return TC_OK;
}

/* A growable string for the JSON files. */
struct gm_buf {
    char *p;
    size_t len, cap;
    int oom;
};

static void gm_buf_printf(struct gm_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void gm_buf_printf(struct gm_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->oom)
        return;
    for (;;) {
        size_t room = b->cap - b->len;
        va_start(ap, fmt);
        n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        {
            size_t ncap = b->cap ? b->cap * 2 : 4096;
            char *np;
            while (ncap - b->len <= (size_t)n)
                ncap *= 2;
            np = realloc(b->p, ncap);
            if (!np) {
                b->oom = 1;
                return;
            }
            b->p = np;
            b->cap = ncap;
        }
    }
}

/* Python repr() of a float: shortest round-trip digits, "1e-05", "10000.0".
 * out must hold 64 bytes; v must be finite. */
static void gm_fmt_float(double v, char out[64])
{
    char tmp[40];
    char *e;
    int prec, exp10, len = 0;

    for (prec = 1; prec <= 17; prec++) {
        len = snprintf(tmp, sizeof tmp, "%.*e", prec - 1, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    if (len < 0 || (size_t)len >= sizeof tmp || !(e = strchr(tmp, 'e'))) {
        (void)snprintf(out, 64, "%.17g", v); /* not reached for finite v */
        return;
    }
    exp10 = (int)strtol(e + 1, NULL, 10);
    if (exp10 < -4 || exp10 >= 16) {
        /* %e's mantissa digits; Python also writes >= 2 exponent digits */
        *e = '\0';
        len = snprintf(out, 64, "%se%c%02d", tmp, exp10 < 0 ? '-' : '+',
                       exp10 < 0 ? -exp10 : exp10);
    } else {
        int dec = prec - 1 - exp10;
        len = snprintf(out, 64, "%.*f", dec > 0 ? dec : 0, v);
        if (len > 0 && len < 62 && !strchr(out, '.'))
            memcpy(out + len, ".0", 3);
    }
}

static tc_status gm_write_config(const struct gm_opts *o, const char *path)
{
    struct gm_buf b = { NULL, 0, 0, 0 };
    tc_status st = TC_OK;
    int mistral = o->arch == GM_ARCH_MISTRAL, hf5 = o->style == GM_STYLE_HF5;
    const char *dtype = tc_float_type_name(o->ft);
    const char *rope_type = "default";
    double factor = 0.0;
    char theta[64], eps[64], fac[64];

    gm_fmt_float(o->rope_theta, theta);
    gm_fmt_float(o->rms_norm_eps, eps);
    switch (o->rope) {
    case GM_ROPE_NONE: break;
    case GM_ROPE_LINEAR: rope_type = "linear"; factor = 2.0; break;
    case GM_ROPE_DYNAMIC: rope_type = "dynamic"; factor = 2.0; break;
    case GM_ROPE_LLAMA3: rope_type = "llama3"; factor = 8.0; break;
    }
    gm_fmt_float(factor, fac);

    gm_buf_printf(&b, "{\n  \"architectures\": [\n    \"%s\"\n  ],\n",
                  mistral ? "MistralForCausalLM" : "LlamaForCausalLM");
    gm_buf_printf(&b, "  \"attention_bias\": %s,\n",
                  o->attention_bias ? "true" : "false");
    gm_buf_printf(&b, "  \"attention_dropout\": 0.0,\n");
    gm_buf_printf(&b, "  \"bos_token_id\": 1,\n");
    if (hf5)
        gm_buf_printf(&b, "  \"dtype\": \"%s\",\n", dtype);
    gm_buf_printf(&b, "  \"eos_token_id\": 2,\n");
    gm_buf_printf(&b, "  \"head_dim\": %lld,\n", (long long)o->head_dim);
    gm_buf_printf(&b, "  \"hidden_act\": \"silu\",\n");
    gm_buf_printf(&b, "  \"hidden_size\": %lld,\n", (long long)o->hidden);
    gm_buf_printf(&b, "  \"initializer_range\": 0.02,\n");
    gm_buf_printf(&b, "  \"intermediate_size\": %lld,\n",
                  (long long)o->intermediate);
    gm_buf_printf(&b, "  \"max_position_embeddings\": %lld,\n",
                  (long long)o->max_pos);
    gm_buf_printf(&b, "  \"mlp_bias\": false,\n");
    gm_buf_printf(&b, "  \"model_type\": \"%s\",\n",
                  mistral ? "mistral" : "llama");
    gm_buf_printf(&b, "  \"num_attention_heads\": %lld,\n",
                  (long long)o->heads);
    gm_buf_printf(&b, "  \"num_hidden_layers\": %lld,\n",
                  (long long)o->layers);
    gm_buf_printf(&b, "  \"num_key_value_heads\": %lld,\n",
                  (long long)o->kv_heads);
    if (hf5)
        gm_buf_printf(&b, "  \"pad_token_id\": null,\n");
    gm_buf_printf(&b, "  \"pretraining_tp\": 1,\n");
    gm_buf_printf(&b, "  \"rms_norm_eps\": %s,\n", eps);
    if (hf5) {
        gm_buf_printf(&b, "  \"rope_parameters\": {\n");
        if (o->rope != GM_ROPE_NONE)
            gm_buf_printf(&b, "    \"factor\": %s,\n", fac);
        if (o->rope == GM_ROPE_LLAMA3)
            gm_buf_printf(&b, "    \"high_freq_factor\": 4.0,\n"
                          "    \"low_freq_factor\": 1.0,\n"
                          "    \"original_max_position_embeddings\": 8192,\n");
        gm_buf_printf(&b, "    \"rope_theta\": %s,\n", theta);
        gm_buf_printf(&b, "    \"rope_type\": \"%s\"\n  },\n", rope_type);
    } else {
        switch (o->rope) {
        case GM_ROPE_NONE:
            gm_buf_printf(&b, "  \"rope_scaling\": null,\n");
            break;
        case GM_ROPE_LINEAR:
        case GM_ROPE_DYNAMIC:
            gm_buf_printf(&b, "  \"rope_scaling\": {\n    \"factor\": %s,\n"
                          "    \"type\": \"%s\"\n  },\n", fac, rope_type);
            break;
        case GM_ROPE_LLAMA3:
            gm_buf_printf(&b, "  \"rope_scaling\": {\n    \"factor\": %s,\n"
                          "    \"high_freq_factor\": 4.0,\n"
                          "    \"low_freq_factor\": 1.0,\n"
                          "    \"original_max_position_embeddings\": 8192,\n"
                          "    \"rope_type\": \"llama3\"\n  },\n", fac);
            break;
        }
        gm_buf_printf(&b, "  \"rope_theta\": %s,\n", theta);
    }
    if (mistral)
        gm_buf_printf(&b, "  \"sliding_window\": null,\n");
    gm_buf_printf(&b, "  \"tie_word_embeddings\": %s,\n",
                  o->tied ? "true" : "false");
    if (!hf5)
        gm_buf_printf(&b, "  \"torch_dtype\": \"%s\",\n", dtype);
    gm_buf_printf(&b, "  \"transformers_version\": \"%s\",\n",
                  hf5 ? "5.17.0" : "4.46.3");
    gm_buf_printf(&b, "  \"use_cache\": true,\n");
    gm_buf_printf(&b, "  \"vocab_size\": %lld\n}\n", (long long)o->vocab);
    if (b.oom) {
        st = tc_fail(TC_E_INTERNAL, "%s: out of memory", path);
        goto done;
    }
    st = gm_write_text(path, b.p);
done:
    free(b.p);
    return st;
}

static int gm_cmp_tensor_ptr(const void *a, const void *b)
{
    const struct gm_tensor *x = *(const struct gm_tensor *const *)a;
    const struct gm_tensor *y = *(const struct gm_tensor *const *)b;
    return strcmp(x->name, y->name);
}

static tc_status gm_write_index(const struct gm_model *m,
                                char (*fnames)[64], const char *path)
{
    struct gm_buf b = { NULL, 0, 0, 0 };
    const struct gm_tensor **sorted = NULL;
    tc_status st = TC_OK;
    size_t i;

    sorted = malloc(m->n * sizeof *sorted);
    if (!sorted) {
        st = tc_fail(TC_E_INTERNAL, "%s: out of memory", path);
        goto done;
    }
    for (i = 0; i < m->n; i++)
        sorted[i] = &m->t[i];
    qsort(sorted, m->n, sizeof *sorted, gm_cmp_tensor_ptr);
    gm_buf_printf(&b, "{\n  \"metadata\": {\n    \"total_size\": %llu\n  },\n"
                  "  \"weight_map\": {\n",
                  (unsigned long long)m->total_bytes);
    for (i = 0; i < m->n; i++)
        gm_buf_printf(&b, "    \"%s\": \"%s\"%s\n", sorted[i]->name,
                      fnames[sorted[i]->shard], i + 1 < m->n ? "," : "");
    gm_buf_printf(&b, "  }\n}\n");
    if (b.oom) {
        st = tc_fail(TC_E_INTERNAL, "%s: out of memory", path);
        goto done;
    }
    st = gm_write_text(path, b.p);
done:
    free(b.p);
    free(sorted);
    return st;
}

/* ------------------------------------------------------------------ */
/* Parallel fill of one safetensors file                                */

struct gm_job {
    const struct gm_tensor **spec;   /* [nt], file order */
    const tc_st_out_tensor *st;      /* [nt], file order */
    size_t nt;
    uint64_t *chunk_start;           /* [nt + 1], prefix sums of chunks */
    uint64_t elems_per_chunk;
    tc_float_type ft;
    int fd;
    const char *path;
    atomic_uint_fast64_t next;
    atomic_int failed;
};

struct gm_worker {
    pthread_t tid;
    struct gm_job *job;
    tc_status st;
};

static void *gm_worker_main(void *arg)
{
    struct gm_worker *w = arg;
    struct gm_job *j = w->job;
    uint64_t nchunks = j->chunk_start[j->nt];
    unsigned esize = tc_dtype_bits(tc_float_type_dtype(j->ft)) / 8;
    unsigned char *buf = malloc(GM_CHUNK_BYTES);
    unsigned char *scratch = malloc(GM_SCRATCH_ELEMS * 4);

    w->st = TC_OK;
    if (!buf || !scratch) {
        free(buf);
        free(scratch);
        w->st = tc_fail(TC_E_INTERNAL, "out of memory (chunk buffer)");
        atomic_store(&j->failed, 1);
        return NULL;
    }
    while (!atomic_load(&j->failed)) {
        uint64_t c = atomic_fetch_add(&j->next, 1);
        size_t lo = 0, hi = j->nt, ti;
        uint64_t e0, n;
        const struct gm_tensor *t;

        if (c >= nchunks)
            break;
        /* Largest ti with chunk_start[ti] <= c. */
        while (hi - lo > 1) {
            size_t mid = lo + (hi - lo) / 2;
            if (j->chunk_start[mid] <= c)
                lo = mid;
            else
                hi = mid;
        }
        ti = lo;
        t = j->spec[ti];
        e0 = (c - j->chunk_start[ti]) * j->elems_per_chunk;
        n = t->nelem - e0;
        if (n > j->elems_per_chunk)
            n = j->elems_per_chunk;
        gm_fill(t, j->ft, e0, (size_t)n, buf, scratch);
        w->st = gm_pwrite_all(j->fd, buf, (size_t)n * esize,
                              j->st[ti].file_offset + e0 * esize, j->path);
        if (w->st != TC_OK) {
            atomic_store(&j->failed, 1);
            break;
        }
    }
    free(scratch);
    free(buf);
    return NULL;
}

/* Size the file up front: real allocation where the file system has it
 * (early ENOSPC), else a sparse ftruncate. */
static tc_status gm_size_file(int fd, uint64_t size, const char *path)
{
    int r = fallocate(fd, 0, 0, (off_t)size);
    if (r != 0) {
        if (errno == ENOSPC || errno == EFBIG)
            return tc_fail(TC_E_IO, "%s: cannot allocate %llu bytes: %s",
                           path, (unsigned long long)size, strerror(errno));
        if (ftruncate(fd, (off_t)size) != 0)
            return tc_fail(TC_E_IO, "%s: ftruncate to %llu bytes: %s", path,
                           (unsigned long long)size, strerror(errno));
    }
    return TC_OK;
}

static tc_status gm_write_shard(const struct gm_opts *o, struct gm_model *m,
                                int shard, const char *path,
                                size_t *ntensors, uint64_t *fbytes)
{
    tc_status st = TC_OK;
    tc_st_out_tensor *ot = NULL;
    const struct gm_tensor **spec = NULL;
    struct gm_worker *w = NULL;
    struct gm_job job;
    char *prefix = NULL;
    size_t prefix_len = 0, nt = 0, i, k, nstarted = 0;
    uint64_t fsize = 0;
    unsigned esize = tc_dtype_bits(tc_float_type_dtype(o->ft)) / 8;
    int fd = -1;

    memset(&job, 0, sizeof job);
    nt = m->first[shard + 1] - m->first[shard];
    ot = calloc(nt, sizeof *ot);
    spec = calloc(nt, sizeof *spec);
    job.chunk_start = calloc(nt + 1, sizeof *job.chunk_start);
    w = calloc((size_t)o->threads, sizeof *w);
    if (!ot || !spec || !job.chunk_start || !w) {
        st = tc_fail(TC_E_INTERNAL, "%s: out of memory", path);
        goto done;
    }
    for (k = 0; k < nt; k++) {
        const struct gm_tensor *t = &m->t[m->first[shard] + k];
        ot[k].name = t->name;
        ot[k].dtype = tc_float_type_dtype(o->ft);
        ot[k].ndim = t->ndim;
        ot[k].shape[0] = t->shape[0];
        ot[k].shape[1] = t->shape[1];
    }
    st = tc_st_layout(ot, nt, &prefix, &prefix_len, &fsize);
    if (st != TC_OK)
        goto done;
    /* Map the sorted entries back to their specs: each name points at the
     * name member of an element of m->t. */
    for (k = 0; k < nt; k++) {
        size_t at = (size_t)(ot[k].name - (const char *)m->t);
        i = at / sizeof *m->t;
        if (ot[k].name < (const char *)m->t || i >= m->n ||
            ot[k].name != m->t[i].name) {
            st = tc_fail(TC_E_INTERNAL, "%s: lost tensor %s", path,
                         ot[k].name);
            goto done;
        }
        spec[k] = &m->t[i];
        if (ot[k].nbytes != spec[k]->nbytes) {
            st = tc_fail(TC_E_INTERNAL, "%s: %s: layout says %llu bytes, "
                         "expected %llu", path, ot[k].name,
                         (unsigned long long)ot[k].nbytes,
                         (unsigned long long)spec[k]->nbytes);
            goto done;
        }
    }

    job.spec = spec;
    job.st = ot;
    job.nt = nt;
    job.elems_per_chunk = GM_CHUNK_BYTES / esize;
    job.ft = o->ft;
    job.path = path;
    atomic_init(&job.next, 0);
    atomic_init(&job.failed, 0);
    for (k = 0; k < nt; k++)
        job.chunk_start[k + 1] = job.chunk_start[k] +
            (spec[k]->nelem + job.elems_per_chunk - 1) / job.elems_per_chunk;

    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        st = tc_fail(TC_E_IO, "%s: open: %s", path, strerror(errno));
        goto done;
    }
    job.fd = fd;
    st = gm_size_file(fd, fsize, path);
    if (st != TC_OK)
        goto done;
    st = gm_pwrite_all(fd, prefix, prefix_len, 0, path);
    if (st != TC_OK)
        goto done;

    /* Worker 0 is this thread; start the others. */
    for (k = 0; k < (size_t)o->threads; k++)
        w[k].job = &job;
    for (k = 1; k < (size_t)o->threads; k++) {
        if (job.chunk_start[nt] <= k)
            break;
        if (pthread_create(&w[k].tid, NULL, gm_worker_main, &w[k]) != 0) {
            st = tc_fail(TC_E_INTERNAL, "%s: pthread_create failed", path);
            atomic_store(&job.failed, 1);
            break;
        }
        nstarted = k;
    }
    gm_worker_main(&w[0]);
    for (k = 1; k <= nstarted; k++)
        pthread_join(w[k].tid, NULL);
    for (k = 0; k <= nstarted && st == TC_OK; k++)
        if (w[k].st != TC_OK)
            st = w[k].st;
    if (st != TC_OK)
        goto done;

    if (close(fd) != 0) {
        fd = -1;
        st = tc_fail(TC_E_IO, "%s: close: %s", path, strerror(errno));
        goto done;
    }
    fd = -1;
    *ntensors = nt;
    *fbytes = fsize;
done:
    if (fd >= 0)
        close(fd);
    free(prefix);
    free(w);
    free(job.chunk_start);
    free(spec);
    free(ot);
    return st;
}

/* ------------------------------------------------------------------ */
/* torch.save layout (--format bin / meta)                               */

/* One tensor of a torch file: its values are those of HF tensor src, at
 * HF element gm_src_index(f, k) for file element k. */
struct gm_ftensor {
    const struct gm_tensor *src;
    char name[GM_NAME_MAX];
    int ndim;
    int64_t shape[2];      /* this file's part */
    uint64_t nelem;
    int split;             /* -1 whole, 0 rows, 1 columns (Meta MP) */
    int64_t part, nparts;
    int64_t rope_d;        /* > 0: Meta's interleaved q/k rows */
};

/* Meta row m of head h (m = h*d + 2i + half) holds HF row h*d + half*d/2 + i:
 * the inverse of the permutation TensorRT-LLM's load_from_meta_llama and
 * transformers' convert_llama_weights_to_hf.py apply. */
static uint64_t gm_src_index(const struct gm_ftensor *f, uint64_t k)
{
    uint64_t cols = f->ndim == 2 ? (uint64_t)f->shape[1] : 1;
    uint64_t row = k / cols, col = k % cols;
    if (f->split == 0) {
        uint64_t m = (uint64_t)f->part * (uint64_t)f->shape[0] + row;
        if (f->rope_d > 0) {
            uint64_t d = (uint64_t)f->rope_d, h = m / d, j = m % d;
            m = h * d + (j % 2) * (d / 2) + j / 2;
        }
        return m * cols + col;
    }
    if (f->split == 1)
        return row * cols * (uint64_t)f->nparts + (uint64_t)f->part * cols + col;
    return k;
}

/* F32 value of HF element i of t, --special_values included. */
static float gm_value_special(const struct gm_tensor *t, tc_float_type ft, uint64_t i)
{
    if (t->special) {
        const uint32_t *sv;
        size_t ns;
        gm_special_list(ft, &sv, &ns);
        if (i < ns && i < t->nelem)
            return gm_f32_of_bits(sv[i]);
    }
    return gm_value(t, i);
}

static tc_status gm_write_torch_file(const struct gm_opts *o, const struct gm_ftensor *ft,
                                     size_t n, bool ordered, const char *path,
                                     const char *prefix, uint64_t *fbytes)
{
    tc_status st = TC_OK;
    tc_tw_tensor *tw = calloc(n ? n : 1, sizeof *tw);
    tc_zipw_entry *e = calloc(n + 3, sizeof *e);
    char (*names)[GM_NAME_MAX + 64] = calloc(n + 3, sizeof *names);
    unsigned char *pkl = NULL, *part = NULL, *chunk = NULL;
    float *f32 = NULL;
    size_t pkl_len = 0, part_len = 0;
    uint64_t cd = 0;
    int fd = -1;
    const tc_dtype dt = tc_float_type_dtype(o->ft);
    const unsigned es = tc_dtype_bits(dt) / 8;

    f32 = malloc(GM_SCRATCH_ELEMS * sizeof *f32);
    chunk = malloc(GM_SCRATCH_ELEMS * 4);
    if (!tw || !e || !names || !f32 || !chunk) {
        st = tc_fail(TC_E_INTERNAL, "%s: out of memory", path);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        tw[i].name = ft[i].name;
        tw[i].dtype = dt;
        tw[i].ndim = ft[i].ndim;
        tw[i].shape[0] = ft[i].shape[0];
        tw[i].shape[1] = ft[i].shape[1];
    }
    if ((st = tc_tw_pickle(tw, n, ordered, &pkl, &pkl_len)) != TC_OK)
        goto done;
    snprintf(names[0], sizeof names[0], "%s/data.pkl", prefix);
    e[0].size = pkl_len;
    e[0].crc32 = tc_crc32(0, pkl, pkl_len);
    snprintf(names[1], sizeof names[1], "%s/byteorder", prefix);
    e[1].size = 6;
    e[1].crc32 = tc_crc32(0, "little", 6);
    for (size_t i = 0; i < n; i++) {
        snprintf(names[2 + i], sizeof names[2 + i], "%s/data/%zu", prefix, i);
        e[2 + i].size = ft[i].nelem * es;
    }
    snprintf(names[n + 2], sizeof names[n + 2], "%s/version", prefix);
    e[n + 2].size = 2;
    e[n + 2].crc32 = tc_crc32(0, "3\n", 2);
    for (size_t i = 0; i < n + 3; i++)
        e[i].name = names[i];
    if ((st = tc_zipw_layout(e, n + 3, &cd)) != TC_OK)
        goto done;

    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        st = tc_fail(TC_E_IO, "%s: open: %s", path, strerror(errno));
        goto done;
    }
    if ((st = gm_pwrite_all(fd, pkl, pkl_len, e[0].data_offset, path)) != TC_OK ||
        (st = gm_pwrite_all(fd, "little", 6, e[1].data_offset, path)) != TC_OK ||
        (st = gm_pwrite_all(fd, "3\n", 2, e[n + 2].data_offset, path)) != TC_OK)
        goto done;
    /* Storages, in order, with their CRC computed as they are written. */
    for (size_t i = 0; i < n; i++) {
        uint32_t crc = 0;
        for (uint64_t k0 = 0; k0 < ft[i].nelem; k0 += GM_SCRATCH_ELEMS) {
            size_t m = ft[i].nelem - k0 < GM_SCRATCH_ELEMS ? (size_t)(ft[i].nelem - k0)
                                                            : GM_SCRATCH_ELEMS;
            for (size_t k = 0; k < m; k++)
                f32[k] = gm_value_special(ft[i].src, o->ft, gm_src_index(&ft[i], k0 + k));
            tc_convert(chunk, dt, f32, TC_DT_F32, m);
            crc = tc_crc32(crc, chunk, m * es);
            if ((st = gm_pwrite_all(fd, chunk, m * es, e[2 + i].data_offset + k0 * es,
                                    path)) != TC_OK)
                goto done;
        }
        e[2 + i].crc32 = crc;
    }
    for (size_t i = 0; i < n + 3; i++) {
        if ((st = tc_zipw_local(&e[i], &part, &part_len)) != TC_OK ||
            (st = gm_pwrite_all(fd, part, part_len, e[i].header_offset, path)) != TC_OK)
            goto done;
        free(part);
        part = NULL;
    }
    if ((st = tc_zipw_tail(e, n + 3, cd, &part, &part_len)) != TC_OK ||
        (st = gm_pwrite_all(fd, part, part_len, cd, path)) != TC_OK)
        goto done;
    if (close(fd) != 0) {
        fd = -1;
        st = tc_fail(TC_E_IO, "%s: close: %s", path, strerror(errno));
        goto done;
    }
    fd = -1;
    *fbytes = cd + part_len;
done:
    if (fd >= 0)
        close(fd);
    free(part);
    free(chunk);
    free(f32);
    free(pkl);
    free(names);
    free(e);
    free(tw);
    return st;
}

/* pytorch_model.bin, or pytorch_model-0000k-of-0000N.bin plus
 * pytorch_model.bin.index.json: the HF tensors as they are. */
static tc_status gm_write_bin(const struct gm_opts *o, struct gm_model *m, char (*fnames)[64],
                              size_t *total_tensors, uint64_t *total_bytes)
{
    tc_status st = TC_OK;
    char path[4096], prefix[64];
    struct gm_ftensor *ft = calloc(m->n, sizeof *ft);
    if (!ft)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    for (int64_t s = 0; s < o->shards && st == TC_OK; s++) {
        size_t n = 0;
        for (size_t i = m->first[s]; i < m->first[s + 1]; i++, n++) {
            const struct gm_tensor *t = &m->t[i];
            ft[n].src = t;
            memcpy(ft[n].name, t->name, sizeof ft[n].name);
            ft[n].ndim = t->ndim;
            ft[n].shape[0] = t->shape[0];
            ft[n].shape[1] = t->shape[1];
            ft[n].nelem = t->nelem;
            ft[n].split = -1;
        }
        /* torch.save names the archive directory after the file's stem. */
        snprintf(prefix, sizeof prefix, "%.*s", (int)(strlen(fnames[s]) - 4), fnames[s]);
        uint64_t fb = 0;
        st = gm_join(path, sizeof path, o->out, fnames[s]);
        if (st == TC_OK)
            st = gm_write_torch_file(o, ft, n, true, path, prefix, &fb);
        if (st == TC_OK) {
            printf("%s: %zu tensors, %llu bytes\n", fnames[s], n, (unsigned long long)fb);
            *total_tensors += n;
            *total_bytes += fb;
        }
    }
    free(ft);
    return st;
}

static tc_status gm_write_params(const struct gm_opts *o, const char *path)
{
    struct gm_buf b = { NULL, 0, 0, 0 };
    char eps[64], theta[64];
    tc_status st;
    gm_fmt_float(o->rms_norm_eps, eps);
    gm_fmt_float(o->rope_theta, theta);
    /* TensorRT-LLM's from_meta_ckpt: multiple_of * ceil(int(8 dim / 3) /
     * multiple_of) unless hidden_dim is given. */
    int64_t x = (int64_t)((double)(o->hidden * 8) / 3.0);
    int64_t formula = o->multiple_of * ((x + o->multiple_of - 1) / o->multiple_of);
    gm_buf_printf(&b, "{\"dim\": %lld, \"multiple_of\": %lld, ", (long long)o->hidden,
                  (long long)o->multiple_of);
    if (formula != o->intermediate)
        gm_buf_printf(&b, "\"hidden_dim\": %lld, ", (long long)o->intermediate);
    gm_buf_printf(&b, "\"n_heads\": %lld, \"n_kv_heads\": %lld, \"n_layers\": %lld, "
                  "\"norm_eps\": %s, \"rope_theta\": %s, ", (long long)o->heads,
                  (long long)o->kv_heads, (long long)o->layers, eps, theta);
    if (o->rope == GM_ROPE_LLAMA3)
        gm_buf_printf(&b, "\"use_scaled_rope\": true, ");
    gm_buf_printf(&b, "\"vocab_size\": %lld}\n", (long long)o->vocab);
    if (b.oom)
        st = tc_fail(TC_E_INTERNAL, "%s: out of memory", path);
    else
        st = gm_write_text(path, b.p);
    free(b.p);
    return st;
}

/* params.json + consolidated.NN.pth for NN < --mp, in Meta's state_dict
 * order and names, each tensor split along its model-parallel dimension. */
static tc_status gm_write_meta(const struct gm_opts *o, struct gm_model *m,
                               size_t *total_tensors, uint64_t *total_bytes)
{
    static const struct { const char *hf, *meta; int split; int rope; } map[] = {
        { "self_attn.q_proj.weight", "attention.wq.weight", 0, 1 },
        { "self_attn.k_proj.weight", "attention.wk.weight", 0, 1 },
        { "self_attn.v_proj.weight", "attention.wv.weight", 0, 0 },
        { "self_attn.o_proj.weight", "attention.wo.weight", 1, 0 },
        { "mlp.gate_proj.weight", "feed_forward.w1.weight", 0, 0 },
        { "mlp.down_proj.weight", "feed_forward.w2.weight", 1, 0 },
        { "mlp.up_proj.weight", "feed_forward.w3.weight", 0, 0 },
        { "input_layernorm.weight", "attention_norm.weight", -1, 0 },
        { "post_attention_layernorm.weight", "ffn_norm.weight", -1, 0 },
    };
    tc_status st = TC_OK;
    char path[4096], fname[64], prefix[64], hfname[GM_NAME_MAX];
    size_t cap = 3 + (size_t)o->layers * 9;
    struct gm_ftensor *ft = calloc(cap, sizeof *ft);
    if (!ft)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    if ((st = gm_join(path, sizeof path, o->out, "params.json")) != TC_OK ||
        (st = gm_write_params(o, path)) != TC_OK)
        goto done;
    for (int64_t p = 0; p < o->mp; p++) {
        size_t n = 0;
#define GM_FT(hf_, meta_, split_, rope_)                                         \
        do {                                                                    \
            const struct gm_tensor *t_ = NULL;                                  \
            for (size_t i_ = 0; i_ < m->n; i_++)                                \
                if (strcmp(m->t[i_].name, hf_) == 0)                            \
                    t_ = &m->t[i_];                                             \
            if (!t_) {                                                          \
                st = tc_fail(TC_E_INTERNAL, "no tensor %s", hf_);               \
                goto done;                                                      \
            }                                                                   \
            struct gm_ftensor *f_ = &ft[n++];                                   \
            f_->src = t_;                                                       \
            snprintf(f_->name, sizeof f_->name, "%s", meta_);                   \
            f_->ndim = t_->ndim;                                                \
            f_->shape[0] = t_->shape[0];                                        \
            f_->shape[1] = t_->shape[1];                                        \
            f_->split = o->mp > 1 ? (split_) : -1;                              \
            f_->part = p;                                                       \
            f_->nparts = o->mp;                                                 \
            f_->rope_d = (rope_) ? o->head_dim : 0;                             \
            if ((split_) == 0 && o->mp > 1)                                     \
                f_->shape[0] /= o->mp;                                          \
            if ((split_) == 1 && o->mp > 1)                                     \
                f_->shape[1] /= o->mp;                                          \
            if ((rope_) && o->mp == 1)                                          \
                f_->split = 0;                                                  \
            f_->nelem = (uint64_t)f_->shape[0] *                                \
                        (uint64_t)(f_->ndim == 2 ? f_->shape[1] : 1);           \
        } while (0)
        GM_FT("model.embed_tokens.weight", "tok_embeddings.weight", 1, 0);
        for (int64_t L = 0; L < o->layers; L++) {
            for (size_t k = 0; k < sizeof map / sizeof map[0]; k++) {
                char mname[GM_NAME_MAX];
                snprintf(hfname, sizeof hfname, "model.layers.%lld.%s", (long long)L, map[k].hf);
                snprintf(mname, sizeof mname, "layers.%lld.%s", (long long)L, map[k].meta);
                GM_FT(hfname, mname, map[k].split, map[k].rope);
            }
        }
        GM_FT("model.norm.weight", "norm.weight", -1, 0);
        GM_FT("lm_head.weight", "output.weight", 0, 0);
#undef GM_FT
        snprintf(fname, sizeof fname, "consolidated.%02lld.pth", (long long)p);
        snprintf(prefix, sizeof prefix, "consolidated.%02lld", (long long)p);
        uint64_t fb = 0;
        if ((st = gm_join(path, sizeof path, o->out, fname)) != TC_OK ||
            (st = gm_write_torch_file(o, ft, n, false, path, prefix, &fb)) != TC_OK)
            goto done;
        printf("%s: %zu tensors, %llu bytes\n", fname, n, (unsigned long long)fb);
        *total_tensors += n;
        *total_bytes += fb;
    }
done:
    free(ft);
    return st;
}

/* ------------------------------------------------------------------ */
/* Main                                                                 */

static tc_status gm_run(const struct gm_opts *o)
{
    tc_status st = TC_OK;
    struct gm_model m = { NULL, 0, 0, NULL };
    char (*fnames)[64] = NULL;
    char path[4096];
    size_t total_tensors = 0;
    uint64_t total_file_bytes = 0;
    double t0 = tc_now_seconds(), dt;
    int64_t s;

    st = gm_model_build(o, &m);
    if (st != TC_OK)
        goto done;
    st = gm_mkdirs(o->out);
    if (st != TC_OK)
        goto done;
    fnames = calloc((size_t)o->shards, sizeof *fnames);
    if (!fnames) {
        st = tc_fail(TC_E_INTERNAL, "out of memory");
        goto done;
    }
    const int bin = o->format == GM_FMT_BIN;
    for (s = 0; s < o->shards; s++) {
        int len = o->shards == 1
            ? snprintf(fnames[s], sizeof fnames[s], bin ? "pytorch_model.bin" : "model.safetensors")
            : snprintf(fnames[s], sizeof fnames[s],
                       bin ? "pytorch_model-%05lld-of-%05lld.bin" : "model-%05lld-of-%05lld.safetensors",
                       (long long)s + 1, (long long)o->shards);
        if (len < 0 || (size_t)len >= sizeof fnames[s]) {
            st = tc_fail(TC_E_INTERNAL, "shard name too long");
            goto done;
        }
    }

    if (o->format == GM_FMT_META) {
        st = gm_write_meta(o, &m, &total_tensors, &total_file_bytes);
        if (st != TC_OK)
            goto done;
        goto report;
    }
    st = gm_join(path, sizeof path, o->out, "config.json");
    if (st != TC_OK)
        goto done;
    st = gm_write_config(o, path);
    if (st != TC_OK)
        goto done;
    if (bin) {
        /* Safetensors take precedence in a model directory: remove them. */
        static const char *const stale[] = { "model.safetensors",
                                             "model.safetensors.index.json" };
        for (size_t k = 0; k < 2; k++) {
            st = gm_join(path, sizeof path, o->out, stale[k]);
            if (st != TC_OK)
                goto done;
            if (unlink(path) != 0 && errno != ENOENT) {
                st = tc_fail(TC_E_IO, "%s: unlink: %s", path, strerror(errno));
                goto done;
            }
        }
        st = gm_join(path, sizeof path, o->out, o->shards == 1
                     ? "pytorch_model.bin.index.json" : "pytorch_model.bin");
        if (st == TC_OK && unlink(path) != 0 && errno != ENOENT)
            st = tc_fail(TC_E_IO, "%s: unlink: %s", path, strerror(errno));
        if (st == TC_OK)
            st = gm_write_bin(o, &m, fnames, &total_tensors, &total_file_bytes);
        if (st == TC_OK && o->shards > 1) {
            st = gm_join(path, sizeof path, o->out, "pytorch_model.bin.index.json");
            if (st == TC_OK)
                st = gm_write_index(&m, fnames, path);
        }
        if (st != TC_OK)
            goto done;
        goto report;
    }

    /* Remove the other layout's entry point so a directory reused with a
     * different --shards is not ambiguous. */
    st = gm_join(path, sizeof path, o->out, o->shards == 1
                 ? "model.safetensors.index.json" : "model.safetensors");
    if (st != TC_OK)
        goto done;
    if (unlink(path) != 0 && errno != ENOENT) {
        st = tc_fail(TC_E_IO, "%s: unlink: %s", path, strerror(errno));
        goto done;
    }

    for (s = 0; s < o->shards; s++) {
        size_t nt = 0;
        uint64_t fb = 0;
        st = gm_join(path, sizeof path, o->out, fnames[s]);
        if (st != TC_OK)
            goto done;
        st = gm_write_shard(o, &m, (int)s, path, &nt, &fb);
        if (st != TC_OK)
            goto done;
        printf("%s: %zu tensors, %llu bytes\n", fnames[s], nt,
               (unsigned long long)fb);
        total_tensors += nt;
        total_file_bytes += fb;
    }
    if (o->shards > 1) {
        st = gm_join(path, sizeof path, o->out,
                     "model.safetensors.index.json");
        if (st != TC_OK)
            goto done;
        st = gm_write_index(&m, fnames, path);
        if (st != TC_OK)
            goto done;
    }
report:
    dt = tc_now_seconds() - t0;
    printf("total: %lld files, %zu tensors, %llu bytes (%llu data) in %.2f s, "
           "%.0f MB/s\n", (long long)(o->format == GM_FMT_META ? o->mp : o->shards), total_tensors,
           (unsigned long long)total_file_bytes,
           (unsigned long long)m.total_bytes, dt,
           dt > 0 ? (double)total_file_bytes / dt / 1e6 : 0.0);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        st = tc_fail(TC_E_IO, "stdout: write failed");
        goto done;
    }
done:
    free(fnames);
    free(m.first);
    free(m.t);
    return st;
}

int main(int argc, char **argv)
{
    struct gm_opts o;
    tc_status st;
    int help = 0;

    tc_log_init(0, 1, NULL);
    st = gm_parse_args(argc, argv, &o, &help);
    if (st != TC_OK) {
        fputs("try 'trtconv-genmodel --help'\n", stderr);
        return (int)st;
    }
    if (help) {
        gm_usage(stdout);
        return fflush(stdout) == 0 ? 0 : (int)TC_E_IO;
    }
    st = gm_run(&o);
    return (int)st;
}
