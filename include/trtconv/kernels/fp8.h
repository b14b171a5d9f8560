/* fp8.h (kernels): FP8 rowwise and per-tensor weight quantization on the
 * GPU (kernels/fp8.cu), the CUDA twins of tc_fp8_rowwise_quantize_rows and
 * tc_fp8_tensor_quantize_rows
 * (quant/fp8.h): the same float32 operations in the same order, the E4M3
 * rounding of tc_f32_to_e4m3fn, so the bytes are equal (tests/cuda/
 * test_fp8_cuda.c holds it to the reference).
 *
 * Asynchronous on `stream` (a cudaStream_t as void *, NULL = legacy default
 * stream); device buffers belong to the caller. Errors: TC_E_USAGE for a
 * bad dtype or NULL buffer, TC_E_INTERNAL with CUDA's message for a launch
 * failure. Declared always; defined only when TRTCONV_HAVE_CUDA. */
#ifndef TRTCONV_KERNELS_FP8_H
#define TRTCONV_KERNELS_FP8_H

#include <stdint.h>
#include "trtconv/core/dtype.h"
#include "trtconv/core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* d_w: device [rows, cols] of dt (F32, F16, BF16); d_q: rows*cols E4M3
 * bytes; d_scales: rows float32. */
tc_status tc_fp8_rowwise_quantize_rows_cuda(const void *d_w, tc_dtype dt, int64_t rows,
                                            int64_t cols, float clamp_lo, float clamp_hi,
                                            uint8_t *d_q, float *d_scales, void *stream);

/* Per tensor (quant/fp8.h tc_fp8_tensor_quantize_rows): d_q = E4M3 of
 * d_w / s, elementwise. */
tc_status tc_fp8_tensor_quantize_rows_cuda(const void *d_w, tc_dtype dt, int64_t rows,
                                           int64_t cols, float s, uint8_t *d_q, void *stream);

#ifdef __cplusplus
}
#endif

#endif
