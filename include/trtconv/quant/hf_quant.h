/* hf_quant.h: quantization of the Hugging Face-style output (issue 22,
 * docs/hf-output.md) as NVIDIA ModelOpt's export_hf_checkpoint writes it
 * (NVIDIA/TensorRT-Model-Optimizer 5a4242fa: unified_export_hf.py
 * _export_quantized_weight, quant_utils.py, nvfp4_tensor.py).
 *
 * A plan of whole Hugging Face tensors (plan.h tc_plan_build_hf) is
 * rewritten per linear weight `P.weight` (P = model.layers.L.self_attn.
 * q_proj, ...; lm_head and modules matching an exclude pattern stay as they
 * are):
 *   FP8         P.weight F8_E4M3 [N, K]; P.weight_scale, P.input_scale F32
 *               0-dim;
 *   FP8_PC_PT   P.weight F8_E4M3 [N, K]; P.weight_scale F32 [N] (one per
 *               output channel, filled with the weight); no input scale
 *               (activations per token at run time);
 *   NVFP4       P.weight U8 [N, K/2] (two E2M1 codes per byte);
 *               P.weight_scale F8_E4M3 [N, K/16]; P.weight_scale_2 and
 *               P.input_scale F32 0-dim;
 * and with an FP8 KV cache every layer gets self_attn.k_proj.k_scale and
 * self_attn.v_proj.v_scale, F32 0-dim.
 *
 * Scales from the calibration statistics (calib_stats.h; a forward pass in
 * the output dtype, so the weight row maxima are those of the stored
 * values). The fused groups share their maxima as ModelOpt's
 * requantize_resmooth_fused_llm_layers / preprocess_linear_fusion makes
 * them: q/k/v the input amax and (per-tensor weights) the weight amax,
 * gate/up likewise:
 *   FP8 weight_scale   fl32((double)w_amax / 448)   (torch.tensor(amax.item()
 *                      / maxbound): a Python float division; an amax of 0
 *                      gives 1, where ModelOpt would divide by 0)
 *   FP8 input_scale    tc_fp8_tensor_scale(x_amax)  (fp8.h)
 *   NVFP4 weight_scale_2  tc_nvfp4_global_scale(w_amax); input_scale
 *                      tc_nvfp4_input_scale(x_amax) (nvfp4.h)
 *   k_scale / v_scale  max(1, y_amax * (1.0f / 448)) of k_proj / v_proj's
 *                      output (postprocess_state_dict clamps FP8 KV scales
 *                      to at least 1). ModelOpt's amax is that of k after
 *                      rotary embedding (k_bmm_quantizer); trtconv's
 *                      statistics hold k_proj's output before it, so the
 *                      two differ only when |k| exceeds 448.
 *
 * Ownership: functions fill the caller's plan; nothing is retained. */
#ifndef TRTCONV_QUANT_HF_QUANT_H
#define TRTCONV_QUANT_HF_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include "trtconv/calib/calib_stats.h"
#include "trtconv/core/status.h"
#include "trtconv/plan/plan.h"

typedef enum tc_hf_algo {
    TC_HF_ALGO_NONE,
    TC_HF_ALGO_FP8,          /* hf_quant_config "FP8" */
    TC_HF_ALGO_FP8_PC_PT,    /* "FP8_PER_CHANNEL_PER_TOKEN" */
    TC_HF_ALGO_NVFP4,        /* "NVFP4", group_size 16 */
} tc_hf_algo;

#define TC_HF_MAX_EXCLUDE 64

typedef struct tc_hf_quant {
    tc_hf_algo algo;
    bool kv_fp8;                              /* kv_cache_quant_algo "FP8" */
    size_t n_exclude;                         /* --exclude_modules patterns */
    char exclude[TC_HF_MAX_EXCLUDE][128];     /* fnmatch(3) over module names */
} tc_hf_quant;

/* hf_quant_config.json's quant_algo (NULL for none). */
const char *tc_hf_algo_name(tc_hf_algo a);
/* Whether the scales need calibration statistics. */
bool tc_hf_quant_needs_stats(const tc_hf_quant *q);
/* Parse a comma-separated pattern list into q (empty items refused). */
tc_status tc_hf_quant_parse_exclude(const char *list, tc_hf_quant *q);
/* Module `name` (e.g. "model.layers.0.mlp.down_proj") stays unquantized:
 * lm_head always (ModelOpt's default), else a pattern matches. */
bool tc_hf_module_excluded(const tc_hf_quant *q, const char *module);

/* Rewrite the linears of a tc_plan_build_hf plan for q and add the scale
 * tensors (their values zero until tc_hf_quant_fill). Every tensor whose
 * values come from the statistics of layer L (the FP8 and NVFP4 weights,
 * the scalar scales) is gated on L (plan.h gate_layer): a run that
 * calibrates while it writes fills layer L and opens its gate once L's
 * statistics are final. */
tc_status tc_hf_quant_rewrite(const tc_hf_quant *q, tc_plan *p);
/* Fill the scales of layer `layer` (every layer when negative) of the plan
 * (any subset of a rewritten plan: a shard) from the statistics; stats may
 * be NULL when none is needed. */
tc_status tc_hf_quant_fill(const tc_hf_quant *q, const tc_calib_stats *stats, tc_plan *p,
                           int64_t layer);

/* The scalar references of the weight quantizations (also used by the
 * conversion workers on the CPU). Rows [0, rows) of w ([rows, cols], dt F16,
 * BF16 or F32):
 * FP8 per tensor: torch computes (weight / weight_scale) with a 16-bit
 * weight and a 0-dim float32 scale in the weight's dtype (a 0-dim tensor
 * does not promote a dimensioned one): the scale read as dt, the quotient
 * rounded to dt, then to E4M3 - q = e4m3(dt(float(w) / float(dt(s)))).
 * F32 weights divide in float32 directly. */
float tc_hf_fp8_weight_scale(float amax);
tc_status tc_hf_fp8_quantize_rows(const void *w, tc_dtype dt, int64_t rows, int64_t cols, float s,
                                  uint8_t *q);
/* FP8_PC_PT: per row s = tc_fp8_tensor_scale(max |w|) (export_amax, then a
 * CUDA tensor over a Python scalar), q = e4m3(float(w) / s) (the [N, 1]
 * float32 scale promotes the quotient to float32). */
tc_status tc_hf_fp8_pcpt_quantize_rows(const void *w, tc_dtype dt, int64_t rows, int64_t cols,
                                       uint8_t *q, float *scales);

#endif
