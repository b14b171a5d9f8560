/* test_options.c: Check suite for options.c (the command line of
 * TensorRT-LLM v0.12 examples/llama/convert_checkpoint.py,
 * trtllm-checkpoint.md §1). */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trtconv/core/log.h"
#include "trtconv/cli/options.h"

/* ---------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------- */

#define MAX_ARGS 32

/* One parse: the options, the status, and what went to out and err. */
typedef struct parse_result {
    tc_opts o;
    tc_status st;
    bool help;
    char *out;
    char *err;
} parse_result;

/* Parse "trtconv" followed by the NULL-terminated argument list. */
static void parse_v(parse_result *r, va_list ap)
{
    char *argv[MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = (char *)"trtconv";
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL) {
        ck_assert_int_lt(argc, MAX_ARGS);
        argv[argc++] = (char *)a;
    }
    argv[argc] = NULL;

    size_t out_len = 0, err_len = 0;
    r->out = NULL;
    r->err = NULL;
    FILE *out = open_memstream(&r->out, &out_len);
    FILE *err = open_memstream(&r->err, &err_len);
    ck_assert_ptr_nonnull(out);
    ck_assert_ptr_nonnull(err);
    tc_opts_init(&r->o);
    r->help = true; /* must be cleared by tc_opts_parse */
    r->st = tc_opts_parse(&r->o, argc, argv, out, err, &r->help);
    fclose(out);
    fclose(err);
}

static void parse(parse_result *r, ...)
{
    va_list ap;
    va_start(ap, r);
    parse_v(r, ap);
    va_end(ap);
}

static void result_free(parse_result *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

/* Parse and expect TC_OK with nothing printed on err. */
static void parse_ok(parse_result *r, ...)
{
    va_list ap;
    va_start(ap, r);
    parse_v(r, ap);
    va_end(ap);
    ck_assert_msg(r->st == TC_OK, "expected TC_OK, got %d; err: %s", (int)r->st, r->err);
    ck_assert_str_eq(r->err, "");
    ck_assert(!r->help);
}

/* Parse and expect TC_E_USAGE with an error text containing `needle`
 * (NULL: any non-empty text). */
static void expect_usage_error(const char *needle, ...)
{
    parse_result r;
    va_list ap;
    va_start(ap, needle);
    parse_v(&r, ap);
    va_end(ap);
    ck_assert_msg(r.st == TC_E_USAGE, "expected TC_E_USAGE, got %d (err: %s)", (int)r.st,
                  r.err);
    ck_assert_msg(strstr(r.err, "trtconv: error: ") != NULL, "no error prefix in: %s", r.err);
    if (needle)
        ck_assert_msg(strstr(r.err, needle) != NULL, "'%s' not in error text: %s", needle,
                      r.err);
    ck_assert(!r.help);
    ck_assert_str_eq(r.out, "");
    result_free(&r);
}

/* ---------------------------------------------------------------------------
 * Defaults
 * ------------------------------------------------------------------------- */

static void assert_python_defaults(const tc_opts *o)
{
    ck_assert_ptr_null(o->model_dir);
    ck_assert_ptr_null(o->meta_ckpt_dir);
    ck_assert_str_eq(o->output_dir, "tllm_checkpoint");
    ck_assert_int_eq(o->tp_size, 1);
    ck_assert_int_eq(o->pp_size, 1);
    ck_assert_int_eq(o->moe_tp_size, -1);
    ck_assert_int_eq(o->moe_ep_size, -1);
    ck_assert(!o->dtype_auto);
    ck_assert_int_eq(o->dtype, TC_FT_FLOAT16);
    ck_assert_int_eq(o->workers, 1);
    ck_assert_int_eq(o->model.vocab_size, 32000);
    ck_assert_int_eq(o->model.n_positions, 2048);
    ck_assert_int_eq(o->model.n_layer, 32);
    ck_assert_int_eq(o->model.n_head, 32);
    ck_assert_int_eq(o->model.n_kv_head, -1);          /* None -> n_head */
    ck_assert_int_eq(o->model.n_embd, 4096);
    ck_assert_int_eq(o->model.inter_size, 11008);
    ck_assert_int_eq(o->model.multiple_of, -1);        /* None */
    ck_assert(isnan(o->model.ffn_dim_multiplier));     /* None */
    ck_assert(o->model.rms_norm_eps == 1e-06);
    ck_assert(o->model.rotary_base == 10000.0);
    ck_assert_str_eq(o->model.hidden_act, "silu");
    ck_assert_int_eq(o->model.moe_num_experts, 0);
    ck_assert_int_eq(o->model.moe_top_k, 0);
    ck_assert_int_eq(o->model.moe_renorm_mode, 1);
    ck_assert(!o->use_parallel_embedding);
    ck_assert_int_eq(o->embedding_sharding_dim, 0);
    ck_assert(!o->use_embedding_sharing);
    ck_assert(!o->use_weight_only);
    ck_assert_str_eq(o->weight_only_precision, "int8");
    ck_assert(isnan(o->smoothquant));
    ck_assert_int_eq(o->group_size, 128);
    ck_assert_str_eq(o->calib_dataset, "ccdv/cnn_dailymail");
    ck_assert_int_eq(o->calib_size, 512);
    ck_assert_int_eq(o->calib_max_seq_length, 512);
    ck_assert(!o->load_by_shard);
    ck_assert(!o->load_model_on_cpu);
    ck_assert(!o->save_config_only);
    ck_assert(!o->remove_duplicated_kv_heads);
    ck_assert_int_eq(o->log_level, TC_LOG_INFO);
    ck_assert(o->progress_auto);
    ck_assert(!o->progress_bar);
    ck_assert(!o->no_progress);
}

START_TEST(opts_init_should_fill_the_defaults_of_the_python_tool)
{
    tc_opts o;
    memset(&o, 0xA5, sizeof o);
    tc_opts_init(&o);
    assert_python_defaults(&o);
}
END_TEST

START_TEST(opts_parse_should_keep_the_defaults_when_given_no_arguments)
{
    parse_result r;
    parse_ok(&r, NULL);
    assert_python_defaults(&r.o);
    ck_assert_str_eq(r.out, "");
    result_free(&r);
}
END_TEST

/* ---------------------------------------------------------------------------
 * Spelling: "--flag value", "--flag=value", prefixes
 * ------------------------------------------------------------------------- */

START_TEST(opts_parse_should_accept_both_the_separate_and_the_equals_form)
{
    parse_result r;
    parse_ok(&r, "--tp_size", "2", NULL);
    ck_assert_int_eq(r.o.tp_size, 2);
    result_free(&r);

    parse_ok(&r, "--tp_size=2", "--pp_size=3", "--output_dir=out dir", NULL);
    ck_assert_int_eq(r.o.tp_size, 2);
    ck_assert_int_eq(r.o.pp_size, 3);
    ck_assert_str_eq(r.o.output_dir, "out dir");
    result_free(&r);
}
END_TEST

START_TEST(opts_parse_should_check_the_hf_output_flags)
{
    parse_result r;
    parse_ok(&r, "--model_dir", "m", "--output_format", "hf", "--use_nvfp4", "--fp8_kv_cache", "--max_shard_size",
             "2GiB", "--exclude_modules", "model.layers.0.*,*.down_proj", NULL);
    ck_assert(r.o.output_hf && r.o.use_nvfp4 && r.o.fp8_kv_cache && r.o.calibrate);
    ck_assert_uint_eq(r.o.max_shard_bytes, 2ULL << 30);
    ck_assert(r.o.dtype_auto); /* the model's dtype unless --dtype is given */
    result_free(&r);
    parse_ok(&r, "--model_dir", "m", "--output_format", "hf", "--dtype", "float16",
             "--max_shard_size", "500MB", NULL);
    ck_assert(!r.o.dtype_auto && !r.o.calibrate);
    ck_assert_uint_eq(r.o.max_shard_bytes, 500000000ULL);
    result_free(&r);
    parse_ok(&r, NULL);
    ck_assert(!r.o.output_hf);
    ck_assert_uint_eq(r.o.max_shard_bytes, 5000000000ULL);
    result_free(&r);
    expect_usage_error("weight-only, SmoothQuant", "--output_format", "hf", "--use_weight_only", NULL);
    expect_usage_error("weight-only, SmoothQuant", "--output_format", "hf", "--smoothquant", "0.5", NULL);
    expect_usage_error("exclude each", "--output_format", "hf", "--use_fp8", "--use_nvfp4", NULL);
    expect_usage_error("belong to --output_format hf", "--use_nvfp4", NULL);
    expect_usage_error("belong to --output_format hf", "--max_shard_size", "1GB", NULL);
    expect_usage_error("not a size", "--output_format", "hf", "--max_shard_size", "5XB", NULL);
    expect_usage_error("needs --model_dir", "--output_format", "hf", NULL);
    expect_usage_error("invalid choice", "--output_format", "onnx", NULL);
}
END_TEST

START_TEST(opts_parse_should_accept_unique_prefixes_like_argparse)
{
    parse_result r;
    parse_ok(&r, "--tp", "2", "--pp_s", "4", "--model_d", "m", "--out", "o", NULL);
    ck_assert_int_eq(r.o.tp_size, 2);
    ck_assert_int_eq(r.o.pp_size, 4);
    ck_assert_str_eq(r.o.model_dir, "m");
    ck_assert_str_eq(r.o.output_dir, "o");
    result_free(&r);

    parse_ok(&r, "--use_parallel", "--embedding_sharding=1", "--load_by", NULL);
    ck_assert(r.o.use_parallel_embedding);
    ck_assert_int_eq(r.o.embedding_sharding_dim, 1);
    ck_assert(r.o.load_by_shard);
    result_free(&r);
}
END_TEST

START_TEST(opts_parse_should_reject_ambiguous_prefixes)
{
    /* --p: pp_size, per_channel, per_token, per_group, progress. */
    expect_usage_error("'--p'", "--p", "1", NULL);
    /* --use_: use_weight_only, use_fp8_rowwise, use_parallel_embedding, ... */
    expect_usage_error("'--use_'", "--use_", NULL);
    /* --n_: n_positions, n_layer, n_head, n_kv_head, n_embd. */
    expect_usage_error("'--n_'", "--n_", "2", NULL);
}
END_TEST

START_TEST(opts_parse_should_let_the_last_occurrence_of_a_flag_win)
{
    parse_result r;
    parse_ok(&r, "--tp_size", "2", "--tp_size", "4", "--model_dir", "m", "--dtype", "auto",
             "--dtype", "float32", NULL);
    ck_assert_int_eq(r.o.tp_size, 4);
    ck_assert(!r.o.dtype_auto);
    ck_assert_int_eq(r.o.dtype, TC_FT_FLOAT32);
    result_free(&r);

    parse_ok(&r, "--model_dir", "m", "--dtype", "bfloat16", "--dtype", "auto", NULL);
    ck_assert(r.o.dtype_auto);
    result_free(&r);
}
END_TEST

/* ---------------------------------------------------------------------------
 * Values
 * ------------------------------------------------------------------------- */

START_TEST(opts_parse_should_accept_each_dtype_choice)
{
    parse_result r;
    parse_ok(&r, "--dtype", "bfloat16", NULL);
    ck_assert_int_eq(r.o.dtype, TC_FT_BFLOAT16);
    ck_assert(!r.o.dtype_auto);
    result_free(&r);

    parse_ok(&r, "--dtype", "float32", NULL);
    ck_assert_int_eq(r.o.dtype, TC_FT_FLOAT32);
    result_free(&r);

    parse_ok(&r, "--dtype", "float16", NULL);
    ck_assert_int_eq(r.o.dtype, TC_FT_FLOAT16);
    result_free(&r);

    parse_ok(&r, "--model_dir", "/models/llama", "--dtype", "auto", NULL);
    ck_assert(r.o.dtype_auto);
    ck_assert_str_eq(r.o.model_dir, "/models/llama");
    result_free(&r);
}
END_TEST

START_TEST(opts_parse_should_reject_an_unknown_dtype_listing_the_choices)
{
    expect_usage_error("'fp16'", "--dtype", "fp16", NULL);
    expect_usage_error("'bfloat16'", "--dtype", "Float16", NULL);
    expect_usage_error("--dtype", "--dtype", "", NULL);
}
END_TEST

START_TEST(opts_parse_should_reject_dtype_auto_without_model_dir)
{
    expect_usage_error("--model_dir", "--dtype", "auto", NULL);
}
END_TEST

START_TEST(opts_parse_should_reject_malformed_and_out_of_range_integers)
{
    static const char *const bad[] = {
        "2x", "", "-1", "0", "99999999999999999999", "-99999999999999999999", "4097", "2.0",
        "0x2", "two",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char msg[64];
        snprintf(msg, sizeof msg, "'%s'", bad[i]);
        expect_usage_error(msg, "--tp_size", bad[i], NULL);
    }
    /* The equals form goes through the same check. */
    expect_usage_error("--pp_size", "--pp_size=2x", NULL);
    expect_usage_error("--vocab_size", "--vocab_size", "2147483648", NULL);
    expect_usage_error("--n_layer", "--n_layer", "0", NULL);
    expect_usage_error("--inter_size", "--inter_size", "12k", NULL);
}
END_TEST

START_TEST(opts_parse_should_accept_the_integer_range_limits)
{
    parse_result r;
    parse_ok(&r, "--tp_size", "4096", "--workers", "256", "--vocab_size", "2147483647", NULL);
    ck_assert_int_eq(r.o.tp_size, 4096);
    ck_assert_int_eq(r.o.workers, 256);
    ck_assert_int_eq(r.o.model.vocab_size, 2147483647);
    result_free(&r);
}
END_TEST

START_TEST(opts_parse_should_reject_malformed_floats)
{
    expect_usage_error("--rms_norm_eps", "--rms_norm_eps", "abc", NULL);
    expect_usage_error("--rms_norm_eps", "--rms_norm_eps", "1e-6x", NULL);
    expect_usage_error("--rotary_base", "--rotary_base", "", NULL);
    expect_usage_error("--rotary_base", "--rotary_base", "inf", NULL);
    expect_usage_error("--ffn_dim_multiplier", "--ffn_dim_multiplier", "nan", NULL);
}
END_TEST

START_TEST(opts_parse_should_read_the_fake_config_values)
{
    parse_result r;
    parse_ok(&r, "--vocab_size", "128256", "--n_positions", "8192", "--n_layer", "80",
             "--n_head", "64", "--n_kv_head", "8", "--n_embd", "8192", "--inter_size",
             "28672", "--multiple_of", "4096", "--ffn_dim_multiplier", "1.3",
             "--rms_norm_eps", "1e-05", "--rotary_base", "500000.0", "--hidden_act", "gelu",
             "--moe_top_k", "2", "--moe_renorm_mode", "0", "--save_config_only", NULL);
    ck_assert_int_eq(r.o.model.vocab_size, 128256);
    ck_assert_int_eq(r.o.model.n_positions, 8192);
    ck_assert_int_eq(r.o.model.n_layer, 80);
    ck_assert_int_eq(r.o.model.n_head, 64);
    ck_assert_int_eq(r.o.model.n_kv_head, 8);
    ck_assert_int_eq(r.o.model.n_embd, 8192);
    ck_assert_int_eq(r.o.model.inter_size, 28672);
    ck_assert_int_eq(r.o.model.multiple_of, 4096);
    ck_assert(r.o.model.ffn_dim_multiplier == 1.3);
    ck_assert(r.o.model.rms_norm_eps == 1e-05);
    ck_assert(r.o.model.rotary_base == 500000.0);
    ck_assert_str_eq(r.o.model.hidden_act, "gelu");
    ck_assert_int_eq(r.o.model.moe_top_k, 2);
    ck_assert_int_eq(r.o.model.moe_renorm_mode, 0);
    ck_assert(r.o.save_config_only);
    ck_assert_ptr_null(r.o.model_dir);
    result_free(&r);
}
END_TEST

START_TEST(opts_parse_should_accept_embedding_sharding_dim_0_and_1_only)
{
    parse_result r;
    parse_ok(&r, "--use_parallel_embedding", "--embedding_sharding_dim", "1",
             "--use_embedding_sharing", NULL);
    ck_assert(r.o.use_parallel_embedding);
    ck_assert_int_eq(r.o.embedding_sharding_dim, 1);
    ck_assert(r.o.use_embedding_sharing);
    result_free(&r);

    parse_ok(&r, "--embedding_sharding_dim", "1", "--embedding_sharding_dim", "0", NULL);
    ck_assert_int_eq(r.o.embedding_sharding_dim, 0);
    result_free(&r);

    expect_usage_error("'2'", "--embedding_sharding_dim", "2", NULL);
    expect_usage_error("'-1'", "--embedding_sharding_dim", "-1", NULL);
    expect_usage_error("--embedding_sharding_dim", "--embedding_sharding_dim", "01", NULL);
}
END_TEST

START_TEST(opts_parse_should_reject_zero_or_too_many_workers)
{
    parse_result r;
    parse_ok(&r, "--workers", "8", NULL);
    ck_assert_int_eq(r.o.workers, 8);
    result_free(&r);

    expect_usage_error("--workers", "--workers", "0", NULL);
    expect_usage_error("--workers", "--workers", "257", NULL);
    expect_usage_error("--workers", "--workers", "-3", NULL);
}
END_TEST

START_TEST(opts_parse_should_accept_known_log_levels_and_reject_others)
{
    static const struct { const char *name; enum tc_log_level level; } ok[] = {
        { "internal_error", TC_LOG_INTERNAL_ERROR }, { "error", TC_LOG_ERROR },
        { "warning", TC_LOG_WARNING }, { "info", TC_LOG_INFO },
        { "verbose", TC_LOG_VERBOSE }, { "debug", TC_LOG_DEBUG },
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        parse_result r;
        parse_ok(&r, "--log_level", ok[i].name, NULL);
        ck_assert_int_eq(r.o.log_level, ok[i].level);
        result_free(&r);
    }
    expect_usage_error("'loud'", "--log_level", "loud", NULL);
    expect_usage_error("--log_level", "--log_level", "INFO", NULL);
}
END_TEST

START_TEST(opts_parse_should_map_each_progress_choice)
{
    parse_result r;
    parse_ok(&r, "--progress", "none", NULL);
    ck_assert(r.o.no_progress);
    ck_assert(!r.o.progress_bar);
    result_free(&r);

    parse_ok(&r, "--progress", "bar", NULL);
    ck_assert(r.o.progress_bar);
    ck_assert(!r.o.no_progress);
    result_free(&r);

    parse_ok(&r, "--progress", "auto", NULL);
    ck_assert(r.o.progress_auto);
    ck_assert(!r.o.progress_bar);
    ck_assert(!r.o.no_progress);
    result_free(&r);

    /* The last occurrence wins: auto undoes bar. */
    parse_ok(&r, "--progress", "bar", "--progress", "auto", NULL);
    ck_assert(r.o.progress_auto);
    ck_assert(!r.o.progress_bar);
    result_free(&r);

    expect_usage_error("'fancy'", "--progress", "fancy", NULL);
}
END_TEST

/* BUG: src/cli/options.c (cross-option checks after the getopt loop): the
 * "lines" branch only clears progress_bar and leaves progress_auto = true
 * from tc_opts_init, so src/app/progress.c (view.bar = o->progress_bar ||
 * (o->progress_auto && isatty(STDERR_FILENO))) still draws a live bar on a
 * terminal: --progress lines behaves exactly like --progress auto. The
 * "bar" and "none" branches likewise leave progress_auto set. */
START_TEST(opts_parse_should_turn_off_auto_progress_for_lines_so_a_terminal_gets_lines)
{
    parse_result r;
    parse_ok(&r, "--progress", "lines", NULL);
    ck_assert(!r.o.progress_bar);
    ck_assert(!r.o.no_progress);
    ck_assert_msg(!r.o.progress_auto,
                  "--progress lines leaves progress_auto set: a terminal still gets a bar");
    result_free(&r);
}
END_TEST

/* ---------------------------------------------------------------------------
 * Errors of the command line's shape
 * ------------------------------------------------------------------------- */

START_TEST(opts_parse_should_reject_an_unknown_flag_naming_it)
{
    expect_usage_error("'--frobnicate'", "--frobnicate", NULL);
    expect_usage_error("'-x'", "-x", NULL);
    expect_usage_error("'--tp_sizes'", "--tp_sizes", "2", NULL);
}
END_TEST

START_TEST(opts_parse_should_report_a_missing_argument)
{
    expect_usage_error("--tp_size: expected one argument", "--tp_size", NULL);
    expect_usage_error("--output_dir: expected one argument", "--load_by_shard", "--output_dir",
                       NULL);
    expect_usage_error("--model_dir: expected one argument", "--model_d", NULL);
}
END_TEST

/* BUG: src/cli/options.c tc_opts_parse: getopt_long_only takes the next word as
 * the value of a required_argument flag even when it is another flag, so
 * "--output_dir --load_by_shard" sets output_dir = "--load_by_shard" and
 * returns TC_OK (the conversion then writes into a directory of that name).
 * argparse, which the file header says the spelling follows, refuses it:
 * "argument --output_dir: expected one argument". */
START_TEST(opts_parse_should_not_take_a_flag_as_the_value_of_a_flag_like_argparse)
{
    expect_usage_error("--output_dir", "--output_dir", "--load_by_shard", NULL);
}
END_TEST

START_TEST(opts_parse_should_reject_a_stray_positional_argument)
{
    expect_usage_error("'extra'", "extra", NULL);
    expect_usage_error("'extra'", "--tp_size", "2", "extra", NULL);
    expect_usage_error("'extra'", "extra", "--tp_size", "2", NULL);
    expect_usage_error("'extra'", "--", "extra", NULL);
    /* A no-argument flag does not consume the next word. */
    expect_usage_error("'m'", "--load_by_shard", "m", NULL);
}
END_TEST

START_TEST(opts_parse_should_accept_weight_only_flags_like_argparse)
{
    parse_result r;
    parse(&r, "--model_dir", "m", "--use_weight_only", "--weight_only_precision", "int4", NULL);
    ck_assert_int_eq(r.st, TC_OK);
    ck_assert_int_eq(r.o.woq_bits, 4);
    /* nargs='?': a bare flag means int8, "=" and a following word both bind. */
    result_free(&r);
    parse(&r, "--model_dir", "m", "--use_weight_only", "--weight_only_precision", NULL);
    ck_assert_int_eq(r.st, TC_OK);
    ck_assert_int_eq(r.o.woq_bits, 8);
    result_free(&r);
    parse(&r, "--model_dir", "m", "--use_weight_only", "--weight_only_precision=int4", "--target_sm",
          "80", NULL);
    ck_assert_int_eq(r.st, TC_OK);
    ck_assert_int_eq(r.o.woq_bits, 4);
    ck_assert_int_eq(r.o.target_sm, 80);
    /* Without --use_weight_only the precision has no effect, as upstream. */
    result_free(&r);
    parse(&r, "--model_dir", "m", "--weight_only_precision", "int4", NULL);
    ck_assert_int_eq(r.st, TC_OK);
    ck_assert_int_eq(r.o.woq_bits, 0);
    result_free(&r);
    parse(&r, "--model_dir", "m", "--use_weight_only", "--weight_only_precision", "int2", NULL);
    ck_assert_int_eq(r.st, TC_E_USAGE);
    result_free(&r);
    parse(&r, "--model_dir", "m", "--use_weight_only", "--target_sm", "100", NULL);
    ck_assert_int_eq(r.st, TC_E_USAGE);
    result_free(&r);
    parse(&r, "--model_dir", "m", "--quantize_on", "tpu", NULL);
    ck_assert_int_eq(r.st, TC_E_USAGE);
    result_free(&r);
    /* The non-plugin path stores unquantized weights: int8 only. */
    parse(&r, "--model_dir", "m", "--use_weight_only", "--disable_weight_only_quant_plugin", NULL);
    ck_assert_int_eq(r.st, TC_OK);
    ck_assert(r.o.disable_weight_only_quant_plugin);
    result_free(&r);
    parse(&r, "--model_dir", "m", "--use_weight_only", "--weight_only_precision", "int4",
          "--disable_weight_only_quant_plugin", NULL);
    ck_assert_int_eq(r.st, TC_E_USAGE);
    result_free(&r);
}
END_TEST

START_TEST(opts_parse_should_refuse_every_flag_of_a_feature_not_supported_yet)
{
    static const char *const cases[][3] = {
        { "--weight_only_precision", "int4_gptq", NULL },
        { "--per_group", NULL, NULL },
        { "--quant_ckpt_path", "x", NULL },
        { "--group_size", "64", NULL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        parse_result r;
        parse(&r, "--model_dir", "m", cases[i][0], cases[i][1], NULL);
        ck_assert_msg(r.st == TC_E_USAGE, "%s: expected TC_E_USAGE, got %d", cases[i][0],
                      (int)r.st);
        ck_assert_msg(strstr(r.err, "not supported") != NULL, "%s: error text: %s",
                      cases[i][0], r.err);
        ck_assert(!r.help);
        result_free(&r);
    }
}
END_TEST

START_TEST(opts_parse_should_take_the_fp8_flags_and_refuse_their_exclusions)
{
    parse_result r;
    parse_ok(&r, "--model_dir", "m", "--fp8_kv_cache", "--use_fp8_rowwise", NULL);
    ck_assert(r.o.fp8_kv_cache && r.o.use_fp8_rowwise);
    ck_assert(!r.o.calibrate);
    result_free(&r);
    /* FP8 wins over INT8 (args_to_quant_config): nothing to calibrate. */
    parse_ok(&r, "--model_dir", "m", "--fp8_kv_cache", "--int8_kv_cache", NULL);
    ck_assert(!r.o.calibrate);
    tc_quant_request q;
    tc_opts_quant_request(&r.o, &q);
    ck_assert(q.fp8_kv_cache && q.int8_kv_cache);
    result_free(&r);
    expect_usage_error("--use_fp8_rowwise excludes", "--model_dir", "m", "--use_fp8_rowwise",
                       "--smoothquant", "0.5", NULL);
    expect_usage_error("--use_fp8_rowwise excludes", "--model_dir", "m", "--use_fp8_rowwise",
                       "--use_weight_only", NULL);
    /* --use_fp8 calibrates; it excludes the other weight methods and INT8 KV. */
    parse_ok(&r, "--model_dir", "m", "--use_fp8", "--fp8_kv_cache", NULL);
    ck_assert(r.o.use_fp8 && r.o.calibrate);
    tc_opts_quant_request(&r.o, &q);
    ck_assert(q.fp8 && q.fp8_kv_cache && !q.fp8_rowwise);
    result_free(&r);
    expect_usage_error("--use_fp8 excludes", "--model_dir", "m", "--use_fp8", "--use_fp8_rowwise",
                       NULL);
    expect_usage_error("--use_fp8 excludes", "--model_dir", "m", "--use_fp8", "--smoothquant", "0.5",
                       NULL);
    expect_usage_error("--int8_kv_cache", "--model_dir", "m", "--use_fp8", "--int8_kv_cache", NULL);
    /* --remove_duplicated_kv_heads is taken (applied when the model is read). */
    parse_ok(&r, "--model_dir", "m", "--remove_duplicated_kv_heads", NULL);
    ck_assert(r.o.remove_duplicated_kv_heads);
    result_free(&r);
}
END_TEST

START_TEST(opts_parse_should_name_the_refused_flag)
{
    expect_usage_error("--per_group", "--per_group", NULL);
}
END_TEST

START_TEST(opts_parse_should_take_meta_ckpt_dir_but_not_with_model_dir)
{
    parse_result r;
    parse_ok(&r, "--meta_ckpt_dir", "/ckpt/llama-2-7b", "--dtype", "auto", NULL);
    ck_assert_str_eq(r.o.meta_ckpt_dir, "/ckpt/llama-2-7b");
    ck_assert_ptr_null(r.o.model_dir);
    ck_assert(r.o.dtype_auto);
    result_free(&r);
    parse(&r, "--model_dir", "m", "--meta_ckpt_dir", "X", NULL);
    ck_assert_int_eq(r.st, TC_E_USAGE);
    ck_assert_msg(strstr(r.err, "--model_dir and --meta_ckpt_dir exclude each other") != NULL,
                  "%s", r.err);
    result_free(&r);
}
END_TEST

START_TEST(opts_parse_should_read_the_smoothquant_and_calibration_flags)
{
    parse_result r;
    parse_ok(&r, "-sq", "0.75", "--per_channel", "--per_token", "--int8_kv_cache",
             "--calib_dataset", "c.jsonl", "--calib_size", "-1", "--calib_max_seq_length", "64",
             "--calib_batch_size", "4", "--calib_stats_out", "s.h5", NULL);
    ck_assert(r.o.sq_enabled && r.o.calibrate);
    ck_assert(r.o.smoothquant == 0.75);
    ck_assert(r.o.per_channel && r.o.per_token && r.o.int8_kv_cache);
    ck_assert_str_eq(r.o.calib_dataset, "c.jsonl");
    ck_assert_int_eq(r.o.calib_size, -1);
    ck_assert_int_eq(r.o.calib_max_seq_length, 64);
    ck_assert_int_eq(r.o.calib_batch_size, 4);
    ck_assert_str_eq(r.o.calib_stats_out, "s.h5");
    result_free(&r);
    /* As in convert_checkpoint.py, alpha 0 is falsy: no SmoothQuant. */
    parse_ok(&r, "--smoothquant", "0", NULL);
    ck_assert(!r.o.sq_enabled && !r.o.calibrate);
    result_free(&r);
    parse_ok(&r, "--int8_kv_cache", "--calib_stats", "s.h5", NULL);
    ck_assert(!r.o.sq_enabled && r.o.calibrate);
    ck_assert_str_eq(r.o.calib_stats, "s.h5");
    result_free(&r);
    expect_usage_error("alpha must be in [0, 1]", "--smoothquant", "1.5", NULL);
    expect_usage_error("alpha must be in [0, 1]", "--smoothquant", "-0.1", NULL);
    expect_usage_error("--calib_size", "--smoothquant", "0.5", "--calib_size", "0", NULL);
    expect_usage_error("--calib_batch_size", "--smoothquant", "0.5", "--calib_batch_size", "0",
                       NULL);
    expect_usage_error("exclude each other", "--smoothquant", "0.5", "--use_weight_only", NULL);
    expect_usage_error("need a method that calibrates", "--calib_stats", "s.h5", NULL);
    expect_usage_error("give one of them", "--int8_kv_cache", "--calib_stats", "a.h5",
                       "--calib_stats_out", "b.h5", NULL);
}
END_TEST

START_TEST(opts_parse_should_accept_the_loading_flags_that_change_nothing)
{
    parse_result r;
    parse_ok(&r, "--load_by_shard", "--load_model_on_cpu", NULL);
    ck_assert(r.o.load_by_shard);
    ck_assert(r.o.load_model_on_cpu);
    result_free(&r);
}
END_TEST

START_TEST(opts_parse_should_take_the_moe_flags_as_given)
{
    /* Resolution (-1 derived, product = tp) is the layout's (unit_layout). */
    parse_result r;
    parse_ok(&r, "--tp_size", "4", "--moe_tp_size", "2", "--moe_ep_size", "2", NULL);
    ck_assert_int_eq(r.o.moe_tp_size, 2);
    ck_assert_int_eq(r.o.moe_ep_size, 2);
    result_free(&r);
    parse_ok(&r, NULL);
    ck_assert_int_eq(r.o.moe_tp_size, -1);
    ck_assert_int_eq(r.o.moe_ep_size, -1);
    result_free(&r);
    /* convert_checkpoint.py: --moe_top_k defaults to 1 when experts are given. */
    parse_ok(&r, "--moe_num_experts", "8", NULL);
    ck_assert_int_eq(r.o.model.moe_num_experts, 8);
    ck_assert_int_eq(r.o.model.moe_top_k, 1);
    result_free(&r);
    expect_usage_error("moe_tp_size", "--moe_tp_size", "-2", NULL);
}
END_TEST

START_TEST(opts_parse_should_refuse_more_than_65536_cells)
{
    expect_usage_error("65536", "--tp_size", "4096", "--pp_size", "17", NULL);
    parse_result r;
    parse_ok(&r, "--tp_size", "4096", "--pp_size", "16", NULL);
    result_free(&r);
}
END_TEST

/* ---------------------------------------------------------------------------
 * --help, --version, output streams
 * ------------------------------------------------------------------------- */

START_TEST(opts_parse_should_print_the_help_to_out_and_set_help_shown)
{
    static const char *const forms[] = { "--help", "-h", "--he" };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        parse_result r;
        parse(&r, "--tp_size", "2", forms[i], NULL);
        ck_assert_int_eq(r.st, TC_OK);
        ck_assert(r.help);
        ck_assert_msg(strstr(r.out, "--model_dir") != NULL, "%s: help text: %s", forms[i],
                      r.out);
        ck_assert(strstr(r.out, "--tp_size") != NULL);
        ck_assert(strstr(r.out, "tllm_checkpoint") != NULL);
        ck_assert_str_eq(r.err, "");
        result_free(&r);
    }
}
END_TEST

START_TEST(opts_parse_should_print_the_version_and_set_help_shown)
{
    parse_result r;
    parse(&r, "--version", NULL);
    ck_assert_int_eq(r.st, TC_OK);
    ck_assert(r.help);
    ck_assert(strncmp(r.out, "trtconv ", 8) == 0);
    ck_assert(strstr(r.out, "v0.12") != NULL);
    ck_assert_str_eq(r.err, "");
    result_free(&r);
}
END_TEST

START_TEST(opts_parse_should_print_nothing_when_the_streams_are_null)
{
    char *argv_help[] = { (char *)"trtconv", (char *)"--help", NULL };
    char *argv_bad[] = { (char *)"trtconv", (char *)"--tp_size", (char *)"2x", NULL };
    char *argv_ns[] = { (char *)"trtconv", (char *)"--per_group", NULL };
    char *argv_stray[] = { (char *)"trtconv", (char *)"stray", NULL };
    tc_opts o;
    bool help = false;

    tc_opts_init(&o);
    ck_assert_int_eq(tc_opts_parse(&o, 2, argv_help, NULL, NULL, &help), TC_OK);
    ck_assert(help);
    tc_opts_init(&o);
    ck_assert_int_eq(tc_opts_parse(&o, 3, argv_bad, NULL, NULL, &help), TC_E_USAGE);
    ck_assert(!help);
    tc_opts_init(&o);
    ck_assert_int_eq(tc_opts_parse(&o, 2, argv_ns, NULL, NULL, &help), TC_E_USAGE);
    tc_opts_init(&o);
    ck_assert_int_eq(tc_opts_parse(&o, 2, argv_stray, NULL, NULL, &help), TC_E_USAGE);
}
END_TEST

START_TEST(opts_parse_should_write_errors_to_err_only)
{
    parse_result r;
    parse(&r, "--tp_size", "x", NULL);
    ck_assert_int_eq(r.st, TC_E_USAGE);
    ck_assert_str_eq(r.out, "");
    ck_assert(strstr(r.err, "--tp_size") != NULL);
    ck_assert(strstr(r.err, "'x'") != NULL);
    result_free(&r);
}
END_TEST

/* ---------------------------------------------------------------------------
 * Repeated parsing
 * ------------------------------------------------------------------------- */

START_TEST(opts_parse_should_be_callable_again_after_a_failed_parse)
{
    expect_usage_error(NULL, "--tp_size", "2", "--bogus", "--pp_size", "2", NULL);
    expect_usage_error(NULL, "--tp_size", NULL);
    parse_result r;
    parse_ok(&r, "--pp_size", "2", "--tp_size", "8", NULL);
    ck_assert_int_eq(r.o.pp_size, 2);
    ck_assert_int_eq(r.o.tp_size, 8);
    result_free(&r);
}
END_TEST

/* BUG: src/cli/options.c tc_opts_parse sets "optind = 1" to restart getopt, but
 * glibc only re-initialises its scanner for optind == 0; the position inside
 * a cluster of short options survives. After "-hx" returned at 'h' (help),
 * the next parse resumes at the stale 'x' of the old argv and fails
 * "--tp_size 2" with "unrecognized argument '--tp_size'" (and reads a
 * string of an argv that may be gone). Fix: optind = 0 on glibc. */
START_TEST(opts_parse_should_start_afresh_after_stopping_inside_a_short_option_cluster)
{
    parse_result r;
    parse(&r, "-hx", NULL);
    ck_assert_int_eq(r.st, TC_OK);
    ck_assert(r.help);
    result_free(&r);

    parse(&r, "--tp_size", "2", NULL);
    ck_assert_msg(r.st == TC_OK, "second parse failed with %d: %s", (int)r.st, r.err);
    ck_assert_int_eq(r.o.tp_size, 2);
    result_free(&r);
}
END_TEST

static Suite *options_suite(void)
{
    Suite *s = suite_create("options");
    TCase *tc = tcase_create("defaults");
    tcase_add_test(tc, opts_init_should_fill_the_defaults_of_the_python_tool);
    tcase_add_test(tc, opts_parse_should_keep_the_defaults_when_given_no_arguments);
    suite_add_tcase(s, tc);

    tc = tcase_create("spelling");
    tcase_add_test(tc, opts_parse_should_accept_both_the_separate_and_the_equals_form);
    tcase_add_test(tc, opts_parse_should_accept_unique_prefixes_like_argparse);
    tcase_add_test(tc, opts_parse_should_check_the_hf_output_flags);
    tcase_add_test(tc, opts_parse_should_reject_ambiguous_prefixes);
    tcase_add_test(tc, opts_parse_should_let_the_last_occurrence_of_a_flag_win);
    suite_add_tcase(s, tc);

    tc = tcase_create("values");
    tcase_add_test(tc, opts_parse_should_accept_each_dtype_choice);
    tcase_add_test(tc, opts_parse_should_reject_an_unknown_dtype_listing_the_choices);
    tcase_add_test(tc, opts_parse_should_reject_dtype_auto_without_model_dir);
    tcase_add_test(tc, opts_parse_should_reject_malformed_and_out_of_range_integers);
    tcase_add_test(tc, opts_parse_should_accept_the_integer_range_limits);
    tcase_add_test(tc, opts_parse_should_reject_malformed_floats);
    tcase_add_test(tc, opts_parse_should_read_the_fake_config_values);
    tcase_add_test(tc, opts_parse_should_accept_embedding_sharding_dim_0_and_1_only);
    tcase_add_test(tc, opts_parse_should_reject_zero_or_too_many_workers);
    tcase_add_test(tc, opts_parse_should_accept_known_log_levels_and_reject_others);
    tcase_add_test(tc, opts_parse_should_map_each_progress_choice);
    tcase_add_test(tc, opts_parse_should_turn_off_auto_progress_for_lines_so_a_terminal_gets_lines);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_test(tc, opts_parse_should_reject_an_unknown_flag_naming_it);
    tcase_add_test(tc, opts_parse_should_report_a_missing_argument);
    tcase_add_test(tc, opts_parse_should_not_take_a_flag_as_the_value_of_a_flag_like_argparse);
    tcase_add_test(tc, opts_parse_should_reject_a_stray_positional_argument);
    tcase_add_test(tc, opts_parse_should_accept_weight_only_flags_like_argparse);
    tcase_add_test(tc, opts_parse_should_refuse_every_flag_of_a_feature_not_supported_yet);
    tcase_add_test(tc, opts_parse_should_name_the_refused_flag);
    tcase_add_test(tc, opts_parse_should_take_the_fp8_flags_and_refuse_their_exclusions);
    tcase_add_test(tc, opts_parse_should_take_meta_ckpt_dir_but_not_with_model_dir);
    tcase_add_test(tc, opts_parse_should_read_the_smoothquant_and_calibration_flags);
    tcase_add_test(tc, opts_parse_should_accept_the_loading_flags_that_change_nothing);
    tcase_add_test(tc, opts_parse_should_take_the_moe_flags_as_given);
    tcase_add_test(tc, opts_parse_should_refuse_more_than_65536_cells);
    suite_add_tcase(s, tc);

    tc = tcase_create("output");
    tcase_add_test(tc, opts_parse_should_print_the_help_to_out_and_set_help_shown);
    tcase_add_test(tc, opts_parse_should_print_the_version_and_set_help_shown);
    tcase_add_test(tc, opts_parse_should_print_nothing_when_the_streams_are_null);
    tcase_add_test(tc, opts_parse_should_write_errors_to_err_only);
    suite_add_tcase(s, tc);

    tc = tcase_create("reentry");
    tcase_add_test(tc, opts_parse_should_be_callable_again_after_a_failed_parse);
    tcase_add_test(tc, opts_parse_should_start_afresh_after_stopping_inside_a_short_option_cluster);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    tc_log_set_quiet(1);
    SRunner *sr = srunner_create(options_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
