/* fp8.c: the FP8 methods of the table (method.h) and the rowwise weight
 * quantization (fp8.h); sources in docs/fp8.md.
 *
 * FP8 KV cache, as TensorRT-LLM v0.12 writes it (convert.py
 * load_weights_from_hf_model, the `elif fp8_kv_cache` branch: "FIXME: set
 * it to 1.0f for fp8 kv cache"): every layer gets
 * attention.kv_cache_scaling_factor, float32 [1], value 1.0, and
 * config.json kv_cache_quant_algo "FP8"; the weights are as without it.
 * FP8 rowwise: a plan rewrite of the MLP linears of layers 1..L-2, whose
 * rows the conversion workers quantize (tc_fp8_rowwise_quantize_rows, or
 * kernels/fp8.cu on a GPU rank). */
#include "trtconv/quant/method.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "trtconv/core/log.h"
#include "trtconv/quant/fp8.h"

static const char qkv_suffix[] = ".attention.qkv.weight";

tc_status tc_fp8_kv_plan(const tc_quant_settings *q, tc_plan *p)
{
    (void)q;
    /* One scale per layer of the cell, named after its qkv weight (the
     * writer orders the tensors, so appending them is enough). */
    const size_t n = p->n_tensors;
    for (size_t i = 0; i < n; i++) {
        const char *name = p->tensors[i].name;
        const size_t len = strlen(name), sl = sizeof qkv_suffix - 1;
        if (len <= sl || strcmp(name + len - sl, qkv_suffix) != 0)
            continue;
        char scale[sizeof p->tensors[i].name];
        snprintf(scale, sizeof scale, "%.*s.attention.kv_cache_scaling_factor",
                 (int)(len - sl), name);
        const float one = 1.0f;
        TC_TRY(tc_plan_add_constant(p, scale, 1, 0, &one, 1));
    }
    return TC_OK;
}

/* ---- rowwise weights (fp8.h) ---- */

static float clampf_nan(float x, float lo, float hi)
{
    /* torch.clamp: NaN stays NaN. */
    return isnan(x) ? x : x < lo ? lo : x > hi ? hi : x;
}

/* A NaN computed on the GPU is CUDA's canonical 0x7FFFFFFF whatever its
 * inputs; the reference gives the same bits. */
static float cuda_nan(void)
{
    const uint32_t bits = UINT32_C(0x7FFFFFFF);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float tc_fp8_rowwise_scale(float amax)
{
    const float floor_s = (float)(1.0 / (448.0 * 512.0));
    const float s = amax * (1.0f / TC_FP8_E4M3_MAX);
    if (isnan(s))
        return cuda_nan();
    return s >= floor_s ? s : floor_s;
}

tc_status tc_fp8_rowwise_quantize_rows(const void *w, tc_dtype dt, int64_t rows, int64_t cols,
                                       const float clamp[2], uint8_t *q, float *scales)
{
    if (dt != TC_DT_F32 && dt != TC_DT_F16 && dt != TC_DT_BF16)
        return tc_fail(TC_E_INTERNAL, "FP8 rowwise: unsupported dtype %s", tc_dtype_name(dt));
    /* One row at a time, widened and clamped once: the maximum pass and the
     * quantizing pass read the same values. */
    float *x = malloc((size_t)(cols > 0 ? cols : 1) * sizeof *x);
    if (!x)
        return tc_fail(TC_E_INTERNAL, "FP8 rowwise: out of memory for a row of %lld",
                       (long long)cols);
    const size_t row_bytes = (size_t)cols * (tc_dtype_bits(dt) / 8);
    for (int64_t n = 0; n < rows; n++) {
        tc_convert(x, TC_DT_F32, (const uint8_t *)w + (size_t)n * row_bytes, dt, (size_t)cols);
        float amax = 0.0f;
        for (int64_t k = 0; k < cols; k++) {
            x[k] = clampf_nan(x[k], clamp[0], clamp[1]);
            const float a = fabsf(x[k]);
            if (a > amax || isnan(a))
                amax = isnan(amax) ? amax : a;
        }
        const float s = tc_fp8_rowwise_scale(amax);
        scales[n] = s;
        uint8_t *qr = q + (size_t)n * (size_t)cols;
        for (int64_t k = 0; k < cols; k++) {
            const float d = x[k] / s;
            /* NaN: CUDA's canonical NaN, positive, so E4M3 0x7F. */
            qr[k] = isnan(d) ? 0x7F
                             : tc_f32_to_e4m3fn(clampf_nan(d, -TC_FP8_E4M3_MAX, TC_FP8_E4M3_MAX));
        }
    }
    free(x);
    return TC_OK;
}

/* ---- per-tensor weights (fp8.h) ---- */

float tc_fp8_tensor_scale(float amax)
{
    /* export_amax: amax[amax == 0] = maxbound; clamp(finfo.tiny, finfo.max). */
    float a = amax == 0.0f ? TC_FP8_E4M3_MAX : amax;
    a = a < FLT_MIN ? FLT_MIN : a > FLT_MAX ? FLT_MAX : a;
    return a * (1.0f / TC_FP8_E4M3_MAX);
}

tc_status tc_fp8_tensor_quantize_rows(const void *w, tc_dtype dt, int64_t rows, int64_t cols,
                                      float s, uint8_t *q)
{
    if (dt != TC_DT_F32 && dt != TC_DT_F16 && dt != TC_DT_BF16)
        return tc_fail(TC_E_INTERNAL, "FP8 per tensor: unsupported dtype %s", tc_dtype_name(dt));
    float x[256];
    const size_t es = tc_dtype_bits(dt) / 8, n = (size_t)rows * (size_t)cols;
    for (size_t i0 = 0; i0 < n; i0 += 256) {
        const size_t m = n - i0 < 256 ? n - i0 : 256;
        tc_convert(x, TC_DT_F32, (const uint8_t *)w + i0 * es, dt, m);
        for (size_t i = 0; i < m; i++) {
            const float d = x[i] / s;
            q[i0 + i] = isnan(d) ? 0x7F : tc_f32_to_e4m3fn(d);
        }
    }
    return TC_OK;
}

/* ---- FP8 rowwise as a plan rewrite (method.h) ---- */

/* Global layer of a tensor "transformer.layers.<local>.…" of plan p, or -1. */
static int64_t global_layer(const tc_plan *p, const char *name)
{
    long long local;
    int used = 0;
    if (sscanf(name, "transformer.layers.%lld.%n", &local, &used) != 1 || used == 0)
        return -1;
    return p->layer0 + local;
}

static bool is_mlp_weight(const char *name)
{
    static const char *const suffix[3] = { ".mlp.fc.weight", ".mlp.gate.weight",
                                            ".mlp.proj.weight" };
    const size_t len = strlen(name);
    for (int i = 0; i < 3; i++) {
        const size_t sl = strlen(suffix[i]);
        if (len > sl && strcmp(name + len - sl, suffix[i]) == 0)
            return true;
    }
    return false;
}

tc_status tc_fp8_rowwise_plan(const tc_quant_settings *q, tc_plan *p)
{
    const float clamp[2] = { (float)q->clamp_val[0], (float)q->clamp_val[1] };
    const size_t n = p->n_tensors;
    int64_t last_layer = -1;
    for (size_t i = 0; i < n; i++) {
        tc_plan_tensor *t = &p->tensors[i];
        if (!is_mlp_weight(t->name))
            continue;
        const int64_t g = global_layer(p, t->name);
        /* v0.12 (load_weights_from_hf_model): the MLP linears only, and
         * Meta's recipe of leaving the first and last layer unquantized. */
        if (g <= 0 || g >= p->layers_total - 1) {
            if (t->dtype == TC_DT_F8_E4M3)
                return tc_fail(TC_E_INPUT, "%s: layer %lld's MLP weights are FP8 in the "
                               "checkpoint, but TensorRT-LLM v0.12 keeps the first and last "
                               "layer unquantized (it would store them without a scale)",
                               t->name, (long long)g);
            continue;
        }
        if (g != last_layer) {
            /* The Fp8Rowwise layers' clamp parameters, saved with the model. */
            last_layer = g;
            char name[sizeof t->name];
            const long long local = g - p->layer0;
            snprintf(name, sizeof name, "transformer.layers.%lld.mlp.clamp_val", local);
            TC_TRY(tc_plan_add_constant(p, name, 2, 0, clamp, 2));
            snprintf(name, sizeof name, "transformer.layers.%lld.post_layernorm.clamp_val", local);
            TC_TRY(tc_plan_add_constant(p, name, 2, 0, clamp, 2));
            t = &p->tensors[i]; /* the array may have moved */
        }
        if (!t->linear)
            continue; /* FP8 in the checkpoint: weight and scale as stored (plan.c) */
        const size_t len = strlen(t->name);
        char scale[sizeof t->name];
        snprintf(scale, sizeof scale, "%.*s.per_channel_scale", (int)(len - 7), t->name);
        const int64_t rows = t->rows;
        t->dtype = TC_DT_F8_E4M3;
        t->fp8_rowwise = true;
        t->fp8_clamp[0] = clamp[0];
        t->fp8_clamp[1] = clamp[1];
        TC_TRY(tc_plan_add_computed(p, scale, TC_DT_F32, 1, rows, 0));
        tc_plan_tensor *sc = &p->tensors[p->n_tensors - 1];
        sc->computed = false;
        sc->scale_of = (int)i;
        p->tensors[i].scale_index = (int)(p->n_tensors - 1);
    }
    tc_plan_recount(p);
    return TC_OK;
}
