/* fwd_common.cuh: what the forward-pass and calibration kernels share
 * (kernels/fwd.cu, kernels/calib_max.cu): element access by dtype with the
 * exact conversions of fp_bits.cuh, 16-byte vectors, launch helpers and
 * block reductions. */
#ifndef TRTCONV_FWD_COMMON_CUH
#define TRTCONV_FWD_COMMON_CUH

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
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
/* float16 through the hardware conversions (IEEE round to nearest even,
 * subnormals kept: the bits of fp_bits.cuh for every number); NaN takes
 * fp_bits.cuh's path so that its payload is the CPU's too. The software
 * conversions alone made the memory-bound kernels compute-bound. */
__device__ __forceinline__ float f16_bits_to_f32(uint16_t h)
{
    if ((h & 0x7FFFu) > 0x7C00u)
        return __uint_as_float(tc_fp_f32_bits_from_f16(h));
    return __half2float(__ushort_as_half(h));
}
__device__ __forceinline__ uint16_t f32_to_f16_bits(float v)
{
    if (isnan(v))
        return tc_fp_f16_from_f32_bits(__float_as_uint(v));
    return __half_as_ushort(__float2half_rn(v));
}
/* Pairs of 2-byte values in a 32-bit word (vec below): pack2 rounds two
 * floats in one hardware conversion (cvt.rn.f16x2.f32 / bf16x2 on sm_80+;
 * round to nearest even like the scalar path), nan2 is nonzero when either
 * half of a word is a NaN: |h| above the infinity's bits exactly when
 * adding (mantissa mask) carries into bit 15, which no half can carry past.
 * A NaN takes the scalar path again, so its payload is the CPU's. */
template <> struct elem<1> {
    static __device__ __forceinline__ uint32_t pack2(float a, float b)
    {
        const __half2 h = __floats2half2_rn(a, b);
        return *(const uint32_t *)&h;
    }
    static __device__ __forceinline__ float2 unpack2(uint32_t w)
    {
        return __half22float2(*(const __half2 *)&w);
    }
    static __device__ __forceinline__ uint32_t nan2(uint32_t w)
    {
        return ((w & 0x7FFF7FFFu) + 0x03FF03FFu) & 0x80008000u;
    }
    static __device__ __forceinline__ float ld(const void *p, size_t i)
    {
        return f16_bits_to_f32(((const uint16_t *)p)[i]);
    }
    static __device__ __forceinline__ void st(void *p, size_t i, float v)
    {
        ((uint16_t *)p)[i] = f32_to_f16_bits(v);
    }
    static __device__ __forceinline__ float rnd(float v)
    {
        return f16_bits_to_f32(f32_to_f16_bits(v));
    }
};
template <> struct elem<2> {
    static __device__ __forceinline__ uint32_t pack2(float a, float b)
    {
        const __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
        return *(const uint32_t *)&h;
    }
    static __device__ __forceinline__ float2 unpack2(uint32_t w) /* exact, NaN too */
    {
        return make_float2(__uint_as_float(w << 16), __uint_as_float(w & 0xFFFF0000u));
    }
    static __device__ __forceinline__ uint32_t nan2(uint32_t w)
    {
        return ((w & 0x7FFF7FFFu) + 0x007F007Fu) & 0x80008000u;
    }
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

static inline int dt_code(tc_dtype dt)
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

static inline tc_status launched(const char *what)
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

static inline tc_status grid_for(size_t n, unsigned *grid)
{
    return tc_cuda_capped_grid((int64_t)((n + FWD_BLOCK - 1) / FWD_BLOCK), FWD_BLOCKS_PER_SM, grid);
}

/* Block-wide reductions (any block size up to 1024 threads): each warp
 * by shuffles in a fixed tree order, then the warps' results by the first
 * warp; every thread gets the result. `shared` holds one value per warp;
 * the trailing barrier lets the caller reuse it at once. */
template <typename V, typename Op>
__device__ __forceinline__ V block_reduce(V v, V identity, V *shared, Op op)
{
    for (int o = 16; o > 0; o >>= 1)
        v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0)
        shared[warp] = v;
    __syncthreads();
    V r = identity;
    if (threadIdx.x < 32) {
        r = threadIdx.x < (blockDim.x >> 5) ? shared[threadIdx.x] : identity;
        for (int o = 16; o > 0; o >>= 1)
            r = op(r, __shfl_xor_sync(0xffffffffu, r, o));
        if (threadIdx.x == 0)
            shared[0] = r;
    }
    __syncthreads();
    r = shared[0];
    __syncthreads();
    return r;
}

struct reduce_add {
    template <typename V> __device__ __forceinline__ V operator()(V a, V b) const { return a + b; }
};
struct reduce_fmax {
    __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct reduce_min {
    template <typename V> __device__ __forceinline__ V operator()(V a, V b) const
    {
        return b < a ? b : a;
    }
};

__device__ __forceinline__ float block_sum(float v, float *shared)
{
    return block_reduce(v, 0.0f, shared, reduce_add());
}

__device__ __forceinline__ float block_max(float v, float *shared)
{
    return block_reduce(v, -INFINITY, shared, reduce_fmax());
}

/* |v| as integer bits: for non-negative floats integer order is float
 * order, and NaN bits exceed every number (the calibration maxima compare
 * these, so that a NaN wins and reaches the caller's check). */
__device__ __forceinline__ unsigned abs_bits(float v)
{
    return __float_as_uint(v) & 0x7fffffffu;
}

static inline tc_status row_grid(int64_t rows, unsigned *grid)
{
    return tc_cuda_capped_grid(rows, FWD_BLOCKS_PER_SM, grid);
}

/* ---- 16-byte vectors: VEC elements of a 2-byte dtype (1 = F16, 2 = BF16) ----
 * The vector kernels take the same per-element steps as the scalar ones, so
 * their bytes are the same; launchers use them when every pointer is 16-byte
 * aligned and the lengths are multiples of VEC. Conversions go two values
 * per instruction with one NaN test per vector (elem pack2 / nan2): the
 * elementwise kernels were bound by instruction issue, not memory (Nsight
 * Compute on an H100, session 19: rmsnorm at 77% of the SMs' issue rate
 * and 26% of the memory's). */
#define VEC 8
/* Built with -DTC_VEC_PAIRED_CONVERSIONS=0: the per-element conversions of
 * elem instead (the same bytes; the form before session 19), to time one
 * against the other. */
#ifndef TC_VEC_PAIRED_CONVERSIONS
#define TC_VEC_PAIRED_CONVERSIONS 1
#endif

template <int DT> struct vec {
    float f[VEC];
    __device__ __forceinline__ void load(const void *p, size_t i) /* i: a multiple of VEC */
    {
        unpack(raw16(p, i));
    }
    /* The 16 bytes at element i, unconverted: loads issued ahead of use. */
    static __device__ __forceinline__ uint4 raw16(const void *p, size_t i)
    {
        return *(const uint4 *)((const uint16_t *)p + i);
    }
    __device__ __forceinline__ void unpack(const uint4 &u)
    {
#if TC_VEC_PAIRED_CONVERSIONS
        const uint32_t w[4] = { u.x, u.y, u.z, u.w };
        /* bfloat16 widens exactly, NaN included; float16's NaN keeps its
         * payload on the scalar path. */
        if (DT != 1 || !(elem<DT>::nan2(w[0]) | elem<DT>::nan2(w[1]) | elem<DT>::nan2(w[2]) |
                         elem<DT>::nan2(w[3]))) {
#pragma unroll
            for (int j = 0; j < VEC / 2; j++) {
                const float2 v = elem<DT>::unpack2(w[j]);
                f[2 * j] = v.x, f[2 * j + 1] = v.y;
            }
            return;
        }
#endif
        const uint16_t *h = (const uint16_t *)&u;
#pragma unroll
        for (int k = 0; k < VEC; k++)
            f[k] = elem<DT>::ld(h, k);
    }
    /* The 16 bytes of f rounded to DT. */
    __device__ __forceinline__ uint4 pack() const
    {
#if TC_VEC_PAIRED_CONVERSIONS
        uint32_t w[4];
#pragma unroll
        for (int j = 0; j < VEC / 2; j++)
            w[j] = elem<DT>::pack2(f[2 * j], f[2 * j + 1]);
        if (!(elem<DT>::nan2(w[0]) | elem<DT>::nan2(w[1]) | elem<DT>::nan2(w[2]) |
              elem<DT>::nan2(w[3])))
            return make_uint4(w[0], w[1], w[2], w[3]);
#endif
        uint4 u;
        uint16_t *h = (uint16_t *)&u;
#pragma unroll
        for (int k = 0; k < VEC; k++)
            elem<DT>::st(h, k, f[k]);
        return u;
    }
    __device__ __forceinline__ void store(void *p, size_t i) const
    {
        *(uint4 *)((uint16_t *)p + i) = pack();
    }
    /* f[k] = elem<DT>::rnd(f[k]) for every k: the value as stored and read
     * back. */
    __device__ __forceinline__ void round()
    {
        unpack(pack());
    }
};

/* Where rotary head h (query heads first, then keys; g query heads per KV
 * head) goes: q is [group, token, head in group, d] per sequence, k is
 * [kv head, token, d]. Decoded once per head; at() is the offset of its
 * first element for token tt of the sequence starting at os (length ls).
 * The rope kernels of fwd.cu and calib_fused.cu share it. */
struct rope_head {
    bool is_q;
    int64_t heads, group, in_group, per_group, d;
    __host__ __device__ rope_head(int64_t h, int64_t nh, int64_t nkv, int64_t g, int64_t d_)
        : is_q(h < nh), heads(h < nh ? nh : nkv), group(h < nh ? h / g : h - nh),
          in_group(h < nh ? h % g : 0), per_group(h < nh ? g : 1), d(d_)
    {
    }
    __host__ __device__ size_t at(int64_t os, int64_t ls, int64_t tt) const
    {
        return (size_t)(os * heads * d + ((group * ls + tt) * per_group + in_group) * d);
    }
    __host__ __device__ void *tensor(void *q, void *k) const { return is_q ? q : k; }
};

/* x = w * round(x * r): rmsnorm's output before its final rounding (the
 * scalar kernel's steps, 8 at a time). */
template <int DT>
__device__ __forceinline__ void rms_scaled(vec<DT> &x, const vec<DT> &w, float r)
{
#pragma unroll
    for (int k = 0; k < VEC; k++)
        x.f[k] = x.f[k] * r;
    x.round();
#pragma unroll
    for (int k = 0; k < VEC; k++)
        x.f[k] = w.f[k] * x.f[k];
}

/* x = round(silu(x)) as stored: x / (1 + exp(-x)) in float32, then the
 * dtype's rounding (the scalar kernels' steps, 8 at a time). */
template <int DT> __device__ __forceinline__ void silu_rounded(vec<DT> &x)
{
#pragma unroll
    for (int k = 0; k < VEC; k++)
        x.f[k] = x.f[k] / (1.0f + expf(-x.f[k]));
    x.round();
}

/* The rotated halves of 8 rotary pairs: lo = round(x1 c) + round(-x2 s),
 * hi = round(x2 c) + round(x1 s) (rounded again when stored), the scalar
 * rope kernel's steps. */
template <int DT> struct lo_hi {
    vec<DT> lo, hi;
};
template <int DT>
__device__ __forceinline__ void rope_pairs(lo_hi<DT> &r, const vec<DT> &x1, const vec<DT> &x2,
                                           const float *c, const float *s)
{
    vec<DT> a, b;
#pragma unroll
    for (int j = 0; j < VEC; j++) {
        r.lo.f[j] = x1.f[j] * c[j];
        a.f[j] = -x2.f[j] * s[j];
        r.hi.f[j] = x2.f[j] * c[j];
        b.f[j] = x1.f[j] * s[j];
    }
    r.lo.round(), a.round(), r.hi.round(), b.round();
#pragma unroll
    for (int j = 0; j < VEC; j++) {
        r.lo.f[j] = r.lo.f[j] + a.f[j];
        r.hi.f[j] = r.hi.f[j] + b.f[j];
    }
}

static inline bool aligned16(const void *p)
{
    return ((uintptr_t)p & 15u) == 0;
}

/* dt has a vector kernel, n a multiple of VEC, every non-NULL pointer aligned. */
static inline bool vec_ok(tc_dtype dt, size_t n, const void *a, const void *b = NULL,
                          const void *c = NULL, const void *d = NULL)
{
    return (dt == TC_DT_F16 || dt == TC_DT_BF16) && n % VEC == 0 && aligned16(a) &&
           (!b || aligned16(b)) && (!c || aligned16(c)) && (!d || aligned16(d));
}

/* DISPATCH for the 2-byte dtypes of the vector kernels. */
#define DISPATCH16(dt, KERNEL, grid, block, stream, ...)                                    \
    do {                                                                                    \
        if (dt == TC_DT_F16)                                                                \
            KERNEL<1><<<grid, block, 0, (cudaStream_t)stream>>>(__VA_ARGS__);               \
        else                                                                                \
            KERNEL<2><<<grid, block, 0, (cudaStream_t)stream>>>(__VA_ARGS__);               \
    } while (0)

#endif
