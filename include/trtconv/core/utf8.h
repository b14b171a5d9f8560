/* utf8.h: UTF-8 validation as Rust's str::from_utf8 does it (shortest forms
 * only, no surrogates, nothing above U+10FFFF), shared by the safetensors
 * header reader and the tokenizer. */
#ifndef TRTCONV_UTF8_H
#define TRTCONV_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* True when s[0..len) is valid UTF-8; otherwise false and, when bad is not
 * NULL, *bad = the offset of the first bad sequence. */
bool tc_utf8_check(const char *s, size_t len, size_t *bad);
/* tc_utf8_check without the offset. */
bool tc_utf8_valid(const char *s, size_t len);

#endif
