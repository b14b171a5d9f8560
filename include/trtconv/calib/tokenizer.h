/* tokenizer.h: the model's own tokenizer, token-for-token equal to Hugging
 * Face transformers 5 (AutoTokenizer) for LLaMA-family models.
 *
 * Files read from the tokenizer directory (the model directory by default):
 *   tokenizer_config.json  optional. tokenizer_class, bos/eos/unk tokens
 *                          (strings or {"content": ...} objects),
 *                          add_bos_token, add_eos_token, legacy,
 *                          add_prefix_space, added_tokens_decoder.
 *   tokenizer.model        SentencePiece ModelProto (protobuf): tried first.
 *                          Only BPE models (LLaMA-1/2, Mistral). Converted as
 *                          transformers 5 does: vocabulary = the pieces in id
 *                          order; merges = every split of every piece into
 *                          two pieces of the vocabulary, ordered by piece id
 *                          and then by the length of the left part
 *                          (transformers' generate_merges without scores).
 *   tokenizer.json         Hugging Face tokenizers file, used when there is
 *                          no tokenizer.model: normalizers (Sequence,
 *                          Prepend, Replace, Strip), pre-tokenizers
 *                          (Sequence, Split, ByteLevel, Metaspace, Digits),
 *                          model BPE (byte_fallback, fuse_unk, ignore_merges,
 *                          merges as "a b" strings or [a, b] pairs),
 *                          post-processors (TemplateProcessing, ByteLevel,
 *                          Roberta/Bert, Sequence) and added tokens
 *                          (lstrip, rstrip, single_word, normalized).
 * Anything else (a Unigram or WordPiece model, an NFKC normalizer, ...) is
 * refused with an error naming it and the file.
 *
 * transformers 5's LlamaTokenizer (tokenizer_class LlamaTokenizer or
 * LlamaTokenizerFast) rebuilds its pipeline from the vocabulary and merges
 * alone: no normalizer, Metaspace("▁", prepend_scheme "first" unless legacy
 * is true, "never" if add_prefix_space is false, no split), BPE with byte
 * fallback and fuse_unk, and BOS/EOS from add_bos_token (default true) /
 * add_eos_token (default false). trtconv does the same for SentencePiece-
 * style models of that class; other classes use tokenizer.json as written.
 *
 * Hostile input: files over TC_TOKENIZER_MAX_FILE bytes, malformed protobuf
 * or JSON, invalid UTF-8 in pieces, merges naming unknown tokens, regexes
 * PCRE2 cannot compile: TC_E_INPUT naming the file and the rule. Text given to
 * tc_tokenizer_encode must be valid UTF-8 (TC_E_INPUT otherwise).
 *
 * Work bounds (a hostile file must not stall or exhaust a rank; the limits
 * are far above any real tokenizer's, docs/tokenizer.md):
 *  - tokenizer.model pieces of at most TC_TOKENIZER_MAX_PIECE bytes and a
 *    sum of squared piece lengths of at most TC_TOKENIZER_MAX_PIECE_WORK
 *    (merge generation splits every piece at every character);
 *  - added tokens of at most TC_TOKENIZER_MAX_PIECE bytes, matched through a
 *    trie: encoding is linear in the text times the longest added token;
 *  - the bytes the normalizers and pre-tokenizers produce for one text at
 *    most TC_TOKENIZER_EXPANSION times its length plus 64 KiB (repeated
 *    ByteLevel steps double the text each time).
 *
 * Ownership: tc_tokenizer_load returns a tokenizer owned by the caller
 * (tc_tokenizer_free). It is immutable after loading: tc_tokenizer_encode may
 * run on many threads at once. Id arrays returned by encode belong to the
 * caller (free). */
#ifndef TRTCONV_TOKENIZER_H
#define TRTCONV_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "trtconv/core/status.h"
#include "trtconv/core/utf8.h" /* tc_utf8_valid */

#define TC_TOKENIZER_MAX_FILE (512u << 20)
#define TC_TOKENIZER_MAX_PIECE 1024u
#define TC_TOKENIZER_MAX_PIECE_WORK (1ull << 28)
#define TC_TOKENIZER_EXPANSION 32u

typedef struct tc_tokenizer tc_tokenizer;

/* Which file to read: the order (tokenizer.model, else
 * tokenizer.json), or one of them only (tests hold both paths to the same
 * ids). */
typedef enum tc_tokenizer_source {
    TC_TOKENIZER_AUTO = 0,
    TC_TOKENIZER_SPM_MODEL,
    TC_TOKENIZER_HF_JSON
} tc_tokenizer_source;

/* Load the tokenizer of directory dir. */
tc_status tc_tokenizer_load(const char *dir, tc_tokenizer_source source, tc_tokenizer **out);

/* The file names a tokenizer directory may hold (NULL-terminated, static):
 * what decides the ids, so the run fingerprints them (manifest.h). */
const char *const *tc_tokenizer_files(void);
/* The same from memory (tests, fuzzing): data holds a tokenizer.model
 * (kind SPM_MODEL) or tokenizer.json (HF_JSON); config (may be NULL) a
 * tokenizer_config.json. name and config_name appear in errors. */
tc_status tc_tokenizer_from_memory(tc_tokenizer_source kind, const char *name, const char *data,
                                   size_t len, const char *config, size_t config_len,
                                   const char *config_name, tc_tokenizer **out);
void tc_tokenizer_free(tc_tokenizer *t); /* accepts NULL */

/* One line describing what was loaded (file, model, pipeline, BOS/EOS). */
const char *tc_tokenizer_describe(const tc_tokenizer *t);
/* Largest token id the tokenizer can produce, plus one. */
int64_t tc_tokenizer_id_limit(const tc_tokenizer *t);

/* Encode len bytes of UTF-8 text. With add_special the post-processor adds
 * BOS/EOS as the tokenizer says. max_len > 0 truncates as transformers'
 * truncation=True, max_length=max_len does (right side, room kept for the
 * special tokens); max_len <= 0 keeps everything. On TC_OK *ids (malloc'ed,
 * caller frees; NULL when *n == 0) holds *n ids. `what` names the text in
 * errors (e.g. "calib.jsonl:12"). */
tc_status tc_tokenizer_encode(const tc_tokenizer *t, const char *text, size_t len,
                              bool add_special, int64_t max_len, const char *what,
                              int32_t **ids, size_t *n);

/* The Python tool's per-sample calibration text (trtllm spec 5.1):
 * text + " TL;DR: ", Python str.strip() (Unicode whitespace as str.isspace),
 * then every " n't" replaced by "n't". *out is malloc'ed (caller frees),
 * NUL-terminated, *out_len bytes. */
tc_status tc_calib_text(const char *text, size_t len, char **out, size_t *out_len);


#endif
