/* hf_weights.c: a Hugging Face-style checkpoint (--output_format hf,
 * output/hf_ckpt.h) as the forward engine's weight source, for trtconv eval
 * (eval/hf_weights.h, docs/eval.md).
 *
 * The engine asks for the tensors of its cell plan; every piece of such a
 * tensor names the source model's tensor it copies (a Hugging Face name),
 * which the checkpoint holds under the same name, whole: the piece's rows
 * and columns are read from it (model.safetensors.index.json says which
 * shard). Float tensors give their values; an F8_E4M3 weight gives its
 * stored values and linear_quant the linear's scales, as the engines
 * compute FP8 linears (TensorRT-LLM's PyTorch backend, vLLM):
 *   FP8                 input quantized with its static input_scale (one
 *                       for q/k/v, one for gate/up: the format shares
 *                       them), the output times input_scale and each output
 *                       channel's weight_scale;
 *   FP8 per channel     input quantized per token (fake_quant.h's FP8 row
 *                       rule), output times the channel's weight_scale;
 *   NVFP4               each weight value E2M1(code) * its block's E4M3
 *                       weight_scale (exact in the forward dtype), the
 *                       input quantized in blocks of 16 with input_scale
 *                       (fake_quant.h), the output times input_scale and
 *                       weight_scale_2;
 *   FP8 KV cache        k_scale (= v_scale, which trtconv's writer makes
 *                       equal in practice; different ones are refused: the
 *                       engine's KV emulation takes one scale).
 * Hostile files: each tensor's dtype and shape are checked against the
 * source tensor it replaces before anything is read.
 * Ownership: the source owns its open shards and the scales of the last
 * linear described. Not thread-safe. */
#define _POSIX_C_SOURCE 200809L
#include "trtconv/eval/hf_weights.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "trtconv/core/dtype.h"
#include "trtconv/core/fsutil.h"
#include "trtconv/core/jsonutil.h"
#include "trtconv/core/log.h"
#include "trtconv/formats/safetensors.h"
#include "trtconv/model/hf_model.h"

#define INDEX_MAX_BYTES (64u << 20)

struct tc_hf_weights {
    char *dir;
    size_t n_files;
    char **file_names;
    tc_st_file **files;       /* opened lazily */
    size_t n_names;
    struct hf_name { char *name; int file; } *names;   /* sorted by name */
    tc_ckpt_quant q;
    int64_t layer0;           /* the cell's first layer (kv_quant's local index) */
    float *col;
};

static int cmp_names(const void *a, const void *b)
{
    return strcmp(((const struct hf_name *)a)->name, ((const struct hf_name *)b)->name);
}

void tc_hf_weights_close(tc_hf_weights *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n_files; i++) {
        tc_st_close(w->files[i]);
        free(w->file_names[i]);
    }
    for (size_t i = 0; i < w->n_names; i++)
        free(w->names[i].name);
    free(w->files);
    free(w->file_names);
    free(w->names);
    free(w->col);
    free(w->dir);
    free(w);
}

tc_status tc_hf_weights_open(const char *dir, const tc_ckpt_quant *q, int64_t layer0,
                             tc_hf_weights **out)
{
    *out = NULL;
    char path[4096];
    TC_TRY(tc_path_join(path, sizeof path, dir, "model.safetensors.index.json"));
    char *text = NULL;
    size_t len = 0;
    TC_TRY(tc_read_small_file(path, INDEX_MAX_BYTES, &text, &len));
    cJSON *idx = tc_json_parse(path, text, len);
    free(text);
    const cJSON *map = tc_json_get(idx, "weight_map");
    tc_hf_weights *w = calloc(1, sizeof *w);
    tc_status st = w ? TC_OK : tc_fail(TC_E_INTERNAL, "out of memory");
    if (st == TC_OK && !cJSON_IsObject(map))
        st = tc_fail(TC_E_INPUT, "%s: no weight_map object", path);
    const size_t n = st == TC_OK ? (size_t)cJSON_GetArraySize(map) : 0;
    if (st == TC_OK) {
        w->q = *q;
        w->layer0 = layer0;
        w->dir = strdup(dir);
        w->names = calloc(n + 1, sizeof *w->names);
        w->file_names = calloc(n + 1, sizeof *w->file_names);
        w->files = calloc(n + 1, sizeof *w->files);
        if (!w->dir || !w->names || !w->file_names || !w->files)
            st = tc_fail(TC_E_INTERNAL, "out of memory");
    }
    const cJSON *it;
    size_t k = 0;
    cJSON_ArrayForEach(it, map) {
        if (st != TC_OK)
            break;
        if (!cJSON_IsString(it) || !tc_hf_shard_name_ok(it->valuestring)) {
            st = tc_fail(TC_E_INPUT, "%s: weight_map[%s] is not a safetensors file name in the "
                         "directory", path, it->string);
            break;
        }
        size_t f = 0;
        while (f < w->n_files && strcmp(w->file_names[f], it->valuestring))
            f++;
        if (f == w->n_files && !(w->file_names[w->n_files++] = strdup(it->valuestring)))
            st = tc_fail(TC_E_INTERNAL, "out of memory");
        w->names[k].name = strdup(it->string);
        if (!w->names[k].name)
            st = tc_fail(TC_E_INTERNAL, "out of memory");
        w->names[k++].file = (int)f;
        w->n_names = k;
    }
    cJSON_Delete(idx);
    if (st == TC_OK)
        qsort(w->names, k, sizeof *w->names, cmp_names);
    if (st != TC_OK) {
        tc_hf_weights_close(w);
        return st;
    }
    *out = w;
    return TC_OK;
}

/* The checkpoint's tensor `name` (its shard opened on first use). */
static tc_status find(tc_hf_weights *w, const char *name, tc_st_file **f,
                      const tc_st_tensor **t)
{
    const struct hf_name key = { (char *)name, 0 };
    const struct hf_name *hit = bsearch(&key, w->names, w->n_names, sizeof *w->names, cmp_names);
    if (!hit)
        return tc_fail(TC_E_INPUT, "%s: model.safetensors.index.json has no tensor %s, which "
                       "the model has", w->dir, name);
    const int fi = hit->file;
    if (!w->files[fi]) {
        char path[4096];
        TC_TRY(tc_path_join(path, sizeof path, w->dir, w->file_names[fi]));
        TC_TRY(tc_st_open(path, &w->files[fi], NULL));
    }
    *f = w->files[fi];
    *t = tc_st_find(*f, name);
    if (!*t)
        return tc_fail(TC_E_INPUT, "%s: no tensor %s, which the index places there",
                       (*f)->path, name);
    return TC_OK;
}

static bool is_float(tc_dtype dt)
{
    return dt == TC_DT_F16 || dt == TC_DT_BF16 || dt == TC_DT_F32;
}

/* The stored dtype of a quantized linear weight of this checkpoint. */
static bool is_quantized(const tc_hf_weights *w, const tc_st_tensor *q)
{
    return (w->q.act == TC_FQ_FP8 && q->dtype == TC_DT_F8_E4M3) ||
           (w->q.act == TC_FQ_NVFP4 && q->dtype == TC_DT_U8);
}

static const float e2m1_grid[8] = { 0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f };

/* Rows [a, b) of a piece from an NVFP4 weight q ([N, K/2] codes) and its
 * block scales ([N, K/16] E4M3) as code value * block scale. */
static tc_status nvfp4_rows(tc_hf_weights *w, const tc_plan_tensor *t, const tc_piece *pc,
                            tc_st_file *f, const tc_st_tensor *q, int64_t r0, int64_t a,
                            int64_t b, void *out)
{
    const int64_t K = pc->src->ndim == 2 ? pc->src->shape[1] : 0;
    char module[192];
    const size_t len = strlen(pc->src->name);
    snprintf(module, sizeof module, "%.*s.weight_scale", (int)(len > 7 ? len - 7 : 0),
             pc->src->name);
    tc_st_file *sf;
    const tc_st_tensor *sc;
    TC_TRY(find(w, module, &sf, &sc));
    if (K % 16 || pc->src_col % 16 || pc->cols % 16 || q->ndim != 2 ||
        q->shape[0] != pc->src->shape[0] || q->shape[1] != K / 2 ||
        sc->dtype != TC_DT_F8_E4M3 || sc->ndim != 2 || sc->shape[0] != q->shape[0] ||
        sc->shape[1] != K / 16)
        return tc_fail(TC_E_INPUT, "%s: %s must be U8 [N, K/2] with %s F8_E4M3 [N, K/16] (K = "
                       "%lld, whole blocks of 16)", f->path, q->name, module, (long long)K);
    const size_t oes = tc_dtype_bits(t->slice_dtype) / 8;
    uint8_t *codes = malloc((size_t)pc->cols / 2 + 1), *scales = malloc((size_t)pc->cols / 16 + 1);
    float *row = malloc((size_t)pc->cols * sizeof(float) + 1);
    tc_status st = codes && scales && row ? TC_OK : tc_fail(TC_E_INTERNAL, "out of memory");
    for (int64_t r = a; st == TC_OK && r < b; r++) {
        const uint64_t sr = (uint64_t)(pc->src_row + (r - pc->dst_row));
        st = tc_st_read(f, q->begin + sr * (uint64_t)(K / 2) + (uint64_t)pc->src_col / 2, codes,
                        (size_t)pc->cols / 2);
        if (st == TC_OK)
            st = tc_st_read(sf, sc->begin + sr * (uint64_t)(K / 16) + (uint64_t)pc->src_col / 16,
                            scales, (size_t)pc->cols / 16);
        for (int64_t c = 0; st == TC_OK && c < pc->cols; c++) {
            const uint8_t code = (uint8_t)(codes[c / 2] >> (4 * (c % 2))) & 15;
            const float v = e2m1_grid[code & 7];
            row[c] = (code & 8 ? -v : v) * tc_e4m3fn_to_f32(scales[c / 16]);
        }
        if (st == TC_OK)
            tc_convert((uint8_t *)out + ((size_t)(r - r0) * (size_t)t->cols +
                                         (size_t)pc->dst_col) * oes,
                       t->slice_dtype, row, TC_DT_F32, (size_t)pc->cols);
    }
    free(codes);
    free(scales);
    free(row);
    return st;
}

static tc_status rows(void *ctx, const tc_plan_tensor *t, int64_t r0, int64_t nr, void *out)
{
    tc_hf_weights *w = ctx;
    const size_t oes = tc_dtype_bits(t->slice_dtype) / 8;
    memset(out, 0, (size_t)nr * (size_t)t->cols * oes); /* zero pieces: vocab padding */
    for (size_t p = 0; p < t->n_pieces; p++) {
        const tc_piece *pc = &t->pieces[p];
        const int64_t a = pc->dst_row > r0 ? pc->dst_row : r0;
        const int64_t b = pc->dst_row + pc->rows < r0 + nr ? pc->dst_row + pc->rows : r0 + nr;
        if (!pc->src || a >= b)
            continue;
        if (pc->src_row_step != 1)
            return tc_fail(TC_E_INTERNAL, "%s: an interleaved source piece", t->name);
        tc_st_file *f;
        const tc_st_tensor *q;
        TC_TRY(find(w, pc->src->name, &f, &q));
        if (t->linear && w->q.act == TC_FQ_NVFP4 && q->dtype == TC_DT_U8) {
            TC_TRY(nvfp4_rows(w, t, pc, f, q, r0, a, b, out));
            continue;
        }
        const bool shape_ok = q->ndim == pc->src->ndim && q->nelements == pc->src->nelements &&
                              (q->ndim < 1 || q->shape[0] == pc->src->shape[0]);
        const bool fp8 = q->dtype == TC_DT_F8_E4M3 && w->q.act == TC_FQ_FP8 && t->linear;
        if (!shape_ok || !(is_float(q->dtype) || fp8))
            return tc_fail(TC_E_INPUT, "%s: %s is %s with %llu elements; the model's is %s with "
                           "%llu (a float tensor, or an F8_E4M3 linear weight of an FP8 "
                           "checkpoint)", f->path, q->name, tc_dtype_name(q->dtype),
                           (unsigned long long)q->nelements, tc_dtype_name(pc->src->dtype),
                           (unsigned long long)pc->src->nelements);
        const int64_t src_cols = q->ndim == 2 ? q->shape[1] : 1;
        const size_t es = tc_dtype_bits(q->dtype) / 8;
        uint8_t *raw = malloc((size_t)pc->cols * es + 1);
        float *row = malloc((size_t)pc->cols * sizeof(float) + 1);
        tc_status st = raw && row ? TC_OK : tc_fail(TC_E_INTERNAL, "out of memory");
        for (int64_t r = a; st == TC_OK && r < b; r++) {
            const int64_t sr = pc->src_row + (r - pc->dst_row);
            st = tc_st_read(f, q->begin + ((uint64_t)sr * (uint64_t)src_cols +
                                           (uint64_t)pc->src_col) * es, raw, (size_t)pc->cols * es);
            for (int64_t c = 0; st == TC_OK && c < pc->cols; c++)
                row[c] = fp8 ? tc_e4m3fn_to_f32(raw[c]) : tc_load_f32(raw, q->dtype, (size_t)c);
            if (st == TC_OK)
                tc_convert((uint8_t *)out + ((size_t)(r - r0) * (size_t)t->cols +
                                             (size_t)pc->dst_col) * oes,
                           t->slice_dtype, row, TC_DT_F32, (size_t)pc->cols);
        }
        free(raw);
        free(row);
        TC_TRY(st);
    }
    return TC_OK;
}

/* F32 scale tensor `<module>.<suffix>`: n values (1 for 0-dim) into v. */
static tc_status read_scale(tc_hf_weights *w, const char *module, const char *suffix, int64_t n,
                            float *v)
{
    char name[256];
    snprintf(name, sizeof name, "%s.%s", module, suffix);
    tc_st_file *f;
    const tc_st_tensor *t;
    TC_TRY(find(w, name, &f, &t));
    if (t->dtype != TC_DT_F32 || t->nelements != (uint64_t)n)
        return tc_fail(TC_E_INPUT, "%s: %s must be F32 with %lld value(s)", f->path, name,
                       (long long)n);
    return tc_st_read(f, t->begin, v, (size_t)n * 4);
}

static tc_status linear_quant(void *ctx, const tc_plan_tensor *t, tc_fwd_linear_quant *out)
{
    tc_hf_weights *w = ctx;
    memset(out, 0, sizeof *out);
    if (!t->linear || t->n_pieces == 0)
        return TC_OK;
    free(w->col);
    w->col = malloc((size_t)t->rows * sizeof(float) + 1);
    if (!w->col)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    int quantized = -1;
    float in_scale = 0.0f;
    for (size_t p = 0; p < t->n_pieces; p++) {
        const tc_piece *pc = &t->pieces[p];
        if (!pc->src)
            continue;
        tc_st_file *f;
        const tc_st_tensor *q;
        TC_TRY(find(w, pc->src->name, &f, &q));
        const int is_q = is_quantized(w, q);
        if (quantized >= 0 && quantized != is_q)
            return tc_fail(TC_E_INPUT, "%s: the linears fused into %s are partly quantized (an "
                           "--exclude_modules pattern that splits q/k/v or gate/up): not "
                           "emulated", w->dir, t->name);
        quantized = is_q;
        if (!is_q)
            continue;
        char module[192];
        const size_t len = strlen(pc->src->name);
        snprintf(module, sizeof module, "%.*s", (int)(len > 7 ? len - 7 : 0), pc->src->name);
        const int64_t N = pc->src->shape[0];
        float *ws = malloc((size_t)N * sizeof(float) + 1);
        tc_status st = ws ? TC_OK : tc_fail(TC_E_INTERNAL, "out of memory");
        if (st == TC_OK)
            st = read_scale(w, module, w->q.act == TC_FQ_NVFP4 ? "weight_scale_2" : "weight_scale",
                            w->q.per_token ? N : 1, ws);
        for (int64_t r = 0; st == TC_OK && r < pc->rows; r++)
            w->col[pc->dst_row + r] = ws[w->q.per_token ? pc->src_row + r : 0];
        free(ws);
        TC_TRY(st);
        if (!w->q.per_token) {
            float s;
            TC_TRY(read_scale(w, module, "input_scale", 1, &s));
            if (in_scale != 0.0f && s != in_scale)
                return tc_fail(TC_E_INPUT, "%s: the input scales of the linears fused into %s "
                               "differ (%g, %g); one input, one scale", w->dir, t->name,
                               (double)in_scale, (double)s);
            in_scale = s;
        }
    }
    if (quantized != 1)
        return TC_OK;
    out->act = w->q.act;
    out->col = w->col;
    out->n_col = t->rows;
    out->per_token = w->q.per_token;
    if (w->q.act == TC_FQ_NVFP4) {
        out->act_scale = in_scale;   /* the global scale of its blocks */
        out->row_scale = in_scale;
    } else if (!w->q.per_token) {
        /* x / input_scale, saturated to E4M3; the output times input_scale. */
        out->act_scale = 1.0f / tc_round_to_dtype(t->slice_dtype, in_scale);
        out->row_scale = in_scale;
    }
    return TC_OK;
}

static tc_status kv_quant(void *ctx, int64_t layer, int *kind, float *scale)
{
    tc_hf_weights *w = ctx;
    *kind = w->q.kv;
    *scale = 1.0f;
    if (w->q.kv == TC_FQ_NONE)
        return TC_OK;
    char module[128];
    float ks, vs;
    const long long g = (long long)(w->layer0 + layer);
    snprintf(module, sizeof module, "model.layers.%lld.self_attn.k_proj", g);
    TC_TRY(read_scale(w, module, "k_scale", 1, &ks));
    snprintf(module, sizeof module, "model.layers.%lld.self_attn.v_proj", g);
    TC_TRY(read_scale(w, module, "v_scale", 1, &vs));
    if (ks != vs)
        return tc_fail(TC_E_INPUT, "%s: layer %lld's k_scale %g and v_scale %g differ: the KV "
                       "cache emulation takes one scale per layer", w->dir, g, (double)ks,
                       (double)vs);
    *scale = ks;
    return TC_OK;
}

void tc_hf_weights_source(tc_hf_weights *w, tc_fwd_weight_source *src)
{
    src->rows = rows;
    src->linear_quant = w->q.act != TC_FQ_NONE ? linear_quant : NULL;
    src->kv_quant = w->q.kv != TC_FQ_NONE ? kv_quant : NULL;
    src->ctx = w;
}
