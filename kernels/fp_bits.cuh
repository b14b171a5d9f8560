/* fp_bits.cuh: F32 <-> F16/BF16 bit conversions for the CUDA kernels, one
 * definition shared by cast.cu and woq.cu, usable on the host too (the
 * kernels' index and rounding code is exercised on the CPU).
 *
 * They are a line-for-line copy of the CPU reference in src/core/dtype.c (kept
 * separate on purpose: the GPU tests hold these to that reference, which
 * would prove nothing if both were the same code). Rules, as torch's
 * .to(dtype): round to nearest even; F16 overflow to Inf; NaN -> sign|0x7E00
 * (F16) or 0x7FC0 (BF16); F16 -> F32 exact, a NaN quieted with its payload. */
#ifndef TRTCONV_FP_BITS_CUH
#define TRTCONV_FP_BITS_CUH

#include <stdint.h>

#define TC_FP_HD static __host__ __device__ __forceinline__

TC_FP_HD uint16_t tc_fp_f16_from_f32_bits(uint32_t w)
{
    uint32_t sign = (w >> 16) & 0x8000u;
    uint32_t a = w & 0x7FFFFFFFu;
    uint32_t r;
    if (a >= 0x38800000u) {
        /* |f| >= 2^-14: rebias the exponent (127 -> 15), round the 13
         * dropped mantissa bits to nearest even; a carry moves into the
         * exponent as it must. */
        uint32_t t = a - 0x38000000u;
        r = (t + 0x0FFFu + ((t >> 13) & 1u)) >> 13;
        if (a >= 0x477FF000u) /* >= 65520 rounds to Inf */
            r = 0x7C00u;
        if (a > 0x7F800000u) /* NaN: sign | 0x7E00 */
            r = 0x7E00u;
    } else {
        /* |f| < 2^-14: F16 subnormal = m >> (126 - e), rounded to nearest
         * even; F32 subnormals and shifts beyond 24 give zero. */
        uint32_t e = a >> 23;
        uint32_t m = (a & 0x007FFFFFu) | 0x00800000u;
        uint32_t s = 126u - e; /* >= 14 here */
        if (s > 24u) {
            r = 0;
        } else {
            uint32_t q = m >> s;
            uint32_t half = 1u << (s - 1u);
            r = (m + (half - 1u) + (q & 1u)) >> s;
        }
    }
    return (uint16_t)(sign | r);
}

TC_FP_HD uint16_t tc_fp_bf16_from_f32_bits(uint32_t u)
{
    if ((u & 0x7FFFFFFFu) > 0x7F800000u)
        return 0x7FC0u;
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

TC_FP_HD uint32_t tc_fp_f32_bits_from_f16(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t em = h & 0x7FFFu;
    if (em >= 0x7C00u) { /* Inf / NaN */
        uint32_t mant = (em & 0x03FFu) << 13;
        return sign | 0x7F800000u | mant | (mant ? 0x00400000u : 0u);
    }
    if (em >= 0x0400u) /* normal: rebias 15 -> 127 */
        return sign | ((em << 13) + 0x38000000u);
    if (em == 0)
        return sign;
    /* Subnormal em * 2^-24, em in [1, 1023]: highest set bit p in [0, 9]
     * gives 1.f * 2^(p - 24): exponent field p + 103, fraction em << (23-p)
     * without its leading bit. */
#ifdef __CUDA_ARCH__
    uint32_t p = 31u - (uint32_t)__clz((int)em);
#else
    uint32_t p = 31u - (uint32_t)__builtin_clz(em);
#endif
    return sign | ((p + 103u) << 23) | ((em << (23u - p)) & 0x007FFFFFu);
}

#endif
