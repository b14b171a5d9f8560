/* woq_cuda.h: weight-only quantization (W8A16 / W4A16) on the GPU
 * (kernels/woq.cu), the CUDA twin of tc_woq_quantize_rows (trtconv/woq.h).
 *
 * Math, layouts and the row-range contract are those of woq.h
 * (trtllm-checkpoint.md §4.6-4.8, TensorRT-LLM v0.12): per row n of the HF
 * slice W = [N, K],
 *   amax = max_k |float(W[n][k])| (float32, from 0.0; max ignores NaN),
 *   s    = amax * (1/128) (int8) or * (1/8) (int4), float32,
 *   q    = s != 0 ? roundf(float(W[n][k]) / s) : 0, IEEE float32 division,
 *          roundf = half away from zero, clamped to [-128, 127] / [-8, 7]
 *          with the reference's rules for NaN (int8 127, int4 -8),
 *   scale_out[n] = s rounded to dt (F16/BF16: nearest even, the bit
 *          formulas of tc_f32_to_f16 / tc_f32_to_bf16; F32: s itself),
 * then the processed byte layout of the target SM:
 *   sm70-72  transpose, +128 / +8 bias, register interleave;
 *   sm75-89  LDSM row permute, transpose, column interleave (I = 2 int8,
 *            4 int4), bias, register interleave;
 *   sm90     transpose only (signed two's complement; int4: even k in the
 *            low nibble of each byte).
 * Rows [n0, n0 + rows) of W produce the rows*k*bits/8 contiguous output
 * bytes that start at byte n0*k*bits/8 of the whole weight, and rows scales.
 * Results are byte-identical to tc_woq_quantize_rows and tc_woq_quantize_ref
 * (src/quant/woq.c) for every input, including zero rows, subnormals and
 * half-way cases (the kernels are compiled with --fmad=false, IEEE division
 * and no flush-to-zero; tests/cuda/test_woq_cuda.c checks the bytes).
 *
 * Availability: compiled into tccore only when TRTCONV_HAVE_CUDA is 1
 * (trtconv/build_config.h); guard calls with `#if TRTCONV_HAVE_CUDA`.
 *
 * Ownership and streams (as trtconv/kernels.h): the caller owns every device
 * buffer (allocates it, keeps it alive until `stream` has run the work, frees
 * it); the launcher allocates nothing, never synchronises and returns as soon
 * as the work is queued on `stream` (a cudaStream_t; NULL = legacy default
 * stream). Inputs must be on the device when the stream reaches the kernel:
 * after a pageable cudaMemcpy upload, synchronise before launching on a
 * non-blocking stream. Errors raised while the kernel runs surface at the
 * next synchronising call on that stream.
 *
 * Errors (logged through tc_fail): arguments the CPU path would reject give
 * the same status (tc_woq_layout_for_sm: TC_E_USAGE for an unsupported SM;
 * tc_woq_check_shape: TC_E_INPUT for a K that breaks a preprocessing rule);
 * rows < 0: TC_E_INPUT; a bad dtype: TC_E_USAGE; n0 / rows not multiples of
 * tc_woq_row_align: TC_E_INTERNAL (a caller bug, as in tc_woq_quantize_rows);
 * a NULL buffer with rows > 0: TC_E_USAGE; CUDA API or launch failures give
 * TC_E_INTERNAL with CUDA's error name and message.
 */
#ifndef TRTCONV_WOQ_CUDA_H
#define TRTCONV_WOQ_CUDA_H

#include <stdint.h>

#include "trtconv/core/dtype.h"
#include "trtconv/core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Quantize rows [n0, n0+rows) of W = [N, k] on `stream`, with exactly the
 * results of tc_woq_quantize_rows (woq.h).
 *   w_rows      device, [rows, k] of dt (F32, F16 or BF16), row-major; any
 *               alignment to the element size (16-byte aligned takes the
 *               vectorised loads);
 *   bits        8 or 4; sm: target SM (70, 72, 75, 80, 86, 87, 89, 90);
 *   n0          index in W of the first row; n0 and rows must be multiples
 *               of tc_woq_row_align(layout of sm, bits); only the
 *               K-dependent rules of tc_woq_check_shape are checked here
 *               (the N-dependent ones belong to the whole tensor: call
 *               tc_woq_check_shape once for it);
 *   out_rows    device, rows*k*bits/8 bytes: the processed weight bytes
 *               [n0*k*bits/8, (n0+rows)*k*bits/8) of the whole tensor (pass
 *               the whole output + n0*k*bits/8); nothing outside is written;
 *   scales_rows device, rows elements of dt (per-channel scales n0..).
 * rows == 0 queues nothing. The buffers belong to the caller, must not
 * overlap, and must stay valid until the stream has run the kernel. */
tc_status tc_woq_quantize_rows_cuda(const void *w_rows, tc_dtype dt, int64_t rows, int64_t k,
                                    int bits, int sm, int64_t n0, uint8_t *out_rows,
                                    void *scales_rows, void *stream);

/* For tests: compare, on the device, the reciprocal + FMA quotient the
 * kernel uses for F16 weights with the IEEE quotient x / s over every F16 x
 * and every scale s the kernel can form for `bits` (8 or 4). Returns the
 * number of mismatching pairs (0 expected), or -1 on a CUDA error. */
long long tc_woq_rcp_check_cuda(int bits);
/* The same for BF16 weights (kernels/woq.cu, woq_quant_rcp): quantized
 * integers of the reciprocal form that differ from the division's, over
 * every BF16 amax whose scale is in the reciprocal range and every BF16 x
 * with |x| <= amax; *pairs_checked (may be NULL) gets the pair count. -1 on
 * a CUDA error. */
long long tc_woq_rcp_check_bf16_cuda(int bits, long long *pairs_checked);

#ifdef __cplusplus
}
#endif


#endif
