/* verify_internal.h: the parts of `trtconv verify` (verify.c) in other
 * files of src/output/. Not installed. */
#ifndef TRTCONV_VERIFY_INTERNAL_H
#define TRTCONV_VERIFY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "trtconv/core/dtype.h"
#include "trtconv/plan/rope.h"

struct cJSON;
/* verify.c: one problem, printed as "FAIL: ..." and counted. */
void tc_verify_problem(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int tc_verify_problems(void);

/* verify_expect.c: the tensors a format implies, as each check lists them
 * (verify.c per rank file, verify_hf.c per checkpoint). The list grows as
 * needed and owns its array (tc_verify_expect_free). */
typedef struct tc_verify_expected {
    char name[160];
    tc_dtype dtype;
    int ndim;
    int64_t shape[3];
    bool optional;              /* absence is not a problem */
    bool seen;                  /* found in a file */
    tc_rope_buffer rope;        /* verify.c: values checked against rope.h */
    char file[48];              /* verify_hf.c: where the index puts it ("" until found) */
} tc_verify_expected;

typedef struct tc_verify_expect_list {
    tc_verify_expected *v;
    size_t n, cap;
    bool out_of_memory;         /* an entry could not be added: the list is incomplete */
} tc_verify_expect_list;

/* Append a required entry of dtype dt and shape [d0, d1] (ndim of them
 * used; shape[2] 0) named by fmt; the entry, or NULL with out_of_memory
 * set. */
tc_verify_expected *tc_verify_expect(tc_verify_expect_list *l, tc_dtype dt, int ndim, int64_t d0,
                                     int64_t d1, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* The entry named `name`, or NULL. */
tc_verify_expected *tc_verify_expect_find(tc_verify_expect_list *l, const char *name);
void tc_verify_expect_free(tc_verify_expect_list *l);

/* verify_hf.c: the shards, index and tensors of an --output_format hf
 * directory whose config.json digest the caller has checked; each problem
 * through tc_verify_problem. Adds the intact shards to *files_ok and their
 * bytes to *bytes. */
void tc_verify_hf(const char *dir, const struct cJSON *config, const struct cJSON *manifest,
                  bool hash, int64_t *files_ok, uint64_t *bytes);

#endif
