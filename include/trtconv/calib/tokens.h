/* tokens.h: token-id sequences for the forward pass and calibration.
 *
 * File format (JSON Lines): one JSON object per line, with either an
 * "input_ids" array of non-negative integer token ids, e.g.
 *     {"input_ids": [1, 15043, 29892]}
 * or a "text" (else "article") string, e.g. {"article": "..."}, which the
 * *_text_* loaders turn into ids as the Python tool does (tokenizer.h:
 * tc_calib_text, then the model's tokenizer from tokenizer_dir with BOS and
 * truncation to max_len); the plain loaders refuse text lines. Other keys
 * are ignored. Blank lines are skipped. The first max_samples sequences in
 * file order are kept, each truncated to max_len tokens.
 *
 * Hostile input: a line longer than TC_TOKENS_MAX_LINE bytes, invalid JSON,
 * a duplicate key, a non-integer or out-of-range id (>= vocab), an empty or
 * missing input_ids, an empty file: TC_E_INPUT naming the file, the line and
 * the rule. */
#ifndef TRTCONV_TOKENS_H
#define TRTCONV_TOKENS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "trtconv/core/status.h"

#define TC_TOKENS_MAX_LINE (64u << 20)

typedef struct tc_token_set {
    size_t n_seqs;
    int64_t *offsets;   /* n_seqs + 1 entries: sequence s is ids[offsets[s] .. offsets[s+1]) */
    int32_t *ids;       /* offsets[n_seqs] entries */
} tc_token_set;

/* Load up to max_samples (> 0) sequences from path. On TC_OK *out owns its
 * arrays (tc_tokens_free). */
tc_status tc_tokens_load_jsonl(const char *path, int64_t max_samples, int64_t max_len,
                               int64_t vocab, tc_token_set *out);
/* The same from an open stream (path names it in messages); for fuzzing. */
tc_status tc_tokens_load_stream(FILE *f, const char *path, int64_t max_samples, int64_t max_len,
                                int64_t vocab, tc_token_set *out);
/* Also text lines, tokenized with the tokenizer of tokenizer_dir (loaded at
 * the first text line; NULL refuses text lines). */
tc_status tc_tokens_load_text_jsonl(const char *path, int64_t max_samples, int64_t max_len,
                                    int64_t vocab, const char *tokenizer_dir, tc_token_set *out);
tc_status tc_tokens_load_text_stream(FILE *f, const char *path, int64_t max_samples,
                                     int64_t max_len, int64_t vocab, const char *tokenizer_dir,
                                     tc_token_set *out);
void tc_tokens_free(tc_token_set *t); /* accepts a zeroed struct */

/* Length of the longest of sequences [s0, s1). */
int64_t tc_tokens_longest(const tc_token_set *t, size_t s0, size_t s1);

#endif
