/* nvfp4.h (kernels): the NVFP4 quantization of trtconv/quant/nvfp4.h on the
 * GPU (kernels/nvfp4.cu), bit for bit the CPU reference
 * tc_nvfp4_quantize_rows. w, packed and scales are device memory; the launch
 * is queued on stream (a cudaStream_t). */
#ifndef TRTCONV_KERNELS_NVFP4_H
#define TRTCONV_KERNELS_NVFP4_H

#include <stdint.h>
#include "trtconv/core/dtype.h"
#include "trtconv/core/status.h"

#define TC_NVFP4_BLOCK 16 /* values per block scale, along the input dimension */

#ifdef __cplusplus
extern "C" {
#endif

tc_status tc_nvfp4_quantize_rows_cuda(const void *w, tc_dtype dt, int64_t rows, int64_t cols,
                                      float s2, uint8_t *packed, uint8_t *scales, void *stream);

#ifdef __cplusplus
}
#endif

#endif
