/* eval_logits.h (kernels): trtconv eval's per-token logits comparison
 * (trtconv/eval/logits_rows.h) on the GPU, over two engines' device logits
 * (kernels/eval_logits.cu), so that the [tokens, vocabulary] logits of
 * both models never cross to the host: only the per-row results do.
 *
 * a and b are device memory in their own dtypes (F16, BF16, F32), row
 * strides lda and ldb elements, the rows' first V columns compared; the
 * other arrays are host memory of the sizes logits_rows.h gives (mx 2T,
 * sums 6T, arg 2T, next T). Each call first waits for all of the device's
 * work (the engines' streams), then runs on its own and returns when its
 * results are on the host. Same results as the CPU reference: the maxima,
 * the argmax columns and the logits at next exactly; the sums of exp to the
 * accuracy of CUDA's expf against the host's (about 1e-7 relative), added
 * in a different order in float64 (tests/cuda/test_eval_logits_cuda.c). */
#ifndef TRTCONV_KERNELS_EVAL_LOGITS_H
#define TRTCONV_KERNELS_EVAL_LOGITS_H

#include <stdint.h>
#include "trtconv/core/dtype.h"
#include "trtconv/core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

tc_status tc_logits_rows_max_cuda(const void *a, tc_dtype dta, int64_t lda, const void *b,
                                  tc_dtype dtb, int64_t ldb, int64_t T, int64_t V, double *mx);
tc_status tc_logits_rows_sums_cuda(const void *a, tc_dtype dta, int64_t lda, const void *b,
                                   tc_dtype dtb, int64_t ldb, int64_t T, int64_t V, int64_t col0,
                                   const int32_t *next, const double *mx, double *sums,
                                   long long *arg);

#ifdef __cplusplus
}
#endif

#endif
