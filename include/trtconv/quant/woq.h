/* woq.h: weight-only quantization (W8A16 / W4A16) in TensorRT-LLM's
 * CUTLASS mixed-GEMM layouts (trtllm-checkpoint.md §4.6-4.8, v0.12).
 *
 * Input orientation: the HF slice of a linear, W = [N, K] row-major (N output
 * channels, K input features), already cast to the config dtype `dt`
 * (F32/F16/BF16). TensorRT-LLM transposes it to B = [K, N] and quantizes per
 * column of B, i.e. per row n of W:
 *   amax[n] = max_k |float(W[n][k])| (float32, from 0.0)
 *   s[n]    = amax[n] * (1/128) (int8) or * (1/8) (int4), float32, exact
 *   scale_out[n] = s[n] rounded to dt (round to nearest even)
 *   q = s[n] != 0 ? round(float(W[n][k]) / s[n]) : 0   (C roundf: half away
 *       from zero, float32 division), clamped to [-128,127] / [-8,7].
 * The unprocessed quantized B is [K, N] int8, or int4 packed along N with
 * element n = 2j in bits 0-3 and n = 2j+1 in bits 4-7 of byte j.
 *
 * Processed layout (what is stored as `...weight`, dtype I8, shape
 * [K, N*bits/8]), by target SM:
 *   sm70-74 (TC_WOQ_LAYOUT_VOLTA):   transpose -> bias+register interleave
 *   sm75-89 (TC_WOQ_LAYOUT_AMPERE):  LDSM row permute -> transpose ->
 *                                    column interleave -> bias+register interleave
 *   sm90    (TC_WOQ_LAYOUT_HOPPER):  transpose only (signed, no bias; v0.9-v0.12)
 * Step definitions and preconditions: trtllm-checkpoint.md §4.8.
 *
 * Output rows: after the transpose, rows n of W become the "columns" of the
 * processed matrix; with column interleave factor I (1, 2 or 4), the group of
 * rows [g*I, (g+1)*I) of W maps to the contiguous output bytes
 * [g*I*K*bits/8, (g+1)*I*K*bits/8). So any range of rows whose start and
 * length are multiples of tc_woq_row_align() can be quantized on its own
 * (streaming, parallel workers, GPU chunks) and lands in one contiguous
 * output range starting at byte n0*K*bits/8. */
#ifndef TRTCONV_WOQ_H
#define TRTCONV_WOQ_H

#include <stdint.h>
#include "trtconv/core/dtype.h"
#include "trtconv/core/status.h"

typedef enum tc_woq_layout {
    TC_WOQ_LAYOUT_VOLTA = 70,
    TC_WOQ_LAYOUT_AMPERE = 80,   /* also Turing (75) and Ada (89) */
    TC_WOQ_LAYOUT_HOPPER = 90
} tc_woq_layout;

/* Map a target SM (70, 72, 75, 80, 86, 87, 89, 90) to its layout; other
 * values are TC_E_USAGE ("Unsupported Arch" upstream). */
tc_status tc_woq_layout_for_sm(int sm, tc_woq_layout *out);

/* Column interleave factor I: 1, or 2 (int8) / 4 (int4) for the Ampere
 * layout. Row ranges handed to the _rows functions start and end at
 * multiples of it. */
int tc_woq_row_align(tc_woq_layout layout, int bits);

/* Check every precondition of every preprocessing step for one weight
 * (§4.8, including K % 64 == 0 and N % 64 == 0 for interleaved layouts) and
 * that K*N fits. On violation: TC_E_INPUT, and a message naming `tensor`,
 * its [N, K] HF shape after the tp split, the precision, the SM and the rule. */
tc_status tc_woq_check_shape(const char *tensor, int64_t n, int64_t k, int bits, int sm);

/* The plain scalar reference, literally §4.7-4.8 step by step on whole
 * matrices (transpose, quantize per column, pack, permute, transpose,
 * interleave, bias). w: [n, k] of dt. out: n*k*bits/8 bytes. scales: n
 * elements of dt. Preconditions as tc_woq_check_shape. */
tc_status tc_woq_quantize_ref(const void *w, tc_dtype dt, int64_t n, int64_t k, int bits,
                              int sm, uint8_t *out, void *scales);

/* The fast CPU path: rows [n0, n0+rows) of W given in w_rows ([rows, k] of
 * dt). Writes the rows' output bytes (rows*k*bits/8, the range starting at
 * byte n0*k*bits/8 of the whole output) and their scales (rows elements of
 * dt). n0 and rows must be multiples of tc_woq_row_align(). Byte-identical
 * to the reference. Thread-safe (no shared state). */
tc_status tc_woq_quantize_rows(const void *w_rows, tc_dtype dt, int64_t rows, int64_t k,
                               int bits, int sm, int64_t n0, uint8_t *out_rows,
                               void *scales_rows);

/* The inverse of the stored layout (woq_dequant.c): stored is a weight as
 * tc_woq_quantize_ref writes it for [n, k] and sm; q gets its quantized
 * values, [n, k] row-major, int8 in [-128, 127] or int4 in [-8, 7]. The
 * engine's weight is then q * scale[n]. Shape rules as tc_woq_check_shape. */
tc_status tc_woq_unprocess(const uint8_t *stored, int64_t n, int64_t k, int bits, int sm,
                           int8_t *q);

/* Only the scales of rows [0, rows) of w_rows ([rows, k] of dt), as the
 * quantizing functions compute them: what upstream stores as
 * per_channel_scale next to the unquantized, transposed weight when the
 * weight-only plugin is disabled (§4.8, last paragraph). */
tc_status tc_woq_scales_rows(const void *w_rows, tc_dtype dt, int64_t rows, int64_t k, int bits,
                             void *scales_rows);

#endif
