/* nvfp4.c: see nvfp4.h. */
#include "trtconv/quant/nvfp4.h"

#include <float.h>
#include <math.h>
#include "trtconv/core/log.h"

static const float e2m1_values[8] = { 0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f };

uint8_t tc_e2m1_code(float v)
{
    /* ModelOpt: ord = the number of midpoints below |v| (searchsorted,
     * left), plus one at the midpoints whose upper neighbour has the even
     * code (0.75, 1.75, 3.5). Written as comparisons, a NaN passes none of
     * the "<=" tests and takes the last code. */
    static const float mid[7] = { 0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f };
    const uint8_t sign = v < 0.0f ? 8 : 0;
    const float a = fabsf(v);
    uint8_t ord = 7;
    for (uint8_t i = 0; i < 7; i++)
        if (a <= mid[i]) {
            ord = i;
            break;
        }
    if (a == 0.75f || a == 1.75f || a == 3.5f)
        ord++;
    return (uint8_t)(sign | ord);
}

float tc_e2m1_value(uint8_t code)
{
    const float v = e2m1_values[code & 7];
    return (code & 8) ? -v : v;
}

float tc_nvfp4_global_scale(float amax)
{
    return amax * (1.0f / (6.0f * 448.0f));
}

float tc_nvfp4_input_scale(float amax)
{
    /* export_amax: 0 -> maxbound (6 for E2M1), then clamped to float32's
     * normal range. */
    if (amax == 0.0f)
        amax = 6.0f;
    amax = fminf(fmaxf(amax, FLT_MIN), FLT_MAX);
    return amax * (1.0f / (6.0f * 448.0f));
}

tc_status tc_nvfp4_quantize_rows(const void *w, tc_dtype dt, int64_t rows, int64_t cols, float s2,
                                 uint8_t *packed, uint8_t *scales)
{
    if (cols % TC_NVFP4_BLOCK != 0)
        return tc_fail(TC_E_INPUT, "NVFP4: a row of %lld values is not a whole number of "
                       "blocks of %d", (long long)cols, TC_NVFP4_BLOCK);
    if (dt != TC_DT_F16 && dt != TC_DT_BF16 && dt != TC_DT_F32)
        return tc_fail(TC_E_INPUT, "NVFP4: weights of dtype %s", tc_dtype_name(dt));
    const float six_s2 = 6.0f * s2;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t b = 0; b < cols / TC_NVFP4_BLOCK; b++) {
            const size_t i0 = (size_t)(r * cols + b * TC_NVFP4_BLOCK);
            float amax = 0.0f;
            for (int k = 0; k < TC_NVFP4_BLOCK; k++)
                amax = fmaxf(amax, fabsf(tc_load_f32(w, dt, i0 + (size_t)k)));
            float bs = amax / six_s2;
            if (bs == 0.0f)
                bs = 1.0f;
            const uint8_t e = tc_f32_to_e4m3fn(bs);
            scales[(size_t)(r * (cols / TC_NVFP4_BLOCK) + b)] = e;
            const float d = tc_e4m3fn_to_f32(e) * s2;
            for (int k = 0; k < TC_NVFP4_BLOCK; k += 2) {
                const uint8_t lo = tc_e2m1_code(tc_load_f32(w, dt, i0 + (size_t)k) / d);
                const uint8_t hi = tc_e2m1_code(tc_load_f32(w, dt, i0 + (size_t)k + 1) / d);
                packed[(i0 + (size_t)k) / 2] = (uint8_t)(lo | hi << 4);
            }
        }
    return TC_OK;
}
