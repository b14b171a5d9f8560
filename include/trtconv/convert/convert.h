/* convert.h: executing cell plans: read slices, convert, write them into
 * the cells' rank files (output/rankfile.h) with worker threads; weight-only
 * linears are quantized on the way (quant/woq.h, on the GPU when given).
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
#include "trtconv/core/fsutil.h"
#include "trtconv/mpi/gpu.h"
#include "trtconv/output/rankfile.h"
#include "trtconv/plan/plan.h"
#include "trtconv/core/status.h"

#define TC_CONVERT_CHUNK_BYTES (16u << 20)

/* Shared between the workers and the thread that reports progress. */
typedef struct tc_progress {
    _Atomic uint64_t done_bytes;  /* output bytes written */
    atomic_int cancel;            /* set to stop the workers early */
} tc_progress;

typedef struct tc_convert_job tc_convert_job;

/* Layers whose tensors may be converted: the overlapped calibration
 * (app/calibrated.c) opens layer L once its statistics are final and its
 * plan tensors hold their final values; a plan tensor marked `gated`
 * waits for its gate_layer (plan.h). Thread-safe. */
typedef struct tc_convert_gate tc_convert_gate;
tc_status tc_convert_gate_create(int64_t layers, tc_convert_gate **out);
void tc_convert_gate_open(tc_convert_gate *g, int64_t layer);
void tc_convert_gate_cancel(tc_convert_gate *g);  /* waiters give up */
void tc_convert_gate_free(tc_convert_gate *g);    /* accepts NULL */

/* Start `workers` threads converting every tensor of the open cells among
 * cells[0..n) (a cell with fd < 0 is skipped: --resume reuses it). Returns at
 * once; *job belongs to the caller and must be passed to tc_convert_join.
 * gpu (may be NULL): when it names a device, weight-only quantization runs
 * there (each worker stages its slices through pinned host buffers on its
 * own stream); otherwise on the CPU. The bytes are the same either way.
 * gate (may be NULL): gated tensors wait for their layer, and the work runs
 * ungated tensors first, then layer by layer. */
tc_status tc_convert_start(tc_cell_output *cells, size_t n, int workers,
                           const tc_gpu_info *gpu, tc_progress *progress,
                           tc_convert_gate *gate, tc_convert_job **job);
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
