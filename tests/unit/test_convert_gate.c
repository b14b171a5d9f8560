/* test_convert_gate.c: what the overlapped calibration (app/calib_overlap.c)
 * relies on below the MPI level:
 *  - a rank file whose 64 MiB chunks are written last to first (as layers
 *    finish out of file order) is hashed to the same sha256-tree digest as
 *    the file read back (rankfile.c's hashing threads take any complete
 *    chunk);
 *  - conversion workers wait for a gated tensor's layer, write it once the
 *    gate opens, and stop (TC_E_CANCELLED, nothing hangs) when the gate is
 *    cancelled;
 *  - the write queue SmoothQuant writes its layers through
 *    (output/write_queue.c) puts every byte where it was sent with fewer
 *    buffers than writes, and a failed write surfaces at the next acquire
 *    and at drain instead of being lost. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "test_tmpdir.h"
#include "trtconv/convert/convert.h"
#include "trtconv/core/log.h"
#include "trtconv/core/sha256.h"
#include "trtconv/output/manifest.h"
#include "trtconv/output/rankfile.h"
#include "trtconv/output/write_queue.h"
#include "trtconv/plan/plan.h"

static char g_dir[512];

static tc_plan *new_plan(int rank)
{
    tc_plan *p = calloc(1, sizeof *p);
    ck_assert_ptr_nonnull(p);
    p->rank = rank;
    return p;
}

START_TEST(hash_should_not_depend_on_the_order_chunks_are_written)
{
    /* One F32 tensor of 2.5 chunks. */
    const int64_t n = (int64_t)(TC_SHA256_TREE_CHUNK / 4) * 5 / 2;
    tc_plan *p = new_plan(0);
    ck_assert_int_eq(tc_plan_add_computed(p, "t", TC_DT_F32, 1, n, 0), TC_OK);
    tc_cell_output out;
    ck_assert_int_eq(tc_cell_open(g_dir, p, &out), TC_OK);
    const uint64_t base = out.offsets[0], bytes = (uint64_t)n * 4;
    uint8_t *buf = malloc(bytes);
    ck_assert_ptr_nonnull(buf);
    for (uint64_t i = 0; i < bytes; i++)
        buf[i] = (uint8_t)(i * 2654435761u >> 13);
    /* The header first (tc_cell_open wrote it), then the data from the end. */
    uint64_t end = bytes;
    while (end > 0) {
        const uint64_t file_end = base + end;
        uint64_t start = (file_end - 1) / TC_SHA256_TREE_CHUNK * TC_SHA256_TREE_CHUNK;
        start = start < base ? 0 : start - base;
        ck_assert_int_eq(tc_cell_write(&out, buf + start, (size_t)(end - start), base + start),
                         TC_OK);
        end = start;
    }
    ck_assert_int_eq(tc_cell_commit(&out), TC_OK);
    char path[600], want[TC_SHA256_HEX];
    snprintf(path, sizeof path, "%s/rank0.safetensors", g_dir);
    ck_assert_int_eq(tc_sha256_tree_file(path, 2, want, NULL), TC_OK);
    ck_assert_str_eq(out.sha256, want);
    free(buf);
    tc_plan_free(p);
}
END_TEST

/* A plan of one constant tensor gated on layer 3. */
static tc_plan *gated_plan(int rank, float value)
{
    tc_plan *p = new_plan(rank);
    ck_assert_int_eq(tc_plan_add_constant(p, "transformer.layers.3.x", 4, 0, &value, 1), TC_OK);
    p->tensors[0].gated = true;
    p->tensors[0].gate_layer = 3;
    return p;
}

/* Open plan p's cell, a gate of 8 layers, and start 2 workers on it. */
typedef struct gated_run {
    tc_cell_output out;
    tc_convert_gate *gate;
    tc_progress prog;
    tc_convert_job *job;
} gated_run;

static void gated_start(tc_plan *p, gated_run *r)
{
    ck_assert_int_eq(tc_cell_open(g_dir, p, &r->out), TC_OK);
    ck_assert_int_eq(tc_convert_gate_create(8, &r->gate), TC_OK);
    atomic_init(&r->prog.done_bytes, 0);
    atomic_init(&r->prog.cancel, 0);
    ck_assert_int_eq(tc_convert_start(&r->out, 1, 2, NULL, &r->prog, r->gate, &r->job), TC_OK);
}

static bool wait_done(tc_convert_job *job, double seconds)
{
    struct timespec ts = { 0, 10 * 1000 * 1000 };
    for (double t = 0; t < seconds; t += 0.01) {
        if (tc_convert_done(job))
            return true;
        nanosleep(&ts, NULL);
    }
    return tc_convert_done(job);
}

START_TEST(workers_should_wait_for_the_gate_and_write_once_it_opens)
{
    tc_plan *p = gated_plan(1, 0.0f);
    gated_run r;
    gated_start(p, &r);
    ck_assert(!wait_done(r.job, 0.3));      /* layer 3 is closed: nothing written */
    ck_assert_uint_eq(atomic_load(&r.prog.done_bytes), 0);
    tc_convert_gate_open(r.gate, 2);
    ck_assert(!wait_done(r.job, 0.2));      /* another layer: still waiting */
    p->tensors[0].constant_values[0] = 2.5f; /* the value is final before the gate opens */
    tc_convert_gate_open(r.gate, 3);
    ck_assert(wait_done(r.job, 10.0));
    ck_assert_int_eq(tc_convert_join(r.job), TC_OK);
    ck_assert_int_eq(tc_cell_commit(&r.out), TC_OK);
    char path[600];
    snprintf(path, sizeof path, "%s/rank1.safetensors", g_dir);
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, -16, SEEK_END), 0);
    float v[4];
    ck_assert_uint_eq(fread(v, sizeof v[0], 4, f), 4);
    fclose(f);
    for (int i = 0; i < 4; i++)
        ck_assert(v[i] == 2.5f);
    tc_convert_gate_free(r.gate);
    tc_plan_free(p);
}
END_TEST

START_TEST(cancelling_the_gate_should_stop_waiting_workers)
{
    tc_plan *p = gated_plan(2, 1.0f);
    gated_run r;
    gated_start(p, &r);
    ck_assert(!wait_done(r.job, 0.2));
    tc_convert_gate_cancel(r.gate);
    ck_assert(wait_done(r.job, 10.0));
    ck_assert_int_eq(tc_convert_join(r.job), TC_E_CANCELLED);
    tc_cell_discard(&r.out);
    tc_convert_gate_free(r.gate);
    tc_plan_free(p);
}
END_TEST


START_TEST(write_queue_should_write_every_piece_in_place)
{
    /* One U8 tensor of 1 MiB + 3 written as 37 pieces through 2 buffers of
     * 29 KiB, from the end backwards. */
    const int64_t n = (1 << 20) + 3;
    tc_plan *p = new_plan(0);
    ck_assert_int_eq(tc_plan_add_computed(p, "t", TC_DT_U8, 1, n, 0), TC_OK);
    tc_cell_output out;
    ck_assert_int_eq(tc_cell_open(g_dir, p, &out), TC_OK);
    uint8_t *want = malloc((size_t)n);
    ck_assert_ptr_nonnull(want);
    for (int64_t i = 0; i < n; i++)
        want[i] = (uint8_t)(i * 2654435761u >> 11);
    tc_write_queue *q;
    const size_t piece = 29 << 10;
    ck_assert_int_eq(tc_wq_create(2, piece, 2, NULL, &q), TC_OK);
    int64_t end = n;
    while (end > 0) {
        const int64_t start = end > (int64_t)piece ? end - (int64_t)piece : 0;
        void *buf;
        ck_assert_int_eq(tc_wq_acquire(q, &buf), TC_OK);
        memcpy(buf, want + start, (size_t)(end - start));
        ck_assert_int_eq(tc_wq_submit(q, &out, buf, (size_t)(end - start), out.offsets[0] + (uint64_t)start),
                         TC_OK);
        end = start;
    }
    ck_assert_int_eq(tc_wq_drain(q), TC_OK);
    tc_wq_free(q);
    const long data_at = (long)out.offsets[0]; /* the commit frees offsets */
    ck_assert_int_eq(tc_cell_commit(&out), TC_OK);
    char path[600];
    snprintf(path, sizeof path, "%s/rank0.safetensors", g_dir);
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    uint8_t *got = malloc((size_t)n);
    ck_assert_int_eq(fseek(f, data_at, SEEK_SET), 0);
    ck_assert_uint_eq(fread(got, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    ck_assert_int_eq(memcmp(got, want, (size_t)n), 0);
    free(got);
    free(want);
    tc_plan_free(p);
}
END_TEST

START_TEST(write_queue_should_report_a_failed_write)
{
    tc_plan *p = new_plan(0);
    ck_assert_int_eq(tc_plan_add_computed(p, "t", TC_DT_U8, 1, 100, 0), TC_OK);
    tc_cell_output out;
    ck_assert_int_eq(tc_cell_open(g_dir, p, &out), TC_OK);
    tc_write_queue *q;
    ck_assert_int_eq(tc_wq_create(1, 64, 1, NULL, &q), TC_OK);
    void *buf;
    ck_assert_int_eq(tc_wq_acquire(q, &buf), TC_OK);
    /* Past the planned size: tc_cell_write refuses it on the queue's thread. */
    ck_assert_int_eq(tc_wq_submit(q, &out, buf, 64, out.file_size), TC_OK);
    ck_assert_int_ne(tc_wq_drain(q), TC_OK);
    ck_assert_int_ne(tc_wq_acquire(q, &buf), TC_OK);
    ck_assert_ptr_null(buf);
    tc_wq_free(q);
    tc_cell_discard(&out);
    tc_plan_free(p);
}
END_TEST

int main(void)
{
    tc_log_init(0, 1, NULL);
    tc_log_set_quiet(1);
    if (test_tmpdir_create(g_dir, sizeof g_dir, "gate") != 0)
        return 1;
    Suite *s = suite_create("convert_gate");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, hash_should_not_depend_on_the_order_chunks_are_written);
    tcase_add_test(tc, workers_should_wait_for_the_gate_and_write_once_it_opens);
    tcase_add_test(tc, cancelling_the_gate_should_stop_waiting_workers);
    tcase_add_test(tc, write_queue_should_write_every_piece_in_place);
    tcase_add_test(tc, write_queue_should_report_a_failed_write);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    test_tmpdir_remove(g_dir);
    return failed ? 1 : 0;
}
