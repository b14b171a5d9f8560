/* test_layout.c: the layout object (plan/layout.h): cell <-> (tp, pp)
 * mapping of trtllm-checkpoint.md §2, the round-robin cells of a rank for
 * conversion, the data-parallel replicas of calibration, and the model's
 * divisibility rules with their messages. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "trtconv/core/log.h"
#include "trtconv/plan/layout.h"

START_TEST(cell_should_be_pp_rank_times_tp_plus_tp_rank)
{
    tc_layout l;
    ck_assert_int_eq(tc_layout_init(&l, 4, 2, 8), TC_OK);
    ck_assert_int_eq(tc_layout_cells(&l), 8);
    for (int cell = 0; cell < 8; cell++) {
        ck_assert_int_eq(tc_layout_tp_rank(&l, cell), cell % 4);
        ck_assert_int_eq(tc_layout_pp_rank(&l, cell), cell / 4);
        ck_assert_int_eq(tc_layout_cell(&l, cell % 4, cell / 4), cell);
    }
}
END_TEST

START_TEST(rank_cells_should_be_round_robin_and_cover_every_cell_once)
{
    static const int ranks[] = { 1, 2, 3, 5, 6, 7, 13 };
    for (size_t k = 0; k < sizeof ranks / sizeof ranks[0]; k++) {
        tc_layout l;
        ck_assert_int_eq(tc_layout_init(&l, 3, 2, ranks[k]), TC_OK);
        int seen[6] = { 0 };
        int *cells = calloc(tc_layout_max_cells_per_rank(&l), sizeof *cells);
        ck_assert_ptr_nonnull(cells);
        for (int r = 0; r < ranks[k]; r++) {
            size_t n = tc_layout_rank_cells(&l, r, cells);
            ck_assert_uint_le(n, tc_layout_max_cells_per_rank(&l));
            for (size_t i = 0; i < n; i++) {
                ck_assert_int_eq(cells[i], r + (int)i * ranks[k]);
                seen[cells[i]]++;
            }
        }
        for (int c = 0; c < 6; c++)
            ck_assert_msg(seen[c] == 1, "%d ranks: cell %d written %d times", ranks[k], c,
                          seen[c]);
        free(cells);
    }
}
END_TEST

START_TEST(replicas_should_need_a_multiple_of_the_cells_and_name_the_numbers)
{
    tc_layout l;
    ck_assert_int_eq(tc_layout_init(&l, 2, 2, 8), TC_OK);
    ck_assert_int_eq(tc_layout_check_replicas(&l, "calibration", ""), TC_OK);
    ck_assert_int_eq(tc_layout_dp(&l), 2);
    ck_assert_int_eq(tc_layout_replica_cell(&l, 5), 1);
    ck_assert_int_eq(tc_layout_replica(&l, 5), 1);
    ck_assert_int_eq(tc_layout_init(&l, 2, 2, 6), TC_OK);
    tc_clear_first_error();
    ck_assert_int_eq(tc_layout_check_replicas(&l, "calibration", "; or pass --calib_stats"),
                     TC_E_USAGE);
    const char *e = tc_first_error();
    ck_assert_msg(strstr(e, "ranks (6) must be a multiple of tp_size x pp_size = 4") &&
                  strstr(e, "--calib_stats"), "%s", e);
}
END_TEST

START_TEST(init_should_refuse_sizes_out_of_bounds_naming_the_flag)
{
    tc_layout l;
    tc_clear_first_error();
    ck_assert_int_eq(tc_layout_init(&l, 0, 1, 1), TC_E_USAGE);
    ck_assert(strstr(tc_first_error(), "--tp_size") != NULL);
    tc_clear_first_error();
    ck_assert_int_eq(tc_layout_init(&l, 1, 70000, 1), TC_E_USAGE);
    ck_assert(strstr(tc_first_error(), "--pp_size") != NULL);
    tc_clear_first_error();
    ck_assert_int_eq(tc_layout_init(&l, 512, 512, 1), TC_E_USAGE);
    ck_assert(strstr(tc_first_error(), "65536") != NULL);
}
END_TEST

static tc_hf_config cfg(int64_t layers, int64_t heads, int64_t kv, int64_t inter)
{
    tc_hf_config c;
    memset(&c, 0, sizeof c);
    c.num_hidden_layers = layers;
    c.num_attention_heads = heads;
    c.num_key_value_heads = kv;
    c.intermediate_size = inter;
    c.hidden_size = 64;
    c.head_dim = 64 / heads;
    return c;
}

static void expect(int64_t tp, int64_t pp, tc_hf_config c, tc_status want, const char *needle)
{
    tc_layout l;
    ck_assert_int_eq(tc_layout_init(&l, tp, pp, 1), TC_OK);
    tc_clear_first_error();
    tc_status st = tc_layout_check_model(&l, &c);
    ck_assert_msg(st == want, "tp %lld pp %lld: %d (%s)", (long long)tp, (long long)pp, (int)st,
                  tc_first_error());
    if (needle)
        ck_assert_msg(strstr(tc_first_error(), needle) != NULL, "'%s' not in %s", needle,
                      tc_first_error());
}

START_TEST(check_model_should_apply_the_divisibility_rules)
{
    expect(2, 2, cfg(4, 8, 8, 128), TC_OK, NULL);
    expect(1, 3, cfg(4, 8, 8, 128), TC_E_INPUT, "num_hidden_layers = 4 is not divisible by pp_size = 3");
    expect(3, 1, cfg(4, 9, 9, 128), TC_E_INPUT, "intermediate_size = 128");
    expect(16, 1, cfg(4, 8, 8, 128), TC_E_INPUT, "num_attention_heads = 8");
    expect(8, 1, cfg(4, 8, 2, 128), TC_OK, NULL);            /* KV heads duplicated */
    expect(4, 1, cfg(4, 12, 3, 128), TC_E_INPUT, "not a multiple of num_key_value_heads = 3");
    expect(4, 1, cfg(4, 12, 6, 128), TC_E_INPUT, "num_key_value_heads = 6");
}
END_TEST

START_TEST(moe_sizes_should_resolve_as_convert_checkpoint_and_map_the_ranks)
{
    tc_layout l;
    ck_assert_int_eq(tc_layout_init(&l, 4, 1, 4), TC_OK);
    ck_assert(l.moe_tp == 4 && l.moe_ep == 1);            /* init: tp-only */
    ck_assert_int_eq(tc_layout_set_moe(&l, -1, -1), TC_OK);
    ck_assert(l.moe_tp == 4 && l.moe_ep == 1);
    ck_assert_int_eq(tc_layout_set_moe(&l, -1, 2), TC_OK);  /* moe_tp derived */
    ck_assert(l.moe_tp == 2 && l.moe_ep == 2);
    ck_assert_int_eq(tc_layout_set_moe(&l, 1, -1), TC_OK);  /* moe_ep derived */
    ck_assert(l.moe_tp == 1 && l.moe_ep == 4);
    /* mapping.py: moe_tp_rank = tp_rank / moe_ep, moe_ep_rank = tp_rank % moe_ep */
    ck_assert_int_eq(tc_layout_set_moe(&l, 2, 2), TC_OK);
    static const int tp_of[4] = { 0, 0, 1, 1 }, ep_of[4] = { 0, 1, 0, 1 };
    for (int cell = 0; cell < 4; cell++) {
        ck_assert_int_eq(tc_layout_moe_tp_rank(&l, cell), tp_of[cell]);
        ck_assert_int_eq(tc_layout_moe_ep_rank(&l, cell), ep_of[cell]);
    }
    tc_clear_first_error();
    ck_assert_int_eq(tc_layout_set_moe(&l, 2, 1), TC_E_USAGE);
    ck_assert(strstr(tc_first_error(), "--moe_tp_size 2 x --moe_ep_size 1 must equal --tp_size 4"));
    ck_assert_int_eq(tc_layout_set_moe(&l, 3, -1), TC_E_USAGE); /* 4 / 3: no whole share */
}
END_TEST

START_TEST(check_model_should_apply_the_moe_rules)
{
    tc_hf_config c;
    memset(&c, 0, sizeof c);
    c.num_hidden_layers = 2;
    c.num_attention_heads = c.num_key_value_heads = 8;
    c.intermediate_size = 96;        /* not divisible by tp 4: fine for MoE with moe_tp 2 */
    c.moe_num_experts = 6;
    c.moe_top_k = 2;
    tc_layout l;
    ck_assert_int_eq(tc_layout_init(&l, 4, 1, 4), TC_OK);
    ck_assert_int_eq(tc_layout_set_moe(&l, 2, 2), TC_OK);
    ck_assert_int_eq(tc_layout_check_model(&l, &c), TC_OK);
    ck_assert_int_eq(tc_layout_set_moe(&l, 1, 4), TC_OK);
    tc_clear_first_error();
    ck_assert_int_eq(tc_layout_check_model(&l, &c), TC_E_INPUT);
    ck_assert(strstr(tc_first_error(), "num_local_experts = 6 is not divisible by moe_ep_size = 4"));
    c.moe_num_experts = 8;
    c.intermediate_size = 90;
    ck_assert_int_eq(tc_layout_set_moe(&l, 4, 1), TC_OK);
    tc_clear_first_error();
    ck_assert_int_eq(tc_layout_check_model(&l, &c), TC_E_INPUT);
    ck_assert(strstr(tc_first_error(), "intermediate_size = 90 is not divisible by moe_tp_size = 4"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("layout");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, cell_should_be_pp_rank_times_tp_plus_tp_rank);
    tcase_add_test(tc, rank_cells_should_be_round_robin_and_cover_every_cell_once);
    tcase_add_test(tc, replicas_should_need_a_multiple_of_the_cells_and_name_the_numbers);
    tcase_add_test(tc, init_should_refuse_sizes_out_of_bounds_naming_the_flag);
    tcase_add_test(tc, check_model_should_apply_the_divisibility_rules);
    tcase_add_test(tc, moe_sizes_should_resolve_as_convert_checkpoint_and_map_the_ranks);
    tcase_add_test(tc, check_model_should_apply_the_moe_rules);
    suite_add_tcase(s, tc);
    return tc_check_run(s);
}
