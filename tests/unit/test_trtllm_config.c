/* test_trtllm_config.c: Check suite for trtllm_config.c (Python-style JSON
 * rendering of the TensorRT-LLM v0.12 config.json). */
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trtconv/core/log.h"
#include "trtconv/formats/trtllm_config.h"

/* LLaMA-2-7B (trtllm-checkpoint.md §7), fp16, tp 2, pp 2, no quantization. */
static void llama2_7b_tp2pp2(tc_trtllm_config *c)
{
    memset(c, 0, sizeof *c);
    c->rotary_base = 10000.0;
    c->moe_normalization_mode = -1;
    c->architecture = "LlamaForCausalLM";
    c->dtype = TC_FT_FLOAT16;
    c->vocab_size = 32000;
    c->hidden_size = 4096;
    c->num_hidden_layers = 32;
    c->num_attention_heads = 32;
    c->hidden_act = "silu";
    c->logits_dtype = "float32";
    c->norm_epsilon = 1e-05;
    c->position_embedding_type = "rope_gpt_neox";
    c->max_position_embeddings = 4096;
    c->num_key_value_heads = 32;
    c->intermediate_size = 11008;
    c->world_size = 4;
    c->gpus_per_node = 8;
    c->cp_size = 1;
    c->tp_size = 2;
    c->pp_size = 2;
    c->moe_tp_size = 2;
    c->moe_ep_size = 1;
    c->group_size = 128;
    c->head_size = 128;
}

/* Written by hand from trtllm-checkpoint.md §3.1-§3.4 (Era B, v0.12), with
 * mapping.cp_size and moe.tp_mode as v0.12's own output has them. */
static const char llama2_7b_expected[] =
    "{\n"
    "    \"mlp_bias\": false,\n"
    "    \"attn_bias\": false,\n"
    "    \"rotary_base\": 10000.0,\n"
    "    \"rotary_scaling\": null,\n"
    "    \"residual_mlp\": false,\n"
    "    \"disable_weight_only_quant_plugin\": false,\n"
    "    \"moe\": {\n"
    "        \"num_experts\": 0,\n"
    "        \"top_k\": 0,\n"
    "        \"normalization_mode\": null,\n"
    "        \"tp_mode\": 0\n"
    "    },\n"
    "    \"remove_duplicated_kv_heads\": false,\n"
    "    \"architecture\": \"LlamaForCausalLM\",\n"
    "    \"dtype\": \"float16\",\n"
    "    \"vocab_size\": 32000,\n"
    "    \"hidden_size\": 4096,\n"
    "    \"num_hidden_layers\": 32,\n"
    "    \"num_attention_heads\": 32,\n"
    "    \"hidden_act\": \"silu\",\n"
    "    \"logits_dtype\": \"float32\",\n"
    "    \"norm_epsilon\": 1e-05,\n"
    "    \"position_embedding_type\": \"rope_gpt_neox\",\n"
    "    \"max_position_embeddings\": 4096,\n"
    "    \"num_key_value_heads\": 32,\n"
    "    \"intermediate_size\": 11008,\n"
    "    \"mapping\": {\n"
    "        \"world_size\": 4,\n"
    "        \"gpus_per_node\": 8,\n"
    "        \"cp_size\": 1,\n"
    "        \"tp_size\": 2,\n"
    "        \"pp_size\": 2,\n"
    "        \"moe_tp_size\": 2,\n"
    "        \"moe_ep_size\": 1\n"
    "    },\n"
    "    \"quantization\": {\n"
    "        \"quant_algo\": null,\n"
    "        \"kv_cache_quant_algo\": null,\n"
    "        \"group_size\": 128,\n"
    "        \"smoothquant_val\": null,\n"
    "        \"clamp_val\": null,\n"
    "        \"has_zero_point\": false,\n"
    "        \"pre_quant_scale\": false,\n"
    "        \"exclude_modules\": null\n"
    "    },\n"
    "    \"use_parallel_embedding\": false,\n"
    "    \"embedding_sharding_dim\": 0,\n"
    "    \"share_embedding_table\": false,\n"
    "    \"head_size\": 128,\n"
    "    \"qk_layernorm\": false\n"
    "}";

START_TEST(render_should_match_hand_written_llama2_7b_tp2_pp2_fp16_config)
{
    tc_trtllm_config c;
    llama2_7b_tp2pp2(&c);
    char *out = NULL;
    ck_assert_int_eq(tc_trtllm_config_render(&c, &out), TC_OK);
    ck_assert_ptr_nonnull(out);
    ck_assert_str_eq(out, llama2_7b_expected);
    ck_assert_int_ne(out[strlen(out) - 1], '\n'); /* no trailing newline */
    free(out);
}
END_TEST

START_TEST(render_should_write_quantization_strings_floats_and_clamp_list)
{
    tc_trtllm_config c;
    llama2_7b_tp2pp2(&c);
    c.quant_algo = "W8A8_SQ_PER_CHANNEL_PER_TOKEN_PLUGIN";
    c.kv_cache_quant_algo = "INT8";
    c.has_smoothquant_val = true;
    c.smoothquant_val = 0.5;
    c.has_clamp_val = true;
    c.clamp_val[0] = -1200.0;
    c.clamp_val[1] = 1200.0;
    char *out = NULL;
    ck_assert_int_eq(tc_trtllm_config_render(&c, &out), TC_OK);
    ck_assert_ptr_nonnull(strstr(out,
        "    \"quantization\": {\n"
        "        \"quant_algo\": \"W8A8_SQ_PER_CHANNEL_PER_TOKEN_PLUGIN\",\n"
        "        \"kv_cache_quant_algo\": \"INT8\",\n"
        "        \"group_size\": 128,\n"
        "        \"smoothquant_val\": 0.5,\n"
        "        \"clamp_val\": [\n"
        "            -1200.0,\n"
        "            1200.0\n"
        "        ],\n"
        "        \"has_zero_point\": false,\n"));
    free(out);
}
END_TEST

START_TEST(render_should_embed_llama3_rotary_scaling)
{
    tc_trtllm_config c;
    llama2_7b_tp2pp2(&c);
    cJSON *rs = cJSON_Parse("{\"factor\": 8.5, \"low_freq_factor\": 1, "
                            "\"high_freq_factor\": 4, "
                            "\"original_max_position_embeddings\": 8192, "
                            "\"rope_type\": \"llama3\"}");
    ck_assert_ptr_nonnull(rs);
    c.rotary_scaling = rs;
    c.rotary_base = 500000.0;
    c.moe_normalization_mode = 1;
    c.dtype = TC_FT_BFLOAT16;
    char *out = NULL;
    ck_assert_int_eq(tc_trtllm_config_render(&c, &out), TC_OK);
    ck_assert_ptr_nonnull(strstr(out,
        "    \"rotary_base\": 500000.0,\n"
        "    \"rotary_scaling\": {\n"
        "        \"factor\": 8.5,\n"
        "        \"low_freq_factor\": 1,\n"
        "        \"high_freq_factor\": 4,\n"
        "        \"original_max_position_embeddings\": 8192,\n"
        "        \"rope_type\": \"llama3\"\n"
        "    },\n"
        "    \"residual_mlp\": false,\n"));
    ck_assert_ptr_nonnull(strstr(out, "        \"normalization_mode\": 1,\n"));
    ck_assert_ptr_nonnull(strstr(out, "    \"dtype\": \"bfloat16\",\n"));
    size_t n = strlen(out);
    const char *tail = "    \"head_size\": 128,\n"
                       "    \"qk_layernorm\": false\n"
                       "}";
    ck_assert_uint_ge(n, strlen(tail));
    ck_assert_str_eq(out + n - strlen(tail), tail);
    free(out);
    cJSON_Delete(rs);
}
END_TEST

/* Read a whole small file (the Python-written expectations). */
static char *slurp(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/config/%s", TC_TEST_DATA_DIR, name);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    static char text[8192];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    return text;
}

/* The fake config of convert_checkpoint.py without --model_dir: expected
 * text written by Python's json.dump (tests/data/config/make_cli_configs.py). */
START_TEST(cli_render_should_equal_python_json_dump_of_from_cli_args)
{
    tc_trtllm_config c;
    memset(&c, 0, sizeof c);
    c.architecture = "LlamaForCausalLM";
    c.dtype = TC_FT_FLOAT16;
    c.logits_dtype = "float32";
    c.num_hidden_layers = 4;
    c.num_attention_heads = 8;
    c.hidden_size = 512;
    c.intermediate_size = 1024;
    c.num_key_value_heads = 2;
    c.vocab_size = 1000;
    c.position_embedding_type = "rope_gpt_neox";
    c.max_position_embeddings = 2048;
    c.hidden_act = "silu";
    c.rotary_base = 10000.0;
    c.norm_epsilon = 1e-06;
    c.moe_normalization_mode = 1;
    c.world_size = 2;
    c.tp_size = 2;
    c.pp_size = 1;
    c.moe_tp_size = 2;
    c.moe_ep_size = 1;
    c.group_size = 128;
    char *out = NULL;
    ck_assert_int_eq(tc_trtllm_cli_config_render(&c, &out), TC_OK);
    ck_assert_str_eq(out, slurp("cli_defaults_l4_h8_kv2_tp2.json"));
    free(out);
    c.has_multiple_of = true;
    c.multiple_of = 256;
    c.has_ffn_dim_multiplier = true;
    c.ffn_dim_multiplier = 1.3;
    ck_assert_int_eq(tc_trtllm_cli_config_render(&c, &out), TC_OK);
    ck_assert_str_eq(out, slurp("cli_l4_h8_kv2_tp2.json"));
    free(out);
}
END_TEST

static const struct { double v; const char *repr; } repr_table[] = {
    { 1e-05, "1e-05" },
    { 1e-06, "1e-06" },
    { 10000.0, "10000.0" },
    { 500000.0, "500000.0" },
    { 0.5, "0.5" },
    { 0.1, "0.1" },
    { 1e16, "1e+16" },
    { 1234567890123456.0, "1234567890123456.0" },
    { 0.0001, "0.0001" },
    { 0.00001234, "1.234e-05" },
    { 2.5e-07, "2.5e-07" },
    { 1.7976931348623157e308, "1.7976931348623157e+308" },
    { 5e-324, "5e-324" },
    { 0.0, "0.0" },
    { -0.0, "-0.0" },
    { -1200.0, "-1200.0" },
    { 1200.0, "1200.0" },
    { 1.3, "1.3" },
    { 1.0 / 3.0, "0.3333333333333333" },
    { 123.456, "123.456" },
    { 1e22, "1e+22" },
    { 9007199254740993.0, "9007199254740992.0" },
    { 2.0e-4, "0.0002" },
    { -2.5e-05, "-2.5e-05" },
    { 1e100, "1e+100" },
    { 2.2250738585072014e-308, "2.2250738585072014e-308" },
};

START_TEST(py_float_repr_should_match_python_repr)
{
    char buf[64];
    for (size_t i = 0; i < sizeof repr_table / sizeof repr_table[0]; i++)
        ck_assert_str_eq(tc_py_float_repr(repr_table[i].v, buf, sizeof buf),
                         repr_table[i].repr);
}
END_TEST

START_TEST(py_float_repr_should_write_nan_and_infinities_as_json_dump_does)
{
    char buf[32];
    ck_assert_str_eq(tc_py_float_repr(NAN, buf, sizeof buf), "NaN");
    ck_assert_str_eq(tc_py_float_repr(INFINITY, buf, sizeof buf), "Infinity");
    ck_assert_str_eq(tc_py_float_repr(-INFINITY, buf, sizeof buf), "-Infinity");
}
END_TEST

START_TEST(py_float_repr_should_round_trip_every_value)
{
    char buf[32];
    unsigned long long s = 88172645463325252ULL;
    for (int i = 0; i < 20000; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        double d;
        memcpy(&d, &s, sizeof d);
        if (!isfinite(d))
            continue;
        tc_py_float_repr(d, buf, sizeof buf);
        ck_assert_msg(strtod(buf, NULL) == d, "%s does not read back", buf);
    }
}
END_TEST

/* Render one cJSON value at indent 0 into a fresh string. */
static char *render(const cJSON *v)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    ck_assert_int_eq(tc_py_json_render(v, 0, &buf, &len, &cap), TC_OK);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(strlen(buf), len);
    return buf;
}

START_TEST(py_json_render_should_escape_strings_like_python_ensure_ascii)
{
    /* "q\"b\\n\nr\rt\tb\bf\f\x01\x1f" + e-acute, euro sign, U+1F600 */
    cJSON *s = cJSON_CreateString("q\"b\\n\nr\rt\tb\bf\f\x01\x1f\x7f"
                                  "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    char *out = render(s);
    ck_assert_str_eq(out, "\"q\\\"b\\\\n\\nr\\rt\\tb\\bf\\f\\u0001\\u001f\\u007f"
                          "\\u00e9\\u20ac\\ud83d\\ude00\"");
    free(out);
    cJSON_Delete(s);
}
END_TEST

START_TEST(py_json_render_should_refuse_invalid_utf8)
{
    tc_log_set_quiet(1);
    const char *bad[] = { "\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xff", "a\x80" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cJSON *s = cJSON_CreateString(bad[i]);
        char *buf = NULL;
        size_t len = 0, cap = 0;
        ck_assert_int_eq(tc_py_json_render(s, 0, &buf, &len, &cap), TC_E_INPUT);
        free(buf);
        cJSON_Delete(s);
    }
    tc_log_set_quiet(0);
}
END_TEST

START_TEST(py_json_render_should_indent_nested_containers_and_shorten_empty_ones)
{
    cJSON *v = cJSON_Parse("{\"a\": [1, 2.5, [], {}], \"b\": {\"c\": null, "
                           "\"d\": true, \"e\": false, \"f\": -3, \"g\": 1e-05, "
                           "\"h\": 1e20}, \"\\u00e9\": \"x\"}");
    ck_assert_ptr_nonnull(v);
    char *out = render(v);
    ck_assert_str_eq(out,
        "{\n"
        "    \"a\": [\n"
        "        1,\n"
        "        2.5,\n"
        "        [],\n"
        "        {}\n"
        "    ],\n"
        "    \"b\": {\n"
        "        \"c\": null,\n"
        "        \"d\": true,\n"
        "        \"e\": false,\n"
        "        \"f\": -3,\n"
        "        \"g\": 1e-05,\n"
        "        \"h\": 1e+20\n"
        "    },\n"
        "    \"\\u00e9\": \"x\"\n"
        "}");
    free(out);
    cJSON_Delete(v);
}
END_TEST

START_TEST(py_json_render_should_append_to_an_existing_buffer_at_an_indent)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    cJSON *v = cJSON_Parse("[\"x\"]");
    ck_assert_int_eq(tc_py_json_render(v, 0, &buf, &len, &cap), TC_OK);
    ck_assert_int_eq(tc_py_json_render(v, 2, &buf, &len, &cap), TC_OK);
    ck_assert_str_eq(buf, "[\n    \"x\"\n][\n            \"x\"\n        ]");
    free(buf);
    cJSON_Delete(v);
}
END_TEST

START_TEST(py_json_render_should_write_scalars_at_top_level)
{
    cJSON *n = cJSON_CreateNull();
    cJSON *f = cJSON_CreateNumber(-0.0);
    cJSON *big = cJSON_CreateNumber(9007199254740992.0);
    char *out = render(n);
    ck_assert_str_eq(out, "null");
    free(out);
    out = render(f);
    ck_assert_str_eq(out, "-0.0");
    free(out);
    out = render(big);
    ck_assert_str_eq(out, "9007199254740992.0");
    free(out);
    cJSON_Delete(n);
    cJSON_Delete(f);
    cJSON_Delete(big);
}
END_TEST

static Suite *trtllm_config_suite(void)
{
    Suite *s = suite_create("trtllm_config");
    TCase *tc = tcase_create("render");
    tcase_add_test(tc, render_should_match_hand_written_llama2_7b_tp2_pp2_fp16_config);
    tcase_add_test(tc, render_should_write_quantization_strings_floats_and_clamp_list);
    tcase_add_test(tc, render_should_embed_llama3_rotary_scaling);
    tcase_add_test(tc, cli_render_should_equal_python_json_dump_of_from_cli_args);
    suite_add_tcase(s, tc);
    tc = tcase_create("py_float_repr");
    tcase_add_test(tc, py_float_repr_should_match_python_repr);
    tcase_add_test(tc, py_float_repr_should_write_nan_and_infinities_as_json_dump_does);
    tcase_add_test(tc, py_float_repr_should_round_trip_every_value);
    suite_add_tcase(s, tc);
    tc = tcase_create("py_json_render");
    tcase_add_test(tc, py_json_render_should_escape_strings_like_python_ensure_ascii);
    tcase_add_test(tc, py_json_render_should_refuse_invalid_utf8);
    tcase_add_test(tc, py_json_render_should_indent_nested_containers_and_shorten_empty_ones);
    tcase_add_test(tc, py_json_render_should_append_to_an_existing_buffer_at_an_indent);
    tcase_add_test(tc, py_json_render_should_write_scalars_at_top_level);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(trtllm_config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
