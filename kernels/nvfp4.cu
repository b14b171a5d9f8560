/* nvfp4.cu: NVFP4 weights on the GPU (launcher in trtconv/kernels/nvfp4.h):
 * one thread per block of 16 values, the steps of the CPU reference
 * tc_nvfp4_quantize_rows (src/quant/nvfp4.c, formulas in
 * trtconv/quant/nvfp4.h) with the same float32 operations, so the bytes are
 * the same (tests/cuda/test_nvfp4_cuda.c). */
#include "fwd_common.cuh"
#include "fp8_bits.cuh"

#include "trtconv/kernels/nvfp4.h"

/* ModelOpt's E2M1 code: midpoints below |v|, plus one at 0.75, 1.75, 3.5
 * (ties to the even code); a NaN passes no comparison: code 7. */
__device__ __forceinline__ uint8_t e2m1_code(float v)
{
    const uint8_t sign = v < 0.0f ? 8 : 0;
    const float a = fabsf(v);
    uint8_t ord = a <= 0.25f ? 0 : a <= 0.75f ? 1 : a <= 1.25f ? 2 : a <= 1.75f ? 3
                : a <= 2.5f ? 4 : a <= 3.5f ? 5 : a <= 5.0f ? 6 : 7;
    if (a == 0.75f || a == 1.75f || a == 3.5f)
        ord++;
    return (uint8_t)(sign | ord);
}

template <int DT>
__global__ void nvfp4_kernel(const void *w, int64_t rows, int64_t cols, float s2, float six_s2,
                             uint8_t *packed, uint8_t *scales)
{
    const int64_t nb = cols / TC_NVFP4_BLOCK, total = rows * nb;
    for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (int64_t)gridDim.x * blockDim.x) {
        const size_t i0 = (size_t)(idx / nb * cols + idx % nb * TC_NVFP4_BLOCK);
        float v[TC_NVFP4_BLOCK], amax = 0.0f;
#pragma unroll
        for (int k = 0; k < TC_NVFP4_BLOCK; k++) {
            v[k] = elem<DT>::ld(w, i0 + (size_t)k);
            amax = fmaxf(amax, fabsf(v[k]));
        }
        float bs = __fdiv_rn(amax, six_s2);
        if (bs == 0.0f)
            bs = 1.0f;
        const uint8_t e = to_e4m3fn(bs);
        scales[idx] = e;
        const float d = __fmul_rn(e4m3fn_to_f32(e), s2);
#pragma unroll
        for (int k = 0; k < TC_NVFP4_BLOCK; k += 2)
            packed[(i0 + (size_t)k) / 2] = (uint8_t)(e2m1_code(__fdiv_rn(v[k], d)) |
                                                     e2m1_code(__fdiv_rn(v[k + 1], d)) << 4);
    }
}

extern "C" tc_status tc_nvfp4_quantize_rows_cuda(const void *w, tc_dtype dt, int64_t rows,
                                                 int64_t cols, float s2, uint8_t *packed,
                                                 uint8_t *scales, void *stream)
{
    if (cols % TC_NVFP4_BLOCK != 0)
        return tc_fail(TC_E_INPUT, "NVFP4: a row of %lld values is not a whole number of "
                       "blocks of %d", (long long)cols, TC_NVFP4_BLOCK);
    const float six_s2 = 6.0f * s2;
    const size_t blocks = (size_t)(rows * (cols / TC_NVFP4_BLOCK));
    LAUNCH(grid_for, blocks, blocks, nvfp4_kernel, FWD_BLOCK, stream, w, rows, cols, s2, six_s2,
           packed, scales);
}
