/* tokens.c: JSON Lines token-id reader (see tokens.h). */
#define _POSIX_C_SOURCE 200809L
#include "trtconv/calib/tokens.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "trtconv/core/fsutil.h"
#include "trtconv/core/jsonutil.h"
#include "trtconv/core/log.h"
#include "trtconv/calib/tokenizer.h"

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

/* Tokenizer for text lines, loaded at the first one. */
typedef struct text_ctx {
    const char *tokenizer_dir;
    tc_tokenizer *tok;
} text_ctx;

/* ids of a "text"/"article" line: the Python tool's text handling, the
 * model's tokenizer, truncation to max_len (tokenizer.h). */
static tc_status tokenize_line(const char *path, long lineno, const cJSON *text, int64_t max_len,
                               text_ctx *ctx, int32_t **ids, size_t *n)
{
    if (!cJSON_IsString(text))
        return tc_fail(TC_E_INPUT, "%s:%ld: \"text\"/\"article\" must be a string", path, lineno);
    if (!ctx || !ctx->tokenizer_dir)
        return tc_fail(TC_E_INPUT,
                       "%s:%ld: the line holds text but no \"input_ids\", and this reader has no "
                       "tokenizer; make ids with trtconv-tokenize --tokenizer_dir MODEL_DIR",
                       path, lineno);
    if (!ctx->tok) {
        tc_status st = tc_tokenizer_load(ctx->tokenizer_dir, TC_TOKENIZER_AUTO, &ctx->tok);
        if (st != TC_OK)
            return tc_fail(st, "%s:%ld: text lines need the model's tokenizer, which did not load "
                           "(see above; --tokenizer_dir names another directory)", path, lineno);
        tc_log(TC_LOG_VERBOSE, "tokenizer: %s", tc_tokenizer_describe(ctx->tok));
    }
    char *s = NULL, what[64];
    size_t len = 0;
    snprintf(what, sizeof what, "line %ld", lineno);
    tc_status st = tc_calib_text(text->valuestring, strlen(text->valuestring), &s, &len);
    if (st == TC_OK)
        st = tc_tokenizer_encode(ctx->tok, s, len, true, max_len, what, ids, n);
    free(s);
    if (st != TC_OK)
        return tc_fail(st, "%s:%ld: tokenizing the text failed", path, lineno);
    if (*n == 0)
        return tc_fail(TC_E_INPUT, "%s:%ld: the text gives no tokens", path, lineno);
    return TC_OK;
}

/* Append ids of one parsed line. */
static tc_status take_line(const char *path, long lineno, const cJSON *obj, int64_t max_len,
                           int64_t vocab, text_ctx *ctx, tc_token_set *t, size_t *cap_ids,
                           size_t *cap_seqs)
{
    if (!cJSON_IsObject(obj))
        return tc_fail(TC_E_INPUT, "%s:%ld: a line must hold a JSON object", path, lineno);
    const char *dup = tc_json_find_duplicate_key(obj);
    if (dup)
        return tc_fail(TC_E_INPUT, "%s:%ld: key \"%s\" occurs twice", path, lineno, dup);
    const cJSON *ids = tc_json_get(obj, "input_ids");
    int32_t *text_ids = NULL;
    size_t n_text = 0;
    if (!ids) {
        const cJSON *text = tc_json_get(obj, "text");
        if (!text)
            text = tc_json_get(obj, "article");
        if (!text)
            return tc_fail(TC_E_INPUT, "%s:%ld: no \"input_ids\" array and no \"text\" or "
                           "\"article\" string", path, lineno);
        TC_TRY(tokenize_line(path, lineno, text, max_len, ctx, &text_ids, &n_text));
    } else if (!cJSON_IsArray(ids)) {
        return tc_fail(TC_E_INPUT, "%s:%ld: \"input_ids\" must be an array", path, lineno);
    }
    int64_t n = ids ? cJSON_GetArraySize(ids) : (int64_t)n_text;
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
        if (!p) {
            free(text_ids);
            return tc_fail(TC_E_INTERNAL, "%s: out of memory for %zu token ids", path, cap);
        }
        t->ids = p;
        *cap_ids = cap;
    }
    if (t->n_seqs + 2 > *cap_seqs) {
        size_t cap = *cap_seqs * 2;
        int64_t *p = realloc(t->offsets, cap * sizeof *p);
        if (!p) {
            free(text_ids);
            return tc_fail(TC_E_INTERNAL, "%s: out of memory", path);
        }
        t->offsets = p;
        *cap_seqs = cap;
    }
    if (!ids) {
        for (int64_t k = 0; k < n; k++) {
            if (text_ids[k] >= vocab) {
                int32_t bad = text_ids[k];
                free(text_ids);
                return tc_fail(TC_E_INPUT, "%s:%ld: the tokenizer gave id %d, outside the model's "
                               "vocab_size %lld (tokenizer of another model?)", path, lineno, bad,
                               (long long)vocab);
            }
            t->ids[base + (size_t)k] = text_ids[k];
        }
        free(text_ids);
        t->n_seqs++;
        t->offsets[t->n_seqs] = (int64_t)base + n;
        return TC_OK;
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

/* Read one line (with its newline, if any) into *buf, never holding more
 * than max + 1 bytes: a longer line stops the read at once (*len = max + 1)
 * instead of being read whole first. Returns TC_OK with *len == 0 at end of
 * file; a read error or an allocation failure is an error, never taken for
 * the end of the file. */
static tc_status read_line_bounded(FILE *f, const char *path, long lineno, size_t max,
                                   char **buf, size_t *cap, size_t *len)
{
    *len = 0;
    for (;;) {
        if (*len + 2 > *cap) {
            size_t want = *cap ? *cap * 2 : 4096;
            if (want > max + 2)
                want = max + 2;
            if (want <= *cap)
                return TC_OK; /* *len == max + 1: the caller reports the line as too long */
            char *p = realloc(*buf, want);
            if (!p)
                return tc_fail(TC_E_INTERNAL, "%s:%ld: out of memory reading a line of %zu "
                               "bytes or more", path, lineno, *len);
            *buf = p;
            *cap = want;
        }
        int c = getc_unlocked(f); /* one reader per stream */
        if (c == EOF) {
            if (ferror(f))
                return tc_fail(TC_E_IO, "reading %s at line %ld: %s", path, lineno,
                               strerror(errno ? errno : EIO));
            (*buf)[*len] = '\0';
            return TC_OK;
        }
        (*buf)[(*len)++] = (char)c;
        if (c == '\n' || *len > max) {
            (*buf)[*len] = '\0';
            return TC_OK;
        }
    }
}

tc_status tc_tokens_load_stream(FILE *f, const char *path, int64_t max_samples, int64_t max_len,
                                int64_t vocab, tc_token_set *out)
{
    return tc_tokens_load_text_stream(f, path, max_samples, max_len, vocab, NULL, out);
}

tc_status tc_tokens_load_text_stream(FILE *f, const char *path, int64_t max_samples,
                                     int64_t max_len, int64_t vocab, const char *tokenizer_dir,
                                     tc_token_set *out)
{
    text_ctx ctx = {tokenizer_dir, NULL};
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
        size_t len = 0;
        st = read_line_bounded(f, path, lineno + 1, TC_TOKENS_MAX_LINE, &line, &line_cap, &len);
        if (st != TC_OK || len == 0)
            break;
        lineno++;
        if (len > TC_TOKENS_MAX_LINE) {
            st = tc_fail(TC_E_INPUT, "%s:%ld: line longer than the limit of %u bytes", path,
                         lineno, TC_TOKENS_MAX_LINE);
            break;
        }
        if (blank(line, (size_t)len))
            continue;
        cJSON *obj = tc_json_parse(path, line, (size_t)len);
        if (!obj) {
            st = tc_fail(TC_E_INPUT, "%s:%ld: not valid JSON", path, lineno);
            break;
        }
        st = take_line(path, lineno, obj, max_len, vocab, &ctx, out, &cap_ids, &cap_seqs);
        cJSON_Delete(obj);
    }
    free(line);
    tc_tokenizer_free(ctx.tok);
    if (st == TC_OK && out->n_seqs == 0)
        st = tc_fail(TC_E_INPUT, "%s: no token sequences (empty file)", path);
    if (st != TC_OK)
        tc_tokens_free(out);
    return st;
}

tc_status tc_tokens_load_text_jsonl(const char *path, int64_t max_samples, int64_t max_len,
                                    int64_t vocab, const char *tokenizer_dir, tc_token_set *out)
{
    memset(out, 0, sizeof *out);
    int fd = -1;
    tc_status st0 = tc_open_input(path, "calibration file", &fd);
    if (st0 != TC_OK)
        return st0 == TC_E_IO ? TC_E_INPUT : st0; /* a calibration file that cannot be opened
                                                    is an input error, as before */
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return tc_fail(TC_E_IO, "calibration file %s: %s", path, strerror(errno));
    }
    tc_status st = tc_tokens_load_text_stream(f, path, max_samples, max_len, vocab, tokenizer_dir,
                                              out);
    fclose(f);
    return st;
}

tc_status tc_tokens_load_jsonl(const char *path, int64_t max_samples, int64_t max_len,
                               int64_t vocab, tc_token_set *out)
{
    return tc_tokens_load_text_jsonl(path, max_samples, max_len, vocab, NULL, out);
}

int64_t tc_tokens_longest(const tc_token_set *t, size_t s0, size_t s1)
{
    int64_t longest = 0;
    for (size_t s = s0; s < s1; s++)
        if (t->offsets[s + 1] - t->offsets[s] > longest)
            longest = t->offsets[s + 1] - t->offsets[s];
    return longest;
}
