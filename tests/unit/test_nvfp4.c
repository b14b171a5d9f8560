/* test_nvfp4.c: NVFP4 as ModelOpt exports it (trtconv/quant/nvfp4.h):
 *  - the E2M1 code of every finite float16 value against a brute-force
 *    nearest-value search over the grid, ties to the even code, saturating
 *    at 6, -0 as +0;
 *  - the ties and the values just beside them by name;
 *  - whole rows: the per-tensor scale, the E4M3 block scales (a zero block
 *    gets 1.0), the packing (element 2i in the low nibble), and every value
 *    read back within half a grid step of the weight. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "trtconv/core/dtype.h"
#include "trtconv/core/log.h"
#include "trtconv/quant/nvfp4.h"

static const float grid[8] = { 0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f };

/* Independent: the nearest grid value by distance, the even code on a tie. */
static uint8_t brute(float v)
{
    const float a = fabsf(v);
    int best = 0;
    for (int i = 1; i < 8; i++) {
        const float d = fabsf(grid[i] - a), db = fabsf(grid[best] - a);
        if (d < db || (d == db && i % 2 == 0))
            best = i;
    }
    return (uint8_t)((v < 0.0f ? 8 : 0) | best);
}

START_TEST(every_float16_should_take_the_nearest_even_code)
{
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        const float v = tc_f16_to_f32((uint16_t)h);
        if (!isfinite(v))
            continue; /* the named cases below */
        if (tc_e2m1_code(v) != brute(v) && bad++ < 5)
            fprintf(stderr, "f16 0x%04x = %g: code %u, nearest %u\n", h, (double)v,
                    tc_e2m1_code(v), brute(v));
    }
    ck_assert_int_eq(bad, 0);
}
END_TEST

START_TEST(ties_and_saturation_should_follow_modelopt)
{
    const struct { float v; float want; } cases[] = {
        { 0.25f, 0.0f }, { 0.2500001f, 0.5f }, { 0.75f, 1.0f }, { 0.7499999f, 0.5f },
        { 1.25f, 1.0f }, { 1.75f, 2.0f }, { 2.5f, 2.0f }, { 2.5000002f, 3.0f },
        { 3.5f, 4.0f }, { 3.4999998f, 3.0f }, { 5.0f, 4.0f }, { 5.0000005f, 6.0f },
        { 6.0f, 6.0f }, { 1e30f, 6.0f }, { INFINITY, 6.0f }, { -1e30f, -6.0f },
        { -2.5f, -2.0f }, { -0.0f, 0.0f },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const uint8_t c = tc_e2m1_code(cases[i].v);
        ck_assert_msg(tc_e2m1_value(c) == cases[i].want, "%g -> %g, want %g",
                      (double)cases[i].v, (double)tc_e2m1_value(c), (double)cases[i].want);
    }
    ck_assert_int_eq(tc_e2m1_code(-0.0f), 0); /* no negative zero */
    ck_assert_int_eq(tc_e2m1_code(NAN), 7);
}
END_TEST

START_TEST(rows_should_scale_pack_and_round_trip)
{
    enum { R = 3, C = 64 };
    uint16_t w[R * C];
    float amax = 0.0f;
    srand(7);
    for (int i = 0; i < R * C; i++) {
        float v = (float)((rand() % 20001) - 10000) * 1e-4f * (i % 17 == 0 ? 30.0f : 1.0f);
        if (i >= C && i < C + 16)
            v = 0.0f; /* row 1, block 0: all zero */
        w[i] = tc_f32_to_f16(v);
        amax = fmaxf(amax, fabsf(tc_f16_to_f32(w[i])));
    }
    const float s2 = tc_nvfp4_global_scale(amax);
    ck_assert_float_eq(s2, amax * (1.0f / 2688.0f));
    uint8_t packed[R * C / 2], scales[R * C / 16];
    ck_assert_int_eq(tc_nvfp4_quantize_rows(w, TC_DT_F16, R, C, s2, packed, scales), TC_OK);
    ck_assert_int_eq(scales[C / 16], 0x38); /* the zero block: scale 1.0 */
    for (int r = 0; r < R; r++)
        for (int b = 0; b < C / 16; b++) {
            float bm = 0.0f;
            for (int k = 0; k < 16; k++)
                bm = fmaxf(bm, fabsf(tc_f16_to_f32(w[r * C + b * 16 + k])));
            const float bs = bm == 0.0f ? 1.0f : bm / (6.0f * s2);
            const uint8_t e = scales[r * (C / 16) + b];
            ck_assert_int_eq(e, tc_f32_to_e4m3fn(bs));
            const float d = tc_e4m3fn_to_f32(e) * s2;
            for (int k = 0; k < 16; k++) {
                const int i = r * C + b * 16 + k;
                const uint8_t code = (uint8_t)(packed[i / 2] >> (i % 2 ? 4 : 0)) & 15;
                const float x = tc_f16_to_f32(w[i]);
                ck_assert_int_eq(code, brute(x / d));
                /* Within half the grid's step at that magnitude (1 above 4). */
                const float a = fabsf(x / d), step = a > 4.0f ? 2.0f : a > 2.0f ? 1.0f : 0.5f;
                ck_assert(fabsf(tc_e2m1_value(code) * d - x) <= 0.5f * step * d * 1.0001f);
            }
        }
    ck_assert_int_eq(tc_nvfp4_quantize_rows(w, TC_DT_F16, 1, 40, s2, packed, scales),
                     TC_E_INPUT);
}
END_TEST

int main(void)
{
    tc_log_init(0, 1, NULL);
    tc_log_set_quiet(1);
    Suite *s = suite_create("nvfp4");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, every_float16_should_take_the_nearest_even_code);
    tcase_add_test(tc, ties_and_saturation_should_follow_modelopt);
    tcase_add_test(tc, rows_should_scale_pack_and_round_trip);
    suite_add_tcase(s, tc);
    return tc_check_run(s);
}
