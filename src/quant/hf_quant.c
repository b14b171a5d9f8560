/* hf_quant.c: see hf_quant.h. */
#define _GNU_SOURCE /* fnmatch */
#include "trtconv/quant/hf_quant.h"

#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "trtconv/core/dtype.h"
#include "trtconv/core/log.h"
#include "trtconv/quant/fp8.h"
#include "trtconv/quant/nvfp4.h"

const char *tc_hf_algo_name(tc_hf_algo a)
{
    switch (a) {
    case TC_HF_ALGO_FP8: return "FP8";
    case TC_HF_ALGO_FP8_PC_PT: return "FP8_PER_CHANNEL_PER_TOKEN";
    case TC_HF_ALGO_NVFP4: return "NVFP4";
    default: return NULL;
    }
}

bool tc_hf_quant_needs_stats(const tc_hf_quant *q)
{
    return q->algo == TC_HF_ALGO_FP8 || q->algo == TC_HF_ALGO_NVFP4 || q->kv_fp8;
}

tc_status tc_hf_quant_parse_exclude(const char *list, tc_hf_quant *q)
{
    q->n_exclude = 0;
    for (const char *p = list; p && *p;) {
        const char *e = strchr(p, ',');
        const size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0 || n >= sizeof q->exclude[0])
            return tc_fail(TC_E_USAGE, "--exclude_modules: %s pattern in \"%s\"",
                           n ? "an overlong" : "an empty", list);
        if (q->n_exclude == TC_HF_MAX_EXCLUDE)
            return tc_fail(TC_E_USAGE, "--exclude_modules: more than %d patterns",
                           TC_HF_MAX_EXCLUDE);
        memcpy(q->exclude[q->n_exclude], p, n);
        q->exclude[q->n_exclude++][n] = '\0';
        p = e ? e + 1 : p + n;
    }
    return TC_OK;
}

bool tc_hf_module_excluded(const tc_hf_quant *q, const char *module)
{
    if (!strcmp(module, "lm_head"))
        return true;
    for (size_t i = 0; i < q->n_exclude; i++)
        if (fnmatch(q->exclude[i], module, 0) == 0)
            return true;
    return false;
}

/* ---- scalar references ---- */

float tc_hf_fp8_weight_scale(float amax)
{
    return amax > 0.0f ? (float)((double)amax / 448.0) : 1.0f;
}

tc_status tc_hf_fp8_quantize_rows(const void *w, tc_dtype dt, int64_t rows, int64_t cols, float s,
                                  uint8_t *q)
{
    if (dt != TC_DT_F32 && dt != TC_DT_F16 && dt != TC_DT_BF16)
        return tc_fail(TC_E_INTERNAL, "FP8: unsupported dtype %s", tc_dtype_name(dt));
    /* The scale as the weight's dtype holds it, the quotient rounded to
     * that dtype (identities for float32). */
    float s_dt;
    uint8_t tmp[4];
    tc_store_f32(tmp, dt, 0, s);
    s_dt = tc_load_f32(tmp, dt, 0);
    const size_t n = (size_t)rows * (size_t)cols;
    for (size_t i = 0; i < n; i++) {
        tc_store_f32(tmp, dt, 0, tc_load_f32(w, dt, i) / s_dt);
        const float d = tc_load_f32(tmp, dt, 0);
        q[i] = isnan(d) ? 0x7F : tc_f32_to_e4m3fn(d);
    }
    return TC_OK;
}

tc_status tc_hf_fp8_pcpt_quantize_rows(const void *w, tc_dtype dt, int64_t rows, int64_t cols,
                                       uint8_t *q, float *scales)
{
    if (dt != TC_DT_F32 && dt != TC_DT_F16 && dt != TC_DT_BF16)
        return tc_fail(TC_E_INTERNAL, "FP8 per channel: unsupported dtype %s", tc_dtype_name(dt));
    for (int64_t r = 0; r < rows; r++) {
        const size_t i0 = (size_t)r * (size_t)cols;
        float amax = 0.0f;
        for (int64_t k = 0; k < cols; k++)
            amax = fmaxf(amax, fabsf(tc_load_f32(w, dt, i0 + (size_t)k)));
        const float s = tc_fp8_tensor_scale(amax);
        scales[r] = s;
        for (int64_t k = 0; k < cols; k++) {
            const float d = tc_load_f32(w, dt, i0 + (size_t)k) / s;
            q[i0 + (size_t)k] = isnan(d) ? 0x7F : tc_f32_to_e4m3fn(d);
        }
    }
    return TC_OK;
}

/* ---- the plan ---- */

/* A layer linear's name "model.layers.L.<module>.<suffix>": L, the linear
 * (calib_stats.h) and the suffix; -1 when the name is not one. */
static int64_t parse_linear(const char *name, tc_linear *lin, const char **suffix)
{
    static const struct { const char *module; tc_linear lin; } mods[] = {
        { "self_attn.q_proj.", TC_LIN_Q }, { "self_attn.k_proj.", TC_LIN_K },
        { "self_attn.v_proj.", TC_LIN_V }, { "self_attn.o_proj.", TC_LIN_O },
        { "mlp.gate_proj.", TC_LIN_GATE }, { "mlp.up_proj.", TC_LIN_UP },
        { "mlp.down_proj.", TC_LIN_DOWN },
    };
    long long g;
    int used = 0;
    if (sscanf(name, "model.layers.%lld.%n", &g, &used) != 1 || used == 0 || g < 0)
        return -1;
    for (size_t i = 0; i < sizeof mods / sizeof mods[0]; i++) {
        const size_t n = strlen(mods[i].module);
        if (!strncmp(name + used, mods[i].module, n)) {
            *lin = mods[i].lin;
            *suffix = name + used + n;
            return g;
        }
    }
    return -1;
}

/* The linears whose maxima a linear's scales share (hf_quant.h). */
static int fused_group(tc_linear lin, tc_linear group[3])
{
    if (lin == TC_LIN_Q || lin == TC_LIN_K || lin == TC_LIN_V) {
        group[0] = TC_LIN_Q, group[1] = TC_LIN_K, group[2] = TC_LIN_V;
        return 3;
    }
    if (lin == TC_LIN_GATE || lin == TC_LIN_UP) {
        group[0] = TC_LIN_GATE, group[1] = TC_LIN_UP;
        return 2;
    }
    group[0] = lin;
    return 1;
}

static float group_max(const tc_calib_stats *s, int64_t layer, tc_linear lin, tc_stat_kind k)
{
    tc_linear g[3];
    const int n = fused_group(lin, g);
    float m = 0.0f;
    for (int i = 0; i < n; i++) {
        int64_t len = 0;
        const float *v = tc_calib_get(s, layer, g[i], k, &len);
        for (int64_t j = 0; v && j < len; j++)
            m = fmaxf(m, v[j]);
    }
    return m;
}

/* Append t (moved) to the new tensor array. */
typedef struct tensor_vec {
    tc_plan_tensor *v;
    size_t n, cap;
} tensor_vec;

static tc_status push(tensor_vec *a, const tc_plan_tensor *t)
{
    if (a->n == a->cap) {
        const size_t cap = a->cap ? 2 * a->cap : 256;
        tc_plan_tensor *v = realloc(a->v, cap * sizeof *v);
        if (!v)
            return tc_fail(TC_E_INTERNAL, "out of memory rewriting the plan");
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = *t;
    return TC_OK;
}

/* A scale tensor `<module>.<suffix>`: 0-dim F32 constant (ndim 0, from
 * layer `layer`'s statistics and gated on it), or a tensor [d0] / [d0, d1]
 * of dt filled by the work on weight `of`. */
static tc_status push_scale(tensor_vec *a, const char *module, const char *suffix, int ndim,
                            tc_dtype dt, int64_t d0, int64_t d1, int of, int64_t layer)
{
    tc_plan_tensor t;
    memset(&t, 0, sizeof t);
    if ((size_t)snprintf(t.name, sizeof t.name, "%s.%s", module, suffix) >= sizeof t.name)
        return tc_fail(TC_E_INTERNAL, "tensor name too long: %s.%s", module, suffix);
    t.dtype = t.slice_dtype = dt;
    t.ndim = ndim;
    t.scale_index = -1;
    t.scale_of = of;
    if (ndim == 0) {
        /* A scalar scale is computed from its layer's statistics. */
        t.gated = true;
        t.gate_layer = layer;
        t.rows = t.cols = 1;
        t.constant = true;
        t.n_constant = 1;
        t.constant_values = calloc(1, sizeof(float));
        if (!t.constant_values)
            return tc_fail(TC_E_INTERNAL, "out of memory rewriting the plan");
    } else {
        t.rows = t.shape[0] = d0;
        t.cols = ndim == 2 ? (t.shape[1] = d1) : 1;
    }
    tc_status st = push(a, &t);
    if (st != TC_OK)
        free(t.constant_values);
    return st;
}

/* The loaders fuse q/k/v and gate/up into one linear and refuse one whose
 * parts are not all quantized alike (vLLM's is_layer_skipped: "some but not
 * all shards"): an exclusion must take a fused group whole. */
static tc_status check_fused_exclusions(const tc_hf_quant *q, int64_t layers)
{
    static const char *const groups[2][3] = {
        { "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj" },
        { "mlp.gate_proj", "mlp.up_proj", NULL },
    };
    for (int64_t g = 0; g < layers; g++)
        for (int k = 0; k < 2; k++) {
            char first[96], m[96];
            snprintf(first, sizeof first, "model.layers.%lld.%s", (long long)g, groups[k][0]);
            const bool ex = tc_hf_module_excluded(q, first);
            for (int i = 1; i < 3 && groups[k][i]; i++) {
                snprintf(m, sizeof m, "model.layers.%lld.%s", (long long)g, groups[k][i]);
                if (tc_hf_module_excluded(q, m) != ex)
                    return tc_fail(TC_E_USAGE, "--exclude_modules: %s is %s but %s is not; the "
                                   "engines fuse them into one linear and need all of its parts "
                                   "quantized alike (exclude the whole group, e.g. "
                                   "model.layers.%lld.%s)", ex ? first : m, "excluded",
                                   ex ? m : first, (long long)g, k ? "mlp.*" : "self_attn.*");
            }
        }
    return TC_OK;
}

tc_status tc_hf_quant_rewrite(const tc_hf_quant *q, tc_plan *p)
{
    if (q->algo == TC_HF_ALGO_NONE && !q->kv_fp8)
        return TC_OK;
    if (q->algo != TC_HF_ALGO_NONE)
        TC_TRY(check_fused_exclusions(q, p->layers_total));
    tensor_vec a = { 0 };
    tc_status st = TC_OK;
    size_t i = 0;
    for (; st == TC_OK && i < p->n_tensors; i++) {
        tc_plan_tensor t = p->tensors[i];
        tc_linear lin;
        const char *suffix = NULL;
        const int64_t g = parse_linear(t.name, &lin, &suffix);
        char module[sizeof t.name];
        snprintf(module, sizeof module, "%.*s", suffix ? (int)(suffix - t.name - 1) : 0, t.name);
        const bool quantize = t.linear && g >= 0 && !strcmp(suffix, "weight") &&
                              q->algo != TC_HF_ALGO_NONE && !tc_hf_module_excluded(q, module);
        if (quantize && t.slice_dtype != TC_DT_F16 && t.slice_dtype != TC_DT_BF16 &&
            t.slice_dtype != TC_DT_F32)
            st = tc_fail(TC_E_INPUT, "%s: %s quantizes float weights, not %s", t.name,
                         tc_hf_algo_name(q->algo), tc_dtype_name(t.slice_dtype));
        if (st == TC_OK && quantize && q->algo == TC_HF_ALGO_NVFP4 && t.cols % TC_NVFP4_BLOCK)
            st = tc_fail(TC_E_INPUT, "%s: NVFP4 needs the input dimension (%lld) to be a multiple "
                         "of %d; exclude the module (--exclude_modules %s)", t.name,
                         (long long)t.cols, TC_NVFP4_BLOCK, module);
        if (st != TC_OK)
            break;
        /* The KV cache scales go before o_proj (after q, k, v and biases). */
        if (q->kv_fp8 && g >= 0 && lin == TC_LIN_O && !strcmp(suffix, "weight")) {
            char kv[96];
            snprintf(kv, sizeof kv, "model.layers.%lld.self_attn.k_proj", (long long)g);
            st = push_scale(&a, kv, "k_scale", 0, TC_DT_F32, 0, 0, -1, g);
            snprintf(kv, sizeof kv, "model.layers.%lld.self_attn.v_proj", (long long)g);
            if (st == TC_OK)
                st = push_scale(&a, kv, "v_scale", 0, TC_DT_F32, 0, 0, -1, g);
            if (st != TC_OK)
                break;
        }
        const int w = (int)a.n;
        if (quantize) {
            t.hf_quant = (int)q->algo;
            /* Its values need layer g's statistics (FP8 per channel takes
             * its scales from the weight alone). */
            t.gated = q->algo != TC_HF_ALGO_FP8_PC_PT;
            t.gate_layer = g;
            t.dtype = q->algo == TC_HF_ALGO_NVFP4 ? TC_DT_U8 : TC_DT_F8_E4M3;
            if (q->algo == TC_HF_ALGO_NVFP4)
                t.shape[1] = t.cols / 2;
            if (q->algo != TC_HF_ALGO_FP8)
                t.scale_index = w + 1;
        }
        st = push(&a, &t);
        if (st == TC_OK) {            /* moved into a */
            p->tensors[i].pieces = NULL;
            p->tensors[i].constant_values = NULL;
        }
        if (st == TC_OK && quantize) {
            if (q->algo == TC_HF_ALGO_FP8) {
                st = push_scale(&a, module, "weight_scale", 0, TC_DT_F32, 0, 0, -1, g);
                if (st == TC_OK)
                    st = push_scale(&a, module, "input_scale", 0, TC_DT_F32, 0, 0, -1, g);
            } else if (q->algo == TC_HF_ALGO_FP8_PC_PT) {
                st = push_scale(&a, module, "weight_scale", 1, TC_DT_F32, t.rows, 0, w, g);
            } else {
                st = push_scale(&a, module, "weight_scale", 2, TC_DT_F8_E4M3, t.rows,
                                t.cols / TC_NVFP4_BLOCK, w, g);
                if (st == TC_OK)
                    st = push_scale(&a, module, "weight_scale_2", 0, TC_DT_F32, 0, 0, -1, g);
                if (st == TC_OK)
                    st = push_scale(&a, module, "input_scale", 0, TC_DT_F32, 0, 0, -1, g);
            }
        }
    }
    if (st != TC_OK) {
        /* The plan keeps what was not moved; a's tensors are freed here. */
        for (size_t k = 0; k < a.n; k++) {
            free(a.v[k].pieces);
            free(a.v[k].constant_values);
        }
        free(a.v);
        return st;
    }
    free(p->tensors);
    p->tensors = a.v;
    p->n_tensors = a.n;
    tc_plan_recount(p);
    return TC_OK;
}

tc_status tc_hf_quant_fill(const tc_hf_quant *q, const tc_calib_stats *s, tc_plan *p,
                           int64_t layer)
{
    for (size_t i = 0; i < p->n_tensors; i++) {
        tc_plan_tensor *t = &p->tensors[i];
        tc_linear lin;
        const char *suffix = NULL;
        const int64_t g = parse_linear(t->name, &lin, &suffix);
        const bool scalar = t->constant && t->ndim == 0;
        if (g < 0 || (layer >= 0 && g != layer) ||
            !(scalar || (t->hf_quant && t->hf_quant != TC_HF_ALGO_FP8_PC_PT)))
            continue;
        if (!s)
            return tc_fail(TC_E_INTERNAL, "%s: a scale without calibration statistics", t->name);
        if (g >= s->d.layers)
            return tc_fail(TC_E_INTERNAL, "%s: layer beyond the statistics", t->name);
        const float w_amax = group_max(s, g, lin, TC_STAT_W);
        const float x_amax = group_max(s, g, lin, TC_STAT_X);
        float v = 0.0f;
        if (!strcmp(suffix, "weight")) {
            t->fp8_scale = t->hf_quant == TC_HF_ALGO_NVFP4 ? tc_nvfp4_global_scale(w_amax)
                                                            : tc_hf_fp8_weight_scale(w_amax);
            continue;
        } else if (!strcmp(suffix, "weight_scale")) {
            v = tc_hf_fp8_weight_scale(w_amax);
        } else if (!strcmp(suffix, "weight_scale_2")) {
            v = tc_nvfp4_global_scale(w_amax);
        } else if (!strcmp(suffix, "input_scale")) {
            v = q->algo == TC_HF_ALGO_NVFP4 ? tc_nvfp4_input_scale(x_amax)
                                            : tc_fp8_tensor_scale(x_amax);
        } else if (!strcmp(suffix, "k_scale") || !strcmp(suffix, "v_scale")) {
            int64_t len = 0;
            const float *y = tc_calib_get(s, g, lin, TC_STAT_Y, &len);
            float m = 0.0f;
            for (int64_t j = 0; y && j < len; j++)
                m = fmaxf(m, y[j]);
            v = fmaxf(1.0f, m * (1.0f / TC_FP8_E4M3_MAX));
        } else {
            return tc_fail(TC_E_INTERNAL, "%s: unknown scale", t->name);
        }
        if (!isfinite(v) || v <= 0.0f)
            return tc_fail(TC_E_INPUT, "%s: scale %g from the calibration statistics is not a "
                           "positive finite number", t->name, (double)v);
        t->constant_values[0] = v;
    }
    return TC_OK;
}
