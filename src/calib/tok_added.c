/* tok_added.c: added tokens of a tokenizer (tokenizer.h): parsing them
 * from tokenizer.json and tokenizer_config.json, normalizing, and matching
 * them leftmost-longest through a byte trie before the pre-tokenizer, as the
 * tokenizers library's AddedVocabulary does. */
#define _POSIX_C_SOURCE 200809L
#define PCRE2_CODE_UNIT_WIDTH 8
#include "trtconv/calib/tokenizer.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "tok_internal.h"
#include "trtconv/core/fsutil.h"
#include "trtconv/core/jsonutil.h"
#include "trtconv/core/log.h"

/* ---- added tokens ---- */
tc_status tok_add_token(tc_tokenizer *t, const char *content, int32_t id, bool lstrip,
                           bool rstrip, bool single_word, bool normalized, bool special,
                           const char *where)
{
    size_t len = strlen(content);
    if (len == 0)
        return tc_fail(TC_E_INPUT, "%s: added token %d has empty content", where, id);
    if (len > TC_TOKENIZER_MAX_PIECE)
        return tc_fail(TC_E_INPUT, "%s: added token %d is %zu bytes long, over the limit of %u",
                       where, id, len, TC_TOKENIZER_MAX_PIECE);
    if (!tc_utf8_valid(content, len))
        return tc_fail(TC_E_INPUT, "%s: added token %d is not valid UTF-8", where, id);
    if (id < 0 || id >= (1 << 26))
        return tc_fail(TC_E_INPUT, "%s: added token \"%s\" has id %d outside [0, 2^26)", where,
                       content, id);
    if (!t->added_seen_init) {
        TC_TRY(tok_vocab_init(&t->added_seen, 64));
        t->added_seen_init = true;
    }
    if (tok_vocab_get(&t->added_seen, content, len) >= 0)
        return TC_OK; /* first definition wins */
    TC_TRY(tok_vocab_add(&t->added_seen, content, len, (int32_t)t->n_added, false));
    added_token *v = realloc(t->added, (t->n_added + 1) * sizeof *v);
    if (!v)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    t->added = v;
    char *c = strdup(content);
    if (!c)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    t->added[t->n_added++] = (added_token){c, len, id, lstrip, rstrip, single_word, normalized,
                                           special};
    if (id + 1 > t->id_limit)
        t->id_limit = id + 1;
    return TC_OK;
}

/* tokenizer.json "added_tokens": [{"id", "content", "single_word", "lstrip",
 * "rstrip", "normalized", "special"}] */
tc_status tok_parse_added_tokens(tc_tokenizer *t, const cJSON *arr, const char *where)
{
    if (!arr || cJSON_IsNull(arr))
        return TC_OK;
    if (!cJSON_IsArray(arr))
        return tc_fail(TC_E_INPUT, "%s: \"added_tokens\" must be an array", where);
    for (const cJSON *a = arr->child; a; a = a->next) {
        int64_t id;
        const cJSON *c = tc_json_get(a, "content");
        if (!tc_json_int(tc_json_get(a, "id"), 0, (1 << 26) - 1, &id) || !cJSON_IsString(c))
            return tc_fail(TC_E_INPUT, "%s: an added token needs an integer \"id\" and a "
                           "\"content\" string", where);
        bool special = tok_cfg_bool(a, "special", false, NULL);
        TC_TRY(tok_add_token(t, c->valuestring, (int32_t)id, tok_cfg_bool(a, "lstrip", false, NULL),
                         tok_cfg_bool(a, "rstrip", false, NULL), tok_cfg_bool(a, "single_word", false, NULL),
                         tok_cfg_bool(a, "normalized", !special, NULL), special, where));
    }
    return TC_OK;
}

/* tokenizer_config.json "added_tokens_decoder": {"id": {"content", ...}} */
tc_status tok_parse_added_decoder(tc_tokenizer *t, const cJSON *cfg, const char *where)
{
    const cJSON *dec = tc_json_get(cfg, "added_tokens_decoder");
    if (!dec)
        return TC_OK;
    if (!cJSON_IsObject(dec))
        return tc_fail(TC_E_INPUT, "%s: \"added_tokens_decoder\" must be an object", where);
    for (const cJSON *a = dec->child; a; a = a->next) {
        char *end;
        errno = 0;
        long id = strtol(a->string, &end, 10);
        const char *content = tok_token_text(a);
        if (errno || *end || end == a->string || id < 0 || id >= (1 << 26) || !content)
            return tc_fail(TC_E_INPUT, "%s: added_tokens_decoder entry \"%s\" needs a numeric key "
                           "and a \"content\"", where, a->string);
        bool special = tok_cfg_bool(a, "special", false, NULL);
        TC_TRY(tok_add_token(t, content, (int32_t)id, tok_cfg_bool(a, "lstrip", false, NULL),
                         tok_cfg_bool(a, "rstrip", false, NULL), tok_cfg_bool(a, "single_word", false, NULL),
                         tok_cfg_bool(a, "normalized", !special, NULL), special, where));
    }
    return TC_OK;
}

/* Id of a token by text: added tokens first, then the vocabulary. */
int32_t tok_token_id(const tc_tokenizer *t, const char *text)
{
    size_t len = strlen(text);
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].len == len && memcmp(t->added[i].content, text, len) == 0)
            return t->added[i].id;
    return tok_vocab_get(&t->bpe.vocab, text, len);
}

/* Normalized added tokens are matched in their normalized form. */
tc_status tok_normalize_added(tc_tokenizer *t)
{
    for (size_t i = 0; i < t->n_added; i++) {
        added_token *a = &t->added[i];
        if (!a->normalized || !t->normalizer)
            continue;
        tok_arena ar = {0};
        tok_pieces none = {0};
        tok_piece p = {0, a->len, -1, true};
        tc_status st = tok_arena_put(&ar, a->content, a->len, &p.off);
        if (st == TC_OK)
            st = tok_normalize(t->normalizer, &ar, &p);
        if (st == TC_OK && p.len > 0) {
            char *c = malloc(p.len + 1);
            if (!c)
                st = tc_fail(TC_E_INTERNAL, "out of memory");
            else {
                memcpy(c, ar.buf + p.off, p.len);
                c[p.len] = '\0';
                free(a->content);
                a->content = c;
                a->len = p.len;
            }
        }
        tok_scratch_free(&ar, &none);
        TC_TRY(st);
    }
    return TC_OK;
}

static uint64_t edge_hash(uint64_t key)
{
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdULL;
    key ^= key >> 33;
    return key;
}

static uint64_t edge_key(uint32_t node, unsigned char b)
{
    return ((uint64_t)node << 8 | b) + 1;
}

/* The table slot of key: where it is, or the empty slot where it goes. */
static size_t edge_slot(const tc_tokenizer *t, uint64_t key)
{
    size_t i = edge_hash(key) & (t->edge_cap - 1);
    while (t->edge_key[i] != 0 && t->edge_key[i] != key)
        i = (i + 1) & (t->edge_cap - 1);
    return i;
}

static bool trie_child(const tc_tokenizer *t, uint32_t node, unsigned char b, uint32_t *out)
{
    const uint64_t key = edge_key(node, b);
    const size_t i = edge_slot(t, key);
    if (t->edge_key[i] != key)
        return false;
    *out = t->edge_child[i];
    return true;
}

/* Build the trie of the added tokens (after normalize_added). */
tc_status tok_build_trie(tc_tokenizer *t)
{
    size_t bytes = 1; /* nodes: at most one per byte of the tokens, and the root */
    for (size_t i = 0; i < t->n_added; i++)
        bytes += t->added[i].len;
    t->term = malloc(bytes * sizeof *t->term);
    t->edge_cap = 16;
    while (t->edge_cap < 2 * bytes)
        t->edge_cap *= 2;
    t->edge_key = calloc(t->edge_cap, sizeof *t->edge_key);
    t->edge_child = malloc(t->edge_cap * sizeof *t->edge_child);
    if (!t->term || !t->edge_key || !t->edge_child)
        return tc_fail(TC_E_INTERNAL, "out of memory for %zu bytes of added tokens", bytes);
    t->n_nodes = 1;
    t->term[0][0] = t->term[0][1] = -1;
    for (size_t x = 0; x < t->n_added; x++) {
        const added_token *a = &t->added[x];
        uint32_t node = 0;
        for (size_t k = 0; k < a->len; k++) {
            const uint64_t key = edge_key(node, (unsigned char)a->content[k]);
            const size_t i = edge_slot(t, key);
            if (t->edge_key[i] != key) {
                t->edge_key[i] = key;
                t->edge_child[i] = t->n_nodes;
                t->term[t->n_nodes][0] = t->term[t->n_nodes][1] = -1;
                t->n_nodes++;
            }
            node = t->edge_child[i];
        }
        int32_t *slot = &t->term[node][a->normalized ? 1 : 0];
        if (*slot < 0) /* the first of equal contents wins, as before */
            *slot = (int32_t)x;
    }
    return TC_OK;
}

static bool is_word_char(const tc_tokenizer *t, const char *s, size_t len, size_t at)
{
    uint32_t cp;
    size_t l = tok_utf8_next(s, len, at, &cp);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(t->word_char, NULL);
    if (!md)
        return false;
    int rc = pcre2_match(t->word_char, (PCRE2_SPTR)(s + at), l, 0, PCRE2_NO_UTF_CHECK, md, NULL);
    pcre2_match_data_free(md);
    return rc >= 0;
}

/* AddedVocabulary::find_matches: leftmost-longest matches of the added
 * tokens of one kind (normalized or not) in piece pc; the pieces between
 * them and the matched tokens go to out. */
tc_status tok_split_added(const tc_tokenizer *t, bool normalized, const tok_arena *a,
                             const tok_piece *pc, tok_pieces *out)
{
    const char *s = a->buf + pc->off;
    size_t len = pc->len, start_offset = 0, pos = 0;
    while (pos < len) {
        /* Leftmost match at or after pos, longest there. */
        size_t best_at = len, best_len = 0;
        const added_token *best = NULL;
        for (size_t i = pos; i < len && !best && t->n_nodes > 1; i++) {
            uint32_t node = 0;
            for (size_t k = i; k < len; k++) {
                if (!trie_child(t, node, (unsigned char)s[k], &node))
                    break;
                const int32_t x = t->term[node][normalized ? 1 : 0];
                if (x >= 0) {
                    best = &t->added[x];
                    best_at = i;
                    best_len = k + 1 - i;
                }
            }
        }
        if (!best)
            break;
        size_t start = best_at, stop = best_at + best_len;
        pos = stop;
        if (best->single_word) {
            bool word_before = start > 0 && is_word_char(t, s, len, tok_utf8_prev(s, 0, start));
            bool word_after = stop < len && is_word_char(t, s, len, stop);
            if (word_before || word_after)
                continue;
        }
        if (best->lstrip) {
            size_t lo = 0, hi = start;
            tok_strip(s, &lo, &hi, false, true, tok_is_whitespace);
            start = hi > start_offset ? hi : start_offset;
        }
        if (best->rstrip) {
            size_t lo = stop, hi = len;
            tok_strip(s, &lo, &hi, true, false, tok_is_whitespace);
            stop = lo;
        }
        if (start_offset < start)
            TC_TRY(tok_pieces_push(out, (tok_piece){pc->off + start_offset, start - start_offset, -1,
                                                    pc->at_start && start_offset == 0}));
        TC_TRY(tok_pieces_push(out, (tok_piece){pc->off + start, stop - start, best->id, false}));
        start_offset = stop;
    }
    if (start_offset < len)
        TC_TRY(tok_pieces_push(out, (tok_piece){pc->off + start_offset, len - start_offset, -1,
                                                pc->at_start && start_offset == 0}));
    return TC_OK;
}
