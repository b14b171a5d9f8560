/* tokens.c: JSON Lines token-id reader (see tokens.h). */
#define _POSIX_C_SOURCE 200809L
#include "trtconv/tokens.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "trtconv/jsonutil.h"
#include "trtconv/log.h"

void tc_tokens_free(tc_token_set *t)
{
    free(t->offsets);
    free(t->ids);
    memset(t, 0, sizeof *t);
}

static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return false;
    return true;
}

/* Append ids of one parsed line. */
static tc_status take_line(const char *path, long lineno, const cJSON *obj, int64_t max_len,
                           int64_t vocab, tc_token_set *t, size_t *cap_ids, size_t *cap_seqs)
{
    if (!cJSON_IsObject(obj))
        return tc_fail(TC_E_INPUT, "%s:%ld: a line must hold a JSON object", path, lineno);
    const char *dup = tc_json_find_duplicate_key(obj);
    if (dup)
        return tc_fail(TC_E_INPUT, "%s:%ld: key \"%s\" occurs twice", path, lineno, dup);
    const cJSON *ids = tc_json_get(obj, "input_ids");
    if (!ids) {
        if (tc_json_get(obj, "text") || tc_json_get(obj, "article"))
            return tc_fail(TC_E_INPUT,
                           "%s:%ld: the line holds text but no \"input_ids\"; trtconv cannot "
                           "tokenize yet. Pre-tokenize with the model's tokenizer, e.g. in Python: "
                           "json.dumps({\"input_ids\": tok(text)[\"input_ids\"]}) per line",
                           path, lineno);
        return tc_fail(TC_E_INPUT, "%s:%ld: no \"input_ids\" array", path, lineno);
    }
    if (!cJSON_IsArray(ids))
        return tc_fail(TC_E_INPUT, "%s:%ld: \"input_ids\" must be an array", path, lineno);
    int64_t n = cJSON_GetArraySize(ids);
    if (n == 0)
        return tc_fail(TC_E_INPUT, "%s:%ld: \"input_ids\" is empty", path, lineno);
    if (n > max_len)
        n = max_len;
    size_t base = (size_t)t->offsets[t->n_seqs];
    if (base + (size_t)n > *cap_ids) {
        size_t cap = *cap_ids ? *cap_ids : 4096;
        while (cap < base + (size_t)n)
            cap *= 2;
        int32_t *p = realloc(t->ids, cap * sizeof *p);
        if (!p)
            return tc_fail(TC_E_INTERNAL, "%s: out of memory for %zu token ids", path, cap);
        t->ids = p;
        *cap_ids = cap;
    }
    if (t->n_seqs + 2 > *cap_seqs) {
        size_t cap = *cap_seqs * 2;
        int64_t *p = realloc(t->offsets, cap * sizeof *p);
        if (!p)
            return tc_fail(TC_E_INTERNAL, "%s: out of memory", path);
        t->offsets = p;
        *cap_seqs = cap;
    }
    int64_t k = 0;
    for (const cJSON *v = ids->child; v && k < n; v = v->next, k++) {
        int64_t id;
        if (!tc_json_int(v, 0, vocab - 1, &id))
            return tc_fail(TC_E_INPUT,
                           "%s:%ld: input_ids[%lld] is not an integer token id in [0, %lld) "
                           "(vocab_size of the model)",
                           path, lineno, (long long)k, (long long)vocab);
        t->ids[base + (size_t)k] = (int32_t)id;
    }
    t->n_seqs++;
    t->offsets[t->n_seqs] = (int64_t)base + n;
    return TC_OK;
}

tc_status tc_tokens_load_stream(FILE *f, const char *path, int64_t max_samples, int64_t max_len,
                                int64_t vocab, tc_token_set *out)
{
    memset(out, 0, sizeof *out);
    if (max_samples <= 0 || max_len <= 0 || vocab <= 0 || vocab > INT32_MAX)
        return tc_fail(TC_E_USAGE, "token file %s: bad limits", path);
    size_t cap_seqs = 64, cap_ids = 0;
    out->offsets = calloc(cap_seqs, sizeof *out->offsets);
    tc_status st = out->offsets ? TC_OK : tc_fail(TC_E_INTERNAL, "out of memory");
    char *line = NULL;
    size_t line_cap = 0;
    long lineno = 0;
    while (st == TC_OK && (int64_t)out->n_seqs < max_samples) {
        errno = 0;
        ssize_t len = getline(&line, &line_cap, f);
        if (len < 0) {
            if (ferror(f))
                st = tc_fail(TC_E_IO, "reading %s: %s", path, strerror(errno));
            break;
        }
        lineno++;
        if ((size_t)len > TC_TOKENS_MAX_LINE) {
            st = tc_fail(TC_E_INPUT, "%s:%ld: line of %zd bytes exceeds the limit of %u bytes",
                         path, lineno, len, TC_TOKENS_MAX_LINE);
            break;
        }
        if (blank(line, (size_t)len))
            continue;
        cJSON *obj = tc_json_parse(line, (size_t)len);
        if (!obj) {
            st = tc_fail(TC_E_INPUT, "%s:%ld: not valid JSON", path, lineno);
            break;
        }
        st = take_line(path, lineno, obj, max_len, vocab, out, &cap_ids, &cap_seqs);
        cJSON_Delete(obj);
    }
    free(line);
    if (st == TC_OK && out->n_seqs == 0)
        st = tc_fail(TC_E_INPUT, "%s: no token sequences (empty file)", path);
    if (st != TC_OK)
        tc_tokens_free(out);
    return st;
}

tc_status tc_tokens_load_jsonl(const char *path, int64_t max_samples, int64_t max_len,
                               int64_t vocab, tc_token_set *out)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f)
        return tc_fail(TC_E_INPUT, "cannot open token file %s: %s", path, strerror(errno));
    tc_status st = tc_tokens_load_stream(f, path, max_samples, max_len, vocab, out);
    fclose(f);
    return st;
}

int64_t tc_tokens_longest(const tc_token_set *t, size_t s0, size_t s1)
{
    int64_t longest = 0;
    for (size_t s = s0; s < s1; s++)
        if (t->offsets[s + 1] - t->offsets[s] > longest)
            longest = t->offsets[s + 1] - t->offsets[s];
    return longest;
}
