/* test_safetensors.c: the validating reader. Every tc_st_error kind is
 * provoked with a crafted file; the cJSON/serde differentials of
 * safetensors.md §6 are checked; valid edge cases are accepted; a round trip
 * with the writer; and a byte-exact re-layout of a file written by Python
 * safetensors (TRTCONV_GOLDEN_DIR: the archive in tests/data/golden, unpacked
 * by CMake). */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "trtconv/core/log.h"
#include "trtconv/formats/safetensors.h"
#include "trtconv/formats/st_writer.h"
#include "test_tmpdir.h"

static char g_dir[512]; /* per-run temporary directory (mkdtemp) */

static void path_in(char *buf, size_t cap, const char *name)
{
    int r = snprintf(buf, cap, "%s/%s", g_dir, name);
    ck_assert(r > 0 && (size_t)r < cap);
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    if (n)
        ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* File = 8-byte LE hlen + hdr[0..hlen) + data_len bytes (i & 0xff). */
static void write_st(const char *path, const char *hdr, size_t hlen, size_t data_len)
{
    size_t n = 8 + hlen + data_len;
    unsigned char *b = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(b);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    memcpy(b + 8, hdr, hlen);
    for (size_t i = 0; i < data_len; i++)
        b[8 + hlen + i] = (unsigned char)i;
    write_bytes(path, b, n);
    free(b);
}

/* Write a file named `name` and open it; return the error kind. On success
 * the file is closed again. Checks the status matches the kind. */
static tc_st_error open_kind_n(const char *name, const char *hdr, size_t hlen, size_t data_len)
{
    char p[600];
    path_in(p, sizeof p, name);
    write_st(p, hdr, hlen, data_len);
    tc_st_file *f = (tc_st_file *)1;
    tc_st_error e = TC_ST_IO_ERROR;
    tc_clear_first_error();
    tc_status st = tc_st_open(p, &f, &e);
    if (e == TC_ST_OK) {
        ck_assert_int_eq(st, TC_OK);
        ck_assert_ptr_nonnull(f);
        tc_st_close(f);
    } else {
        ck_assert_int_eq(st, TC_E_INPUT);
        ck_assert_ptr_null(f);
        /* the message names the file and the rule */
        ck_assert_ptr_nonnull(strstr(tc_first_error(), p));
        ck_assert_ptr_nonnull(strstr(tc_first_error(), tc_st_error_name(e)));
    }
    return e;
}

static tc_st_error open_kind(const char *name, const char *hdr, size_t data_len)
{
    return open_kind_n(name, hdr, strlen(hdr), data_len);
}

#define T16(name, b, e) "\"" name "\":{\"dtype\":\"F16\",\"shape\":[" #b "],\"data_offsets\":[0," #e "]}"

/* ---- valid files ------------------------------------------------------- */

START_TEST(st_open_should_accept_a_valid_file_and_expose_its_tensors)
{
    const char *hdr = "{\"__metadata__\":{\"format\":\"pt\"},"
                      "\"b.weight\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[4,16]},"
                      "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    char p[600];
    path_in(p, sizeof p, "valid.safetensors");
    write_st(p, hdr, strlen(hdr), 16);
    tc_st_file *f = NULL;
    tc_st_error e;
    ck_assert_int_eq(tc_st_open(p, &f, &e), TC_OK);
    ck_assert_int_eq(e, TC_ST_OK);
    ck_assert_str_eq(f->path, p);
    ck_assert_int_ge(f->fd, 0);
    ck_assert_uint_eq(f->header_len, strlen(hdr));
    ck_assert_uint_eq(f->data_offset, 8 + strlen(hdr));
    ck_assert_uint_eq(f->file_size, 8 + strlen(hdr) + 16);
    ck_assert_uint_eq(f->n_tensors, 2);
    ck_assert_str_eq(f->tensors[0].name, "a"); /* sorted by name */
    ck_assert_str_eq(f->tensors[1].name, "b.weight");
    const tc_st_tensor *t = tc_st_find(f, "b.weight");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->dtype, TC_DT_F16);
    ck_assert_int_eq(t->ndim, 2);
    ck_assert_int_eq(t->shape[0], 2);
    ck_assert_int_eq(t->shape[1], 3);
    ck_assert_uint_eq(t->nelements, 6);
    ck_assert_uint_eq(t->begin, 4);
    ck_assert_uint_eq(t->end, 16);
    ck_assert_ptr_null(tc_st_find(f, "b"));
    ck_assert_ptr_null(tc_st_find(f, "__metadata__"));
    unsigned char buf[12];
    ck_assert_int_eq(tc_st_read(f, t->begin, buf, sizeof buf), TC_OK);
    for (int i = 0; i < 12; i++)
        ck_assert_uint_eq(buf[i], 4 + i);
    tc_st_close(f);
}
END_TEST

START_TEST(st_open_should_accept_leading_and_trailing_whitespace)
{
    ck_assert_int_eq(open_kind("ws1.safetensors", "\t\n{}\r ", 0), TC_ST_OK);
    ck_assert_int_eq(open_kind("ws2.safetensors",
                               "  {" T16("x", 2, 4) "}        ", 4), TC_ST_OK);
}
END_TEST

START_TEST(st_open_should_accept_empty_names_scalars_and_zero_size_tensors)
{
    const char *hdr = "{\"\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
                      "\"z\":{\"dtype\":\"F16\",\"shape\":[0,5],\"data_offsets\":[4,4]},"
                      "\"z2\":{\"dtype\":\"BF16\",\"shape\":[3,0],\"data_offsets\":[4,4]},"
                      "\"b\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[4,6]}}";
    char p[600];
    path_in(p, sizeof p, "edge.safetensors");
    write_st(p, hdr, strlen(hdr), 6);
    tc_st_file *f = NULL;
    ck_assert_int_eq(tc_st_open(p, &f, NULL), TC_OK);
    ck_assert_uint_eq(f->n_tensors, 4);
    const tc_st_tensor *t = tc_st_find(f, "");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->ndim, 0);
    ck_assert_uint_eq(t->nelements, 1);
    t = tc_st_find(f, "z");
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(t->nelements, 0);
    ck_assert_uint_eq(t->end - t->begin, 0);
    ck_assert_int_eq(tc_st_read(f, 6, NULL, 0), TC_OK); /* empty read at the end */
    tc_st_close(f);
}
END_TEST

START_TEST(st_open_should_keep_case_distinct_names_apart)
{
    const char *hdr = "{\"A\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                      "\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[1,3]}}";
    char p[600];
    path_in(p, sizeof p, "case.safetensors");
    write_st(p, hdr, strlen(hdr), 3);
    tc_st_file *f = NULL;
    ck_assert_int_eq(tc_st_open(p, &f, NULL), TC_OK);
    ck_assert_uint_eq(tc_st_find(f, "A")->shape[0], 1);
    ck_assert_uint_eq(tc_st_find(f, "a")->shape[0], 2);
    tc_st_close(f);
}
END_TEST

START_TEST(st_open_should_ignore_unknown_entry_fields_and_null_metadata)
{
    ck_assert_int_eq(open_kind("extra.safetensors",
                               "{\"__metadata__\":null,\"x\":{\"dtype\":\"U8\",\"shape\":[2],"
                               "\"data_offsets\":[0,2],\"extra\":{\"k\":[1,\"s\",true,null]}}}",
                               2), TC_ST_OK);
    ck_assert_int_eq(open_kind("meta_empty.safetensors", "{\"__metadata__\":{}}", 0), TC_ST_OK);
}
END_TEST

START_TEST(st_parse_header_should_handle_offsets_beyond_4gib_without_saturation)
{
    /* cJSON's valueint saturates at INT_MAX; offsets must use the exact value. */
    const char *hdr = "{\"big\":{\"dtype\":\"U8\",\"shape\":[4294967296],"
                      "\"data_offsets\":[0,4294967296]},"
                      "\"next\":{\"dtype\":\"F32\",\"shape\":[2],"
                      "\"data_offsets\":[4294967296,4294967304]}}";
    size_t n = strlen(hdr);
    tc_st_file *f = NULL;
    tc_st_error e;
    ck_assert_int_eq(tc_st_parse_header("mem", hdr, n, 8 + n + 4294967304ull, &f, &e), TC_OK);
    ck_assert_int_eq(e, TC_ST_OK);
    ck_assert_int_eq(f->fd, -1);
    const tc_st_tensor *t = tc_st_find(f, "big");
    ck_assert_uint_eq(t->end, 4294967296ull);
    ck_assert_uint_eq(t->nelements, 4294967296ull);
    ck_assert_int_eq(t->shape[0], 4294967296ll);
    t = tc_st_find(f, "next");
    ck_assert_uint_eq(t->begin, 4294967296ull);
    ck_assert_uint_eq(t->end, 4294967304ull);
    tc_st_close(f);
    /* one byte short of the claimed data: incomplete */
    tc_log_set_quiet(1);
    ck_assert_int_eq(tc_st_parse_header("mem", hdr, n, 8 + n + 4294967303ull, &f, &e),
                     TC_E_INPUT);
    ck_assert_int_eq(e, TC_ST_METADATA_INCOMPLETE_BUFFER);
    ck_assert_ptr_null(f);
}
END_TEST

/* ---- one test per error kind ------------------------------------------- */

START_TEST(st_open_should_reject_file_shorter_than_8_bytes)
{
    char p[600];
    tc_st_file *f = NULL;
    tc_st_error e;
    tc_log_set_quiet(1);
    path_in(p, sizeof p, "short.safetensors");
    write_bytes(p, "\x02\0\0\0\0\0\0", 7);
    ck_assert_int_eq(tc_st_open(p, &f, &e), TC_E_INPUT);
    ck_assert_int_eq(e, TC_ST_HEADER_TOO_SMALL);
    ck_assert_ptr_null(f);
    write_bytes(p, "", 0);
    ck_assert_int_eq(tc_st_open(p, &f, &e), TC_E_INPUT);
    ck_assert_int_eq(e, TC_ST_HEADER_TOO_SMALL);
}
END_TEST

START_TEST(st_open_should_reject_header_longer_than_100000000_bytes)
{
    char p[600];
    tc_st_file *f = NULL;
    tc_st_error e;
    tc_log_set_quiet(1);
    path_in(p, sizeof p, "toolarge.safetensors");
    /* 100000001 = 0x05F5E101: too large even though the file is tiny */
    write_bytes(p, "\x01\xE1\xF5\x05\0\0\0\0{}", 10);
    ck_assert_int_eq(tc_st_open(p, &f, &e), TC_E_INPUT);
    ck_assert_int_eq(e, TC_ST_HEADER_TOO_LARGE);
    write_bytes(p, "\xff\xff\xff\xff\xff\xff\xff\xff", 8); /* 2^64-1 */
    ck_assert_int_eq(tc_st_open(p, &f, &e), TC_E_INPUT);
    ck_assert_int_eq(e, TC_ST_HEADER_TOO_LARGE);
    ck_assert_ptr_null(f);
}
END_TEST

START_TEST(st_open_should_reject_header_longer_than_file)
{
    char p[600];
    tc_st_file *f = NULL;
    tc_st_error e;
    tc_log_set_quiet(1);
    path_in(p, sizeof p, "hlen.safetensors");
    write_bytes(p, "\x03\0\0\0\0\0\0\0{}", 10); /* claims 3 bytes, has 2 */
    ck_assert_int_eq(tc_st_open(p, &f, &e), TC_E_INPUT);
    ck_assert_int_eq(e, TC_ST_INVALID_HEADER_LENGTH);
    /* exactly 100000000 is not too large, but runs past the end */
    write_bytes(p, "\x00\xE1\xF5\x05\0\0\0\0{}", 10);
    ck_assert_int_eq(tc_st_open(p, &f, &e), TC_E_INPUT);
    ck_assert_int_eq(e, TC_ST_INVALID_HEADER_LENGTH);
}
END_TEST

START_TEST(st_open_should_reject_invalid_utf8_in_header)
{
    static const struct {
        const char *hdr;
        size_t n;
    } cases[] = {
        { "{\"\xC0\x80\":1}", 8 },            /* overlong NUL */
        { "{\"\xE0\x80\x80\":1}", 9 },        /* overlong 3-byte */
        { "{\"\xED\xA0\x80\":1}", 9 },        /* surrogate U+D800 */
        { "{\"\xF4\x90\x80\x80\":1}", 10 },   /* > U+10FFFF */
        { "{\"\xF5\x80\x80\x80\":1}", 10 },
        { "{\"\xC3\":1}", 6 },                /* truncated sequence */
        { "{\"\xFF\":1}", 6 },
        { "{}\xC3", 3 },                      /* truncated at the very end */
    };
    tc_log_set_quiet(1);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_int_eq(open_kind_n("utf8.safetensors", cases[i].hdr, cases[i].n, 0),
                         TC_ST_INVALID_HEADER);
    /* valid multi-byte UTF-8 names are fine */
    ck_assert_int_eq(open_kind("utf8ok.safetensors",
                               "{\"\xC3\xA9\xF0\x9F\x98\x80\":{\"dtype\":\"U8\",\"shape\":[1],"
                               "\"data_offsets\":[0,1]}}", 1), TC_ST_OK);
}
END_TEST

START_TEST(st_open_should_reject_json_the_reference_cannot_deserialize)
{
    static const char *const cases[] = {
        "",                                         /* empty header */
        "[]",                                       /* not an object */
        "\"x\"",
        "{}x",                                      /* trailing garbage */
        "{} {}",
        "{",                                        /* syntax */
        "{\"x\":{\"dtype\":\"U8\",\"shape\":[1]}}", /* missing data_offsets */
        "{\"x\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", /* missing shape */
        "{\"x\":{\"shape\":[1],\"data_offsets\":[0,1]}}",    /* missing dtype */
        "{\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,1]}}",
        "{\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1]}}",
        "{\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":{}}}",
        "{\"x\":{\"dtype\":\"U8\",\"shape\":1,\"data_offsets\":[0,1]}}",
        "{\"x\":{\"dtype\":\"U8\",\"shape\":[\"1\"],\"data_offsets\":[0,1]}}",
        "{\"x\":{\"dtype\":8,\"shape\":[1],\"data_offsets\":[0,1]}}",
        "{\"x\":[]}",                               /* entry not an object */
        "{\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,true]}}",
        "{\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1e0]}}",
        "{\"x\":{\"dtype\":\"U8\",\"shape\":[1e3],\"data_offsets\":[0,1]}}",  /* exponent */
        "{\"x\":{\"dtype\":\"U8\",\"shape\":[1.0],\"data_offsets\":[0,1]}}",  /* float */
        "{\"x\":{\"dtype\":\"U8\",\"shape\":[-5],\"data_offsets\":[0,1]}}",   /* negative */
        "{\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[-0,1]}}",
        "{\"x\":{\"dtype\":\"U8\",\"shape\":[01],\"data_offsets\":[0,1]}}",   /* leading 0 */
        "{\"x\":{\"dtype\":\"U8\",\"shape\":[9007199254740992],\"data_offsets\":[0,1]}}",
        "{\"x\":{\"dtype\":\"U8\",\"shape\":[9007199254740993],\"data_offsets\":[0,1]}}",
        "{\"x\":{\"dtype\":\"U8\",\"shape\":[18446744073709551616],\"data_offsets\":[0,1]}}",
        "{\"__metadata__\":{\"n\":1}}",             /* non-string metadata */
        "{\"__metadata__\":{\"n\":null}}",
        "{\"__metadata__\":{\"n\":{\"a\":\"b\"}}}",
        "{\"__metadata__\":[]}",
        "{\"__metadata__\":\"pt\"}",
        "\f{}",                                     /* not JSON whitespace (cJSON skips it) */
        "{}\v",
        "\xEF\xBB\xBF{}",                           /* BOM (cJSON skips it) */
        "{\"a\tb\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", /* raw control */
        "{\"a\\u0000b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}",
        "{\"a\\x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", /* bad escape */
        "{\"\\ud800\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", /* lone */
        "{'x':1}",
    };
    tc_log_set_quiet(1);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tc_st_error e = open_kind("json.safetensors", cases[i], 1);
        ck_assert_msg(e == TC_ST_INVALID_HEADER_DESERIALIZATION, "case %zu '%s': got %s", i,
                      cases[i], tc_st_error_name(e));
    }
}
END_TEST

START_TEST(st_open_should_accept_escaped_names_and_reject_deep_nesting_like_serde)
{
    /* serde_json fails at the 128th nested level: root(1) + entry(2) + k arrays */
    char hdr[1024];
    for (int k = 125; k <= 126; k++) {
        int o = snprintf(hdr, sizeof hdr, "{\"x\":{\"dtype\":\"U8\",\"shape\":[1],"
                                          "\"data_offsets\":[0,1],\"deep\":");
        for (int i = 0; i < k; i++)
            hdr[o++] = '[';
        for (int i = 0; i < k; i++)
            hdr[o++] = ']';
        hdr[o++] = '}';
        hdr[o++] = '}';
        hdr[o] = '\0';
        tc_log_set_quiet(1);
        ck_assert_int_eq(open_kind("deep.safetensors", hdr, 1),
                         k == 125 ? TC_ST_OK : TC_ST_INVALID_HEADER_DESERIALIZATION);
    }
    /* escapes are decoded before names are compared or stored */
    const char *esc = "{\"a\\\"b\\\\c\\u00e9\\n\":{\"dtype\":\"U8\",\"shape\":[1],"
                      "\"data_offsets\":[0,1]}}";
    char p[600];
    path_in(p, sizeof p, "esc.safetensors");
    write_st(p, esc, strlen(esc), 1);
    tc_st_file *f = NULL;
    ck_assert_int_eq(tc_st_open(p, &f, NULL), TC_OK);
    ck_assert_str_eq(f->tensors[0].name, "a\"b\\c\xC3\xA9\n");
    tc_st_close(f);
}
END_TEST

START_TEST(st_open_should_reject_duplicate_tensor_names)
{
    tc_log_set_quiet(1);
    /* identical duplicates: the reference keeps one; we refuse the ambiguity */
    ck_assert_int_eq(open_kind("dup1.safetensors", "{" T16("w", 2, 4) "," T16("w", 2, 4) "}", 4),
                     TC_ST_DUPLICATE_KEY);
    /* differing duplicates: serde keeps the last, cJSON the first */
    ck_assert_int_eq(open_kind("dup2.safetensors",
                               "{" T16("w", 2, 4) ","
                               "\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}",
                               4), TC_ST_DUPLICATE_KEY);
    ck_assert_ptr_nonnull(strstr(tc_first_error(), "'w'"));
    /* equal after unescaping */
    ck_assert_int_eq(open_kind("dup3.safetensors", "{" T16("w", 2, 4) ",\"\\u0077\":"
                               "{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[4,8]}}", 8),
                     TC_ST_DUPLICATE_KEY);
    ck_assert_int_eq(open_kind("dup4.safetensors",
                               "{\"__metadata__\":{},\"__metadata__\":{}}", 0),
                     TC_ST_DUPLICATE_KEY);
    ck_assert_int_eq(open_kind("dup5.safetensors",
                               "{\"w\":{\"dtype\":\"F16\",\"dtype\":\"U8\",\"shape\":[2],"
                               "\"data_offsets\":[0,4]}}", 4), TC_ST_DUPLICATE_KEY);
}
END_TEST

START_TEST(st_open_should_reject_unknown_dtypes)
{
    tc_log_set_quiet(1);
    ck_assert_int_eq(open_kind("dt1.safetensors",
                               "{\"w\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                               4), TC_ST_UNKNOWN_DTYPE);
    ck_assert_int_eq(open_kind("dt2.safetensors",
                               "{\"w\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                               4), TC_ST_UNKNOWN_DTYPE);
    ck_assert_ptr_nonnull(strstr(tc_first_error(), "'w'"));
    ck_assert_ptr_nonnull(strstr(tc_first_error(), "f32"));
}
END_TEST

START_TEST(st_open_should_reject_gaps_overlaps_and_reversed_offsets)
{
    tc_log_set_quiet(1);
    /* first tensor not at 0 */
    ck_assert_int_eq(open_kind("off1.safetensors",
                               "{\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]}}", 4),
                     TC_ST_INVALID_OFFSET);
    ck_assert_ptr_nonnull(strstr(tc_first_error(), "tensor 'w'"));
    /* gap between tensors */
    ck_assert_int_eq(open_kind("off2.safetensors",
                               "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
                               "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[3,5]}}", 5),
                     TC_ST_INVALID_OFFSET);
    ck_assert_ptr_nonnull(strstr(tc_first_error(), "tensor 'b'"));
    /* overlap */
    ck_assert_int_eq(open_kind("off3.safetensors",
                               "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
                               "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[1,3]}}", 3),
                     TC_ST_INVALID_OFFSET);
    /* reversed range */
    ck_assert_int_eq(open_kind("off4.safetensors",
                               "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]},"
                               "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,0]}}", 2),
                     TC_ST_INVALID_OFFSET);
}
END_TEST

START_TEST(st_open_should_reject_shape_products_that_overflow)
{
    tc_log_set_quiet(1);
    /* 2^40 * 2^40 elements */
    ck_assert_int_eq(open_kind("ovf1.safetensors",
                               "{\"w\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],"
                               "\"data_offsets\":[0,4]}}", 4), TC_ST_VALIDATION_OVERFLOW);
    /* element count fits, bits do not: 2^61 * 64 */
    ck_assert_int_eq(open_kind("ovf2.safetensors",
                               "{\"w\":{\"dtype\":\"F64\",\"shape\":[2097152,1099511627776],"
                               "\"data_offsets\":[0,4]}}", 4), TC_ST_VALIDATION_OVERFLOW);
    /* a zero dimension makes any product fine */
    ck_assert_int_eq(open_kind("ovf3.safetensors",
                               "{\"w\":{\"dtype\":\"F64\",\"shape\":[1099511627776,0,"
                               "1099511627776],\"data_offsets\":[0,0]}}", 0), TC_ST_OK);
}
END_TEST

START_TEST(st_open_should_reject_subbyte_tensors_that_are_not_whole_bytes)
{
    tc_log_set_quiet(1);
    ck_assert_int_eq(open_kind("mis1.safetensors",
                               "{\"w\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,2]}}", 2),
                     TC_ST_MISALIGNED_SLICE);
    ck_assert_int_eq(open_kind("mis2.safetensors",
                               "{\"w\":{\"dtype\":\"F6_E3M2\",\"shape\":[2],\"data_offsets\":[0,2]}}",
                               2), TC_ST_MISALIGNED_SLICE);
    ck_assert_int_eq(open_kind("mis3.safetensors",
                               "{\"w\":{\"dtype\":\"F6_E2M3\",\"shape\":[4],\"data_offsets\":[0,3]}}",
                               3), TC_ST_OK);
}
END_TEST

START_TEST(st_open_should_reject_span_that_does_not_match_shape_and_dtype)
{
    char p[600];
    tc_log_set_quiet(1);
    ck_assert_int_eq(open_kind("info.safetensors",
                               "{\"a.weight\":{\"dtype\":\"F16\",\"shape\":[2,3],"
                               "\"data_offsets\":[0,10]}}", 10), TC_ST_TENSOR_INVALID_INFO);
    path_in(p, sizeof p, "info.safetensors");
    char want[800];
    snprintf(want, sizeof want, "%s: tensor 'a.weight': data_offsets [0,10] span 10 bytes but "
             "shape [2,3] of F16 needs 12 (TensorInvalidInfo)", p);
    ck_assert_str_eq(tc_first_error(), want);
}
END_TEST

START_TEST(st_open_should_reject_data_area_not_exactly_covered)
{
    tc_log_set_quiet(1);
    /* trailing byte: the polyglot case */
    ck_assert_int_eq(open_kind("inc1.safetensors", "{" T16("w", 2, 4) "}", 5),
                     TC_ST_METADATA_INCOMPLETE_BUFFER);
    /* truncated data */
    ck_assert_int_eq(open_kind("inc2.safetensors", "{" T16("w", 2, 4) "}", 3),
                     TC_ST_METADATA_INCOMPLETE_BUFFER);
    /* no tensors but data */
    ck_assert_int_eq(open_kind("inc3.safetensors", "{}", 1), TC_ST_METADATA_INCOMPLETE_BUFFER);
    /* no tensors, no data: fine */
    ck_assert_int_eq(open_kind("inc4.safetensors", "{}", 0), TC_ST_OK);
}
END_TEST

START_TEST(st_open_should_report_io_errors)
{
    char p[600];
    tc_st_file *f = (tc_st_file *)1;
    tc_st_error e;
    tc_log_set_quiet(1);
    path_in(p, sizeof p, "does-not-exist.safetensors");
    tc_clear_first_error();
    ck_assert_int_eq(tc_st_open(p, &f, &e), TC_E_IO);
    ck_assert_int_eq(e, TC_ST_IO_ERROR);
    ck_assert_ptr_null(f);
    ck_assert_ptr_nonnull(strstr(tc_first_error(), p));
    ck_assert_int_eq(tc_st_open(g_dir, &f, &e), TC_E_IO); /* a directory */
    ck_assert_int_eq(e, TC_ST_IO_ERROR);
}
END_TEST

START_TEST(st_read_should_reject_ranges_outside_the_data_area)
{
    const char *hdr = "{" T16("w", 2, 4) "}";
    char p[600];
    path_in(p, sizeof p, "read.safetensors");
    write_st(p, hdr, strlen(hdr), 4);
    tc_st_file *f = NULL;
    unsigned char buf[8];
    ck_assert_int_eq(tc_st_open(p, &f, NULL), TC_OK);
    tc_log_set_quiet(1);
    tc_clear_first_error();
    ck_assert_int_eq(tc_st_read(f, 0, buf, 5), TC_E_IO);
    ck_assert_ptr_nonnull(strstr(tc_first_error(), p));
    ck_assert_int_eq(tc_st_read(f, 5, buf, 0), TC_E_IO);
    ck_assert_int_eq(tc_st_read(f, UINT64_MAX, buf, 1), TC_E_IO);
    ck_assert_int_eq(tc_st_read(f, 2, buf, SIZE_MAX), TC_E_IO);
    ck_assert_int_eq(tc_st_read(f, 1, buf, 3), TC_OK);
    ck_assert_uint_eq(buf[0], 1);
    ck_assert_uint_eq(buf[2], 3);
    tc_st_close(f);
    tc_st_close(NULL);
}
END_TEST

/* ---- with the writer ---------------------------------------------------- */

START_TEST(st_open_should_read_back_what_the_writer_wrote)
{
    float f32[3] = { 1.0f, -2.5f, 3.25f };
    uint16_t f16[4] = { 0x3C00, 0x4000, 0x4200, 0x4400 };
    uint16_t bf16[2] = { 0x3F80, 0xC000 };
    int8_t i8[6] = { -1, 2, -3, 4, -5, 6 };
    tc_st_out_tensor t[5] = {
        { .name = "layer.f16", .dtype = TC_DT_F16, .ndim = 2, .shape = { 2, 2 } },
        { .name = "i8", .dtype = TC_DT_I8, .ndim = 2, .shape = { 3, 2 } },
        { .name = "scale", .dtype = TC_DT_F32, .ndim = 1, .shape = { 3 } },
        { .name = "bf", .dtype = TC_DT_BF16, .ndim = 1, .shape = { 2 } },
        { .name = "empty", .dtype = TC_DT_F16, .ndim = 2, .shape = { 0, 4 } },
    };
    const void *data[5] = { f16, i8, f32, bf16, NULL };
    char p[600];
    path_in(p, sizeof p, "roundtrip.safetensors");
    ck_assert_int_eq(tc_st_write_file(p, t, data, 5, "{\"format\":\"pt\"}"), TC_OK);
    tc_st_file *f = NULL;
    ck_assert_int_eq(tc_st_open(p, &f, NULL), TC_OK);
    ck_assert_uint_eq(f->n_tensors, 5);
    ck_assert_uint_eq(f->header_len % 8, 0);
    /* file order: F32, BF16, F16 (empty < layer.f16), I8 */
    ck_assert_uint_eq(tc_st_find(f, "scale")->begin, 0);
    ck_assert_uint_eq(tc_st_find(f, "bf")->begin, 12);
    ck_assert_uint_eq(tc_st_find(f, "empty")->begin, 16);
    ck_assert_uint_eq(tc_st_find(f, "layer.f16")->begin, 16);
    ck_assert_uint_eq(tc_st_find(f, "i8")->begin, 24);
    for (size_t i = 0; i < 4; i++) {
        const tc_st_tensor *x = tc_st_find(f, t[i].name);
        unsigned char buf[16];
        ck_assert_ptr_nonnull(x);
        ck_assert_int_eq(x->dtype, t[i].dtype);
        ck_assert_int_eq(x->ndim, t[i].ndim);
        ck_assert_uint_le(x->end - x->begin, sizeof buf);
        ck_assert_int_eq(tc_st_read(f, x->begin, buf, x->end - x->begin), TC_OK);
        ck_assert_mem_eq(buf, data[i], x->end - x->begin);
    }
    tc_st_close(f);
}
END_TEST

static int files_equal(const char *a, const char *b, size_t *size)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int eq = fa && fb;
    size_t n = 0;
    while (eq) {
        int ca = fgetc(fa), cb = fgetc(fb);
        if (ca != cb)
            eq = 0;
        if (ca == EOF || cb == EOF)
            break;
        n++;
    }
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    *size = n;
    return eq;
}

START_TEST(st_layout_should_reproduce_a_python_safetensors_file_byte_for_byte)
{
    const char *gdir = getenv("TRTCONV_GOLDEN_DIR");
    ck_assert_msg(gdir && *gdir, "TRTCONV_GOLDEN_DIR is not set (tests/CMakeLists.txt sets it)");
    char src[1024], dst[600];
    int r = snprintf(src, sizeof src, "%s/sq_mha/kv_only_tp2pp2/rank3.safetensors", gdir);
    ck_assert(r > 0 && (size_t)r < sizeof src);
    path_in(dst, sizeof dst, "golden_copy.safetensors");

    tc_st_file *f = NULL;
    ck_assert_int_eq(tc_st_open(src, &f, NULL), TC_OK);
    ck_assert_uint_gt(f->n_tensors, 0);
    size_t n = f->n_tensors;
    tc_st_out_tensor *t = calloc(n, sizeof *t);
    void **bufs = calloc(n, sizeof *bufs);
    ck_assert(t && bufs);
    for (size_t i = 0; i < n; i++) {
        const tc_st_tensor *x = &f->tensors[i];
        ck_assert_int_le(x->ndim, TC_ST_OUT_MAX_DIMS);
        t[i].name = x->name;
        t[i].dtype = x->dtype;
        t[i].ndim = x->ndim;
        for (int d = 0; d < x->ndim; d++)
            t[i].shape[d] = x->shape[d];
        bufs[i] = malloc(x->end - x->begin + 1);
        ck_assert_ptr_nonnull(bufs[i]);
        ck_assert_int_eq(tc_st_read(f, x->begin, bufs[i], x->end - x->begin), TC_OK);
    }
    /* t is sorted by layout; remember where each name's bytes are */
    char *prefix = NULL;
    size_t plen = 0;
    uint64_t fsize = 0;
    tc_st_out_tensor *sorted = malloc(n * sizeof *sorted);
    ck_assert_ptr_nonnull(sorted);
    memcpy(sorted, t, n * sizeof *sorted);
    ck_assert_int_eq(tc_st_layout(sorted, n, &prefix, &plen, &fsize), TC_OK);
    ck_assert_uint_eq(fsize, f->file_size);
    ck_assert_uint_eq(plen, f->data_offset);

    int fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, prefix, plen, 0), (ssize_t)plen);
    for (size_t j = 0; j < n; j++) {
        const tc_st_tensor *x = tc_st_find(f, sorted[j].name);
        ck_assert_ptr_nonnull(x);
        size_t idx = (size_t)(x - f->tensors);
        ck_assert_uint_eq(sorted[j].nbytes, x->end - x->begin);
        ck_assert_uint_eq(sorted[j].file_offset, f->data_offset + x->begin);
        ck_assert_int_eq(pwrite(fd, bufs[idx], sorted[j].nbytes, (off_t)sorted[j].file_offset),
                         (ssize_t)sorted[j].nbytes);
    }
    ck_assert_int_eq(close(fd), 0);
    size_t same = 0;
    ck_assert_msg(files_equal(src, dst, &same), "files differ at byte %zu", same);
    ck_assert_uint_eq(same, f->file_size);

    for (size_t i = 0; i < n; i++)
        free(bufs[i]);
    free(bufs);
    free(t);
    free(sorted);
    free(prefix);
    tc_st_close(f);
}
END_TEST

START_TEST(st_write_file_should_reproduce_the_hf_golden_file_with_metadata)
{
    /* model.safetensors from safetensors.torch.save_file: {"format":"pt"} first */
    const char *gdir = getenv("TRTCONV_GOLDEN_DIR");
    ck_assert_msg(gdir && *gdir, "TRTCONV_GOLDEN_DIR is not set (tests/CMakeLists.txt sets it)");
    char src[1024], dst[600];
    int r = snprintf(src, sizeof src, "%s/sq_mha/hf/model.safetensors", gdir);
    ck_assert(r > 0 && (size_t)r < sizeof src);
    path_in(dst, sizeof dst, "golden_hf_copy.safetensors");
    tc_st_file *f = NULL;
    ck_assert_int_eq(tc_st_open(src, &f, NULL), TC_OK);
    size_t n = f->n_tensors;
    tc_st_out_tensor *t = calloc(n, sizeof *t);
    void **bufs = calloc(n, sizeof *bufs);
    ck_assert(t && bufs);
    for (size_t i = 0; i < n; i++) {
        const tc_st_tensor *x = &f->tensors[i];
        ck_assert_int_le(x->ndim, TC_ST_OUT_MAX_DIMS);
        t[i].name = x->name;
        t[i].dtype = x->dtype;
        t[i].ndim = x->ndim;
        for (int d = 0; d < x->ndim; d++)
            t[i].shape[d] = x->shape[d];
        bufs[i] = malloc(x->end - x->begin + 1);
        ck_assert_ptr_nonnull(bufs[i]);
        ck_assert_int_eq(tc_st_read(f, x->begin, bufs[i], x->end - x->begin), TC_OK);
    }
    ck_assert_int_eq(tc_st_write_file(dst, t, (const void *const *)bufs, n,
                                      "{\"format\":\"pt\"}"), TC_OK);
    size_t same = 0;
    ck_assert_msg(files_equal(src, dst, &same), "files differ at byte %zu", same);
    ck_assert_uint_eq(same, f->file_size);
    for (size_t i = 0; i < n; i++)
        free(bufs[i]);
    free(bufs);
    free(t);
    tc_st_close(f);
}
END_TEST

static Suite *st_suite(void)
{
    Suite *s = suite_create("safetensors");
    TCase *ok = tcase_create("valid");
    tcase_add_test(ok, st_open_should_accept_a_valid_file_and_expose_its_tensors);
    tcase_add_test(ok, st_open_should_accept_leading_and_trailing_whitespace);
    tcase_add_test(ok, st_open_should_accept_empty_names_scalars_and_zero_size_tensors);
    tcase_add_test(ok, st_open_should_keep_case_distinct_names_apart);
    tcase_add_test(ok, st_open_should_ignore_unknown_entry_fields_and_null_metadata);
    tcase_add_test(ok, st_parse_header_should_handle_offsets_beyond_4gib_without_saturation);
    suite_add_tcase(s, ok);

    TCase *bad = tcase_create("errors");
    tcase_add_test(bad, st_open_should_reject_file_shorter_than_8_bytes);
    tcase_add_test(bad, st_open_should_reject_header_longer_than_100000000_bytes);
    tcase_add_test(bad, st_open_should_reject_header_longer_than_file);
    tcase_add_test(bad, st_open_should_reject_invalid_utf8_in_header);
    tcase_add_test(bad, st_open_should_reject_json_the_reference_cannot_deserialize);
    tcase_add_test(bad, st_open_should_accept_escaped_names_and_reject_deep_nesting_like_serde);
    tcase_add_test(bad, st_open_should_reject_duplicate_tensor_names);
    tcase_add_test(bad, st_open_should_reject_unknown_dtypes);
    tcase_add_test(bad, st_open_should_reject_gaps_overlaps_and_reversed_offsets);
    tcase_add_test(bad, st_open_should_reject_shape_products_that_overflow);
    tcase_add_test(bad, st_open_should_reject_subbyte_tensors_that_are_not_whole_bytes);
    tcase_add_test(bad, st_open_should_reject_span_that_does_not_match_shape_and_dtype);
    tcase_add_test(bad, st_open_should_reject_data_area_not_exactly_covered);
    tcase_add_test(bad, st_open_should_report_io_errors);
    tcase_add_test(bad, st_read_should_reject_ranges_outside_the_data_area);
    suite_add_tcase(s, bad);

    TCase *rt = tcase_create("writer");
    tcase_add_test(rt, st_open_should_read_back_what_the_writer_wrote);
    tcase_add_test(rt, st_layout_should_reproduce_a_python_safetensors_file_byte_for_byte);
    tcase_add_test(rt, st_write_file_should_reproduce_the_hf_golden_file_with_metadata);
    suite_add_tcase(s, rt);
    return s;
}


int main(void)
{
    if (test_tmpdir_create(g_dir, sizeof g_dir, "st") != 0)
        return 1;
    SRunner *sr = srunner_create(st_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    test_tmpdir_remove(g_dir);
    return failures ? 1 : 0;
}
