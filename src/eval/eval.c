/* eval.c: the source model and a converted checkpoint in lockstep (eval.h).
 *
 * Per chunk of batch_size x dp sequences (one micro-batch per replica):
 * the source engine runs and its sink keeps, on each rank, what the rank
 * reports (hidden states of the stage's layers on tp rank 0, logits columns
 * on every last-stage rank); the converted engine runs on the same batch
 * and its sink compares as the tensors arrive; then the last stage's tp
 * ranks combine their logits columns per token (GPU engines keep their
 * logits on the device, where kernels/eval_logits.cu compares them), and
 * the converted engine runs a third time on the source's layer inputs. */
#define _POSIX_C_SOURCE 200809L
#include "trtconv/eval/eval.h"

#include <math.h>
#include <mpi.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "trtconv/core/log.h"
#include "trtconv/eval/logits_rows.h"
#include "trtconv/build_config.h"
#if TRTCONV_HAVE_CUDA
#include "trtconv/kernels/eval_logits.h"
#endif
#include "trtconv/mpi/comm.h"

typedef struct eval_ctx {
    int phase;                   /* 0: source, 1: converted, 2: converted on the source's inputs */
    int64_t L;
    int tp_rank;
    int64_t layer0, n_layers;    /* this rank's stage */
    /* the source's hidden states of this chunk, on every tp rank: [L + 2],
     * index l + 1 the output of layer l, 0 the embedding, L + 1 the norm */
    float **hid;
    int64_t *hid_elems, *hid_cap;
    /* logits columns of both models */
    float *lg[2];
    int64_t lg_cap[2], lg_rows, lg_cols, lg_col0;
    /* accumulators: per layer (L: the norm) sums of squared differences,
     * of squares, and of squared differences on the source's inputs */
    double *d2, *r2, *d2_local;
    /* each linear's output (tc_fwd_set_linear_report), the source's first
     * rows of this chunk per (local layer, linear), and the sums over the
     * converted model's outputs on the source's inputs, per (layer, linear) */
    int64_t lin_rows;
    float **lin;
    int64_t *lin_elems, *lin_cap;
    double *ld2, *lr2;
    double nll[2], top1, kl, predicted;
    /* GPU engines: the logits stay on the device and are compared there
     * (kernels/eval_logits.cu); else the sinks' host copies in lg. */
    bool on_device;
    const tc_fwd_engine *src, *cvt;
    tc_status err;
} eval_ctx;

static tc_status grow(float **p, int64_t *cap, int64_t n)
{
    if (*cap >= n)
        return TC_OK;
    float *q = realloc(*p, (size_t)n * sizeof(float));
    if (!q)
        return tc_fail(TC_E_INTERNAL, "out of memory keeping %lld floats for the comparison",
                       (long long)n);
    *p = q;
    *cap = n;
    return TC_OK;
}

/* *d2 += sum of (got - ref)^2, *r2 += sum of ref^2, in float64. */
static void sum_squares(const float *got, const float *ref, int64_t n, double *d2, double *r2)
{
    for (int64_t k = 0; k < n; k++) {
        const double d = (double)got[k] - (double)ref[k];
        *d2 += d * d;
        *r2 += (double)ref[k] * (double)ref[k];
    }
}

static tc_status sink(void *ctx, int64_t batch, const char *kind, int64_t layer, int64_t col0,
                      const float *data, int64_t rows, int64_t cols)
{
    eval_ctx *c = ctx;
    (void)batch;
    const int64_t n = rows * cols;
    const bool norm = !strcmp(kind, "norm");
    if (!strcmp(kind, "layer") || norm || !strcmp(kind, "embed") || !strcmp(kind, "input")) {
        /* slot l + 1: the output of layer l (the input of layer l + 1) */
        const int64_t i = norm ? c->L + 1 : !strcmp(kind, "embed") ? 0 : layer + 1;
        if (i < 0 || i > c->L + 1)
            return tc_fail(TC_E_INTERNAL, "eval: report of layer %lld", (long long)layer);
        if (c->phase == 0) {
            TC_TRY(grow(&c->hid[i], &c->hid_cap[i], n));
            memcpy(c->hid[i], data, (size_t)n * sizeof(float));
            c->hid_elems[i] = n;
            return TC_OK;
        }
        /* Own layers and the norm, counted once per replica (tp rank 0). */
        if (c->tp_rank != 0 || !(norm || (!strcmp(kind, "layer") && layer >= c->layer0)))
            return TC_OK;
        if (c->hid_elems[i] != n)
            return tc_fail(TC_E_INTERNAL, "eval: layer %lld: %lld values against %lld",
                           (long long)layer, (long long)n, (long long)c->hid_elems[i]);
        double d2 = 0.0, r2 = 0.0;
        sum_squares(data, c->hid[i], n, &d2, &r2);
        const int64_t slot = norm ? c->L : layer;
        if (c->phase == 1) {
            c->d2[slot] += d2;
            c->r2[slot] += r2;
        } else {
            c->d2_local[slot] += d2;
        }
        return TC_OK;
    }
    if (!strcmp(kind, "logits") && c->phase < 2) {
        TC_TRY(grow(&c->lg[c->phase], &c->lg_cap[c->phase], n));
        memcpy(c->lg[c->phase], data, (size_t)n * sizeof(float));
        c->lg_rows = rows;
        c->lg_cols = cols;
        c->lg_col0 = col0;
    }
    return TC_OK;
}

static const char *const linear_kinds[TC_EVAL_LINEARS] = { "qkv", "dense", "fc", "gate", "proj" };

const char *tc_eval_linear_name(int i)
{
    return i >= 0 && i < TC_EVAL_LINEARS ? linear_kinds[i] : "?";
}

/* A linear's output rows: the source's kept (phase 0), the converted
 * model's on the source's inputs compared (phase 2). dense and proj are
 * whole on every tp rank and counted on tp rank 0; qkv, fc and gate are
 * this rank's columns, so every tp rank adds its share. */
static tc_status linear_sink(void *ctx, int64_t batch, const char *kind, int64_t layer,
                             int64_t col0, const float *data, int64_t rows, int64_t cols)
{
    eval_ctx *c = ctx;
    (void)batch, (void)col0;
    int k = 0;
    while (k < TC_EVAL_LINEARS && strcmp(kind, linear_kinds[k]))
        k++;
    const int64_t li = layer - c->layer0;
    if (k == TC_EVAL_LINEARS || li < 0 || li >= c->n_layers || c->phase == 1)
        return k == TC_EVAL_LINEARS ? tc_fail(TC_E_INTERNAL, "eval: linear report %s", kind)
                                    : TC_OK;
    const int64_t slot = li * TC_EVAL_LINEARS + k, n = rows * cols;
    if (c->phase == 0) {
        TC_TRY(grow(&c->lin[slot], &c->lin_cap[slot], n));
        memcpy(c->lin[slot], data, (size_t)n * sizeof(float));
        c->lin_elems[slot] = n;
        return TC_OK;
    }
    if (c->lin_elems[slot] != n)
        return tc_fail(TC_E_INTERNAL, "eval: layer %lld %s: %lld values against %lld",
                       (long long)layer, kind, (long long)n, (long long)c->lin_elems[slot]);
    if (c->tp_rank != 0 && (k == 1 || k == 4))
        return TC_OK;
    double d2 = 0.0, r2 = 0.0;
    sum_squares(data, c->lin[slot], n, &d2, &r2);
    c->ld2[layer * TC_EVAL_LINEARS + k] += d2;
    c->lr2[layer * TC_EVAL_LINEARS + k] += r2;
    return TC_OK;
}

/* The per-token work on this rank's logits columns, rows split among
 * threads (a vocabulary of 128k makes it the bulk of eval's CPU time). */
typedef struct rows_job {
    const eval_ctx *c;
    const int32_t *next;
    double *mx, *sum;
    long long *arg;
    int64_t T;
    int pass;           /* 0: maxima, 1: sums given the global maxima */
    int threads, index;
} rows_job;

static void *rows_work(void *arg)
{
    const rows_job *j = arg;
    const eval_ctx *c = j->c;
    const int64_t r0 = j->T * j->index / j->threads, r1 = j->T * (j->index + 1) / j->threads;
    if (j->pass == 0)
        tc_logits_rows_max(c->lg[0], c->lg[1], c->lg_cols, r0, r1, j->mx);
    else
        tc_logits_rows_sums(c->lg[0], c->lg[1], c->lg_cols, c->lg_col0, j->next, j->mx, r0, r1,
                            j->sum, j->arg);
    return NULL;
}

static void rows_pass(rows_job *tmpl, int pass)
{
    enum { MAX_THREADS = 64 };
    const int n = tmpl->threads < 1 ? 1 : tmpl->threads > MAX_THREADS ? MAX_THREADS : tmpl->threads;
    rows_job jobs[MAX_THREADS];
    pthread_t th[MAX_THREADS];
    bool started[MAX_THREADS] = { false };
    for (int i = 0; i < n; i++) {
        jobs[i] = *tmpl;
        jobs[i].pass = pass;
        jobs[i].threads = n;
        jobs[i].index = i;
        started[i] = i > 0 && pthread_create(&th[i], NULL, rows_work, &jobs[i]) == 0;
    }
    for (int i = 0; i < n; i++)
        if (!started[i])
            rows_work(&jobs[i]); /* this thread's share, or a thread that did not start */
    for (int i = 1; i < n; i++)
        if (started[i])
            pthread_join(th[i], NULL);
}

/* One pass of the per-row work: on the device over both engines' logits,
 * or on the host copies by threads. */
static tc_status rows_pass_any(rows_job *job, int pass)
{
    const eval_ctx *c = job->c;
    if (!c->on_device) {
        rows_pass(job, pass);
        return TC_OK;
    }
#if TRTCONV_HAVE_CUDA
    const void *a, *b;
    tc_dtype dta, dtb;
    int64_t ra, rb, lda, ldb, va, vb, ca, cb;
    tc_fwd_device_logits(c->src, &a, &dta, &ra, &lda, &va, &ca);
    tc_fwd_device_logits(c->cvt, &b, &dtb, &rb, &ldb, &vb, &cb);
    if (!a || !b || ra != job->T || rb != job->T || va != vb || ca != cb)
        return tc_fail(TC_E_INTERNAL, "eval: device logits [%lld, %lld] and [%lld, %lld] for a "
                       "batch of %lld tokens", (long long)ra, (long long)va, (long long)rb,
                       (long long)vb, (long long)job->T);
    return pass == 0 ? tc_logits_rows_max_cuda(a, dta, lda, b, dtb, ldb, job->T, va, job->mx)
                     : tc_logits_rows_sums_cuda(a, dta, lda, b, dtb, ldb, job->T, va, ca,
                                                job->next, job->mx, job->sum, job->arg);
#else
    (void)pass;
    return tc_fail(TC_E_INTERNAL, "eval: device logits without CUDA");
#endif
}

/* Combine the logits columns of this chunk's batch over the last stage's
 * tp ranks (tp: their communicator) and accumulate the token metrics on tp
 * rank 0. next[r]: the id row r predicts, -1 for a sequence's last token.
 * The maxima are float32 values, so the argmax test is an exact compare. */
static tc_status logits_step(eval_ctx *c, MPI_Comm tp, int tp_rank, const int32_t *next,
                             int64_t T, int threads)
{
    double *mx = malloc((size_t)T * 2 * sizeof(double));
    double *sum = malloc((size_t)T * 6 * sizeof(double));
    long long *arg = malloc((size_t)T * 2 * sizeof(long long));
    tc_status st = mx && sum && arg ? TC_OK : tc_fail(TC_E_INTERNAL, "out of memory");
    rows_job job = { .c = c, .next = next, .mx = mx, .sum = sum, .arg = arg, .T = T,
                     .threads = threads };
    if (st == TC_OK)
        st = rows_pass_any(&job, 0);
    if (st == TC_OK)
        st = TC_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, mx, (int)(2 * T), MPI_DOUBLE, MPI_MAX, tp));
    if (st == TC_OK)
        st = rows_pass_any(&job, 1);
    if (st == TC_OK)
        st = TC_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, sum, (int)(6 * T), MPI_DOUBLE, MPI_SUM, tp));
    if (st == TC_OK)
        st = TC_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, arg, (int)(2 * T), MPI_LONG_LONG, MPI_MIN, tp));
    for (int64_t r = 0; st == TC_OK && tp_rank == 0 && r < T; r++) {
        if (next[r] < 0)
            continue;
        const double *o = sum + 6 * r;
        const double lse_a = mx[2 * r] + log(o[0]), lse_b = mx[2 * r + 1] + log(o[1]);
        c->nll[0] += lse_a - o[3];
        c->nll[1] += lse_b - o[4];
        c->kl += o[2] / o[0] - lse_a + lse_b;
        c->top1 += arg[2 * r] == arg[2 * r + 1] ? 1.0 : 0.0;
        c->predicted += 1.0;
    }
    free(mx);
    free(sum);
    free(arg);
    return st;
}

/* The converted engine's layer inputs in phase 2: the source's. */
static const float *source_input(void *ctx, int64_t batch, int64_t layer, int64_t rows,
                                 int64_t cols)
{
    const eval_ctx *c = ctx;
    (void)batch;
    if (c->phase != 2 || layer < 0 || layer > c->L || c->hid_elems[layer] != rows * cols)
        return NULL;
    return c->hid[layer]; /* slot `layer`: the output of layer - 1 (or the embedding) */
}

/* The engine ran into trouble inside collectives: its peers may wait
 * forever, so the job ends here. */
static void abort_on(tc_status st, const tc_comm *comm, const char *what)
{
    if (st == TC_OK)
        return;
    tc_log(TC_LOG_ERROR, "rank %d: %s failed; aborting the job", comm->rank, what);
    MPI_Abort(MPI_COMM_WORLD, (int)st);
}

static void ctx_free(eval_ctx *c)
{
    for (int64_t i = 0; c->hid && i <= c->L + 1; i++)
        free(c->hid[i]);
    free(c->hid);
    free(c->hid_elems);
    free(c->hid_cap);
    free(c->lg[0]);
    free(c->lg[1]);
    free(c->d2);
    free(c->r2);
    free(c->d2_local);
    for (int64_t i = 0; c->lin && i < c->n_layers * TC_EVAL_LINEARS; i++)
        free(c->lin[i]);
    free(c->lin);
    free(c->lin_elems);
    free(c->lin_cap);
    free(c->ld2);
    free(c->lr2);
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Layers whose error on the source's inputs stands out (eval.h). */
static void flag_layers(tc_eval_result *r)
{
    const int64_t L = r->layers;
    double *s = malloc((size_t)(L > 0 ? L : 1) * sizeof *s);
    double median = 0.0;
    if (s && L > 0) {
        memcpy(s, r->local_error, (size_t)L * sizeof *s);
        qsort(s, (size_t)L, sizeof *s, cmp_double);
        median = L % 2 ? s[L / 2] : 0.5 * (s[L / 2 - 1] + s[L / 2]);
    }
    free(s);
    for (int64_t i = 0; i < L; i++) {
        r->flagged[i] = r->local_error[i] >= TC_EVAL_FLAG_ERROR &&
                        r->local_error[i] >= TC_EVAL_FLAG_JUMP * median;
        r->n_flagged += r->flagged[i];
    }
}

tc_status tc_eval_run(const tc_fwd_setup *fwd, const tc_fwd_weight_source *converted,
                      const tc_token_set *tokens, int64_t batch_size, int64_t linear_tokens,
                      tc_eval_result *out)
{
    memset(out, 0, sizeof *out);
    const tc_comm *comm = fwd->comm;
    const int64_t L = fwd->model->cfg.num_hidden_layers;
    eval_ctx c;
    memset(&c, 0, sizeof c);
    c.L = L;
    c.hid = calloc((size_t)L + 2, sizeof *c.hid);
    c.hid_elems = calloc((size_t)L + 2, sizeof *c.hid_elems);
    c.hid_cap = calloc((size_t)L + 2, sizeof *c.hid_cap);
    c.d2 = calloc((size_t)L + 1, sizeof *c.d2);
    c.r2 = calloc((size_t)L + 1, sizeof *c.r2);
    c.d2_local = calloc((size_t)L + 1, sizeof *c.d2_local);
    const size_t nl = (size_t)(L > 0 ? L : 1) * TC_EVAL_LINEARS;
    c.lin_rows = linear_tokens;
    c.ld2 = calloc(nl, sizeof *c.ld2);
    c.lr2 = calloc(nl, sizeof *c.lr2);
    tc_status st = c.hid && c.hid_elems && c.hid_cap && c.d2 && c.r2 && c.d2_local && c.ld2 && c.lr2
                       ? TC_OK
                       : tc_fail(TC_E_INTERNAL, "out of memory");
    tc_fwd_engine *src = NULL, *cvt = NULL;
    tc_fwd_setup s2 = *fwd;
    s2.weights = NULL;
    if (st == TC_OK)
        st = tc_fwd_create(&s2, &src);
    st = tc_comm_agree(comm, st, "loading the source model");
    s2.weights = converted;
    if (st == TC_OK)
        st = tc_fwd_create(&s2, &cvt);
    st = tc_comm_agree(comm, st, "loading the converted checkpoint");
    tc_fwd_layout lay;
    memset(&lay, 0, sizeof lay);
    if (st == TC_OK) {
        tc_fwd_get_layout(src, &lay);
        c.tp_rank = lay.tp_rank;
        c.layer0 = lay.layer0;
        c.n_layers = lay.n_layers;
        tc_fwd_set_report_all(src, true);
        tc_fwd_set_layer_input(cvt, source_input, &c);
        /* GPU engines compare the logits on the device (TRTCONV_EVAL_HOST_LOGITS=1:
         * on the host, as the CPU backend does; the GPU test compares the two). */
        const char *host = getenv("TRTCONV_EVAL_HOST_LOGITS");
        const bool want = !(host && *host && strcmp(host, "0") != 0);
        c.on_device = want && tc_fwd_keep_logits_on_device(src, true) &&
                      tc_fwd_keep_logits_on_device(cvt, true);
        if (!c.on_device) {
            tc_fwd_keep_logits_on_device(src, false);
            tc_fwd_keep_logits_on_device(cvt, false);
        }
        c.src = src;
        c.cvt = cvt;
        if (comm->rank == 0)
            tc_log(TC_LOG_INFO, "logits compared %s", c.on_device ? "on the GPU" : "on the host");
        const size_t ml = (size_t)(c.n_layers > 0 ? c.n_layers : 1) * TC_EVAL_LINEARS;
        c.lin = calloc(ml, sizeof *c.lin);
        c.lin_elems = calloc(ml, sizeof *c.lin_elems);
        c.lin_cap = calloc(ml, sizeof *c.lin_cap);
        if (!c.lin || !c.lin_elems || !c.lin_cap)
            st = tc_fail(TC_E_INTERNAL, "out of memory");
        if (linear_tokens > 0) {
            tc_fwd_set_linear_report(src, linear_sink, &c, linear_tokens);
            tc_fwd_set_linear_report(cvt, linear_sink, &c, linear_tokens);
        }
    }
    st = tc_comm_agree(comm, st, "the evaluation's buffers");
    const bool last = lay.pp_rank == lay.pp - 1;
    MPI_Comm tp = MPI_COMM_NULL;
    if (st == TC_OK)
        st = TC_MPI_TRY(MPI_Comm_split(comm->world, last ? lay.dp_rank : MPI_UNDEFINED,
                                       lay.tp_rank, &tp));
    /* A chunk: one micro-batch for each replica. */
    const size_t chunk = (size_t)batch_size * (size_t)(lay.dp > 0 ? lay.dp : 1);
    tc_token_set sub;
    memset(&sub, 0, sizeof sub);
    sub.offsets = malloc((chunk + 1) * sizeof *sub.offsets);
    int32_t *next = NULL;
    int64_t next_cap = 0;
    if (st == TC_OK && !sub.offsets)
        st = tc_fail(TC_E_INTERNAL, "out of memory");
    for (size_t s0 = 0; st == TC_OK && s0 < tokens->n_seqs; s0 += chunk) {
        const size_t s1 = s0 + chunk < tokens->n_seqs ? s0 + chunk : tokens->n_seqs;
        sub.n_seqs = s1 - s0;
        sub.ids = tokens->ids + tokens->offsets[s0];
        for (size_t k = 0; k <= sub.n_seqs; k++)
            sub.offsets[k] = tokens->offsets[s0 + k] - tokens->offsets[s0];
        c.lg_rows = 0;
        c.phase = 0;
        abort_on(tc_fwd_run(src, &sub, batch_size, sink, &c), comm, "the source model's forward pass");
        c.phase = 1;
        abort_on(tc_fwd_run(cvt, &sub, batch_size, sink, &c), comm,
                 "the converted checkpoint's forward pass");
        /* The logits now, before phase 2 runs the converted engine again
         * (its device logits would be overwritten). */
        if (tp != MPI_COMM_NULL) {
            /* This replica's batch of the chunk: sequences [b0, b1) of sub. */
            const size_t b0 = (size_t)lay.dp_rank * (size_t)batch_size;
            const size_t b1 = b0 + (size_t)batch_size < sub.n_seqs ? b0 + (size_t)batch_size
                                                                   : sub.n_seqs;
            const int64_t T = b0 < b1 ? sub.offsets[b1] - sub.offsets[b0] : 0;
            if (!c.on_device && T != c.lg_rows)
                st = tc_fail(TC_E_INTERNAL, "eval: %lld logits rows for a batch of %lld tokens",
                             (long long)c.lg_rows, (long long)T);
            if (st == TC_OK && T > next_cap) {
                int32_t *p = realloc(next, (size_t)T * sizeof *next);
                st = p ? TC_OK : tc_fail(TC_E_INTERNAL, "out of memory");
                if (p) {
                    next = p;
                    next_cap = T;
                }
            }
            for (size_t q = b0; st == TC_OK && q < b1; q++)
                for (int64_t t = sub.offsets[q]; t < sub.offsets[q + 1]; t++)
                    next[t - sub.offsets[b0]] = t + 1 < sub.offsets[q + 1] ? sub.ids[t + 1] : -1;
            if (st == TC_OK && T > 0)
                st = logits_step(&c, tp, lay.tp_rank, next, T, fwd->threads);
            abort_on(st, comm, "combining the logits");
        }
        c.phase = 2;
        abort_on(tc_fwd_run(cvt, &sub, batch_size, sink, &c), comm,
                 "the converted checkpoint's forward pass on the source's inputs");
    }
    /* Totals on rank 0: every sum has one contributor per replica. */
    const size_t nv = 5 + 3 * ((size_t)L + 1) + 2 * nl;
    double *v = calloc(nv, sizeof *v);
    if (st == TC_OK && !v)
        st = tc_fail(TC_E_INTERNAL, "out of memory");
    st = tc_comm_agree(comm, st, "the evaluation");
    if (st == TC_OK) {
        v[0] = c.nll[0], v[1] = c.nll[1], v[2] = c.top1, v[3] = c.kl, v[4] = c.predicted;
        memcpy(v + 5, c.d2, ((size_t)L + 1) * sizeof(double));
        memcpy(v + 6 + L, c.r2, ((size_t)L + 1) * sizeof(double));
        memcpy(v + 7 + 2 * L, c.d2_local, ((size_t)L + 1) * sizeof(double));
        memcpy(v + 8 + 3 * L, c.ld2, nl * sizeof(double));
        memcpy(v + 8 + 3 * L + nl, c.lr2, nl * sizeof(double));
        st = TC_MPI_TRY(MPI_Reduce(comm->rank == 0 ? MPI_IN_PLACE : v, v, (int)nv, MPI_DOUBLE,
                                   MPI_SUM, 0, comm->world));
    }
    if (st == TC_OK && comm->rank == 0) {
        const double n = v[4] > 0 ? v[4] : 1.0;
        out->predicted = (int64_t)v[4];
        out->nll_source = v[0] / n;
        out->nll_converted = v[1] / n;
        out->ppl_source = exp(out->nll_source);
        out->ppl_converted = exp(out->nll_converted);
        out->top1 = v[2] / n;
        out->kl = v[3] / n;
        out->layers = L;
        out->layer_error = calloc((size_t)L + 1, sizeof *out->layer_error);
        out->local_error = calloc((size_t)L + 1, sizeof *out->local_error);
        out->flagged = calloc((size_t)L > 0 ? (size_t)L : 1, sizeof *out->flagged);
        out->linear_error = calloc(nl, sizeof *out->linear_error);
        out->linear_tokens = linear_tokens;
        if (!out->layer_error || !out->local_error || !out->flagged || !out->linear_error)
            st = tc_fail(TC_E_INTERNAL, "out of memory");
        for (int64_t i = 0; st == TC_OK && i <= L; i++) {
            const double d2 = v[5 + i], r2 = v[6 + L + i], dl = v[7 + 2 * L + i];
            out->layer_error[i] = r2 > 0 ? sqrt(d2 / r2) : (d2 > 0 ? INFINITY : 0.0);
            out->local_error[i] = r2 > 0 ? sqrt(dl / r2) : (dl > 0 ? INFINITY : 0.0);
        }
        /* NaN: not measured (off, or a mixture-of-experts layer). */
        for (size_t i = 0; st == TC_OK && i < (size_t)L * TC_EVAL_LINEARS; i++) {
            const double d2 = v[8 + 3 * L + i], r2 = v[8 + 3 * L + nl + i];
            out->linear_error[i] = r2 > 0 ? sqrt(d2 / r2) : d2 > 0 ? INFINITY : NAN;
        }
        if (st == TC_OK)
            flag_layers(out);
    }
    free(v);
    free(sub.offsets);
    free(next);
    if (tp != MPI_COMM_NULL)
        MPI_Comm_free(&tp);
    tc_fwd_destroy(src);
    tc_fwd_destroy(cvt);
    ctx_free(&c);
    if (st != TC_OK)
        tc_eval_result_free(out);
    return st;
}

void tc_eval_result_free(tc_eval_result *r)
{
    free(r->layer_error);
    free(r->local_error);
    free(r->flagged);
    free(r->linear_error);
    r->linear_error = NULL;
    r->layer_error = NULL;
    r->local_error = NULL;
    r->flagged = NULL;
}
