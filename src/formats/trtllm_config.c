/* trtllm_config.c: the TensorRT-LLM v0.12 config.json in Python
 * json.dump(indent=4) style (see trtllm_config.h and
 * trtllm-checkpoint.md §3). */
#include "trtconv/formats/trtllm_config.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trtconv/core/log.h"

#define TC_PY_MAX_EXACT 9007199254740992.0 /* 2^53 */
#define TC_PY_INDENT 4
#define TC_PY_MAX_DEPTH 64                 /* nesting limit of the renderer */

/* ---------------------------------------------------------------------------
 * Python float repr
 * ------------------------------------------------------------------------- */

/* Shortest decimal digits of finite, nonzero, positive v that read back as v
 * (David Gay's dtoa mode 0, which Python's repr uses): the fewest digits, and
 * among candidates with that many digits the closest to v. On return
 * digits[] holds the significant digits without trailing zeros and *decpt
 * the position of the decimal point (value = 0.DIGITS * 10^decpt). */
static void shortest_digits(double v, char *digits, size_t size, int *decpt)
{
    char tmp[64];
    for (int p = 1; p <= 17; p++) {
        /* Correctly rounded p-digit candidate: the closest p-digit decimal,
         * so if any p-digit decimal reads back as v, usually this one does.
         * Next to powers of two the rounding interval is lopsided, and a
         * neighbour one unit away may read back while the closest does not;
         * try both neighbours too. */
        snprintf(tmp, sizeof tmp, "%.*e", p - 1, v);
        char *e = strchr(tmp, 'e');
        int exp10 = (int)strtol(e + 1, NULL, 10);
        uint64_t mant = 0;
        for (const char *s = tmp; s < e; s++)
            if (*s >= '0' && *s <= '9')
                mant = mant * 10 + (uint64_t)(*s - '0');
        int scale = exp10 - (p - 1); /* value = mant * 10^scale */
        uint64_t cand[3] = { mant, mant - 1, mant + 1 };
        int found = -1;
        for (int c = 0; c < 3 && found < 0; c++) {
            if (cand[c] == 0)
                continue;
            snprintf(tmp, sizeof tmp, "%" PRIu64 "e%d", cand[c], scale);
            if (strtod(tmp, NULL) == v)
                found = c;
        }
        if (found < 0)
            continue;
        mant = cand[found];
        while (mant % 10 == 0) {
            mant /= 10;
            scale++;
        }
        int n = snprintf(digits, size, "%" PRIu64, mant);
        *decpt = n + scale;
        return;
    }
    /* Unreachable: 17 significant digits always round-trip. */
    int n = snprintf(digits, size, "%.16e", v);
    (void)n;
    *decpt = 1;
}

char *tc_py_float_repr(double v, char *buf, size_t size)
{
    if (size == 0)
        return buf;
    if (isnan(v)) {
        snprintf(buf, size, "NaN");
        return buf;
    }
    if (isinf(v)) {
        snprintf(buf, size, "%s", v < 0 ? "-Infinity" : "Infinity");
        return buf;
    }
    if (v == 0.0) {
        snprintf(buf, size, "%s", signbit(v) ? "-0.0" : "0.0");
        return buf;
    }
    const char *sign = v < 0 ? "-" : "";
    char digits[32];
    int decpt = 0;
    shortest_digits(fabs(v), digits, sizeof digits, &decpt);
    int nd = (int)strlen(digits);

    char out[64];
    size_t o = 0;
#define PUT(c) do { if (o + 1 < sizeof out) out[o++] = (c); } while (0)
    for (const char *s = sign; *s; s++)
        PUT(*s);
    if (decpt <= -4 || decpt > 16) {
        /* Exponent form: d[.ddd]e[+-]XX, at least two exponent digits. */
        PUT(digits[0]);
        if (nd > 1) {
            PUT('.');
            for (int i = 1; i < nd; i++)
                PUT(digits[i]);
        }
        char ex[16];
        snprintf(ex, sizeof ex, "e%c%02d", decpt - 1 < 0 ? '-' : '+',
                 abs(decpt - 1));
        for (const char *s = ex; *s; s++)
            PUT(*s);
    } else if (decpt <= 0) {
        PUT('0');
        PUT('.');
        for (int i = 0; i < -decpt; i++)
            PUT('0');
        for (int i = 0; i < nd; i++)
            PUT(digits[i]);
    } else if (decpt < nd) {
        for (int i = 0; i < nd; i++) {
            if (i == decpt)
                PUT('.');
            PUT(digits[i]);
        }
    } else {
        for (int i = 0; i < nd; i++)
            PUT(digits[i]);
        for (int i = nd; i < decpt; i++)
            PUT('0');
        PUT('.');
        PUT('0');
    }
#undef PUT
    out[o] = '\0';
    snprintf(buf, size, "%s", out);
    return buf;
}

/* ---------------------------------------------------------------------------
 * Growing output buffer (always NUL-terminated once allocated)
 * ------------------------------------------------------------------------- */

static tc_status buf_append(char **buf, size_t *len, size_t *cap,
                            const char *s, size_t n)
{
    if (n > SIZE_MAX - *len - 1)
        return tc_fail(TC_E_INTERNAL, "config.json: output too large");
    if (*len + n + 1 > *cap) {
        size_t ncap = *cap ? *cap : 256;
        while (ncap < *len + n + 1) {
            if (ncap > SIZE_MAX / 2)
                return tc_fail(TC_E_INTERNAL, "config.json: output too large");
            ncap *= 2;
        }
        char *nb = realloc(*buf, ncap);
        if (!nb)
            return tc_fail(TC_E_INTERNAL, "config.json: out of memory (%zu bytes)",
                           ncap);
        *buf = nb;
        *cap = ncap;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
    return TC_OK;
}

static tc_status buf_puts(char **buf, size_t *len, size_t *cap, const char *s)
{
    return buf_append(buf, len, cap, s, strlen(s));
}

static tc_status buf_indent(char **buf, size_t *len, size_t *cap, int level)
{
    static const char spaces[] = "                                ";
    size_t n = (size_t)level * TC_PY_INDENT;
    while (n > 0) {
        size_t k = n < sizeof spaces - 1 ? n : sizeof spaces - 1;
        tc_status st = buf_append(buf, len, cap, spaces, k);
        if (st != TC_OK)
            return st;
        n -= k;
    }
    return TC_OK;
}

/* Decode one UTF-8 sequence at s (n bytes left). Returns its length and the
 * code point, or 0 for an invalid, overlong or surrogate sequence. */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        len = 2; v = c & 0x1F; min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3; v = c & 0x0F; min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4; v = c & 0x07; min = 0x10000;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return len;
}

/* A JSON string as Python json.dump(ensure_ascii=True) writes it. */
static tc_status put_py_string(char **buf, size_t *len, size_t *cap,
                               const char *str)
{
    tc_status st = buf_append(buf, len, cap, "\"", 1);
    const unsigned char *s = (const unsigned char *)str;
    size_t n = strlen(str);
    size_t i = 0;
    while (st == TC_OK && i < n) {
        unsigned char c = s[i];
        char esc[16];
        const char *out = esc;
        size_t step = 1;
        switch (c) {
        case '"': out = "\\\""; break;
        case '\\': out = "\\\\"; break;
        case '\n': out = "\\n"; break;
        case '\r': out = "\\r"; break;
        case '\t': out = "\\t"; break;
        case '\b': out = "\\b"; break;
        case '\f': out = "\\f"; break;
        default:
            if (c < 0x20 || c == 0x7F) {
                /* Python escapes everything outside ' '..'~'. */
                snprintf(esc, sizeof esc, "\\u%04x", c);
            } else if (c < 0x80) {
                esc[0] = (char)c;
                esc[1] = '\0';
            } else {
                uint32_t cp = 0;
                step = utf8_decode(s + i, n - i, &cp);
                if (step == 0)
                    return tc_fail(TC_E_INPUT,
                                   "config.json: string \"%.64s\" is not valid UTF-8 "
                                   "(byte %zu)", str, i);
                if (cp >= 0x10000) {
                    uint32_t u = cp - 0x10000;
                    snprintf(esc, sizeof esc, "\\u%04x\\u%04x",
                             (unsigned)(0xD800 + (u >> 10)),
                             (unsigned)(0xDC00 + (u & 0x3FF)));
                } else {
                    snprintf(esc, sizeof esc, "\\u%04x", (unsigned)cp);
                }
            }
            break;
        }
        st = buf_puts(buf, len, cap, out);
        i += step;
    }
    if (st == TC_OK)
        st = buf_append(buf, len, cap, "\"", 1);
    return st;
}

static tc_status put_py_float(char **buf, size_t *len, size_t *cap, double v)
{
    char tmp[40];
    return buf_puts(buf, len, cap, tc_py_float_repr(v, tmp, sizeof tmp));
}

static tc_status put_py_int(char **buf, size_t *len, size_t *cap, int64_t v)
{
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%" PRId64, v);
    return buf_puts(buf, len, cap, tmp);
}

static tc_status render_value(const cJSON *v, int indent, int depth, char **buf,
                              size_t *len, size_t *cap)
{
    tc_status st = TC_OK;
    if (depth > TC_PY_MAX_DEPTH)
        return tc_fail(TC_E_INPUT, "config.json: JSON nested deeper than %d levels",
                       TC_PY_MAX_DEPTH);
    if (!v || cJSON_IsNull(v))
        return buf_puts(buf, len, cap, "null");
    if (cJSON_IsTrue(v))
        return buf_puts(buf, len, cap, "true");
    if (cJSON_IsFalse(v))
        return buf_puts(buf, len, cap, "false");
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (isfinite(d) && d == floor(d) && fabs(d) < TC_PY_MAX_EXACT &&
            !(d == 0.0 && signbit(d)))
            return put_py_int(buf, len, cap, (int64_t)d);
        return put_py_float(buf, len, cap, d);
    }
    if (cJSON_IsString(v))
        return put_py_string(buf, len, cap, v->valuestring ? v->valuestring : "");
    if (cJSON_IsArray(v) || cJSON_IsObject(v)) {
        bool obj = cJSON_IsObject(v) != 0;
        if (!v->child)
            return buf_puts(buf, len, cap, obj ? "{}" : "[]");
        st = buf_puts(buf, len, cap, obj ? "{\n" : "[\n");
        for (const cJSON *c = v->child; c && st == TC_OK; c = c->next) {
            st = buf_indent(buf, len, cap, indent + 1);
            if (st == TC_OK && obj) {
                st = put_py_string(buf, len, cap, c->string ? c->string : "");
                if (st == TC_OK)
                    st = buf_puts(buf, len, cap, ": ");
            }
            if (st == TC_OK)
                st = render_value(c, indent + 1, depth + 1, buf, len, cap);
            if (st == TC_OK)
                st = buf_puts(buf, len, cap, c->next ? ",\n" : "\n");
        }
        if (st == TC_OK)
            st = buf_indent(buf, len, cap, indent);
        if (st == TC_OK)
            st = buf_puts(buf, len, cap, obj ? "}" : "]");
        return st;
    }
    return tc_fail(TC_E_INTERNAL, "config.json: unknown cJSON type %d", v->type);
}

tc_status tc_py_json_render(const cJSON *v, int indent, char **buf, size_t *len,
                            size_t *cap)
{
    if (indent < 0)
        return tc_fail(TC_E_INTERNAL, "%s: negative indent %d", __func__, indent);
    /* Make sure the buffer exists (and is terminated) even for "null". */
    tc_status st = buf_append(buf, len, cap, "", 0);
    if (st == TC_OK)
        st = render_value(v, indent, 0, buf, len, cap);
    return st;
}

/* ---------------------------------------------------------------------------
 * config.json
 * ------------------------------------------------------------------------- */

/* Writer state for one object being emitted key by key. */
typedef struct obj_writer {
    char **buf;
    size_t *len, *cap;
    int indent;        /* nesting level of the object's keys */
    bool first;
    tc_status st;
} obj_writer;

static void ow_open(obj_writer *w, char **buf, size_t *len, size_t *cap,
                    int indent)
{
    w->buf = buf;
    w->len = len;
    w->cap = cap;
    w->indent = indent;
    w->first = true;
    w->st = buf_puts(buf, len, cap, "{");
}

static void ow_key(obj_writer *w, const char *key)
{
    if (w->st != TC_OK)
        return;
    w->st = buf_puts(w->buf, w->len, w->cap, w->first ? "\n" : ",\n");
    w->first = false;
    if (w->st == TC_OK)
        w->st = buf_indent(w->buf, w->len, w->cap, w->indent);
    if (w->st == TC_OK)
        w->st = put_py_string(w->buf, w->len, w->cap, key);
    if (w->st == TC_OK)
        w->st = buf_puts(w->buf, w->len, w->cap, ": ");
}

static void ow_close(obj_writer *w)
{
    if (w->st != TC_OK)
        return;
    if (w->first) {
        w->st = buf_puts(w->buf, w->len, w->cap, "}");
        return;
    }
    w->st = buf_puts(w->buf, w->len, w->cap, "\n");
    if (w->st == TC_OK)
        w->st = buf_indent(w->buf, w->len, w->cap, w->indent - 1);
    if (w->st == TC_OK)
        w->st = buf_puts(w->buf, w->len, w->cap, "}");
}

static void ow_bool(obj_writer *w, const char *key, bool v)
{
    ow_key(w, key);
    if (w->st == TC_OK)
        w->st = buf_puts(w->buf, w->len, w->cap, v ? "true" : "false");
}

static void ow_int(obj_writer *w, const char *key, int64_t v)
{
    ow_key(w, key);
    if (w->st == TC_OK)
        w->st = put_py_int(w->buf, w->len, w->cap, v);
}

static void ow_float(obj_writer *w, const char *key, double v)
{
    ow_key(w, key);
    if (w->st == TC_OK)
        w->st = put_py_float(w->buf, w->len, w->cap, v);
}

static void ow_null(obj_writer *w, const char *key)
{
    ow_key(w, key);
    if (w->st == TC_OK)
        w->st = buf_puts(w->buf, w->len, w->cap, "null");
}

/* A string value; NULL is written as null. */
static void ow_str(obj_writer *w, const char *key, const char *v)
{
    ow_key(w, key);
    if (w->st != TC_OK)
        return;
    w->st = v ? put_py_string(w->buf, w->len, w->cap, v)
              : buf_puts(w->buf, w->len, w->cap, "null");
}

static void ow_json(obj_writer *w, const char *key, const cJSON *v)
{
    ow_key(w, key);
    if (w->st == TC_OK)
        w->st = render_value(v, w->indent, 0, w->buf, w->len, w->cap);
}

/* The moe object: MoeConfig.to_dict() (with tp_mode, as v0.12 writes it
 * from LLaMAConfig) or the raw dict of the fake config (without). */
static void ow_moe(obj_writer *w, const tc_trtllm_config *cfg, bool with_tp_mode)
{
    ow_key(w, "moe");
    if (w->st != TC_OK)
        return;
    obj_writer m;
    ow_open(&m, w->buf, w->len, w->cap, w->indent + 1);
    ow_int(&m, "num_experts", cfg->moe_num_experts);
    ow_int(&m, "top_k", cfg->moe_top_k);
    if (cfg->moe_normalization_mode < 0)
        ow_null(&m, "normalization_mode");
    else
        ow_int(&m, "normalization_mode", cfg->moe_normalization_mode);
    if (with_tp_mode)
        ow_int(&m, "tp_mode", cfg->moe_tp_mode);
    ow_close(&m);
    w->st = m.st;
}

/* The mapping object: Mapping.to_dict() minus rank as v0.12 writes it
 * (with gpus_per_node and cp_size), or the fake config's raw dict. */
static void ow_mapping(obj_writer *w, const tc_trtllm_config *cfg, bool from_mapping)
{
    ow_key(w, "mapping");
    if (w->st != TC_OK)
        return;
    obj_writer m;
    ow_open(&m, w->buf, w->len, w->cap, w->indent + 1);
    ow_int(&m, "world_size", cfg->world_size);
    if (from_mapping) {
        ow_int(&m, "gpus_per_node", cfg->gpus_per_node);
        ow_int(&m, "cp_size", cfg->cp_size);
    }
    ow_int(&m, "tp_size", cfg->tp_size);
    ow_int(&m, "pp_size", cfg->pp_size);
    ow_int(&m, "moe_tp_size", cfg->moe_tp_size);
    ow_int(&m, "moe_ep_size", cfg->moe_ep_size);
    ow_close(&m);
    w->st = m.st;
}

/* The quantization object (QuantConfig.to_dict(), trtllm-checkpoint.md
 * §3.2, be9cd719 column) as the value of key "quantization" in w. */
static void ow_quantization(obj_writer *w, const tc_trtllm_config *cfg)
{
    ow_key(w, "quantization");
    if (w->st != TC_OK)
        return;
    char **bufp = w->buf;
    size_t *lenp = w->len, *capp = w->cap;
    obj_writer q;
    ow_open(&q, bufp, lenp, capp, w->indent + 1);
    ow_str(&q, "quant_algo", cfg->quant_algo);
    ow_str(&q, "kv_cache_quant_algo", cfg->kv_cache_quant_algo);
    ow_int(&q, "group_size", cfg->group_size);
    if (cfg->has_smoothquant_val)
        ow_float(&q, "smoothquant_val", cfg->smoothquant_val);
    else
        ow_null(&q, "smoothquant_val");
    ow_key(&q, "clamp_val");
    if (q.st == TC_OK && cfg->has_clamp_val) {
        /* [a, b] as json.dump(indent=4) writes a two-element list. */
        q.st = buf_puts(bufp, lenp, capp, "[\n");
        for (int i = 0; i < 2 && q.st == TC_OK; i++) {
            q.st = buf_indent(bufp, lenp, capp, q.indent + 1);
            if (q.st == TC_OK)
                q.st = put_py_float(bufp, lenp, capp, cfg->clamp_val[i]);
            if (q.st == TC_OK)
                q.st = buf_puts(bufp, lenp, capp, i == 0 ? ",\n" : "\n");
        }
        if (q.st == TC_OK)
            q.st = buf_indent(bufp, lenp, capp, q.indent);
        if (q.st == TC_OK)
            q.st = buf_puts(bufp, lenp, capp, "]");
    } else if (q.st == TC_OK) {
        q.st = buf_puts(bufp, lenp, capp, "null");
    }
    if (cfg->use_meta_recipe)
        ow_bool(&q, "use_meta_recipe", true);
    ow_bool(&q, "has_zero_point", cfg->has_zero_point);
    ow_bool(&q, "pre_quant_scale", cfg->pre_quant_scale);
    ow_null(&q, "exclude_modules");
    ow_close(&q);
    w->st = q.st;
}

tc_status tc_trtllm_config_render(const tc_trtllm_config *cfg, char **out)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    tc_status st = TC_OK;
    *out = NULL;

    if (!cfg->architecture || !cfg->hidden_act || !cfg->logits_dtype ||
        !cfg->position_embedding_type) {
        st = tc_fail(TC_E_INTERNAL, "%s: a required string field is NULL", __func__);
        goto done;
    }
    const char *dtype = tc_float_type_name(cfg->dtype);

    obj_writer w;
    ow_open(&w, &buf, &len, &cap, 1);
    ow_bool(&w, "mlp_bias", cfg->mlp_bias);
    ow_bool(&w, "attn_bias", cfg->attn_bias);
    ow_float(&w, "rotary_base", cfg->rotary_base);
    ow_json(&w, "rotary_scaling", cfg->rotary_scaling);
    ow_bool(&w, "residual_mlp", cfg->residual_mlp);
    ow_bool(&w, "disable_weight_only_quant_plugin",
            cfg->disable_weight_only_quant_plugin);

    ow_moe(&w, cfg, true);

    ow_bool(&w, "remove_duplicated_kv_heads", cfg->remove_duplicated_kv_heads);
    ow_str(&w, "architecture", cfg->architecture);
    ow_str(&w, "dtype", dtype);
    ow_int(&w, "vocab_size", cfg->vocab_size);
    ow_int(&w, "hidden_size", cfg->hidden_size);
    ow_int(&w, "num_hidden_layers", cfg->num_hidden_layers);
    ow_int(&w, "num_attention_heads", cfg->num_attention_heads);
    ow_str(&w, "hidden_act", cfg->hidden_act);
    ow_str(&w, "logits_dtype", cfg->logits_dtype);
    ow_float(&w, "norm_epsilon", cfg->norm_epsilon);
    ow_str(&w, "position_embedding_type", cfg->position_embedding_type);
    ow_int(&w, "max_position_embeddings", cfg->max_position_embeddings);
    ow_int(&w, "num_key_value_heads", cfg->num_key_value_heads);
    ow_int(&w, "intermediate_size", cfg->intermediate_size);

    ow_mapping(&w, cfg, true);

    ow_quantization(&w, cfg);

    ow_bool(&w, "use_parallel_embedding", cfg->use_parallel_embedding);
    ow_int(&w, "embedding_sharding_dim", cfg->embedding_sharding_dim);
    ow_bool(&w, "share_embedding_table", cfg->share_embedding_table);
    ow_int(&w, "head_size", cfg->head_size);
    ow_bool(&w, "qk_layernorm", cfg->qk_layernorm);
    ow_close(&w);
    st = w.st;

done:
    if (st == TC_OK) {
        *out = buf;
        buf = NULL;
    }
    free(buf);
    return st;
}

tc_status tc_trtllm_cli_config_render(const tc_trtllm_config *cfg, char **out)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    *out = NULL;
    if (!cfg->architecture || !cfg->hidden_act || !cfg->logits_dtype ||
        !cfg->position_embedding_type)
        return tc_fail(TC_E_INTERNAL, "%s: a required string field is NULL", __func__);

    /* convert_checkpoint.py from_cli_args() + args_to_build_options(), in
     * dict insertion order (trtllm-checkpoint.md §3.1). */
    obj_writer w;
    ow_open(&w, &buf, &len, &cap, 1);
    ow_str(&w, "architecture", cfg->architecture);
    ow_str(&w, "dtype", tc_float_type_name(cfg->dtype));
    ow_str(&w, "logits_dtype", cfg->logits_dtype);
    ow_int(&w, "num_hidden_layers", cfg->num_hidden_layers);
    ow_int(&w, "num_attention_heads", cfg->num_attention_heads);
    ow_int(&w, "hidden_size", cfg->hidden_size);
    ow_int(&w, "intermediate_size", cfg->intermediate_size);
    if (cfg->has_ffn_dim_multiplier)
        ow_float(&w, "ffn_dim_multiplier", cfg->ffn_dim_multiplier);
    else
        ow_null(&w, "ffn_dim_multiplier");
    if (cfg->has_multiple_of)
        ow_int(&w, "multiple_of", cfg->multiple_of);
    else
        ow_null(&w, "multiple_of");
    ow_int(&w, "num_key_value_heads", cfg->num_key_value_heads);
    ow_int(&w, "vocab_size", cfg->vocab_size);
    ow_str(&w, "position_embedding_type", cfg->position_embedding_type);
    ow_int(&w, "max_position_embeddings", cfg->max_position_embeddings);
    ow_str(&w, "hidden_act", cfg->hidden_act);
    ow_float(&w, "rotary_base", cfg->rotary_base);
    ow_float(&w, "norm_epsilon", cfg->norm_epsilon);
    ow_moe(&w, cfg, false);
    ow_mapping(&w, cfg, false);
    ow_quantization(&w, cfg);
    ow_bool(&w, "use_parallel_embedding", cfg->use_parallel_embedding);
    ow_int(&w, "embedding_sharding_dim", cfg->embedding_sharding_dim);
    ow_bool(&w, "share_embedding_table", cfg->share_embedding_table);
    ow_bool(&w, "disable_weight_only_quant_plugin", cfg->disable_weight_only_quant_plugin);
    ow_bool(&w, "remove_duplicated_kv_heads", cfg->remove_duplicated_kv_heads);
    ow_close(&w);
    if (w.st != TC_OK) {
        free(buf);
        return w.st;
    }
    *out = buf;
    return TC_OK;
}
