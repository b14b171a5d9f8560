/* manifest.h: what a finished checkpoint directory records about itself,
 * so that --resume can reuse rank files and `trtconv verify` can check them
 * (durability-and-failures.md §2.3).
 *
 * Files in the output directory, besides rank{r}.safetensors/config.json:
 *
 *   .trtconv-rank{r}.json   rank record, written (temp name, fsync, rename)
 *       by the rank that wrote rank{r}.safetensors, right after that file's
 *       rename; it is what --resume trusts after a killed run:
 *       {"format": "trtconv-rank-record", "version": 1,
 *        "run": "<64 hex: run fingerprint>", "rank": r,
 *        "file": "rank{r}.safetensors" (or a Hugging Face shard's name,
 *        model-{r+1:05}-of-{N:05}.safetensors), "size": bytes,
 *        "sha256_tree": "<64 hex>", "tensors": count}
 *
 *   trtconv-manifest.json   written by rank 0 at the commit, after every
 *       rank succeeded and before config.json (the commit marker):
 *       {"format": "trtconv-manifest", "version": 1, "tool": "trtconv X.Y.Z",
 *        "run": "<64 hex>", "digest": "<how sha256_tree is defined>", "world_size": W, "tp_size": T, "pp_size": P,
 *        "parameters": {"name": "value", ...},   options that shape the bytes
 *        "inputs": ["<file> size=.. mtime_ns=.. header_sha256|sha256=..", ...],
 *        "config_sha256": "<64 hex of config.json>",
 *        "files": [{"rank": 0, "file": "rank0.safetensors", "size": ..,
 *                   "sha256_tree": "..", "tensors": ..}, ...]}
 *
 * sha256_tree is the chunked SHA-256 of sha256.h (64 MiB chunks), which
 * several threads compute at once.
 *
 * The run fingerprint is the SHA-256 of the canonical text of the
 * parameters and inputs (tc_run_text); two runs with the same fingerprint
 * produce byte-identical rank files. Both files are read as hostile input:
 * size-capped, strictly typed, every hex digest checked for form. */
#ifndef TRTCONV_MANIFEST_H
#define TRTCONV_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "trtconv/core/sha256.h"
#include "trtconv/core/status.h"
#include "trtconv/plan/plan.h" /* tc_cell_naming */

#define TC_MANIFEST_NAME "trtconv-manifest.json"
#define TC_INPUT_LINE 800 /* one fingerprint line of an input file, NUL included */

typedef struct tc_rank_entry {
    int rank;                   /* the cell's index */
    char file[48];              /* its published name (rankfile.h tc_cell_file_name) */
    uint64_t size;
    uint64_t tensors;
    char sha256[TC_SHA256_HEX]; /* sha256_tree digest (sha256.h) */
} tc_rank_entry;

/* Canonical run description: "key value\n" lines (parameters), then
 * "input ...\n" lines, hashed into `run`. */
typedef struct tc_run_text {
    char *text;            /* owned */
    size_t len, cap;
    char run[TC_SHA256_HEX];
} tc_run_text;

void tc_run_text_init(tc_run_text *r);
void tc_run_text_free(tc_run_text *r);
/* Append "key value\n" (printf-style value). Keys and values must not
 * contain newlines. Returns TC_E_INTERNAL when out of memory. */
tc_status tc_run_param(tc_run_text *r, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Append one input line as made by tc_input_fingerprint. */
tc_status tc_run_input(tc_run_text *r, const char *line);
/* Hash the text into r->run. */
void tc_run_seal(tc_run_text *r);

/* Fingerprint of input file dir/name into line (TC_INPUT_LINE bytes):
 * "input NAME size=S mtime_ns=T ctime_ns=C ino=I header_sha256=H
 * sample_sha256=D" for safetensors files, where H hashes the 8-byte prefix
 * + header and D 16 blocks of 64 KiB spread over the file; "... sha256=H"
 * of the whole file for anything else, and for every file when full is
 * true. The file is opened with tc_open_input; errors name the file. */
tc_status tc_input_fingerprint(const char *dir, const char *name, bool full,
                               char line[TC_INPUT_LINE]);

struct cJSON;
/* Parse one entry object (a record, or an item of the manifest's "files")
 * strictly; on false why (n bytes) says what is wrong. */
bool tc_rank_entry_parse(const struct cJSON *o, tc_rank_entry *e, char *why, size_t n);

/* Write dir/.trtconv-rank{r}.json durably (temp + fsync + rename + dir fsync). */
tc_status tc_rank_record_write(const char *dir, const char *run, const tc_rank_entry *e);

/* May rank r's existing file be reused under fingerprint `run`? True only
 * when the record parses, names this run and rank, the file exists as a
 * regular file of the recorded size, its SHA-256 (recomputed) equals the
 * recorded one and its header validates with n_tensors tensors. On true, *e
 * is filled. On false, why (n bytes) says which condition failed. I/O or
 * format problems are reasons, not errors: a file that fails is rewritten. */
bool tc_rank_reusable(const char *dir, const char *run, int rank, const char *file,
                      uint64_t n_tensors, tc_rank_entry *e, char *why, size_t n);

/* Remove the records and cell files of earlier runs that would be stale in
 * a new one: .trtconv-rank{r}.json and rank{r}.safetensors for r >= world,
 * Hugging Face shards of another count or index, cell files of the other
 * naming, the manifest, and (unless keep_records) every record. world is
 * the new run's cell count. */
tc_status tc_output_clear_stale(const char *dir, int64_t world, tc_cell_naming naming,
                                bool keep_records);

/* Rank 0: render and write the manifest durably. config_text is the exact
 * config.json that will follow (its hash is recorded). entries[r] for
 * r in [0, world). */
tc_status tc_manifest_write(const char *dir, const char *tool_version, const tc_run_text *run,
                            int64_t world, int64_t tp, int64_t pp, const char *config_text,
                            const tc_rank_entry *entries);

/* Threads hashing one file (the tree digest's chunks are independent). */
#define TC_HASH_THREADS 4

/* The sha256-tree-64MiB digest (sha256.h) of a whole file, its chunks
 * hashed on `threads` threads; errors name the file. */
tc_status tc_sha256_tree_file(const char *path, int threads, char hex[TC_SHA256_HEX],
                              uint64_t *size);

/* Write dir/name durably with text: temp name (O_EXCL|O_NOFOLLOW), fsync,
 * rename, directory fsync. */
tc_status tc_write_file_durable(const char *dir, const char *name, const char *text);
/* The same with n bytes of data. */
tc_status tc_write_bytes_durable(const char *dir, const char *name, const void *data, size_t n);
/* fsync a directory (EINVAL from filesystems that cannot is ignored). */
tc_status tc_fsync_dir(const char *dir);

/* `trtconv verify DIR`: check a checkpoint directory against its manifest
 * and the format (verify.c). Prints one line per problem and a summary to
 * out; returns TC_OK when the checkpoint is complete and intact, TC_E_INPUT
 * when it is not, TC_E_USAGE for bad arguments. */
int tc_verify_main(int argc, char **argv);

#endif
