/* fwd_rope.c: the rotary embedding's inverse frequencies of the forward
 * pass (fwd.h), as transformers' modeling_rope_utils computes them in
 * float32 for every rope_scaling kind the forward pass accepts. */
#include "trtconv/fwd/fwd.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>
#include "trtconv/core/jsonutil.h"
#include "trtconv/core/log.h"

/* ---- RoPE (transformers' modeling_rope_utils, float32) ---- */

static const cJSON *rope_get(const tc_hf_config *cfg, const char *key)
{
    return cfg->rope_scaling ? tc_json_get(cfg->rope_scaling, key) : NULL;
}

static const char *rope_kind(const tc_hf_config *cfg)
{
    const cJSON *t = rope_get(cfg, "rope_type");
    if (!t)
        t = rope_get(cfg, "type");
    return cJSON_IsString(t) ? t->valuestring : "default";
}

static double rope_num(const tc_hf_config *cfg, const char *key, double dflt)
{
    const cJSON *v = rope_get(cfg, key);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

tc_status tc_fwd_rope_check(const tc_hf_config *cfg)
{
    const char *k = rope_kind(cfg);
    if (cfg->head_dim % 2 != 0)
        return tc_fail(TC_E_INPUT, "head_dim = %lld must be even for rotary embedding",
                       (long long)cfg->head_dim);
    if (!strcmp(k, "default"))
        return TC_OK;
    if (strcmp(k, "linear") && strcmp(k, "dynamic") && strcmp(k, "llama3"))
        return tc_fail(TC_E_INPUT,
                       "rope_scaling type \"%s\" is not supported by the forward pass "
                       "(supported: default, linear, dynamic, llama3)", k);
    double f = rope_num(cfg, "factor", NAN);
    if (!(f > 0.0))
        return tc_fail(TC_E_INPUT, "rope_scaling \"%s\" needs a positive \"factor\"", k);
    if (!strcmp(k, "llama3")) {
        double lo = rope_num(cfg, "low_freq_factor", NAN), hi = rope_num(cfg, "high_freq_factor", NAN);
        double om = rope_num(cfg, "original_max_position_embeddings", NAN);
        if (!(lo > 0.0) || !(hi > lo) || !(om > 0.0))
            return tc_fail(TC_E_INPUT, "rope_scaling llama3 needs low_freq_factor > 0, "
                           "high_freq_factor > low_freq_factor and original_max_position_embeddings");
    }
    return TC_OK;
}

void tc_fwd_rope_inv_freq(const tc_hf_config *cfg, int64_t seq_len, float *inv_freq,
                          float *attention_scaling)
{
    const int64_t dim = cfg->head_dim, half = dim / 2;
    const char *kind = rope_kind(cfg);
    float base = (float)cfg->rope_theta;
    *attention_scaling = 1.0f;
    if (!strcmp(kind, "dynamic")) {
        /* Frequencies grow once the batch is longer than the trained
         * context: base * ((f * L / max_pos) - (f - 1)) ^ (dim / (dim - 2)). */
        const float f = (float)rope_num(cfg, "factor", 1.0);
        const float mp = (float)cfg->max_position_embeddings;
        if ((float)seq_len > mp) {
            float grow = f * (float)seq_len / mp - (f - 1.0f);
            base = (float)cfg->rope_theta * powf(grow, (float)dim / (float)(dim - 2));
        }
    }
    for (int64_t i = 0; i < half; i++) {
        float e = (float)(2 * i) / (float)dim;
        inv_freq[i] = 1.0f / powf(base, e);
    }
    if (!strcmp(kind, "linear")) {
        const float f = (float)rope_num(cfg, "factor", 1.0);
        for (int64_t i = 0; i < half; i++)
            inv_freq[i] /= f;
    } else if (!strcmp(kind, "llama3")) {
        const float f = (float)rope_num(cfg, "factor", 1.0);
        const float lo = (float)rope_num(cfg, "low_freq_factor", 1.0);
        const float hi = (float)rope_num(cfg, "high_freq_factor", 4.0);
        const float old = (float)rope_num(cfg, "original_max_position_embeddings", 8192.0);
        const float lo_wl = old / lo, hi_wl = old / hi;
        const float pi = 3.14159265358979323846f;
        for (int64_t i = 0; i < half; i++) {
            const float inv = inv_freq[i];
            const float wl = 2.0f * pi / inv;
            float v = wl > lo_wl ? inv / f : inv;
            if (!(wl < hi_wl) && !(wl > lo_wl)) {
                const float smooth = (old / wl - lo) / (hi - lo);
                v = (1.0f - smooth) * v / f + smooth * v;
            }
            inv_freq[i] = v;
        }
    }
}

/* cos/sin tables [len, d/2] of the rounded values torch keeps in dtype. */
