/* method.h: the quantization seam. Every method trtconv writes is one
 * entry of one table (quant/method.c): what statistics it needs from
 * calibration, what it stores per linear, what it puts into config.json and
 * which kernels do the work. The run (app/) never names a method: it asks
 * the selected entries.
 *
 * Two kinds of entries, one of each selected per job:
 *   weights  how the linears are stored: none, W8A16/W4A16 (weight-only,
 *            with or without the plugin layout), the four SmoothQuant W8A8
 *            variants, FP8 rowwise (also what an fbgemm_fp8 checkpoint
 *            selects, tc_quant_from_model), FP8 per tensor;
 *   kv       how the KV cache is quantized: none, INT8, FP8 (v0.12's constant
 *            scale) or FP8 with a calibrated scale.
 * Two ways of producing the bytes:
 *   streamed    `plan` rewrites each cell's linears (e.g. quantized weight +
 *               per-channel scale) and the conversion workers (convert.h)
 *               compute them slice by slice, on the GPU when gpu_quantize;
 *   calibrated  `calibrated` ops run after the statistics exist: create a
 *               job, prepare (collective passes over the weights), turn the
 *               cell plans into computed tensors, write them.
 * Adding a method (INT4 group-wise, NVFP4, ...):
 * a table entry, its plan/ops and kernels, and the flag that selects it
 * (tc_quant_select); docs/architecture.md lists the files.
 *
 * Ownership: entries are static; a job (void *) belongs to the caller and
 * is released with ops->destroy. A context borrows everything it names. */
#ifndef TRTCONV_QUANT_METHOD_H
#define TRTCONV_QUANT_METHOD_H

#include <stdbool.h>
#include <stddef.h>
#include "trtconv/calib/calib_stats.h"
#include "trtconv/output/rankfile.h"
#include "trtconv/fwd/fwd.h"
#include "trtconv/model/hf_model.h"
#include "trtconv/mpi/comm.h"
#include "trtconv/mpi/gpu.h"
#include "trtconv/plan/layout.h"
#include "trtconv/plan/plan.h"
#include "trtconv/core/status.h"

typedef enum tc_quant_kind { TC_QUANT_WEIGHTS, TC_QUANT_KV } tc_quant_kind;

/* Statistics a method needs from calibration (calib_stats.h). */
enum {
    TC_CALIB_LINEAR_IO = 1u << 0,  /* input/output maxima of every linear */
    TC_CALIB_KV = 1u << 1,         /* output maxima of k_proj and v_proj */
};

/* What the command line asked for (cli/options.h fills it). */
typedef struct tc_quant_request {
    int woq_bits;                  /* 0, 8 or 4 */
    bool woq_no_plugin;            /* --disable_weight_only_quant_plugin */
    double smoothquant;            /* alpha; <= 0 or NaN: off */
    bool per_channel, per_token;
    bool int8_kv_cache;
    bool fp8_kv_cache;             /* wins over int8_kv_cache, as upstream */
    bool fp8_rowwise;              /* --use_fp8_rowwise */
    bool fp8;                      /* --use_fp8: FP8 per tensor, calibrated */
    bool fp8_kv_calibrate;         /* FP8 KV scale from calibration (beyond v0.12) */
} tc_quant_request;

typedef struct tc_quant_method tc_quant_method;

/* The resolved quantization of a job. */
typedef struct tc_quant_settings {
    const tc_quant_method *weights;   /* never NULL */
    const tc_quant_method *kv;        /* never NULL */
    double alpha;                     /* SmoothQuant's alpha (0 when off) */
    bool has_clamp_val;               /* FP8 rowwise: config.json clamp_val */
    double clamp_val[2];
    int target_sm;                    /* layout of weight-only weights (0: none) */
} tc_quant_settings;

/* Everything a calibrated method's job works with (borrowed). */
typedef struct tc_quant_ctx {
    const tc_comm *comm;
    tc_hf_model *model;
    const tc_calib_stats *stats;
    const tc_gpu_info *gpu;           /* NULL: the CPU */
    int threads;
    tc_layout layout;
    tc_embedding emb;
    const tc_quant_settings *q;
    tc_dtype out_dtype;
} tc_quant_ctx;

typedef struct tc_calibrated_ops {
    /* Create the job. `calibrated` (may be NULL) is the engine that ran the
     * calibration on this rank; the job takes it over. */
    tc_status (*create)(const tc_quant_ctx *ctx, tc_fwd_engine *calibrated, void **job);
    /* Collective passes over the cells' weights before anything is planned
     * (SmoothQuant: weight maxima, smoothing, scale maxima). */
    tc_status (*prepare)(void *job, const int *cells, size_t n_cells);
    /* Turn a cell plan into the method's computed tensors (plan.h). */
    tc_status (*plan)(void *job, tc_plan *p);
    /* Write the computed tensors of cells whose output is open (fd >= 0). */
    tc_status (*write)(void *job, const int *cells, size_t n_cells, tc_cell_output *outs);
    void (*destroy)(void *job);       /* accepts NULL */
    /* Optional: the method can write while calibrating (app/calibrated.c's
     * overlapped flow). Its plans are made before the statistics exist,
     * every value that depends on layer L's statistics sits in tensors
     * marked gated on L (plan.h), and this fills them into plan p once
     * layer L's statistics are final. */
    tc_status (*refresh_layer)(void *job, tc_plan *p, int64_t layer);
    /* Optional, instead of refresh_layer: the method computes and writes
     * layer L itself from the calibrating engine while the layer is resident
     * (SmoothQuant, whose passes need the layer's weights). stream_begin
     * (collective over the world) replaces prepare once the cells are open;
     * stream_layer runs in the engine's per-layer hook; write then finishes
     * (what no layer wrote, and waiting for the writes). */
    tc_status (*stream_begin)(void *job, tc_fwd_engine *engine, const int *cells,
                              size_t n_cells, tc_cell_output *outs);
    tc_status (*stream_layer)(void *job, int64_t layer);
    /* With stream_begin: release what the job holds on the engine's backend
     * (device scratch, pinned write buffers, waiting for their writes)
     * before the engine is freed, whether the last layer was reached or a
     * failure stopped the calibration; a second call does nothing. */
    void (*stream_end)(void *job);
} tc_calibrated_ops;

struct tc_quant_method {
    const char *name;                 /* as logged and in docs */
    tc_quant_kind kind;
    const char *config_algo;          /* config.json quant_algo / kv_cache_quant_algo; NULL: null */
    unsigned calib;                   /* TC_CALIB_* it needs; 0: no calibration */
    bool calib_in_f16;                /* calibration forward in float16, else the model's dtype */
    bool calib_in_out_dtype;          /* ... or in the output dtype (wins) */
    bool rope_buffers;                /* rank files carry the rotary buffers (rope.h) */
    bool gpu_quantize;                /* streamed: quantizes on the GPU when there is one */
    const char *per_linear;           /* what it stores per linear */
    const char *kernels;              /* CPU reference / GPU kernels */
    /* method parameters */
    int woq_bits;
    bool woq_no_plugin;
    bool smoothquant, per_channel, per_token;
    /* streamed: rewrite the cell's linears (NULL: stored as planned) */
    tc_status (*plan)(const tc_quant_settings *q, tc_plan *p);
    const tc_calibrated_ops *calibrated;  /* NULL: streamed */
};

/* The table, for docs and tests: n entries. */
const tc_quant_method *tc_quant_methods(size_t *n);

/* Map the request to one weights and one kv entry; TC_E_USAGE for a
 * combination no entry covers. target_sm and alpha are filled by the
 * caller (target_sm needs the GPUs, see app/settings.c). */
tc_status tc_quant_select(const tc_quant_request *r, tc_quant_settings *out);

/* The model's own quantization: an fbgemm_fp8 checkpoint is converted as
 * FP8 rowwise with clamp_val ±activation_scale_ub (v0.12
 * update_quant_config_from_hf), whether or not --use_fp8_rowwise was given;
 * with another weights method TC_E_USAGE. No-op for other models. */
tc_status tc_quant_from_model(tc_quant_settings *q, const tc_hf_config *cfg);

/* What the model allows: a mixture-of-experts model converts plain or
 * weight-only (v0.12's MoE branch), with any KV-cache method (calibrated
 * through the MoE forward pass); SmoothQuant is refused as v0.12 cannot do
 * it, FP8 weights until they exist for experts (docs/moe.md). TC_E_USAGE
 * naming the method. */
tc_status tc_quant_check_model(const tc_quant_settings *q, const tc_hf_config *cfg);

/* Statistics the selected entries need (0: no calibration). */
unsigned tc_quant_calib_needs(const tc_quant_settings *q);
/* The calibrated ops that produce this job's computed tensors, or NULL. */
const tc_calibrated_ops *tc_quant_calibrated(const tc_quant_settings *q);
/* Whether the rank files carry the rotary buffers. */
bool tc_quant_rope_buffers(const tc_quant_settings *q);

/* Weight-only (woq_plan.c): the linears of p become int8/int4 weights laid
 * out for q->target_sm, each followed by its per_channel_scale; every
 * preprocessing precondition is checked here, before anything is written. */
tc_status tc_woq_plan(const tc_quant_settings *q, tc_plan *p);

/* FP8 KV cache (fp8.c): every layer's attention.kv_cache_scaling_factor
 * [1] = 1.0, as v0.12 writes it. */
tc_status tc_fp8_kv_plan(const tc_quant_settings *q, tc_plan *p);
/* FP8 rowwise (fp8.c, fp8.h): the MLP linears of every layer but the first
 * and the last become F8_E4M3 [N, K] with per_channel_scale F32 [N]; those
 * layers also carry mlp.clamp_val and post_layernorm.clamp_val F32 [2]. */
tc_status tc_fp8_rowwise_plan(const tc_quant_settings *q, tc_plan *p);

/* SmoothQuant W8A8 and INT8 KV (sq_flow.c, over sq.h); a calibrated KV
 * cache alone (INT8, calibrated FP8) through the same passes, writing its
 * weights while calibrating (refresh_layer). */
extern const tc_calibrated_ops tc_sq_calibrated_ops;
extern const tc_calibrated_ops tc_kv_calibrated_ops;

/* FP8 per tensor (fp8_tensor.c): qkv, dense, fc, gate and proj of every
 * layer become F8_E4M3 [N, K] with weights_scaling_factor and
 * activation_scaling_factor F32 [1]; with a calibrated FP8 KV cache also its
 * scales. The scales of layer `layer` and linear `which` (0 qkv, 1 dense,
 * 2 fc, 3 gate, 4 proj) from the statistics: */
extern const tc_calibrated_ops tc_fp8_tensor_calibrated_ops;
float tc_fp8_tensor_weight_scale(const tc_calib_stats *s, int64_t layer, int which);
float tc_fp8_tensor_act_scale(const tc_calib_stats *s, int64_t layer, int which);
/* The calibrated FP8 KV-cache scale of a layer: max(|k|, |v|) * (1.0f /
 * 448.0f), 1.0 when both are zero (docs/fp8.md). */
float tc_fp8_kv_calibrated_scale(const tc_calib_stats *s, int64_t layer);

#endif
