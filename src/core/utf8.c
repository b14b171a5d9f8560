/* utf8.c: UTF-8 validation (see utf8.h). */
#include "trtconv/core/utf8.h"

bool tc_utf8_check(const char *str, size_t n, size_t *bad)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t ignored;
    if (!bad)
        bad = &ignored;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c == 0xE0) {
            len = 3;
            lo = 0xA0; /* no overlongs */
        } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
            len = 3;
        } else if (c == 0xED) {
            len = 3;
            hi = 0x9F; /* no surrogates */
        } else if (c == 0xF0) {
            len = 4;
            lo = 0x90; /* no overlongs */
        } else if (c >= 0xF1 && c <= 0xF3) {
            len = 4;
        } else if (c == 0xF4) {
            len = 4;
            hi = 0x8F; /* <= U+10FFFF */
        } else {
            *bad = i;
            return false;
        }
        if (n - i < len || s[i + 1] < lo || s[i + 1] > hi) {
            *bad = i;
            return false;
        }
        for (size_t k = 2; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                *bad = i;
                return false;
            }
        }
        i += len;
    }
    return true;
}

bool tc_utf8_valid(const char *s, size_t len)
{
    return tc_utf8_check(s, len, NULL);
}
