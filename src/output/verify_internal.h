/* verify_internal.h: the parts of `trtconv verify` (verify.c) in other
 * files of src/output/. Not installed. */
#ifndef TRTCONV_VERIFY_INTERNAL_H
#define TRTCONV_VERIFY_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

struct cJSON;
/* verify.c: one problem, printed as "FAIL: ..." and counted. */
void tc_verify_problem(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int tc_verify_problems(void);

/* verify_hf.c: the shards, index and tensors of an --output_format hf
 * directory whose config.json digest the caller has checked; each problem
 * through tc_verify_problem. Adds the intact shards to *files_ok and their
 * bytes to *bytes. */
void tc_verify_hf(const char *dir, const struct cJSON *config, const struct cJSON *manifest,
                  bool hash, int64_t *files_ok, uint64_t *bytes);

#endif
