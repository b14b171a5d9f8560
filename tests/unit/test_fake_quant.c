/* test_fake_quant.c: the reference steps of trtconv eval's quantized
 * engines (trtconv/fwd/fake_quant.h) against values worked out by hand from
 * TensorRT-LLM's kernels: cvt.rni.sat.s8.f32 rounding and saturation, the
 * E4M3 satfinite conversion, per-token and static input quantization and
 * their row factors, the dequantizing epilogue, the smoother division and
 * the KV cache's store-and-read-back. */
#include <check.h>
#include <math.h>
#include <string.h>

#include "check_main.h"
#include "trtconv/core/dtype.h"
#include "trtconv/fwd/fake_quant.h"

static const tc_fq_clamp NOCLAMP = { false, 0.0f, 0.0f };

START_TEST(int8_should_round_half_to_even_and_saturate)
{
    ck_assert(tc_fq_int8(0.5f) == 0.0f && tc_fq_int8(1.5f) == 2.0f);
    ck_assert(tc_fq_int8(-2.5f) == -2.0f && tc_fq_int8(2.5001f) == 3.0f);
    ck_assert(tc_fq_int8(127.4f) == 127.0f && tc_fq_int8(1e9f) == 127.0f);
    ck_assert(tc_fq_int8(-128.4f) == -128.0f && tc_fq_int8(-1e9f) == -128.0f);
    ck_assert(tc_fq_int8(-INFINITY) == -128.0f && tc_fq_int8(INFINITY) == 127.0f);
    ck_assert(tc_fq_int8(NAN) == 0.0f); /* the PTX conversion's NaN */
}
END_TEST

START_TEST(fp8_should_saturate_to_448_and_keep_nan)
{
    ck_assert(tc_fq_fp8(500.0f) == 448.0f && tc_fq_fp8(-1e30f) == -448.0f);
    ck_assert(tc_fq_fp8(INFINITY) == 448.0f);
    ck_assert(isnan(tc_fq_fp8(NAN)));
    /* 1.0625 is halfway between 1 and 1.125: to even (1). 1.1875 -> 1.25. */
    ck_assert(tc_fq_fp8(1.0625f) == 1.0f && tc_fq_fp8(1.1875f) == 1.25f);
    ck_assert(tc_fq_fp8(0x1p-9f) == 0x1p-9f && tc_fq_fp8(0x1p-11f) == 0.0f);
}
END_TEST

START_TEST(per_token_int8_should_scale_each_row_by_its_maximum)
{
    /* Row 0: max 2 -> x * 63.5, factor 2/127. Row 1: zeros -> the 1e-6
     * floor (float16-rounded), all zero. */
    const float x[8] = { 1.0f, -2.0f, 0.5f, 0.01f, 0, 0, 0, 0 };
    uint16_t h[8], q[8];
    for (int i = 0; i < 8; i++)
        h[i] = tc_f32_to_f16(x[i]);
    float row[2];
    tc_fq_act_rows(q, h, TC_DT_F16, 2, 4, TC_FQ_INT8, true, 0.0f, 0.0f, NOCLAMP, row);
    const float s = 127.0f / 2.0f;
    for (int i = 0; i < 4; i++)
        ck_assert_float_eq(tc_f16_to_f32(q[i]), rintf(tc_f16_to_f32(h[i]) * s));
    ck_assert_float_eq(row[0], 2.0f / 127.0f);
    ck_assert_float_eq(row[1], tc_round_to_dtype(TC_DT_F16, 1e-6f) / 127.0f);
    for (int i = 4; i < 8; i++)
        ck_assert(q[i] == 0);
    /* In place, the same. */
    tc_fq_act_rows(h, h, TC_DT_F16, 2, 4, TC_FQ_INT8, true, 0.0f, 0.0f, NOCLAMP, row);
    ck_assert_mem_eq(h, q, sizeof q);
}
END_TEST

START_TEST(per_token_fp8_should_bound_the_scale)
{
    /* A row of tiny values: 448 / a would exceed 448 * 512, so the scale is
     * capped and the factor floored at 1 / (448 * 512). */
    const float x[2] = { 1e-5f, -2e-6f };
    float q[2], row[1];
    tc_fq_act_rows(q, x, TC_DT_F32, 1, 2, TC_FQ_FP8, true, 0.0f, 0.0f, NOCLAMP, row);
    ck_assert_float_eq(row[0], 1.0f / (448.0f * 512.0f));
    ck_assert_float_eq(q[0], tc_fq_fp8(1e-5f * 448.0f * 512.0f));
    /* A regular row: the maximum maps to 448. */
    const float y[2] = { 3.0f, -1.5f };
    tc_fq_act_rows(q, y, TC_DT_F32, 1, 2, TC_FQ_FP8, true, 0.0f, 0.0f, NOCLAMP, row);
    ck_assert_float_eq(q[0], 448.0f);
    ck_assert_float_eq(q[1], -224.0f);
    ck_assert_float_eq(row[0], 3.0f / 448.0f);
}
END_TEST

START_TEST(clamp_should_bound_the_row_before_its_maximum)
{
    /* FP8 rowwise's clamp_val [-1200, 1200]: 5000 counts as 1200. */
    const float x[2] = { 5000.0f, -600.0f };
    float q[2], row[1];
    const tc_fq_clamp c = { true, -1200.0f, 1200.0f };
    tc_fq_act_rows(q, x, TC_DT_F32, 1, 2, TC_FQ_FP8, true, 0.0f, 0.0f, c, row);
    ck_assert_float_eq(row[0], 1200.0f / 448.0f);
    ck_assert_float_eq(q[0], 448.0f);
    ck_assert_float_eq(q[1], -224.0f);
    /* A NaN is clamped to the lower bound (maxNum / minNum, as __hmax / __hmin). */
    const float y[2] = { NAN, 1.0f };
    tc_fq_act_rows(q, y, TC_DT_F32, 1, 2, TC_FQ_FP8, true, 0.0f, 0.0f, c, row);
    ck_assert_float_eq(q[0], -448.0f);
}
END_TEST

START_TEST(static_input_should_use_the_given_scale_and_factor)
{
    const float x[3] = { 0.3f, -10.0f, 1.0f };
    float q[3], row[1];
    tc_fq_act_rows(q, x, TC_DT_F32, 1, 3, TC_FQ_INT8, false, 50.0f, 0.02f, NOCLAMP, row);
    ck_assert(q[0] == 15.0f && q[1] == -128.0f && q[2] == 50.0f);
    ck_assert_float_eq(row[0], 0.02f);
}
END_TEST

START_TEST(nvfp4_inputs_should_round_each_block_of_16_to_e2m1_times_its_scale)
{
    /* Global scale 1: a block whose maximum is 6 gets the scale 1 and its
     * values the E2M1 grid, ties to the even code (0.25 -> 0, 0.75 -> 1,
     * 1.25 -> 1, 1.75 -> 2, 2.5 -> 2, 3.5 -> 4, 5 -> 4); a block of zeros
     * scale 0 and zeros; a block with maximum 12 the scale 2 (12 -> 6 * 2,
     * 3 -> 1.5 * 2, 0.9 -> 0.5 * 2). */
    float x[48] = { 0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f, 6.0f, -0.3f, -0.2f, 0.0f,
                    -6.0f, 0.1f, 2.9f, 4.9f, -1.1f };
    const float want0[16] = { 0.0f, 1.0f, 1.0f, 2.0f, 2.0f, 4.0f, 4.0f, 6.0f, -0.5f, 0.0f, 0.0f,
                              -6.0f, 0.0f, 3.0f, 4.0f, -1.0f };
    x[32] = 12.0f, x[33] = 3.0f, x[34] = 0.9f, x[35] = -12.0f;
    float q[48], row[1];
    ck_assert_float_eq(tc_fq_e2m1(7.5f), 6.0f);
    ck_assert_float_eq(tc_fq_e2m1(-2.75f), -3.0f);
    tc_fq_act_rows(q, x, TC_DT_F32, 1, 48, TC_FQ_NVFP4, false, 1.0f, 1.0f, NOCLAMP, row);
    for (int i = 0; i < 16; i++)
        ck_assert_msg(q[i] == want0[i], "element %d: %g, want %g", i, (double)q[i],
                      (double)want0[i]);
    for (int i = 16; i < 32; i++)
        ck_assert(q[i] == 0.0f);
    ck_assert(q[32] == 12.0f && q[33] == 3.0f && q[34] == 1.0f && q[35] == -12.0f &&
              q[36] == 0.0f);
    ck_assert_float_eq(row[0], 1.0f);
    /* Global scale 0.5: the block scale doubles (g = 2), the values stay. */
    tc_fq_act_rows(q, x, TC_DT_F32, 1, 48, TC_FQ_NVFP4, false, 0.5f, 0.5f, NOCLAMP, row);
    ck_assert(q[7] == 12.0f && q[5] == 8.0f && q[32] == 24.0f);
    ck_assert_float_eq(row[0], 0.5f);
}
END_TEST

START_TEST(dequant_should_multiply_row_and_column_factors)
{
    const float acc[4] = { 100.0f, -50.0f, 3.0f, 7.0f };
    const float row[2] = { 0.5f, 2.0f }, col[2] = { 0.1f, 3.0f };
    float out[4];
    tc_fq_dequant(out, true, acc, row, col, true, NULL, TC_DT_F32, 2, 2);
    ck_assert_float_eq(out[0], 100.0f * 0.5f * 0.1f);
    ck_assert_float_eq(out[1], -50.0f * 0.5f * 3.0f);
    ck_assert_float_eq(out[3], 7.0f * 2.0f * 3.0f);
    /* One factor for the tensor; rounded to float16. */
    uint16_t h[4];
    tc_fq_dequant(h, false, acc, row, col, false, NULL, TC_DT_F16, 2, 2);
    ck_assert(h[2] == tc_f32_to_f16(3.0f * 2.0f * 0.1f));
}
END_TEST

START_TEST(div_cols_and_qdq_should_round_once_to_the_dtype)
{
    uint16_t h[2] = { tc_f32_to_f16(1.0f), tc_f32_to_f16(1.0f) };
    const float s[2] = { 3.0f, 0.5f };
    tc_fq_div_cols(h, s, TC_DT_F16, 1, 2);
    ck_assert(h[0] == tc_f32_to_f16(1.0f / 3.0f) && h[1] == tc_f32_to_f16(2.0f));
    /* The KV cache: int8 with scale 0.1 stores round(x / 0.1). */
    float v[3] = { 0.26f, -20.0f, 0.04f };
    tc_fq_qdq(v, TC_DT_F32, 3, TC_FQ_INT8, 1.0f / 0.1f, 0.1f);
    ck_assert_float_eq(v[0], 3.0f * 0.1f);
    ck_assert_float_eq(v[1], -128.0f * 0.1f);
    ck_assert_float_eq(v[2], 0.0f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fake_quant");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, int8_should_round_half_to_even_and_saturate);
    tcase_add_test(tc, fp8_should_saturate_to_448_and_keep_nan);
    tcase_add_test(tc, per_token_int8_should_scale_each_row_by_its_maximum);
    tcase_add_test(tc, per_token_fp8_should_bound_the_scale);
    tcase_add_test(tc, clamp_should_bound_the_row_before_its_maximum);
    tcase_add_test(tc, static_input_should_use_the_given_scale_and_factor);
    tcase_add_test(tc, dequant_should_multiply_row_and_column_factors);
    tcase_add_test(tc, nvfp4_inputs_should_round_each_block_of_16_to_e2m1_times_its_scale);
    tcase_add_test(tc, div_cols_and_qdq_should_round_once_to_the_dtype);
    suite_add_tcase(s, tc);
    return tc_check_run(s);
}
