/* sq.h: SmoothQuant W8A8 and INT8 KV-cache tensors of one rank's cells,
 * exactly as trtllm-checkpoint.md §4.9, §5.3-5.8 (TensorRT-LLM v0.12 /
 * Era B torch dtype flow), computed from calibration statistics in model
 * form (calib_stats.h) and the cell's weights held by a forward engine
 * (fwd.h; GPU or CPU backend, the same bytes either way).
 *
 * Distribution. Every quantity that needs more than a cell's slices is a
 * maximum, exchanged once in model form (zeros where a cell has nothing),
 * with one MPI all-reduce(max) over the world, so any number of ranks and
 * any assignment of cells to ranks give the same bytes:
 *   pass A  column maxima of the fused qkv rows and of the fc+gate rows
 *           (column-parallel: each cell holds some rows);
 *   pass B  smoothing of the weights in place; row maxima of the smoothed
 *           weights (per-tensor and per-channel scales; dense/proj rows are
 *           split by column) and the input maxima after smoothing of
 *           dense/proj;
 *   write   int8 weights and float32 scales of every layer, smoothed norms,
 *           INT8-KV scales, at the offsets of the cell's output file.
 * Ownership: a job borrows cfg and stats, copies params; it owns its smoothers. */
#ifndef TRTCONV_SQ_H
#define TRTCONV_SQ_H

#include <mpi.h>
#include <stdbool.h>
#include <stdint.h>
#include "trtconv/calib/calib_stats.h"
#include "trtconv/output/rankfile.h"
#include "trtconv/output/write_queue.h"
#include "trtconv/fwd/fwd.h"
#include "trtconv/model/hf_model.h"
#include "trtconv/plan/layout.h"
#include "trtconv/plan/plan.h"
#include "trtconv/core/status.h"

typedef struct tc_sq_job tc_sq_job;

/* The SmoothQuant / INT8-KV parameters of a job. */
typedef struct tc_sq_params {
    tc_layout layout;
    bool smoothquant;             /* W8A8 (else INT8 KV cache alone) */
    double alpha;                 /* --smoothquant */
    bool per_channel, per_token;
    bool int8_kv_cache;
    bool fp8_kv_calibrated;       /* FP8 KV scale max(|k|, |v|) / 448 (docs/fp8.md) */
} tc_sq_params;

/* Checks of the format's limits (num_key_value_heads < tp_size with
 * SmoothQuant, §5.6) happen here; messages name the rule. */
tc_status tc_sq_job_create(const tc_hf_config *cfg, const tc_sq_params *params,
                           const tc_calib_stats *stats, tc_sq_job **out);
void tc_sq_job_free(tc_sq_job *j); /* accepts NULL */

/* The passes for the cell whose weights e holds (e was created for `cell`).
 * pass_b smooths e's weights in place; smooth_again applies the smoothers of
 * pass B to a freshly loaded engine of the same cell (ranks holding several
 * cells reload them between passes). reduce_* are collective over world. */
tc_status tc_sq_pass_a(tc_sq_job *j, tc_fwd_engine *e, int cell);
tc_status tc_sq_reduce_a(tc_sq_job *j, MPI_Comm world);
tc_status tc_sq_pass_b(tc_sq_job *j, tc_fwd_engine *e, int cell);
tc_status tc_sq_reduce_b(tc_sq_job *j, MPI_Comm world);
tc_status tc_sq_smooth_again(tc_sq_job *j, tc_fwd_engine *e, int cell);

/* Turn cell plan p (built for the conversion) into the SmoothQuant / INT8-KV
 * plan: the quantized linears and smoothed norms become computed tensors
 * (plan.h), the scale tensors are added. */
tc_status tc_sq_plan(const tc_sq_job *j, tc_plan *p);

/* Write every computed tensor of the cell into its open output. e may be
 * NULL for INT8 KV cache alone (no weights are needed). */
tc_status tc_sq_write_cell(tc_sq_job *j, tc_fwd_engine *e, int cell, tc_cell_output *out,
                           tc_dtype out_dtype);

/* Layer-streamed form (sq_flow.c, app/calib_overlap.c): everything of
 * local layer i of `cell` while e (the engine calibrating that cell) holds
 * the layer and its statistics are final: pass A, pass B (smoothing e's
 * copy in place), each reduced over `tp` (the ranks holding the layer's
 * other tensor-parallel slices, collective there; MPI_COMM_NULL for a
 * group of one: no MPI call at all), and the layer's writes
 * into out, its int8 weights through wq when not NULL; out NULL (a rank
 * file --resume kept) does the passes and their reductions, which the
 * cell's tp group needs, and writes nothing. The bytes are those of the
 * passes over whole cells: every value is the same maximum. */
tc_status tc_sq_stream_layer(tc_sq_job *j, tc_fwd_engine *e, int cell, int64_t i, MPI_Comm tp,
                             tc_cell_output *out, tc_dtype out_dtype, tc_write_queue *wq);
/* After the cell's last streamed layer, while e still exists: frees the
 * scratch tc_sq_stream_layer keeps on e's backend between layers. */
void tc_sq_stream_end(tc_sq_job *j);
/* The scratch tc_sq_stream_layer keeps on e's backend (a layer's int8
 * weights among it), allocated now rather than at the first layer, so that
 * a rank short of memory stops before calibrating, with the numbers;
 * host_q: a host copy of the weights too (no write queue). Nothing to do
 * without SmoothQuant or when already open. */
tc_status tc_sq_stream_open(tc_sq_job *j, tc_fwd_engine *e, bool host_q);
/* Seconds tc_sq_stream_layer spent so far in pass A (weight column maxima
 * and their reduction), pass B (smoothing factors, smoothed row maxima and
 * theirs) and quantizing and handing over the weights: out[0..2]. */
void tc_sq_stream_seconds(const tc_sq_job *j, double out[3]);

/* Scalar reference pieces, exposed for the unit tests. */
float tc_sq_round_f16(float v);
/* PyTorch's Tensor.pow(Scalar e) of one element w of a float16 or bfloat16
 * tensor on CUDA: e in {0, 1, 0.5} special-cased, else e rounded to the
 * tensor's dtype first and the power taken in float, rounded to the dtype.
 * dt is TC_DT_F16 or TC_DT_BF16; w >= 0 (a maximum of |W|). */
float tc_torch_pow_scalar(tc_dtype dt, float w, double e);
/* tc_torch_pow_scalar for a float16 tensor. */
float tc_sq_pow_f16(float w, double e);
/* smooth_gemm's scale of one channel: max(a^alpha / wmax^(1-alpha), 1e-5),
 * a^alpha in float64, wmax^(1-alpha) a float16 tensor pow. */
double tc_sq_smoother(float a, float wmax, double alpha);

#endif
