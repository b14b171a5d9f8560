/* tok_pretok.c: tokenizer.json normalizers and pre-tokenizers (see
 * tokenizer.h), following the tokenizers library (normalizer.rs split and
 * replace, pre_tokenizers/{split,byte_level,metaspace,digits}.rs).
 *
 * Regexes: tokenizers compiles them with Oniguruma; trtconv with PCRE2 in
 * UTF + UCP mode, which agree on the constructs LLaMA-family files use
 * (\p{L}, \p{N}, (?i:...), look-ahead). One difference is mended when the
 * pattern is compiled: Oniguruma's \s also matches U+0085 (NEL), PCRE2's
 * does not, so \s becomes [\s\x{85}] (and \S [^\s\x{85}] outside classes). */
#define _POSIX_C_SOURCE 200809L
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "tok_internal.h"
#include "trtconv/core/jsonutil.h"
#include "trtconv/core/log.h"
#include "trtconv/calib/tokenizer.h"

typedef enum step_kind {
    STEP_SEQUENCE,
    STEP_PREPEND,
    STEP_REPLACE,
    STEP_STRIP,
    STEP_SPLIT,
    STEP_BYTELEVEL,
    STEP_METASPACE,
    STEP_DIGITS
} step_kind;

typedef enum split_behavior {
    SPLIT_REMOVED,
    SPLIT_ISOLATED,
    SPLIT_MERGED_PREV,
    SPLIT_MERGED_NEXT,
    SPLIT_CONTIGUOUS
} split_behavior;

enum { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER };

/* A literal or a compiled regex. */
typedef struct tok_pattern {
    char *lit;
    size_t lit_len;
    pcre2_code *re;
} tok_pattern;

struct tok_step {
    step_kind kind;
    const char *name;
    tok_step **child;
    size_t n_child;
    char *text;             /* Prepend/Replace content, Metaspace replacement */
    size_t text_len;
    tok_pattern pat;        /* Replace, Split, ByteLevel (GPT-2 regex), Digits */
    split_behavior behavior;
    bool invert;
    bool add_prefix_space, use_regex;  /* ByteLevel */
    int prepend_scheme;                /* Metaspace */
    bool split;                        /* Metaspace */
    bool strip_left, strip_right;      /* Strip */
    char byte_utf8[256][2];            /* ByteLevel: each byte's character (2 bytes of UTF-8 at most) */
    uint8_t byte_utf8_len[256];
};

/* Text a step inserts or matches must be valid UTF-8: the pieces stay
 * valid UTF-8 then, which PCRE2 (matching without re-checking) relies on. */
static tc_status check_utf8(const char *text, const char *where, const char *what)
{
    if (!tc_utf8_valid(text, strlen(text)))
        return tc_fail(TC_E_INPUT, "%s: %s is not valid UTF-8", where, what);
    return TC_OK;
}

/* ---- Unicode helpers ---- */
size_t tok_utf8_next(const char *s, size_t len, size_t i, uint32_t *cp)
{
    const unsigned char *u = (const unsigned char *)s + i;
    size_t left = len - i;
    if (u[0] < 0x80 || left < 2) {
        *cp = u[0];
        return 1;
    }
    if ((u[0] & 0xe0) == 0xc0) {
        *cp = ((uint32_t)(u[0] & 0x1f) << 6) | (u[1] & 0x3f);
        return 2;
    }
    if ((u[0] & 0xf0) == 0xe0 && left >= 3) {
        *cp = ((uint32_t)(u[0] & 0x0f) << 12) | ((uint32_t)(u[1] & 0x3f) << 6) | (u[2] & 0x3f);
        return 3;
    }
    if (left >= 4) {
        *cp = ((uint32_t)(u[0] & 0x07) << 18) | ((uint32_t)(u[1] & 0x3f) << 12) |
              ((uint32_t)(u[2] & 0x3f) << 6) | (u[3] & 0x3f);
        return 4;
    }
    *cp = u[0];
    return 1;
}

size_t tok_utf8_put(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

bool tok_is_whitespace(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
           c == 0x205f || c == 0x3000;
}

size_t tok_utf8_prev(const char *s, size_t floor, size_t at)
{
    size_t k = at - 1;
    while (k > floor && ((unsigned char)s[k] & 0xc0) == 0x80)
        k--;
    return k;
}

void tok_strip(const char *s, size_t *lo, size_t *hi, bool left, bool right,
               bool (*is_space)(uint32_t))
{
    while (left && *lo < *hi) {
        uint32_t cp;
        size_t l = tok_utf8_next(s, *hi, *lo, &cp);
        if (!is_space(cp))
            break;
        *lo += l;
    }
    while (right && *hi > *lo) {
        size_t k = tok_utf8_prev(s, *lo, *hi);
        uint32_t cp;
        tok_utf8_next(s, *hi, k, &cp);
        if (!is_space(cp))
            break;
        *hi = k;
    }
}

/* ---- arena and piece lists ---- */
tc_status tok_arena_put(tok_arena *a, const char *s, size_t len, size_t *off)
{
    if (a->limit && a->len + len > a->limit) {
        a->exceeded = true;
        return TC_E_INPUT; /* reported by the encoder, which knows the file */
    }
    if (a->len + len > a->cap) {
        size_t cap = a->cap ? a->cap : 4096;
        while (cap < a->len + len)
            cap *= 2;
        char *p = realloc(a->buf, cap);
        if (!p)
            return tc_fail(TC_E_INTERNAL, "out of memory while tokenizing");
        a->buf = p;
        a->cap = cap;
    }
    if (len)
        memcpy(a->buf + a->len, s, len);
    *off = a->len;
    a->len += len;
    return TC_OK;
}

tc_status tok_pieces_push(tok_pieces *p, tok_piece piece)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        tok_piece *v = realloc(p->v, cap * sizeof *v);
        if (!v)
            return tc_fail(TC_E_INTERNAL, "out of memory while tokenizing");
        p->v = v;
        p->cap = cap;
    }
    p->v[p->n++] = piece;
    return TC_OK;
}

void tok_scratch_free(tok_arena *a, tok_pieces *p)
{
    free(a->buf);
    free(p->v);
    memset(a, 0, sizeof *a);
    memset(p, 0, sizeof *p);
}

/* Reserve room for len more bytes (the arena may move: use offsets). */
static tc_status arena_reserve(tok_arena *a, size_t len)
{
    size_t off;
    TC_TRY(tok_arena_put(a, NULL, 0, &off));
    if (a->len + len <= a->cap)
        return TC_OK;
    if (a->limit && a->len + len > a->limit) {
        a->exceeded = true;
        return TC_E_INPUT;
    }
    size_t cap = a->cap;
    while (cap < a->len + len)
        cap *= 2;
    char *p = realloc(a->buf, cap);
    if (!p)
        return tc_fail(TC_E_INTERNAL, "out of memory while tokenizing");
    a->buf = p;
    a->cap = cap;
    return TC_OK;
}

/* ---- patterns ---- */
/* Oniguruma -> PCRE2: \s also matches U+0085 (see the file comment). */
static char *translate_regex(const char *pat)
{
    size_t n = strlen(pat);
    char *out = malloc(n * 12 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    bool in_class = false;
    for (size_t i = 0; i < n; i++) {
        char c = pat[i];
        if (c == '\\' && i + 1 < n) {
            char e = pat[++i];
            if (e == 's') {
                const char *r = in_class ? "\\s\\x{85}" : "[\\s\\x{85}]";
                memcpy(out + o, r, strlen(r));
                o += strlen(r);
            } else if (e == 'S' && !in_class) {
                memcpy(out + o, "[^\\s\\x{85}]", 11);
                o += 11;
            } else {
                out[o++] = c;
                out[o++] = e;
            }
            continue;
        }
        if (!in_class && c == '[') {
            in_class = true;
            out[o++] = c;
            if (i + 1 < n && pat[i + 1] == '^')
                out[o++] = pat[++i];
            if (i + 1 < n && pat[i + 1] == ']') /* a leading ] is literal */
                out[o++] = pat[++i];
            continue;
        }
        if (in_class && c == ']')
            in_class = false;
        out[o++] = c;
    }
    out[o] = '\0';
    return out;
}

static tc_status pattern_regex(tok_pattern *p, const char *regex, const char *where)
{
    char *pcre = translate_regex(regex);
    if (!pcre)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    int err;
    PCRE2_SIZE erroff;
    p->re = pcre2_compile((PCRE2_SPTR)pcre, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err,
                          &erroff, NULL);
    free(pcre);
    if (!p->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return tc_fail(TC_E_INPUT, "%s: regex \"%s\" does not compile (PCRE2: %s at offset %zu)",
                       where, regex, (const char *)msg, (size_t)erroff);
    }
    (void)pcre2_jit_compile(p->re, PCRE2_JIT_COMPLETE); /* interpreter if JIT is unavailable */
    return TC_OK;
}

/* {"String": s} or {"Regex": r} */
static tc_status pattern_parse(tok_pattern *p, const cJSON *j, const char *where, const char *what)
{
    const cJSON *s = tc_json_get(j, "String"), *r = tc_json_get(j, "Regex");
    if (cJSON_IsString(s)) {
        TC_TRY(check_utf8(s->valuestring, where, "a pattern string"));
        p->lit_len = strlen(s->valuestring);
        p->lit = strdup(s->valuestring);
        return p->lit ? TC_OK : tc_fail(TC_E_INTERNAL, "out of memory");
    }
    if (cJSON_IsString(r))
        return pattern_regex(p, r->valuestring, where);
    return tc_fail(TC_E_INPUT, "%s: %s pattern must be {\"String\": ...} or {\"Regex\": ...}", where,
                   what);
}

typedef struct seg {
    size_t s, e;
    bool m;
} seg;

typedef struct segs {
    seg *v;
    size_t n, cap;
} segs;

static tc_status segs_push(segs *g, size_t s, size_t e, bool m)
{
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 32;
        seg *v = realloc(g->v, cap * sizeof *v);
        if (!v)
            return tc_fail(TC_E_INTERNAL, "out of memory while tokenizing");
        g->v = v;
        g->cap = cap;
    }
    g->v[g->n++] = (seg){s, e, m};
    return TC_OK;
}

/* Matches of p in s, with the gaps between them, covering s (tokenizers'
 * Pattern::find_matches). md: match data for p->re (NULL for literals). */
static tc_status find_matches(const tok_pattern *p, const char *s, size_t len,
                              pcre2_match_data *md, segs *out)
{
    out->n = 0;
    if (len == 0)
        return segs_push(out, 0, 0, false);
    size_t prev = 0;
    if (p->re) {
        size_t at = 0;
        while (at <= len) {
            int rc = pcre2_match(p->re, (PCRE2_SPTR)s, len, at, PCRE2_NO_UTF_CHECK, md, NULL);
            if (rc == PCRE2_ERROR_NOMATCH)
                break;
            if (rc < 0) {
                PCRE2_UCHAR msg[256];
                pcre2_get_error_message(rc, msg, sizeof msg);
                return tc_fail(TC_E_INPUT, "tokenizer regex failed: %s", (const char *)msg);
            }
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            size_t ms = ov[0], me = ov[1];
            if (me == ms) { /* empty match: no split, step one character */
                if (ms >= len)
                    break;
                uint32_t cp;
                at = ms + tok_utf8_next(s, len, ms, &cp);
                continue;
            }
            if (prev != ms)
                TC_TRY(segs_push(out, prev, ms, false));
            TC_TRY(segs_push(out, ms, me, true));
            prev = me;
            at = me;
        }
    } else if (p->lit_len > 0) {
        for (size_t i = 0; i + p->lit_len <= len;) {
            if (memcmp(s + i, p->lit, p->lit_len) == 0) {
                if (prev != i)
                    TC_TRY(segs_push(out, prev, i, false));
                TC_TRY(segs_push(out, i, i + p->lit_len, true));
                i += p->lit_len;
                prev = i;
            } else {
                i++;
            }
        }
    }
    if (prev != len)
        TC_TRY(segs_push(out, prev, len, false));
    return TC_OK;
}

/* tokenizers' NormalizedString::split behaviours; afterwards every seg with
 * m == true is to be removed, empty ones too. */
static void apply_behavior(segs *g, split_behavior b, bool invert)
{
    if (invert)
        for (size_t i = 0; i < g->n; i++)
            g->v[i].m = !g->v[i].m;
    size_t o = 0;
    bool prev_match = false;
    switch (b) {
    case SPLIT_REMOVED:
        return;
    case SPLIT_ISOLATED:
        for (size_t i = 0; i < g->n; i++)
            g->v[i].m = false;
        return;
    case SPLIT_CONTIGUOUS:
        for (size_t i = 0; i < g->n; i++) {
            bool m = g->v[i].m;
            if (m == prev_match && o > 0)
                g->v[o - 1].e = g->v[i].e;
            else
                g->v[o++] = (seg){g->v[i].s, g->v[i].e, false};
            prev_match = m;
        }
        break;
    case SPLIT_MERGED_PREV:
        for (size_t i = 0; i < g->n; i++) {
            bool m = g->v[i].m;
            if (m && !prev_match && o > 0)
                g->v[o - 1].e = g->v[i].e;
            else
                g->v[o++] = (seg){g->v[i].s, g->v[i].e, false};
            prev_match = m;
        }
        break;
    case SPLIT_MERGED_NEXT: {
        /* Right to left, then the kept entries are in reverse order. */
        size_t n = g->n;
        for (size_t k = 0; k < n; k++) {
            size_t i = n - 1 - k;
            bool m = g->v[i].m;
            seg cur = g->v[i];
            if (m && !prev_match && o > 0)
                g->v[n - o].s = cur.s;
            else {
                o++;
                g->v[n - o] = (seg){cur.s, cur.e, false};
            }
            prev_match = m;
        }
        memmove(g->v, g->v + (n - o), o * sizeof *g->v);
        break;
    }
    }
    g->n = o;
}

/* bytes_to_unicode of GPT-2: printable bytes map to themselves, the others
 * to U+0100 + n in byte order. */
static uint32_t byte_char(unsigned b)
{
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174))
        return b;
    unsigned n = 0;
    for (unsigned x = 0; x < b; x++)
        if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174)))
            n++;
    return 256 + n;
}

/* ---- parsing ---- */
static tc_status step_new(step_kind k, const char *name, tok_step **out)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    (*out)->kind = k;
    (*out)->name = name;
    return TC_OK;
}

void tok_step_free(tok_step *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_child; i++)
        tok_step_free(s->child[i]);
    free(s->child);
    free(s->text);
    free(s->pat.lit);
    pcre2_code_free(s->pat.re);
    free(s);
}

const char *tok_step_name(const tok_step *s)
{
    return s ? s->name : "none";
}

static bool json_bool(const cJSON *obj, const char *key, bool dflt)
{
    const cJSON *v = tc_json_get(obj, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

/* The "type" of a normalizer or pre-tokenizer object; *type is NULL (and
 * the status TC_OK) when there is none (absent or JSON null). */
static tc_status step_type(const cJSON *j, const char *where, const char *what, const char **type)
{
    *type = NULL;
    if (!j || cJSON_IsNull(j))
        return TC_OK;
    const cJSON *t = tc_json_get(j, "type");
    if (!cJSON_IsString(t))
        return tc_fail(TC_E_INPUT, "%s: %s without a \"type\"", where, what);
    *type = t->valuestring;
    return TC_OK;
}

static tc_status set_text(tok_step *s, const char *text)
{
    s->text_len = strlen(text);
    s->text = strdup(text);
    return s->text ? TC_OK : tc_fail(TC_E_INTERNAL, "out of memory");
}

typedef tc_status (*step_parser)(const cJSON *, const char *, tok_step **);

static tc_status parse_sequence(const cJSON *arr, const char *where, step_parser parse,
                                tok_step **out)
{
    if (!cJSON_IsArray(arr))
        return tc_fail(TC_E_INPUT, "%s: Sequence needs an array", where);
    TC_TRY(step_new(STEP_SEQUENCE, "Sequence", out));
    size_t n = (size_t)cJSON_GetArraySize(arr);
    (*out)->child = calloc(n ? n : 1, sizeof *(*out)->child);
    if (!(*out)->child)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    for (const cJSON *c = arr->child; c; c = c->next) {
        tok_step *s = NULL;
        tc_status st = parse(c, where, &s);
        if (st != TC_OK) {
            tok_step_free(s); /* a child that failed half-built */
            return st;
        }
        if (s)
            (*out)->child[(*out)->n_child++] = s;
    }
    return TC_OK;
}

static tc_status parse_normalizer(const cJSON *j, const char *where, tok_step **out)
{
    const char *type;
    *out = NULL;
    TC_TRY(step_type(j, where, "normalizer", &type));
    if (!type)
        return TC_OK;
    tc_status st = TC_OK;
    if (strcmp(type, "Sequence") == 0) {
        st = parse_sequence(tc_json_get(j, "normalizers"), where, parse_normalizer, out);
    } else if (strcmp(type, "Prepend") == 0) {
        const cJSON *p = tc_json_get(j, "prepend");
        if (!cJSON_IsString(p))
            return tc_fail(TC_E_INPUT, "%s: Prepend normalizer needs a \"prepend\" string", where);
        TC_TRY(check_utf8(p->valuestring, where, "Prepend text"));
        TC_TRY(step_new(STEP_PREPEND, "Prepend", out));
        st = set_text(*out, p->valuestring);
    } else if (strcmp(type, "Replace") == 0) {
        const cJSON *c = tc_json_get(j, "content");
        if (!cJSON_IsString(c))
            return tc_fail(TC_E_INPUT, "%s: Replace normalizer needs a \"content\" string", where);
        TC_TRY(check_utf8(c->valuestring, where, "Replace content"));
        TC_TRY(step_new(STEP_REPLACE, "Replace", out));
        st = set_text(*out, c->valuestring);
        if (st == TC_OK)
            st = pattern_parse(&(*out)->pat, tc_json_get(j, "pattern"), where, "Replace");
    } else if (strcmp(type, "Strip") == 0) {
        TC_TRY(step_new(STEP_STRIP, "Strip", out));
        (*out)->strip_left = json_bool(j, "strip_left", true);
        (*out)->strip_right = json_bool(j, "strip_right", true);
    } else {
        return tc_fail(TC_E_INPUT,
                       "%s: normalizer type \"%s\" is not supported (trtconv supports Sequence, "
                       "Prepend, Replace and Strip)", where, type);
    }
    return st;
}

static tc_status parse_pretokenizer(const cJSON *j, const char *where, tok_step **out)
{
    const char *type;
    *out = NULL;
    TC_TRY(step_type(j, where, "pre_tokenizer", &type));
    if (!type)
        return TC_OK;
    if (strcmp(type, "Sequence") == 0)
        return parse_sequence(tc_json_get(j, "pretokenizers"), where, parse_pretokenizer, out);
    if (strcmp(type, "Split") == 0) {
        static const char *const names[] = {"Removed", "Isolated", "MergedWithPrevious",
                                            "MergedWithNext", "Contiguous"};
        const cJSON *b = tc_json_get(j, "behavior");
        int behavior = -1;
        for (int i = 0; i < 5 && cJSON_IsString(b); i++)
            if (strcmp(b->valuestring, names[i]) == 0)
                behavior = i;
        if (behavior < 0)
            return tc_fail(TC_E_INPUT, "%s: Split pre-tokenizer has no known \"behavior\"", where);
        TC_TRY(step_new(STEP_SPLIT, "Split", out));
        (*out)->behavior = (split_behavior)behavior;
        (*out)->invert = json_bool(j, "invert", false);
        return pattern_parse(&(*out)->pat, tc_json_get(j, "pattern"), where, "Split");
    }
    if (strcmp(type, "ByteLevel") == 0) {
        TC_TRY(step_new(STEP_BYTELEVEL, "ByteLevel", out));
        for (unsigned b = 0; b < 256; b++) {
            char tmp[4];
            (*out)->byte_utf8_len[b] = (uint8_t)tok_utf8_put(byte_char(b), tmp);
            memcpy((*out)->byte_utf8[b], tmp, 2); /* byte_char(b) < U+0800: at most 2 bytes */
        }
        (*out)->add_prefix_space = json_bool(j, "add_prefix_space", true);
        (*out)->use_regex = json_bool(j, "use_regex", true);
        if ((*out)->use_regex)
            return pattern_regex(&(*out)->pat,
                                 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+"
                                 "|\\s+(?!\\S)|\\s+", where);
        return TC_OK;
    }
    if (strcmp(type, "Metaspace") == 0) {
        const cJSON *r = tc_json_get(j, "replacement"), *ps = tc_json_get(j, "prepend_scheme");
        if (!cJSON_IsString(r) || !r->valuestring[0])
            return tc_fail(TC_E_INPUT, "%s: Metaspace needs a \"replacement\" character", where);
        TC_TRY(check_utf8(r->valuestring, where, "Metaspace replacement"));
        TC_TRY(step_new(STEP_METASPACE, "Metaspace", out));
        TC_TRY(set_text(*out, r->valuestring));
        /* Files of tokenizers < 0.19 carry add_prefix_space instead and
         * always split. */
        (*out)->split = json_bool(j, "split", true);
        if (cJSON_IsString(ps)) {
            if (strcmp(ps->valuestring, "always") == 0)
                (*out)->prepend_scheme = PREPEND_ALWAYS;
            else if (strcmp(ps->valuestring, "first") == 0)
                (*out)->prepend_scheme = PREPEND_FIRST;
            else if (strcmp(ps->valuestring, "never") == 0)
                (*out)->prepend_scheme = PREPEND_NEVER;
            else
                return tc_fail(TC_E_INPUT, "%s: Metaspace prepend_scheme \"%s\" unknown", where,
                               ps->valuestring);
        } else {
            (*out)->prepend_scheme =
                json_bool(j, "add_prefix_space", true) ? PREPEND_ALWAYS : PREPEND_NEVER;
        }
        return TC_OK;
    }
    if (strcmp(type, "Digits") == 0) {
        TC_TRY(step_new(STEP_DIGITS, "Digits", out));
        (*out)->behavior = json_bool(j, "individual_digits", false) ? SPLIT_ISOLATED
                                                                     : SPLIT_CONTIGUOUS;
        return pattern_regex(&(*out)->pat, "\\p{N}", where);
    }
    return tc_fail(TC_E_INPUT,
                   "%s: pre_tokenizer type \"%s\" is not supported (trtconv supports Sequence, "
                   "Split, ByteLevel, Metaspace and Digits)", where, type);
}

tc_status tok_normalizer_parse(const cJSON *j, const char *where, tok_step **out)
{
    tc_status st = parse_normalizer(j, where, out);
    if (st != TC_OK) {
        tok_step_free(*out);
        *out = NULL;
    }
    return st;
}

tc_status tok_pretokenizer_parse(const cJSON *j, const char *where, tok_step **out)
{
    tc_status st = parse_pretokenizer(j, where, out);
    if (st != TC_OK) {
        tok_step_free(*out);
        *out = NULL;
    }
    return st;
}

tc_status tok_metaspace_new(const char *prepend_scheme, tok_step **out)
{
    TC_TRY(step_new(STEP_METASPACE, "Metaspace", out));
    (*out)->split = false;
    (*out)->prepend_scheme = strcmp(prepend_scheme, "first") == 0   ? PREPEND_FIRST
                             : strcmp(prepend_scheme, "never") == 0 ? PREPEND_NEVER
                                                                    : PREPEND_ALWAYS;
    tc_status st = set_text(*out, "\xe2\x96\x81");
    if (st != TC_OK) {
        tok_step_free(*out);
        *out = NULL;
    }
    return st;
}

/* ---- normalizing ---- */
/* Replace every match of pat in the piece by `with` (a new arena string). */
static tc_status replace_all(const tok_pattern *pat, const char *with, size_t with_len,
                             tok_arena *a, tok_piece *pc)
{
    pcre2_match_data *md = pat->re ? pcre2_match_data_create_from_pattern(pat->re, NULL) : NULL;
    if (pat->re && !md)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    segs g = {0};
    tc_status st = find_matches(pat, a->buf + pc->off, pc->len, md, &g);
    size_t grow = 0;
    for (size_t i = 0; i < g.n && st == TC_OK; i++)
        grow += g.v[i].m ? with_len : g.v[i].e - g.v[i].s;
    if (st == TC_OK)
        st = arena_reserve(a, grow);
    if (st == TC_OK) {
        size_t start = a->len, src = pc->off;
        for (size_t i = 0; i < g.n; i++) {
            const char *from = g.v[i].m ? with : a->buf + src + g.v[i].s;
            size_t n = g.v[i].m ? with_len : g.v[i].e - g.v[i].s;
            memcpy(a->buf + a->len, from, n);
            a->len += n;
        }
        pc->off = start;
        pc->len = a->len - start;
    }
    free(g.v);
    pcre2_match_data_free(md);
    return st;
}

static tc_status prepend_text(const char *text, size_t n, tok_arena *a, tok_piece *pc)
{
    TC_TRY(arena_reserve(a, n + pc->len));
    size_t start = a->len;
    memcpy(a->buf + a->len, text, n);
    memcpy(a->buf + a->len + n, a->buf + pc->off, pc->len);
    a->len += n + pc->len;
    pc->off = start;
    pc->len += n;
    return TC_OK;
}

tc_status tok_normalize(const tok_step *s, tok_arena *a, tok_piece *pc)
{
    if (!s)
        return TC_OK;
    switch (s->kind) {
    case STEP_SEQUENCE:
        for (size_t i = 0; i < s->n_child; i++)
            TC_TRY(tok_normalize(s->child[i], a, pc));
        return TC_OK;
    case STEP_PREPEND:
        return pc->len ? prepend_text(s->text, s->text_len, a, pc) : TC_OK;
    case STEP_REPLACE:
        return replace_all(&s->pat, s->text, s->text_len, a, pc);
    case STEP_STRIP: {
        size_t lo = 0, hi = pc->len;
        tok_strip(a->buf + pc->off, &lo, &hi, s->strip_left, s->strip_right, tok_is_whitespace);
        pc->off += lo;
        pc->len = hi - lo;
        return TC_OK;
    }
    default:
        return tc_fail(TC_E_INTERNAL, "%s used as a normalizer", s->name);
    }
}

/* ---- pre-tokenizing ---- */
static tc_status split_piece(const tok_pattern *pat, split_behavior b, bool invert,
                             pcre2_match_data *md, const tok_arena *a, const tok_piece *pc,
                             segs *g, tok_pieces *out)
{
    TC_TRY(find_matches(pat, a->buf + pc->off, pc->len, md, g));
    apply_behavior(g, b, invert);
    for (size_t i = 0; i < g->n; i++) {
        if (g->v[i].m || g->v[i].e == g->v[i].s)
            continue;
        TC_TRY(tok_pieces_push(out, (tok_piece){pc->off + g->v[i].s, g->v[i].e - g->v[i].s, -1,
                                                pc->at_start && g->v[i].s == 0}));
    }
    return TC_OK;
}

static tc_status pretok_one(const tok_step *s, tok_arena *a, const tok_piece *pc, segs *g,
                            pcre2_match_data *md, tok_pieces *out)
{
    switch (s->kind) {
    case STEP_SPLIT:
    case STEP_DIGITS:
        return split_piece(&s->pat, s->behavior, s->invert, md, a, pc, g, out);
    case STEP_METASPACE: {
        tok_piece p = *pc;
        char space_char[] = " ";
        const tok_pattern space = {space_char, 1, NULL};
        TC_TRY(replace_all(&space, s->text, s->text_len, a, &p));
        bool starts = p.len >= s->text_len && memcmp(a->buf + p.off, s->text, s->text_len) == 0;
        if (!starts && (s->prepend_scheme == PREPEND_ALWAYS ||
                        (s->prepend_scheme == PREPEND_FIRST && p.at_start)))
            TC_TRY(prepend_text(s->text, s->text_len, a, &p));
        if (!s->split)
            return p.len ? tok_pieces_push(out, p) : TC_OK;
        tok_pattern rep = {s->text, s->text_len, NULL};
        return split_piece(&rep, SPLIT_MERGED_NEXT, false, NULL, a, &p, g, out);
    }
    case STEP_BYTELEVEL: {
        tok_piece p = *pc;
        if (s->add_prefix_space && (p.len == 0 || a->buf[p.off] != ' '))
            TC_TRY(prepend_text(" ", 1, a, &p));
        tok_pieces tmp = {0};
        tc_status st = s->use_regex ? split_piece(&s->pat, SPLIT_ISOLATED, false, md, a, &p, g, &tmp)
                                    : tok_pieces_push(&tmp, p);
        for (size_t i = 0; i < tmp.n && st == TC_OK; i++) {
            tok_piece q = tmp.v[i];
            st = arena_reserve(a, q.len * 2);
            if (st != TC_OK)
                break;
            size_t start = a->len;
            for (size_t k = 0; k < q.len; k++) {
                unsigned char b = (unsigned char)a->buf[q.off + k];
                memcpy(a->buf + a->len, s->byte_utf8[b], s->byte_utf8_len[b]);
                a->len += s->byte_utf8_len[b];
            }
            q.off = start;
            q.len = a->len - start;
            st = tok_pieces_push(out, q);
        }
        free(tmp.v);
        return st;
    }
    default:
        return tc_fail(TC_E_INTERNAL, "%s used as a pre-tokenizer", s->name);
    }
}

static tc_status pretokenize_into(const tok_step *s, tok_arena *a, const tok_pieces *in,
                                  tok_pieces *out)
{
    if (s->kind == STEP_SEQUENCE) {
        tok_pieces cur = {0}, next = {0};
        tc_status st = TC_OK;
        for (size_t i = 0; i < in->n && st == TC_OK; i++)
            st = tok_pieces_push(&cur, in->v[i]);
        for (size_t c = 0; c < s->n_child && st == TC_OK; c++) {
            next.n = 0;
            st = pretokenize_into(s->child[c], a, &cur, &next);
            tok_pieces t = cur;
            cur = next;
            next = t;
        }
        for (size_t i = 0; i < cur.n && st == TC_OK; i++)
            st = tok_pieces_push(out, cur.v[i]);
        free(cur.v);
        free(next.v);
        return st;
    }
    pcre2_match_data *md = s->pat.re ? pcre2_match_data_create_from_pattern(s->pat.re, NULL) : NULL;
    if (s->pat.re && !md)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    segs g = {0};
    tc_status st = TC_OK;
    for (size_t i = 0; i < in->n && st == TC_OK; i++) {
        if (in->v[i].id >= 0)
            st = tok_pieces_push(out, in->v[i]);
        else
            st = pretok_one(s, a, &in->v[i], &g, md, out);
    }
    free(g.v);
    pcre2_match_data_free(md);
    return st;
}

tc_status tok_pretokenize(const tok_step *s, tok_arena *a, const tok_pieces *in, tok_pieces *out)
{
    out->n = 0;
    if (!s) {
        for (size_t i = 0; i < in->n; i++)
            TC_TRY(tok_pieces_push(out, in->v[i]));
        return TC_OK;
    }
    return pretokenize_into(s, a, in, out);
}
