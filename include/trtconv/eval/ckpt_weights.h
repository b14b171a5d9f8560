/* ckpt_weights.h: a converted checkpoint's rank file as the forward
 * engine's weight source (fwd.h tc_fwd_weight_source), for trtconv eval
 * (docs/eval.md).
 *
 * The engine asks for the tensors of its unquantized cell plan (the names
 * and [rows, cols] a plain conversion in the checkpoint's layout would
 * write); each is found under the same name in rank{cell}.safetensors and
 * returned as the engine would compute with it:
 *   - stored in a float dtype with the plan's element count: its values,
 *     converted to the plan's dtype if they differ;
 *   - W8A16 / W4A16 with the weight-only plugin (quant_algo W8A16 / W4A16):
 *     the stored I8 [K, N*bits/8] read back through tc_woq_unprocess
 *     (target_sm's layout) and multiplied by `...per_channel_scale` [N]:
 *     round(q * s) in the plan's dtype, the product the mixed-dtype GEMM
 *     forms before accumulating; stored without the plugin
 *     (disable_weight_only_quant_plugin): the float [K, N] weight quantized
 *     with its per_channel_scale and dequantized as the engine does at
 *     build, clamp(rne(w / s)) * s;
 *   - SmoothQuant (W8A8_SQ_*): the stored I8 [N, K] values; the linear's
 *     quantization (fwd.h tc_fwd_linear_quant) from `per_channel_scale`,
 *     `act_scale`, the input scales (`input_layernorm.scale_to_int`,
 *     `attention.quantization_scaling_factor`, `post_layernorm.scale_to_int`,
 *     `mlp.quantization_scaling_factor`) and the smoothers of dense and proj;
 *   - FP8 per tensor (FP8): the stored F8_E4M3 [N, K] values, the input
 *     quantized with `activation_scaling_factor`, the output scaled by it and
 *     `weights_scaling_factor`;
 *   - FP8 rowwise (FP8_PER_CHANNEL_PER_TOKEN): the MLPs whose weights are
 *     stored F8_E4M3 (Meta's recipe leaves attention and the first and last
 *     layers in float) with `per_channel_scale`, their inputs clamped to
 *     `post_layernorm.clamp_val` / `mlp.clamp_val` and quantized per token;
 *   - a quantized KV cache (kv_cache_quant_algo INT8 / FP8): each layer's
 *     `attention.kv_cache_scaling_factor`.
 * docs/eval.md has the formulas. Anything else (experts) is refused naming
 * the tensor, the dtype and the rule.
 * Hostile files: shapes, dtypes and byte ranges are checked against the
 * plan before anything is read or allocated.
 * Ownership: the source owns its open file, one dequantized tensor (kept
 * while the engine reads it in row chunks) and the scales of the last
 * linear it described. Not thread-safe. */
#ifndef TRTCONV_CKPT_WEIGHTS_H
#define TRTCONV_CKPT_WEIGHTS_H

#include <stdbool.h>
#include <stdint.h>
#include "trtconv/fwd/fake_quant.h"
#include "trtconv/fwd/fwd.h"
#include "trtconv/core/status.h"

typedef struct tc_ckpt_weights tc_ckpt_weights;

/* A checkpoint's quantization (its config.json). */
typedef struct tc_ckpt_quant {
    int woq_bits;            /* weight-only: 0 (none), 8 or 4 */
    bool woq_no_plugin;      /* --disable_weight_only_quant_plugin: stored unquantized */
    int target_sm;           /* the weight-only layout's SM (woq.h) */
    int act;                 /* TC_FQ_INT8: SmoothQuant; TC_FQ_FP8: FP8 per tensor */
    bool per_token;          /* SmoothQuant's activations per token */
    bool rowwise;            /* FP8 rowwise (FP8_PER_CHANNEL_PER_TOKEN) */
    int kv;                  /* the KV cache: TC_FQ_NONE, TC_FQ_INT8, TC_FQ_FP8 */
} tc_ckpt_quant;

tc_status tc_ckpt_weights_open(const char *dir, int rank_file, const tc_ckpt_quant *q,
                               tc_ckpt_weights **out);
void tc_ckpt_weights_close(tc_ckpt_weights *w); /* accepts NULL */
/* The engine's view: the reader, and linear_quant / kv_quant when the
 * checkpoint is quantized so; src->ctx = w. */
void tc_ckpt_weights_source(tc_ckpt_weights *w, tc_fwd_weight_source *src);

#endif
