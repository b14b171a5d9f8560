/* plan.h: which tensors one (tp, pp) cell writes, and where each of their
 * rows comes from in the Hugging Face shards.
 *
 * An output tensor is a row-major matrix [rows, cols] (1-D tensors are
 * [n, 1]). Its rows are covered, in order, by pieces; a piece copies a
 * rectangle of one source tensor (rows src_row.., columns src_col..+cols,
 * where cols == the output's column count) or fills zero rows (vocab
 * padding). This one description expresses every rule of
 * trtllm-checkpoint.md §4.1-4.5: QKV fusion, GQA KV-head duplication,
 * column/row-parallel splits, vocab padding and embedding sharding.
 *
 * Mapping (trtllm-checkpoint.md §2): rank = pp_rank * tp_size + tp_rank;
 * stage p holds global layers [p*L, (p+1)*L), L = layers / pp_size, and names
 * them with local indices. */
#ifndef TRTCONV_PLAN_H
#define TRTCONV_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "trtconv/dtype.h"
#include "trtconv/hf_model.h"
#include "trtconv/options.h"
#include "trtconv/st_writer.h"
#include "trtconv/status.h"

typedef struct tc_piece {
    const tc_st_file *src_file;   /* NULL: zero rows */
    const tc_st_tensor *src;      /* borrowed from the model */
    int64_t src_row;              /* first source row */
    int64_t src_col;              /* first source column */
    int64_t rows;                 /* rows this piece contributes */
    /* Where the rectangle lands in the slice, and its width. A Hugging
     * Face source gives full-width pieces stacked in order (dst_col 0,
     * cols = the slice's); a Meta checkpoint also gives pieces side by
     * side (a row-parallel tensor split over model-parallel shards). */
    int64_t dst_row, dst_col, cols;
    /* Source row of piece row i: src_row + i * src_row_step (2 for Meta's
     * interleaved rotary q/k halves, else 1). */
    int64_t src_row_step;
} tc_piece;

typedef struct tc_plan_tensor {
    char name[128];
    tc_dtype dtype;               /* stored element type */
    int ndim;                     /* stored rank: 1 or 2 */
    int64_t shape[2];             /* stored shape */
    /* The slice the pieces assemble: [rows, cols] of slice_dtype (1-D:
     * cols = 1). Equal to the stored tensor unless weight-only quantized. */
    int64_t rows, cols;
    tc_dtype slice_dtype;
    size_t n_pieces;
    tc_piece *pieces;             /* owned by the plan */
    /* Weight-only quantization (woq.h): for a quantized linear, woq_bits is
     * 8 or 4, the slice is W = [N=rows, K=cols] in the config dtype and the
     * stored tensor is I8 [K, N*bits/8]; scale_index names the plan tensor
     * `...per_channel_scale` ([N], config dtype) that its work fills. That
     * tensor has no pieces and scale_of = the weight's index (else -1). */
    int woq_bits;
    int scale_index;
    int scale_of;
    /* --disable_weight_only_quant_plugin: the weight is stored unquantized
     * and transposed, [K, N] in the config dtype, next to its scales. */
    bool woq_transposed_only;
    /* Computed outside the conversion workers (SmoothQuant, sq.h): no
     * pieces; the conversion skips it and its owner pwrites its bytes. */
    bool computed;
} tc_plan_tensor;

typedef struct tc_plan {
    int rank, tp_rank, pp_rank;
    int target_sm;                /* layout of quantized weights (0: none) */
    size_t n_tensors;
    tc_plan_tensor *tensors;      /* owned */
    uint64_t read_bytes;          /* source bytes the cell reads */
    uint64_t write_bytes;         /* size of the output file */
} tc_plan;

/* Checks that do not depend on the rank: divisibility of heads, KV heads,
 * intermediate size and layers by tp/pp, embedding-sharding options.
 * Messages name the config value and the rule. */
tc_status tc_plan_check_model(const tc_hf_config *cfg, const tc_opts *o);

/* Build the plan of cell `rank` (0 <= rank < tp*pp), looking up (and so
 * opening and validating) every source tensor it needs and checking each
 * source shape against config.json. On TC_OK *plan belongs to the caller
 * (tc_plan_free). out_dtype is the resolved --dtype. With o->woq_bits the
 * linears are planned as weight-only quantized for o->target_sm (resolved
 * by the caller), and every preprocessing precondition is checked here,
 * before anything is written. */
tc_status tc_plan_build(tc_hf_model *m, const tc_opts *o, tc_dtype out_dtype,
                        int rank, tc_plan **plan);
void tc_plan_free(tc_plan *p); /* accepts NULL */

/* Index of tensor `name`, or -1. */
int tc_plan_find(const tc_plan *p, const char *name);
/* Append a computed tensor ([d0] when ndim is 1, [d0, d1] when 2) and
 * account its bytes in write_bytes. */
tc_status tc_plan_add_computed(tc_plan *p, const char *name, tc_dtype dt, int ndim, int64_t d0,
                               int64_t d1);
/* Make tensor i computed with dtype dt (same shape); adjusts write_bytes. */
void tc_plan_set_computed(tc_plan *p, int i, tc_dtype dt);

/* Fill writer descriptors (name/dtype/shape) for the plan's tensors, in plan
 * order; out must hold p->n_tensors entries. Names borrow from p. */
void tc_plan_out_tensors(const tc_plan *p, tc_st_out_tensor *out);

/* Lowest-common pad: ceil(v / tp) * tp. */
int64_t tc_pad_vocab(int64_t vocab, int64_t tp);

#endif
