/* verify_internal.h: the parts of `trtconv verify` (verify.c) in other
 * files of src/output/. Not installed. */
#ifndef TRTCONV_VERIFY_INTERNAL_H
#define TRTCONV_VERIFY_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

struct cJSON;
/* verify_hf.c: the shards, index and tensors of an --output_format hf
 * directory whose config.json digest the caller has checked. Prints one
 * FAIL line per problem; returns their number and adds the intact shards
 * to *files_ok and their bytes to *bytes. */
int tc_verify_hf(const char *dir, const struct cJSON *config, const struct cJSON *manifest,
                 bool hash, int64_t *files_ok, uint64_t *bytes);

#endif
