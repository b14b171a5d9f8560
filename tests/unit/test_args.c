/* test_args.c: the option helper of every executable (cli/args.h):
 * bounded integers and reals with the flag named, choices, flags,
 * "--name=value", unknown and missing values, help and version. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "check_main.h"
#include "trtconv/cli/args.h"
#include "trtconv/core/log.h"

START_TEST(int_should_take_decimal_integers_within_bounds_only)
{
    char msg[256];
    int64_t v = -7;
    ck_assert_int_eq(tc_arg_int("tp_size", "8", 1, 4096, &v, msg, sizeof msg), TC_OK);
    ck_assert_int_eq(v, 8);
    ck_assert_int_eq(tc_arg_int("calib_size", "-1", -1, 100, &v, msg, sizeof msg), TC_OK);
    ck_assert_int_eq(v, -1);
    static const char *const bad[] = { "", " 8", "+8", "8x", "0x10", "1e3", "4097", "0",
                                       "99999999999999999999", "-", "8.0" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = 42;
        ck_assert_msg(tc_arg_int("tp_size", bad[i], 1, 4096, &v, msg, sizeof msg) == TC_E_USAGE,
                      "accepted '%s'", bad[i]);
        ck_assert_int_eq(v, 42);
        ck_assert_msg(strstr(msg, "--tp_size") && strstr(msg, "[1, 4096]"), "%s", msg);
    }
}
END_TEST

START_TEST(real_should_take_finite_numbers_within_bounds)
{
    char msg[256];
    double v = 0;
    ck_assert_int_eq(tc_arg_real("rtol", "1e-3", 0.0, false, INFINITY, &v, msg, sizeof msg),
                     TC_OK);
    ck_assert(v == 1e-3);
    ck_assert_int_eq(tc_arg_real("rope_theta", "0", 0.0, true, INFINITY, &v, msg, sizeof msg),
                     TC_E_USAGE);
    ck_assert(strstr(msg, "--rope_theta") && strstr(msg, "(0,"));
    static const char *const bad[] = { "nan", "inf", "-inf", "1e999", "abc", "", "1.5x" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(tc_arg_real("x", bad[i], -INFINITY, false, INFINITY, &v, msg, sizeof msg) ==
                      TC_E_USAGE, "accepted '%s'", bad[i]);
}
END_TEST

typedef struct parsed {
    const char *dir;
    int64_t n;
    double r;
    bool flag;
    int choice;
} parsed;

static tc_status parse(parsed *p, int argc, char **argv, tc_args_stop *stop)
{
    static const char *const kinds[] = { "auto", "model", "json", NULL };
    memset(p, 0, sizeof *p);
    const tc_arg table[] = {
        TC_OPT_STR("dir", &p->dir),
        TC_OPT_INT("n", &p->n, 1, 10),
        TC_OPT_REAL("r", &p->r, 0.0, false, 1.0),
        TC_OPT_FLAG("flag", &p->flag),
        TC_OPT_CHOICE("kind", &p->choice, kinds),
    };
    tc_clear_first_error();
    return tc_args_parse("prog", table, sizeof table / sizeof table[0], argc, argv, 1, NULL, stop);
}

START_TEST(table_should_parse_every_kind_in_both_spellings)
{
    char *argv[] = { "prog", "--dir", "/m", "--n=7", "--r", "0.25", "--flag", "--kind", "json" };
    parsed p;
    tc_args_stop stop;
    ck_assert_int_eq(parse(&p, 9, argv, &stop), TC_OK);
    ck_assert_int_eq(stop, TC_ARGS_RUN);
    ck_assert_str_eq(p.dir, "/m");
    ck_assert_int_eq(p.n, 7);
    ck_assert(p.r == 0.25);
    ck_assert(p.flag);
    ck_assert_int_eq(p.choice, 2);
}
END_TEST

START_TEST(table_should_refuse_with_the_flag_named)
{
    static const struct { int argc; char *argv[3]; const char *needle; } cases[] = {
        { 3, { "prog", "--n", "11" }, "--n: invalid value '11'" },
        { 2, { "prog", "--n" }, "--n needs a value" },
        { 3, { "prog", "--kind", "spm" }, "choose from auto, model, json" },
        { 2, { "prog", "--nope" }, "unknown option '--nope'" },
        { 2, { "prog", "--flag=1" }, "--flag takes no value" },
        { 2, { "prog", "stray" }, "unexpected argument 'stray'" },
        { 3, { "prog", "--r", "2" }, "--r: invalid value '2'" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        parsed p;
        tc_args_stop stop;
        char *argv[3] = { cases[i].argv[0], cases[i].argv[1], cases[i].argv[2] };
        ck_assert_int_eq(parse(&p, cases[i].argc, argv, &stop), TC_E_USAGE);
        ck_assert_msg(strstr(tc_first_error(), cases[i].needle) != NULL, "'%s' not in %s",
                      cases[i].needle, tc_first_error());
    }
}
END_TEST

START_TEST(help_and_version_should_stop_parsing)
{
    parsed p;
    tc_args_stop stop;
    char *h[] = { "prog", "--n", "3", "-h", "--bogus" };
    ck_assert_int_eq(parse(&p, 5, h, &stop), TC_OK);
    ck_assert_int_eq(stop, TC_ARGS_HELP);
    char *v[] = { "prog", "--version" };
    ck_assert_int_eq(parse(&p, 2, v, &stop), TC_OK);
    ck_assert_int_eq(stop, TC_ARGS_VERSION);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("args");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, int_should_take_decimal_integers_within_bounds_only);
    tcase_add_test(tc, real_should_take_finite_numbers_within_bounds);
    tcase_add_test(tc, table_should_parse_every_kind_in_both_spellings);
    tcase_add_test(tc, table_should_refuse_with_the_flag_named);
    tcase_add_test(tc, help_and_version_should_stop_parsing);
    suite_add_tcase(s, tc);
    return tc_check_run(s);
}
