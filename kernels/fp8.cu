/* fp8.cu: FP8 rowwise and per-tensor weight quantization
 * (include/trtconv/kernels/fp8.h). Per tensor: one thread per element,
 * __fdiv_rn(x, s) then the same E4M3 rounding.
 *
 * Rowwise: one block per row. Pass 1: each thread takes elements t, t + 256, ... of
 * the row, clamps them and keeps the largest |x|, with NaN winning as in
 * torch's max (fmaxf would drop it); a shared-memory tree combines the 256
 * partial maxima (max is exact and order-independent). Thread 0 then makes
 * the scale exactly as the reference: amax * (1.0f / 448.0f), floored at
 * (float)(1 / 229376), NaN kept. Pass 2: each thread quantizes its elements:
 * x / s with the correctly rounded division (nvcc's default -prec-div=true;
 * the file is built with --fmad=false and must not use -use_fast_math),
 * clamp to ±448, then the E4M3 rounding of tc_f32_to_e4m3fn (integer bit
 * steps, and one float addition for subnormals, rounded to nearest like the
 * CPU's). Inputs: F32 as is, BF16 by bits << 16, F16 by cvt.f32.f16 (exact). */
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <string.h>

/* The project headers have no extern "C" guards of their own. */
extern "C" {
#include "trtconv/core/dtype.h"
#include "trtconv/core/log.h"
#include "trtconv/core/status.h"
}
#include "trtconv/kernels/fp8.h"
#include "fp8_bits.cuh"

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float load_f32(const void *w, int dt, int64_t i)
{
    if (dt == TC_DT_F32)
        return static_cast<const float *>(w)[i];
    const uint16_t h = static_cast<const uint16_t *>(w)[i];
    if (dt == TC_DT_BF16)
        return __uint_as_float(static_cast<uint32_t>(h) << 16);
    return __half2float(__ushort_as_half(h));
}

__device__ __forceinline__ float clamp_nan(float x, float lo, float hi)
{
    return isnan(x) ? x : x < lo ? lo : x > hi ? hi : x;
}

__device__ __forceinline__ float max_nan(float a, float b)
{
    return (isnan(a) || a > b) ? a : b;  /* b may be NaN too: keeps it when a is not larger */
}

__global__ void fp8_rowwise_kernel(const void *w, int dt, int64_t cols, float lo, float hi,
                                   uint8_t *q, float *scales)
{
    __shared__ float part[kThreads];
    __shared__ float s_row;
    const int64_t row = blockIdx.x;
    const int64_t base = row * cols;
    float amax = 0.0f;
    for (int64_t k = threadIdx.x; k < cols; k += kThreads) {
        const float a = fabsf(clamp_nan(load_f32(w, dt, base + k), lo, hi));
        amax = isnan(amax) ? amax : max_nan(a, amax);
    }
    part[threadIdx.x] = amax;
    __syncthreads();
    for (int n = kThreads / 2; n > 0; n /= 2) {
        if (threadIdx.x < n) {
            const float a = part[threadIdx.x], b = part[threadIdx.x + n];
            part[threadIdx.x] = isnan(a) ? a : max_nan(b, a);
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        const float floor_s = (float)(1.0 / (448.0 * 512.0));
        const float s = __fmul_rn(part[0], 1.0f / 448.0f);
        s_row = isnan(s) || s >= floor_s ? s : floor_s;
        scales[row] = s_row;
    }
    __syncthreads();
    const float s = s_row;
    for (int64_t k = threadIdx.x; k < cols; k += kThreads) {
        const float x = clamp_nan(load_f32(w, dt, base + k), lo, hi);
        q[base + k] = to_e4m3fn(clamp_nan(__fdiv_rn(x, s), -448.0f, 448.0f));
    }
}

/* Per tensor: one thread per element, grid-stride. */
__global__ void fp8_tensor_kernel(const void *w, int dt, int64_t n, float s, uint8_t *q)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const float d = __fdiv_rn(load_f32(w, dt, i), s);
        q[i] = isnan(d) ? 0x7F : to_e4m3fn(d);
    }
}

}  // namespace

extern "C" tc_status tc_fp8_rowwise_quantize_rows_cuda(const void *d_w, tc_dtype dt,
                                                       int64_t rows, int64_t cols,
                                                       float clamp_lo, float clamp_hi,
                                                       uint8_t *d_q, float *d_scales,
                                                       void *stream)
{
    if (dt != TC_DT_F32 && dt != TC_DT_F16 && dt != TC_DT_BF16)
        return tc_fail(TC_E_USAGE, "FP8 rowwise: unsupported dtype %s", tc_dtype_name(dt));
    if (rows < 0 || cols < 0)
        return tc_fail(TC_E_USAGE, "FP8 rowwise: negative shape");
    if (rows == 0 || cols == 0)
        return TC_OK;
    if (!d_w || !d_q || !d_scales)
        return tc_fail(TC_E_USAGE, "FP8 rowwise: NULL buffer");
    if (rows > 0x7FFFFFFF)
        return tc_fail(TC_E_USAGE, "FP8 rowwise: %lld rows in one launch", (long long)rows);
    fp8_rowwise_kernel<<<static_cast<unsigned>(rows), kThreads, 0,
                         static_cast<cudaStream_t>(stream)>>>(d_w, (int)dt, cols, clamp_lo,
                                                              clamp_hi, d_q, d_scales);
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        return tc_fail(TC_E_INTERNAL, "FP8 rowwise kernel launch: %s (%s)", cudaGetErrorString(e),
                       cudaGetErrorName(e));
    return TC_OK;
}

extern "C" tc_status tc_fp8_tensor_quantize_rows_cuda(const void *d_w, tc_dtype dt, int64_t rows,
                                                      int64_t cols, float s, uint8_t *d_q,
                                                      void *stream)
{
    if (dt != TC_DT_F32 && dt != TC_DT_F16 && dt != TC_DT_BF16)
        return tc_fail(TC_E_USAGE, "FP8 per tensor: unsupported dtype %s", tc_dtype_name(dt));
    if (rows < 0 || cols < 0)
        return tc_fail(TC_E_USAGE, "FP8 per tensor: negative shape");
    const int64_t n = rows * cols;
    if (n == 0)
        return TC_OK;
    if (!d_w || !d_q)
        return tc_fail(TC_E_USAGE, "FP8 per tensor: NULL buffer");
    const int64_t want = (n + kThreads - 1) / kThreads;
    const unsigned blocks = static_cast<unsigned>(want < 65536 ? want : 65536);
    fp8_tensor_kernel<<<blocks, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(d_w, (int)dt, n,
                                                                                 s, d_q);
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        return tc_fail(TC_E_INTERNAL, "FP8 per-tensor kernel launch: %s (%s)",
                       cudaGetErrorString(e), cudaGetErrorName(e));
    return TC_OK;
}
