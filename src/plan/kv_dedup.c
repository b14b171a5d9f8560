/* kv_dedup.c: --remove_duplicated_kv_heads' precondition (plan.h). With
 * the config's kv_heads_stored_twice, plan.c takes stored KV head 2h as
 * head h; TensorRT-LLM v0.12's QkvWeightHelper.split_qkv_weights asserts
 * that heads 2h and 2h+1 are equal, and so does this check, for the heads
 * a cell reads, before anything is written. */
#include "trtconv/plan/plan.h"

#include <stdlib.h>
#include <string.h>
#include "trtconv/core/log.h"
#include "trtconv/formats/safetensors.h"

static bool ends_with(const char *s, const char *suffix)
{
    const size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

tc_status tc_plan_check_kv_duplicates(const tc_plan *p, int64_t head_dim)
{
    tc_status st = TC_OK;
    void *a = NULL, *b = NULL;
    size_t cap = 0;
    for (size_t i = 0; st == TC_OK && i < p->n_tensors; i++) {
        const tc_plan_tensor *t = &p->tensors[i];
        if (!ends_with(t->name, ".attention.qkv.weight"))
            continue;
        for (size_t k = 0; st == TC_OK && k < t->n_pieces; k++) {
            const tc_piece *pc = &t->pieces[k];
            if (!pc->src || !(ends_with(pc->src->name, "k_proj.weight") ||
                              ends_with(pc->src->name, "v_proj.weight")))
                continue;
            const tc_st_tensor *s = pc->src;
            const size_t row = (size_t)s->shape[1] * (tc_dtype_bits(s->dtype) / 8);
            const size_t n = (size_t)pc->rows * row;
            if (pc->rows != head_dim || pc->src_row % (2 * head_dim) != 0 || pc->src_col != 0 ||
                pc->src_row_step != 1 || pc->cols != s->shape[1])
                return tc_fail(TC_E_INTERNAL, "%s: piece %zu is not one whole stored KV head",
                               t->name, k);
            if (n > cap) {
                free(a);
                free(b);
                a = malloc(n);
                b = malloc(n);
                cap = n;
                if (!a || !b) {
                    st = tc_fail(TC_E_INTERNAL, "out of memory comparing KV heads");
                    break;
                }
            }
            const uint64_t off = s->begin + (uint64_t)pc->src_row * row;
            st = tc_st_read(pc->src_file, off, a, n);
            if (st == TC_OK)
                st = tc_st_read(pc->src_file, off + n, b, n);
            if (st == TC_OK && memcmp(a, b, n) != 0) {
                const long long h = (long long)(pc->src_row / head_dim);
                st = tc_fail(TC_E_INPUT, "%s: tensor '%s': stored KV heads %lld and %lld differ, "
                             "but --remove_duplicated_kv_heads keeps one of each equal pair (as "
                             "TensorRT-LLM v0.12 asserts); convert without the flag",
                             pc->src_file->path, s->name, h, h + 1);
            }
        }
    }
    free(a);
    free(b);
    return st;
}
