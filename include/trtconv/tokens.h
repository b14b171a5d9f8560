/* tokens.h: token-id sequences for the forward pass and calibration.
 *
 * File format (JSON Lines): one JSON object per line, with an "input_ids"
 * array of non-negative integer token ids, e.g.
 *     {"input_ids": [1, 15043, 29892]}
 * Other keys are ignored. Blank lines are skipped. A line with a "text" or
 * "article" field but no "input_ids" is refused with a message that says how
 * to pre-tokenize (trtconv has no tokenizer yet). The first max_samples
 * sequences in file order are kept, each truncated to max_len tokens.
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
#include "trtconv/status.h"

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
void tc_tokens_free(tc_token_set *t); /* accepts a zeroed struct */

/* Length of the longest of sequences [s0, s1). */
int64_t tc_tokens_longest(const tc_token_set *t, size_t s0, size_t s1);

#endif
