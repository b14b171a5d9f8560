/* test_forward_inputs.c: the forward pass's host-side inputs: the JSON Lines
 * token reader (limits, truncation, hostile lines and their messages) and
 * the RoPE inverse frequencies of each rope_scaling kind, recomputed here
 * from transformers' formulas (modeling_rope_utils) in double precision. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_tmpdir.h"
#include "trtconv/fwd/fwd.h"
#include "trtconv/model/hf_model.h"
#include "trtconv/core/log.h"
#include "trtconv/calib/tokens.h"

static char g_dir[512];

static const char *write_file(const char *name, const char *text)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    return path;
}

START_TEST(tokens_should_keep_first_samples_in_order_truncated_and_skip_blank_lines)
{
    const char *p = write_file("a.jsonl", "{\"input_ids\": [5, 6, 7, 8]}\n\n"
                                         "{\"x\": 1, \"input_ids\": [9]}\r\n"
                                         "{\"input_ids\": [1, 2]}\n{\"input_ids\": [3]}\n");
    tc_token_set t;
    ck_assert_int_eq(tc_tokens_load_jsonl(p, 3, 3, 10, &t), TC_OK);
    ck_assert_uint_eq(t.n_seqs, 3);
    int64_t offs[] = { 0, 3, 4, 6 };
    int32_t ids[] = { 5, 6, 7, 9, 1, 2 };
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(t.offsets[i], offs[i]);
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(t.ids[i], ids[i]);
    tc_tokens_free(&t);
}
END_TEST

static void expect_refused(const char *text, const char *needle)
{
    const char *p = write_file("bad.jsonl", text);
    tc_token_set t;
    tc_clear_first_error();
    tc_status st = tc_tokens_load_jsonl(p, 100, 100, 10, &t);
    ck_assert_int_eq(st, TC_E_INPUT);
    ck_assert_msg(strstr(tc_first_error(), needle), "message \"%s\" lacks \"%s\"", tc_first_error(),
                  needle);
    ck_assert_ptr_null(t.ids);
}

START_TEST(tokens_should_refuse_hostile_lines_naming_file_line_and_rule)
{
    expect_refused("{\"input_ids\": [1]}\n{\"input_ids\": [10]}\n",
                   "bad.jsonl:2: input_ids[0] is not an integer token id in [0, 10)");
    expect_refused("{\"input_ids\": [-1]}\n", "input_ids[0] is not an integer");
}
END_TEST

START_TEST(tokens_should_refuse_structure_errors)
{
    expect_refused("[1, 2]\n", "bad.jsonl:1: a line must hold a JSON object");
    expect_refused("{\"input_ids\": [1]\n", "bad.jsonl:1: not valid JSON");
    expect_refused("{\"input_ids\": 3}\n", "\"input_ids\" must be an array");
    expect_refused("{\"input_ids\": []}\n", "\"input_ids\" is empty");
    expect_refused("{\"ids\": [1]}\n", "no \"input_ids\" array");
    expect_refused("{\"article\": \"x\"}\n", "make ids with trtconv-tokenize");
    expect_refused("{\"input_ids\": [1], \"input_ids\": [1]}\n", "key \"input_ids\" occurs twice");
    expect_refused("\n\n", "no token sequences (empty file)");
    expect_refused("{\"input_ids\": [\"1\"]}\n", "input_ids[0] is not an integer");
}
END_TEST

START_TEST(tokens_should_refuse_a_missing_file)
{
    tc_token_set t;
    tc_clear_first_error();
    ck_assert_int_eq(tc_tokens_load_jsonl("/nonexistent/x.jsonl", 1, 1, 1, &t), TC_E_INPUT);
    ck_assert_ptr_nonnull(strstr(tc_first_error(), "/nonexistent/x.jsonl"));
}
END_TEST

/* ---- RoPE ---- */

static tc_hf_config config_with(const char *scaling_json, double theta, int64_t head_dim,
                                int64_t max_pos)
{
    tc_hf_config c;
    memset(&c, 0, sizeof c);
    c.head_dim = head_dim;
    c.rope_theta = theta;
    c.max_position_embeddings = max_pos;
    c.rope_scaling = scaling_json ? cJSON_Parse(scaling_json) : NULL;
    return c;
}

static double default_inv(double theta, int64_t dim, int64_t i)
{
    return 1.0 / pow(theta, (double)(2 * i) / (double)dim);
}

START_TEST(rope_default_and_linear_should_follow_the_formula)
{
    tc_hf_config c = config_with(NULL, 500000.0, 128, 8192);
    float inv[64], sc;
    tc_fwd_rope_inv_freq(&c, 100, inv, &sc);
    ck_assert(sc == 1.0f);
    for (int i = 0; i < 64; i++)
        ck_assert_double_eq_tol(inv[i], default_inv(500000.0, 128, i), 4e-7 * default_inv(500000.0, 128, i));
    tc_hf_config l = config_with("{\"type\": \"linear\", \"factor\": 4.0}", 10000.0, 16, 64);
    ck_assert_int_eq(tc_fwd_rope_check(&l), TC_OK);
    tc_fwd_rope_inv_freq(&l, 100, inv, &sc);
    for (int i = 0; i < 8; i++)
        ck_assert_double_eq_tol(inv[i], default_inv(10000.0, 16, i) / 4.0, 4e-7 * inv[i]);
    tc_hf_config_free(&c);
    tc_hf_config_free(&l);
}
END_TEST

START_TEST(rope_dynamic_should_change_only_past_max_positions)
{
    tc_hf_config c = config_with("{\"rope_type\": \"dynamic\", \"factor\": 2.0}", 10000.0, 16, 16);
    float inv[8], sc;
    tc_fwd_rope_inv_freq(&c, 16, inv, &sc);
    for (int i = 0; i < 8; i++)
        ck_assert_double_eq_tol(inv[i], default_inv(10000.0, 16, i), 4e-7 * inv[i]);
    tc_fwd_rope_inv_freq(&c, 24, inv, &sc);
    double base = 10000.0 * pow(2.0 * 24 / 16 - 1.0, 16.0 / 14.0);
    for (int i = 0; i < 8; i++)
        ck_assert_double_eq_tol(inv[i], default_inv(base, 16, i), 2e-6 * inv[i]);
    tc_hf_config_free(&c);
}
END_TEST

START_TEST(rope_llama3_should_scale_low_keep_high_and_blend_medium_frequencies)
{
    tc_hf_config c = config_with("{\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0,"
                                 " \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192}",
                                 500000.0, 128, 131072);
    ck_assert_int_eq(tc_fwd_rope_check(&c), TC_OK);
    float inv[64], sc;
    tc_fwd_rope_inv_freq(&c, 10, inv, &sc);
    int low = 0, high = 0, mid = 0;
    for (int i = 0; i < 64; i++) {
        double f = default_inv(500000.0, 128, i), wl = 2 * 3.14159265358979323846 / f, want;
        if (wl < 8192.0 / 4.0) {
            want = f;
            high++;
        } else if (wl > 8192.0) {
            want = f / 8.0;
            low++;
        } else {
            double s = (8192.0 / wl - 1.0) / (4.0 - 1.0);
            want = (1 - s) * f / 8.0 + s * f;
            mid++;
        }
        ck_assert_double_eq_tol(inv[i], want, 2e-6 * want);
    }
    ck_assert(low > 0 && high > 0 && mid > 0);
    tc_hf_config_free(&c);
}
END_TEST

START_TEST(rope_check_should_refuse_unknown_kinds_and_missing_factors)
{
    tc_hf_config a = config_with("{\"rope_type\": \"yarn\", \"factor\": 4.0}", 1e4, 16, 64);
    tc_clear_first_error();
    ck_assert_int_eq(tc_fwd_rope_check(&a), TC_E_INPUT);
    ck_assert_ptr_nonnull(strstr(tc_first_error(), "\"yarn\" is not supported"));
    tc_hf_config b = config_with("{\"rope_type\": \"linear\"}", 1e4, 16, 64);
    ck_assert_int_eq(tc_fwd_rope_check(&b), TC_E_INPUT);
    tc_hf_config d = config_with("{\"rope_type\": \"llama3\", \"factor\": 8.0}", 1e4, 16, 64);
    ck_assert_int_eq(tc_fwd_rope_check(&d), TC_E_INPUT);
    tc_hf_config e = config_with(NULL, 1e4, 15, 64);
    ck_assert_int_eq(tc_fwd_rope_check(&e), TC_E_INPUT);
    tc_hf_config_free(&a);
    tc_hf_config_free(&b);
    tc_hf_config_free(&d);
    tc_hf_config_free(&e);
}
END_TEST

int main(void)
{
    tc_log_set_quiet(1);
    if (test_tmpdir_create(g_dir, sizeof g_dir, "fwdin") != 0)
        return 1;
    Suite *s = suite_create("forward_inputs");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, tokens_should_keep_first_samples_in_order_truncated_and_skip_blank_lines);
    tcase_add_test(tc, tokens_should_refuse_hostile_lines_naming_file_line_and_rule);
    tcase_add_test(tc, tokens_should_refuse_structure_errors);
    tcase_add_test(tc, tokens_should_refuse_a_missing_file);
    tcase_add_test(tc, rope_default_and_linear_should_follow_the_formula);
    tcase_add_test(tc, rope_dynamic_should_change_only_past_max_positions);
    tcase_add_test(tc, rope_llama3_should_scale_low_keep_high_and_blend_medium_frequencies);
    tcase_add_test(tc, rope_check_should_refuse_unknown_kinds_and_missing_factors);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    test_tmpdir_remove(g_dir);
    return failures ? 1 : 0;
}
