/* write_queue.h: writes into open rank files (rankfile.h tc_cell_write) done
 * by threads of their own, from a fixed pool of host buffers, so that a
 * producer (SmoothQuant quantizing layer L on the GPU, sq.c) goes on with
 * its next layer while the bytes reach the file.
 *
 * Use: tc_wq_acquire a buffer (waits while all are in flight), fill up to
 * tc_wq_buffer_bytes of it, tc_wq_submit it with its destination; the
 * buffer returns to the pool once written. tc_wq_drain waits for every
 * submitted write and returns the first failure; after a failure, acquire
 * and submit return it too (the producer stops at its next call).
 * Ownership: the queue owns its buffers and thread; the tc_cell_output
 * passed to submit is borrowed and must stay open until drained. */
#ifndef TRTCONV_WRITE_QUEUE_H
#define TRTCONV_WRITE_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include "trtconv/output/rankfile.h"
#include "trtconv/core/status.h"

typedef struct tc_write_queue tc_write_queue;

/* Optional page locking of the buffers (faster device downloads), undone
 * before they are freed; ctx is passed back. */
typedef struct tc_wq_pinning {
    void (*pin)(void *ctx, void *p, size_t bytes);
    void (*unpin)(void *ctx, void *p);
    void *ctx;
} tc_wq_pinning;

tc_status tc_wq_create(int n_buffers, size_t buffer_bytes, int n_threads,
                       const tc_wq_pinning *pinning, tc_write_queue **out);
size_t tc_wq_buffer_bytes(const tc_write_queue *q);
/* Seconds producers have waited in tc_wq_acquire for a free buffer: the
 * writing's lag behind them. */
double tc_wq_waited_seconds(tc_write_queue *q);
tc_status tc_wq_acquire(tc_write_queue *q, void **buf);
/* Write buf[0, n) at offset off of out; buf is one acquire returned. */
tc_status tc_wq_submit(tc_write_queue *q, tc_cell_output *out, void *buf, size_t n, uint64_t off);
/* Return an acquired buffer unwritten. */
void tc_wq_release(tc_write_queue *q, void *buf);
tc_status tc_wq_drain(tc_write_queue *q);
/* Drains (ignoring failures), stops the thread, frees. Accepts NULL. */
void tc_wq_free(tc_write_queue *q);

#endif
