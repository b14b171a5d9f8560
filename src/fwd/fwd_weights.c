/* fwd_weights.c: the forward engine's weights (fwd_internal.h): each read
 * once from the cell plan's slices (convert.h tc_convert_rows) in bounded
 * chunks into backend memory, whole at creation or, for the layer-streamed
 * calibration (fwd_stream.c), one decoder layer at a time through host
 * staging buffers a helper thread fills. */
#define _POSIX_C_SOURCE 200809L
#include "fwd_internal.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "trtconv/convert/convert.h"

/* Rows [r, r + nr) of plan tensor t in its slice dtype: from the weight
 * source when the engine has one, else from the plan's slices. */
static tc_status rows_of(const tc_fwd_engine *e, const tc_plan_tensor *t, int64_t r, int64_t nr,
                         void *host, float *scratch)
{
    if (e->wsrc.rows)
        return e->wsrc.rows(e->wsrc.ctx, t, r, nr, host);
    return tc_convert_rows(t, r, nr, host, scratch);
}

/* Tensor `name` of the cell plan, or NULL. */
static const tc_plan_tensor *plan_tensor(const tc_fwd_engine *e, const char *name)
{
    const int i = tc_plan_find(e->plan, name);
    return i < 0 ? NULL : &e->plan->tensors[i];
}

/* The rows of plan tensor t into backend memory dst, chunk_rows at a time,
 * through the caller's buffers: `in` gets the rows in the slice dtype,
 * `conv` their conversion to the engine's dtype when that differs (a slice
 * planned in another dtype: the MoE router is float32), scratch is
 * tc_convert_rows'. background: through upload_weight_bg (the read-ahead
 * thread), else upload_weight. */
static tc_status upload_rows(tc_fwd_engine *e, const tc_plan_tensor *t, void *dst,
                             int64_t chunk_rows, void *in, void *conv, float *scratch,
                             bool background)
{
    for (int64_t r = 0; r < t->rows; r += chunk_rows) {
        const int64_t nr = t->rows - r < chunk_rows ? t->rows - r : chunk_rows;
        const size_t elems = (size_t)nr * (size_t)t->cols, off = (size_t)r * (size_t)t->cols;
        TRY(rows_of(e, t, r, nr, in, scratch));
        const void *up = in;
        if (t->slice_dtype != e->dt) {
            tc_convert(conv, e->dt, in, t->slice_dtype, elems);
            up = conv;
        }
        TRY(background ? e->ops->upload_weight_bg(e->be, dst, off, up, e->dt, elems)
                       : e->ops->upload_weight(e->be, dst, off, up, e->dt, elems));
    }
    return TC_OK;
}

/* Read plan tensor `name` (once, in row chunks) into backend memory. A
 * missing optional tensor gives *out = NULL. */
static tc_status load_tensor(tc_fwd_engine *e, const char *name, bool optional, void **out,
                             int64_t *rows, int64_t *cols)
{
    *out = NULL;
    const tc_plan_tensor *t = plan_tensor(e, name);
    if (!t) {
        if (optional)
            return TC_OK;
        return tc_fail(TC_E_INTERNAL, "forward pass: the cell plan has no tensor %s", name);
    }
    if (rows)
        *rows = t->rows;
    if (cols)
        *cols = t->cols;
    const size_t n = (size_t)t->rows * (size_t)t->cols;
    const size_t row_bytes = (size_t)t->cols * e->es;
    int64_t chunk_rows = (int64_t)(FWD_LOAD_CHUNK / (row_bytes ? row_bytes : 1));
    if (chunk_rows < 1)
        chunk_rows = 1;
    if (chunk_rows > t->rows)
        chunk_rows = t->rows;
    const size_t slice_row = (size_t)t->cols * (tc_dtype_bits(t->slice_dtype) / 8);
    void *host = malloc((size_t)chunk_rows * (row_bytes > slice_row ? row_bytes : slice_row) + 1);
    float *scratch = malloc((size_t)chunk_rows * (size_t)t->cols * sizeof(float) + 1);
    tc_status st = host && scratch ? TC_OK
                                   : tc_fail(TC_E_INTERNAL, "out of memory loading %s", name);
    const size_t wes = e->ops->weight_elem_bytes(e->dt);
    if (st == TC_OK)
        st = e->ops->alloc(e->be, n * wes, out);
    /* scratch is free again once the rows are read: it takes the conversion. */
    if (st == TC_OK)
        st = upload_rows(e, t, *out, chunk_rows, host, scratch, scratch, false);
    free(host);
    free(scratch);
    if (st != TC_OK) {
        if (*out)
            e->ops->release(e->be, *out);
        *out = NULL;
        return st;
    }
    e->weight_bytes += n * e->es;
    return TC_OK;
}

/* The tensors of a decoder layer: plan name suffix, field, presence
 * (REQ always, OPT if the plan has it, DENSE / MOE only for that kind). */
enum { REQ, OPT, DENSE, MOE };
static const struct {
    const char *suffix;
    size_t field;
    int presence;
} layer_tensors[FWD_LAYER_TENSORS] = {
    { "input_layernorm.weight", offsetof(layer_weights, in_norm), REQ },
    { "attention.qkv.weight", offsetof(layer_weights, qkv), REQ },
    { "attention.qkv.bias", offsetof(layer_weights, qkv_bias), OPT },
    { "attention.dense.weight", offsetof(layer_weights, dense), REQ },
    { "attention.dense.bias", offsetof(layer_weights, dense_bias), OPT },
    { "post_layernorm.weight", offsetof(layer_weights, post_norm), REQ },
    { "mlp.fc.weight", offsetof(layer_weights, fc), REQ },
    { "mlp.gate.weight", offsetof(layer_weights, gate), DENSE },
    { "mlp.proj.weight", offsetof(layer_weights, proj), REQ },
    { "mlp.router.weight", offsetof(layer_weights, router), MOE },
};

static void **layer_field(layer_weights *w, int k)
{
    return (void **)(void *)((char *)w + layer_tensors[k].field);
}

static bool layer_tensor_optional(const tc_fwd_engine *e, int k)
{
    const bool moe = tc_hf_is_moe(e->cfg);
    const int p = layer_tensors[k].presence;
    return p == OPT || (p == DENSE && moe) || (p == MOE && !moe);
}

static const tc_plan_tensor *layer_tensor(const tc_fwd_engine *e, int64_t li, int k)
{
    char name[160];
    snprintf(name, sizeof name, "transformer.layers.%lld.%s", (long long)li,
             layer_tensors[k].suffix);
    return plan_tensor(e, name);
}

tc_status tc_fwd_staged_reserve(tc_fwd_engine *e, int64_t li, fwd_staged_layer *s)
{
    const size_t wes = e->ops->weight_elem_bytes(e->dt);
    if (!s->chunk) {
        /* Rows of up to 4-byte elements in a chunk (float32 slices). */
        s->chunk = malloc(FWD_LOAD_CHUNK);
        s->tmp = malloc(FWD_LOAD_CHUNK);
        s->scratch = malloc(FWD_LOAD_CHUNK * (sizeof(float) / 2));
        if (!s->chunk || !s->tmp || !s->scratch)
            return tc_fail(TC_E_INTERNAL, "out of host memory for the layer read-ahead");
        e->ops->pin_host(e->be, s->chunk, FWD_LOAD_CHUNK);
    }
    size_t layer_bytes = 0;
    for (int k = 0; k < FWD_LAYER_TENSORS; k++) {
        const tc_plan_tensor *t = layer_tensor(e, li, k);
        if (t)
            layer_bytes += (size_t)t->rows * (size_t)t->cols * wes;
    }
    for (int k = 0; k < FWD_LAYER_TENSORS; k++) {
        const tc_plan_tensor *t = layer_tensor(e, li, k);
        s->elems[k] = 0;
        if (!t && !layer_tensor_optional(e, k))
            return tc_fail(TC_E_INTERNAL, "forward pass: the cell plan has no tensor "
                           "transformer.layers.%lld.%s", (long long)li, layer_tensors[k].suffix);
        if (!t)
            continue;
        const size_t n = (size_t)t->rows * (size_t)t->cols;
        if (s->spare[k] && s->spare_bytes[k] == n * wes) {
            s->dev[k] = s->spare[k];
            s->spare[k] = NULL;
            s->elems[k] = n;
            continue;
        }
        if (e->ops->alloc(e->be, n * wes, &s->dev[k]) != TC_OK)
            return tc_fail(TC_E_USAGE, "layer %lld (%.1f MiB) does not fit in this rank's %s "
                           "memory next to the layer being calibrated and the calibration set's "
                           "hidden states (%s: %.1f MiB more did not fit); see "
                           "docs/calibration-memory.md", (long long)(e->layer0 + li),
                           (double)layer_bytes / 1048576.0, e->ops->name,
                           layer_tensors[k].suffix, (double)(n * wes) / 1048576.0);
        s->elems[k] = n;
    }
    return TC_OK;
}

tc_status tc_fwd_stage_layer(tc_fwd_engine *e, int64_t li, fwd_staged_layer *s)
{
    TRY(e->ops->thread_enter(e->be));
    for (int k = 0; k < FWD_LAYER_TENSORS; k++) {
        const tc_plan_tensor *t = layer_tensor(e, li, k);
        if (!t || !s->dev[k] || s->elems[k] != (size_t)t->rows * (size_t)t->cols)
            continue; /* optional (tc_fwd_staged_reserve checked) */
        const size_t slice_es = tc_dtype_bits(t->slice_dtype) / 8;
        const size_t row_in = (size_t)t->cols * (slice_es > e->es ? slice_es : e->es);
        int64_t chunk_rows = (int64_t)(FWD_LOAD_CHUNK / (row_in ? row_in : 1));
        if (chunk_rows < 1)
            return tc_fail(TC_E_INPUT, "%s: a row of %lld values is larger than the read-ahead "
                           "chunk (%u bytes)", t->name, (long long)t->cols, FWD_LOAD_CHUNK);
        /* In the engine's dtype the rows land in the pinned chunk directly. */
        const bool direct = t->slice_dtype == e->dt;
        TRY(upload_rows(e, t, s->dev[k], chunk_rows, direct ? s->chunk : s->tmp, s->chunk,
                        s->scratch, true));
    }
    return TC_OK;
}

void tc_fwd_staged_free(tc_fwd_engine *e, fwd_staged_layer *s)
{
    for (int k = 0; k < FWD_LAYER_TENSORS; k++) {
        if (s->dev[k])
            e->ops->release(e->be, s->dev[k]);
        if (s->spare[k])
            e->ops->release(e->be, s->spare[k]);
        s->dev[k] = s->spare[k] = NULL;
        s->elems[k] = s->spare_bytes[k] = 0;
    }
    if (s->chunk)
        e->ops->unpin_host(e->be, s->chunk);
    free(s->chunk);
    free(s->tmp);
    free(s->scratch);
    s->chunk = s->tmp = NULL;
    s->scratch = NULL;
}

tc_status tc_fwd_load_layer(tc_fwd_engine *e, int64_t li, fwd_staged_layer *staged)
{
    layer_weights *w = &e->layers[li];
    char name[160];
    for (int k = 0; k < FWD_LAYER_TENSORS; k++) {
        void **dst = layer_field(w, k);
        if (!staged) {
            snprintf(name, sizeof name, "transformer.layers.%lld.%s", (long long)li,
                     layer_tensors[k].suffix);
            TRY(load_tensor(e, name, layer_tensor_optional(e, k), dst, NULL, NULL));
            continue;
        }
        *dst = staged->dev[k]; /* NULL: an optional tensor the plan does not have */
        staged->dev[k] = NULL;
        e->weight_bytes += staged->elems[k] * e->es;
        staged->elems[k] = 0;
    }
    return staged ? TC_OK : tc_fwd_load_layer_quant(e, li);
}

void tc_fwd_release_layer(tc_fwd_engine *e, int64_t li)
{
    tc_fwd_release_layer_quant(e, li);
    layer_weights *w = &e->layers[li];
    for (int k = 0; k < FWD_LAYER_TENSORS; k++) {
        void **p = layer_field(w, k);
        if (*p) {
            e->ops->release(e->be, *p);
            *p = NULL;
        }
    }
}

void tc_fwd_recycle_layer(tc_fwd_engine *e, int64_t li, fwd_staged_layer *s)
{
    tc_fwd_release_layer_quant(e, li);
    const size_t wes = e->ops->weight_elem_bytes(e->dt);
    layer_weights *w = &e->layers[li];
    for (int k = 0; k < FWD_LAYER_TENSORS; k++) {
        void **p = layer_field(w, k);
        const tc_plan_tensor *t = *p ? layer_tensor(e, li, k) : NULL;
        if (t && !s->spare[k]) {
            s->spare[k] = *p;
            s->spare_bytes[k] = (size_t)t->rows * (size_t)t->cols * wes;
        } else if (*p) {
            e->ops->release(e->be, *p);
        }
        *p = NULL;
    }
}

tc_status tc_fwd_load_weights(tc_fwd_engine *e, const tc_embedding *emb)
{
    if (e->pp_rank == 0 && !e->weights_only) {
        int64_t rows, cols;
        TRY(load_tensor(e, "transformer.vocab_embedding.weight", false, &e->embed, &rows, &cols));
        e->emb_rows = rows;
        e->emb_cols = cols;
        e->emb_split = emb->parallel && e->tp > 1;
        if (e->emb_split && emb->sharding_dim == 0)
            e->emb_row0 = (int64_t)e->tp_rank * rows;
        else if (e->emb_split)
            e->emb_col0 = (int64_t)e->tp_rank * cols;
    }
    e->layers = calloc((size_t)e->n_layers, sizeof *e->layers);
    if (!e->layers)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    for (int64_t i = 0; i < e->n_layers && !e->stream_layers; i++)
        TRY(tc_fwd_load_layer(e, i, NULL));
    if (e->pp_rank == e->pp - 1 && !e->weights_only && !e->skip_head) {
        TRY(load_tensor(e, "transformer.ln_f.weight", false, &e->ln_f, NULL, NULL));
        int64_t rows = 0;
        TRY(load_tensor(e, "lm_head.weight", true, &e->lm_head, &rows, NULL));
        if (!e->lm_head) {
            /* --use_embedding_sharing: lm_head is the row-split embedding. */
            e->lm_head = e->embed;
            e->lm_head_shared = true;
            rows = e->emb_rows;
        }
        e->vocab_local = rows;
    }
    return TC_OK;
}
