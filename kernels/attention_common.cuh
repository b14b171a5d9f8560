/* attention_common.cuh: the fused attention kernel's building blocks
 * (attention.cu): the dtype's packing, cp.async, ldmatrix and mma.sync
 * wrappers (sm_80+), the tile loader, and the scaling, mask and
 * probabilities of a score tile. A variant with 32 query rows per warp
 * was built on them and measured no faster (docs/performance.md, session
 * 19), so they have one user today. Included by .cu files only. */
#ifndef TRTCONV_ATTENTION_COMMON_CUH
#define TRTCONV_ATTENTION_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "fwd_common.cuh"

template <int DT> struct fa_elem;
template <> struct fa_elem<1> {
    typedef __half T;
    /* a to the low half (the lower column), b to the high */
    static __device__ __forceinline__ uint32_t pack(float a, float b)
    {
        const __half2 h = __floats2half2_rn(a, b);
        return *(const uint32_t *)&h;
    }
};
template <> struct fa_elem<2> {
    typedef __nv_bfloat16 T;
    static __device__ __forceinline__ uint32_t pack(float a, float b)
    {
        const __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
        return *(const uint32_t *)&h;
    }
};

#define FA_BN 64        /* keys per step */
#define FA_WARPS 4      /* warps per block */
#define FA_THREADS (FA_WARPS * 32)

/* The row stride of a shared-memory tile: D elements padded by 16 bytes
 * (ldmatrix's eight row reads then fall in distinct banks). */
__host__ __device__ constexpr int fa_ld(int D)
{
    return D + 8;
}

__device__ __forceinline__ uint32_t smem_addr(const void *p)
{
    return (uint32_t)__cvta_generic_to_shared(p);
}

/* 16 bytes global -> shared, asynchronously; zeros when !valid (a row past
 * the sequence: no stale NaN times a zero probability). */
__device__ __forceinline__ void cp_async16(void *dst, const void *src, bool valid)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)),
                 "l"(src), "r"(valid ? 16 : 0));
#endif
}

__device__ __forceinline__ void cp_async_commit()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;\n" ::);
#endif
}

__device__ __forceinline__ void cp_async_wait_all()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group 0;\n" ::);
#endif
}

/* Four 8x8 b16 matrices; lanes 8i..8i+7 address the rows of matrix i. */
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const void *p)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
#endif
}

__device__ __forceinline__ void ldsm_x4_trans(uint32_t (&r)[4], const void *p)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
#endif
}

/* c += a b for one m16n8k16 tile. Accumulator c: c[0], c[1] at row
 * lane/4, columns 2 (lane%4) and + 1; c[2], c[3] the same columns at row
 * lane/4 + 8. */
template <int DT>
__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    if (DT == 1)
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                     "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    else
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                     "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

/* Queue a ROWS-row tile of `rows` valid rows (the rest zero) from src (row
 * stride D) into dst (row stride fa_ld(D)); `any` is a readable address for
 * the rows that are not (cp.async reads nothing from it). */
template <int D, int ROWS, typename T>
__device__ __forceinline__ void load_rows(T *dst, const T *src, int64_t rows, const T *any)
{
    constexpr int CHUNKS = D / 8, LD = fa_ld(D);
    for (int c = threadIdx.x; c < ROWS * CHUNKS; c += FA_THREADS) {
        const int row = c / CHUNKS, col = c % CHUNKS * 8;
        const bool ok = row < rows;
        cp_async16(dst + row * LD + col, ok ? src + (size_t)row * D + col : any, ok);
    }
}

/* The thread's scores of one key tile scaled, and -inf at the keys past
 * its row's token when MASK (a tile that reaches past the block's first
 * token; the others skip the test): key n0 + 8j + col2 + e belongs to row i
 * when 8j + e <= lim[i] = t[i] - n0 - col2. */
template <bool MASK>
__device__ __forceinline__ void scale_mask(float (&s)[FA_BN / 8][4], float scale,
                                           const int (&lim)[2])
{
#pragma unroll
    for (int j = 0; j < FA_BN / 8; j++)
#pragma unroll
        for (int i = 0; i < 2; i++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const float x = s[j][2 * i + e] * scale;
                s[j][2 * i + e] = !MASK || j * 8 + e <= lim[i] ? x : -INFINITY;
            }
}

/* The probabilities round(exp(s scale - m) / l) of the tile's keys as the
 * A operand of P V: keys 16jk .. 16jk + 15 are the accumulators of key
 * tiles 2jk and 2jk + 1 (rows lane/4, lane/4 + 8), packed two to a
 * register; 0 past the row's token (MASK as in scale_mask). */
template <int DT, bool MASK>
__device__ __forceinline__ void probabilities(uint32_t (&pf)[FA_BN / 16][4],
                                              const float (&s)[FA_BN / 8][4], float scale,
                                              const float (&m)[2], const float (&inv_l)[2],
                                              const int (&lim)[2])
{
#pragma unroll
    for (int jk = 0; jk < FA_BN / 16; jk++)
#pragma unroll
        for (int h = 0; h < 2; h++)
#pragma unroll
            for (int i = 0; i < 2; i++) {
                const int j = 2 * jk + h;
                float p[2];
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const float sc = s[j][2 * i + e] * scale;
                    p[e] = !MASK || j * 8 + e <= lim[i] ? __expf(sc - m[i]) * inv_l[i] : 0.0f;
                }
                pf[jk][2 * h + i] = fa_elem<DT>::pack(p[0], p[1]);
            }
}

#endif
