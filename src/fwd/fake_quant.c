/* fake_quant.c: see fake_quant.h. */
#include "trtconv/fwd/fake_quant.h"

#include <math.h>

float tc_fq_int8(float v)
{
    if (isnan(v))
        return 0.0f;
    const float r = rintf(v); /* the default rounding mode: half to even */
    return r > 127.0f ? 127.0f : r < -128.0f ? -128.0f : r;
}

float tc_fq_fp8(float v)
{
    if (!isnan(v))
        v = v > 448.0f ? 448.0f : v < -448.0f ? -448.0f : v;
    return tc_e4m3fn_to_f32(tc_f32_to_e4m3fn(v));
}

float tc_fq_elem(int kind, float v)
{
    return kind == TC_FQ_FP8 ? tc_fq_fp8(v) : tc_fq_int8(v);
}

float tc_fq_e2m1(float v)
{
    static const float grid[8] = { 0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f };
    const float a = fabsf(v);
    int k = 7;
    if (!isnan(a))
        for (int i = 0; i < 7; i++) {
            const float mid = 0.5f * (grid[i] + grid[i + 1]);
            /* the midpoint goes to the even code: up from odd i */
            if (a < mid || (a == mid && i % 2 == 0)) {
                k = i;
                break;
            }
        }
    return v < 0.0f ? -grid[k] : grid[k];
}

/* One row of NVFP4 activations (fake_quant.h): blocks of 16. */
static void nvfp4_row(void *out, const void *x, tc_dtype dt, size_t r0, int64_t K, float s)
{
    const float g = 1.0f / s, inv_g = 1.0f / g;
    for (int64_t c0 = 0; c0 < K; c0 += TC_FQ_NVFP4_BLOCK) {
        float amax = 0.0f;
        for (int k = 0; k < TC_FQ_NVFP4_BLOCK; k++)
            amax = fmaxf(amax, fabsf(tc_load_f32(x, dt, r0 + (size_t)(c0 + k))));
        const float b = tc_fq_fp8(g * (amax * (1.0f / 6.0f)));
        const float o = b != 0.0f ? 1.0f / (b * inv_g) : 0.0f;
        for (int k = 0; k < TC_FQ_NVFP4_BLOCK; k++) {
            const size_t i = r0 + (size_t)(c0 + k);
            tc_store_f32(out, dt, i, tc_fq_e2m1(tc_load_f32(x, dt, i) * o) * b);
        }
    }
}

static float clamped(float v, tc_fq_clamp c)
{
    return c.on ? fminf(fmaxf(v, c.lo), c.hi) : v;
}

void tc_fq_act_rows(void *out, const void *x, tc_dtype dt, int64_t T, int64_t K, int kind,
                    bool per_token, float scale, float row_static, tc_fq_clamp clamp,
                    float *row)
{
    if (clamp.on) {
        clamp.lo = tc_round_to_dtype(dt, clamp.lo);
        clamp.hi = tc_round_to_dtype(dt, clamp.hi);
    }
    const float floor_dt = tc_round_to_dtype(dt, 1e-6f);
    for (int64_t t = 0; t < T; t++) {
        const size_t r0 = (size_t)(t * K);
        if (kind == TC_FQ_NVFP4) {
            nvfp4_row(out, x, dt, r0, K, scale);
            row[t] = row_static;
            continue;
        }
        float s = scale, rs = row_static;
        if (per_token) {
            float a = floor_dt;
            for (int64_t c = 0; c < K; c++)
                a = fmaxf(a, fabsf(clamped(tc_load_f32(x, dt, r0 + (size_t)c), clamp)));
            if (kind == TC_FQ_FP8) {
                s = fminf(448.0f / a, 448.0f * 512.0f);
                rs = fmaxf(a / 448.0f, 1.0f / (448.0f * 512.0f));
            } else {
                s = 127.0f / a;
                rs = a / 127.0f;
            }
        }
        for (int64_t c = 0; c < K; c++) {
            const size_t i = r0 + (size_t)c;
            tc_store_f32(out, dt, i, tc_fq_elem(kind, clamped(tc_load_f32(x, dt, i), clamp) * s));
        }
        row[t] = rs;
    }
}

void tc_fq_dequant(void *out, bool out_f32, const float *acc, const float *row, const float *col,
                   bool per_channel, const float *bias, tc_dtype dt, int64_t T, int64_t N)
{
    for (int64_t t = 0; t < T; t++)
        for (int64_t n = 0; n < N; n++) {
            const size_t i = (size_t)(t * N + n);
            float v = acc[i] * row[t] * col[per_channel ? n : 0];
            if (bias)
                v += bias[n];
            if (out_f32)
                ((float *)out)[i] = v;
            else
                tc_store_f32(out, dt, i, v);
        }
}

void tc_fq_div_cols(void *x, const float *s, tc_dtype dt, int64_t T, int64_t K)
{
    for (int64_t t = 0; t < T; t++)
        for (int64_t c = 0; c < K; c++) {
            const size_t i = (size_t)(t * K + c);
            tc_store_f32(x, dt, i, tc_load_f32(x, dt, i) / s[c]);
        }
}

void tc_fq_qdq(void *x, tc_dtype dt, size_t n, int kind, float to_q, float back)
{
    for (size_t i = 0; i < n; i++)
        tc_store_f32(x, dt, i, tc_fq_elem(kind, tc_load_f32(x, dt, i) * to_q) * back);
}
