/* fp8_bits.cuh: float32 -> FP8 E4M3 ("fn") on the device, the bits of the
 * CPU reference tc_f32_to_e4m3fn (src/core/dtype.c: round to nearest even,
 * |f| >= 480 and NaN to NaN 0x7F, no saturation; callers clamp first where
 * the format saturates), and E4M3 -> float32 (exact). Shared by fp8.cu and
 * fake_quant.cu. */
#ifndef TRTCONV_FP8_BITS_CUH
#define TRTCONV_FP8_BITS_CUH

#include <stdint.h>

__device__ __forceinline__ uint8_t to_e4m3fn(float f)
{
    uint32_t bits = __float_as_uint(f);
    const uint32_t sign = bits & 0x80000000u;
    bits ^= sign;
    uint8_t out;
    if (bits >= (1087u << 20)) {
        out = 0x7F;
    } else if (bits < (121u << 23)) {
        const uint32_t denorm = 141u << 23;
        out = static_cast<uint8_t>(__float_as_uint(__fadd_rn(__uint_as_float(bits),
                                                             __uint_as_float(denorm))) - denorm);
    } else {
        const uint32_t odd = (bits >> 20) & 1u;
        bits += ((uint32_t)(7 - 127) << 23) + 0x7FFFFu + odd;
        out = static_cast<uint8_t>(bits >> 20);
    }
    return static_cast<uint8_t>(out | (sign >> 24));
}

__device__ __forceinline__ float e4m3fn_to_f32(uint8_t b)
{
    const uint32_t sign = (uint32_t)(b & 0x80) << 24;
    const uint32_t e = (b >> 3) & 0xF, m = b & 7;
    if (e == 0xF && m == 7)
        return __uint_as_float(sign | 0x7FC00000u);
    const float v = e == 0 ? __fmul_rn((float)m, 0x1p-9f)
                           : __uint_as_float(((e + 120) << 23) | (m << 20));
    return sign ? -v : v;
}

#endif
