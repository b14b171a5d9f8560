/* fwd_prof.c: the forward pass's time per operation class
 * (TRTCONV_FWD_PROFILE).
 *
 * `=1` (sync) waits for every operation and charges its wall time: simple,
 * but each wait costs a host round trip and the GPU idles between
 * operations, so small kernels look slower than they are. `=events`
 * records a CUDA event before and after each operation on the stream it
 * runs on and reads the pairs back in batches: the GPU time of each class
 * in an unperturbed run, and the span of the main stream's work from the
 * first operation to the last, whose difference to the sum is time the GPU
 * spent on nothing the profile names (waiting for the host, another
 * stream's work). Without CUDA, or on the CPU backend, `events` falls back
 * to sync. tc_fwd_profile_report prints it all at the engine's end. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include "fwd_internal.h"
#include "trtconv/build_config.h"
#include "trtconv/core/log.h"
#include "trtconv/mpi/gpu_errors.h"

static const char *const prof_names[P_COUNT] = {
    "rmsnorm", "qkv gemm", "rope+split", "attention", "dense gemm", "tp all-reduce", "residual",
    "fc+gate gemm", "silu*mul", "proj gemm", "embedding", "lm_head gemm", "pipeline send/recv",
    "calibration maxima", "layer hook (side)" };

int tc_fwd_prof_mode_from_env(void)
{
    const char *p = getenv("TRTCONV_FWD_PROFILE");
    if (!p || !*p || strcmp(p, "0") == 0)
        return FWD_PROF_OFF;
    return strcmp(p, "events") == 0 ? FWD_PROF_EVENTS : FWD_PROF_SYNC;
}

#if TRTCONV_HAVE_CUDA
#include <cuda_runtime_api.h>

#define PROF_PAIRS 4096

struct fwd_gpu_prof {
    cudaEvent_t ev[2 * PROF_PAIRS]; /* begin, end of pair i: ev[2i], ev[2i+1] */
    int cls[PROF_PAIRS];
    int n;                          /* pairs recorded since the last fold */
    bool open;                      /* ev[2n] recorded, its end not yet */
    int created;                    /* events created so far (lazily) */
    cudaEvent_t first;              /* the first operation's begin */
    /* Layer edges (tc_fwd_prof_edge): the previous layer's end, the current
     * layer's begin and end; have: which of them are recorded. */
    cudaEvent_t prev_end, begin, end;
    bool have_prev_end, have_begin, have_end, edges_made;
};

static tc_status prof_new(cudaEvent_t *ev)
{
    return TC_CUDA_TRY(cudaEventCreate(ev));
}

/* Fold the recorded pairs into prof_s: all of them (wait), or only the
 * completed ones at the front without waiting for the GPU, so that a full
 * pool does not drain the stream the host keeps ahead of. */
static tc_status prof_fold(tc_fwd_engine *e, bool wait)
{
    fwd_gpu_prof *p = e->gprof;
    if (!p || p->n == 0)
        return TC_OK;
    int done = 0;
    tc_status st = TC_OK;
    for (; done < p->n && st == TC_OK; done++) {
        cudaEvent_t end = p->ev[2 * done + 1];
        if (!wait) {
            const cudaError_t q = cudaEventQuery(end);
            if (q == cudaErrorNotReady)
                break;
            st = TC_CUDA_TRY(q);
        } else {
            st = TC_CUDA_TRY(cudaEventSynchronize(end));
        }
        float ms = 0.0f, span_ms = 0.0f;
        if (st == TC_OK)
            st = TC_CUDA_TRY(cudaEventElapsedTime(&ms, p->ev[2 * done], end));
        if (st == TC_OK)
            e->prof_s[p->cls[done]] += ms / 1e3;
        /* The span covers the main stream's classes; a hook beside them
         * may end later and is reported on its own. */
        if (st == TC_OK && p->cls[done] != P_HOOK)
            st = TC_CUDA_TRY(cudaEventElapsedTime(&span_ms, p->first, end));
        if (st == TC_OK && span_ms / 1e3 > e->prof_span_s)
            e->prof_span_s = span_ms / 1e3;
    }
    if (st != TC_OK)
        return st;
    /* The folded pairs' events are reused for the next ones (an open
     * begin, ev[2n], moves along). */
    cudaEvent_t moved[2 * PROF_PAIRS];
    const int keep = p->n - done, evs = 2 * keep + (p->open ? 1 : 0);
    memcpy(moved, p->ev + 2 * done, (size_t)evs * sizeof *moved);
    memcpy(moved + evs, p->ev, (size_t)(2 * done) * sizeof *moved);
    memmove(p->cls, p->cls + done, (size_t)keep * sizeof *p->cls);
    memcpy(p->ev, moved, (size_t)(evs + 2 * done) * sizeof *moved);
    p->n = keep;
    return TC_OK;
}

tc_status tc_fwd_prof_fold(tc_fwd_engine *e)
{
    return prof_fold(e, true);
}

tc_status tc_fwd_prof_mark(tc_fwd_engine *e, int cls)
{
    fwd_gpu_prof *p = e->gprof;
    cudaStream_t s = (cudaStream_t)e->ops->stream(e->be);
    if (!p) {
        /* The pool is made at the first operation, which also starts the span. */
        p = calloc(1, sizeof *p);
        if (!p)
            return tc_fail(TC_E_INTERNAL, "out of memory (profile events)");
        e->gprof = p;
        TRY(prof_new(&p->first));
        TRY(TC_CUDA_TRY(cudaEventRecord(p->first, s)));
    }
    const int k = 2 * p->n + (cls >= 0);
    if (cls < 0 ? p->open : !p->open)
        return tc_fail(TC_E_INTERNAL, "profile events out of order (class %d)", cls);
    while (p->created <= k)
        TRY(prof_new(&p->ev[p->created++]));
    TRY(TC_CUDA_TRY(cudaEventRecord(p->ev[k], s)));
    if (cls < 0) {
        p->open = true;
        return TC_OK;
    }
    p->cls[p->n++] = cls;
    p->open = false;
    if (p->n % 256 == 0)
        TRY(prof_fold(e, false));
    return p->n == PROF_PAIRS ? prof_fold(e, true) : TC_OK;
}

tc_status tc_fwd_prof_edge(tc_fwd_engine *e, bool end)
{
    fwd_gpu_prof *p = e->gprof;
    if (e->profile != FWD_PROF_EVENTS || !p)
        return TC_OK; /* the pool exists from the first operation on */
    if (!p->edges_made) {
        TRY(prof_new(&p->prev_end));
        TRY(prof_new(&p->begin));
        TRY(prof_new(&p->end));
        p->edges_made = true;
    }
    cudaStream_t s = (cudaStream_t)e->ops->stream(e->be);
    TRY(TC_CUDA_TRY(cudaEventRecord(end ? p->end : p->begin, s)));
    if (end)
        p->have_end = true;
    else
        p->have_begin = true;
    return TC_OK;
}

tc_status tc_fwd_prof_edges_fold(tc_fwd_engine *e)
{
    fwd_gpu_prof *p = e->gprof;
    if (e->profile != FWD_PROF_EVENTS || !p || !p->edges_made || !p->have_end)
        return TC_OK;
    if (p->have_prev_end && p->have_begin) {
        float ms = 0.0f;
        TRY(TC_CUDA_TRY(cudaEventSynchronize(p->begin)));
        TRY(TC_CUDA_TRY(cudaEventElapsedTime(&ms, p->prev_end, p->begin)));
        const double gap = ms / 1e3;
        e->prof_between_s += gap;
        /* Whether the gaps are the steady state or a few layers' (the first
         * allocations of the read-ahead's memory): the longest and where. */
        e->prof_between_n++;
        if (gap > e->prof_between_max_s) {
            e->prof_between_max_s = gap;
            e->prof_between_max_at = e->prof_between_n;
        }
    }
    /* This layer's end is the next gap's start. */
    cudaEvent_t t = p->prev_end;
    p->prev_end = p->end;
    p->end = t;
    p->have_prev_end = true;
    p->have_begin = p->have_end = false;
    return TC_OK;
}

void tc_fwd_prof_free(tc_fwd_engine *e)
{
    fwd_gpu_prof *p = e->gprof;
    if (!p)
        return;
    if (p->edges_made) {
        cudaEventDestroy(p->prev_end);
        cudaEventDestroy(p->begin);
        cudaEventDestroy(p->end);
    }
    for (int i = 0; i < p->created; i++)
        cudaEventDestroy(p->ev[i]);
    cudaEventDestroy(p->first);
    free(p);
    e->gprof = NULL;
}

bool tc_fwd_prof_events_supported(const tc_fwd_engine *e)
{
    return e->ops->stream && e->ops->stream(e->be) != NULL;
}

#else /* !TRTCONV_HAVE_CUDA */

tc_status tc_fwd_prof_fold(tc_fwd_engine *e)
{
    (void)e;
    return TC_OK;
}

tc_status tc_fwd_prof_mark(tc_fwd_engine *e, int cls)
{
    (void)e;
    (void)cls;
    return tc_fail(TC_E_INTERNAL, "profile events without CUDA");
}

tc_status tc_fwd_prof_edge(tc_fwd_engine *e, bool end)
{
    (void)e;
    (void)end;
    return TC_OK;
}

tc_status tc_fwd_prof_edges_fold(tc_fwd_engine *e)
{
    (void)e;
    return TC_OK;
}

void tc_fwd_prof_free(tc_fwd_engine *e)
{
    (void)e;
}

bool tc_fwd_prof_events_supported(const tc_fwd_engine *e)
{
    (void)e;
    return false;
}

#endif

void tc_fwd_profile_report(tc_fwd_engine *e)
{
    if (!e->profile)
        return;
    if (e->profile == FWD_PROF_EVENTS && tc_fwd_prof_fold(e) != TC_OK)
        tc_log(TC_LOG_WARNING, "profile: reading the events failed: %s", tc_first_error());
    double total = 0.0;
    for (int i = 0; i < P_COUNT; i++)
        if (i != P_HOOK)
            total += e->prof_s[i];
    for (int i = 0; i < P_COUNT; i++)
        if (e->prof_s[i] > 0.0 && i != P_HOOK)
            tc_log(TC_LOG_INFO, "profile: %-18s %8.3f s %5.1f%%", prof_names[i], e->prof_s[i],
                   100.0 * e->prof_s[i] / total);
    /* With events, what the host spent queueing each class (the calls
     * alone) and recording the events: when the host is barely ahead of
     * the GPU, a class whose queueing is slow shows here and its GPU time
     * above includes the wait for it. */
    for (int i = 0; i < P_COUNT; i++)
        if (e->prof_calls[i] > 0)
            tc_log(TC_LOG_INFO, "profile: host queueing %-18s %8.3f s, %lld calls, %.1f us each",
                   prof_names[i], e->prof_submit_s[i], e->prof_calls[i],
                   1e6 * e->prof_submit_s[i] / (double)e->prof_calls[i]);
    if (e->prof_mark_s > 0.0)
        tc_log(TC_LOG_INFO, "profile: host recording the profile's events %8.3f s", e->prof_mark_s);
    static const char *const host_names[FWD_HOST_COUNT] = {
        "join read-ahead, upload, weight maxima", "queue the micro-batches",
        "previous layer's hook", "wait for the GPU", "publish the statistics" };
    for (int i = 0; i < FWD_HOST_COUNT; i++)
        if (e->prof_host_s[i] > 0.0)
            tc_log(TC_LOG_INFO, "profile: host, layer by layer: %-38s %8.3f s", host_names[i],
                   e->prof_host_s[i]);
    /* The rate of the arithmetic that matters (docs/performance.md, item
     * 3): what the linears and attention did, over the operations' time. */
    if (e->prof_flop > 0.0 && total > 0.0)
        tc_log(TC_LOG_INFO, "profile: %.3g FLOP in the linears and attention (causal work "
               "counted once): %.3g TFLOP/s over the operations' time%s", e->prof_flop,
               e->prof_flop / total / 1e12,
               e->profile == FWD_PROF_EVENTS ? "" : " (each synchronised: a lower bound)");
    if (e->profile != FWD_PROF_EVENTS)
        return;
    /* The hook runs on the side stream, overlapping the classes above. */
    if (e->prof_s[P_HOOK] > 0.0)
        tc_log(TC_LOG_INFO, "profile: %-18s %8.3f s (beside the forward pass)",
               prof_names[P_HOOK], e->prof_s[P_HOOK]);
    tc_log(TC_LOG_INFO, "profile: GPU time of the operations %.3f s in a span of %.3f s from "
           "the first to the last (%.3f s in neither: waiting for the host or for other work)",
           total, e->prof_span_s, e->prof_span_s > total ? e->prof_span_s - total : 0.0);
    if (e->prof_flop > 0.0 && e->prof_span_s > 0.0)
        tc_log(TC_LOG_INFO, "profile: %.3g TFLOP/s over the span",
               e->prof_flop / e->prof_span_s / 1e12);
    if (e->prof_between_s > 0.0)
        tc_log(TC_LOG_INFO, "profile: of the span, between one layer's last operation and the "
               "next's first %.3f s over %lld gaps (the next layer's weight maxima; the host), "
               "the longest %.4f s before local layer %lld",
               e->prof_between_s, (long long)e->prof_between_n, e->prof_between_max_s,
               (long long)e->prof_between_max_at);
}
