/* rankfile.h: the rank-file protocol of one cell (durability-and-failures.md
 * §2). The file is written as OUTPUT_DIR/.rank{r}.safetensors.partial
 * (created with O_EXCL|O_NOFOLLOW after removing a stale one, space
 * reserved with fallocate so a full disk fails before any data is written),
 * filled with pwrite through tc_cell_write (by the conversion workers and
 * the calibrated methods) while threads hash its completed 64 MiB chunks
 * (the sha256_tree digest of sha256.h, for the manifest), then fsync'd,
 * read back through the validating reader, closed and renamed to
 * rank{r}.safetensors (or the Hugging Face shard name the plan's naming
 * gives, tc_cell_file_name). The manifest and the commit file are written by the
 * output format (format.h) only after every rank succeeded.
 *
 * Ownership: a tc_cell_output borrows its plan and owns its paths, offsets
 * and hasher until tc_cell_commit or tc_cell_discard. */
#ifndef TRTCONV_OUTPUT_RANKFILE_H
#define TRTCONV_OUTPUT_RANKFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "trtconv/core/status.h"
#include "trtconv/plan/plan.h"

typedef struct tc_cell_output {
    tc_plan *plan;            /* borrowed */
    int fd;                   /* -1 when closed */
    char *tmp_path;           /* owned */
    char *final_path;         /* owned */
    uint64_t file_size;
    uint64_t *offsets;        /* owned; file offset of plan->tensors[i] */
    struct tc_cell_hasher *hasher; /* owned; NULL when closed */
    int partial_slot;         /* 1-based slot for tc_partial_unlink_all, 0: none */
    /* Set by a successful tc_cell_commit: */
    bool committed;
    char sha256[65];          /* hex sha256_tree digest of the final file (sha256.h) */
} tc_cell_output;

/* The published file name of cell `cell` of `cells` (plan.h tc_cell_naming)
 * into buf (n >= 40 bytes). */
void tc_cell_file_name(tc_cell_naming naming, int cell, int cells, char *buf, size_t n);
/* The inverse over both namings: the cell index of a published cell file
 * name and, for a Hugging Face shard, its "of" count (*cells; -1 for a rank
 * file); -1 when the name is neither. */
long tc_cell_file_index(const char *name, long *cells);

/* Make a fully written temporary file durable and visible: fsync, close,
 * rename tmp_path to final_path. fd is closed in every case; on failure
 * (TC_E_IO, naming the file and step) tmp_path is removed. The caller
 * fsyncs the directory afterwards. */
tc_status tc_file_publish(int fd, const char *tmp_path, const char *final_path);

/* Remove every partial file this process still has open. Async-signal-safe
 * (unlink only): the SIGTERM / deadline handlers call it, since a partial
 * file is never reused (--resume keeps only published rank files). */
void tc_partial_unlink_all(void);

/* Create the partial file of plan's cell in dir, reserve file_size bytes and
 * write the header. On TC_OK out must be finished with tc_cell_commit or
 * tc_cell_discard. */
tc_status tc_cell_open(const char *dir, tc_plan *plan, tc_cell_output *out);
/* pwrite n bytes of buf at file offset off of the cell's partial file and
 * account them for the hash. Every byte of the file must be written exactly
 * once (commit checks). Thread-safe; errors name the file and offset. */
tc_status tc_cell_write(tc_cell_output *c, const void *buf, size_t n, uint64_t off);
/* Check every byte was written once, finish the hash, fsync, validate the
 * header by reading it back, close, rename to rank{r}.safetensors; on TC_OK
 * out->sha256 and out->committed are set. Discards on failure; frees the
 * buffers either way (file_size and sha256 stay valid). */
tc_status tc_cell_commit(tc_cell_output *out);
/* Close and unlink the partial file; frees everything. Accepts closed. */
void tc_cell_discard(tc_cell_output *out);

#endif
