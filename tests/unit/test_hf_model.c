/* test_hf_model.c: Check suite for hf_model.c (config.json in both styles,
 * the safetensors index, lazy shard lookup). */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "trtconv/model/hf_model.h"
#include "trtconv/core/jsonutil.h"
#include "trtconv/core/log.h"

/* ---------------------------------------------------------------------------
 * Fixtures
 * ------------------------------------------------------------------------- */

/* LLaMA-3-8B config.json in the older style (torch_dtype, rope_theta,
 * rope_scaling), as transformers 4.4x writes it. */
static const char llama3_old[] =
    "{\n"
    "  \"architectures\": [\"LlamaForCausalLM\"],\n"
    "  \"attention_bias\": false,\n"
    "  \"attention_dropout\": 0.0,\n"
    "  \"bos_token_id\": 128000,\n"
    "  \"eos_token_id\": [128001, 128008, 128009],\n"
    "  \"hidden_act\": \"silu\",\n"
    "  \"hidden_size\": 4096,\n"
    "  \"initializer_range\": 0.02,\n"
    "  \"intermediate_size\": 14336,\n"
    "  \"max_position_embeddings\": 131072,\n"
    "  \"mlp_bias\": false,\n"
    "  \"model_type\": \"llama\",\n"
    "  \"num_attention_heads\": 32,\n"
    "  \"num_hidden_layers\": 32,\n"
    "  \"num_key_value_heads\": 8,\n"
    "  \"pretraining_tp\": 1,\n"
    "  \"rms_norm_eps\": 1e-05,\n"
    "  \"rope_scaling\": {\n"
    "    \"factor\": 8.0,\n"
    "    \"low_freq_factor\": 1.0,\n"
    "    \"high_freq_factor\": 4.0,\n"
    "    \"original_max_position_embeddings\": 8192,\n"
    "    \"rope_type\": \"llama3\"\n"
    "  },\n"
    "  \"rope_theta\": 500000.0,\n"
    "  \"tie_word_embeddings\": false,\n"
    "  \"torch_dtype\": \"bfloat16\",\n"
    "  \"transformers_version\": \"4.43.0.dev0\",\n"
    "  \"use_cache\": true,\n"
    "  \"vocab_size\": 128256\n"
    "}\n";

static const char mistral[] =
    "{\"architectures\": [\"MistralForCausalLM\"], \"bos_token_id\": 1,"
    " \"eos_token_id\": 2, \"head_dim\": null, \"hidden_act\": \"silu\","
    " \"hidden_size\": 4096, \"intermediate_size\": 14336,"
    " \"max_position_embeddings\": 32768, \"model_type\": \"mistral\","
    " \"num_attention_heads\": 32, \"num_hidden_layers\": 32,"
    " \"num_key_value_heads\": 8, \"rms_norm_eps\": 1e-05,"
    " \"rope_theta\": 1000000.0, \"sliding_window\": null,"
    " \"tie_word_embeddings\": false, \"torch_dtype\": \"bfloat16\","
    " \"vocab_size\": 32768}";

/* The smallest accepted config: only the required keys. */
static const char minimal[] =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 1000,"
    " \"hidden_size\": 64, \"intermediate_size\": 128, \"num_hidden_layers\": 2,"
    " \"num_attention_heads\": 8}";

static tc_status parse_str(const char *text, tc_hf_config *cfg)
{
    return tc_hf_config_parse("config.json", text, strlen(text), cfg);
}

/* Parse text that must fail with TC_E_INPUT; the first error message must
 * contain every NULL-terminated fragment. */
static void expect_config_error(const char *text, const char *frag1,
                                const char *frag2)
{
    tc_hf_config cfg;
    tc_log_set_quiet(1);
    tc_clear_first_error();
    ck_assert_int_eq(parse_str(text, &cfg), TC_E_INPUT);
    ck_assert_ptr_null(cfg.rope_scaling);
    const char *msg = tc_first_error();
    ck_assert_msg(strstr(msg, "config.json") != NULL, "no file in: %s", msg);
    if (frag1)
        ck_assert_msg(strstr(msg, frag1) != NULL, "'%s' not in: %s", frag1, msg);
    if (frag2)
        ck_assert_msg(strstr(msg, frag2) != NULL, "'%s' not in: %s", frag2, msg);
    tc_hf_config_free(&cfg);
    tc_log_set_quiet(0);
}

/* A copy of `minimal` with `extra` (", \"key\": value" text) appended. */
static char *minimal_plus(const char *extra)
{
    size_t n = strlen(minimal) + strlen(extra) + 1;
    char *s = malloc(n);
    ck_assert_ptr_nonnull(s);
    memcpy(s, minimal, strlen(minimal) - 1); /* drop the closing brace */
    snprintf(s + strlen(minimal) - 1, n - (strlen(minimal) - 1), "%s}", extra);
    return s;
}

static void expect_minimal_plus_error(const char *extra, const char *frag1,
                                      const char *frag2)
{
    char *text = minimal_plus(extra);
    expect_config_error(text, frag1, frag2);
    free(text);
}

static char *make_tmpdir(void)
{
    char *dir = strdup("/tmp/tc_hf_test_XXXXXX");
    ck_assert_ptr_nonnull(dir);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    return dir;
}

static void write_file(const char *dir, const char *name, const void *data,
                       size_t n)
{
    char path[4096];
    ck_assert_int_lt(snprintf(path, sizeof path, "%s/%s", dir, name),
                     (int)sizeof path);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

static void write_text(const char *dir, const char *name, const char *text)
{
    write_file(dir, name, text, strlen(text));
}

/* A tiny safetensors file holding F32 [1] tensors with the given names. */
static void write_safetensors(const char *dir, const char *file,
                              const char *const *names, size_t n)
{
    char hdr[1024];
    size_t h = 0;
    hdr[h++] = '{';
    for (size_t i = 0; i < n; i++)
        h += (size_t)snprintf(hdr + h, sizeof hdr - h,
                              "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[1],"
                              "\"data_offsets\":[%zu,%zu]}",
                              i ? "," : "", names[i], 4 * i, 4 * i + 4);
    hdr[h++] = '}';
    while (h % 8)
        hdr[h++] = ' ';
    ck_assert_uint_lt(h, sizeof hdr);
    unsigned char buf[2048];
    for (int b = 0; b < 8; b++)
        buf[b] = (unsigned char)(((uint64_t)h >> (8 * b)) & 0xFF);
    memcpy(buf + 8, hdr, h);
    for (size_t i = 0; i < n; i++) {
        float v = (float)i;
        memcpy(buf + 8 + h + 4 * i, &v, 4);
    }
    write_file(dir, file, buf, 8 + h + 4 * n);
}

/* Remove a flat directory made by make_tmpdir and free its name. */
static void remove_tmpdir(char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char path[4096];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
    free(dir);
}

/* ---------------------------------------------------------------------------
 * config.json
 * ------------------------------------------------------------------------- */

START_TEST(config_should_read_the_transformers5_golden_config)
{
    const char *golden = getenv("TRTCONV_GOLDEN_DIR");
    ck_assert_msg(golden && *golden, "TRTCONV_GOLDEN_DIR is not set (tests/CMakeLists.txt sets it)");
    char dir[4096];
    ck_assert_int_lt(snprintf(dir, sizeof dir, "%s/sq_mha/hf", golden),
                     (int)sizeof dir);
    tc_hf_config cfg;
    ck_assert_int_eq(tc_hf_config_load(dir, &cfg), TC_OK);
    ck_assert_str_eq(cfg.architecture, "LlamaForCausalLM");
    ck_assert_str_eq(cfg.model_type, "llama");
    ck_assert_int_eq(cfg.vocab_size, 512);
    ck_assert_int_eq(cfg.hidden_size, 128);
    ck_assert_int_eq(cfg.intermediate_size, 256);
    ck_assert_int_eq(cfg.num_hidden_layers, 2);
    ck_assert_int_eq(cfg.num_attention_heads, 4);
    ck_assert_int_eq(cfg.num_key_value_heads, 4);
    ck_assert_int_eq(cfg.head_dim, 32);
    ck_assert_int_eq(cfg.max_position_embeddings, 512);
    ck_assert(cfg.rms_norm_eps == 1e-05);
    ck_assert(cfg.rope_theta == 10000.0);
    ck_assert_ptr_null(cfg.rope_scaling); /* rope_type "default" */
    ck_assert(!cfg.tie_word_embeddings);
    ck_assert(!cfg.attention_bias);
    ck_assert(!cfg.mlp_bias);
    ck_assert_str_eq(cfg.hidden_act, "silu");
    ck_assert(cfg.has_torch_dtype);
    ck_assert_int_eq(cfg.torch_dtype, TC_FT_FLOAT16);
    tc_hf_config_free(&cfg);

    /* The whole directory: a single-file model whose tensors resolve. */
    tc_hf_model *m = NULL;
    ck_assert_int_eq(tc_hf_open(dir, &m), TC_OK);
    ck_assert_uint_eq(m->n_entries, 0);
    ck_assert_uint_eq(m->n_shards, 1);
    ck_assert_str_eq(m->shard_names[0], "model.safetensors");
    const tc_st_file *f = NULL;
    const tc_st_tensor *t = NULL;
    ck_assert_int_eq(tc_hf_find_tensor(m, "model.embed_tokens.weight", &f, &t), TC_OK);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->ndim, 2);
    ck_assert_int_eq(t->shape[0], 512);
    ck_assert_int_eq(t->shape[1], 128);
    ck_assert_int_eq(tc_hf_lookup_tensor(m, "no.such.tensor", &f, &t), TC_OK);
    ck_assert_ptr_null(t);
    tc_hf_close(m);
}
END_TEST

START_TEST(config_should_read_the_older_style_with_a_llama3_rope_scaling_dict)
{
    tc_hf_config cfg;
    ck_assert_int_eq(parse_str(llama3_old, &cfg), TC_OK);
    ck_assert_str_eq(cfg.architecture, "LlamaForCausalLM");
    ck_assert_str_eq(cfg.model_type, "llama");
    ck_assert_int_eq(cfg.vocab_size, 128256);
    ck_assert_int_eq(cfg.num_key_value_heads, 8);
    ck_assert_int_eq(cfg.head_dim, 128);
    ck_assert_int_eq(cfg.max_position_embeddings, 131072);
    ck_assert(cfg.rope_theta == 500000.0);
    ck_assert(cfg.rms_norm_eps == 1e-05);
    ck_assert(cfg.has_torch_dtype);
    ck_assert_int_eq(cfg.torch_dtype, TC_FT_BFLOAT16);
    /* rope_scaling copied verbatim, in order. */
    ck_assert_ptr_nonnull(cfg.rope_scaling);
    char *s = cJSON_PrintUnformatted(cfg.rope_scaling);
    ck_assert_str_eq(s, "{\"factor\":8,\"low_freq_factor\":1,\"high_freq_factor\":4,"
                        "\"original_max_position_embeddings\":8192,"
                        "\"rope_type\":\"llama3\"}");
    free(s);
    tc_hf_config_free(&cfg);
    ck_assert_ptr_null(cfg.rope_scaling);
    tc_hf_config_free(&cfg); /* twice is harmless */
}
END_TEST

START_TEST(config_should_turn_transformers5_rope_parameters_into_rope_scaling)
{
    char *text = minimal_plus(", \"dtype\": \"bfloat16\", \"rope_parameters\": "
                              "{\"factor\": 8.0, \"rope_theta\": 500000.0, "
                              "\"rope_type\": \"llama3\"}");
    tc_hf_config cfg;
    ck_assert_int_eq(parse_str(text, &cfg), TC_OK);
    ck_assert(cfg.rope_theta == 500000.0);
    ck_assert(cfg.has_torch_dtype);
    ck_assert_int_eq(cfg.torch_dtype, TC_FT_BFLOAT16);
    ck_assert_ptr_nonnull(cfg.rope_scaling);
    char *s = cJSON_PrintUnformatted(cfg.rope_scaling);
    ck_assert_str_eq(s, "{\"factor\":8,\"rope_type\":\"llama3\"}");
    free(s);
    tc_hf_config_free(&cfg);
    free(text);

    /* rope_type "default": theta only, no scaling. */
    text = minimal_plus(", \"rope_parameters\": {\"rope_theta\": 250000.0, "
                        "\"rope_type\": \"default\"}");
    ck_assert_int_eq(parse_str(text, &cfg), TC_OK);
    ck_assert(cfg.rope_theta == 250000.0);
    ck_assert_ptr_null(cfg.rope_scaling);
    tc_hf_config_free(&cfg);
    free(text);
}
END_TEST

START_TEST(config_should_read_a_mistral_config_with_null_head_dim)
{
    tc_hf_config cfg;
    ck_assert_int_eq(parse_str(mistral, &cfg), TC_OK);
    ck_assert_str_eq(cfg.architecture, "MistralForCausalLM");
    ck_assert_str_eq(cfg.model_type, "mistral");
    ck_assert_int_eq(cfg.head_dim, 128);
    ck_assert_int_eq(cfg.num_key_value_heads, 8);
    ck_assert(cfg.rope_theta == 1000000.0);
    ck_assert_ptr_null(cfg.rope_scaling);
    tc_hf_config_free(&cfg);
}
END_TEST

START_TEST(config_should_fill_defaults_for_absent_optional_keys)
{
    tc_hf_config cfg;
    ck_assert_int_eq(parse_str(minimal, &cfg), TC_OK);
    ck_assert_str_eq(cfg.model_type, "");
    ck_assert_int_eq(cfg.num_key_value_heads, 8);
    ck_assert_int_eq(cfg.head_dim, 8);
    ck_assert_int_eq(cfg.max_position_embeddings, 2048);
    ck_assert(cfg.rms_norm_eps == 1e-6);
    ck_assert(cfg.rope_theta == 10000.0);
    ck_assert_ptr_null(cfg.rope_scaling);
    ck_assert(!cfg.tie_word_embeddings);
    ck_assert(!cfg.attention_bias);
    ck_assert(!cfg.mlp_bias);
    ck_assert_str_eq(cfg.hidden_act, "silu");
    ck_assert(!cfg.has_torch_dtype);
    tc_hf_config_free(&cfg);

    /* null counts as absent */
    char *text = minimal_plus(", \"num_key_value_heads\": null, \"rope_scaling\": null,"
                              " \"torch_dtype\": null");
    ck_assert_int_eq(parse_str(text, &cfg), TC_OK);
    ck_assert_int_eq(cfg.num_key_value_heads, 8);
    ck_assert_ptr_null(cfg.rope_scaling);
    ck_assert(!cfg.has_torch_dtype);
    tc_hf_config_free(&cfg);
    free(text);
}
END_TEST

START_TEST(config_should_read_explicit_head_dim_biases_and_tied_embeddings)
{
    char *text = minimal_plus(", \"head_dim\": 16, \"bias\": true, \"mlp_bias\": true,"
                              " \"tie_word_embeddings\": true, \"hidden_act\": \"gelu\","
                              " \"torch_dtype\": \"float32\"");
    tc_hf_config cfg;
    ck_assert_int_eq(parse_str(text, &cfg), TC_OK);
    ck_assert_int_eq(cfg.head_dim, 16);
    ck_assert(cfg.attention_bias);
    ck_assert(cfg.mlp_bias);
    ck_assert(cfg.tie_word_embeddings);
    ck_assert_str_eq(cfg.hidden_act, "gelu");
    ck_assert_int_eq(cfg.torch_dtype, TC_FT_FLOAT32);
    tc_hf_config_free(&cfg);
    free(text);
}
END_TEST

START_TEST(config_should_reject_each_missing_required_key)
{
    static const char *const keys[] = {
        "architectures", "vocab_size", "hidden_size", "intermediate_size",
        "num_hidden_layers", "num_attention_heads",
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        cJSON *root = cJSON_Parse(minimal);
        cJSON_DeleteItemFromObjectCaseSensitive(root, keys[i]);
        char *text = cJSON_PrintUnformatted(root);
        expect_config_error(text, keys[i], "missing");
        free(text);
        cJSON_Delete(root);
    }
}
END_TEST

START_TEST(config_should_reject_values_of_the_wrong_type_or_range)
{
    expect_minimal_plus_error(", \"max_position_embeddings\": \"4096\"",
                              "max_position_embeddings", "positive integer");
    expect_minimal_plus_error(", \"max_position_embeddings\": 4096.5",
                              "max_position_embeddings", "integer");
    expect_minimal_plus_error(", \"max_position_embeddings\": 0",
                              "max_position_embeddings", "integer");
    expect_minimal_plus_error(", \"num_key_value_heads\": -1",
                              "num_key_value_heads", "integer");
    expect_minimal_plus_error(", \"head_dim\": 1e12", "head_dim", "integer");
    expect_minimal_plus_error(", \"rms_norm_eps\": \"1e-5\"", "rms_norm_eps",
                              "number");
    expect_minimal_plus_error(", \"rms_norm_eps\": -1", "rms_norm_eps",
                              "non-negative");
    expect_minimal_plus_error(", \"rope_theta\": 0", "rope_theta", "positive");
    expect_minimal_plus_error(", \"tie_word_embeddings\": 1",
                              "tie_word_embeddings", "true or false");
    expect_minimal_plus_error(", \"attention_bias\": \"no\"", "attention_bias",
                              "true or false");
    expect_minimal_plus_error(", \"hidden_act\": 3", "hidden_act", "string");
    expect_minimal_plus_error(", \"model_type\": [\"llama\"]", "model_type", "string");
    expect_minimal_plus_error(", \"rope_scaling\": 8", "rope_scaling", "object");
    expect_minimal_plus_error(", \"rope_parameters\": []", "rope_parameters", "object");
    expect_minimal_plus_error(", \"rope_parameters\": {\"rope_type\": 3}",
                              "rope_parameters.rope_type", "string");
    expect_minimal_plus_error(", \"rope_parameters\": {\"rope_theta\": \"x\"}",
                              "rope_parameters.rope_theta", "number");
    expect_minimal_plus_error(", \"torch_dtype\": 16", "torch_dtype", "string");
    expect_config_error("{\"architectures\": \"LlamaForCausalLM\"}",
                        "architectures", "array");
    expect_config_error("{\"architectures\": []}", "architectures", "array");
    expect_config_error("{\"architectures\": [7]}", "architectures", "string");
    expect_config_error("{\"vocab_size\": 5, \"vocab_size\": 6", "JSON", NULL);
    expect_config_error("[1, 2]", "object", NULL);
    expect_config_error("", "JSON", NULL);
}
END_TEST

START_TEST(config_should_reject_duplicate_keys)
{
    expect_minimal_plus_error(", \"hidden_size\": 128", "hidden_size",
                              "more than once");
    expect_minimal_plus_error(", \"rope_scaling\": {\"factor\": 2, \"factor\": 4}",
                              "factor", "rope_scaling");
    expect_minimal_plus_error(", \"rope_parameters\": {\"rope_theta\": 2, "
                              "\"rope_theta\": 4}", "rope_theta", "rope_parameters");
}
END_TEST

START_TEST(config_should_reject_kv_heads_that_do_not_divide_heads)
{
    expect_minimal_plus_error(", \"num_key_value_heads\": 3",
                              "config.json: num_key_value_heads = 3 does not divide "
                              "num_attention_heads = 8", NULL);
    /* and hidden not divisible by heads without head_dim */
    expect_config_error("{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 10,"
                        " \"hidden_size\": 100, \"intermediate_size\": 128,"
                        " \"num_hidden_layers\": 2, \"num_attention_heads\": 8}",
                        "hidden_size = 100", "head_dim");
}
END_TEST

START_TEST(config_should_reject_an_unknown_architecture_and_list_supported_ones)
{
    expect_config_error("{\"architectures\": [\"Qwen2ForCausalLM\"], \"vocab_size\": 10,"
                        " \"hidden_size\": 64, \"intermediate_size\": 128,"
                        " \"num_hidden_layers\": 2, \"num_attention_heads\": 8}",
                        "architecture Qwen2ForCausalLM is not supported",
                        "LlamaForCausalLM, MistralForCausalLM");
}
END_TEST

START_TEST(config_should_reject_an_unsupported_dtype_string_naming_key_and_value)
{
    expect_minimal_plus_error(", \"torch_dtype\": \"float8_e4m3fn\"",
                              "\"torch_dtype\" = \"float8_e4m3fn\"", "float16");
    expect_minimal_plus_error(", \"dtype\": \"auto\"", "\"dtype\" = \"auto\"", NULL);
    expect_minimal_plus_error(", \"dtype\": \"float16\", \"torch_dtype\": \"bfloat16\"",
                              "disagree", NULL);
}
END_TEST

START_TEST(read_small_file_should_refuse_oversized_and_missing_files)
{
    char *dir = make_tmpdir();
    write_text(dir, "f.json", "0123456789");
    char path[4096];
    snprintf(path, sizeof path, "%s/f.json", dir);
    char *data = NULL;
    size_t len = 0;
    ck_assert_int_eq(tc_read_small_file(path, 10, &data, &len), TC_OK);
    ck_assert_uint_eq(len, 10);
    ck_assert_str_eq(data, "0123456789");
    free(data);

    tc_log_set_quiet(1);
    tc_clear_first_error();
    ck_assert_int_eq(tc_read_small_file(path, 9, &data, &len), TC_E_INPUT);
    ck_assert_ptr_null(data);
    ck_assert_ptr_nonnull(strstr(tc_first_error(), path));
    ck_assert_ptr_nonnull(strstr(tc_first_error(), "limit"));
    snprintf(path, sizeof path, "%s/missing.json", dir);
    ck_assert_int_eq(tc_read_small_file(path, 9, &data, &len), TC_E_IO);
    ck_assert_int_eq(tc_read_small_file(dir, 1 << 20, &data, &len), TC_E_INPUT);
    tc_log_set_quiet(0);
    remove_tmpdir(dir);
}
END_TEST

START_TEST(config_load_should_refuse_an_oversized_config_json)
{
    char *dir = make_tmpdir();
    size_t n = ((size_t)16 << 20) + 1;
    char *big = malloc(n);
    ck_assert_ptr_nonnull(big);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    write_file(dir, "config.json", big, n);
    free(big);
    tc_hf_config cfg;
    tc_log_set_quiet(1);
    tc_clear_first_error();
    ck_assert_int_eq(tc_hf_config_load(dir, &cfg), TC_E_INPUT);
    ck_assert_ptr_nonnull(strstr(tc_first_error(), "config.json"));
    ck_assert_ptr_nonnull(strstr(tc_first_error(), "limit"));
    tc_log_set_quiet(0);
    tc_hf_config_free(&cfg);
    remove_tmpdir(dir);
}
END_TEST

/* ---------------------------------------------------------------------------
 * Index and shards
 * ------------------------------------------------------------------------- */

START_TEST(shard_name_ok_should_accept_only_plain_safetensors_file_names)
{
    ck_assert(tc_hf_shard_name_ok("model-00001-of-00002.safetensors"));
    ck_assert(tc_hf_shard_name_ok("model.safetensors"));
    ck_assert(tc_hf_shard_name_ok("a..b.safetensors"));
    static const char *const bad[] = {
        "", "../x.safetensors", "/etc/passwd", "a/b.safetensors",
        ".hidden.safetensors", ".", "..", "a\\b.safetensors", "x.bin",
        ".safetensors", "model.safetensors/", "a\nb.safetensors",
        "model.safetensors.index.json", "/abs/model.safetensors",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(!tc_hf_shard_name_ok(bad[i]), "accepted \"%s\"", bad[i]);
    ck_assert(!tc_hf_shard_name_ok(NULL));
    char longname[300];
    memset(longname, 'a', sizeof longname);
    strcpy(longname + 243, ".safetensors"); /* 255 chars: accepted */
    ck_assert(tc_hf_shard_name_ok(longname));
    memset(longname, 'a', sizeof longname);
    strcpy(longname + 244, ".safetensors"); /* 256 chars: refused */
    ck_assert(!tc_hf_shard_name_ok(longname));
}
END_TEST

/* A model dir with the minimal config and the given index text. */
static char *dir_with_index(const char *index)
{
    char *dir = make_tmpdir();
    write_text(dir, "config.json", minimal);
    write_text(dir, "model.safetensors.index.json", index);
    return dir;
}

static void expect_open_error(const char *index, const char *frag1,
                              const char *frag2)
{
    char *dir = dir_with_index(index);
    tc_hf_model *m = (tc_hf_model *)1;
    tc_log_set_quiet(1);
    tc_clear_first_error();
    ck_assert_int_eq(tc_hf_open(dir, &m), TC_E_INPUT);
    ck_assert_ptr_null(m);
    const char *msg = tc_first_error();
    ck_assert_msg(strstr(msg, "model.safetensors.index.json") != NULL, "%s", msg);
    if (frag1)
        ck_assert_msg(strstr(msg, frag1) != NULL, "'%s' not in: %s", frag1, msg);
    if (frag2)
        ck_assert_msg(strstr(msg, frag2) != NULL, "'%s' not in: %s", frag2, msg);
    tc_log_set_quiet(0);
    remove_tmpdir(dir);
}

START_TEST(open_should_refuse_index_shard_names_that_escape_the_model_dir)
{
    static const char *const bad[] = {
        "../x.safetensors", "/etc/passwd", "a/b.safetensors",
        ".hidden.safetensors", "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char index[512];
        snprintf(index, sizeof index,
                 "{\"metadata\": {\"total_size\": 8}, \"weight_map\": "
                 "{\"a\": \"model-00001-of-00002.safetensors\", \"b\": \"%s\"}}",
                 bad[i]);
        expect_open_error(index, "path traversal", "weight_map[\"b\"]");
    }
}
END_TEST

START_TEST(open_should_refuse_malformed_indexes)
{
    expect_open_error("{\"metadata\": {}}", "weight_map", "missing");
    expect_open_error("{\"weight_map\": []}", "weight_map", "object");
    expect_open_error("{\"weight_map\": {}}", "weight_map", "empty");
    expect_open_error("{\"weight_map\": {\"a\": 1}}", "weight_map[\"a\"]", "string");
    expect_open_error("{\"weight_map\": {\"a\": \"m.safetensors\", "
                      "\"a\": \"n.safetensors\"}}", "\"a\"", "more than once");
    expect_open_error("{\"weight_map\": {\"a\": \"m.safetensors\"}, "
                      "\"weight_map\": {}}", "weight_map", "more than once");
    expect_open_error("{\"weight_map\": ", "JSON", NULL);
    expect_open_error("[]", "object", NULL);
}
END_TEST

START_TEST(open_should_sort_index_entries_and_deduplicate_shards)
{
    char *dir = dir_with_index(
        "{\"metadata\": {\"total_size\": 12},\n \"weight_map\": {\n"
        "  \"model.norm.weight\": \"model-00002-of-00002.safetensors\",\n"
        "  \"lm_head.weight\": \"model-00002-of-00002.safetensors\",\n"
        "  \"model.embed_tokens.weight\": \"model-00001-of-00002.safetensors\"\n"
        " }\n}\n");
    tc_hf_model *m = NULL;
    ck_assert_int_eq(tc_hf_open(dir, &m), TC_OK);
    ck_assert_uint_eq(m->n_entries, 3);
    ck_assert_str_eq(m->entry_names[0], "lm_head.weight");
    ck_assert_str_eq(m->entry_names[1], "model.embed_tokens.weight");
    ck_assert_str_eq(m->entry_names[2], "model.norm.weight");
    ck_assert_uint_eq(m->n_shards, 2);
    ck_assert_str_eq(m->shard_names[0], "model-00001-of-00002.safetensors");
    ck_assert_str_eq(m->shard_names[1], "model-00002-of-00002.safetensors");
    ck_assert_int_eq(m->entry_shard[0], 1);
    ck_assert_int_eq(m->entry_shard[1], 0);
    ck_assert_int_eq(m->entry_shard[2], 1);
    ck_assert_ptr_null(m->shards[0]);
    ck_assert_ptr_null(m->shards[1]);

    /* Absent from the index: lookup says so, find fails; no shard opened. */
    const tc_st_file *f = (const tc_st_file *)1;
    const tc_st_tensor *t = (const tc_st_tensor *)1;
    ck_assert_int_eq(tc_hf_lookup_tensor(m, "model.layers.0.x", &f, &t), TC_OK);
    ck_assert_ptr_null(t);
    tc_log_set_quiet(1);
    tc_clear_first_error();
    ck_assert_int_eq(tc_hf_find_tensor(m, "model.layers.0.x", &f, &t), TC_E_INPUT);
    ck_assert_ptr_nonnull(strstr(tc_first_error(), "model.layers.0.x"));
    ck_assert_ptr_nonnull(strstr(tc_first_error(), "weight_map"));
    tc_log_set_quiet(0);
    ck_assert_ptr_null(m->shards[0]);
    ck_assert_ptr_null(m->shards[1]);
    tc_hf_close(m);
    remove_tmpdir(dir);
}
END_TEST

START_TEST(find_should_open_shards_lazily_and_report_index_shard_mismatches)
{
    char *dir = dir_with_index(
        "{\"weight_map\": {\n"
        "  \"a\": \"model-00001-of-00002.safetensors\",\n"
        "  \"b\": \"model-00001-of-00002.safetensors\",\n"
        "  \"c\": \"model-00002-of-00002.safetensors\",\n"
        "  \"ghost\": \"model-00002-of-00002.safetensors\"\n"
        "}}");
    static const char *const s1[] = { "a", "b" };
    static const char *const s2[] = { "c" };
    write_safetensors(dir, "model-00001-of-00002.safetensors", s1, 2);
    write_safetensors(dir, "model-00002-of-00002.safetensors", s2, 1);
    tc_hf_model *m = NULL;
    ck_assert_int_eq(tc_hf_open(dir, &m), TC_OK);
    const tc_st_file *f = NULL;
    const tc_st_tensor *t = NULL;
    ck_assert_int_eq(tc_hf_find_tensor(m, "b", &f, &t), TC_OK);
    ck_assert_ptr_nonnull(t);
    ck_assert_str_eq(t->name, "b");
    ck_assert_uint_eq(t->begin, 4);
    ck_assert_ptr_eq(f, m->shards[0]);
    ck_assert_ptr_null(m->shards[1]); /* not touched yet */
    ck_assert_int_eq(tc_hf_find_tensor(m, "c", &f, &t), TC_OK);
    ck_assert_str_eq(t->name, "c");
    ck_assert_ptr_eq(f, m->shards[1]);

    /* The index puts "ghost" in shard 2, which lacks it: an error for both. */
    tc_log_set_quiet(1);
    tc_clear_first_error();
    ck_assert_int_eq(tc_hf_find_tensor(m, "ghost", &f, &t), TC_E_INPUT);
    const char *msg = tc_first_error();
    ck_assert_msg(strstr(msg, "ghost") && strstr(msg, "model-00002-of-00002.safetensors"),
                  "%s", msg);
    ck_assert_int_eq(tc_hf_lookup_tensor(m, "ghost", &f, &t), TC_E_INPUT);
    tc_log_set_quiet(0);
    tc_hf_close(m);
    remove_tmpdir(dir);
}
END_TEST

START_TEST(find_should_fail_when_a_shard_named_by_the_index_is_missing)
{
    char *dir = dir_with_index("{\"weight_map\": {\"a\": \"gone.safetensors\"}}");
    tc_hf_model *m = NULL;
    ck_assert_int_eq(tc_hf_open(dir, &m), TC_OK);
    const tc_st_file *f = NULL;
    const tc_st_tensor *t = NULL;
    tc_log_set_quiet(1);
    ck_assert_int_ne(tc_hf_find_tensor(m, "a", &f, &t), TC_OK);
    tc_log_set_quiet(0);
    ck_assert_ptr_null(t);
    tc_hf_close(m);
    remove_tmpdir(dir);
}
END_TEST

START_TEST(single_file_model_should_resolve_tensors_from_model_safetensors)
{
    char *dir = make_tmpdir();
    write_text(dir, "config.json", minimal);
    static const char *const names[] = { "x", "y" };
    write_safetensors(dir, "model.safetensors", names, 2);
    tc_hf_model *m = NULL;
    ck_assert_int_eq(tc_hf_open(dir, &m), TC_OK);
    ck_assert_uint_eq(m->n_entries, 0);
    ck_assert_uint_eq(m->n_shards, 1);
    const tc_st_file *f = NULL;
    const tc_st_tensor *t = NULL;
    ck_assert_int_eq(tc_hf_find_tensor(m, "y", &f, &t), TC_OK);
    ck_assert_str_eq(t->name, "y");
    ck_assert_int_eq(tc_hf_lookup_tensor(m, "z", &f, &t), TC_OK);
    ck_assert_ptr_null(t);
    ck_assert_ptr_null(f);
    tc_log_set_quiet(1);
    tc_clear_first_error();
    ck_assert_int_eq(tc_hf_find_tensor(m, "z", &f, &t), TC_E_INPUT);
    ck_assert_ptr_nonnull(strstr(tc_first_error(), "model.safetensors"));
    tc_log_set_quiet(0);
    tc_hf_close(m);
    remove_tmpdir(dir);
}
END_TEST

typedef struct find_job {
    tc_hf_model *m;
    int failures;
} find_job;

static void *find_worker(void *arg)
{
    find_job *job = arg;
    static const char *const names[] = { "a", "b", "c" };
    for (int i = 0; i < 200; i++) {
        const tc_st_file *f = NULL;
        const tc_st_tensor *t = NULL;
        const char *name = names[i % 3];
        if (tc_hf_find_tensor(job->m, name, &f, &t) != TC_OK || !t ||
            strcmp(t->name, name) != 0)
            job->failures++;
    }
    return NULL;
}

START_TEST(find_should_be_safe_from_many_threads)
{
    char *dir = dir_with_index(
        "{\"weight_map\": {\"a\": \"s1.safetensors\", \"b\": \"s2.safetensors\","
        " \"c\": \"s3.safetensors\"}}");
    static const char *const a[] = { "a" }, *const b[] = { "b" }, *const c[] = { "c" };
    write_safetensors(dir, "s1.safetensors", a, 1);
    write_safetensors(dir, "s2.safetensors", b, 1);
    write_safetensors(dir, "s3.safetensors", c, 1);
    tc_hf_model *m = NULL;
    ck_assert_int_eq(tc_hf_open(dir, &m), TC_OK);
    pthread_t th[8];
    find_job jobs[8];
    for (int i = 0; i < 8; i++) {
        jobs[i].m = m;
        jobs[i].failures = 0;
        ck_assert_int_eq(pthread_create(&th[i], NULL, find_worker, &jobs[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        ck_assert_int_eq(jobs[i].failures, 0);
    }
    tc_hf_close(m);
    remove_tmpdir(dir);
}
END_TEST

START_TEST(open_should_explain_a_directory_without_weights)
{
    char *dir = make_tmpdir();
    write_text(dir, "config.json", minimal);
    tc_hf_model *m = NULL;
    tc_log_set_quiet(1);
    tc_clear_first_error();
    ck_assert_int_eq(tc_hf_open(dir, &m), TC_E_INPUT);
    ck_assert_ptr_null(m);
    ck_assert_ptr_nonnull(strstr(tc_first_error(), "none of model.safetensors, "
                                                   "model.safetensors.index.json, "
                                                   "pytorch_model.bin, "
                                                   "pytorch_model.bin.index.json"));

    /* A pytorch_model.bin makes it a .bin model; the file is validated
     * when a tensor is first looked up (lazily, like a shard). */
    write_text(dir, "pytorch_model.bin", "x");
    tc_clear_first_error();
    ck_assert_int_eq(tc_hf_open(dir, &m), TC_OK);
    ck_assert_int_eq(m->format, TC_HF_TORCH);
    const tc_st_file *f = NULL;
    const tc_st_tensor *t = NULL;
    ck_assert_int_eq(tc_hf_find_tensor(m, "model.norm.weight", &f, &t), TC_E_INPUT);
    ck_assert_ptr_nonnull(strstr(tc_first_error(), "pytorch_model.bin: not a zip archive"));
    tc_hf_close(m);

    /* Safetensors win over .bin when both are present, as in transformers. */
    write_text(dir, "model.safetensors", "y");
    ck_assert_int_eq(tc_hf_open(dir, &m), TC_OK);
    ck_assert_int_eq(m->format, TC_HF_SAFETENSORS);
    tc_hf_close(m);
    tc_log_set_quiet(0);
    remove_tmpdir(dir);
}
END_TEST

/* Meta's params.json of published checkpoints: the intermediate size from
 * dim, multiple_of and ffn_dim_multiplier (TensorRT-LLM from_meta_ckpt,
 * Meta's FeedForward) must be the one their Hugging Face configs state. */
START_TEST(meta_params_should_give_the_published_intermediate_sizes)
{
    static const struct { const char *json; int64_t inter, kv, vocab; } cases[] = {
        /* Llama-2-7B: 11008, vocab -1 -> 32000 */
        { "{\"dim\": 4096, \"multiple_of\": 256, \"n_heads\": 32, \"n_layers\": 32, "
          "\"norm_eps\": 1e-05, \"vocab_size\": -1}", 11008, 32, 32000 },
        /* Llama-2-70B: 28672 */
        { "{\"dim\": 8192, \"multiple_of\": 4096, \"ffn_dim_multiplier\": 1.3, "
          "\"n_heads\": 64, \"n_kv_heads\": 8, \"n_layers\": 80, \"norm_eps\": 1e-05, "
          "\"vocab_size\": -1}", 28672, 8, 32000 },
        /* Llama-3-8B: 14336 */
        { "{\"dim\": 4096, \"n_layers\": 32, \"n_heads\": 32, \"n_kv_heads\": 8, "
          "\"vocab_size\": 128256, \"multiple_of\": 1024, \"ffn_dim_multiplier\": 1.3, "
          "\"norm_eps\": 1e-05, \"rope_theta\": 500000.0}", 14336, 8, 128256 },
        /* Llama-3.1-405B: 53248 */
        { "{\"dim\": 16384, \"n_layers\": 126, \"n_heads\": 128, \"n_kv_heads\": 8, "
          "\"vocab_size\": 128256, \"ffn_dim_multiplier\": 1.2, \"multiple_of\": 4096, "
          "\"norm_eps\": 1e-05, \"rope_theta\": 500000.0, \"use_scaled_rope\": true}",
          53248, 8, 128256 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tc_hf_config c;
        ck_assert_msg(tc_meta_params_parse("params.json", cases[i].json, strlen(cases[i].json),
                                           &c) == TC_OK, "%s", tc_first_error());
        ck_assert_int_eq(c.intermediate_size, cases[i].inter);
        ck_assert_int_eq(c.num_key_value_heads, cases[i].kv);
        ck_assert_int_eq(c.vocab_size, cases[i].vocab);
        ck_assert_int_eq(c.max_position_embeddings, 2048);
        ck_assert(c.has_torch_dtype && c.torch_dtype == TC_FT_BFLOAT16);
        ck_assert_int_eq(c.head_dim, c.hidden_size / c.num_attention_heads);
        if (i == 3) {
            ck_assert_ptr_nonnull(c.rope_scaling);
            ck_assert_str_eq(cJSON_GetObjectItem(c.rope_scaling, "type")->valuestring, "llama3");
            ck_assert(c.rope_theta == 500000.0);
        } else {
            ck_assert_ptr_null(c.rope_scaling);
        }
        tc_hf_config_free(&c);
    }
}
END_TEST

START_TEST(open_should_refuse_a_directory_without_config_json)
{
    char *dir = make_tmpdir();
    static const char *const names[] = { "x" };
    write_safetensors(dir, "model.safetensors", names, 1);
    tc_hf_model *m = NULL;
    tc_log_set_quiet(1);
    tc_clear_first_error();
    ck_assert_int_eq(tc_hf_open(dir, &m), TC_E_INPUT);
    ck_assert_ptr_nonnull(strstr(tc_first_error(), "config.json"));
    char missing[4200];
    snprintf(missing, sizeof missing, "%s/nope", dir);
    ck_assert_int_eq(tc_hf_open(missing, &m), TC_E_INPUT);
    tc_log_set_quiet(0);
    remove_tmpdir(dir);
}
END_TEST

static Suite *hf_model_suite(void)
{
    Suite *s = suite_create("hf_model");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, config_should_read_the_transformers5_golden_config);
    tcase_add_test(tc, config_should_read_the_older_style_with_a_llama3_rope_scaling_dict);
    tcase_add_test(tc, config_should_turn_transformers5_rope_parameters_into_rope_scaling);
    tcase_add_test(tc, config_should_read_a_mistral_config_with_null_head_dim);
    tcase_add_test(tc, config_should_fill_defaults_for_absent_optional_keys);
    tcase_add_test(tc, config_should_read_explicit_head_dim_biases_and_tied_embeddings);
    tcase_add_test(tc, config_should_reject_each_missing_required_key);
    tcase_add_test(tc, config_should_reject_values_of_the_wrong_type_or_range);
    tcase_add_test(tc, config_should_reject_duplicate_keys);
    tcase_add_test(tc, config_should_reject_kv_heads_that_do_not_divide_heads);
    tcase_add_test(tc, config_should_reject_an_unknown_architecture_and_list_supported_ones);
    tcase_add_test(tc, config_should_reject_an_unsupported_dtype_string_naming_key_and_value);
    tcase_add_test(tc, read_small_file_should_refuse_oversized_and_missing_files);
    tcase_add_test(tc, config_load_should_refuse_an_oversized_config_json);
    suite_add_tcase(s, tc);
    tc = tcase_create("index");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, shard_name_ok_should_accept_only_plain_safetensors_file_names);
    tcase_add_test(tc, open_should_refuse_index_shard_names_that_escape_the_model_dir);
    tcase_add_test(tc, open_should_refuse_malformed_indexes);
    tcase_add_test(tc, open_should_sort_index_entries_and_deduplicate_shards);
    tcase_add_test(tc, find_should_open_shards_lazily_and_report_index_shard_mismatches);
    tcase_add_test(tc, find_should_fail_when_a_shard_named_by_the_index_is_missing);
    tcase_add_test(tc, single_file_model_should_resolve_tensors_from_model_safetensors);
    tcase_add_test(tc, find_should_be_safe_from_many_threads);
    tcase_add_test(tc, open_should_explain_a_directory_without_weights);
    tcase_add_test(tc, meta_params_should_give_the_published_intermediate_sizes);
    tcase_add_test(tc, open_should_refuse_a_directory_without_config_json);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(hf_model_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
