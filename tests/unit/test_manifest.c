/* test_manifest.c: SHA-256 (sha256.h) against FIPS 180-4 vectors and across
 * its two block functions, and the rank records of manifest.h read as
 * hostile input: every malformed record is a reason to rewrite, never an
 * accepted file. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_tmpdir.h"
#include "trtconv/core/log.h"
#include "trtconv/output/manifest.h"
#include "trtconv/output/rankfile.h"
#include "trtconv/core/sha256.h"
#include "trtconv/formats/st_writer.h"

static char g_dir[512];

static void hex_of(const void *data, size_t n, bool scalar, char hex[TC_SHA256_HEX])
{
    tc_sha256 h = { .scalar_only = scalar };
    tc_sha256_init(&h);
    tc_sha256_update(&h, data, n);
    uint8_t d[TC_SHA256_BYTES];
    tc_sha256_final(&h, d);
    tc_sha256_hex(d, hex);
}

START_TEST(sha256_should_match_the_fips_vectors)
{
    static const struct { const char *msg; const char *hex; } v[] = {
        { "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
        { "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
        { "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
        { "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopq"
          "klmnopqrlmnopqrsmnopqrstnopqrstu",
          "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1" },
    };
    for (int scalar = 0; scalar < 2; scalar++) {
        for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
            char hex[TC_SHA256_HEX];
            hex_of(v[i].msg, strlen(v[i].msg), scalar, hex);
            ck_assert_str_eq(hex, v[i].hex);
        }
        /* One million 'a', fed in uneven pieces. */
        char *a = malloc(1000000);
        memset(a, 'a', 1000000);
        tc_sha256 h = { .scalar_only = scalar };
        tc_sha256_init(&h);
        for (size_t off = 0, step = 1; off < 1000000; off += step, step = step * 7 % 1001 + 1)
            tc_sha256_update(&h, a + off, off + step > 1000000 ? 1000000 - off : step);
        uint8_t d[TC_SHA256_BYTES];
        char hex[TC_SHA256_HEX];
        tc_sha256_final(&h, d);
        tc_sha256_hex(d, hex);
        ck_assert_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
        free(a);
    }
}
END_TEST

START_TEST(sha256_block_functions_should_agree_at_every_length)
{
    /* Lengths around the 55/56/64-byte padding edges and multi-block runs;
     * the hardware path (when the CPU has it) against the portable one. */
    uint8_t buf[4096];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof buf; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
    for (size_t n = 0; n <= sizeof buf; n += n < 200 ? 1 : 61) {
        char a[TC_SHA256_HEX], b[TC_SHA256_HEX];
        hex_of(buf, n, false, a);
        hex_of(buf, n, true, b);
        ck_assert_msg(strcmp(a, b) == 0, "length %zu: %s vs %s", n, a, b);
    }
}
END_TEST

static void write_text(const char *name, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* A real one-tensor rank file for rank 0, and its entry. */
static void make_rank0(tc_rank_entry *e)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/rank0.safetensors", g_dir);
    static const uint16_t data[4] = { 1, 2, 3, 4 };
    tc_st_out_tensor t = { .name = "x", .dtype = TC_DT_F16, .ndim = 1, .shape = { 4 } };
    const void *ptr = data;
    ck_assert_int_eq(tc_st_write_file(path, &t, &ptr, 1, NULL), TC_OK);
    uint64_t size = 0;
    memset(e, 0, sizeof *e);
    ck_assert_int_eq(tc_sha256_tree_file(path, 2, e->sha256, &size), TC_OK);
    e->rank = 0;
    snprintf(e->file, sizeof e->file, "rank0.safetensors");
    e->size = size;
    e->tensors = 1;
}

START_TEST(record_should_round_trip_and_reject_each_mismatch)
{
    const char *run = "1111111111111111111111111111111111111111111111111111111111111111";
    tc_rank_entry e, got;
    char why[256];
    make_rank0(&e);
    ck_assert_int_eq(tc_rank_record_write(g_dir, run, &e), TC_OK);
    ck_assert(tc_rank_reusable(g_dir, run, 0, "rank0.safetensors", 1, &got, why, sizeof why));
    ck_assert_str_eq(got.sha256, e.sha256);
    ck_assert_uint_eq(got.size, e.size);

    const char *other = "2222222222222222222222222222222222222222222222222222222222222222";
    ck_assert(!tc_rank_reusable(g_dir, other, 0, "rank0.safetensors", 1, &got, why, sizeof why));
    ck_assert_ptr_nonnull(strstr(why, "other inputs or options"));
    ck_assert(!tc_rank_reusable(g_dir, run, 0, "rank0.safetensors", 2, &got, why, sizeof why));
    ck_assert_ptr_nonnull(strstr(why, "tensors"));
    ck_assert(!tc_rank_reusable(g_dir, run, 1, "rank1.safetensors", 1, &got, why, sizeof why));
    ck_assert_ptr_nonnull(strstr(why, "no record"));

    /* Hostile records: each is a reason, not an error, and not accepted. */
    char size[32], sha63[64];
    snprintf(size, sizeof size, "%llu", (unsigned long long)e.size);
    snprintf(sha63, sizeof sha63, "%.63s", e.sha256);
    const struct { const char *format, *version, *file, *rank, *size, *sha; } bad[] = {
        { "trtconv-rank-record", "2", "rank0.safetensors", "0", size, e.sha256 },
        { "other", "1", "rank0.safetensors", "0", size, e.sha256 },
        { "trtconv-rank-record", "1", "../rank0.safetensors", "0", size, e.sha256 },
        { "trtconv-rank-record", "1", "rank1.safetensors", "0", size, e.sha256 },
        { "trtconv-rank-record", "1", "model-00000-of-00001.safetensors", "0", size, e.sha256 },
        { "trtconv-rank-record", "1", "model-00002-of-00002.safetensors", "0", size, e.sha256 },
        { "trtconv-rank-record", "1", "model-00001-of-00001.safetensors/../x", "0", size, e.sha256 },
        { "trtconv-rank-record", "1", "rank0.safetensors", "-1", size, e.sha256 },
        { "trtconv-rank-record", "1", "rank0.safetensors", "0", size, sha63 },
        { "trtconv-rank-record", "1", "rank0.safetensors", "0", "1e3", e.sha256 },
        { "trtconv-rank-record", "1", "rank0.safetensors", "0", "-5", e.sha256 },
        { "trtconv-rank-record", "1", "rank0.safetensors", "0", "\"12\"", e.sha256 },
        { "trtconv-rank-record", "1", "rank0.safetensors", "0", "99999999999999999999", e.sha256 },
    };
    write_text(".trtconv-rank0.json", "");
    ck_assert(!tc_rank_reusable(g_dir, run, 0, "rank0.safetensors", 1, &got, why, sizeof why));
    write_text(".trtconv-rank0.json", "not json");
    ck_assert(!tc_rank_reusable(g_dir, run, 0, "rank0.safetensors", 1, &got, why, sizeof why));
    /* Control: the template with every field right is accepted. */
    {
        char text[1024];
        snprintf(text, sizeof text, "{\"format\":\"trtconv-rank-record\",\"version\":1,"
                 "\"run\":\"%s\",\"rank\":0,\"file\":\"rank0.safetensors\",\"size\":%s,"
                 "\"sha256_tree\":\"%s\",\"tensors\":1}", run, size, e.sha256);
        write_text(".trtconv-rank0.json", text);
        ck_assert_msg(tc_rank_reusable(g_dir, run, 0, "rank0.safetensors", 1, &got, why, sizeof why), "%s", why);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[1024];
        snprintf(text, sizeof text, "{\"format\":\"%s\",\"version\":%s,\"run\":\"%s\","
                 "\"rank\":%s,\"file\":\"%s\",\"size\":%s,\"sha256_tree\":\"%s\",\"tensors\":1}",
                 bad[i].format, bad[i].version, run, bad[i].rank, bad[i].file, bad[i].size,
                 bad[i].sha);
        write_text(".trtconv-rank0.json", text);
        ck_assert_msg(!tc_rank_reusable(g_dir, run, 0, "rank0.safetensors", 1, &got, why, sizeof why),
                      "bad record %zu accepted", i);
    }
    /* An uppercase digest is not the form trtconv writes. */
    char upper[TC_SHA256_HEX];
    for (int i = 0; i < 65; i++)
        upper[i] = (char)(e.sha256[i] >= 'a' && e.sha256[i] <= 'f' ? e.sha256[i] - 32 : e.sha256[i]);
    tc_rank_entry u = e;
    memcpy(u.sha256, upper, sizeof upper);
    ck_assert_int_eq(tc_rank_record_write(g_dir, run, &u), TC_OK);
    ck_assert(!tc_rank_reusable(g_dir, run, 0, "rank0.safetensors", 1, &got, why, sizeof why));

    /* The data changed after the record: the hash says so. */
    ck_assert_int_eq(tc_rank_record_write(g_dir, run, &e), TC_OK);
    char path[1024];
    snprintf(path, sizeof path, "%s/rank0.safetensors", g_dir);
    FILE *f = fopen(path, "r+b");
    fseek(f, -1, SEEK_END);
    fputc(0x7f, f);
    fclose(f);
    ck_assert(!tc_rank_reusable(g_dir, run, 0, "rank0.safetensors", 1, &got, why, sizeof why));
    ck_assert_ptr_nonnull(strstr(why, "SHA-256 digest"));
}
END_TEST

START_TEST(cell_file_names_should_round_trip_and_reject_lookalikes)
{
    char name[64];
    long cells = 0;
    tc_cell_file_name(TC_CELLS_RANK_FILES, 12, 16, name, sizeof name);
    ck_assert_str_eq(name, "rank12.safetensors");
    ck_assert_int_eq(tc_cell_file_index(name, &cells), 12);
    ck_assert_int_eq(cells, -1);
    tc_cell_file_name(TC_CELLS_HF_SHARDS, 2, 7, name, sizeof name);
    ck_assert_str_eq(name, "model-00003-of-00007.safetensors");
    ck_assert_int_eq(tc_cell_file_index(name, &cells), 2);
    ck_assert_int_eq(cells, 7);
    static const char *const bad[] = {
        "model-00000-of-00001.safetensors",   /* shards count from 1 */
        "model-00003-of-00002.safetensors",   /* beyond the count */
        "model-0001-of-00002.safetensors",    /* five digits */
        "model-000001-of-00002.safetensors",
        "model-00001-of-00002.safetensors.partial",
        "model-00001-of-00002.bin",
        "rank.safetensors", "rank-1.safetensors", "rank1x.safetensors", "../rank1.safetensors",
        "rank1234567890.safetensors",         /* too long a number */
        "model.safetensors",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(tc_cell_file_index(bad[i], &cells) == -1, "%s accepted", bad[i]);
}
END_TEST

START_TEST(tree_digest_should_hash_64mib_chunks_then_their_digests)
{
    /* 150 MiB + 3 bytes: chunks of 64, 64 and 22 MiB + 3. */
    const size_t n = (150u << 20) + 3;
    uint8_t *data = malloc(n);
    ck_assert_ptr_nonnull(data);
    for (size_t i = 0; i < n; i++)
        data[i] = (uint8_t)(i * 131 + (i >> 20));
    char path[1024];
    snprintf(path, sizeof path, "%s/tree.bin", g_dir);
    FILE *f = fopen(path, "wb");
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    fclose(f);
    uint8_t d[3][TC_SHA256_BYTES];
    for (int c = 0; c < 3; c++) {
        size_t begin = (size_t)c * TC_SHA256_TREE_CHUNK;
        size_t len = n - begin < TC_SHA256_TREE_CHUNK ? n - begin : TC_SHA256_TREE_CHUNK;
        tc_sha256 h = { .scalar_only = false };
        tc_sha256_init(&h);
        tc_sha256_update(&h, data + begin, len);
        tc_sha256_final(&h, d[c]);
    }
    char want[TC_SHA256_HEX], got[TC_SHA256_HEX];
    tc_sha256_hex_of(d, sizeof d, want);
    for (int threads = 1; threads <= 4; threads += 3) {
        uint64_t size = 0;
        ck_assert_int_eq(tc_sha256_tree_file(path, threads, got, &size), TC_OK);
        ck_assert_uint_eq(size, n);
        ck_assert_str_eq(got, want);
    }
    free(data);
    /* An empty file has no chunks: the digest of nothing. */
    snprintf(path, sizeof path, "%s/empty.bin", g_dir);
    fclose(fopen(path, "wb"));
    ck_assert_int_eq(tc_sha256_tree_file(path, 4, got, NULL), TC_OK);
    ck_assert_str_eq(got, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}
END_TEST

START_TEST(run_text_should_hash_its_canonical_lines)
{
    tc_run_text a, b;
    tc_run_text_init(&a);
    tc_run_text_init(&b);
    ck_assert_int_eq(tc_run_param(&a, "tp_size", "%d", 2), TC_OK);
    ck_assert_int_eq(tc_run_input(&a, "input x size=1"), TC_OK);
    tc_run_seal(&a);
    ck_assert_str_eq(a.text, "tp_size 2\ninput x size=1\n");
    char hex[TC_SHA256_HEX];
    tc_sha256_hex_of(a.text, a.len, hex);
    ck_assert_str_eq(a.run, hex);
    ck_assert_int_eq(tc_run_param(&b, "tp_size", "%d", 4), TC_OK);
    ck_assert_int_eq(tc_run_input(&b, "input x size=1"), TC_OK);
    tc_run_seal(&b);
    ck_assert_str_ne(a.run, b.run);
    tc_run_text_free(&a);
    tc_run_text_free(&b);
}
END_TEST

START_TEST(input_fingerprint_should_hash_only_safetensors_headers)
{
    tc_rank_entry e;
    make_rank0(&e);
    char line[TC_INPUT_LINE], full[TC_INPUT_LINE];
    ck_assert_int_eq(tc_input_fingerprint(g_dir, "rank0.safetensors", false, line), TC_OK);
    ck_assert_ptr_nonnull(strstr(line, "header_sha256="));
    ck_assert_int_eq(tc_input_fingerprint(g_dir, "rank0.safetensors", true, full), TC_OK);
    /* Inputs use the plain SHA-256 of the whole file. */
    char path[1024], plain[TC_SHA256_HEX], want[128];
    snprintf(path, sizeof path, "%s/rank0.safetensors", g_dir);
    FILE *f = fopen(path, "rb");
    uint8_t buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    tc_sha256_hex_of(buf, n, plain);
    snprintf(want, sizeof want, "sha256=%s", plain);
    ck_assert_ptr_nonnull(strstr(full, want));
    ck_assert_int_ne(tc_input_fingerprint(g_dir, "missing.json", false, line), TC_OK);
    ck_assert_int_ne(tc_input_fingerprint(g_dir, "bad\nname", false, line), TC_OK);
    /* Spaces are fine (calibration files are named by users). */
    char spaced[1024];
    snprintf(spaced, sizeof spaced, "%s/my calib.jsonl", g_dir);
    FILE *f2 = fopen(spaced, "wb");
    fputs("{\"input_ids\": [1]}\n", f2);
    fclose(f2);
    ck_assert_int_eq(tc_input_fingerprint(g_dir, "my calib.jsonl", false, line), TC_OK);
    ck_assert_ptr_nonnull(strstr(line, "input my calib.jsonl size=19 "));
}
END_TEST

int main(void)
{
    tc_log_init(0, 1, NULL);
    tc_log_set_quiet(1);
    if (test_tmpdir_create(g_dir, sizeof g_dir, "manifest") != 0)
        return 1;
    Suite *s = suite_create("manifest");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, sha256_should_match_the_fips_vectors);
    tcase_add_test(tc, sha256_block_functions_should_agree_at_every_length);
    tcase_add_test(tc, record_should_round_trip_and_reject_each_mismatch);
    tcase_add_test(tc, cell_file_names_should_round_trip_and_reject_lookalikes);
    tcase_add_test(tc, tree_digest_should_hash_64mib_chunks_then_their_digests);
    tcase_add_test(tc, run_text_should_hash_its_canonical_lines);
    tcase_add_test(tc, input_fingerprint_should_hash_only_safetensors_headers);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    test_tmpdir_remove(g_dir);
    return failed ? 1 : 0;
}
