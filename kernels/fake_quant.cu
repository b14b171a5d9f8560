/* fake_quant.cu: the quantized engines trtconv eval emulates, on the GPU
 * (launchers in trtconv/kernels/fwd.h): the steps of fake_quant.h, whose
 * tc_fq_* functions (src/fwd/fake_quant.c) are the scalar reference these
 * kernels match bit for bit (same float32 operations in the same order,
 * built with --fmad=false; maxima are order-free). */
#include "fwd_common.cuh"
#include "fp8_bits.cuh"

/* The quantizer kinds of trtconv/fwd/fake_quant.h (TC_FQ_INT8 = 1,
 * TC_FQ_FP8 = 2; src/fwd/fwd_gpu.c asserts they agree). */
#define FQ_FP8 2
#define FQ_NVFP4 3

/* TensorRT-LLM's element quantizers: cvt.rni.sat.s8.f32 (NaN to 0), and
 * E4M3 with satfinite (NaN stays NaN). */
__device__ __forceinline__ float fq_elem(int kind, float v)
{
    if (kind == FQ_FP8) {
        if (!isnan(v))
            v = v > 448.0f ? 448.0f : v < -448.0f ? -448.0f : v;
        return e4m3fn_to_f32(to_e4m3fn(v));
    }
    if (isnan(v))
        return 0.0f;
    const float r = rintf(v);
    return r > 127.0f ? 127.0f : r < -128.0f ? -128.0f : r;
}

/* v on the E2M1 grid: round to nearest, ties to the even code, saturating. */
__device__ __forceinline__ float fq_e2m1(float v)
{
    const float grid[8] = { 0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f };
    const float a = fabsf(v);
    int k = 7;
    if (!isnan(a))
        for (int i = 0; i < 7; i++) {
            const float mid = __fmul_rn(0.5f, __fadd_rn(grid[i], grid[i + 1]));
            if (a < mid || (a == mid && i % 2 == 0)) {
                k = i;
                break;
            }
        }
    return v < 0.0f ? -grid[k] : grid[k];
}

/* NVFP4 activations: one thread per block of 16 inputs (fake_quant.h). */
template <int DT>
__global__ void nvfp4_act_kernel(void *out, const void *x, int64_t T, int64_t K, float s,
                                 float row_static, float *row)
{
    const int64_t nb = K / 16;
    const float g = __fdiv_rn(1.0f, s), inv_g = __fdiv_rn(1.0f, g);
    for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < T * nb;
         j += (int64_t)gridDim.x * blockDim.x) {
        const size_t i0 = (size_t)(j / nb) * (size_t)K + (size_t)(j % nb) * 16;
        float amax = 0.0f;
        for (int k = 0; k < 16; k++)
            amax = fmaxf(amax, fabsf(elem<DT>::ld(x, i0 + k)));
        const float b = fq_elem(FQ_FP8, __fmul_rn(g, __fmul_rn(amax, 1.0f / 6.0f)));
        const float o = b != 0.0f ? __fdiv_rn(1.0f, __fmul_rn(b, inv_g)) : 0.0f;
        for (int k = 0; k < 16; k++)
            elem<DT>::st(out, i0 + k, __fmul_rn(fq_e2m1(__fmul_rn(elem<DT>::ld(x, i0 + k), o)), b));
        if (j % nb == 0)
            row[j / nb] = row_static;
    }
}

/* One block per row (grid-stride): the row's maximum first when per token. */
template <int DT>
__global__ void act_quant_kernel(void *out, const void *x, int64_t T, int64_t K, int kind,
                                 int per_token, float scale, float row_static, float floor_dt,
                                 int clamp, float lo, float hi, float *row)
{
    __shared__ float red[32];
    for (int64_t t = blockIdx.x; t < T; t += gridDim.x) {
        const size_t r0 = (size_t)(t * K);
        float s = scale, rs = row_static;
        if (per_token) {
            float a = floor_dt;
            for (int64_t c = threadIdx.x; c < K; c += blockDim.x) {
                float v = elem<DT>::ld(x, r0 + (size_t)c);
                if (clamp)
                    v = fminf(fmaxf(v, lo), hi);
                a = fmaxf(a, fabsf(v));
            }
            a = block_max(a, red);
            if (kind == FQ_FP8) {
                s = fminf(__fdiv_rn(448.0f, a), 448.0f * 512.0f);
                rs = fmaxf(__fdiv_rn(a, 448.0f), 1.0f / (448.0f * 512.0f));
            } else {
                s = __fdiv_rn(127.0f, a);
                rs = __fdiv_rn(a, 127.0f);
            }
        }
        for (int64_t c = threadIdx.x; c < K; c += blockDim.x) {
            const size_t i = r0 + (size_t)c;
            float v = elem<DT>::ld(x, i);
            if (clamp)
                v = fminf(fmaxf(v, lo), hi);
            elem<DT>::st(out, i, fq_elem(kind, __fmul_rn(v, s)));
        }
        if (threadIdx.x == 0)
            row[t] = rs;
        __syncthreads(); /* red is reused by the next row */
    }
}

template <int DT>
__global__ void dequant_kernel(void *out, int out_f32, const float *acc, const float *row,
                               const float *col, int per_channel, int64_t T, int64_t N)
{
    const size_t n = (size_t)(T * N);
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        const int64_t t = (int64_t)(i / (size_t)N), c = (int64_t)(i % (size_t)N);
        const float v = __fmul_rn(__fmul_rn(acc[i], row[t]), col[per_channel ? c : 0]);
        if (out_f32)
            ((float *)out)[i] = v;
        else
            elem<DT>::st(out, i, v);
    }
}

template <int DT>
__global__ void div_cols_kernel(void *x, const float *s, int64_t T, int64_t K)
{
    const size_t n = (size_t)(T * K);
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        elem<DT>::st(x, i, __fdiv_rn(elem<DT>::ld(x, i), s[i % (size_t)K]));
}

template <int DT>
__global__ void qdq_kernel(void *x, size_t n, int kind, float to_q, float back)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        elem<DT>::st(x, i, __fmul_rn(fq_elem(kind, __fmul_rn(elem<DT>::ld(x, i), to_q)), back));
}

extern "C" tc_status tc_fq_act_quant_cuda(void *out, const void *x, tc_dtype dt, int64_t T,
                                          int64_t K, int kind, int per_token, float scale,
                                          float row_static, int clamp, float clamp_lo,
                                          float clamp_hi, float *row, void *stream)
{
    if (kind == FQ_NVFP4) {
        if (K % 16)
            return tc_fail(TC_E_INTERNAL, "NVFP4 activations: %lld inputs per row", (long long)K);
        const int64_t blocks = T * (K / 16);
        LAUNCH(grid_for, (size_t)blocks, blocks, nvfp4_act_kernel, FWD_BLOCK, stream, out, x, T, K,
               scale, row_static, row);
    }
    const float floor_dt = tc_round_to_dtype(dt, 1e-6f);
    const float lo = tc_round_to_dtype(dt, clamp_lo), hi = tc_round_to_dtype(dt, clamp_hi);
    LAUNCH(row_grid, T, T * K, act_quant_kernel, FWD_BLOCK, stream, out, x, T, K, kind, per_token,
           scale, row_static, floor_dt, clamp, lo, hi, row);
}

extern "C" tc_status tc_fq_dequant_cuda(void *out, int out_f32, const float *acc,
                                        const float *row, const float *col, int per_channel,
                                        tc_dtype dt, int64_t T, int64_t N, void *stream)
{
    LAUNCH(grid_for, (size_t)(T * N), T * N, dequant_kernel, FWD_BLOCK, stream, out, out_f32, acc,
           row, col, per_channel, T, N);
}

extern "C" tc_status tc_fq_div_cols_cuda(void *x, const float *s, tc_dtype dt, int64_t T,
                                         int64_t K, void *stream)
{
    LAUNCH(grid_for, (size_t)(T * K), T * K, div_cols_kernel, FWD_BLOCK, stream, x, s, T, K);
}

extern "C" tc_status tc_fq_qdq_cuda(void *x, tc_dtype dt, size_t n, int kind, float to_q,
                                    float back, void *stream)
{
    LAUNCH(grid_for, n, n, qdq_kernel, FWD_BLOCK, stream, x, n, kind, to_q, back);
}
