/* fp8.h: FP8 weight quantization (E4M3, core/dtype.h tc_f32_to_e4m3fn).
 *
 * Rowwise, as TensorRT-LLM v0.12 convert.py fp8_per_channel_quant_weight_gpu
 * computes it on the GPU in PyTorch, for each row n of a weight slice
 * W = [N, K] (the config dtype, converted to float32 exactly):
 *   x     = clamp(W[n][k], clamp[0], clamp[1])             (float32)
 *   amax  = max_k |x|                                      (NaN propagates)
 *   s     = max(amax * (1.0f / 448.0f), (float)(1 / (448 * 512)))
 *           (a tensor divided by a Python scalar is a multiplication by
 *           the float32 reciprocal on CUDA; clamp(min=) takes the scalar as
 *           float32)
 *   q     = e4m3fn(clamp(x / s, -448, 448))                (IEEE division)
 *   scale = s                                              (float32)
 * A NaN anywhere in a row makes its scale NaN; NaN results are CUDA's
 * canonical NaN (0x7FFFFFFF, E4M3 0x7F), as upstream computes on the GPU.
 * Any row range can be quantized alone: rows are independent.
 *
 * Per tensor (--use_fp8), as NVIDIA ModelOpt's TensorRT-LLM export computes
 * it (docs/fp8.md): one float32 scale per tensor from its absolute maximum
 * (tc_fp8_tensor_scale), and for every element of the slice W (the config
 * dtype, widened exactly)
 *   q     = e4m3fn(W[n][k] / s)                           (IEEE division,
 *           no clamp: |W| / s stays within 448 by one rounding at most)
 * A NaN quotient is CUDA's canonical NaN (E4M3 0x7F). */
#ifndef TRTCONV_QUANT_FP8_H
#define TRTCONV_QUANT_FP8_H

#include <stdint.h>
#include "trtconv/core/dtype.h"
#include "trtconv/core/status.h"

/* The E4M3 range and v0.12's scale floor and default clamp. */
#define TC_FP8_E4M3_MAX 448.0f
#define TC_FP8_ROWWISE_CLAMP 1200.0f

/* The scale of one row from its clamped absolute maximum. */
float tc_fp8_rowwise_scale(float amax);

/* Quantize rows [0, rows) of w (dt: F32, F16 or BF16; rows x cols) into
 * q (rows x cols E4M3 bytes) and scales (rows float32). */
tc_status tc_fp8_rowwise_quantize_rows(const void *w, tc_dtype dt, int64_t rows, int64_t cols,
                                       const float clamp[2], uint8_t *q, float *scales);

/* ModelOpt's per-tensor scale (get_scaling_factor over export_amax): an
 * amax of 0 becomes 448 (scale 1), others are clamped to [FLT_MIN,
 * FLT_MAX], then amax * (1.0f / 448.0f) (a CUDA tensor over a Python
 * scalar). amax must be finite and >= 0. */
float tc_fp8_tensor_scale(float amax);

/* Quantize rows [0, rows) of w (dt: F32, F16 or BF16; rows x cols) with the
 * scale s into q (rows x cols E4M3 bytes). */
tc_status tc_fp8_tensor_quantize_rows(const void *w, tc_dtype dt, int64_t rows, int64_t cols,
                                      float s, uint8_t *q);

#endif
