/* test_calib_stats.c: the statistics container and its HDF5 file
 * (calib_stats.h), and the scalar pieces of SmoothQuant (sq.h) on
 * hand-checked values. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_tmpdir.h"
#include "trtconv/build_config.h"
#include "trtconv/calib/calib_stats.h"
#include "trtconv/core/log.h"
#include "trtconv/quant/sq.h"

static char g_dir[512];
static const tc_calib_dims DIMS = { 2, 8, 2, 1, 4, 12, 20, 0 }; /* layers hidden heads kv hd inter vocab experts */

START_TEST(offsets_should_tile_the_buffer_without_gaps)
{
    tc_calib_stats s;
    ck_assert_int_eq(tc_calib_stats_alloc(&DIMS, &s), TC_OK);
    /* per layer: q 8+8+8, k 8+4+4, v 8+4+4, o 8+8+8, gate 8+12+12, up same, down 12+8+8 */
    ck_assert_uint_eq(s.n, 2 * (24 + 16 + 16 + 24 + 32 + 32 + 28) + (8 + 20 + 20));
    size_t expect = 0;
    ck_assert_uint_eq(tc_calib_entry_count(&DIMS), 2 * 7 * 3 + 3);
    for (size_t e = 0; e < tc_calib_entry_count(&DIMS); e++) {
        int64_t layer, n;
        tc_linear lin;
        tc_stat_kind k;
        tc_calib_entry(&DIMS, e, &layer, &lin, &k);
        float *p = tc_calib_get(&s, layer, lin, k, &n);
        ck_assert_uint_eq((size_t)(p - s.data), expect);
        expect += (size_t)n;
    }
    int64_t layer;
    tc_linear lin;
    tc_stat_kind k;
    tc_calib_entry(&DIMS, 3 * 7 + 3 * 3 + 1, &layer, &lin, &k);
    ck_assert(layer == 1 && lin == TC_LIN_O && k == TC_STAT_Y);
    tc_calib_entry(&DIMS, 2 * 7 * 3 + 2, &layer, &lin, &k);
    ck_assert(layer == -1 && lin == TC_LIN_LM_HEAD && k == TC_STAT_W);
    char path[64];
    tc_calib_entry_path(1, TC_LIN_O, TC_STAT_Y, path, sizeof path);
    ck_assert_str_eq(path, "/layers/1/o_proj/y");
    ck_assert_uint_eq(expect, s.n);
    ck_assert_int_eq(tc_calib_in_dim(&DIMS, TC_LIN_O), 8);
    ck_assert_int_eq(tc_calib_out_dim(&DIMS, TC_LIN_K), 4);
    ck_assert_int_eq(tc_calib_in_dim(&DIMS, TC_LIN_DOWN), 12);
    tc_calib_stats_free(&s);
}
END_TEST

START_TEST(moe_statistics_should_stack_the_experts_mlp_only)
{
    tc_calib_dims d = DIMS;
    d.experts = 3;
    tc_calib_stats s;
    ck_assert_int_eq(tc_calib_stats_alloc(&d, &s), TC_OK);
    /* the MLP linears x3: gate/up 3*(8+12+12), down 3*(12+8+8) */
    ck_assert_uint_eq(s.n, 2 * (24 + 16 + 16 + 24 + 3 * 32 + 3 * 32 + 3 * 28) + (8 + 20 + 20));
    ck_assert_int_eq(tc_calib_stack(&d, TC_LIN_UP), 3);
    ck_assert_int_eq(tc_calib_stack(&d, TC_LIN_O), 1);
    int64_t n;
    float *gx = tc_calib_get(&s, 1, TC_LIN_GATE, TC_STAT_X, &n);
    ck_assert_int_eq(n, 3 * 8);
    ck_assert_ptr_eq(tc_calib_get(&s, 1, TC_LIN_GATE, TC_STAT_Y, &n), gx + 24);
    ck_assert_int_eq(n, 3 * 12);
    ck_assert_ptr_eq(tc_calib_get(&s, 1, TC_LIN_UP, TC_STAT_X, NULL), gx + 24 + 36 + 36);
    /* Every used maximum non-zero except down_proj's y (not collected). */
    for (size_t i = 0; i < s.n; i++)
        s.data[i] = 1.0f;
    for (int64_t L = 0; L < 2; L++) {
        float *y = tc_calib_get(&s, L, TC_LIN_DOWN, TC_STAT_Y, &n);
        memset(y, 0, (size_t)n * sizeof *y);
    }
    ck_assert_int_eq(tc_calib_stats_check_scales(&s, "t"), TC_OK);
    memset(tc_calib_get(&s, 1, TC_LIN_UP, TC_STAT_Y, &n), 0, 3 * 12 * sizeof(float));
    tc_clear_first_error();
    ck_assert_int_eq(tc_calib_stats_check_scales(&s, "t"), TC_E_INPUT);
    ck_assert_ptr_nonnull(strstr(tc_first_error(), "layer 1 mlp.up_proj"));
#if TRTCONV_HAVE_HDF5
    /* The file names its experts; a dense file does not serve an MoE model. */
    char path[600], dense[600];
    snprintf(path, sizeof path, "%s/moe.h5", g_dir);
    ck_assert_int_eq(tc_calib_stats_write_h5(&s, path), TC_OK);
    tc_calib_stats r;
    ck_assert_int_eq(tc_calib_stats_read_h5(path, &d, &r), TC_OK);
    ck_assert_mem_eq(r.data, s.data, s.n * sizeof(float));
    tc_calib_stats_free(&r);
    tc_clear_first_error();
    ck_assert_int_eq(tc_calib_stats_read_h5(path, &DIMS, &r), TC_E_INPUT);
    ck_assert_ptr_nonnull(strstr(tc_first_error(), "num_experts = 3"));
    tc_calib_stats ds;
    ck_assert_int_eq(tc_calib_stats_alloc(&DIMS, &ds), TC_OK);
    snprintf(dense, sizeof dense, "%s/dense.h5", g_dir);
    ck_assert_int_eq(tc_calib_stats_write_h5(&ds, dense), TC_OK);
    tc_clear_first_error();
    ck_assert_int_eq(tc_calib_stats_read_h5(dense, &d, &r), TC_E_INPUT);
    ck_assert_ptr_nonnull(strstr(tc_first_error(), "no expert statistics"));
    tc_calib_stats_free(&ds);
#endif
    tc_calib_stats_free(&s);
}
END_TEST

START_TEST(check_should_name_the_first_layer_with_nan)
{
    tc_calib_stats s;
    ck_assert_int_eq(tc_calib_stats_alloc(&DIMS, &s), TC_OK);
    ck_assert_int_eq(tc_calib_stats_check(&s, "t"), TC_OK);
    tc_calib_get(&s, -1, TC_LIN_LM_HEAD, TC_STAT_Y, NULL)[3] = INFINITY;
    tc_calib_get(&s, 1, TC_LIN_DOWN, TC_STAT_X, NULL)[5] = NAN;
    tc_clear_first_error();
    ck_assert_int_eq(tc_calib_stats_check(&s, "t"), TC_E_INPUT);
    ck_assert_ptr_nonnull(strstr(tc_first_error(), "activations of layer 1 mlp.down_proj"));
    ck_assert_ptr_nonnull(strstr(tc_first_error(), "channel 5"));
    tc_calib_stats_free(&s);
}
END_TEST

#if TRTCONV_HAVE_HDF5
START_TEST(hdf5_should_round_trip_and_refuse_another_model)
{
    tc_calib_stats s, r;
    ck_assert_int_eq(tc_calib_stats_alloc(&DIMS, &s), TC_OK);
    for (size_t i = 0; i < s.n; i++)
        s.data[i] = (float)i * 0.25f;
    s.samples = 7;
    snprintf(s.model, sizeof s.model, "m");
    char path[600];
    snprintf(path, sizeof path, "%s/s.h5", g_dir);
    ck_assert_int_eq(tc_calib_stats_write_h5(&s, path), TC_OK);
    ck_assert_int_eq(tc_calib_stats_read_h5(path, &DIMS, &r), TC_OK);
    ck_assert_mem_eq(r.data, s.data, s.n * sizeof(float));
    ck_assert_int_eq(r.samples, 7);
    ck_assert_str_eq(r.model, "m");
    tc_calib_stats_free(&r);
    tc_calib_dims other = DIMS;
    other.inter = 16;
    tc_clear_first_error();
    ck_assert_int_eq(tc_calib_stats_read_h5(path, &other, &r), TC_E_INPUT);
    ck_assert_ptr_nonnull(strstr(tc_first_error(), "intermediate_size = 12"));
    ck_assert_ptr_null(r.data);
    /* Not HDF5 at all. */
    char bad[600];
    snprintf(bad, sizeof bad, "%s/bad.h5", g_dir);
    FILE *f = fopen(bad, "wb");
    fputs("not hdf5", f);
    fclose(f);
    ck_assert_int_eq(tc_calib_stats_read_h5(bad, &DIMS, &r), TC_E_INPUT);
    tc_calib_stats_free(&s);
}
END_TEST

START_TEST(hdf5_without_lm_head_should_read_back_as_absent)
{
    tc_calib_stats s, r;
    ck_assert_int_eq(tc_calib_stats_alloc(&DIMS, &s), TC_OK);
    for (size_t i = 0; i < s.n; i++)
        s.data[i] = 1.0f + (float)i;
    const size_t head = tc_calib_offset(&DIMS, -1, TC_LIN_LM_HEAD, TC_STAT_X);
    memset(s.data + head, 0, (s.n - head) * sizeof(float));
    s.lm_head_absent = true;
    char path[600];
    snprintf(path, sizeof path, "%s/nohead.h5", g_dir);
    ck_assert_int_eq(tc_calib_stats_write_h5(&s, path), TC_OK);
    ck_assert_int_eq(tc_calib_stats_read_h5(path, &DIMS, &r), TC_OK);
    ck_assert(r.lm_head_absent);
    ck_assert_mem_eq(r.data, s.data, s.n * sizeof(float));
    tc_calib_stats_free(&r);
    /* With lm_head written, it is read and not marked absent. */
    s.lm_head_absent = false;
    ck_assert_int_eq(tc_calib_stats_write_h5(&s, path), TC_OK);
    ck_assert_int_eq(tc_calib_stats_read_h5(path, &DIMS, &r), TC_OK);
    ck_assert(!r.lm_head_absent);
    tc_calib_stats_free(&r);
    tc_calib_stats_free(&s);
}
END_TEST
#endif

START_TEST(sq_scalars_should_follow_torch)
{
    /* fp16 pow: alpha 0.5 -> sqrt rounded to fp16; 0 -> 1; 1 -> identity */
    ck_assert(tc_sq_pow_f16(4.0f, 0.5) == 2.0f);
    ck_assert(tc_sq_pow_f16(2.0f, 0.5) == tc_sq_round_f16(sqrtf(2.0f)));
    ck_assert(tc_sq_pow_f16(3.0f, 0.0) == 1.0f);
    ck_assert(tc_sq_pow_f16(3.0f, 1.0) == 3.0f);
    /* s = sqrt(a) / sqrt_f16(w): a = 16, w = 4 -> 4 / 2 = 2 */
    ck_assert(tc_sq_smoother(16.0f, 4.0f, 0.5) == 2.0);
    /* clamp at 1e-5 */
    ck_assert(tc_sq_smoother(0.0f, 4.0f, 0.5) == 1e-5);
    /* alpha 1: s = a (no weight term) */
    ck_assert(tc_sq_smoother(3.0f, 100.0f, 1.0) == 3.0);
    /* fp16 rounding: 1 + 2^-11 is a tie, rounds to even (1.0) */
    ck_assert(tc_sq_round_f16(1.0f + 0x1p-11f) == 1.0f);
    ck_assert(tc_sq_round_f16(1.0f + 0x1p-10f + 0x1p-11f) == 1.0f + 0x1p-9f);
}
END_TEST

int main(void)
{
    tc_log_init(0, 1, NULL);
    tc_log_set_quiet(1);
    if (test_tmpdir_create(g_dir, sizeof g_dir, "calib") != 0)
        return 1;
    Suite *s = suite_create("calib_stats");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, offsets_should_tile_the_buffer_without_gaps);
    tcase_add_test(tc, check_should_name_the_first_layer_with_nan);
    tcase_add_test(tc, moe_statistics_should_stack_the_experts_mlp_only);
#if TRTCONV_HAVE_HDF5
    tcase_add_test(tc, hdf5_should_round_trip_and_refuse_another_model);
    tcase_add_test(tc, hdf5_without_lm_head_should_read_back_as_absent);
#endif
    tcase_add_test(tc, sq_scalars_should_follow_torch);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    test_tmpdir_remove(g_dir);
    return failed ? 1 : 0;
}
