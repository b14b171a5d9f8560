/* fwd_internal.h (private to src/fwd/): the forward engine's state and the
 * steps its two schedules share. fwd.c runs micro-batch by micro-batch
 * through every layer (tc_fwd_run); fwd_stream.c runs layer by layer over
 * the whole calibration set (tc_fwd_calibrate_streamed). Everything in the
 * struct is owned by the engine (tc_fwd_destroy). */
#ifndef TRTCONV_FWD_INTERNAL_H
#define TRTCONV_FWD_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include "trtconv/calib/calib_stats.h"
#include "trtconv/core/log.h"
#include "trtconv/fwd/backend.h"
#include "trtconv/fwd/fwd.h"
#include "trtconv/fwd/fwd_moe.h"
#include "trtconv/mpi/coll.h"
#include "trtconv/plan/plan.h"

/* Weights are read and uploaded in pieces of at most this many bytes, so the
 * host holds one piece at a time whatever the tensor size. */
#define FWD_LOAD_CHUNK (16u << 20)

/* A linear of a quantized checkpoint as trtconv eval emulates it
 * (fwd_quant.c, fake_quant.h). */
enum { LQ_QKV, LQ_DENSE, LQ_FC, LQ_GATE, LQ_PROJ, LQ_COUNT };
typedef struct lin_quant {
    int act;                       /* TC_FQ_NONE: an ordinary linear */
    bool per_token, per_channel;
    float act_scale, row_scale;
    float *col;                    /* backend float32 [1 or the local output rows] */
    float *smoother;               /* backend float32 [local input width], or NULL */
    tc_fq_clamp clamp;
} lin_quant;

typedef struct layer_weights {
    void *in_norm, *post_norm;
    void *qkv, *qkv_bias;
    void *dense, *dense_bias;
    void *fc, *gate, *proj;
    void *router;                  /* mixture of experts (fwd_moe.h): fc/proj are stacked */
    lin_quant q[LQ_COUNT];         /* all TC_FQ_NONE unless the weight source quantizes */
    int kv_kind;                   /* TC_FQ_*: the KV cache stored quantized */
    float kv_scale;
} layer_weights;

struct tc_fwd_engine {
    const tc_comm *comm;
    const tc_hf_config *cfg;
    tc_dtype dt;
    size_t es;                     /* bytes per activation element */
    int dp, tp, pp, dp_rank, tp_rank, pp_rank;
    int64_t layer0, n_layers;
    int64_t H, inter, vocab, vocab_local, qkv_width;
    int64_t inter0;                /* model channel of this rank's intermediate slice */
    int64_t moe_e0, moe_E_l;       /* local experts [e0, e0 + E_l) (mixture of experts) */
    fwd_attn attn;
    float eps;
    fwd_backend *be;
    const fwd_ops *ops;
    tc_coll tp_c, pp_c, dp_c;
    tc_plan *plan;

    /* weights, backend form */
    void *embed;
    int64_t emb_row0, emb_rows, emb_col0, emb_cols;
    bool emb_split;
    layer_weights *layers;
    void *ln_f, *lm_head;
    bool lm_head_shared;
    bool weights_only;
    tc_fwd_weight_source wsrc;     /* rows == NULL: the cell plan's slices */             /* decoder layers only (tc_fwd_setup) */
    bool stream_layers;            /* decoder layers loaded one at a time (fwd_stream.c) */
    bool skip_head;                /* no ln_f / lm_head (tc_fwd_setup) */
    tc_fwd_layer_hook layer_hook;  /* tc_fwd_set_layer_hook */
    void *hook_ctx;
    tc_calib_stats *hook_stats;    /* borrowed */
    bool layer_stats_taken;        /* their weight maxima were taken while loaded */

    /* activations */
    int64_t max_tokens, max_len;
    void *h, *x, *qkv, *q, *k, *v, *o, *g, *u, *a, *logits;
    float *p32, *red;
    int32_t *d_meta;               /* ids | pos | seq_start | seq_len, 4 * max_tokens */
    float *d_rope;                 /* cos | sin, 2 * max_len * d/2 */
    int32_t *h_meta;
    float *h_rope;
    float *d_report;               /* f32 copy for sinks */
    tc_fwd_layer_input layer_input;  /* tc_fwd_set_layer_input */
    void *layer_input_ctx;
    void *h_inject;                /* host copy of an injected input, forward dtype */
    size_t inject_elems;
    bool report_all;               /* tc_fwd_set_report_all */
    bool logits_on_device;         /* tc_fwd_keep_logits_on_device */
    int64_t logits_rows;           /* of the last micro-batch */
    tc_fwd_sink linear_sink;       /* tc_fwd_set_linear_report */
    void *linear_ctx;
    int64_t linear_rows;
    float *h_report;
    size_t report_elems;

    float *q_acc, *q_row;          /* quantized linears: float32 GEMM output, row factors */
    void *q_in;                    /* a quantized input (forward dtype) */
    uint64_t weight_bytes;
    double load_seconds;

    /* Calibration (tc_fwd_enable_stats): the statistics in model form
     * (calib_stats.h layout) in backend memory; each rank fills the channels
     * it computes, the collect step takes the maxima over all ranks. */
    float *d_stats;
    fwd_moe *moe;                  /* mixture-of-experts block, or NULL */
    tc_calib_dims sd;

    /* TRTCONV_FWD_PROFILE (fwd_prof.c): =1 synchronises after every
     * operation and adds its wall time to its class; =events times each
     * operation on the GPU with CUDA events instead, without waiting. */
    int profile;                   /* FWD_PROF_* */
    double prof_s[16];
    double prof_span_s;            /* events: the main stream's first to last operation */
    double prof_host_s[8];         /* the layer-streamed loop's host phases (FWD_HOST_*) */
    double prof_between_s;         /* events: from a layer's last operation to the next's first */
    double prof_between_max_s;     /* events: the longest of those gaps */
    int64_t prof_between_n;        /* events: gaps folded (the n-th is before local layer n) */
    int64_t prof_between_max_at;   /* events: the local layer the longest came before */
    double prof_submit_s[16];      /* events: host time queueing each class's work (the call) */
    long long prof_calls[16];      /* events: operations of each class */
    double prof_mark_s;            /* events: host time recording the events themselves */
    double prof_flop;              /* queued by tc_fwd_qlinear (2 T N K) and attention (causal
                                    * work once: 4 d sum of L (L + 1) / 2 per head); counted
                                    * with or without profiling (the layer loop's rate) */
    struct fwd_gpu_prof *gprof;    /* events: the event pool, or NULL */
};

enum prof_class { P_NORM, P_QKV, P_ROPE, P_ATTN, P_DENSE, P_TP_SUM, P_RESID, P_FC_GATE, P_SILU,
                  P_PROJ, P_EMBED, P_LM_HEAD, P_PIPE, P_STATS, P_HOOK, P_COUNT };

enum { FWD_PROF_OFF, FWD_PROF_SYNC, FWD_PROF_EVENTS };
/* The host's steps per layer of fwd_stream.c: read-ahead join, upload and
 * weight maxima; queueing the layer's micro-batches; the previous layer's
 * hook; waiting for the GPU; publishing the layer's statistics. */
enum { FWD_HOST_LOAD, FWD_HOST_QUEUE, FWD_HOST_HOOK, FWD_HOST_WAIT, FWD_HOST_PUBLISH,
       FWD_HOST_COUNT };
typedef struct fwd_gpu_prof fwd_gpu_prof;
int tc_fwd_prof_mode_from_env(void);
bool tc_fwd_prof_events_supported(const tc_fwd_engine *e);
/* events: record the begin (cls < 0) or the end of an operation of class
 * cls on the current stream; fold reads the recorded pairs into prof_s. */
tc_status tc_fwd_prof_mark(tc_fwd_engine *e, int cls);
tc_status tc_fwd_prof_fold(tc_fwd_engine *e);
/* events, layer-streamed loop: record on the main stream where a layer's
 * operations end (end) or the next layer's begin (!end); after the host
 * has waited for a layer, tc_fwd_prof_edges_fold adds the gap between the
 * previous layer's end and this one's begin to prof_between_s: what the
 * GPU did between two layers' operations (the next layer's weight maxima)
 * or waited for (the host at the boundary). No-ops without events. */
tc_status tc_fwd_prof_edge(tc_fwd_engine *e, bool end);
tc_status tc_fwd_prof_edges_fold(tc_fwd_engine *e);
void tc_fwd_prof_free(tc_fwd_engine *e);

#define TRY(x) TC_TRY(x)

/* Run one operation; with profiling, time it and charge its class. */
#define OP(cls, call)                                                         \
    do {                                                                      \
        double t0_ = e->profile ? tc_now_seconds() : 0.0;                     \
        if (e->profile == FWD_PROF_EVENTS) {                                  \
            TRY(tc_fwd_prof_mark(e, -1));                                     \
            const double t1_ = tc_now_seconds();                              \
            e->prof_mark_s += t1_ - t0_;                                      \
            t0_ = t1_;                                                        \
        }                                                                     \
        TRY(call);                                                            \
        if (e->profile == FWD_PROF_EVENTS) {                                  \
            const double t1_ = tc_now_seconds();                              \
            e->prof_submit_s[cls] += t1_ - t0_;                               \
            e->prof_calls[cls]++;                                             \
            TRY(tc_fwd_prof_mark(e, cls));                                    \
            e->prof_mark_s += tc_now_seconds() - t1_;                         \
        } else if (e->profile == FWD_PROF_SYNC) {                             \
            TRY(e->ops->sync(e->be));                                         \
            e->prof_s[cls] += tc_now_seconds() - t0_;                         \
        }                                                                     \
    } while (0)

/* Upload the metadata and rope tables of sequences [s0, s1) (offsets:
 * n_seqs + 1 host scratch); bt describes the batch. */
tc_status tc_fwd_setup_batch(tc_fwd_engine *e, const tc_token_set *t, size_t s0, size_t s1,
                             int64_t *offsets, fwd_batch *bt);
/* The same into caller-owned backend buffers of tc_fwd_meta_bytes and
 * tc_fwd_rope_bytes (a batch set up once and run through many layers). */
tc_status tc_fwd_setup_batch_into(tc_fwd_engine *e, const tc_token_set *t, size_t s0, size_t s1,
                                  int64_t *offsets, int32_t *d_meta, float *d_rope, fwd_batch *bt);
size_t tc_fwd_meta_bytes(const tc_fwd_engine *e);
size_t tc_fwd_rope_bytes(const tc_fwd_engine *e);
/* Stage input of a batch into e->h: the embedding (first stage) or the
 * previous stage's hidden state. */
tc_status tc_fwd_stage_input(tc_fwd_engine *e, const fwd_batch *bt);
/* Local layer li on the batch, e->h in place (statistics when enabled). */
tc_status tc_fwd_run_layer(tc_fwd_engine *e, int64_t li, const fwd_batch *bt);
/* This rank's vocabulary columns of the logits: the first global column
 * and how many of its vocab_local are real (the padding of a vocabulary
 * that tp does not divide is not; <= 0: none). */
void tc_fwd_logits_columns(const tc_fwd_engine *e, int64_t *col0, int64_t *valid);
/* Last stage: ln_f and lm_head of the batch in e->h (e->x, e->logits),
 * with lm_head's statistics when enabled. */
tc_status tc_fwd_head(tc_fwd_engine *e, int64_t T);
/* A decoder layer's slices read into host memory in the engine's dtype,
 * in the order of fwd.c's layer table (elems 0: the plan has no such
 * tensor). The buffers are reused from layer to layer (all layers have the
 * same shapes) and pinned for the GPU. */
#define FWD_LAYER_TENSORS 10
/* A decoder layer read ahead (fwd_stream.c) straight into backend memory:
 * the slices pass through one pinned host chunk of FWD_LOAD_CHUNK bytes, so
 * host memory does not grow with the layer (a 70B layer is 1.7 GB). */
typedef struct fwd_staged_layer {
    void *dev[FWD_LAYER_TENSORS];    /* backend memory, until tc_fwd_load_layer takes it */
    size_t elems[FWD_LAYER_TENSORS];
    /* A finished layer's backend memory (tc_fwd_recycle_layer, owned) that
     * the next tc_fwd_staged_reserve takes instead of allocating: no
     * cudaFree, which waits for the whole device, and no cudaMalloc between
     * two layers. */
    void *spare[FWD_LAYER_TENSORS];
    size_t spare_bytes[FWD_LAYER_TENSORS];
    void *chunk;                     /* pinned host, FWD_LOAD_CHUNK bytes (owned) */
    void *tmp;                       /* a chunk of rows in the slice dtype (owned) */
    float *scratch;                  /* tc_convert_rows' float32 rows (owned) */
} fwd_staged_layer;

/* On the engine's thread: the host buffers (first call) and backend
 * memory for local layer li (next to the resident layer: the error names
 * the sizes when it does not fit). */
tc_status tc_fwd_staged_reserve(tc_fwd_engine *e, int64_t li, fwd_staged_layer *s);
/* Read local layer li's slices (the plan's pieces, from the source files)
 * into the reserved backend memory through upload_weight_bg; a helper
 * thread runs it while the engine computes. */
tc_status tc_fwd_stage_layer(tc_fwd_engine *e, int64_t li, fwd_staged_layer *s);
void tc_fwd_staged_free(tc_fwd_engine *e, fwd_staged_layer *s);
/* fwd_weights.c: every weight of the cell at creation (the decoder layers
 * unless stream_layers). */
tc_status tc_fwd_load_weights(tc_fwd_engine *e, const tc_embedding *emb);
/* Local layer li's weights into backend memory (tc_fwd_release_layer frees
 * them): taken over from `staged`, or read here in bounded chunks when it
 * is NULL. */
tc_status tc_fwd_load_layer(tc_fwd_engine *e, int64_t li, fwd_staged_layer *staged);
void tc_fwd_release_layer(tc_fwd_engine *e, int64_t li);
/* tc_fwd_release_layer, but the backend memory goes to `s`'s spares for
 * the next reserve (every use of the layer must be complete: its forward
 * and hook streams synchronised). */
void tc_fwd_recycle_layer(tc_fwd_engine *e, int64_t li, fwd_staged_layer *s);
/* fwd_report.c: a [rows, cols] activation (the forward dtype, row stride
 * `stride`) to sink as float32, columns [c0, c0 + cols); a linear's output
 * rows to the linear sink (tc_fwd_set_linear_report; nothing when unset);
 * the caller's input of a layer uploaded in place of h (nothing when the
 * caller gives none). */
tc_status tc_fwd_report(tc_fwd_engine *e, tc_fwd_sink sink, void *ctx, int64_t batch,
                        const char *kind, int64_t layer, int64_t col0, const void *src,
                        int64_t rows, int64_t stride, int64_t c0, int64_t cols);
tc_status tc_fwd_report_linear(tc_fwd_engine *e, const char *kind, int64_t layer, int64_t col0,
                               const void *out, tc_dtype dt, int64_t T, int64_t width);
tc_status tc_fwd_inject_input(tc_fwd_engine *e, int64_t batch, int64_t layer, int64_t T);
/* fwd_quant.c: the quantized linears and KV cache of local layer li from the
 * weight source (nothing without linear_quant / kv_quant), their backend
 * copies released; and the steps run_layer takes for them. */
tc_status tc_fwd_load_layer_quant(tc_fwd_engine *e, int64_t li);
void tc_fwd_release_layer_quant(tc_fwd_engine *e, int64_t li);
/* out = in W^T as the linear computes: ordinary, or its input quantized
 * (after the smoother), the GEMM on the quantized values, the product
 * dequantized. in is left as it was unless a smoother divides it (in place).
 * `requant` false: the input was quantized by the previous call (fc and
 * gate share the post-norm input) and q_row still holds its factors. */
tc_status tc_fwd_qlinear(tc_fwd_engine *e, const lin_quant *q, bool requant, void *out,
                         bool out_f32, void *in, const void *w, const void *bias, int64_t T,
                         int64_t N, int64_t K);
/* The keys and values [T * kv heads * head_dim] stored quantized and read back. */
tc_status tc_fwd_kv_quant(tc_fwd_engine *e, const layer_weights *w, int64_t T);
/* Host finishing of layer L's statistics after the reduction (rounding of
 * the float32 output maxima, the shared inputs copied). */
void tc_fwd_finalize_layer_stats(const tc_fwd_engine *e, tc_calib_stats *s, int64_t L);
/* With a layer hook: reduce local layer li's statistics over tp and dp and
 * finish them into the hook's host statistics (the hook itself is called
 * by fwd_stream.c, one layer later). */
tc_status tc_fwd_publish_layer_stats(tc_fwd_engine *e, int64_t li);
/* Row maxima of local layer li's weights into the statistics. */
tc_status tc_fwd_layer_weight_stats(tc_fwd_engine *e, int64_t li);

#endif
