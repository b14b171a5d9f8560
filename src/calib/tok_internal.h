/* tok_internal.h: pieces shared by tokenizer.c (loading, added tokens,
 * post-processing), tok_added.c (added tokens and their trie), tok_bpe.c (vocabulary, merges, BPE, SentencePiece model
 * files) and tok_pretok.c (normalizers and pre-tokenizers). Not installed.
 *
 * During one encode the text lives in a byte arena (tok_arena) and every
 * stage turns a list of pieces (tok_piece: a byte range of the arena, and
 * the added-token id when the piece is one) into the next list, as the
 * tokenizers library's PreTokenizedString does with its splits. */
#ifndef TRTCONV_TOK_INTERNAL_H
#define TRTCONV_TOK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "trtconv/calib/tokenizer.h"
#include "trtconv/core/status.h"
#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>

struct cJSON;

/* ---- per-encode scratch ---- */
typedef struct tok_arena {
    char *buf;
    size_t len, cap;
    size_t limit;     /* most bytes it may hold (0: no limit) */
    bool exceeded;    /* a put went past limit (the caller names the file) */
} tok_arena;

typedef struct tok_piece {
    size_t off, len;  /* bytes in the arena */
    int32_t id;       /* added token id, or -1 for text still to tokenize */
    bool at_start;    /* begins at offset 0 of the original text (Metaspace "first") */
} tok_piece;

typedef struct tok_pieces {
    tok_piece *v;
    size_t n, cap;
} tok_pieces;

tc_status tok_arena_put(tok_arena *a, const char *s, size_t len, size_t *off);
tc_status tok_pieces_push(tok_pieces *p, tok_piece piece);
void tok_scratch_free(tok_arena *a, tok_pieces *p);

/* ---- string -> id table (open addressing; ids are int32) ---- */
typedef struct tok_vocab {
    char **str;       /* id -> string (NUL-terminated copy), NULL for unused ids */
    uint32_t *slen;
    uint32_t n_ids;   /* max id + 1 */
    uint32_t *slots;  /* id + 1, 0 = empty */
    uint32_t cap;     /* power of two */
    uint32_t count;
} tok_vocab;

tc_status tok_vocab_init(tok_vocab *v, uint32_t expected);
/* Adds s -> id; a string seen before keeps its first id unless replace. */
tc_status tok_vocab_add(tok_vocab *v, const char *s, size_t len, int32_t id, bool replace);
int32_t tok_vocab_get(const tok_vocab *v, const char *s, size_t len); /* -1 if absent */
void tok_vocab_free(tok_vocab *v);

/* ---- BPE model ---- */
typedef struct tok_merge_slot {
    uint64_t key;     /* (left << 32) | right; UINT64_MAX = empty */
    uint32_t rank, new_id;
} tok_merge_slot;

typedef struct tok_bpe {
    tok_vocab vocab;
    tok_merge_slot *merges;
    uint32_t merge_cap, n_merges;
    int32_t unk_id;           /* -1: no unk token */
    bool byte_fallback, fuse_unk, ignore_merges;
    int32_t byte_ids[256];    /* "<0xXX>" ids, -1 when absent */
} tok_bpe;

tc_status tok_bpe_init(tok_bpe *m, uint32_t vocab_size);
/* Adds merge (left, right) -> new_id with this rank; a repeated pair takes
 * the later rank (as a Rust HashMap collected from the merges list). */
tc_status tok_bpe_add_merge(tok_bpe *m, int32_t left, int32_t right, int32_t new_id, uint32_t rank);
/* Call once the vocabulary is complete. */
void tok_bpe_finish(tok_bpe *m);
/* Appends the ids of one pre-tokenized word to *ids (grown as needed). */
tc_status tok_bpe_word(const tok_bpe *m, const char *w, size_t len, int32_t **ids, size_t *n,
                       size_t *cap);
void tok_bpe_free(tok_bpe *m);

/* SentencePiece ModelProto -> BPE model (vocabulary + generated merges).
 * path names the file in errors. */
tc_status tok_spm_load(const char *path, const uint8_t *data, size_t len, tok_bpe *m);

/* ---- normalizers and pre-tokenizers (tok_pretok.c) ---- */
typedef struct tok_step tok_step; /* one normalizer or pre-tokenizer, opaque */

/* Parse a "normalizer" / "pre_tokenizer" object of tokenizer.json (NULL or
 * JSON null: none). `where` names the file in errors. */
tc_status tok_normalizer_parse(const struct cJSON *j, const char *where, tok_step **out);
tc_status tok_pretokenizer_parse(const struct cJSON *j, const char *where, tok_step **out);
/* transformers 5 LlamaTokenizer's pre-tokenizer: Metaspace("▁", scheme). */
tc_status tok_metaspace_new(const char *prepend_scheme, tok_step **out);
void tok_step_free(tok_step *s);

/* Normalize piece in place (may append to the arena and move the range). */
tc_status tok_normalize(const tok_step *s, tok_arena *a, tok_piece *piece);
/* Split pieces whose id < 0 into pre-tokens; returns the new list in *out. */
tc_status tok_pretokenize(const tok_step *s, tok_arena *a, const tok_pieces *in, tok_pieces *out);
const char *tok_step_name(const tok_step *s);

/* ---- Unicode helpers ---- */
/* Decode one code point at s[i] (valid UTF-8 assumed); returns its length. */
size_t tok_utf8_next(const char *s, size_t len, size_t i, uint32_t *cp);
size_t tok_utf8_put(uint32_t cp, char *out); /* 1..4 bytes */
bool tok_is_whitespace(uint32_t cp);          /* Rust char::is_whitespace (White_Space) */
/* Start of the code point that ends just before byte at (> floor). */
size_t tok_utf8_prev(const char *s, size_t floor, size_t at);
/* Narrow [*lo, *hi) of s past leading (left) and trailing (right) code
 * points for which is_space holds. */
void tok_strip(const char *s, size_t *lo, size_t *hi, bool left, bool right,
               bool (*is_space)(uint32_t));

/* ---- the tokenizer object (tokenizer.c, tok_added.c) ---- */
typedef struct added_token {
    char *content;      /* what is matched: the normalized content when normalized */
    size_t len;
    int32_t id;
    bool lstrip, rstrip, single_word, normalized, special;
} added_token;

struct tc_tokenizer {
    char desc[640];
    tok_bpe bpe;
    tok_step *normalizer, *pretok;
    added_token *added;
    size_t n_added;
    int32_t *pre_ids, *post_ids; /* post-processor ids around the sequence */
    size_t n_pre, n_post;
    int64_t id_limit;
    pcre2_code *word_char;       /* single_word: Rust regex \w */
    tok_vocab added_seen;        /* contents as first defined: duplicates */
    bool added_seen_init;
    /* Trie of the added tokens (as matched: normalized ones normalized).
     * Node 0 is the root; term[node][k] indexes added[] for the token of
     * kind k (0 raw, 1 normalized) that ends there, or -1. Edges live in an
     * open-addressing table keyed by (node << 8 | byte) + 1. Matching at a
     * position costs at most the longest token's length, whatever their
     * number (TC_TOKENIZER_MAX_PIECE bounds that length). */
    int32_t (*term)[2];
    uint32_t n_nodes;
    uint64_t *edge_key;
    uint32_t *edge_child;
    size_t edge_cap;             /* power of two, or 0 */
};

/* ---- shared between tokenizer.c and tok_added.c ---- */
tc_status tok_add_token(tc_tokenizer *t, const char *content, int32_t id, bool lstrip, bool rstrip, bool single_word, bool normalized, bool special, const char *where);
tc_status tok_parse_added_tokens(tc_tokenizer *t, const struct cJSON *arr, const char *where);
tc_status tok_parse_added_decoder(tc_tokenizer *t, const struct cJSON *cfg, const char *where);
int32_t tok_token_id(const tc_tokenizer *t, const char *text);
tc_status tok_normalize_added(tc_tokenizer *t);
tc_status tok_build_trie(tc_tokenizer *t);
tc_status tok_split_added(const tc_tokenizer *t, bool normalized, const tok_arena *a, const tok_piece *pc, tok_pieces *out);
const char *tok_token_text(const struct cJSON *v);
bool tok_cfg_bool(const struct cJSON *cfg, const char *key, bool dflt, bool *present);

#endif
