/* jsonutil.c: strict cJSON accessors (see jsonutil.h for why). */
#include "trtconv/core/jsonutil.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "trtconv/core/log.h"

#define TC_JSON_MAX_EXACT 9007199254740992.0 /* 2^53 */

/* Does a string or key of the JSON text hold the escape \u0000? cJSON
 * decodes it into a NUL byte that ends the C string there, so
 * "num_hidden_layers\u0000evil" would read as num_hidden_layers, where
 * Python's json (and so transformers) sees another key. */
static bool has_nul_escape(const char *t, size_t n)
{
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        if (!in_str) {
            in_str = t[i] == '"';
            continue;
        }
        if (t[i] == '"') {
            in_str = false;
        } else if (t[i] == '\\') {
            if (i + 5 < n && t[i + 1] == 'u' && t[i + 2] == '0' && t[i + 3] == '0' &&
                t[i + 4] == '0' && t[i + 5] == '0')
                return true;
            i++; /* the escaped character */
        }
    }
    return false;
}

cJSON *tc_json_parse(const char *label, const char *text, size_t len)
{
    /* The text is not NUL-terminated in files (safetensors headers), and an
     * embedded NUL must not end parsing early: copy and check the length. */
    if (memchr(text, '\0', len) != NULL)
        return NULL;
    if (has_nul_escape(text, len)) {
        tc_fail(TC_E_INPUT, "%s%sa string or key holds a NUL character (\\u0000): refused "
                "(C strings would cut it where Python's json keeps it)", label ? label : "",
                label ? ": " : "");
        return NULL;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return NULL;
    memcpy(copy, text, len);
    copy[len] = '\0';
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(copy, &end, 1);
    free(copy);
    return root;
}

cJSON *tc_json_get(const cJSON *obj, const char *key)
{
    if (!cJSON_IsObject(obj))
        return NULL;
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

const char *tc_json_find_duplicate_key(const cJSON *obj)
{
    if (!cJSON_IsObject(obj))
        return NULL;
    size_t n = 0;
    for (const cJSON *c = obj->child; c; c = c->next)
        n++;
    if (n < 2)
        return NULL;
    const char **keys = malloc(n * sizeof *keys);
    if (!keys)
        return NULL;
    size_t i = 0;
    for (const cJSON *c = obj->child; c; c = c->next)
        keys[i++] = c->string ? c->string : "";
    qsort(keys, n, sizeof *keys, cmp_str_ptr);
    const char *dup = NULL;
    for (i = 1; i < n && !dup; i++)
        if (strcmp(keys[i - 1], keys[i]) == 0)
            dup = keys[i];
    free(keys);
    return dup;
}

bool tc_json_int(const cJSON *v, int64_t lo, int64_t hi, int64_t *out)
{
    if (!cJSON_IsNumber(v))
        return false;
    double d = v->valuedouble;
    if (!isfinite(d) || d != floor(d) || fabs(d) > TC_JSON_MAX_EXACT)
        return false;
    if (d < (double)lo || d > (double)hi)
        return false;
    *out = (int64_t)d;
    return true;
}

bool tc_json_has_non_uint_number(const char *text, size_t len, size_t *pos)
{
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_string) {
            if (c == '\\')
                i++; /* skip the escaped character */
            else if (c == '"')
                in_string = false;
            continue;
        }
        if (c == '"') {
            in_string = true;
        } else if (c == '-') {
            *pos = i;
            return true;
        } else if (c >= '0' && c <= '9') {
            size_t j = i;
            while (j < len && ((text[j] >= '0' && text[j] <= '9') || text[j] == '.' ||
                               text[j] == 'e' || text[j] == 'E' || text[j] == '+' ||
                               text[j] == '-')) {
                if (text[j] == '.' || text[j] == 'e' || text[j] == 'E') {
                    *pos = i;
                    return true;
                }
                j++;
            }
            i = j - 1;
        }
    }
    return false;
}
