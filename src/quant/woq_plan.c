/* woq_plan.c: weight-only quantization as a rewrite of a cell plan
 * (method.h tc_woq_plan; trtllm-checkpoint.md §4.6-4.8).
 *
 * Each linear's weight, planned as the [N, K] slice in --dtype, becomes the
 * stored int8 [K, N] or int4 [K, N/2] tensor (the conversion workers
 * quantize and lay out its rows, convert.h), immediately followed by its
 * `...per_channel_scale` [N] in --dtype, which the same work fills. Without
 * the plugin the weight is stored transposed and unquantized. */
#include "trtconv/quant/method.h"
#include "trtconv/core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "trtconv/quant/woq.h"

static tc_status rewrite_linear(const tc_quant_method *m, int target_sm, tc_plan_tensor *w,
                                tc_plan_tensor *sc, int wi)
{
    /* Stacked experts [E, N, K] are E matrices (upstream quantizes the
     * batch [E, K, N] matrix by matrix): stored [E, K, N*bits/8], scales
     * [E, N]. */
    const int64_t n = tc_plan_matrix_rows(w), k = w->cols;
    const int64_t experts = w->rows / n, bits = m->woq_bits;
    const int d = w->expert_rows > 0 ? 1 : 0;   /* an expert dimension in front */
    const tc_dtype dt = w->dtype;
    w->woq_bits = (int)bits;
    w->ndim = 2 + d;
    w->shape[0] = experts;
    w->shape[d] = k;
    if (m->woq_no_plugin) {
        /* Upstream (legacy loader) stores W^T unquantized for the non-plugin
         * path; no CUTLASS preprocessing, so no layout preconditions. */
        w->woq_transposed_only = true;
        w->shape[d + 1] = n;
    } else {
        /* v0.12 preprocess_weights_for_mixed_gemm forces the Ampere layout
         * on 3-D (MoE) weights for SM 90. */
        w->woq_sm = w->expert_rows > 0 && target_sm == 90 ? 80 : target_sm;
        TC_TRY(tc_woq_check_shape(w->name, n, k, (int)bits, w->woq_sm));
        w->dtype = TC_DT_I8;
        w->shape[d + 1] = n * bits / 8;
    }
    size_t len = strlen(w->name);
    if (len < 7 || strcmp(w->name + len - 7, ".weight") != 0)
        return tc_fail(TC_E_INTERNAL, "quantized tensor %s does not end in .weight", w->name);
    char name[sizeof sc->name];
    snprintf(name, sizeof name, "%.*s.per_channel_scale", (int)(len - 7), w->name);
    memset(sc, 0, sizeof *sc);
    memcpy(sc->name, name, sizeof name);
    sc->dtype = sc->slice_dtype = dt;
    sc->ndim = 1 + d;
    sc->shape[0] = d ? experts : n;
    sc->shape[1] = d ? n : 0;
    sc->rows = w->rows;
    sc->cols = 1;
    sc->scale_index = -1;
    sc->scale_of = wi;
    w->scale_index = wi + 1;
    return TC_OK;
}

tc_status tc_woq_plan(const tc_quant_settings *q, tc_plan *p)
{
    const tc_quant_method *m = q->weights;
    size_t linears = 0;
    for (size_t i = 0; i < p->n_tensors; i++)
        linears += p->tensors[i].linear;
    tc_plan_tensor *t = calloc(p->n_tensors + linears, sizeof *t);
    if (!t)
        return tc_fail(TC_E_INTERNAL, "out of memory planning weight-only tensors");
    size_t n = 0;
    tc_status st = TC_OK;
    for (size_t i = 0; i < p->n_tensors; i++) {
        t[n] = p->tensors[i];
        if (st == TC_OK && t[n].linear) {
            st = rewrite_linear(m, q->target_sm, &t[n], &t[n + 1], (int)n);
            n++;
        }
        n++;
    }
    if (st != TC_OK) {
        free(t); /* the pieces still belong to p->tensors */
        return st;
    }
    free(p->tensors);
    p->tensors = t;
    p->n_tensors = n;
    p->target_sm = m->woq_no_plugin ? 0 : q->target_sm;
    tc_plan_recount(p);
    return TC_OK;
}
