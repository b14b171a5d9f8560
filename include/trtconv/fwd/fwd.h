/* fwd.h: the distributed LLaMA forward pass (decoder-only, causal).
 *
 * Layout: N = dp * tp * pp ranks; world rank = (dp_rank * pp + pp_rank) * tp
 * + tp_rank, so ranks 0 .. tp*pp-1 are the conversion cells of
 * trtllm-checkpoint.md §2 (rank = pp_rank * tp + tp_rank) and every data
 * parallel replica repeats that layout. A rank loads exactly the slices its
 * cell would write (plan.h, read once each through tc_convert_rows): the
 * fused qkv rows of its heads, its dense/proj columns, its fc/gate rows, its
 * stage's layers, and the embedding (first stage) or ln_f + lm_head (last
 * stage).
 *
 * Per micro-batch (sequences packed back to back, no padding; positions
 * restart at 0 in each sequence, as Hugging Face's with right padding):
 *   stage 0: h = embed(ids) (all-reduce over tp when the embedding is split)
 *   other stages: h = recv(previous stage)
 *   each layer:  x = rmsnorm(h); qkv = x Wqkv^T (+b); rope(q, k);
 *                o = causal GQA attention; p = o Wdense^T (f32 partial);
 *                p = allreduce_sum_tp(p); h = h + (p + b);
 *                x = rmsnorm(h); a = silu(x Wfc^T) * (x Wgate^T);
 *                p = allreduce_sum_tp(a Wproj^T); h = h + p
 *   not last stage: send(h, next stage)
 *   last stage:  logits slice = rmsnorm_f(h) Wlm^T   ([T, vocab_padded / tp])
 * Numerics follow transformers' LlamaForCausalLM in float16/bfloat16
 * (activations stored in the model dtype between operations and rounded
 * where torch rounds; norms, softmax, rope tables and every GEMM
 * accumulation in float32). Tensor-parallel partial sums are reduced in
 * float32 and rounded once, so they round like the single-GPU GEMM. Data
 * parallel replica d runs batches d, d + dp, d + 2dp, ...
 *
 * Backends: CUDA (cuBLAS GEMMs, kernels/fwd.cu) when the rank has a GPU,
 * else C threads; collectives through coll.h. */
#ifndef TRTCONV_FWD_H
#define TRTCONV_FWD_H

#include <stdbool.h>
#include <stdint.h>
#include "trtconv/calib/calib_stats.h"
#include "trtconv/mpi/comm.h"
#include "trtconv/mpi/gpu.h"
#include "trtconv/model/hf_model.h"
#include "trtconv/plan/plan.h"
#include "trtconv/core/status.h"
#include "trtconv/calib/tokens.h"

typedef struct tc_fwd_engine tc_fwd_engine;

/* Where an engine's weights come from instead of the model's slices:
 * rows(ctx, t, r0, nr, out) fills rows [r0, r0 + nr) of cell-plan tensor t
 * ([t->rows, t->cols]) in t->slice_dtype (trtconv eval reads a converted
 * checkpoint's rank file this way, eval/ckpt_weights.h). Called from the
 * creating thread, or from the layer prefetch thread when stream_layers. */
typedef struct tc_fwd_linear_quant tc_fwd_linear_quant;
typedef struct tc_fwd_weight_source {
    tc_status (*rows)(void *ctx, const tc_plan_tensor *t, int64_t r0, int64_t nr, void *out);
    /* May be NULL (every linear an ordinary one). How the engine the
     * checkpoint targets computes the linear whose weight is plan tensor t
     * (fake_quant.h); rows() then returns the weight's stored quantized
     * values. Called once per linear while the layer loads. */
    tc_status (*linear_quant)(void *ctx, const tc_plan_tensor *t, tc_fwd_linear_quant *out);
    /* May be NULL. The KV cache of the cell's layer `layer` (the local index
     * the rank file names it by): *kind TC_FQ_NONE,
     * _INT8 or _FP8 and *scale its kv_cache_scaling_factor (keys and
     * values are stored as Q(x / scale) and read back times scale). */
    tc_status (*kv_quant)(void *ctx, int64_t layer, int *kind, float *scale);
    void *ctx;
} tc_fwd_weight_source;

/* A quantized linear (fake_quant.h): its input quantized with act_scale or
 * per token, its output multiplied by the row's factor (row_scale when
 * static) and col[n] (n_col == 1: one factor for the tensor); smoother, when
 * given, divides the input first (SmoothQuant's dense and proj inputs, the
 * values rounded to the forward dtype). col and smoother are borrowed from
 * the source until its next call. */
struct tc_fwd_linear_quant {
    int act;                 /* TC_FQ_NONE (an ordinary linear), TC_FQ_INT8, TC_FQ_FP8 */
    bool per_token;
    float act_scale, row_scale;
    int64_t n_col;
    const float *col;
    const float *smoother;   /* [the linear's local input width] or NULL */
    bool clamp;              /* the input clamped to [clamp_lo, clamp_hi] first */
    float clamp_lo, clamp_hi;
};

typedef struct tc_fwd_setup {
    tc_hf_model *model;          /* borrowed; config + lazily opened shards */
    tc_layout layout;            /* tp, pp; ranks = comm->size (1 with weights_only) */
    tc_embedding emb;            /* how the embedding is sharded */
    tc_dtype dtype;              /* F16, BF16 or F32: weights and activations */
    const tc_comm *comm;
    const tc_gpu_info *gpu;      /* NULL or device < 0: CPU backend */
    int threads;                 /* CPU backend threads (>= 1) */
    int64_t max_batch_tokens;    /* largest micro-batch, in tokens */
    int64_t max_seq_len;         /* longest sequence */
    /* Weights only (SmoothQuant with --calib_stats, any number of ranks):
     * load cell `cell` (0 <= cell < tp*pp) and nothing else: no
     * communicators, no activations; not collective. */
    bool weights_only;
    int cell;
    /* Calibration layer by layer (tc_fwd_calibrate_streamed): the decoder
     * layers are not loaded here but one at a time while calibrating, and
     * released after their turn (a method that needs them does its work in
     * the per-layer hook, tc_fwd_set_layer_hook). */
    bool stream_layers;
    /* Calibration whose statistics need nothing of lm_head (no method
     * quantizes it): the last stage neither loads ln_f and lm_head nor runs
     * them, and the statistics come back with lm_head_absent. tc_fwd_run
     * with a sink refuses such an engine. */
    bool skip_head;
    const tc_fwd_weight_source *weights;  /* NULL: the model's slices */
} tc_fwd_setup;

/* What a rank holds after a micro-batch, reported to a sink (host copies,
 * float32). kind: "embed" (input of the first layer), "layer" (output of
 * global layer `layer`), "norm" (ln_f output), "logits" (this tp rank's
 * columns [col0, col0 + cols) of the unpadded vocabulary). Rows are the
 * batch's packed tokens. */
typedef tc_status (*tc_fwd_sink)(void *ctx, int64_t batch, const char *kind, int64_t layer,
                                 int64_t col0, const float *data, int64_t rows, int64_t cols);

/* For trtconv eval (eval.c), both set before tc_fwd_run:
 * - layer_input: before each decoder layer of a micro-batch, fn(ctx, batch,
 *   global layer, rows, cols) may return hidden states [rows = the batch's
 *   tokens, cols = hidden] in float32 holding values of the forward dtype;
 *   the layer then runs on them instead of the previous layer's output
 *   (NULL: as usual). Called on every rank of the stage.
 * - report_all: "embed", "layer" and "norm" go to the sink on every tp rank
 *   (default: tp rank 0 only; all tp ranks hold the same values), and a
 *   later pipeline stage reports its input as "input" with layer = its
 *   first layer - 1. */
typedef const float *(*tc_fwd_layer_input)(void *ctx, int64_t batch, int64_t layer, int64_t rows,
                                           int64_t cols);
void tc_fwd_set_layer_input(tc_fwd_engine *e, tc_fwd_layer_input fn, void *ctx);
void tc_fwd_set_report_all(tc_fwd_engine *e, bool all);
/* Also for trtconv eval: during tc_fwd_run, every dense decoder layer hands
 * sink (batch -1) the first `rows` token rows of each linear's output as
 * it computes them, kind "qkv" (this rank's fused q|k|v columns, col0 the
 * first), "fc" and "gate" (its intermediate columns; fc is the input of
 * silu, Hugging Face's gate_proj, gate is up_proj), "dense" and "proj"
 * (the whole [rows, hidden] output after the tensor-parallel sum, before
 * the bias, in float32; col0 0). A mixture-of-experts layer reports qkv and
 * dense only.
 * sink NULL or rows 0: off. */
void tc_fwd_set_linear_report(tc_fwd_engine *e, tc_fwd_sink sink, void *ctx, int64_t rows);
/* Also for trtconv eval: the logits stay in the engine's device memory
 * instead of going to the sink (a GPU engine only: returns false, and
 * changes nothing, on the CPU backend). tc_fwd_device_logits then gives the
 * last micro-batch's logits of this rank's vocabulary columns: data
 * [rows, ld] in *dt, its first *cols columns valid, global column *col0
 * first; borrowed until the engine's next tc_fwd_run (NULL before one). */
bool tc_fwd_keep_logits_on_device(tc_fwd_engine *e, bool on);
void tc_fwd_device_logits(const tc_fwd_engine *e, const void **data, tc_dtype *dt, int64_t *rows,
                          int64_t *ld, int64_t *cols, int64_t *col0);

/* Build this rank's cell, read its slices, create the communicators. Every
 * rank of setup->comm must call it. On TC_OK *out belongs to the caller.
 * The caller has checked the model against the layout once
 * (tc_plan_check_model) and, unless weights_only, that the ranks are a
 * multiple of the cells (tc_layout_check_replicas); the forward pass's own
 * limits (dtype, head_dim, rope kind, activation) are checked here. */
tc_status tc_fwd_create(const tc_fwd_setup *setup, tc_fwd_engine **out);
void tc_fwd_destroy(tc_fwd_engine *e); /* accepts NULL */

/* Run every micro-batch of `batch_size` consecutive sequences that falls to
 * this rank's data-parallel replica. sink (may be NULL) receives, per batch,
 * the tensors this rank is the reporter of: tp rank 0 of a stage reports
 * "embed" (stage 0), its layers and "norm" (last stage); every last-stage
 * rank reports its "logits" columns. Collective over the world. */
tc_status tc_fwd_run(tc_fwd_engine *e, const tc_token_set *tokens, int64_t batch_size,
                     tc_fwd_sink sink, void *sink_ctx);

/* With TRTCONV_FWD_PROFILE=1 in the environment every operation is timed
 * (synchronously), with TRTCONV_FWD_PROFILE=events by CUDA events on its
 * stream (no waits; GPU engines); this logs the time per operation class. */
void tc_fwd_profile_report(tc_fwd_engine *e);

/* Calibration (calib_stats.h, trtllm-checkpoint.md §5.2). After
 * tc_fwd_enable_stats, tc_fwd_run also records, per micro-batch, the
 * per-channel absolute maxima of every linear's input and output that this
 * rank computes. tc_fwd_collect_stats (collective over the world) adds the
 * weight row maxima, checks for NaN/Inf (the failing rank names the layer;
 * the others return TC_E_CANCELLED), takes the maxima over the tensor,
 * pipeline and data parallel groups through coll.h, and fills s (allocated
 * by the caller for the model's dims) on every rank. */
tc_status tc_fwd_enable_stats(tc_fwd_engine *e);
tc_status tc_fwd_collect_stats(tc_fwd_engine *e, tc_calib_stats *s);

/* Calibration layer by layer (fwd_stream.c; engine created with
 * stream_layers and tc_fwd_enable_stats): the hidden states of every token
 * of this rank's data-parallel replica stay in one backend buffer; each
 * decoder layer is loaded, run over all micro-batches and released, while
 * a helper thread reads the next layer's slices. The statistics are those
 * of tc_fwd_run on the same micro-batches, bit for bit. Afterwards the
 * engine holds no decoder layer (tc_fwd_has_layers). Collective over the
 * world. */
tc_status tc_fwd_calibrate_streamed(tc_fwd_engine *e, const tc_token_set *tokens,
                                    int64_t batch_size);
bool tc_fwd_has_layers(const tc_fwd_engine *e);

/* Streamed calibration only: after each of the rank's layers, its
 * statistics are reduced over the tensor- and data-parallel ranks of its
 * stage (collective there), finished into `host` (the model's dims, owned by
 * the caller) and hook(ctx, global layer) is called; those values equal what
 * tc_fwd_collect_stats will return for that layer. */
typedef tc_status (*tc_fwd_layer_hook)(void *ctx, int64_t layer);
void tc_fwd_set_layer_hook(tc_fwd_engine *e, tc_fwd_layer_hook hook, void *ctx,
                           tc_calib_stats *host);

/* Weights of local layer i in the backend's memory and representation
 * (fwd_backend.h), for SmoothQuant (sq.c), which smooths them in place.
 * Borrowed from the engine. */
typedef struct tc_fwd_layer_ptrs {
    void *in_norm, *post_norm, *qkv, *dense, *fc, *gate, *proj;
} tc_fwd_layer_ptrs;
void tc_fwd_layer_ptrs_get(const tc_fwd_engine *e, int64_t i, tc_fwd_layer_ptrs *out);
struct fwd_backend;
struct fwd_backend *tc_fwd_backend_get(const tc_fwd_engine *e);
tc_dtype tc_fwd_dtype(const tc_fwd_engine *e);

/* Layout of this rank. */
typedef struct tc_fwd_layout {
    int dp, tp, pp;              /* sizes */
    int dp_rank, tp_rank, pp_rank;
    int64_t layer0, n_layers;    /* global index of the first local layer, count */
    const char *backend;         /* "cuda" or "cpu" */
    const char *coll_tp, *coll_pp, *coll_dp;   /* backends of the communicators */
    uint64_t weight_bytes;       /* slice bytes read */
    double load_seconds;         /* time spent reading + uploading slices */
} tc_fwd_layout;
void tc_fwd_get_layout(const tc_fwd_engine *e, tc_fwd_layout *out);

/* Number of micro-batches and the largest one in tokens. */
int64_t tc_fwd_batch_count(const tc_token_set *t, int64_t batch_size);
int64_t tc_fwd_max_batch_tokens(const tc_token_set *t, int64_t batch_size);

/* RoPE: inverse frequencies of the config (rope_theta, rope_scaling kinds
 * default, linear, dynamic, llama3) for a batch whose longest sequence has
 * seq_len tokens, as transformers computes them in float32; inv_freq holds
 * head_dim / 2 entries. *attention_scaling gets the cos/sin multiplier (1).
 * Unknown kinds are refused by tc_fwd_rope_check. */
tc_status tc_fwd_rope_check(const tc_hf_config *cfg);
void tc_fwd_rope_inv_freq(const tc_hf_config *cfg, int64_t seq_len, float *inv_freq,
                          float *attention_scaling);

#endif
