/* write_queue.c: see write_queue.h. Writer threads take pending writes from
 * a FIFO; buffers move between a free stack and the FIFO under one mutex. */
#include "trtconv/output/write_queue.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "trtconv/core/log.h"

typedef struct pending {
    int buf;
    tc_cell_output *out;
    size_t n;
    uint64_t off;
} pending;

struct tc_write_queue {
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* a buffer freed, a write queued, or stop */
    int n;
    size_t bytes;
    void **bufs;
    int *free_stack, n_free;
    pending *fifo;              /* ring of n entries */
    int head, count;
    int busy;                   /* writes taken by threads, not yet free again */
    bool stop;
    tc_status failed;
    pthread_t *threads;
    int n_threads, started;
    double waited;              /* seconds producers spent in acquire */
    tc_wq_pinning pin;
};

static int index_of(const tc_write_queue *q, const void *buf)
{
    for (int i = 0; i < q->n; i++)
        if (q->bufs[i] == buf)
            return i;
    return -1;
}

static void *writer(void *arg)
{
    tc_write_queue *q = arg;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (q->count == 0 && !q->stop)
            pthread_cond_wait(&q->cv, &q->mu);
        if (q->count == 0)
            break;
        const pending p = q->fifo[q->head];
        q->head = (q->head + 1) % q->n;
        q->count--;
        q->busy++;
        const bool skip = q->failed != TC_OK;
        pthread_mutex_unlock(&q->mu);
        const tc_status st = skip ? TC_OK : tc_cell_write(p.out, q->bufs[p.buf], p.n, p.off);
        pthread_mutex_lock(&q->mu);
        if (st != TC_OK && q->failed == TC_OK)
            q->failed = st;
        q->free_stack[q->n_free++] = p.buf;
        q->busy--;
        pthread_cond_broadcast(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

tc_status tc_wq_create(int n_buffers, size_t buffer_bytes, int n_threads,
                       const tc_wq_pinning *pinning, tc_write_queue **out)
{
    *out = NULL;
    if (n_buffers < 1 || buffer_bytes == 0 || n_threads < 1)
        return tc_fail(TC_E_INTERNAL, "write queue of %d buffers of %zu bytes", n_buffers,
                       buffer_bytes);
    tc_write_queue *q = calloc(1, sizeof *q);
    if (!q)
        return tc_fail(TC_E_INTERNAL, "out of memory for a write queue");
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    q->n = n_buffers;
    q->bytes = buffer_bytes;
    if (pinning)
        q->pin = *pinning;
    q->bufs = calloc((size_t)n_buffers, sizeof *q->bufs);
    q->free_stack = calloc((size_t)n_buffers, sizeof *q->free_stack);
    q->fifo = calloc((size_t)n_buffers, sizeof *q->fifo);
    q->threads = calloc((size_t)n_threads, sizeof *q->threads);
    tc_status st = q->bufs && q->free_stack && q->fifo && q->threads ? TC_OK : TC_E_INTERNAL;
    for (int i = 0; st == TC_OK && i < n_buffers; i++) {
        q->bufs[i] = malloc(buffer_bytes);
        if (!q->bufs[i]) {
            st = TC_E_INTERNAL;
            break;
        }
        if (q->pin.pin)
            q->pin.pin(q->pin.ctx, q->bufs[i], buffer_bytes);
        q->free_stack[q->n_free++] = i;
    }
    if (st != TC_OK) {
        tc_wq_free(q);
        return tc_fail(TC_E_INTERNAL, "out of memory for %d write buffers of %zu MiB", n_buffers,
                       buffer_bytes >> 20);
    }
    for (; q->started < n_threads; q->started++)
        if (pthread_create(&q->threads[q->started], NULL, writer, q) != 0) {
            tc_wq_free(q);
            return tc_fail(TC_E_INTERNAL, "cannot start a writer thread");
        }
    *out = q;
    return TC_OK;
}

size_t tc_wq_buffer_bytes(const tc_write_queue *q)
{
    return q->bytes;
}

double tc_wq_waited_seconds(tc_write_queue *q)
{
    pthread_mutex_lock(&q->mu);
    const double w = q->waited;
    pthread_mutex_unlock(&q->mu);
    return w;
}

tc_status tc_wq_acquire(tc_write_queue *q, void **buf)
{
    *buf = NULL;
    pthread_mutex_lock(&q->mu);
    if (q->n_free == 0 && q->failed == TC_OK) {
        const double t0 = tc_now_seconds();
        while (q->n_free == 0 && q->failed == TC_OK)
            pthread_cond_wait(&q->cv, &q->mu);
        q->waited += tc_now_seconds() - t0;
    }
    const tc_status st = q->failed;
    if (st == TC_OK)
        *buf = q->bufs[q->free_stack[--q->n_free]];
    pthread_mutex_unlock(&q->mu);
    return st;
}

tc_status tc_wq_submit(tc_write_queue *q, tc_cell_output *out, void *buf, size_t n, uint64_t off)
{
    const int b = index_of(q, buf);
    if (b < 0 || n > q->bytes)
        return tc_fail(TC_E_INTERNAL, "write queue: submit of a foreign buffer or %zu bytes", n);
    pthread_mutex_lock(&q->mu);
    const tc_status st = q->failed;
    if (st == TC_OK) {
        q->fifo[(q->head + q->count) % q->n] = (pending){ b, out, n, off };
        q->count++;
    } else {
        q->free_stack[q->n_free++] = b;
    }
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return st;
}

void tc_wq_release(tc_write_queue *q, void *buf)
{
    const int b = index_of(q, buf);
    if (b < 0)
        return;
    pthread_mutex_lock(&q->mu);
    q->free_stack[q->n_free++] = b;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

tc_status tc_wq_drain(tc_write_queue *q)
{
    pthread_mutex_lock(&q->mu);
    while (q->count > 0 || q->busy)
        pthread_cond_wait(&q->cv, &q->mu);
    const tc_status st = q->failed;
    pthread_mutex_unlock(&q->mu);
    return st;
}

void tc_wq_free(tc_write_queue *q)
{
    if (!q)
        return;
    if (q->started) {
        pthread_mutex_lock(&q->mu);
        q->stop = true;
        pthread_cond_broadcast(&q->cv);
        pthread_mutex_unlock(&q->mu);
        for (int i = 0; i < q->started; i++)
            pthread_join(q->threads[i], NULL);
    }
    free(q->threads);
    for (int i = 0; q->bufs && i < q->n; i++) {
        if (q->bufs[i] && q->pin.unpin)
            q->pin.unpin(q->pin.ctx, q->bufs[i]);
        free(q->bufs[i]);
    }
    free(q->bufs);
    free(q->free_stack);
    free(q->fifo);
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    free(q);
}
