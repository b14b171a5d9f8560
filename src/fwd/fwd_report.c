/* fwd_report.c: what the forward pass hands its callers (fwd.h): the
 * reports of a micro-batch to a sink (hidden states, norm, logits), each
 * linear's output rows for trtconv eval (tc_fwd_set_linear_report), and
 * the layer inputs the caller substitutes (tc_fwd_set_layer_input). Every
 * report is a float32 host copy made through the backend's to_f32 and
 * download into the engine's report buffers. */
#define _POSIX_C_SOURCE 200809L
#include "fwd_internal.h"

#include <stdlib.h>
#include <string.h>
#include "trtconv/core/log.h"

/* Hand a [rows, cols] activation (element type dt, row stride `stride`)
 * to the sink as float32, columns [c0, c0 + cols). */
static tc_status report_dt(tc_fwd_engine *e, tc_fwd_sink sink, void *ctx, int64_t batch,
                           const char *kind, int64_t layer, int64_t col0, const void *src,
                           tc_dtype dt, int64_t rows, int64_t stride, int64_t c0, int64_t cols)
{
    const size_t n = (size_t)(rows * stride);
    if (n > e->report_elems) {
        if (e->d_report)
            e->ops->release(e->be, e->d_report);
        e->d_report = NULL;
        free(e->h_report);
        e->h_report = malloc(n * sizeof(float));
        e->report_elems = 0;
        if (!e->h_report)
            return tc_fail(TC_E_INTERNAL, "out of host memory for a forward report");
        TRY(e->ops->alloc(e->be, n * sizeof(float), (void **)&e->d_report));
        e->report_elems = n;
    }
    TRY(e->ops->to_f32(e->be, e->d_report, src, dt, n));
    TRY(e->ops->download(e->be, e->h_report, e->d_report, n * sizeof(float)));
    if (c0 != 0 || cols != stride)
        for (int64_t r = 0; r < rows; r++)
            memmove(e->h_report + r * cols, e->h_report + r * stride + c0, (size_t)cols * sizeof(float));
    return sink(ctx, batch, kind, layer, col0, e->h_report, rows, cols);
}

tc_status tc_fwd_report(tc_fwd_engine *e, tc_fwd_sink sink, void *ctx, int64_t batch,
                        const char *kind, int64_t layer, int64_t col0, const void *src,
                        int64_t rows, int64_t stride, int64_t c0, int64_t cols)
{
    return report_dt(e, sink, ctx, batch, kind, layer, col0, src, e->dt, rows, stride, c0, cols);
}

/* tc_fwd_set_linear_report: the first linear_rows rows of a linear's
 * output (this rank's columns, starting at global column col0). */
tc_status tc_fwd_report_linear(tc_fwd_engine *e, const char *kind, int64_t layer, int64_t col0,
                               const void *out, tc_dtype dt, int64_t T, int64_t width)
{
    if (!e->linear_sink)
        return TC_OK;
    const int64_t rows = T < e->linear_rows ? T : e->linear_rows;
    return rows > 0 ? report_dt(e, e->linear_sink, e->linear_ctx, -1, kind, layer, col0, out, dt,
                                rows, width, 0, width)
                    : TC_OK;
}

void tc_fwd_set_linear_report(tc_fwd_engine *e, tc_fwd_sink sink, void *ctx, int64_t rows)
{
    e->linear_sink = sink;
    e->linear_ctx = ctx;
    e->linear_rows = rows;
}

/* tc_fwd_set_layer_input: the layer's input replaced by the caller's. */
tc_status tc_fwd_inject_input(tc_fwd_engine *e, int64_t batch, int64_t layer, int64_t T)
{
    if (!e->layer_input)
        return TC_OK;
    const float *in = e->layer_input(e->layer_input_ctx, batch, layer, T, e->H);
    if (!in)
        return TC_OK;
    const size_t n = (size_t)(T * e->H);
    if (n > e->inject_elems) {
        free(e->h_inject);
        e->h_inject = malloc(n * e->es);
        e->inject_elems = e->h_inject ? n : 0;
        if (!e->h_inject)
            return tc_fail(TC_E_INTERNAL, "out of host memory for a layer input");
    }
    tc_convert(e->h_inject, e->dt, in, TC_DT_F32, n);
    return e->ops->upload(e->be, e->h, e->h_inject, n * e->es);
}

void tc_fwd_set_layer_input(tc_fwd_engine *e, tc_fwd_layer_input fn, void *ctx)
{
    e->layer_input = fn;
    e->layer_input_ctx = ctx;
}

void tc_fwd_set_report_all(tc_fwd_engine *e, bool all)
{
    e->report_all = all;
}

bool tc_fwd_keep_logits_on_device(tc_fwd_engine *e, bool on)
{
    if (strcmp(e->ops->name, "cuda") != 0)
        return false;
    e->logits_on_device = on;
    return true;
}

void tc_fwd_logits_columns(const tc_fwd_engine *e, int64_t *col0, int64_t *valid)
{
    *col0 = (int64_t)e->tp_rank * e->vocab_local;
    *valid = e->vocab - *col0;
    if (*valid > e->vocab_local)
        *valid = e->vocab_local;
}

void tc_fwd_device_logits(const tc_fwd_engine *e, const void **data, tc_dtype *dt, int64_t *rows,
                          int64_t *ld, int64_t *cols, int64_t *col0)
{
    int64_t valid;
    tc_fwd_logits_columns(e, col0, &valid);
    *data = e->logits_rows > 0 ? e->logits : NULL;
    *dt = e->dt;
    *rows = e->logits_rows;
    *ld = e->vocab_local;
    *cols = valid > 0 ? valid : 0;
}
