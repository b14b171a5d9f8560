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
#include "trtconv/core/dtype.h"
#include "trtconv/model/hf_model.h"
#include "trtconv/plan/layout.h"
#include "trtconv/plan/rope.h"
#include "trtconv/formats/st_writer.h"
#include "trtconv/core/status.h"

/* --use_parallel_embedding, --embedding_sharding_dim, --use_embedding_sharing
 * (trtllm-checkpoint.md §4.5). share is the request: it takes effect only
 * when the model ties lm_head to the embedding. */
typedef struct tc_embedding {
    bool parallel;
    int sharding_dim;             /* 0 or 1 */
    bool share;
} tc_embedding;

/* What a plan depends on besides the model. */
typedef struct tc_plan_params {
    tc_layout layout;
    tc_embedding emb;
    tc_dtype out_dtype;           /* the resolved --dtype */
    bool rope_buffers;            /* write the rotary buffers (rope.h) */
} tc_plan_params;

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
    int ndim;                     /* stored rank: 1, 2 or 3 */
    int64_t shape[3];             /* stored shape */
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
    /* The SM whose CUTLASS layout the quantized weight takes: the plan's
     * target_sm, except SM 90 stacked experts, which take SM 80's
     * (TensorRT-LLM v0.12 cutlass_preprocessors.cpp: "Workaround for MOE
     * which doesn't have specialised Hopper kernels yet"). */
    int woq_sm;
    /* A linear's weight ([N, K] slice): what a quantization method
     * (quant/method.h) may rewrite. */
    bool linear;
    /* Stacked experts (plan_moe.c): the slice is expert_rows rows per
     * expert, each expert its own [expert_rows, cols] matrix for the
     * quantization methods (0: one matrix). */
    int64_t expert_rows;
    int64_t expert0;              /* the model's index of the slice's first expert */
    int scale_index;
    int scale_of;
    /* --disable_weight_only_quant_plugin: the weight is stored unquantized
     * and transposed, [K, N] in the config dtype, next to its scales. */
    bool woq_transposed_only;
    /* Computed outside the conversion workers (SmoothQuant, sq.h): no
     * pieces; the conversion skips it and its owner pwrites its bytes. */
    bool computed;
    /* A constant tensor (F32, element i = constant_values[i % n_constant]),
     * filled by the conversion workers: no pieces. */
    bool constant;
    int64_t n_constant;
    float *constant_values;       /* owned by the plan */
    /* FP8 rowwise (quant/fp8.h): the slice W = [N, K] in the config dtype is
     * stored as F8_E4M3 [N, K] after clamping to fp8_clamp, with one F32
     * scale per row in the tensor scale_index (filled by the same work). */
    bool fp8_rowwise;
    float fp8_clamp[2];
    /* FP8 per tensor (quant/fp8.h): the slice W = [N, K] in the config
     * dtype is stored as F8_E4M3 [N, K] = W / fp8_scale; the scale tensors
     * are constants of the plan. */
    bool fp8_tensor;
    float fp8_scale;
    /* Stacked experts (expert_rows > 0): expert e's scale is
     * fp8_expert_scales[e], the values of the plan's weights_scaling_factor
     * constant (borrowed from it). */
    const float *fp8_expert_scales;
    /* Hugging Face-style output (quant/hf_quant.h): a tc_hf_algo, 0 for
     * none. The slice W = [N, K] in the config dtype is stored as FP8
     * E4M3 [N, K] (1: per tensor, fp8_scale the scale; 2: per channel, the
     * row scales to tensor scale_index) or NVFP4 (3: U8 [N, K/2] codes,
     * E4M3 block scales [N, K/16] to scale_index, fp8_scale holding
     * weight_scale_2). */
    int hf_quant;
    /* Its values come from layer gate_layer's calibration statistics and
     * are final only once that layer's gate opens (convert.h). */
    bool gated;
    int64_t gate_layer;
    /* A rotary buffer (rope.h), generated by the conversion workers from
     * rope_tables (the plan's) instead of read: no pieces, F32. */
    tc_rope_buffer rope;
    const tc_rope_tables *rope_tables;
} tc_plan_tensor;

/* How a format names its cell files (output/rankfile.h tc_cell_file_name). */
typedef enum tc_cell_naming {
    TC_CELLS_RANK_FILES,          /* rank{c}.safetensors (TensorRT-LLM) */
    TC_CELLS_HF_SHARDS,           /* model-{c+1:05}-of-{cells:05}.safetensors */
} tc_cell_naming;

typedef struct tc_plan {
    int rank, tp_rank, pp_rank;   /* rank: the cell's index */
    tc_cell_naming naming;
    int cells;                    /* the output's cell count (HF shards' "of") */
    int target_sm;                /* layout of quantized weights (0: none) */
    size_t n_tensors;
    tc_plan_tensor *tensors;      /* owned */
    uint64_t read_bytes;          /* source bytes the cell reads */
    uint64_t write_bytes;         /* size of the output file */
    int64_t layer0, layers_total; /* first global layer of the cell; the model's layers */
    tc_rope_tables rope;          /* frequencies of the rope buffers (owned) */
} tc_plan;

/* The whole model as Hugging Face names it (plan_hf.c): every tensor of
 * the source, whole, cast to out_dtype, in the order save_pretrained
 * writes a LlamaForCausalLM (embedding; per layer the attention's q, k, v,
 * o, the MLP's gate, up, down, the two norms; the final norm; lm_head
 * unless tied), linears marked. rank/naming are left for the caller (the
 * output format splits it into shards). Dense LLaMA only: a mixture of
 * experts is refused. On TC_OK *plan belongs to the caller. */
tc_status tc_plan_build_hf(tc_hf_model *m, tc_dtype out_dtype, tc_plan **plan);

/* Checks that do not depend on the cell: the layout's divisibility rules
 * (layout.h), embedding-sharding options, unsupported config values.
 * Messages name the config value and the rule. */
tc_status tc_plan_check_model(const tc_hf_config *cfg, const tc_plan_params *params);

/* Build the unquantized plan of `cell` (0 <= cell < tp*pp), looking up (and
 * so opening and validating) every source tensor it needs and checking each
 * source shape against config.json. On TC_OK *plan belongs to the caller
 * (tc_plan_free). A quantization method then rewrites its linears
 * (quant/method.h), before anything is written. */
tc_status tc_plan_build(tc_hf_model *m, const tc_plan_params *params, int cell, tc_plan **plan);
void tc_plan_free(tc_plan *p); /* accepts NULL */

/* Rows of one matrix of the slice: an expert's when experts are stacked
 * (expert_rows), else the whole slice's; at least 1. */
static inline int64_t tc_plan_matrix_rows(const tc_plan_tensor *t)
{
    return t->expert_rows > 0 ? t->expert_rows : t->rows > 0 ? t->rows : 1;
}

/* Elements of the stored tensor (product of its shape). */
uint64_t tc_plan_tensor_elems(const tc_plan_tensor *t);

/* Index of tensor `name`, or -1. */
int tc_plan_find(const tc_plan *p, const char *name);
/* Append a computed tensor ([d0] when ndim is 1, [d0, d1] when 2) and
 * account its bytes in write_bytes. */
tc_status tc_plan_add_computed(tc_plan *p, const char *name, tc_dtype dt, int ndim, int64_t d0,
                               int64_t d1);
/* Recompute write_bytes from the stored shapes and dtypes (after a
 * quantization method rewrote tensors). */
void tc_plan_recount(tc_plan *p);
/* Append an F32 tensor of shape [rows] (cols 0) or [rows, cols] whose
 * element i is values[i % n_values] (copied into the plan; filled by the
 * conversion workers) and account its bytes. */
tc_status tc_plan_add_constant(tc_plan *p, const char *name, int64_t rows, int64_t cols,
                               const float *values, int64_t n_values);
/* --remove_duplicated_kv_heads (kv_dedup.c): every stored KV head the
 * plan reads (head 2h) equals the one after it, byte for byte; TC_E_INPUT
 * naming the file, tensor and heads otherwise. Reads the source. */
tc_status tc_plan_check_kv_duplicates(const tc_plan *p, int64_t head_dim);
/* Make tensor i computed with dtype dt (same shape); adjusts write_bytes. */
void tc_plan_set_computed(tc_plan *p, int i, tc_dtype dt);

/* Fill writer descriptors (name/dtype/shape) for the plan's tensors, in plan
 * order; out must hold p->n_tensors entries. Names borrow from p. */
void tc_plan_out_tensors(const tc_plan *p, tc_st_out_tensor *out);

/* Lowest-common pad: ceil(v / tp) * tp. */
int64_t tc_pad_vocab(int64_t vocab, int64_t tp);

#endif
