/* nvfp4.h: NVFP4 weights as NVIDIA ModelOpt exports them for the Hugging
 * Face-style checkpoints of issue 22 (docs/hf-output.md), scalar reference
 * (src/quant/nvfp4.c; the CUDA kernel kernels/nvfp4.cu matches it bit for
 * bit). The formulas are those of ModelOpt's NVFP4QTensor
 * (modelopt/torch/quantization/qtensor/nvfp4_tensor.py, commit 5a4242fa):
 *
 *   per tensor  s2 = amax * (1.0f / 2688.0f), float32 (amax = max |w| of
 *               the tensor, or of the fused q/k/v or gate/up group:
 *               weights_scaling_factor_2, "weight_scale_2"; ModelOpt's
 *               `_amax.float() / (6.0 * 448.0)` is a CUDA tensor over a
 *               Python scalar, which torch computes as a multiplication
 *               by the float32 reciprocal, like fp8.h's scales);
 *   per block   of 16 consecutive values along the input dimension K:
 *               b = block amax / (6 * s2) in float32 (6 * s2 first), 1 where
 *               that is 0, stored as FP8 E4M3 (tc_f32_to_e4m3fn: torch's
 *               .to(torch.float8_e4m3fn)): "weight_scale" [N, K/16];
 *   values      v = float(w) / (float(b_e4m3) * s2) (the product first),
 *               rounded to the E2M1 grid {0, 0.5, 1, 1.5, 2, 3, 4, 6} with
 *               ties to the even code (ModelOpt's searchsorted over the
 *               midpoints plus its correction at 0.75, 1.75 and 3.5),
 *               saturating at 6; the sign bit (bit 3) set for v < 0, so -0
 *               is +0; stored two per byte, element 2i in the low nibble:
 *               "weight" uint8 [N, K/2].
 * A NaN compares false everywhere: it lands past every midpoint, code 7
 * (6.0), positive - what searchsorted does with a NaN that sorts last; no
 * finite weight of a valid model reaches that case.
 * Dequantization (ModelOpt's dequantize): value(code) * float(b) * s2. */
#ifndef TRTCONV_NVFP4_H
#define TRTCONV_NVFP4_H

#include <stdint.h>
#include "trtconv/core/dtype.h"
#include "trtconv/core/status.h"
#include "trtconv/kernels/nvfp4.h" /* TC_NVFP4_BLOCK */

uint8_t tc_e2m1_code(float v);       /* the 4-bit code of v (see above) */
float tc_e2m1_value(uint8_t code);   /* the value of the low 4 bits */
float tc_nvfp4_global_scale(float amax);  /* s2 of a weight amax */
/* The activation's global scale ("input_scale"): ModelOpt's
 * get_activation_scaling_factor, amax * (1.0f / 2688.0f) after export_amax
 * (an amax of 0 counts as 6: scale 6 / 2688). */
float tc_nvfp4_input_scale(float amax);

/* Rows [rows, cols] of dtype dt (F16, BF16, F32; cols a multiple of 16)
 * with the tensor's s2: packed [rows, cols / 2] bytes and the block scales
 * [rows, cols / 16] as E4M3 bytes. Both outputs are caller-owned. */
tc_status tc_nvfp4_quantize_rows(const void *w, tc_dtype dt, int64_t rows, int64_t cols, float s2,
                                 uint8_t *packed, uint8_t *scales);

#endif
