/* convert.h: executing cell plans: read slices, convert, write rank files.
 *
 * Output protocol for one cell (durability-and-failures.md §2, the part the
 * conversion core needs): the file is written as
 * OUTPUT_DIR/.rank{r}.safetensors.partial (created with O_EXCL|O_NOFOLLOW
 * after removing a stale one, space reserved with fallocate so a full disk
 * fails before any data is written), filled with pwrite by the workers
 * through tc_cell_write while threads hash its completed 64 MiB chunks
 * (the sha256_tree digest of sha256.h, for the manifest), then fsync'd, read back through the
 * validating reader, closed and renamed to rank{r}.safetensors. The
 * manifest and config.json are written by the driver (manifest.h) only
 * after every rank succeeded.
 *
 * Memory: a work item is at most TC_CONVERT_CHUNK_BYTES of output rows; a
 * worker holds one item's source and output buffers, so a rank's peak is
 * about workers * 3 * chunk, whatever the model size. */
#ifndef TRTCONV_CONVERT_H
#define TRTCONV_CONVERT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "trtconv/mpi/gpu.h"
#include "trtconv/plan/plan.h"
#include "trtconv/core/status.h"

#define TC_CONVERT_CHUNK_BYTES (16u << 20)

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

/* Write n bytes of buf at offset off of fd, retrying short writes and
 * EINTR. Errors (TC_E_IO) name path, the size and the offset. Thread-safe. */
tc_status tc_pwrite_all(int fd, const char *path, const void *buf, size_t n, uint64_t off);

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

/* Shared between the workers and the thread that reports progress. */
typedef struct tc_progress {
    _Atomic uint64_t done_bytes;  /* output bytes written */
    atomic_int cancel;            /* set to stop the workers early */
} tc_progress;

typedef struct tc_convert_job tc_convert_job;

/* Start `workers` threads converting every tensor of the open cells among
 * cells[0..n) (a cell with fd < 0 is skipped: --resume reuses it). Returns at
 * once; *job belongs to the caller and must be passed to tc_convert_join.
 * gpu (may be NULL): when it names a device, weight-only quantization runs
 * there (each worker stages its slices through pinned host buffers on its
 * own stream); otherwise on the CPU. The bytes are the same either way. */
tc_status tc_convert_start(tc_cell_output *cells, size_t n, int workers,
                           const tc_gpu_info *gpu, tc_progress *progress,
                           tc_convert_job **job);
/* True once every worker has stopped (finished, failed or cancelled). */
bool tc_convert_done(tc_convert_job *job);
/* Wait for the workers and free the job; returns the first error, or
 * TC_E_CANCELLED if cancelled before finishing. */
tc_status tc_convert_join(tc_convert_job *job);

/* Convert one output row range [row0, row0+rows) of tensor t into dst
 * (t->dtype, rows * t->cols elements), reading its pieces. scratch must hold
 * rows * t->cols elements of the widest source dtype (4 bytes each). */
tc_status tc_convert_rows(const tc_plan_tensor *t, int64_t row0, int64_t rows,
                          void *dst, void *scratch);

#endif
