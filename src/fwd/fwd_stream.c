/* fwd_stream.c: layer-streamed calibration (fwd.h tc_fwd_calibrate_streamed).
 *
 * Statistics of layer L depend only on layers <= L, so the schedule runs
 * every calibration token of the rank's replica through layer L before
 * layer L+1: the hidden states of the whole set live in one backend buffer
 * ([tokens, H] in the forward dtype: 512 x 512 tokens of a 4096-wide model
 * are 2 GiB), and only one decoder layer's weights are resident at a time,
 * whatever the model's depth. Each micro-batch's slice of that buffer is
 * the engine's residual stream (e->h) while the batch runs, so nothing is
 * copied between layers. A helper thread reads layer L+1's slices from the
 * source files into host memory while layer L computes; they are uploaded
 * once layer L is released.
 *
 * Pipeline stages pass the whole set: stage s runs all its layers, then
 * sends every batch's hidden states to stage s+1, which waits for them. The
 * stages therefore run one after the other; with the weights streamed a
 * stage needs one layer of memory, so a pipeline is only a way to split
 * the work, not a memory necessity (docs/calibration-memory.md).
 *
 * Bit-identity with tc_fwd_run: every operation sees the same batch and the
 * same weights as there (the same tensors from the same plan), only the
 * order of (layer, batch) pairs differs, and the statistics are maxima. */
#define _POSIX_C_SOURCE 200809L
#include "fwd_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct prefetch {
    tc_fwd_engine *e;
    int64_t li;
    fwd_staged_layer staged;
    tc_status st;
    pthread_t thread;
    bool running;
} prefetch;

static void *prefetch_main(void *arg)
{
    prefetch *p = arg;
    p->st = tc_fwd_stage_layer(p->e, p->li, &p->staged);
    return NULL;
}

static tc_status prefetch_start(prefetch *p, tc_fwd_engine *e, int64_t li)
{
    p->e = e;
    p->li = li;
    p->st = TC_OK;
    if (pthread_create(&p->thread, NULL, prefetch_main, p) != 0) {
        /* No thread: read it now, in this one. */
        p->st = tc_fwd_stage_layer(e, li, &p->staged);
        return p->st;
    }
    p->running = true;
    return TC_OK;
}

static tc_status prefetch_join(prefetch *p)
{
    if (p->running) {
        pthread_join(p->thread, NULL);
        p->running = false;
    }
    return p->st;
}

bool tc_fwd_has_layers(const tc_fwd_engine *e)
{
    return e->n_layers == 0 || e->layers[0].qkv != NULL;
}

/* The micro-batches of this replica: batch bi = dp_rank + k dp holds
 * sequences [bi B, min((bi + 1) B, n)); tok0[k] is its first token in the
 * replica's buffer, tok0[n_local] the replica's token count. */
typedef struct replica_batches {
    int64_t n_local;
    int64_t *bi, *tok0;
} replica_batches;

static tc_status replica_batches_make(const tc_fwd_engine *e, const tc_token_set *t,
                                      int64_t batch_size, replica_batches *r)
{
    const int64_t nb = tc_fwd_batch_count(t, batch_size);
    const int64_t n = nb > e->dp_rank ? (nb - e->dp_rank + e->dp - 1) / e->dp : 0;
    r->n_local = n;
    r->bi = malloc(((size_t)n + 1) * sizeof *r->bi);
    r->tok0 = malloc(((size_t)n + 1) * sizeof *r->tok0);
    if (!r->bi || !r->tok0)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    int64_t tok = 0;
    for (int64_t k = 0; k < n; k++) {
        const int64_t bi = e->dp_rank + k * e->dp;
        const size_t s0 = (size_t)(bi * batch_size);
        const size_t s1 = s0 + (size_t)batch_size < t->n_seqs ? s0 + (size_t)batch_size : t->n_seqs;
        const int64_t T = t->offsets[s1] - t->offsets[s0];
        if (T > e->max_tokens || tc_tokens_longest(t, s0, s1) > e->max_len)
            return tc_fail(TC_E_INTERNAL, "micro-batch %lld is larger than the engine was sized "
                           "for (%lld tokens)", (long long)bi, (long long)e->max_tokens);
        r->bi[k] = bi;
        r->tok0[k] = tok;
        tok += T;
    }
    r->tok0[n] = tok;
    return TC_OK;
}

/* Point the residual stream at batch k's rows of the set and upload its
 * metadata. */
static tc_status enter_batch(tc_fwd_engine *e, const tc_token_set *t, int64_t batch_size,
                             const replica_batches *r, int64_t k, char *set, int64_t *offsets,
                             fwd_batch *bt)
{
    const size_t s0 = (size_t)(r->bi[k] * batch_size);
    const size_t s1 = s0 + (size_t)batch_size < t->n_seqs ? s0 + (size_t)batch_size : t->n_seqs;
    e->h = set + (size_t)r->tok0[k] * (size_t)e->H * e->es;
    return tc_fwd_setup_batch(e, t, s0, s1, offsets, bt);
}

static tc_status run_layers(tc_fwd_engine *e, const tc_token_set *t, int64_t batch_size,
                            const replica_batches *r, char *set, int64_t *offsets, prefetch *pf)
{
    fwd_batch bt;
    for (int64_t k = 0; k < r->n_local; k++) {
        TRY(enter_batch(e, t, batch_size, r, k, set, offsets, &bt));
        TRY(tc_fwd_stage_input(e, &bt));
    }
    if (e->n_layers > 0)
        TRY(prefetch_start(pf, e, 0));
    for (int64_t li = 0; li < e->n_layers; li++) {
        tc_status st = prefetch_join(pf);
        if (st == TC_OK)
            st = tc_fwd_load_layer(e, li, &pf->staged);
        tc_fwd_staged_free(&pf->staged);
        if (st == TC_OK && li + 1 < e->n_layers)
            st = prefetch_start(pf, e, li + 1);
        if (st == TC_OK)
            st = tc_fwd_layer_weight_stats(e, li);
        for (int64_t k = 0; st == TC_OK && k < r->n_local; k++) {
            st = enter_batch(e, t, batch_size, r, k, set, offsets, &bt);
            if (st == TC_OK)
                st = tc_fwd_run_layer(e, li, &bt);
        }
        if (st == TC_OK)
            st = e->ops->sync(e->be);
        tc_fwd_release_layer(e, li);
        if (st != TC_OK)
            return st;
    }
    e->layer_stats_taken = true;
    for (int64_t k = 0; k < r->n_local; k++) {
        const int64_t T = r->tok0[k + 1] - r->tok0[k];
        e->h = set + (size_t)r->tok0[k] * (size_t)e->H * e->es;
        if (e->pp_rank < e->pp - 1)
            OP(P_PIPE, tc_coll_send(&e->pp_c, e->h, (size_t)(T * e->H) * e->es, e->pp_rank + 1));
        else
            TRY(tc_fwd_head(e, T));
    }
    return e->ops->sync(e->be);
}

tc_status tc_fwd_calibrate_streamed(tc_fwd_engine *e, const tc_token_set *t, int64_t batch_size)
{
    if (!e->stream_layers || !e->d_stats)
        return tc_fail(TC_E_INTERNAL, "streamed calibration of an engine without stream_layers "
                       "or statistics");
    if (batch_size < 1)
        return tc_fail(TC_E_USAGE, "batch size must be at least 1");
    replica_batches r = { 0, NULL, NULL };
    int64_t *offsets = malloc(((size_t)batch_size + 1) * sizeof *offsets);
    tc_status st = offsets ? replica_batches_make(e, t, batch_size, &r)
                           : tc_fail(TC_E_INTERNAL, "out of memory");
    void *set = NULL;
    const size_t set_bytes = (size_t)(r.tok0 ? r.tok0[r.n_local] : 0) * (size_t)e->H * e->es;
    if (st == TC_OK && e->ops->alloc(e->be, set_bytes, &set) != TC_OK)
        st = tc_fail(TC_E_USAGE, "the hidden states of this rank's calibration tokens (%lld "
                     "tokens x %lld x %zu bytes = %.2f GiB) do not fit in its %s memory: "
                     "calibrate on fewer tokens (--calib_size, --calib_max_seq_length) or on "
                     "more data-parallel ranks (docs/calibration-memory.md)",
                     (long long)r.tok0[r.n_local], (long long)e->H, e->es,
                     (double)set_bytes / (1024.0 * 1024.0 * 1024.0), e->ops->name);
    void *own_h = e->h;
    prefetch pf;
    memset(&pf, 0, sizeof pf);
    if (st == TC_OK)
        st = run_layers(e, t, batch_size, &r, set, offsets, &pf);
    prefetch_join(&pf);
    tc_fwd_staged_free(&pf.staged);
    e->h = own_h;
    if (set) {
        e->ops->sync(e->be);
        e->ops->release(e->be, set);
    }
    free(r.bi);
    free(r.tok0);
    free(offsets);
    return st;
}
