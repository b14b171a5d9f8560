/* plan_internal.h: the plan builder shared by plan.c (dense LLaMA layers,
 * embeddings, rope buffers) and the files that plan other layer kinds
 * (plan_moe.c). Not installed: only src/plan/ includes it.
 *
 * A builder appends tensors to b->plan; tcp_begin_tensor starts one (and
 * makes it b->cur), tcp_add_piece appends the next rows of it. Every
 * pointer in it is borrowed from the model or owned by the plan. */
#ifndef TRTCONV_PLAN_INTERNAL_H
#define TRTCONV_PLAN_INTERNAL_H

#include "trtconv/plan/plan.h"

typedef struct builder {
    tc_hf_model *m;
    tc_plan *plan;
    size_t cap_tensors;
    tc_plan_tensor *cur;
    int64_t fill;                 /* slice rows of cur covered so far */
    size_t cap_pieces;
    tc_status st;
} builder;

/* A new tensor [rows, cols] of dt (ndim 1 or 2; callers set a 3-D shape
 * afterwards) as b->cur. */
tc_status tcp_begin_tensor(builder *b, const char *name, tc_dtype dt, int ndim, int64_t rows,
                           int64_t cols);
/* Logical rows [src_row, src_row + rows), columns [src_col, + the slice's
 * cols) of s (NULL: zero rows) as the next rows of b->cur. */
tc_status tcp_add_piece(builder *b, const tc_hf_tensor *s, int64_t src_row, int64_t src_col,
                        int64_t rows);
/* Look up source tensor `name` (Hugging Face naming) and check its shape
 * [d0] or [d0, d1] against the config; the error names file, tensor, shapes. */
tc_status tcp_need(builder *b, const char *name, int ndim, int64_t d0, int64_t d1,
                   tc_hf_tensor *x);
/* b->cur is a linear's weight: quantization methods may rewrite it. */
void tcp_mark_linear(builder *b);

/* plan_moe.c: a mixture-of-experts layer's router and experts (docs/moe.md). */
tc_status tcp_plan_moe(builder *b, const tc_hf_config *c, tc_dtype dt, int64_t g, int64_t local,
                       const tc_layout *lay, int cell);

#endif
