/* fwd.cu: elementwise, normalisation, rope and softmax kernels of the
 * forward pass (launchers in trtconv/fwd_kernels.h; GEMMs are cuBLAS calls
 * in src/fwd/fwd_gpu.c).
 *
 * The scalar CPU reference of every kernel is the matching function of
 * src/fwd/fwd_cpu.c: same rounding points (each value torch would hold in the
 * model dtype is rounded with the bit-exact conversions of fp_bits.cuh),
 * float32 everywhere else. Built with --fmad=false so that no product is
 * fused into an add the CPU path rounds separately. Reductions (rmsnorm's
 * sum of squares, softmax's max and sum) use a tree order, so they agree
 * with the CPU path to float32 rounding, not bit for bit; the tests hold
 * them to a tolerance, and to the bits where the order is the same
 * (tc_sum_slices_f32_cuda, elementwise kernels). */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime.h>

extern "C" {
#include "trtconv/core/dtype.h"
#include "trtconv/core/log.h"
#include "trtconv/core/status.h"
}
#include "trtconv/kernels/fwd.h"
#include "cuda_util.cuh"
#include "fp_bits.cuh"

#define FWD_BLOCK 256
#define FWD_BLOCKS_PER_SM 16

/* ---- element access by dtype (0 = F32, 1 = F16, 2 = BF16) ---- */

template <int DT> struct elem;
template <> struct elem<0> {
    static __device__ __forceinline__ float ld(const void *p, size_t i) { return ((const float *)p)[i]; }
    static __device__ __forceinline__ void st(void *p, size_t i, float v) { ((float *)p)[i] = v; }
    static __device__ __forceinline__ float rnd(float v) { return v; }
};
template <> struct elem<1> {
    static __device__ __forceinline__ float ld(const void *p, size_t i)
    {
        return __uint_as_float(tc_fp_f32_bits_from_f16(((const uint16_t *)p)[i]));
    }
    static __device__ __forceinline__ void st(void *p, size_t i, float v)
    {
        ((uint16_t *)p)[i] = tc_fp_f16_from_f32_bits(__float_as_uint(v));
    }
    static __device__ __forceinline__ float rnd(float v)
    {
        return __uint_as_float(tc_fp_f32_bits_from_f16(tc_fp_f16_from_f32_bits(__float_as_uint(v))));
    }
};
template <> struct elem<2> {
    static __device__ __forceinline__ float ld(const void *p, size_t i)
    {
        return __uint_as_float((uint32_t)((const uint16_t *)p)[i] << 16);
    }
    static __device__ __forceinline__ void st(void *p, size_t i, float v)
    {
        ((uint16_t *)p)[i] = tc_fp_bf16_from_f32_bits(__float_as_uint(v));
    }
    static __device__ __forceinline__ float rnd(float v)
    {
        return __uint_as_float((uint32_t)tc_fp_bf16_from_f32_bits(__float_as_uint(v)) << 16);
    }
};

static int dt_code(tc_dtype dt)
{
    switch (dt) {
    case TC_DT_F32: return 0;
    case TC_DT_F16: return 1;
    case TC_DT_BF16: return 2;
    default: return -1;
    }
}

#define DISPATCH(dt, KERNEL, grid, block, stream, ...)                                      \
    do {                                                                                    \
        switch (dt_code(dt)) {                                                              \
        case 0: KERNEL<0><<<grid, block, 0, (cudaStream_t)stream>>>(__VA_ARGS__); break;    \
        case 1: KERNEL<1><<<grid, block, 0, (cudaStream_t)stream>>>(__VA_ARGS__); break;    \
        case 2: KERNEL<2><<<grid, block, 0, (cudaStream_t)stream>>>(__VA_ARGS__); break;    \
        default:                                                                            \
            return tc_fail(TC_E_USAGE, "%s: unsupported dtype %s", __func__,                \
                           tc_dtype_name(dt));                                              \
        }                                                                                   \
    } while (0)

static tc_status launched(const char *what)
{
    tc_status st = TC_OK;
    TC_CUDA_TRY(cudaGetLastError());
done:
    if (st != TC_OK)
        tc_log(TC_LOG_ERROR, "launching %s", what);
    return st;
}

/* The body of a launcher: grid for `count` (grid_for: elements, row_grid:
 * rows), nothing to do when `zero` is 0, one kernel per dtype. */
#define LAUNCH(grid_fn, count, zero, KERNEL, block, stream, ...)                       \
    do {                                                                               \
        unsigned grid;                                                                 \
        tc_status st = grid_fn(count, &grid);                                          \
        if (st != TC_OK || (zero) == 0)                                                \
            return st;                                                                 \
        DISPATCH(dt, KERNEL, grid, block, stream, __VA_ARGS__);                        \
        return launched(#KERNEL);                                                      \
    } while (0)

static tc_status grid_for(size_t n, unsigned *grid)
{
    return tc_cuda_capped_grid((int64_t)((n + FWD_BLOCK - 1) / FWD_BLOCK), FWD_BLOCKS_PER_SM, grid);
}

/* Block-wide reductions over FWD_BLOCK threads. */
__device__ __forceinline__ float block_sum(float v, float *shared)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0)
        shared[warp] = v;
    __syncthreads();
    float r = 0.0f;
    if (threadIdx.x < 32) {
        r = threadIdx.x < (blockDim.x >> 5) ? shared[threadIdx.x] : 0.0f;
        for (int o = 16; o > 0; o >>= 1)
            r += __shfl_xor_sync(0xffffffffu, r, o);
        if (threadIdx.x == 0)
            shared[0] = r;
    }
    __syncthreads();
    r = shared[0];
    __syncthreads();
    return r;
}

__device__ __forceinline__ float block_max(float v, float *shared)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0)
        shared[warp] = v;
    __syncthreads();
    float r = -INFINITY;
    if (threadIdx.x < 32) {
        r = threadIdx.x < (blockDim.x >> 5) ? shared[threadIdx.x] : -INFINITY;
        for (int o = 16; o > 0; o >>= 1)
            r = fmaxf(r, __shfl_xor_sync(0xffffffffu, r, o));
        if (threadIdx.x == 0)
            shared[0] = r;
    }
    __syncthreads();
    r = shared[0];
    __syncthreads();
    return r;
}

/* ---- kernels ---- */

__global__ void sum_slices_kernel(float *out, const float *in, int nslices, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float s = in[i];
        for (int m = 1; m < nslices; m++)
            s += in[(size_t)m * n + i];
        out[i] = s;
    }
}

template <int DT>
__global__ void embed_kernel(float *out, const void *table, int64_t row0, int64_t rows,
                             int64_t col0, int64_t cols, int64_t H, const int32_t *ids, int64_t T)
{
    for (int64_t t = blockIdx.x; t < T; t += gridDim.x) {
        const int64_t r = (int64_t)ids[t] - row0;
        const bool have = r >= 0 && r < rows;
        for (int64_t c = threadIdx.x; c < H; c += blockDim.x) {
            float v = 0.0f;
            if (have && c >= col0 && c < col0 + cols)
                v = elem<DT>::ld(table, (size_t)(r * cols + (c - col0)));
            out[t * H + c] = v;
        }
    }
}

template <int DT> __global__ void round_kernel(void *out, const float *in, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        elem<DT>::st(out, i, in[i]);
}

template <int DT> __global__ void widen_kernel(float *out, const void *in, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = elem<DT>::ld(in, i);
}

template <int DT>
__global__ void rmsnorm_kernel(void *out, const void *in, const void *w, int64_t T, int64_t H,
                               float eps)
{
    __shared__ float shared[32];
    for (int64_t t = blockIdx.x; t < T; t += gridDim.x) {
        const size_t base = (size_t)(t * H);
        float ss = 0.0f;
        for (int64_t i = threadIdx.x; i < H; i += blockDim.x) {
            float x = elem<DT>::ld(in, base + i);
            ss += x * x;
        }
        ss = block_sum(ss, shared);
        const float r = 1.0f / sqrtf(ss / (float)H + eps);
        for (int64_t i = threadIdx.x; i < H; i += blockDim.x) {
            float x = elem<DT>::ld(in, base + i);
            elem<DT>::st(out, base + i, elem<DT>::ld(w, i) * elem<DT>::rnd(x * r));
        }
    }
}

template <int DT>
__global__ void bias_kernel(void *out, int out_f32, const float *in, const void *bias, int64_t M,
                            int64_t N)
{
    const size_t n = (size_t)(M * N);
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float v = in[i] + (bias ? elem<DT>::ld(bias, i % (size_t)N) : 0.0f);
        if (out_f32)
            ((float *)out)[i] = v;
        else
            elem<DT>::st(out, i, v);
    }
}

/* One block per token; threads over (head, e < d/2) for q and k, then v. */
template <int DT>
__global__ void rope_split_kernel(void *q, void *k, void *v, const void *qkv, int64_t nh,
                                  int64_t nkv, int64_t d, int64_t T, const int32_t *pos,
                                  const int32_t *seq_start, const int32_t *seq_len,
                                  const float *cosv, const float *sinv)
{
    const int64_t half = d / 2, g = nh / nkv, width = (nh + 2 * nkv) * d;
    for (int64_t t = blockIdx.x; t < T; t += gridDim.x) {
        const int64_t os = seq_start[t], ls = seq_len[t], tt = t - os, p = pos[t];
        const float *cs = cosv + p * half, *sn = sinv + p * half;
        const size_t row = (size_t)(t * width);
        for (int64_t x = threadIdx.x; x < (nh + nkv) * half; x += blockDim.x) {
            const int64_t h = x / half, e = x % half;
            const size_t src = row + (size_t)(h * d);
            size_t dst;
            void *out;
            if (h < nh) {
                out = q;
                dst = (size_t)(os * nh * d + (((h / g) * ls + tt) * g + h % g) * d);
            } else {
                out = k;
                dst = (size_t)(os * nkv * d + ((h - nh) * ls + tt) * d);
            }
            const float x1 = elem<DT>::ld(qkv, src + e), x2 = elem<DT>::ld(qkv, src + e + half);
            const float lo = elem<DT>::rnd(x1 * cs[e]) + elem<DT>::rnd(-x2 * sn[e]);
            const float hi = elem<DT>::rnd(x2 * cs[e]) + elem<DT>::rnd(x1 * sn[e]);
            elem<DT>::st(out, dst + e, lo);
            elem<DT>::st(out, dst + e + half, hi);
        }
        for (int64_t x = threadIdx.x; x < nkv * d; x += blockDim.x) {
            const int64_t h = x / d, e = x % d;
            const size_t src = row + (size_t)((nh + nkv + h) * d + e);
            elem<DT>::st(v, (size_t)(os * nkv * d + (h * ls + tt) * d + e), elem<DT>::ld(qkv, src));
        }
    }
}

/* One warp per row; rows of up to SOFTMAX_CACHE * 32 keys keep their
 * exponentials in registers (one expf per element), longer rows recompute. */
#define SOFTMAX_CACHE 32
#define SOFTMAX_WARPS 8

template <int DT>
__global__ void softmax_kernel(void *p, const float *s, int64_t rows, int64_t ls, int64_t g)
{
    const int lane = threadIdx.x & 31;
    const int64_t warps = (int64_t)gridDim.x * SOFTMAX_WARPS;
    for (int64_t r = (int64_t)blockIdx.x * SOFTMAX_WARPS + (threadIdx.x >> 5); r < rows; r += warps) {
        const int64_t valid = (r % (ls * g)) / g + 1;
        const float *sr = s + r * ls;
        float mx = -INFINITY;
        for (int64_t j = lane; j < valid; j += 32)
            mx = fmaxf(mx, sr[j]);
        for (int o = 16; o > 0; o >>= 1)
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
        float cache[SOFTMAX_CACHE];
        const bool cached = valid <= 32 * SOFTMAX_CACHE;
        float sum = 0.0f;
#pragma unroll
        for (int k = 0; k < SOFTMAX_CACHE; k++) {
            const int64_t j = lane + 32 * k;
            cache[k] = (cached && j < valid) ? expf(sr[j] - mx) : 0.0f;
            sum += cache[k];
        }
        if (!cached)
            for (int64_t j = lane; j < valid; j += 32)
                sum += expf(sr[j] - mx);
        for (int o = 16; o > 0; o >>= 1)
            sum += __shfl_xor_sync(0xffffffffu, sum, o);
        if (cached) {
#pragma unroll
            for (int k = 0; k < SOFTMAX_CACHE; k++) {
                const int64_t j = lane + 32 * k;
                if (j < ls)
                    elem<DT>::st(p, (size_t)(r * ls + j), j < valid ? cache[k] / sum : 0.0f);
            }
            for (int64_t j = lane + 32 * SOFTMAX_CACHE; j < ls; j += 32)
                elem<DT>::st(p, (size_t)(r * ls + j), 0.0f);
        } else {
            for (int64_t j = lane; j < ls; j += 32)
                elem<DT>::st(p, (size_t)(r * ls + j), j < valid ? expf(sr[j] - mx) / sum : 0.0f);
        }
    }
}

template <int DT>
__global__ void gather_heads_kernel(void *o, const void *og, int64_t nh, int64_t nkv, int64_t d,
                                    int64_t T, const int32_t *seq_start, const int32_t *seq_len)
{
    const int64_t g = nh / nkv;
    for (int64_t t = blockIdx.x; t < T; t += gridDim.x) {
        const int64_t os = seq_start[t], ls = seq_len[t], tt = t - os;
        for (int64_t x = threadIdx.x; x < nh * d; x += blockDim.x) {
            const int64_t h = x / d, e = x % d;
            const size_t src = (size_t)(os * nh * d + (((h / g) * ls + tt) * g + h % g) * d + e);
            elem<DT>::st(o, (size_t)(t * nh * d + x), elem<DT>::ld(og, src));
        }
    }
}

template <int DT>
__global__ void residual_kernel(void *h, const float *p, const void *bias, int64_t T, int64_t H)
{
    const size_t n = (size_t)(T * H);
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float a = elem<DT>::rnd(p[i] + (bias ? elem<DT>::ld(bias, i % (size_t)H) : 0.0f));
        elem<DT>::st(h, i, elem<DT>::ld(h, i) + a);
    }
}

template <int DT> __global__ void silu_mul_kernel(void *out, const void *g, const void *u, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        const float x = elem<DT>::ld(g, i);
        const float s = elem<DT>::rnd(x / (1.0f + expf(-x)));
        elem<DT>::st(out, i, s * elem<DT>::ld(u, i));
    }
}

template <int DT>
__global__ void expert_add_kernel(float *acc, const void *y, const float *w, int64_t T, int64_t H)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (size_t)(T * H);
         i += (size_t)gridDim.x * blockDim.x) {
        const float wt = w[i / (size_t)H];
        if (wt != 0.0f)
            acc[i] += elem<DT>::rnd(elem<DT>::ld(y, i) * wt);
    }
}

/* ---- launchers ---- */

extern "C" tc_status tc_sum_slices_f32_cuda(float *out, const float *in, int nslices, size_t n,
                                            void *stream)
{
    unsigned grid;
    tc_status st = grid_for(n, &grid);
    if (st != TC_OK || n == 0)
        return st;
    sum_slices_kernel<<<grid, FWD_BLOCK, 0, (cudaStream_t)stream>>>(out, in, nslices, n);
    return launched("sum_slices_kernel");
}

static tc_status row_grid(int64_t rows, unsigned *grid)
{
    return tc_cuda_capped_grid(rows, FWD_BLOCKS_PER_SM, grid);
}

extern "C" tc_status tc_fwd_embed_cuda(float *out32, const void *table, tc_dtype dt, int64_t row0,
                                       int64_t rows, int64_t col0, int64_t cols, int64_t H,
                                       const int32_t *ids, int64_t T, void *stream)
{
    LAUNCH(row_grid, T, T, embed_kernel, FWD_BLOCK, stream, out32, table, row0, rows, col0, cols, H, ids, T);
}

extern "C" tc_status tc_fwd_round_f32_cuda(void *out, tc_dtype dt, const float *in32, size_t n,
                                           void *stream)
{
    LAUNCH(grid_for, n, n, round_kernel, FWD_BLOCK, stream, out, in32, n);
}

extern "C" tc_status tc_fwd_to_f32_cuda(float *out32, const void *in, tc_dtype dt, size_t n,
                                        void *stream)
{
    LAUNCH(grid_for, n, n, widen_kernel, FWD_BLOCK, stream, out32, in, n);
}

extern "C" tc_status tc_fwd_rmsnorm_cuda(void *out, const void *in, const void *w, tc_dtype dt,
                                         int64_t T, int64_t H, float eps, void *stream)
{
    LAUNCH(row_grid, T, T, rmsnorm_kernel, FWD_BLOCK, stream, out, in, w, T, H, eps);
}

extern "C" tc_status tc_fwd_bias_cuda(void *out, int out_f32, const float *in32, const void *bias,
                                      tc_dtype dt, int64_t M, int64_t N, void *stream)
{
    LAUNCH(grid_for, (size_t)(M * N), M * N, bias_kernel, FWD_BLOCK, stream, out, out_f32, in32, bias, M, N);
}

extern "C" tc_status tc_fwd_rope_split_cuda(void *q, void *k, void *v, const void *qkv,
                                            tc_dtype dt, int64_t nh, int64_t nkv, int64_t d,
                                            int64_t T, const int32_t *pos,
                                            const int32_t *seq_start, const int32_t *seq_len,
                                            const float *cosv, const float *sinv, void *stream)
{
    LAUNCH(row_grid, T, T, rope_split_kernel, FWD_BLOCK, stream, q, k, v, qkv, nh, nkv, d, T, pos, seq_start, seq_len, cosv, sinv);
}

extern "C" tc_status tc_fwd_softmax_cuda(void *p, const float *s, tc_dtype dt, int64_t rows,
                                         int64_t ls, int64_t g, void *stream)
{
    LAUNCH(row_grid, (rows + SOFTMAX_WARPS - 1) / SOFTMAX_WARPS, rows, softmax_kernel, 32 * SOFTMAX_WARPS, stream, p, s, rows, ls, g);
}

extern "C" tc_status tc_fwd_gather_heads_cuda(void *o, const void *og, tc_dtype dt, int64_t nh,
                                              int64_t nkv, int64_t d, int64_t T,
                                              const int32_t *seq_start, const int32_t *seq_len,
                                              void *stream)
{
    LAUNCH(row_grid, T, T, gather_heads_kernel, FWD_BLOCK, stream, o, og, nh, nkv, d, T, seq_start, seq_len);
}

extern "C" tc_status tc_fwd_residual_add_cuda(void *h, const float *p32, const void *bias,
                                              tc_dtype dt, int64_t T, int64_t H, void *stream)
{
    LAUNCH(grid_for, (size_t)(T * H), T * H, residual_kernel, FWD_BLOCK, stream, h, p32, bias, T, H);
}

extern "C" tc_status tc_fwd_silu_mul_cuda(void *out, const void *g, const void *u, tc_dtype dt,
                                          size_t n, void *stream)
{
    LAUNCH(grid_for, n, n, silu_mul_kernel, FWD_BLOCK, stream, out, g, u, n);
}

extern "C" tc_status tc_fwd_expert_add_cuda(float *acc32, const void *y, const float *w32,
                                            tc_dtype dt, int64_t T, int64_t H, void *stream)
{
    LAUNCH(grid_for, (size_t)(T * H), T * H, expert_add_kernel, FWD_BLOCK, stream, acc32, y, w32,
           T, H);
}

/* ---- calibration maxima ---- */

/* A thread owns one column of a chunk of ABSMAX_ROWS rows (consecutive
 * threads read consecutive columns) and folds its maximum into acc with an
 * integer atomicMax on the bits of |v|: for non-negative floats integer
 * order is float order, and NaN bits exceed every number. */
#define ABSMAX_ROWS 64

template <int DT>
__global__ void absmax_cols_kernel(float *acc, const void *x, int x_f32, const void *bias,
                                   int64_t rows, int64_t ld, int64_t c0, int64_t cols)
{
    const int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols)
        return;
    const int64_t r0 = (int64_t)blockIdx.y * ABSMAX_ROWS;
    const int64_t r1 = r0 + ABSMAX_ROWS < rows ? r0 + ABSMAX_ROWS : rows;
    const float bc = bias ? elem<DT>::ld(bias, (size_t)c) : 0.0f;
    unsigned m = 0;
    for (int64_t r = r0; r < r1; r++) {
        const size_t i = (size_t)(r * ld + c0 + c);
        float v = x_f32 ? ((const float *)x)[i] : elem<DT>::ld(x, i);
        if (bias)
            v += bc;
        const unsigned a = __float_as_uint(v) & 0x7fffffffu;
        m = a > m ? a : m;
    }
    atomicMax((unsigned *)acc + c, m);
}

template <typename E>
__device__ __forceinline__ void absmax_row(float *out, const void *w, int64_t r, int64_t cols, E)
{
    unsigned m = 0;
    for (int64_t c = threadIdx.x % 32; c < cols; c += 32) {
        const unsigned a = __float_as_uint(E::ld(w, (size_t)(r * cols + c))) & 0x7fffffffu;
        m = a > m ? a : m;
    }
    for (int o = 16; o > 0; o /= 2) {
        const unsigned other = __shfl_down_sync(0xffffffffu, m, o);
        m = other > m ? other : m;
    }
    if (threadIdx.x % 32 == 0)
        out[r] = __uint_as_float(m);
}

/* One warp per row (grid-stride over rows: the grid is capped). */
template <int DT>
__global__ void absmax_rows_kernel(float *out, const void *w, int64_t rows, int64_t cols)
{
    const int64_t warps = (int64_t)gridDim.x * (blockDim.x / 32);
    for (int64_t r = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; r < rows;
         r += warps)
        absmax_row(out, w, r, cols, elem<DT>());
}

extern "C" tc_status tc_fwd_absmax_cols_cuda(float *acc, const void *x, int x_f32,
                                             const void *bias, tc_dtype dt, int64_t rows,
                                             int64_t ld, int64_t c0, int64_t cols, void *stream)
{
    if (rows <= 0 || cols <= 0)
        return TC_OK;
    const int64_t gy = (rows + ABSMAX_ROWS - 1) / ABSMAX_ROWS;
    if (gy > 65535)
        return tc_fail(TC_E_INTERNAL, "%s: %lld rows is more than supported", __func__,
                       (long long)rows);
    dim3 grid((unsigned)((cols + FWD_BLOCK - 1) / FWD_BLOCK), (unsigned)gy);
    DISPATCH(dt, absmax_cols_kernel, grid, FWD_BLOCK, stream, acc, x, x_f32, bias, rows, ld, c0,
             cols);
    return launched("absmax_cols_kernel");
}

extern "C" tc_status tc_fwd_absmax_rows_cuda(float *out, const void *w, tc_dtype dt, int64_t rows,
                                             int64_t cols, void *stream)
{
    const int per_block = FWD_BLOCK / 32;
    LAUNCH(row_grid, (rows + per_block - 1) / per_block, rows, absmax_rows_kernel, FWD_BLOCK,
           stream, out, w, rows, cols);
}

/* ---- SmoothQuant smoothing and int8 weights ---- */

template <int DT>
__global__ void smooth_cols_kernel(void *w, int64_t rows, int64_t cols, const double *s, int divide)
{
    const size_t n = (size_t)rows * (size_t)cols;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        const double v = (double)elem<DT>::ld(w, i), sc = s[i % (size_t)cols];
        /* float64 result cast to float, then stored in dt (torch's path). */
        elem<DT>::st(w, i, __double2float_rn(divide ? __ddiv_rn(v, sc) : __dmul_rn(v, sc)));
    }
}

/* Round a float to the quantization dtype (fwd_backend.h quantize_i8):
 * float16, bfloat16, or float32 (unchanged); the same bit functions as the
 * CPU's tc_round_to_dtype. */
__device__ __forceinline__ float round_qdt(float v, int qdt)
{
    if (qdt == TC_DT_F16)
        return elem<1>::rnd(v);
    if (qdt == TC_DT_BF16)
        return elem<2>::rnd(v);
    return v;
}

template <int DT>
__global__ void quantize_i8_kernel(int8_t *q, const void *w, int qdt, int64_t rows, int64_t cols,
                                   const float *scale, int mode)
{
    const size_t n = (size_t)rows * (size_t)cols;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        const float x = round_qdt(elem<DT>::ld(w, i), qdt), sc = scale[i / (size_t)cols];
        float v;
        if (mode == 0)
            v = round_qdt(__fmul_rn(x, round_qdt(sc, qdt)), qdt);
        else if (mode == 1)
            v = round_qdt(__fdiv_rn(x, sc), qdt);
        else
            v = __fmul_rn(x, sc);
        v = rintf(v);
        v = v > 127.0f ? 127.0f : (v < -127.0f ? -127.0f : v);
        q[i] = (int8_t)v;
    }
}

extern "C" tc_status tc_sq_smooth_cols_cuda(void *w, tc_dtype dt, int64_t rows, int64_t cols,
                                            const double *s, int divide, void *stream)
{
    const size_t n = (size_t)rows * (size_t)cols;
    LAUNCH(grid_for, n, n, smooth_cols_kernel, FWD_BLOCK, stream, w, rows, cols, s, divide);
}

extern "C" tc_status tc_sq_quantize_i8_cuda(int8_t *q, const void *w, tc_dtype dt, tc_dtype qdt,
                                            int64_t rows, int64_t cols, const float *scale,
                                            int mode, void *stream)
{
    const size_t n = (size_t)rows * (size_t)cols;
    LAUNCH(grid_for, n, n, quantize_i8_kernel, FWD_BLOCK, stream, q, w, (int)qdt, rows, cols,
           scale, mode);
}
