/* jsonutil.h: strict accessors over cJSON for untrusted files.
 *
 * cJSON keeps duplicate keys, matches names case-insensitively in
 * cJSON_GetObjectItem, saturates valueint at INT_MAX and accepts "1e3" and
 * "-5" as numbers (safetensors.md §6). These helpers close those gaps. */
#ifndef TRTCONV_JSONUTIL_H
#define TRTCONV_JSONUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cJSON;

/* Parse exactly len bytes (need not be NUL-terminated) as one JSON value
 * with nothing but whitespace after it. Returns NULL on any error; the
 * result belongs to the caller (cJSON_Delete). A string or key holding a
 * NUL (the escape \u0000, which cJSON would decode into a NUL that cuts
 * the C string) is an error too, reported with tc_fail naming label (the
 * file; NULL for none). */
struct cJSON *tc_json_parse(const char *label, const char *text, size_t len);

/* Child of object `obj` whose key equals `key` byte for byte; NULL if absent
 * or obj is not an object. */
struct cJSON *tc_json_get(const struct cJSON *obj, const char *key);

/* If some key of object obj occurs twice, return that key (borrowed), else
 * NULL. Not recursive. */
const char *tc_json_find_duplicate_key(const struct cJSON *obj);

/* A JSON number that is integral and within [lo, hi] (|hi|, |lo| <= 2^53).
 * Returns false otherwise (including non-numbers). */
bool tc_json_int(const struct cJSON *v, int64_t lo, int64_t hi, int64_t *out);

/* Scan JSON text (len bytes) for a number token written with '.', 'e', 'E'
 * or a leading '-', outside strings. Returns true if one is found and stores
 * its byte position in *pos. Used where only non-negative integers are legal
 * (safetensors headers), since cJSON hides the lexeme. */
bool tc_json_has_non_uint_number(const char *text, size_t len, size_t *pos);

#endif
