/* test_tokenizer.c: Check suite for the tokenizer (tokenizer.h): the
 * pre-tokenizer split behaviours and the BPE rules of the tokenizers library
 * on hand-made files whose ids are worked out in the comments, the Python
 * tool's calibration text handling, UTF-8 validation, truncation, and
 * hostile tokenizer.json / tokenizer.model / tokenizer_config.json files
 * refused with the file and the rule. Equality with Hugging Face on real
 * files is tests/tokenizer/test_tokenizer_ids.sh. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "../../src/calib/tok_internal.h"
#include "trtconv/core/jsonutil.h"
#include "trtconv/core/log.h"
#include "trtconv/calib/tokenizer.h"

static tc_tokenizer *load_json(const char *json, const char *config)
{
    tc_tokenizer *t = NULL;
    tc_status st = tc_tokenizer_from_memory(TC_TOKENIZER_HF_JSON, "tokenizer.json", json,
                                            strlen(json), config, config ? strlen(config) : 0,
                                            "tokenizer_config.json", &t);
    ck_assert_msg(st == TC_OK, "load failed: %s", tc_first_error());
    return t;
}

static void expect_refused_json(const char *json, const char *config, const char *want)
{
    tc_tokenizer *t = NULL;
    tc_status st = tc_tokenizer_from_memory(TC_TOKENIZER_HF_JSON, "tokenizer.json", json,
                                            strlen(json), config, config ? strlen(config) : 0,
                                            "tokenizer_config.json", &t);
    ck_assert_msg(st == TC_E_INPUT, "expected TC_E_INPUT, got %d (%s)", (int)st, tc_first_error());
    ck_assert_ptr_null(t);
    ck_assert_msg(strstr(tc_first_error(), want) != NULL, "message \"%s\" lacks \"%s\"",
                  tc_first_error(), want);
    tc_clear_first_error();
}

/* ids of text as "a,b,c" */
static void expect_ids(const tc_tokenizer *t, const char *text, bool special, int64_t max_len,
                       const char *want)
{
    int32_t *ids = NULL;
    size_t n = 0;
    ck_assert_int_eq(tc_tokenizer_encode(t, text, strlen(text), special, max_len, "test", &ids, &n),
                     TC_OK);
    char got[1024] = "";
    for (size_t i = 0; i < n; i++)
        snprintf(got + strlen(got), sizeof got - strlen(got), i ? ",%d" : "%d", ids[i]);
    free(ids);
    ck_assert_msg(strcmp(got, want) == 0, "\"%s\": got [%s], want [%s]", text, got, want);
}

/* Pre-tokenize text with a pre_tokenizer given as JSON; pieces joined by '|'. */
static void expect_pieces(const char *pretok_json, const char *text, const char *want)
{
    cJSON *j = tc_json_parse(NULL, pretok_json, strlen(pretok_json));
    ck_assert_ptr_nonnull(j);
    tok_step *s = NULL;
    ck_assert_int_eq(tok_pretokenizer_parse(j, "test", &s), TC_OK);
    cJSON_Delete(j);
    tok_arena a = {0};
    tok_pieces in = {0}, out = {0};
    tok_piece p = {0, strlen(text), -1, true};
    ck_assert_int_eq(tok_arena_put(&a, text, p.len, &p.off), TC_OK);
    ck_assert_int_eq(tok_pieces_push(&in, p), TC_OK);
    ck_assert_int_eq(tok_pretokenize(s, &a, &in, &out), TC_OK);
    char got[1024] = "";
    for (size_t i = 0; i < out.n; i++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%.*s", i ? "|" : "",
                 (int)out.v[i].len, a.buf + out.v[i].off);
    ck_assert_msg(strcmp(got, want) == 0, "%s on \"%s\": got \"%s\", want \"%s\"", pretok_json, text,
                  got, want);
    free(in.v);
    tok_scratch_free(&a, &out);
    tok_step_free(s);
}

#define SPLIT(behavior, invert) \
    "{\"type\": \"Split\", \"pattern\": {\"String\": \"-\"}, \"behavior\": \"" behavior \
    "\", \"invert\": " invert "}"

/* tokenizers' SplitDelimiterBehavior on a-b--c (normalizer.rs split). */
START_TEST(split_behaviors_should_cut_like_the_tokenizers_library)
{
    expect_pieces(SPLIT("Removed", "false"), "a-b--c", "a|b|c");
    expect_pieces(SPLIT("Isolated", "false"), "a-b--c", "a|-|b|-|-|c");
    expect_pieces(SPLIT("MergedWithPrevious", "false"), "a-b--c", "a-|b-|-|c");
    expect_pieces(SPLIT("MergedWithNext", "false"), "a-b--c", "a|-b|-|-c");
    expect_pieces(SPLIT("Contiguous", "false"), "a-b--c", "a|-|b|--|c");
    expect_pieces(SPLIT("Removed", "true"), "a-b--c", "-|-|-");
    expect_pieces(SPLIT("Isolated", "false"), "-", "-");
    /* Regex: LLaMA-3's digits in threes, NEL counted as whitespace as
     * Oniguruma does. */
    expect_pieces("{\"type\": \"Split\", \"pattern\": {\"Regex\": \"\\\\p{N}{1,3}|\\\\s+\"}, "
                  "\"behavior\": \"Isolated\", \"invert\": false}",
                  "x1234567y\xc2\x85z", "x|123|456|7|y|\xc2\x85|z");
    expect_pieces("{\"type\": \"Digits\", \"individual_digits\": true}", "a12b", "a|1|2|b");
    expect_pieces("{\"type\": \"Digits\", \"individual_digits\": false}", "a12b3", "a|12|b|3");
}
END_TEST

START_TEST(metaspace_and_bytelevel_should_rewrite_pieces)
{
    /* "▁" is e2 96 81 */
    expect_pieces("{\"type\": \"Metaspace\", \"replacement\": \"\xe2\x96\x81\", "
                  "\"prepend_scheme\": \"always\", \"split\": true}",
                  "hi  you", "\xe2\x96\x81hi|\xe2\x96\x81|\xe2\x96\x81you");
    expect_pieces("{\"type\": \"Metaspace\", \"replacement\": \"\xe2\x96\x81\", "
                  "\"prepend_scheme\": \"never\", \"split\": false}",
                  "hi you", "hi\xe2\x96\x81you");
    /* An old file: add_prefix_space, and split defaults to true. */
    expect_pieces("{\"type\": \"Metaspace\", \"replacement\": \"\xe2\x96\x81\", "
                  "\"add_prefix_space\": true}",
                  "a b", "\xe2\x96\x81" "a|\xe2\x96\x81" "b");
    /* A leading space is replaced, so nothing more is prepended. */
    expect_pieces("{\"type\": \"Metaspace\", \"replacement\": \"\xe2\x96\x81\", "
                  "\"prepend_scheme\": \"first\", \"split\": false}",
                  " a", "\xe2\x96\x81" "a");
    /* GPT-2 bytes: space -> U+0120, newline -> U+010A, 0xE9 -> U+00E9. */
    expect_pieces("{\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"use_regex\": true}",
                  "hi there\n", "\xc4\xa0hi|\xc4\xa0there|\xc4\x8a");
    expect_pieces("{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": false}",
                  "\xc3\xa9", "\xc3\x83\xc2\xa9");
}
END_TEST

#define BPE_JSON \
    "{\"added_tokens\": [{\"id\": 9, \"content\": \"<s>\", \"special\": true, \"normalized\": false}]," \
    " \"normalizer\": null, \"pre_tokenizer\": null," \
    " \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": " \
    "{\"id\": \"<s>\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}]," \
    " \"special_tokens\": {\"<s>\": {\"id\": \"<s>\", \"ids\": [9], \"tokens\": [\"<s>\"]}}}," \
    " \"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"fuse_unk\": %s, \"byte_fallback\": true," \
    " \"vocab\": {\"<unk>\": 0, \"a\": 1, \"b\": 2, \"c\": 3, \"ab\": 4, \"abc\": 5, \"<0x64>\": 6}," \
    " \"merges\": [\"a b\", \"ab c\"]}}"

/* BPE: merges as "a b" strings; unknown characters fall back to bytes when
 * every byte token exists (d -> <0x64>), else to <unk>; and, as tokenizers
 * does, a pending <unk> is not flushed by byte tokens, so it lands after
 * them. */
START_TEST(bpe_should_merge_by_rank_and_fall_back_like_tokenizers)
{
    char json[2048];
    snprintf(json, sizeof json, BPE_JSON, "true");
    tc_tokenizer *t = load_json(json, NULL);
    expect_ids(t, "abcab", true, 0, "9,5,4");
    expect_ids(t, "abcab", false, 0, "5,4");
    expect_ids(t, "abxdd", false, 0, "4,6,6,0");
    expect_ids(t, "xyz", false, 0, "0");
    expect_ids(t, "ab<s>c", true, 0, "9,4,9,3");
    expect_ids(t, "", true, 0, "9");
    /* Truncation keeps room for the BOS. */
    expect_ids(t, "abcabcabc", true, 3, "9,5,5");
    ck_assert_int_eq(tc_tokenizer_id_limit(t), 10);
    int32_t *ids;
    size_t n;
    ck_assert_int_eq(tc_tokenizer_encode(t, "ab", 2, true, 1, "test", &ids, &n), TC_E_USAGE);
    tc_clear_first_error();
    ck_assert_int_eq(tc_tokenizer_encode(t, "a\xff", 2, true, 0, "line 7", &ids, &n), TC_E_INPUT);
    ck_assert_msg(strstr(tc_first_error(), "line 7: text is not valid UTF-8"), "%s",
                  tc_first_error());
    tc_clear_first_error();
    tc_tokenizer_free(t);
    snprintf(json, sizeof json, BPE_JSON, "false");
    t = load_json(json, NULL);
    expect_ids(t, "xyz", false, 0, "0,0,0");
    tc_tokenizer_free(t);
}
END_TEST

/* Added tokens: lstrip/rstrip take the neighbouring whitespace, leftmost-
 * longest matching, and tokenizer_config.json's add_bos/add_eos when the
 * file has no post-processor. */
START_TEST(added_tokens_and_config_should_act_as_in_transformers)
{
    const char *json =
        "{\"added_tokens\": [{\"id\": 7, \"content\": \"<m>\", \"lstrip\": true, \"rstrip\": true,"
        " \"special\": true, \"normalized\": false}, {\"id\": 8, \"content\": \"<mm>\","
        " \"special\": true, \"normalized\": false}],"
        " \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \" \": 1, \"<s>\": 2, \"</s>\": 3,"
        " \"<\": 4, \"m\": 5, \">\": 6}, \"merges\": [[\"a\", \"a\"]]}}";
    expect_refused_json(json, NULL, "merge 0 (\"a\", \"a\") names a token outside the vocabulary");
    const char *ok =
        "{\"added_tokens\": [{\"id\": 7, \"content\": \"<m>\", \"lstrip\": true, \"rstrip\": true,"
        " \"special\": true, \"normalized\": false}, {\"id\": 8, \"content\": \"<mm>\","
        " \"special\": true, \"normalized\": false}],"
        " \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \" \": 1, \"<s>\": 2, \"</s>\": 3,"
        " \"<\": 4, \"m\": 5, \">\": 6}, \"merges\": []}}";
    tc_tokenizer *t = load_json(ok, "{\"add_bos_token\": true, \"add_eos_token\": true,"
                                    " \"bos_token\": {\"content\": \"<s>\"}, \"eos_token\": \"</s>\"}");
    expect_ids(t, "a  <m> a", true, 0, "2,0,7,0,3");
    expect_ids(t, "a<mm>a", false, 0, "0,8,0");
    expect_ids(t, "<m", false, 0, "4,5");
    tc_tokenizer_free(t);
}
END_TEST

/* transformers 5's LlamaTokenizer ignores the file's normalizer and
 * pre-tokenizer: Metaspace "first" unless legacy, BOS from add_bos_token. */
START_TEST(llama_class_should_use_the_transformers_5_pipeline)
{
    const char *json =
        "{\"added_tokens\": [{\"id\": 1, \"content\": \"<s>\", \"special\": true, \"normalized\": false}],"
        " \"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Prepend\", \"prepend\":"
        " \"\xe2\x96\x81\"}, {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\":"
        " \"\xe2\x96\x81\"}]},"
        " \"model\": {\"type\": \"BPE\", \"byte_fallback\": true, \"vocab\": {\"<unk>\": 0, \"<s>\": 1,"
        " \"</s>\": 2, \"\xe2\x96\x81\": 3, \"h\": 4, \"i\": 5, \"\xe2\x96\x81h\": 6},"
        " \"merges\": [\"\xe2\x96\x81 h\"]}}";
    /* As written (no class): Prepend on every piece after <s>. */
    tc_tokenizer *t = load_json(json, NULL);
    expect_ids(t, "hi<s>hi", true, 0, "6,5,1,6,5");
    tc_tokenizer_free(t);
    t = load_json(json, "{\"tokenizer_class\": \"LlamaTokenizer\"}");
    expect_ids(t, "hi<s>hi", true, 0, "1,6,5,1,4,5");
    tc_tokenizer_free(t);
    t = load_json(json, "{\"tokenizer_class\": \"LlamaTokenizerFast\", \"legacy\": true,"
                        " \"add_bos_token\": false}");
    expect_ids(t, "hi<s>hi", true, 0, "6,5,1,6,5");
    tc_tokenizer_free(t);
}
END_TEST

START_TEST(hostile_tokenizer_json_should_be_refused_naming_the_rule)
{
    expect_refused_json("[1, 2]", NULL, "tokenizer.json: not a JSON object");
    expect_refused_json("{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", NULL,
                        "model type \"Unigram\" is not supported");
    expect_refused_json("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"a\": 1}, \"merges\": []}}",
                        NULL, "token \"a\" occurs twice in the vocabulary");
    expect_refused_json("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}, \"merges\": []}}",
                        NULL, "id 0 is used by two tokens");
    expect_refused_json("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 99999999}, \"merges\": []}}",
                        NULL, "vocabulary entry \"a\" has no id in [0, 2^26)");
    expect_refused_json("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a\"]}}",
                        NULL, "merge 0 \"a\" is not two tokens separated by one space");
    expect_refused_json("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [],"
                        " \"continuing_subword_prefix\": \"##\"}}",
                        NULL, "BPE option \"continuing_subword_prefix\" is not supported");
    expect_refused_json("{\"normalizer\": {\"type\": \"NFKC\"}, \"model\": {\"type\": \"BPE\","
                        " \"vocab\": {\"a\": 0}, \"merges\": []}}",
                        NULL, "normalizer type \"NFKC\" is not supported");
    expect_refused_json("{\"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}, \"model\": {\"type\":"
                        " \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}",
                        NULL, "pre_tokenizer type \"BertPreTokenizer\" is not supported");
    expect_refused_json("{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(\"},"
                        " \"behavior\": \"Isolated\"}, \"model\": {\"type\": \"BPE\", \"vocab\":"
                        " {\"a\": 0}, \"merges\": []}}",
                        NULL, "regex \"(\" does not compile");
    expect_refused_json("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
                        " \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": []}}",
                        NULL, "TemplateProcessing single has no $A");
    expect_refused_json("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}",
                        "{\"add_bos_token\": true, \"bos_token\": \"<s>\"}",
                        "add_bos_token is true but the BOS token \"<s>\" is not in the vocabulary");
    expect_refused_json("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}",
                        "{\"add_bos_token\": tru", "tokenizer_config.json: not a JSON object");
    expect_refused_json("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"\xff\": 0}, \"merges\": []}}",
                        NULL, "vocabulary entry 0 is not valid UTF-8");
    /* Text a normalizer inserts must be valid UTF-8 too (fuzz_tokenizer:
     * invalid bytes inserted into a piece crashed the regex afterwards). */
    expect_refused_json("{\"normalizer\": {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"},"
                        " \"content\": \"\xe2\x96!\"}, \"model\": {\"type\": \"BPE\", \"vocab\":"
                        " {\"a\": 0}, \"merges\": []}}",
                        NULL, "Replace content is not valid UTF-8");
    expect_refused_json("{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"String\": \"\x96\"},"
                        " \"behavior\": \"Isolated\"}, \"model\": {\"type\": \"BPE\", \"vocab\":"
                        " {\"a\": 0}, \"merges\": []}}",
                        NULL, "a pattern string is not valid UTF-8");
}
END_TEST

/* protobuf helpers for hand-made tokenizer.model files */
static size_t pb_key(uint8_t *p, unsigned field, unsigned wt)
{
    p[0] = (uint8_t)(field << 3 | wt);
    return 1;
}

static size_t pb_piece(uint8_t *p, const char *piece)
{
    size_t n = strlen(piece), o = 0;
    o += pb_key(p + o, 1, 2);
    p[o++] = (uint8_t)(n + 2 + 5);
    o += pb_key(p + o, 1, 2);
    p[o++] = (uint8_t)n;
    memcpy(p + o, piece, n);
    o += n;
    o += pb_key(p + o, 2, 5);
    memset(p + o, 0, 4);
    return o + 4;
}

static tc_status load_spm(const uint8_t *data, size_t len, tc_tokenizer **t)
{
    return tc_tokenizer_from_memory(TC_TOKENIZER_SPM_MODEL, "tokenizer.model", (const char *)data,
                                    len, NULL, 0, "tokenizer_config.json", t);
}

/* A SentencePiece BPE model: merges generated from the pieces (every split
 * into two pieces, in piece order), Metaspace "first", BOS. */
START_TEST(sentencepiece_model_should_convert_like_transformers)
{
    uint8_t m[512];
    size_t o = 0;
    const char *pieces[] = {"<unk>", "<s>", "</s>", "\xe2\x96\x81", "a", "b",
                            "\xe2\x96\x81" "a", "ab", "\xe2\x96\x81" "ab"};
    for (size_t i = 0; i < sizeof pieces / sizeof *pieces; i++)
        o += pb_piece(m + o, pieces[i]);
    /* trainer_spec { model_type: BPE } */
    m[o++] = 0x12;
    m[o++] = 2;
    m[o++] = 0x18;
    m[o++] = 2;
    tc_tokenizer *t = NULL;
    ck_assert_msg(load_spm(m, o, &t) == TC_OK, "%s", tc_first_error());
    /* Generated merges, in piece order then split point: (▁,a)->6 rank 0,
     * (a,b)->7 rank 1, (▁,ab)->8 rank 2, (▁a,b)->8 rank 3. "▁ab": ▁ a b ->
     * ▁a b (rank 0) -> ▁ab (rank 3; the (a,b) entry is stale). */
    expect_ids(t, "ab", true, 0, "1,8");
    expect_ids(t, "b ab", false, 0, "3,5,8");
    tc_tokenizer_free(t);
    /* UNIGRAM (1) is refused, as is a model without a trainer_spec
     * (protobuf default UNIGRAM). */
    m[o - 1] = 1;
    ck_assert_int_eq(load_spm(m, o, &t), TC_E_INPUT);
    ck_assert_msg(strstr(tc_first_error(), "tokenizer.model: SentencePiece model type UNIGRAM"), "%s",
                  tc_first_error());
    tc_clear_first_error();
    ck_assert_int_eq(load_spm(m, o - 4, &t), TC_E_INPUT);
    ck_assert_msg(strstr(tc_first_error(), "(no trainer_spec: protobuf default)"), "%s",
                  tc_first_error());
    tc_clear_first_error();
}
END_TEST

START_TEST(hostile_sentencepiece_models_should_be_refused)
{
    tc_tokenizer *t = NULL;
    uint8_t m[256];
    size_t o = pb_piece(m, "a");
    o += pb_piece(m + o, "a");
    m[o++] = 0x12;
    m[o++] = 2;
    m[o++] = 0x18;
    m[o++] = 2;
    ck_assert_int_eq(load_spm(m, o, &t), TC_E_INPUT);
    ck_assert_msg(strstr(tc_first_error(), "piece 1 \"a\" occurs twice"), "%s", tc_first_error());
    tc_clear_first_error();
    /* Every truncation of a valid file is refused or loads, never crashes. */
    size_t good = pb_piece(m, "a");
    good += pb_piece(m + good, "b");
    m[good++] = 0x12;
    m[good++] = 2;
    m[good++] = 0x18;
    m[good++] = 2;
    for (size_t n = 0; n < good; n++) {
        tc_status st = load_spm(m, n, &t);
        ck_assert(st == TC_OK || st == TC_E_INPUT);
        tc_tokenizer_free(t);
        t = NULL;
        tc_clear_first_error();
    }
    const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    ck_assert_int_eq(load_spm(garbage, sizeof garbage, &t), TC_E_INPUT);
    ck_assert_msg(strstr(tc_first_error(), "not a SentencePiece model (malformed protobuf"), "%s",
                  tc_first_error());
    tc_clear_first_error();
    /* A length field pointing past the end. */
    const uint8_t past[] = {0x0a, 0x7f, 0x0a, 0x01, 'a'};
    ck_assert_int_eq(load_spm(past, sizeof past, &t), TC_E_INPUT);
    tc_clear_first_error();
    /* Invalid UTF-8 in a piece. */
    o = pb_piece(m, "\xc3");
    m[o++] = 0x12;
    m[o++] = 2;
    m[o++] = 0x18;
    m[o++] = 2;
    ck_assert_int_eq(load_spm(m, o, &t), TC_E_INPUT);
    ck_assert_msg(strstr(tc_first_error(), "piece 0 is not valid UTF-8"), "%s", tc_first_error());
    tc_clear_first_error();
}
END_TEST

START_TEST(calibration_text_should_follow_the_python_tool)
{
    char *s;
    size_t n;
    /* + " TL;DR: ", str.strip() (U+3000, U+00A0 and \x1f are whitespace to
     * Python), " n't" -> "n't" (also across the join). */
    const char in[] = "\xe3\x80\x80 We are n't here\x1f, they do n't\xc2\xa0 \n";
    ck_assert_int_eq(tc_calib_text(in, sizeof in - 1, &s, &n), TC_OK);
    ck_assert_str_eq(s, "We aren't here\x1f, they don't\xc2\xa0 \n TL;DR:");
    ck_assert_uint_eq(n, strlen(s));
    free(s);
    ck_assert_int_eq(tc_calib_text("", 0, &s, &n), TC_OK);
    ck_assert_str_eq(s, "TL;DR:");
    free(s);
    ck_assert_int_eq(tc_calib_text("x n't", 5, &s, &n), TC_OK);
    ck_assert_str_eq(s, "xn't TL;DR:");
    free(s);
}
END_TEST

START_TEST(utf8_validation_should_follow_the_standard)
{
    ck_assert(tc_utf8_valid("", 0));
    ck_assert(tc_utf8_valid("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 10));
    ck_assert(!tc_utf8_valid("\xc0\xaf", 2));             /* overlong */
    ck_assert(!tc_utf8_valid("\xed\xa0\x80", 3));         /* surrogate */
    ck_assert(!tc_utf8_valid("\xf4\x90\x80\x80", 4));     /* > U+10FFFF */
    ck_assert(!tc_utf8_valid("\xe2\x82", 2));             /* truncated */
    ck_assert(!tc_utf8_valid("\x80", 1));                 /* stray continuation */
    ck_assert(!tc_utf8_valid("\xe2\x28\xa1", 3));         /* bad continuation */
}
END_TEST

static Suite *tokenizer_suite(void)
{
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("pipeline");
    tcase_add_test(tc, split_behaviors_should_cut_like_the_tokenizers_library);
    tcase_add_test(tc, metaspace_and_bytelevel_should_rewrite_pieces);
    tcase_add_test(tc, bpe_should_merge_by_rank_and_fall_back_like_tokenizers);
    tcase_add_test(tc, added_tokens_and_config_should_act_as_in_transformers);
    tcase_add_test(tc, llama_class_should_use_the_transformers_5_pipeline);
    tcase_add_test(tc, sentencepiece_model_should_convert_like_transformers);
    suite_add_tcase(s, tc);
    tc = tcase_create("hostile");
    tcase_add_test(tc, hostile_tokenizer_json_should_be_refused_naming_the_rule);
    tcase_add_test(tc, hostile_sentencepiece_models_should_be_refused);
    suite_add_tcase(s, tc);
    tc = tcase_create("text");
    tcase_add_test(tc, calibration_text_should_follow_the_python_tool);
    tcase_add_test(tc, utf8_validation_should_follow_the_standard);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    tc_log_set_quiet(1);
    SRunner *sr = srunner_create(tokenizer_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
