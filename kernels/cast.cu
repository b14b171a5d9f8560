/* cast.cu: F32/F16/BF16 element casts on the GPU (tc_cast_cuda).
 *
 * Bit-exact twin of tc_convert (src/core/dtype.c), the scalar CPU reference
 * (style.md A9); tests/cuda/test_cast.c holds every pair to it byte for byte.
 * The rounding rules are written down at the top of trtconv/kernels.h. All
 * arithmetic is on integer bit patterns, so neither the rounding mode,
 * FTZ/DAZ nor FMA contraction (this file is built with --fmad=false anyway)
 * can change a result. In particular the NaN rules (F16: sign | 0x7E00,
 * BF16: 0x7FC0) are explicit here; __float2half_rn / __float2bfloat16_rn are
 * not used because their NaN outputs are not specified to match torch.
 *
 * C++ stays inside this file (style.md V15): the only exported symbols are
 * the extern "C" launchers declared in kernels.h.
 */
#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime.h>

/* The project headers have no extern "C" guards of their own. */
extern "C" {
#include "trtconv/core/dtype.h"
#include "trtconv/core/log.h"
#include "trtconv/core/status.h"
}
#include "trtconv/kernels/cast.h"
#include "cuda_util.cuh"
#include "fp_bits.cuh"

/* Threads per block for every cast kernel. */
#define CAST_BLOCK 256
/* Resident blocks per SM we aim for: 2048 threads / CAST_BLOCK = 8, times 4
 * so the grid-stride loop has a few rounds of slack for the tail. */
#define CAST_BLOCKS_PER_SM 32
/* Elements per thread per iteration on the vectorised path. */
#define CAST_VEC 4


/* ---- element conversions: kernels/fp_bits.cuh ------------------------- */

/* ---- one functor per (source, destination) pair ------------------------ */
/* src_t / dst_t are the raw bit containers of the element types. */

struct cast_f32_f16 {
    typedef uint32_t src_t;
    typedef uint16_t dst_t;
    static __device__ __forceinline__ dst_t apply(src_t x) { return tc_fp_f16_from_f32_bits(x); }
};
struct cast_f32_bf16 {
    typedef uint32_t src_t;
    typedef uint16_t dst_t;
    static __device__ __forceinline__ dst_t apply(src_t x) { return tc_fp_bf16_from_f32_bits(x); }
};
struct cast_f16_f32 {
    typedef uint16_t src_t;
    typedef uint32_t dst_t;
    static __device__ __forceinline__ dst_t apply(src_t x) { return tc_fp_f32_bits_from_f16(x); }
};
struct cast_bf16_f32 {
    typedef uint16_t src_t;
    typedef uint32_t dst_t;
    static __device__ __forceinline__ dst_t apply(src_t x) { return (uint32_t)x << 16; }
};
struct cast_f16_bf16 {
    typedef uint16_t src_t;
    typedef uint16_t dst_t;
    static __device__ __forceinline__ dst_t apply(src_t x)
    {
        return tc_fp_bf16_from_f32_bits(tc_fp_f32_bits_from_f16(x));
    }
};
struct cast_bf16_f16 {
    typedef uint16_t src_t;
    typedef uint16_t dst_t;
    static __device__ __forceinline__ dst_t apply(src_t x)
    {
        return tc_fp_f16_from_f32_bits((uint32_t)x << 16);
    }
};

/* CAST_VEC elements as one aligned load/store. */
template <class T> struct alignas(CAST_VEC * sizeof(T)) cast_vec {
    T v[CAST_VEC];
};

/* ---- kernels ------------------------------------------------------------ */

/* Purpose: dst[i] = Op::apply(src[i]) for i in [0, n).
 * Assumptions: src, dst device pointers aligned to their element size,
 * not overlapping; any grid size >= 1 (int64_t grid-stride loop, V5). */
template <class Op>
static __global__ void __launch_bounds__(CAST_BLOCK)
cast_scalar_kernel(typename Op::dst_t *__restrict__ dst,
                   const typename Op::src_t *__restrict__ src, int64_t n)
{
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        dst[i] = Op::apply(src[i]);
}

/* Purpose: as cast_scalar_kernel, CAST_VEC elements per load/store.
 * Assumptions: src aligned to CAST_VEC * sizeof(src_t) bytes, dst to
 * CAST_VEC * sizeof(dst_t); grid size >= 1. The n % CAST_VEC tail elements
 * are done by the first threads of the grid after the vector loop. */
template <class Op>
static __global__ void __launch_bounds__(CAST_BLOCK)
cast_vec_kernel(typename Op::dst_t *__restrict__ dst,
                const typename Op::src_t *__restrict__ src, int64_t n)
{
    typedef typename Op::src_t S;
    typedef typename Op::dst_t D;
    const int64_t nvec = n / CAST_VEC;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    const int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const cast_vec<S> *sv = reinterpret_cast<const cast_vec<S> *>(src);
    cast_vec<D> *dv = reinterpret_cast<cast_vec<D> *>(dst);
    for (int64_t i = tid; i < nvec; i += stride) {
        cast_vec<S> a = sv[i];
        cast_vec<D> b;
#pragma unroll
        for (int k = 0; k < CAST_VEC; k++)
            b.v[k] = Op::apply(a.v[k]);
        dv[i] = b;
    }
    const int64_t tail = n - nvec * CAST_VEC; /* 0 .. CAST_VEC-1 */
    if (tid < tail)
        dst[nvec * CAST_VEC + tid] = Op::apply(src[nvec * CAST_VEC + tid]);
}

/* ---- launchers ---------------------------------------------------------- */


/* Launch Op over n elements on s: the vectorised kernel when both pointers
 * are aligned for it, else the scalar one; check the launch (A10). */
template <class Op>
static tc_status cast_launch(void *dst, const void *src, int64_t n, cudaStream_t s)
{
    typedef typename Op::src_t S;
    typedef typename Op::dst_t D;
    tc_status st = TC_OK;
    unsigned grid = 0;
    const bool vec = (uintptr_t)src % (CAST_VEC * sizeof(S)) == 0 &&
                     (uintptr_t)dst % (CAST_VEC * sizeof(D)) == 0;
    {
        const int64_t work = vec ? n / CAST_VEC : n;
        st = tc_cuda_capped_grid((work + CAST_BLOCK - 1) / CAST_BLOCK, CAST_BLOCKS_PER_SM, &grid);
    }
    if (st != TC_OK)
        goto done;
    if (vec)
        cast_vec_kernel<Op><<<grid, CAST_BLOCK, 0, s>>>((D *)dst, (const S *)src, n);
    else
        cast_scalar_kernel<Op><<<grid, CAST_BLOCK, 0, s>>>((D *)dst, (const S *)src, n);
    TC_CUDA_TRY(cudaGetLastError());
done:
    return st;
}

extern "C" tc_status tc_cuda_device_count(int *n)
{
    int count = 0;
    cudaError_t e;
    if (!n)
        return tc_fail(TC_E_USAGE, "%s: n is NULL", __func__);
    e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        /* No driver, no device, driver too old for this runtime, ...: the
         * GPU is optional (A11), so this is "0 devices", not a failure. */
        tc_log(TC_LOG_VERBOSE, "%s: cudaGetDeviceCount: %s (%s); no CUDA device",
               __func__, cudaGetErrorString(e), cudaGetErrorName(e));
        (void)cudaGetLastError(); /* clear the runtime's last-error slot */
        count = 0;
    }
    *n = count;
    return TC_OK;
}

extern "C" tc_status tc_cast_cuda(void *dst, tc_dtype ddt, const void *src, tc_dtype sdt,
                                  size_t n, void *stream)
{
    tc_status st = TC_OK;
    cudaStream_t s = (cudaStream_t)stream;
    int64_t ni = 0;

    if (!tc_dtype_is_convertible(sdt) || !tc_dtype_is_convertible(ddt))
        return tc_fail(TC_E_USAGE, "%s: cannot cast %s to %s on the GPU", __func__,
                       tc_dtype_name(sdt), tc_dtype_name(ddt));
    if (n == 0)
        return TC_OK;
    /* Byte sizes (n * 4) and kernel indices must fit in int64_t (V5). */
    if (n > (size_t)(INT64_MAX / 4))
        return tc_fail(TC_E_USAGE, "%s: %zu elements is too many", __func__, n);
    if (!dst || !src)
        return tc_fail(TC_E_USAGE, "%s: NULL buffer for %zu elements", __func__, n);
    ni = (int64_t)n;

    if (sdt == ddt) {
        if (dst != src)
            TC_CUDA_TRY(cudaMemcpyAsync(dst, src, n * (tc_dtype_bits(sdt) / 8),
                                          cudaMemcpyDeviceToDevice, s));
        goto done;
    }
    switch (sdt) {
    case TC_DT_F32:
        st = ddt == TC_DT_F16 ? cast_launch<cast_f32_f16>(dst, src, ni, s)
                              : cast_launch<cast_f32_bf16>(dst, src, ni, s);
        break;
    case TC_DT_F16:
        st = ddt == TC_DT_F32 ? cast_launch<cast_f16_f32>(dst, src, ni, s)
                              : cast_launch<cast_f16_bf16>(dst, src, ni, s);
        break;
    case TC_DT_BF16:
        st = ddt == TC_DT_F32 ? cast_launch<cast_bf16_f32>(dst, src, ni, s)
                              : cast_launch<cast_bf16_f16>(dst, src, ni, s);
        break;
    default:
        st = tc_fail(TC_E_INTERNAL, "%s: unreachable dtype %s", __func__, tc_dtype_name(sdt));
        break;
    }
done:
    return st;
}
