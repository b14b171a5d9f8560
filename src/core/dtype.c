/* dtype.c: safetensors element types and the F32/F16/BF16 conversions.
 *
 * All conversions are done on integer bit patterns, so they do not depend on
 * the FPU rounding mode, FMA contraction or -ffast-math (style.md V7), and
 * they give the same bits as torch's Tensor.to(dtype) (scalar path):
 *   F32 -> F16 : c10::Half / FP16 fp16_ieee_from_fp32_value: round to
 *                nearest even, subnormals exact, overflow to +-Inf,
 *                NaN -> sign | 0x7E00.
 *   F32 -> BF16: c10::BFloat16 round_to_nearest_even: NaN -> 0x7FC0, else
 *                (u + 0x7FFF + ((u >> 16) & 1)) >> 16.
 *   F16/BF16 -> F32 exact; an F16 NaN keeps its payload and is quieted
 *                (bit 22 set) as torch does; F16 <-> BF16 through F32. */
#include "trtconv/core/dtype.h"

#include <math.h>
#include <string.h>

/* Name and bit size per tc_dtype, in enum order. */
static const struct {
    const char *name;
    unsigned bits;
} dtype_info[TC_DT_COUNT] = {
    [TC_DT_BOOL] = { "BOOL", 8 },
    [TC_DT_F4] = { "F4", 4 },
    [TC_DT_F6_E2M3] = { "F6_E2M3", 6 },
    [TC_DT_F6_E3M2] = { "F6_E3M2", 6 },
    [TC_DT_U8] = { "U8", 8 },
    [TC_DT_I8] = { "I8", 8 },
    [TC_DT_F8_E5M2] = { "F8_E5M2", 8 },
    [TC_DT_F8_E4M3] = { "F8_E4M3", 8 },
    [TC_DT_F8_E8M0] = { "F8_E8M0", 8 },
    [TC_DT_F8_E4M3FNUZ] = { "F8_E4M3FNUZ", 8 },
    [TC_DT_F8_E5M2FNUZ] = { "F8_E5M2FNUZ", 8 },
    [TC_DT_I16] = { "I16", 16 },
    [TC_DT_U16] = { "U16", 16 },
    [TC_DT_F16] = { "F16", 16 },
    [TC_DT_BF16] = { "BF16", 16 },
    [TC_DT_I32] = { "I32", 32 },
    [TC_DT_U32] = { "U32", 32 },
    [TC_DT_F32] = { "F32", 32 },
    [TC_DT_C64] = { "C64", 64 },
    [TC_DT_F64] = { "F64", 64 },
    [TC_DT_I64] = { "I64", 64 },
    [TC_DT_U64] = { "U64", 64 },
};

/* Writer sort rank (larger = written first). The safetensors writer sorts by
 * the derived Ord of its Dtype enum, i.e. declaration order. For the v0.4.3
 * dtypes this is trtllm-checkpoint.md §2.1:
 *   BOOL < U8 < I8 < F8_E5M2 < F8_E4M3 < I16 < U16 < F16 < BF16 < I32 < U32
 *   < F32 < F64 < I64 < U64.
 * The newer dtypes are placed where the current reference enum declares
 * them, which is by alignment: the sub-byte F4/F6 right after BOOL (below
 * every byte type but BOOL), F8_E8M0 and the FNUZ FP8 variants after
 * F8_E4M3 (still below I16), C64 (2 x f32, 8-byte) after F32 and before
 * F64. */
static const int dtype_rank[TC_DT_COUNT] = {
    [TC_DT_BOOL] = 0,
    [TC_DT_F4] = 1,
    [TC_DT_F6_E2M3] = 2,
    [TC_DT_F6_E3M2] = 3,
    [TC_DT_U8] = 4,
    [TC_DT_I8] = 5,
    [TC_DT_F8_E5M2] = 6,
    [TC_DT_F8_E4M3] = 7,
    [TC_DT_F8_E8M0] = 8,
    [TC_DT_F8_E4M3FNUZ] = 9,
    [TC_DT_F8_E5M2FNUZ] = 10,
    [TC_DT_I16] = 11,
    [TC_DT_U16] = 12,
    [TC_DT_F16] = 13,
    [TC_DT_BF16] = 14,
    [TC_DT_I32] = 15,
    [TC_DT_U32] = 16,
    [TC_DT_F32] = 17,
    [TC_DT_C64] = 18,
    [TC_DT_F64] = 19,
    [TC_DT_I64] = 20,
    [TC_DT_U64] = 21,
};

int tc_dtype_parse(const char *name, tc_dtype *out)
{
    if (!name)
        return -1;
    for (int i = 0; i < TC_DT_COUNT; i++) {
        if (strcmp(name, dtype_info[i].name) == 0) {
            *out = (tc_dtype)i;
            return 0;
        }
    }
    return -1;
}

const char *tc_dtype_name(tc_dtype dt)
{
    if ((unsigned)dt >= TC_DT_COUNT)
        return "?";
    return dtype_info[dt].name;
}

unsigned tc_dtype_bits(tc_dtype dt)
{
    if ((unsigned)dt >= TC_DT_COUNT)
        return 0;
    return dtype_info[dt].bits;
}

int tc_dtype_sort_rank(tc_dtype dt)
{
    if ((unsigned)dt >= TC_DT_COUNT)
        return -1;
    return dtype_rank[dt];
}

int tc_float_type_parse(const char *name, tc_float_type *out)
{
    static const struct {
        const char *name;
        tc_float_type ft;
    } table[] = {
        { "float32", TC_FT_FLOAT32 },
        { "float16", TC_FT_FLOAT16 },
        { "bfloat16", TC_FT_BFLOAT16 },
    };
    if (!name)
        return -1;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (strcmp(name, table[i].name) == 0) {
            *out = table[i].ft;
            return 0;
        }
    }
    return -1;
}

const char *tc_float_type_name(tc_float_type ft)
{
    switch (ft) {
    case TC_FT_FLOAT32: return "float32";
    case TC_FT_FLOAT16: return "float16";
    case TC_FT_BFLOAT16: return "bfloat16";
    }
    return "?";
}

tc_dtype tc_float_type_dtype(tc_float_type ft)
{
    switch (ft) {
    case TC_FT_FLOAT32: return TC_DT_F32;
    case TC_FT_FLOAT16: return TC_DT_F16;
    case TC_FT_BFLOAT16: return TC_DT_BF16;
    }
    return TC_DT_F32;
}

int tc_dtype_is_convertible(tc_dtype dt)
{
    return dt == TC_DT_F32 || dt == TC_DT_F16 || dt == TC_DT_BF16;
}

/* ---- bit-level conversions --------------------------------------------- */

static inline uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* F32 bits -> F16 bits, round to nearest even. Branch-light so that the
 * conversion loop vectorizes. */
static inline uint16_t f16_from_f32_bits(uint32_t w)
{
    uint32_t sign = (w >> 16) & 0x8000u;
    uint32_t a = w & 0x7FFFFFFFu;
    uint32_t r;
    if (a >= 0x38800000u) {
        /* |f| >= 2^-14: normal F16 (or overflow / Inf / NaN). Rebias the
         * exponent (127 -> 15) and round the 13 dropped mantissa bits; a
         * carry moves into the exponent as it must. */
        uint32_t t = a - 0x38000000u;
        r = (t + 0x0FFFu + ((t >> 13) & 1u)) >> 13;
        if (a >= 0x477FF000u) /* >= 65520 rounds to Inf (65504 is odd) */
            r = 0x7C00u;
        if (a > 0x7F800000u) /* NaN */
            r = 0x7E00u;
    } else {
        /* |f| < 2^-14: F16 subnormal = round(|f| / 2^-24). With the implicit
         * bit, |f| = m * 2^(e-150), so the result is m >> (126 - e) rounded
         * to nearest even. e = 0 (F32 subnormals) and shifts beyond 24
         * round to zero. */
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

static inline uint16_t bf16_from_f32_bits(uint32_t u)
{
    if ((u & 0x7FFFFFFFu) > 0x7F800000u)
        return 0x7FC0u;
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

static inline uint32_t f32_bits_from_f16(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t em = h & 0x7FFFu;
    if (em >= 0x7C00u) { /* Inf / NaN */
        uint32_t mant = (em & 0x03FFu) << 13;
        /* A NaN keeps its payload but comes out quiet, as torch's float
         * multiply (FP16 fp16_ieee_to_fp32_value) and F16C vcvtph2ps give. */
        return sign | 0x7F800000u | mant | (mant ? 0x00400000u : 0u);
    }
    if (em >= 0x0400u) /* normal: rebias 15 -> 127 */
        return sign | ((em << 13) + 0x38000000u);
    /* zero or subnormal m * 2^-24: the float product is exact (m < 2^10),
     * so it does not depend on the rounding mode. */
    return sign | f32_bits((float)em * 0x1p-24f);
}

uint16_t tc_f32_to_f16(float f) { return f16_from_f32_bits(f32_bits(f)); }
uint16_t tc_f32_to_bf16(float f) { return bf16_from_f32_bits(f32_bits(f)); }
float tc_f16_to_f32(uint16_t h) { return f32_from_bits(f32_bits_from_f16(h)); }
float tc_bf16_to_f32(uint16_t b) { return f32_from_bits((uint32_t)b << 16); }

uint8_t tc_f32_to_e4m3fn(float f)
{
    uint32_t bits = f32_bits(f);
    const uint32_t sign = bits & UINT32_C(0x80000000);
    bits ^= sign;
    uint8_t out;
    if (bits >= UINT32_C(1087) << 20) {          /* |f| >= 480, Inf, NaN */
        out = 0x7F;
    } else if (bits < UINT32_C(121) << 23) {     /* |f| < 2^-6: subnormal or zero */
        /* Adding 2^14 leaves the subnormal's mantissa, rounded to nearest
         * even by the float addition, in the low bits. */
        const uint32_t denorm = UINT32_C(141) << 23;
        out = (uint8_t)(f32_bits(f32_from_bits(bits) + f32_from_bits(denorm)) - denorm);
    } else {
        const uint32_t odd = (bits >> 20) & 1;   /* ties to even */
        bits += ((uint32_t)(7 - 127) << 23) + UINT32_C(0x7FFFF) + odd;
        out = (uint8_t)(bits >> 20);
    }
    return (uint8_t)(out | (sign >> 24));
}

float tc_e4m3fn_to_f32(uint8_t b)
{
    const uint32_t sign = (uint32_t)(b & 0x80) << 24;
    const uint32_t e = (b >> 3) & 0xF, m = b & 7;
    if (e == 0xF && m == 7)
        return f32_from_bits(sign | UINT32_C(0x7FC00000));
    float v = e == 0 ? (float)m * 0x1p-9f : f32_from_bits(((e + 120) << 23) | (m << 20));
    return sign ? -v : v;
}

/* ---- bulk conversion ---------------------------------------------------- */
/* Loads and stores go through memcpy so unaligned buffers are fine; the
 * compiler turns them into plain moves. */

static void conv_f32_f16(uint8_t *d, const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t w;
        memcpy(&w, s + 4 * i, 4);
        uint16_t h = f16_from_f32_bits(w);
        memcpy(d + 2 * i, &h, 2);
    }
}

static void conv_f32_bf16(uint8_t *d, const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t w;
        memcpy(&w, s + 4 * i, 4);
        uint16_t h = bf16_from_f32_bits(w);
        memcpy(d + 2 * i, &h, 2);
    }
}

static void conv_f16_f32(uint8_t *d, const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, s + 2 * i, 2);
        uint32_t w = f32_bits_from_f16(h);
        memcpy(d + 4 * i, &w, 4);
    }
}

static void conv_bf16_f32(uint8_t *d, const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, s + 2 * i, 2);
        uint32_t w = (uint32_t)h << 16;
        memcpy(d + 4 * i, &w, 4);
    }
}

static void conv_f16_bf16(uint8_t *d, const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, s + 2 * i, 2);
        uint16_t b = bf16_from_f32_bits(f32_bits_from_f16(h));
        memcpy(d + 2 * i, &b, 2);
    }
}

static void conv_bf16_f16(uint8_t *d, const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint16_t b;
        memcpy(&b, s + 2 * i, 2);
        uint16_t h = f16_from_f32_bits((uint32_t)b << 16);
        memcpy(d + 2 * i, &h, 2);
    }
}

void tc_convert(void *dst, tc_dtype ddt, const void *src, tc_dtype sdt, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    if (n == 0)
        return;
    if (ddt == sdt) {
        if (d != s)
            memcpy(d, s, n * (tc_dtype_bits(sdt) / 8));
        return;
    }
    switch (sdt) {
    case TC_DT_F32:
        if (ddt == TC_DT_F16)
            conv_f32_f16(d, s, n);
        else if (ddt == TC_DT_BF16)
            conv_f32_bf16(d, s, n);
        break;
    case TC_DT_F16:
        if (ddt == TC_DT_F32)
            conv_f16_f32(d, s, n);
        else if (ddt == TC_DT_BF16)
            conv_f16_bf16(d, s, n);
        break;
    case TC_DT_BF16:
        if (ddt == TC_DT_F32)
            conv_bf16_f32(d, s, n);
        else if (ddt == TC_DT_F16)
            conv_bf16_f16(d, s, n);
        break;
    default:
        break; /* not convertible: caller's contract (tc_dtype_is_convertible) */
    }
}

float tc_round_to_dtype(tc_dtype dt, float v)
{
    switch (dt) {
    case TC_DT_F16: return tc_f16_to_f32(tc_f32_to_f16(v));
    case TC_DT_BF16: return tc_bf16_to_f32(tc_f32_to_bf16(v));
    default: return v;
    }
}

size_t tc_first_nonfinite(const void *data, tc_dtype dt, size_t n, float *value)
{
    if (dt != TC_DT_F32 && dt != TC_DT_F16 && dt != TC_DT_BF16)
        return n;
    const size_t es = tc_dtype_bits(dt) / 8;
    for (size_t k = 0; k < n; k++) {
        const unsigned char *p = (const unsigned char *)data + k * es;
        float v;
        if (dt == TC_DT_F32) {
            memcpy(&v, p, 4);
        } else {
            uint16_t h;
            memcpy(&h, p, 2);
            v = dt == TC_DT_F16 ? tc_f16_to_f32(h) : tc_bf16_to_f32(h);
        }
        if (!isfinite(v)) {
            *value = v;
            return k;
        }
    }
    return n;
}
