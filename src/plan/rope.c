/* rope.c: the rotary buffers of v0.12 rank files (see rope.h).
 *
 * Every float below is a float32 step of upstream's numpy code and must
 * stay one: this file is compiled with -ffp-contract=off (CMakeLists.txt)
 * so no product and sum fuse into an FMA that numpy would not do. */
#include "trtconv/plan/rope.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "trtconv/core/log.h"

/* 2*pi as numpy sees `2 * math.pi` next to a float32: the Python float
 * rounded to float32. */
#define TWO_PI_F32 6.2831855f

static const char *scaling_type(const cJSON *s)
{
    /* rotary_embedding_scaling.get("type", .get("rope_type")) */
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(s, "type");
    if (!t)
        t = cJSON_GetObjectItemCaseSensitive(s, "rope_type");
    return cJSON_IsString(t) ? t->valuestring : NULL;
}

/* s.get(key, dflt) for a number; *ok = false when present but not a number. */
static double get_num(const cJSON *s, const char *key, double dflt, bool *ok)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, key);
    if (!v || cJSON_IsNull(v))
        return dflt;
    if (!cJSON_IsNumber(v)) {
        *ok = false;
        return dflt;
    }
    return v->valuedouble;
}

/* float32(theta ** (np.arange(0, dim, 2) / dim)): the power in float64. */
static float base_power(double theta, int64_t j2, int64_t dim)
{
    return (float)pow(theta, (double)j2 / (double)dim);
}

/* RopeEmbeddingUtils.apply_llama3_scaling with numpy 2 scalar rules: each
 * element is a numpy float32 and every Python number next to it becomes a
 * float32 (NEP 50). */
static float llama3_scale(float inv, double factor, double low, double high, double old_ctx)
{
    const double low_wavelen = old_ctx / low;     /* Python floats */
    const double high_wavelen = old_ctx / high;
    const float wavelen = TWO_PI_F32 / inv;
    if (wavelen < (float)high_wavelen)
        return inv;
    if (wavelen > (float)low_wavelen)
        return inv / (float)factor;
    const float smooth = ((float)old_ctx / wavelen - (float)low) / (float)(high - low);
    const float a = (1.0f - smooth) * inv;
    const float b = a / (float)factor;
    const float c = smooth * inv;
    return b + c;
}

tc_status tc_rope_tables_init(const char *label, const cJSON *rs, double rotary_base,
                              int64_t max_pos, int64_t dim, tc_rope_tables *t)
{
    memset(t, 0, sizeof *t);
    if (dim < 2 || dim % 2 != 0 || dim > 65536)
        return tc_fail(TC_E_INPUT, "%s: rotary dimension (head size) %lld must be even and in "
                       "[2, 65536] for the rope buffers", label, (long long)dim);
    if (max_pos < 1 || max_pos > ((int64_t)1 << 26))
        return tc_fail(TC_E_INPUT, "%s: max_position_embeddings = %lld out of range [1, 2^26] "
                       "for the rope buffers", label, (long long)max_pos);
    if (!(rotary_base > 0.0) || !isfinite(rotary_base))
        return tc_fail(TC_E_INPUT, "%s: rope_theta = %g must be a positive finite number", label,
                       rotary_base);
    enum { NONE, LINEAR, SCALED, LLAMA3 } kind = NONE;
    double factor = 1.0, l3_factor = 8.0, low = 1.0, high = 4.0, old_ctx = 8192.0;
    if (rs && !cJSON_IsNull(rs)) {
        const char *type = scaling_type(rs);
        bool ok = true;
        factor = get_num(rs, "factor", 1.0, &ok);
        if (!type)
            return tc_fail(TC_E_INPUT, "%s: rope_scaling has no string \"type\" or \"rope_type\" "
                           "(TensorRT-LLM v0.12 cannot build its rotary tables)", label);
        if (!strcmp(type, "linear"))
            kind = LINEAR;
        else if (!strcmp(type, "dynamic") || !strcmp(type, "longrope"))
            kind = SCALED;
        else if (!strcmp(type, "llama3"))
            kind = LLAMA3;
        else if (strcmp(type, "none") != 0)
            return tc_fail(TC_E_INPUT, "%s: rope_scaling type \"%s\" is not one TensorRT-LLM "
                           "v0.12 supports (none, linear, dynamic, longrope, llama3)", label, type);
        l3_factor = get_num(rs, "factor", 8.0, &ok);
        low = get_num(rs, "low_freq_factor", 1.0, &ok);
        high = get_num(rs, "high_freq_factor", 4.0, &ok);
        old_ctx = get_num(rs, "original_max_position_embeddings", 8192.0, &ok);
        if (!ok)
            return tc_fail(TC_E_INPUT, "%s: rope_scaling holds a non-numeric factor", label);
        if (kind == LLAMA3 && !(low != high))
            return tc_fail(TC_E_INPUT, "%s: rope_scaling llama3 with low_freq_factor == "
                           "high_freq_factor (upstream asserts they differ)", label);
        if ((kind == LINEAR && !(factor != 0.0)) || !isfinite(factor) || !isfinite(l3_factor))
            return tc_fail(TC_E_INPUT, "%s: rope_scaling factor %g is unusable", label, factor);
    }
    const int64_t half = dim / 2;
    t->inv_freq_plain = malloc((size_t)half * sizeof(float));
    t->inv_freq_attn = malloc((size_t)half * sizeof(float));
    if (!t->inv_freq_plain || !t->inv_freq_attn) {
        tc_rope_tables_free(t);
        return tc_fail(TC_E_INTERNAL, "out of memory for the rope tables");
    }
    /* linear: scale = 1.0 / factor in Python, then float32 next to the array */
    const float scale = kind == LINEAR ? (float)(1.0 / factor) : kind == SCALED ? (float)factor : 1.0f;
    for (int64_t j = 0; j < half; j++) {
        t->inv_freq_plain[j] = 1.0f / base_power(10000.0, 2 * j, dim);
        if (kind == LLAMA3)
            t->inv_freq_attn[j] = llama3_scale(1.0f / base_power(rotary_base, 2 * j, dim),
                                               l3_factor, low, high, old_ctx);
        else
            t->inv_freq_attn[j] = scale / base_power(rotary_base, 2 * j, dim);
    }
    t->max_pos = max_pos;
    t->dim = dim;
    return TC_OK;
}

void tc_rope_tables_free(tc_rope_tables *t)
{
    free(t->inv_freq_plain);
    free(t->inv_freq_attn);
    t->inv_freq_plain = t->inv_freq_attn = NULL;
}

/* numpy's float32 sin and cos as its FMA builds compute them (numpy 2,
 * numpy/_core/src/umath/loops_trigonometric.dispatch.cpp, simd_sincos_f32;
 * the same algorithm since numpy 1.22): within Cody-Waite's range, the
 * quadrant q = rint(x * 2/pi) by the 1.5 * 2^23 trick, x reduced by
 * three fused steps of pi/2 split in three parts, then the sine or cosine
 * polynomial of the reduced argument (Horner, fused), negated in quadrants
 * 2 and 3; outside that range the C library's sinf/cosf. Every step is one
 * float32 operation; fmaf rounds once as the hardware FMA does. Builds of
 * numpy without FMA use the C library everywhere and may differ by an ulp
 * (docs/rope-buffers.md). */
static float np_sincos_f32(float x, bool want_cos)
{
    if (!(fabsf(x) <= (want_cos ? 71476.0625f : 117435.992f)))
        return want_cos ? cosf(x) : sinf(x);
    /* x * 2/pi + 1.5 * 2^23: a multiply and an add in numpy's source,
     * which GCC contracts into one FMA when it builds numpy (C++ defaults
     * to -ffp-contract=fast): one rounding, as here. */
    float q = fmaf(x, 0x1.45f306p-1f, 0x1.800000p+23f);
    q = q - 0x1.800000p+23f;
    float r = fmaf(q, -0x1.921fb0p+00f, x);     /* pi/2, high, medium, low */
    r = fmaf(q, -0x1.5110b4p-22f, r);
    r = fmaf(q, -0x1.846988p-48f, r);
    const float r2 = r * r;
    float c = fmaf(0x1.98e616p-16f, r2, -0x1.6c06dcp-10f);
    c = fmaf(c, r2, 0x1.55553cp-05f);
    c = fmaf(c, r2, -0x1.000000p-01f);
    c = fmaf(c, r2, 0x1.000000p+00f);
    float s = fmaf(0x1.7d3bbcp-19f, r2, -0x1.a06bbap-13f);
    s = fmaf(s, r2, 0x1.11119ap-07f);
    s = fmaf(s, r2, -0x1.555556p-03f);
    s = fmaf(s, r2, 0.0f);
    s = fmaf(s, r, r);
    const int iq = (int)q + (want_cos ? 1 : 0);
    float v = (iq & 1) == 0 ? s : c;
    if ((iq & 2) == 2)
        v = 0.0f - v;
    return v;
}

static float sin32(float x) { return np_sincos_f32(x, false); }
static float cos32(float x) { return np_sincos_f32(x, true); }

void tc_rope_fill(const tc_rope_tables *t, tc_rope_buffer which, int64_t row0, int64_t rows,
                  float *dst)
{
    const int64_t half = t->dim / 2;
    if (which == TC_ROPE_INV_FREQ) {
        memcpy(dst, t->inv_freq_attn + row0, (size_t)rows * sizeof(float));
        return;
    }
    for (int64_t r = 0; r < rows; r++) {
        const float p = (float)(row0 + r);   /* np.arange(num_pos, dtype=float32) */
        float *out = dst + r * t->dim;
        for (int64_t j = 0; j < half; j++) {
            if (which == TC_ROPE_EMBED_POSITIONS) {
                const float x = p * t->inv_freq_plain[j];
                out[j] = sin32(x);
                out[half + j] = cos32(x);
            } else {
                const float x = p * t->inv_freq_attn[j];
                out[2 * j] = cos32(x);
                out[2 * j + 1] = sin32(x);
            }
        }
    }
}

const char *tc_rope_buffer_name(tc_rope_buffer which)
{
    switch (which) {
    case TC_ROPE_EMBED_POSITIONS: return "embed_positions";
    case TC_ROPE_INV_FREQ: return "rotary_inv_freq";
    case TC_ROPE_FOR_GPT_ATTENTION: return "embed_positions_for_gpt_attention";
    default: return "";
    }
}
