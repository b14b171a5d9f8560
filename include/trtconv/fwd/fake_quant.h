/* fake_quant.h: the quantization steps of the engines that trtconv eval
 * emulates (docs/eval.md), as scalar reference functions in float32: the
 * CPU backend runs them, and the CUDA kernels (kernels/fake_quant.cu) are
 * held to them bit for bit (tests/cuda/test_fwd_cuda.c).
 *
 * The steps are TensorRT-LLM v0.12's (cpp/tensorrt_llm/kernels/
 * quantization.cu, rmsnormKernels.cu; tensorrt_llm/quantization/layers.py):
 *   - element quantizers: int8 is cvt.rni.sat.s8.f32 (round half to even,
 *     saturate to [-128, 127], NaN to 0); FP8 E4M3 is __nv_fp8_e4m3's
 *     satfinite conversion (saturate to +-448, round to nearest even, NaN
 *     stays NaN);
 *   - a linear's input quantized with a static scale, q = Q(x * scale), or
 *     per token: a = max(max |x[t, :]|, 1e-6 in the dtype), int8:
 *     q = Q(x * (127 / a)) with the row factor a / 127; FP8 (rowwise):
 *     q = Q(x * min(448 / a, 448 * 512)) with max(a / 448, 1 / (448 * 512));
 *   - the GEMM of quantized values accumulated in float32, then multiplied
 *     by the row's factor and the output channel's (or the tensor's) weight
 *     factor: out = acc * row[t] * col[n] (+ bias), rounded to the dtype
 *     unless the caller keeps float32.
 * Quantized values are exact in float16 and bfloat16 (integers up to 128,
 * E4M3 values), so the engine's float GEMM multiplies the same numbers the
 * int8 / FP8 GEMM would.
 *
 * NVFP4 (the Hugging Face-style output's NVFP4, issue 22): activations are
 * quantized at run time per block of 16 consecutive inputs of a row, with
 * the linear's global scale s (its input_scale; TensorRT-LLM's and vLLM's
 * fp4 quantization take g = 1/s): b = e4m3(g * (amax * (1/6))) saturating,
 * o = b != 0 ? 1 / (b * (1/g)) : 0, each element e2m1(x * o) (round to
 * nearest even on {0, 0.5, 1, 1.5, 2, 3, 4, 6}, saturating, sign kept) and
 * stored as e2m1 * b, exact in float16/bfloat16 (3 + 1 significant bits);
 * the row factor is s, and the weight's values are likewise e2m1 * its block
 * scale with weight_scale_2 as the column factor. The engines form the
 * reciprocals with rcp.approx.ftz; here they are IEEE divisions, which may
 * differ in the last bit of o. */
#ifndef TRTCONV_FAKE_QUANT_H
#define TRTCONV_FAKE_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "trtconv/core/dtype.h"

enum { TC_FQ_NONE = 0, TC_FQ_INT8 = 1, TC_FQ_FP8 = 2, TC_FQ_NVFP4 = 3 };
#define TC_FQ_NVFP4_BLOCK 16

float tc_fq_int8(float v);
float tc_fq_fp8(float v);
float tc_fq_elem(int kind, float v); /* the quantizer of kind (INT8, FP8) */
float tc_fq_e2m1(float v);           /* v on the E2M1 grid (NVFP4 above) */

/* out [T, K] = the quantized values of x [T, K] (dtype dt; out may be x);
 * row[t] gets the factor of row t's GEMM output (row_static when
 * !per_token). NVFP4: scale is the global scale s (K a multiple of 16),
 * per_token and clamp unused. With clamp, x is first clamped to [lo, hi] (FP8 rowwise's
 * clamp_val; the bounds rounded to the dtype, fminf(fmaxf(x, lo), hi) as
 * the kernels' __hmin(__hmax()) do: a NaN becomes lo). */
typedef struct tc_fq_clamp {
    bool on;
    float lo, hi;
} tc_fq_clamp;
void tc_fq_act_rows(void *out, const void *x, tc_dtype dt, int64_t T, int64_t K, int kind,
                    bool per_token, float scale, float row_static, tc_fq_clamp clamp,
                    float *row);
/* out[t, n] = acc[t, n] * row[t] * col[per_channel ? n : 0] (+ bias[n]),
 * float32 into out when out_f32, else rounded to dt. */
void tc_fq_dequant(void *out, bool out_f32, const float *acc, const float *row, const float *col,
                   bool per_channel, const float *bias, tc_dtype dt, int64_t T, int64_t N);
/* x[t, c] = round_dt(x[t, c] / s[c]) (s: values of the dtype, as float32). */
void tc_fq_div_cols(void *x, const float *s, tc_dtype dt, int64_t T, int64_t K);
/* x[i] = round_dt(Q(x[i] * to_q) * back): a value stored quantized and read
 * back (the KV cache). */
void tc_fq_qdq(void *x, tc_dtype dt, size_t n, int kind, float to_q, float back);

#endif
