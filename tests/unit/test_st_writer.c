/* test_st_writer.c: byte layout of written safetensors files: file order,
 * offsets, compact JSON, serde_json escaping, space padding, the length
 * prefix, metadata, error cases, and tc_st_write_file output. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static uint64_t le64(const char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | (unsigned char)p[i];
    return v;
}

/* Expected prefix = LE64(len) + json + spaces to a multiple of 8. */
static void expect_prefix(const char *prefix, size_t plen, const char *json)
{
    size_t jl = strlen(json);
    size_t padded = (jl + 7) / 8 * 8;
    ck_assert_uint_eq(plen, 8 + padded);
    ck_assert_uint_eq(le64(prefix), padded);
    ck_assert_msg(memcmp(prefix + 8, json, jl) == 0, "header is '%.*s', want '%s'",
                  (int)(plen - 8), prefix + 8, json);
    for (size_t i = 8 + jl; i < plen; i++)
        ck_assert_int_eq(prefix[i], ' ');
}

static unsigned char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    long sz = ftell(f);
    ck_assert_int_ge(sz, 0);
    rewind(f);
    unsigned char *b = malloc((size_t)sz + 1);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(fread(b, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);
    *n = (size_t)sz;
    return b;
}

START_TEST(st_layout_should_match_a_hand_written_header)
{
    tc_st_out_tensor t[4] = {
        { .name = "b", .dtype = TC_DT_F16, .ndim = 1, .shape = { 2 } },
        { .name = "a", .dtype = TC_DT_F32, .ndim = 0 },
        { .name = "c", .dtype = TC_DT_I8, .ndim = 2, .shape = { 3, 1 } },
        { .name = "z", .dtype = TC_DT_BF16, .ndim = 1, .shape = { 1 } },
    };
    char *prefix = NULL;
    size_t plen = 0;
    uint64_t fsize = 0;
    ck_assert_int_eq(tc_st_layout(t, 4, &prefix, &plen, &fsize), TC_OK);
    const char *json = "{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
                       "\"z\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[4,6]},"
                       "\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[6,10]},"
                       "\"c\":{\"dtype\":\"I8\",\"shape\":[3,1],\"data_offsets\":[10,13]}}";
    /* 217 bytes of JSON -> 7 spaces -> N = 224 */
    ck_assert_uint_eq(strlen(json), 217);
    expect_prefix(prefix, plen, json);
    ck_assert_uint_eq(plen, 8 + 224);
    ck_assert_mem_eq(prefix, "\xE0\0\0\0\0\0\0\0", 8);
    /* t is now in file order with absolute offsets */
    ck_assert_str_eq(t[0].name, "a");
    ck_assert_str_eq(t[1].name, "z");
    ck_assert_str_eq(t[2].name, "b");
    ck_assert_str_eq(t[3].name, "c");
    ck_assert_uint_eq(t[0].nbytes, 4);
    ck_assert_uint_eq(t[3].nbytes, 3);
    ck_assert_uint_eq(t[0].file_offset, 232);
    ck_assert_uint_eq(t[1].file_offset, 236);
    ck_assert_uint_eq(t[2].file_offset, 238);
    ck_assert_uint_eq(t[3].file_offset, 242);
    ck_assert_uint_eq(fsize, 245);
    free(prefix);
}
END_TEST

START_TEST(st_layout_should_sort_by_dtype_descending_then_name_bytewise)
{
    /* one tensor per v0.4.3 dtype, given in ascending order, plus names that
     * differ in case (byte order: 'B' < 'a') */
    static const tc_dtype asc[] = {
        TC_DT_BOOL, TC_DT_U8, TC_DT_I8, TC_DT_F8_E5M2, TC_DT_F8_E4M3, TC_DT_I16, TC_DT_U16,
        TC_DT_F16, TC_DT_BF16, TC_DT_I32, TC_DT_U32, TC_DT_F32, TC_DT_F64, TC_DT_I64, TC_DT_U64,
    };
    enum { N = sizeof asc / sizeof asc[0] };
    tc_st_out_tensor t[N + 2];
    memset(t, 0, sizeof t);
    for (size_t i = 0; i < N; i++) {
        t[i].name = tc_dtype_name(asc[i]);
        t[i].dtype = asc[i];
        t[i].ndim = 1;
        t[i].shape[0] = 1;
    }
    t[N] = (tc_st_out_tensor){ .name = "a", .dtype = TC_DT_F16, .ndim = 1, .shape = { 1 } };
    t[N + 1] = (tc_st_out_tensor){ .name = "B", .dtype = TC_DT_F16, .ndim = 1, .shape = { 1 } };
    char *prefix = NULL;
    size_t plen;
    uint64_t fsize;
    ck_assert_int_eq(tc_st_layout(t, N + 2, &prefix, &plen, &fsize), TC_OK);
    static const char *const want[] = { "U64", "I64", "F64", "F32", "U32", "I32", "BF16", "B",
                                        "F16", "a", "U16", "I16", "F8_E4M3", "F8_E5M2", "I8",
                                        "U8", "BOOL" };
    for (size_t i = 0; i < N + 2; i++)
        ck_assert_str_eq(t[i].name, want[i]);
    for (size_t i = 1; i < N + 2; i++)
        ck_assert_uint_eq(t[i].file_offset, t[i - 1].file_offset + t[i - 1].nbytes);
    ck_assert_uint_eq(fsize, t[N + 1].file_offset + t[N + 1].nbytes);
    free(prefix);
}
END_TEST

START_TEST(st_layout_should_escape_names_as_serde_json_does)
{
    tc_st_out_tensor t[1] = {
        { .name = "q\"b\\s/\b\f\n\r\t\x01\x1f\x7f\xC3\xA9", .dtype = TC_DT_U8, .ndim = 1,
          .shape = { 1 } },
    };
    char *prefix = NULL;
    size_t plen;
    uint64_t fsize;
    ck_assert_int_eq(tc_st_layout(t, 1, &prefix, &plen, &fsize), TC_OK);
    expect_prefix(prefix, plen,
                  "{\"q\\\"b\\\\s/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\xC3\xA9\":{\"dtype\":\"U8\","
                  "\"shape\":[1],\"data_offsets\":[0,1]}}");
    free(prefix);
}
END_TEST

START_TEST(st_layout_should_pad_to_a_multiple_of_8_with_spaces_only)
{
    /* names of every length mod 8, including a header that needs no padding */
    char name[40];
    int saw_unpadded = 0;
    for (int len = 0; len < 24; len++) {
        memset(name, 'n', (size_t)len);
        name[len] = '\0';
        tc_st_out_tensor t[1] = { { .name = name, .dtype = TC_DT_F32, .ndim = 1, .shape = { 1 } } };
        char *prefix = NULL;
        size_t plen;
        uint64_t fsize;
        ck_assert_int_eq(tc_st_layout(t, 1, &prefix, &plen, &fsize), TC_OK);
        uint64_t n = le64(prefix);
        ck_assert_uint_eq(n, plen - 8);
        ck_assert_uint_eq(n % 8, 0);
        size_t end = plen;
        while (prefix[end - 1] == ' ')
            end--;
        ck_assert_int_eq(prefix[end - 1], '}');
        ck_assert_uint_lt(plen - end, 8);
        saw_unpadded |= plen == end;
        ck_assert_uint_eq(t[0].file_offset, plen);
        ck_assert_uint_eq(fsize, plen + 4);
        free(prefix);
    }
    ck_assert(saw_unpadded);
}
END_TEST

START_TEST(st_layout_should_write_an_empty_object_for_no_tensors)
{
    char *prefix = NULL;
    size_t plen;
    uint64_t fsize;
    ck_assert_int_eq(tc_st_layout(NULL, 0, &prefix, &plen, &fsize), TC_OK);
    ck_assert_uint_eq(plen, 16);
    ck_assert_mem_eq(prefix, "\x08\0\0\0\0\0\0\0{}      ", 16);
    ck_assert_uint_eq(fsize, 16);
    free(prefix);
}
END_TEST

START_TEST(st_layout_should_reject_bad_tensors)
{
    char *prefix = (char *)1;
    size_t plen;
    uint64_t fsize;
    tc_log_set_quiet(1);
    tc_st_out_tensor dup[2] = {
        { .name = "w", .dtype = TC_DT_F16, .ndim = 1, .shape = { 1 } },
        { .name = "w", .dtype = TC_DT_F32, .ndim = 1, .shape = { 1 } },
    };
    ck_assert_int_eq(tc_st_layout(dup, 2, &prefix, &plen, &fsize), TC_E_INPUT);
    ck_assert_ptr_null(prefix);
    tc_st_out_tensor neg[1] = { { .name = "w", .dtype = TC_DT_F16, .ndim = 2, .shape = { 2, -1 } } };
    ck_assert_int_eq(tc_st_layout(neg, 1, &prefix, &plen, &fsize), TC_E_INPUT);
    tc_st_out_tensor dims[1] = { { .name = "w", .dtype = TC_DT_F16, .ndim = 5 } };
    ck_assert_int_eq(tc_st_layout(dims, 1, &prefix, &plen, &fsize), TC_E_INPUT);
    tc_st_out_tensor f4[1] = { { .name = "w", .dtype = TC_DT_F4, .ndim = 1, .shape = { 3 } } };
    ck_assert_int_eq(tc_st_layout(f4, 1, &prefix, &plen, &fsize), TC_E_INPUT);
    f4[0].shape[0] = 4; /* two whole bytes: fine */
    ck_assert_int_eq(tc_st_layout(f4, 1, &prefix, &plen, &fsize), TC_OK);
    ck_assert_uint_eq(f4[0].nbytes, 2);
    free(prefix);
    tc_st_out_tensor big[1] = { { .name = "w", .dtype = TC_DT_F64, .ndim = 3,
                                  .shape = { INT64_MAX, INT64_MAX, 2 } } };
    ck_assert_int_eq(tc_st_layout(big, 1, &prefix, &plen, &fsize), TC_E_INPUT);
}
END_TEST

START_TEST(st_write_file_should_put_metadata_first_and_data_in_file_order)
{
    uint16_t h[2] = { 0x3C00, 0xBC00 };
    float f[1] = { 0.5f };
    tc_st_out_tensor t[2] = {
        { .name = "h", .dtype = TC_DT_F16, .ndim = 1, .shape = { 2 } },
        { .name = "f", .dtype = TC_DT_F32, .ndim = 1, .shape = { 1 } },
    };
    const void *data[2] = { h, f };
    char p[600];
    path_in(p, sizeof p, "meta.safetensors");
    ck_assert_int_eq(tc_st_write_file(p, t, data, 2, "{\"format\":\"pt\"}"), TC_OK);
    /* the caller's array is not reordered */
    ck_assert_str_eq(t[0].name, "h");
    size_t n;
    unsigned char *b = read_file(p, &n);
    const char *json = "{\"__metadata__\":{\"format\":\"pt\"},"
                       "\"f\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                       "\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[4,8]}}";
    size_t plen = 8 + (strlen(json) + 7) / 8 * 8;
    expect_prefix((const char *)b, plen, json);
    ck_assert_uint_eq(n, plen + 8);
    ck_assert_mem_eq(b + plen, f, 4);
    ck_assert_mem_eq(b + plen + 4, h, 4);
    free(b);
    /* and the reader accepts it */
    tc_st_file *sf = NULL;
    ck_assert_int_eq(tc_st_open(p, &sf, NULL), TC_OK);
    ck_assert_uint_eq(sf->n_tensors, 2);
    tc_st_close(sf);
}
END_TEST

START_TEST(st_write_file_without_metadata_should_equal_layout_plus_data)
{
    uint8_t d[3] = { 7, 8, 9 };
    tc_st_out_tensor t[1] = { { .name = "x", .dtype = TC_DT_U8, .ndim = 1, .shape = { 3 } } };
    const void *data[1] = { d };
    char p[600];
    path_in(p, sizeof p, "plain.safetensors");
    ck_assert_int_eq(tc_st_write_file(p, t, data, 1, NULL), TC_OK);
    char *prefix;
    size_t plen;
    uint64_t fsize;
    tc_st_out_tensor t2[1] = { t[0] };
    ck_assert_int_eq(tc_st_layout(t2, 1, &prefix, &plen, &fsize), TC_OK);
    size_t n;
    unsigned char *b = read_file(p, &n);
    ck_assert_uint_eq(n, fsize);
    ck_assert_mem_eq(b, prefix, plen);
    ck_assert_mem_eq(b + plen, d, 3);
    free(b);
    free(prefix);
}
END_TEST

START_TEST(st_write_file_should_reject_bad_metadata_and_unwritable_paths)
{
    uint8_t d[1] = { 1 };
    tc_st_out_tensor t[1] = { { .name = "x", .dtype = TC_DT_U8, .ndim = 1, .shape = { 1 } } };
    const void *data[1] = { d };
    char p[600];
    tc_log_set_quiet(1);
    path_in(p, sizeof p, "badmeta.safetensors");
    ck_assert_int_eq(tc_st_write_file(p, t, data, 1, "{\"n\":1}"), TC_E_INPUT);
    ck_assert_int_eq(tc_st_write_file(p, t, data, 1, "[]"), TC_E_INPUT);
    ck_assert_int_eq(tc_st_write_file(p, t, data, 1, "{\"a\":\"b\",\"a\":\"c\"}"), TC_E_INPUT);
    ck_assert_int_eq(access(p, F_OK), -1); /* nothing left behind */
    path_in(p, sizeof p, "no/such/dir/x.safetensors");
    tc_clear_first_error();
    ck_assert_int_eq(tc_st_write_file(p, t, data, 1, NULL), TC_E_IO);
    ck_assert_ptr_nonnull(strstr(tc_first_error(), p));
}
END_TEST

static Suite *writer_suite(void)
{
    Suite *s = suite_create("st_writer");
    TCase *tc = tcase_create("layout");
    tcase_add_test(tc, st_layout_should_match_a_hand_written_header);
    tcase_add_test(tc, st_layout_should_sort_by_dtype_descending_then_name_bytewise);
    tcase_add_test(tc, st_layout_should_escape_names_as_serde_json_does);
    tcase_add_test(tc, st_layout_should_pad_to_a_multiple_of_8_with_spaces_only);
    tcase_add_test(tc, st_layout_should_write_an_empty_object_for_no_tensors);
    tcase_add_test(tc, st_layout_should_reject_bad_tensors);
    suite_add_tcase(s, tc);
    TCase *wf = tcase_create("write_file");
    tcase_add_test(wf, st_write_file_should_put_metadata_first_and_data_in_file_order);
    tcase_add_test(wf, st_write_file_without_metadata_should_equal_layout_plus_data);
    tcase_add_test(wf, st_write_file_should_reject_bad_metadata_and_unwritable_paths);
    suite_add_tcase(s, wf);
    return s;
}


int main(void)
{
    if (test_tmpdir_create(g_dir, sizeof g_dir, "stw") != 0)
        return 1;
    SRunner *sr = srunner_create(writer_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    test_tmpdir_remove(g_dir);
    return failures ? 1 : 0;
}
