/* fwd_stream.c: layer-streamed calibration (fwd.h tc_fwd_calibrate_streamed).
 *
 * Statistics of layer L depend only on layers <= L, so the schedule runs
 * every calibration token of the rank's replica through layer L before
 * layer L+1: the hidden states of the whole set live in one backend buffer
 * ([tokens, H] in the forward dtype: 512 x 512 tokens of a 4096-wide model
 * are 2 GiB), and only one decoder layer's weights are resident at a time,
 * whatever the model's depth. Each micro-batch's slice of that buffer is
 * the engine's residual stream (e->h) while the batch runs, so nothing is
 * copied between layers (unless the set does not fit: hidden_set below);
 * each batch's metadata and rope tables are uploaded once, not once per
 * layer. While layer L computes, a helper thread reads layer L+1's slices
 * from the source files through one small pinned chunk straight into
 * backend memory reserved next to layer L (on the backend's transfer
 * stream): two layers resident (three while a method's hook works on the
 * previous one), host memory independent of the layer's size, nothing left
 * to upload when L+1's turn comes. A method that
 * needs a layer's weights (SmoothQuant) works on it in the per-layer hook,
 * called while the next layer computes (finish_layer), before the release.
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
#include <stdio.h>
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
 * replica's buffer, tok0[n_local] the replica's token count; each batch's
 * metadata lives in its own backend buffers for the whole schedule. */
typedef struct replica_batches {
    int64_t n_local;
    int64_t *bi, *tok0;
    int64_t **offsets;             /* host, per batch: n_seqs + 1 */
    int32_t **meta;                /* backend, per batch */
    float **rope;                  /* backend, per batch */
    fwd_batch *bt;
} replica_batches;

static void replica_batches_free(tc_fwd_engine *e, replica_batches *r)
{
    for (int64_t k = 0; k < r->n_local; k++) {
        if (r->offsets)
            free(r->offsets[k]);
        if (r->meta && r->meta[k])
            e->ops->release(e->be, r->meta[k]);
        if (r->rope && r->rope[k])
            e->ops->release(e->be, r->rope[k]);
    }
    free(r->offsets);
    free(r->meta);
    free(r->rope);
    free(r->bt);
    free(r->bi);
    free(r->tok0);
}

static tc_status replica_batches_make(tc_fwd_engine *e, const tc_token_set *t,
                                      int64_t batch_size, replica_batches *r)
{
    const int64_t nb = tc_fwd_batch_count(t, batch_size);
    const int64_t n = nb > e->dp_rank ? (nb - e->dp_rank + e->dp - 1) / e->dp : 0;
    r->n_local = n;
    r->bi = calloc((size_t)n + 1, sizeof *r->bi);
    r->tok0 = calloc((size_t)n + 1, sizeof *r->tok0);
    r->offsets = calloc((size_t)n + 1, sizeof *r->offsets);
    r->meta = calloc((size_t)n + 1, sizeof *r->meta);
    r->rope = calloc((size_t)n + 1, sizeof *r->rope);
    r->bt = calloc((size_t)n + 1, sizeof *r->bt);
    if (!r->bi || !r->tok0 || !r->offsets || !r->meta || !r->rope || !r->bt)
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
        r->offsets[k] = malloc(((size_t)batch_size + 1) * sizeof **r->offsets);
        if (!r->offsets[k])
            return tc_fail(TC_E_INTERNAL, "out of memory");
        TRY(e->ops->alloc(e->be, tc_fwd_meta_bytes(e), (void **)&r->meta[k]));
        TRY(e->ops->alloc(e->be, tc_fwd_rope_bytes(e), (void **)&r->rope[k]));
        TRY(tc_fwd_setup_batch_into(e, t, s0, s1, r->offsets[k], r->meta[k], r->rope[k],
                                    &r->bt[k]));
    }
    r->tok0[n] = tok;
    return TC_OK;
}

/* The hidden states of the replica's tokens: in backend memory, or, when
 * they would take more than half of what the backend has free (or with
 * TRTCONV_CALIB_SPILL=1, which the tests use), in host memory, each batch
 * copied into the engine's own buffer before its step and back after. */
typedef struct hidden_set {
    char *dev;               /* backend buffer, or NULL when spilled */
    char *host;              /* host buffer (pinned), or NULL */
    void *own_h;             /* the engine's residual-stream buffer */
    const replica_batches *r;
} hidden_set;

static size_t batch_bytes(const tc_fwd_engine *e, const replica_batches *r, int64_t k)
{
    return (size_t)(r->tok0[k + 1] - r->tok0[k]) * (size_t)e->H * e->es;
}

static size_t batch_offset(const tc_fwd_engine *e, const replica_batches *r, int64_t k)
{
    return (size_t)r->tok0[k] * (size_t)e->H * e->es;
}

/* Make batch k's rows the engine's residual stream. */
static tc_status enter_batch(tc_fwd_engine *e, const hidden_set *hs, int64_t k)
{
    if (hs->dev) {
        e->h = hs->dev + batch_offset(e, hs->r, k);
        return TC_OK;
    }
    e->h = hs->own_h;
    return e->ops->upload(e->be, e->h, hs->host + batch_offset(e, hs->r, k),
                          batch_bytes(e, hs->r, k));
}

/* Keep what the step wrote (spilled sets only). */
static tc_status leave_batch(tc_fwd_engine *e, const hidden_set *hs, int64_t k)
{
    if (hs->dev)
        return TC_OK;
    return e->ops->download(e->be, hs->host + batch_offset(e, hs->r, k), e->h,
                            batch_bytes(e, hs->r, k));
}

static tc_status hidden_set_alloc(tc_fwd_engine *e, const replica_batches *r, hidden_set *hs)
{
    memset(hs, 0, sizeof *hs);
    hs->own_h = e->h;
    hs->r = r;
    const int64_t tokens = r->tok0[r->n_local];
    const size_t bytes = (size_t)tokens * (size_t)e->H * e->es;
    const char *force = getenv("TRTCONV_CALIB_SPILL");
    const bool spill = (force && *force && strcmp(force, "0") != 0) ||
                       bytes > e->ops->mem_available(e->be) / 2;
    if (!spill && e->ops->alloc(e->be, bytes ? bytes : 1, (void **)&hs->dev) != TC_OK)
        return tc_fail(TC_E_USAGE, "the hidden states of this rank's calibration tokens (%lld "
                       "tokens x %lld x %zu bytes = %.2f GiB) do not fit in its %s memory: "
                       "calibrate on fewer tokens (--calib_size, --calib_max_seq_length) or on "
                       "more data-parallel ranks (docs/calibration-memory.md)", (long long)tokens,
                       (long long)e->H, e->es, (double)bytes / (1024.0 * 1024.0 * 1024.0),
                       e->ops->name);
    if (!spill)
        return TC_OK;
    hs->host = malloc(bytes ? bytes : 1);
    if (!hs->host)
        return tc_fail(TC_E_USAGE, "the hidden states of this rank's calibration tokens (%lld "
                       "tokens x %lld x %zu bytes = %.2f GiB) fit neither in its %s memory nor "
                       "in host memory: calibrate on fewer tokens (--calib_size, "
                       "--calib_max_seq_length) or on more data-parallel ranks "
                       "(docs/calibration-memory.md)", (long long)tokens, (long long)e->H, e->es,
                       (double)bytes / (1024.0 * 1024.0 * 1024.0), e->ops->name);
    e->ops->pin_host(e->be, hs->host, bytes ? bytes : 1);
    if (e->comm->rank == 0)
        tc_log(TC_LOG_INFO, "calibration: the hidden states of the tokens (%.2f GiB) stay in host "
               "memory, each micro-batch copied to the %s backend for each layer",
               (double)bytes / (1024.0 * 1024.0 * 1024.0), e->ops->name);
    return TC_OK;
}

static void hidden_set_free(tc_fwd_engine *e, hidden_set *hs)
{
    e->h = hs->own_h;
    if (hs->dev)
        e->ops->release(e->be, hs->dev);
    if (hs->host) {
        e->ops->unpin_host(e->be, hs->host);
        free(hs->host);
    }
    memset(hs, 0, sizeof *hs);
}

/* The method's work on local layer li (the layer hook: SmoothQuant smooths,
 * quantizes and writes it) on the backend's side stream, next to li + 1's
 * forward pass; the statistics it reads were published after li's pass. */
static tc_status run_hook(tc_fwd_engine *e, int64_t li)
{
    tc_status st = TC_OK;
    if (e->ops->use_side_stream)
        e->ops->use_side_stream(e->be, true);
    if (e->profile == FWD_PROF_EVENTS)
        st = tc_fwd_prof_mark(e, -1);
    if (st == TC_OK)
        st = e->layer_hook(e->hook_ctx, e->layer0 + li);
    if (st == TC_OK && e->profile == FWD_PROF_EVENTS)
        st = tc_fwd_prof_mark(e, P_HOOK);
    if (st == TC_OK)
        st = e->ops->sync(e->be);
    if (e->ops->use_side_stream)
        e->ops->use_side_stream(e->be, false);
    return st;
}

/* Called once layer li + 1 is queued: li's hook runs here, beside li + 1's
 * queued work (while it runs nothing more is queued, so a hook longer than
 * that work idles the GPU: docs/calibration-memory.md). Then li's memory
 * goes to the read-ahead's spares (its forward pass was synchronised before
 * its statistics were published, its hook just now), or is released when
 * the hook failed. Three layers are resident until here (li, li + 1, and
 * li + 2 being read ahead). */
static tc_status finish_layer(tc_fwd_engine *e, int64_t li, prefetch *pf)
{
    const tc_status st = e->layer_hook ? run_hook(e, li) : TC_OK;
    if (st == TC_OK)
        tc_fwd_recycle_layer(e, li, &pf->staged);
    else
        tc_fwd_release_layer(e, li);
    return st;
}

/* Layer li resident (the read-ahead joined and taken over), li + 1's read
 * started into the reserved memory, li's weight maxima queued. */
static tc_status prepare_layer(tc_fwd_engine *e, int64_t li, prefetch *pf)
{
    TRY(prefetch_join(pf));
    TRY(tc_fwd_load_layer(e, li, &pf->staged));
    if (li + 1 < e->n_layers) {
        TRY(tc_fwd_staged_reserve(e, li + 1, &pf->staged));
        TRY(prefetch_start(pf, e, li + 1));
    }
    return tc_fwd_layer_weight_stats(e, li);
}

/* The layer loop. Between two layers the GPU waits only for the
 * statistics' publication: layer li + 1 is made resident (its read joined,
 * li + 2's started, its weight maxima queued) and li - 1's hook run while
 * li's micro-batches are still queued on the device, and no backend memory
 * is allocated or freed there (the read-ahead reuses the finished layer's:
 * cudaFree would wait for the whole device). */
static tc_status run_layers(tc_fwd_engine *e, const replica_batches *r, const hidden_set *hs,
                            prefetch *pf)
{
    if (e->profile)
        tc_log(TC_LOG_VERBOSE, "profile: engine ready, staging the inputs");
    /* Layer 0 is read while the inputs are embedded. */
    if (e->n_layers > 0) {
        TRY(tc_fwd_staged_reserve(e, 0, &pf->staged));
        TRY(prefetch_start(pf, e, 0));
    }
    for (int64_t k = 0; k < r->n_local; k++) {
        TRY(enter_batch(e, hs, k));
        TRY(tc_fwd_stage_input(e, &r->bt[k]));
        TRY(leave_batch(e, hs, k));
    }
    if (e->profile)
        tc_log(TC_LOG_VERBOSE, "profile: inputs staged");
    /* With profiling, where the host's time goes per layer (prof_host_s):
     * a GPU that waits for the host shows here, not in the operations. */
    double *hp = e->prof_host_s, t = e->profile ? tc_now_seconds() : 0.0;
#define HOST_PHASE(i)                                  \
    do {                                               \
        if (e->profile) {                              \
            const double now_ = tc_now_seconds();      \
            hp[i] += now_ - t;                         \
            t = now_;                                  \
        }                                              \
    } while (0)
    tc_status st = e->n_layers > 0 ? prepare_layer(e, 0, pf) : TC_OK;
    HOST_PHASE(FWD_HOST_LOAD);
    if (st != TC_OK) {
        tc_fwd_release_layer(e, 0);
        return st;
    }
    /* The layer loop's own rate, profiled or not: from layer 0 resident to
     * the last layer's statistics published (its hook, after the GPU's
     * work, is the tail). */
    const double loop_t0 = tc_now_seconds(), loop_flop0 = e->prof_flop;
    for (int64_t li = 0; st == TC_OK && li < e->n_layers; li++) {
        if (li > 0)
            st = tc_fwd_prof_edge(e, false);
        for (int64_t k = 0; st == TC_OK && k < r->n_local; k++) {
            st = enter_batch(e, hs, k);
            if (st == TC_OK)
                st = tc_fwd_run_layer(e, li, &r->bt[k]);
            if (st == TC_OK)
                st = leave_batch(e, hs, k);
        }
        if (st == TC_OK)
            st = tc_fwd_prof_edge(e, true);
        HOST_PHASE(FWD_HOST_QUEUE);
        /* Layer li is queued: the previous layer's hook runs beside it. */
        if (li > 0 && st == TC_OK)
            st = finish_layer(e, li - 1, pf);
        HOST_PHASE(FWD_HOST_HOOK);
        if (st == TC_OK && li + 1 < e->n_layers)
            st = prepare_layer(e, li + 1, pf);
        HOST_PHASE(FWD_HOST_LOAD);
        if (st == TC_OK)
            st = e->ops->sync(e->be);
        if (st == TC_OK)
            st = tc_fwd_prof_edges_fold(e);
        HOST_PHASE(FWD_HOST_WAIT);
        if (st == TC_OK)
            st = tc_fwd_publish_layer_stats(e, li);
        HOST_PHASE(FWD_HOST_PUBLISH);
        if (st != TC_OK) {
            /* Whatever is still resident: li - 1 (a failed hook released
             * it), li, and li + 1 when its preparation got that far. */
            for (int64_t j = li > 0 ? li - 1 : 0; j <= li + 1 && j < e->n_layers; j++)
                tc_fwd_release_layer(e, j);
        }
    }
    if (st != TC_OK)
        return st;
    const double loop_s = tc_now_seconds() - loop_t0;
    if (e->n_layers > 0 && loop_s > 0.0)
        tc_log(TC_LOG_VERBOSE, "layer loop: %lld layers in %.3f s, %.3f s a layer; %.3g FLOP in "
               "the linears and attention at %.0f TFLOP/s", (long long)e->n_layers, loop_s,
               loop_s / (double)e->n_layers, e->prof_flop - loop_flop0,
               (e->prof_flop - loop_flop0) / loop_s / 1e12);
    if (e->n_layers > 0)
        TRY(finish_layer(e, e->n_layers - 1, pf));
    HOST_PHASE(FWD_HOST_HOOK);
#undef HOST_PHASE
    if (e->profile)
        tc_log(TC_LOG_VERBOSE, "profile: every layer done");
    e->layer_stats_taken = true;
    const bool last = e->pp_rank == e->pp - 1;
    for (int64_t k = 0; k < r->n_local && !(last && e->skip_head); k++) {
        const int64_t T = r->tok0[k + 1] - r->tok0[k];
        TRY(enter_batch(e, hs, k));
        if (!last)
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
    replica_batches r;
    memset(&r, 0, sizeof r);
    hidden_set hs;
    memset(&hs, 0, sizeof hs);
    hs.own_h = e->h;
    tc_status st = replica_batches_make(e, t, batch_size, &r);
    if (st == TC_OK && e->profile)
        tc_log(TC_LOG_VERBOSE, "profile: %lld micro-batches' metadata uploaded",
               (long long)r.n_local);
    if (st == TC_OK)
        st = hidden_set_alloc(e, &r, &hs);
    if (st == TC_OK && e->profile)
        tc_log(TC_LOG_VERBOSE, "profile: hidden states allocated");
    prefetch pf;
    memset(&pf, 0, sizeof pf);
    if (st == TC_OK)
        st = run_layers(e, &r, &hs, &pf);
    prefetch_join(&pf);
    e->ops->sync(e->be);
    hidden_set_free(e, &hs);
    tc_fwd_staged_free(e, &pf.staged);
    replica_batches_free(e, &r);
    return st;
}
