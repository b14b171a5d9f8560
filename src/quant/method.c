/* method.c: the table of quantization methods (see method.h).
 *
 * config.json names follow TensorRT-LLM v0.12 convert_checkpoint.py
 * args_to_quant_config (trtllm-checkpoint.md §1); what each stores per
 * linear follows §4.6-4.9 and §5. */
#include "trtconv/quant/method.h"

#include "trtconv/quant/fp8.h"
#include "trtconv/core/log.h"

#include <math.h>
#include <string.h>

#define WOQ_KERNELS "quant/woq.c tc_woq_quantize_rows (CPU reference), kernels/woq.cu " \
                    "tc_woq_quantize_rows_cuda (GPU), both in the CUTLASS layout of the target SM"
#define SQ_KERNELS "calibration: fwd/ (fwd_cpu.c, kernels/fwd.cu); smoothing and int8 " \
                   "weights: quant/sq.c over the fwd backend ops (quantize_i8, col/row maxima)"

static const tc_quant_method table[] = {
    { .name = "none", .kind = TC_QUANT_WEIGHTS, .rope_buffers = true,
      .per_linear = "the weight in --dtype",
      .kernels = "convert/convert.c (dtype casts; kernels/cast.cu on the GPU tests)" },
    { .name = "W8A16", .kind = TC_QUANT_WEIGHTS, .config_algo = "W8A16", .rope_buffers = true,
      .gpu_quantize = true, .woq_bits = 8, .plan = tc_woq_plan,
      .per_linear = "weight I8 [K, N] (CUTLASS-preprocessed), per_channel_scale [N] in --dtype",
      .kernels = WOQ_KERNELS },
    { .name = "W4A16", .kind = TC_QUANT_WEIGHTS, .config_algo = "W4A16", .rope_buffers = true,
      .gpu_quantize = true, .woq_bits = 4, .plan = tc_woq_plan,
      .per_linear = "weight I8 [K, N/2] (two int4 per byte, CUTLASS-preprocessed), "
                    "per_channel_scale [N] in --dtype",
      .kernels = WOQ_KERNELS },
    { .name = "W8A16 without the plugin", .kind = TC_QUANT_WEIGHTS, .config_algo = "W8A16",
      .rope_buffers = true, .woq_bits = 8, .woq_no_plugin = true, .plan = tc_woq_plan,
      .per_linear = "weight [K, N] unquantized, transposed, in --dtype; per_channel_scale [N]",
      .kernels = "quant/woq.c tc_woq_scales_rows (CPU)" },
    { .name = "FP8_PER_CHANNEL_PER_TOKEN", .kind = TC_QUANT_WEIGHTS,
      .config_algo = "FP8_PER_CHANNEL_PER_TOKEN", .rope_buffers = true, .gpu_quantize = true,
      .plan = tc_fp8_rowwise_plan,
      .per_linear = "MLP linears of layers 1..L-2: weight F8_E4M3 [N, K], per_channel_scale F32 "
                    "[N]; mlp.clamp_val and post_layernorm.clamp_val F32 [2] per such layer; "
                    "attention and the first and last layer as they are",
      .kernels = "quant/fp8.c tc_fp8_rowwise_quantize_rows (CPU reference), kernels/fp8.cu "
                 "tc_fp8_rowwise_quantize_rows_cuda (GPU); E4M3: core/dtype.c tc_f32_to_e4m3fn" },
    { .name = "FP8", .kind = TC_QUANT_WEIGHTS, .config_algo = "FP8", .calib = TC_CALIB_LINEAR_IO,
      .calib_in_out_dtype = true, .gpu_quantize = true,
      .calibrated = &tc_fp8_tensor_calibrated_ops,
      .per_linear = "qkv, dense, fc, gate, proj of every layer: weight F8_E4M3 [N, K], "
                    "weights_scaling_factor and activation_scaling_factor F32 [1] (scales "
                    "shared across q/k/v and gate/up, from the calibration statistics)",
      .kernels = "quant/fp8.c tc_fp8_tensor_quantize_rows (CPU reference), kernels/fp8.cu "
                 "tc_fp8_tensor_quantize_rows_cuda (GPU); scales: quant/fp8_tensor.c" },
#define SQ(algo_, pc_, pt_, lin_)                                                          \
    { .name = algo_, .kind = TC_QUANT_WEIGHTS, .config_algo = algo_,                       \
      .calib = TC_CALIB_LINEAR_IO, .calib_in_f16 = true, .smoothquant = true,              \
      .per_channel = pc_, .per_token = pt_, .calibrated = &tc_sq_calibrated_ops,          \
      .per_linear = lin_, .kernels = SQ_KERNELS }
    SQ("W8A8_SQ_PER_TENSOR_PLUGIN", false, false,
       "smoothed weight I8 [N, K]; per-tensor act/weight scales, scale_y_accum_quant, "
       "smoothed norms or smoother [K] (trtllm-checkpoint.md §5.5)"),
    SQ("W8A8_SQ_PER_TENSOR_PER_TOKEN_PLUGIN", false, true,
       "as per-tensor, activation scales per token at run time (§5.5)"),
    SQ("W8A8_SQ_PER_CHANNEL_PER_TENSOR_PLUGIN", true, false,
       "smoothed weight I8 [N, K]; per-channel weight scales [N] (§5.5)"),
    SQ("W8A8_SQ_PER_CHANNEL_PER_TOKEN_PLUGIN", true, true,
       "smoothed weight I8 [N, K]; per-channel weight scales, per-token activations (§5.5)"),
#undef SQ
    { .name = "none", .kind = TC_QUANT_KV, .rope_buffers = true,
      .per_linear = "nothing", .kernels = "none" },
    { .name = "INT8", .kind = TC_QUANT_KV, .config_algo = "INT8", .calib = TC_CALIB_KV,
      .calibrated = &tc_kv_calibrated_ops,
      .per_linear = "attention.kv_cache_scaling_factor [1] F32 per layer (§4.10)",
      .kernels = "quant/sq.c (from the qkv output maxima)" },
    { .name = "FP8", .kind = TC_QUANT_KV, .config_algo = "FP8", .rope_buffers = true,
      .plan = tc_fp8_kv_plan,
      .per_linear = "attention.kv_cache_scaling_factor [1] F32 = 1.0 per layer (v0.12's "
                    "constant scale)",
      .kernels = "none (a constant filled by the conversion workers)" },
    { .name = "FP8, calibrated scale", .kind = TC_QUANT_KV, .config_algo = "FP8",
      .calib = TC_CALIB_KV, .rope_buffers = true, .calibrated = &tc_kv_calibrated_ops,
      .per_linear = "attention.kv_cache_scaling_factor [1] F32 = max(|k|, |v|) / 448 per layer "
                    "from the calibration statistics (docs/fp8.md)",
      .kernels = "quant/sq.c (from the k and v output maxima)" },
};

const tc_quant_method *tc_quant_methods(size_t *n)
{
    *n = sizeof table / sizeof table[0];
    return table;
}

static const tc_quant_method *find(tc_quant_kind kind, const char *algo, bool no_plugin,
                                   bool calibrated)
{
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        const tc_quant_method *m = &table[i];
        if (m->kind != kind || m->woq_no_plugin != no_plugin)
            continue;
        if (kind == TC_QUANT_KV && (m->calib != 0) != calibrated)
            continue;
        if (algo ? m->config_algo && !strcmp(m->config_algo, algo) : !m->config_algo)
            return m;
    }
    return NULL;
}

/* args_to_quant_config: the quant_algo the flags ask for (NULL: none). */
static const char *weights_algo(const tc_quant_request *r)
{
    const bool sq = !isnan(r->smoothquant) && r->smoothquant > 0.0;
    if (sq)
        return r->per_channel ? (r->per_token ? "W8A8_SQ_PER_CHANNEL_PER_TOKEN_PLUGIN"
                                              : "W8A8_SQ_PER_CHANNEL_PER_TENSOR_PLUGIN")
                              : (r->per_token ? "W8A8_SQ_PER_TENSOR_PER_TOKEN_PLUGIN"
                                              : "W8A8_SQ_PER_TENSOR_PLUGIN");
    if (r->woq_bits)
        return r->woq_bits == 4 ? "W4A16" : "W8A16";
    if (r->fp8_rowwise)
        return "FP8_PER_CHANNEL_PER_TOKEN";
    if (r->fp8)
        return "FP8";
    return NULL;
}

tc_status tc_quant_select(const tc_quant_request *r, tc_quant_settings *out)
{
    memset(out, 0, sizeof *out);
    const char *algo = weights_algo(r);
    out->weights = find(TC_QUANT_WEIGHTS, algo, algo && r->woq_bits && r->woq_no_plugin, false);
    const char *kv = r->fp8_kv_cache ? "FP8" : r->int8_kv_cache ? "INT8" : NULL;
    if (r->fp8_kv_calibrate && !r->fp8_kv_cache)
        return tc_fail(TC_E_USAGE, "--calibrate_fp8_kv_scale needs --fp8_kv_cache");
    out->kv = find(TC_QUANT_KV, kv, false,
                   (kv && !strcmp(kv, "INT8")) || (r->fp8_kv_cache && r->fp8_kv_calibrate));
    if (!out->weights)
        return tc_fail(TC_E_USAGE, "no quantization method writes %s%s", algo ? algo : "none",
                       r->woq_no_plugin ? " without the plugin" : "");
    if (!out->kv)
        return tc_fail(TC_E_INTERNAL, "no KV-cache method");
    if (out->weights->calibrated == &tc_fp8_tensor_calibrated_ops && out->kv->config_algo &&
        !strcmp(out->kv->config_algo, "INT8"))
        return tc_fail(TC_E_USAGE, "--use_fp8 with --int8_kv_cache: ModelOpt's FP8 export pairs "
                       "FP8 weights with an FP8 KV cache (--fp8_kv_cache) or none");
    if (out->weights->smoothquant)
        out->alpha = r->smoothquant;
    if (out->weights->plan == tc_fp8_rowwise_plan) {
        /* convert_checkpoint.py args_to_quant_config: clamp_val [-1200, 1200]. */
        out->has_clamp_val = true;
        out->clamp_val[0] = -TC_FP8_ROWWISE_CLAMP;
        out->clamp_val[1] = TC_FP8_ROWWISE_CLAMP;
    }
    return TC_OK;
}

tc_status tc_quant_from_model(tc_quant_settings *q, const tc_hf_config *cfg)
{
    if (!cfg->fbgemm_fp8)
        return TC_OK;
    const tc_quant_method *rw = find(TC_QUANT_WEIGHTS, "FP8_PER_CHANNEL_PER_TOKEN", false, false);
    if (q->weights != rw && q->weights->config_algo)
        return tc_fail(TC_E_USAGE, "the model is an fbgemm_fp8 checkpoint (quantization_config): "
                       "it converts as FP8_PER_CHANNEL_PER_TOKEN, not %s",
                       q->weights->config_algo);
    if (tc_quant_calib_needs(q))
        return tc_fail(TC_E_USAGE, "the forward pass (calibration) reads float weights: an "
                       "fbgemm_fp8 checkpoint cannot be calibrated (convert it without "
                       "--int8_kv_cache, --calibrate_fp8_kv_scale or --smoothquant)");
    q->weights = rw;
    q->has_clamp_val = true;
    q->clamp_val[0] = -cfg->activation_scale_ub;
    q->clamp_val[1] = cfg->activation_scale_ub;
    return TC_OK;
}

tc_status tc_quant_check_model(const tc_quant_settings *q, const tc_hf_config *cfg)
{
    if (!tc_hf_is_moe(cfg))
        return TC_OK;
    const tc_quant_method *w = q->weights;
    if (w->smoothquant)
        return tc_fail(TC_E_USAGE, "SmoothQuant of a mixture-of-experts model: TensorRT-LLM v0.12 "
                       "cannot do it either (smooth_llama_model reads mlp.gate_proj of every "
                       "decoder layer, which a %s layer does not have)", cfg->architecture);
    if (w->plan == tc_fp8_rowwise_plan)
        return tc_fail(TC_E_USAGE, "%s of a mixture-of-experts model: TensorRT-LLM cannot run it "
                       "(v0.12's converter leaves the experts unquantized and later releases "
                       "refuse it: \"MOE Does not support FP8 rowwise quantize\"); use "
                       "--use_fp8 (per tensor) for FP8 experts (docs/moe.md)", w->config_algo);
    /* What is left (weight-only, FP8 per tensor through the experts'
     * statistics, KV cache calibration) the MoE plan and forward pass
     * serve (plan_moe.c, fwd_moe.c). */
    return TC_OK;
}

unsigned tc_quant_calib_needs(const tc_quant_settings *q)
{
    return q->weights->calib | q->kv->calib;
}

const tc_calibrated_ops *tc_quant_calibrated(const tc_quant_settings *q)
{
    return q->weights->calibrated ? q->weights->calibrated : q->kv->calibrated;
}

bool tc_quant_rope_buffers(const tc_quant_settings *q)
{
    return q->weights->rope_buffers && q->kv->rope_buffers;
}
