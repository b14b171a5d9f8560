/* logits_rows.h: trtconv eval's per-token comparison of two models' logits
 * (eval.c), on one rank's vocabulary columns [col0, col0 + V) of rows
 * r0..r1-1 of a and b (row-major [rows, V], float32 on the host here,
 * the engines' device logits in kernels/eval_logits.cu):
 *
 * pass 1 (tc_logits_rows_max): mx[2r] = max_k a[r][k], mx[2r+1] = max_k
 *   b[r][k] (exact float values; the tensor-parallel ranks then take the
 *   maximum over their columns);
 * pass 2 (tc_logits_rows_sums), given the global maxima ma, mb (as float):
 *   sums[6r + 0] = sum_k exp(a - ma), [1] = sum_k exp(b - mb),
 *   [2] = sum_k exp(a - ma) (a - b), [3] = a[next[r]], [4] = b[next[r]]
 *   when next[r] is one of these columns (else 0), [5] = 0;
 *   arg[2r] (arg[2r+1]) = the first global column where a (b) equals ma
 *   (mb), LLONG_MAX when none here. exp of the float32 difference
 *   (expf), summed in float64.
 * From these (summed over the columns' ranks) eval forms each token's
 * log-likelihood of next[r] under both models, the KL divergence of b from
 * a and the top-1 agreement. Nothing is allocated; the caller owns every
 * array. */
#ifndef TRTCONV_EVAL_LOGITS_ROWS_H
#define TRTCONV_EVAL_LOGITS_ROWS_H

#include <stdint.h>

void tc_logits_rows_max(const float *a, const float *b, int64_t V, int64_t r0, int64_t r1,
                        double *mx);
void tc_logits_rows_sums(const float *a, const float *b, int64_t V, int64_t col0,
                         const int32_t *next, const double *mx, int64_t r0, int64_t r1,
                         double *sums, long long *arg);

#endif
