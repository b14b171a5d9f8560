/* test_dtype.c: dtype names, sizes, writer sort rank and the F32/F16/BF16
 * conversions (rounding, subnormals, overflow, NaN/Inf, exhaustive round
 * trips, bulk tc_convert against the scalar functions). */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trtconv/core/dtype.h"

static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float float_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* The FP16 library's fp16_ieee_from_fp32_value (what torch's c10::Half uses),
 * written with volatile temporaries so no FMA contraction can change it. */
static uint16_t fp16_lib_from_fp32(float f)
{
    volatile float base = fabsf(f) * 0x1.0p+112f;
    base = base * 0x1.0p-110f;
    const uint32_t w = bits_of(f);
    const uint32_t shl1_w = w + w;
    const uint32_t sign = w & 0x80000000u;
    uint32_t bias = shl1_w & 0xFF000000u;
    if (bias < 0x71000000u)
        bias = 0x71000000u;
    volatile float sum = float_of((bias >> 1) + 0x07800000u) + base;
    const uint32_t b = bits_of(sum);
    const uint32_t exp_bits = (b >> 13) & 0x00007C00u;
    const uint32_t mantissa_bits = b & 0x00000FFFu;
    const uint32_t nonsign = exp_bits + mantissa_bits;
    return (uint16_t)((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

/* Exact value of an F16 bit pattern (non-NaN), computed independently. */
static double f16_value(uint16_t h)
{
    int e = (h >> 10) & 0x1F, m = h & 0x3FF;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? INFINITY : ldexp(1024 + m, e - 25);
    return (h & 0x8000) ? -v : v;
}

static int f16_is_nan(uint16_t h) { return (h & 0x7C00) == 0x7C00 && (h & 0x3FF); }
static int bf16_is_nan(uint16_t b) { return (b & 0x7F80) == 0x7F80 && (b & 0x7F); }

START_TEST(dtype_parse_should_accept_exact_names_only)
{
    tc_dtype dt;
    ck_assert_int_eq(tc_dtype_parse("F16", &dt), 0);
    ck_assert_int_eq(dt, TC_DT_F16);
    ck_assert_int_eq(tc_dtype_parse("F8_E4M3FNUZ", &dt), 0);
    ck_assert_int_eq(dt, TC_DT_F8_E4M3FNUZ);
    ck_assert_int_eq(tc_dtype_parse("f16", &dt), -1);
    ck_assert_int_eq(tc_dtype_parse("F33", &dt), -1);
    ck_assert_int_eq(tc_dtype_parse("", &dt), -1);
    ck_assert_int_eq(tc_dtype_parse("F16 ", &dt), -1);
    for (int i = 0; i < TC_DT_COUNT; i++) {
        ck_assert_int_eq(tc_dtype_parse(tc_dtype_name((tc_dtype)i), &dt), 0);
        ck_assert_int_eq(dt, i);
    }
}
END_TEST

START_TEST(dtype_bits_should_match_the_reference_table)
{
    ck_assert_uint_eq(tc_dtype_bits(TC_DT_BOOL), 8);
    ck_assert_uint_eq(tc_dtype_bits(TC_DT_F4), 4);
    ck_assert_uint_eq(tc_dtype_bits(TC_DT_F6_E2M3), 6);
    ck_assert_uint_eq(tc_dtype_bits(TC_DT_F6_E3M2), 6);
    ck_assert_uint_eq(tc_dtype_bits(TC_DT_F8_E8M0), 8);
    ck_assert_uint_eq(tc_dtype_bits(TC_DT_F8_E5M2FNUZ), 8);
    ck_assert_uint_eq(tc_dtype_bits(TC_DT_BF16), 16);
    ck_assert_uint_eq(tc_dtype_bits(TC_DT_U32), 32);
    ck_assert_uint_eq(tc_dtype_bits(TC_DT_C64), 64);
    ck_assert_uint_eq(tc_dtype_bits(TC_DT_U64), 64);
}
END_TEST

START_TEST(sort_rank_should_follow_the_v043_enum_order)
{
    /* trtllm-checkpoint.md §2.1, ascending. */
    static const tc_dtype order[] = {
        TC_DT_BOOL, TC_DT_U8, TC_DT_I8, TC_DT_F8_E5M2, TC_DT_F8_E4M3, TC_DT_I16, TC_DT_U16,
        TC_DT_F16, TC_DT_BF16, TC_DT_I32, TC_DT_U32, TC_DT_F32, TC_DT_F64, TC_DT_I64, TC_DT_U64,
    };
    for (size_t i = 1; i < sizeof order / sizeof order[0]; i++)
        ck_assert_int_lt(tc_dtype_sort_rank(order[i - 1]), tc_dtype_sort_rank(order[i]));
    /* every rank distinct */
    for (int a = 0; a < TC_DT_COUNT; a++)
        for (int b = a + 1; b < TC_DT_COUNT; b++)
            ck_assert_int_ne(tc_dtype_sort_rank((tc_dtype)a), tc_dtype_sort_rank((tc_dtype)b));
    /* newer dtypes by alignment */
    ck_assert_int_lt(tc_dtype_sort_rank(TC_DT_F4), tc_dtype_sort_rank(TC_DT_U8));
    ck_assert_int_lt(tc_dtype_sort_rank(TC_DT_F8_E4M3), tc_dtype_sort_rank(TC_DT_F8_E8M0));
    ck_assert_int_lt(tc_dtype_sort_rank(TC_DT_F8_E5M2FNUZ), tc_dtype_sort_rank(TC_DT_I16));
    ck_assert_int_lt(tc_dtype_sort_rank(TC_DT_F32), tc_dtype_sort_rank(TC_DT_C64));
    ck_assert_int_lt(tc_dtype_sort_rank(TC_DT_C64), tc_dtype_sort_rank(TC_DT_F64));
}
END_TEST

START_TEST(float_type_parse_should_accept_torch_names)
{
    tc_float_type ft;
    ck_assert_int_eq(tc_float_type_parse("float32", &ft), 0);
    ck_assert_int_eq(ft, TC_FT_FLOAT32);
    ck_assert_int_eq(tc_dtype_name(tc_float_type_dtype(ft))[0], 'F');
    ck_assert_int_eq(tc_float_type_parse("float16", &ft), 0);
    ck_assert_int_eq(tc_float_type_dtype(ft), TC_DT_F16);
    ck_assert_int_eq(tc_float_type_parse("bfloat16", &ft), 0);
    ck_assert_int_eq(tc_float_type_dtype(ft), TC_DT_BF16);
    ck_assert_str_eq(tc_float_type_name(ft), "bfloat16");
    ck_assert_int_eq(tc_float_type_parse("fp16", &ft), -1);
    ck_assert_int_eq(tc_float_type_parse("Float16", &ft), -1);
    ck_assert_int_eq(tc_float_type_parse("auto", &ft), -1);
    ck_assert(tc_dtype_is_convertible(TC_DT_F32) && tc_dtype_is_convertible(TC_DT_F16) &&
              tc_dtype_is_convertible(TC_DT_BF16));
    ck_assert(!tc_dtype_is_convertible(TC_DT_I8) && !tc_dtype_is_convertible(TC_DT_F64));
}
END_TEST

START_TEST(f32_to_f16_should_round_ties_to_even)
{
    ck_assert_uint_eq(tc_f32_to_f16(1.0f), 0x3C00);
    ck_assert_uint_eq(tc_f32_to_f16(1.0f + 0x1p-11f), 0x3C00);         /* tie, even down */
    ck_assert_uint_eq(tc_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3C02);     /* tie, even up */
    ck_assert_uint_eq(tc_f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f), 0x3C01); /* above tie */
    ck_assert_uint_eq(tc_f32_to_f16(-1.0f - 0x1p-11f), 0xBC00);
    ck_assert_uint_eq(tc_f32_to_f16(2047.0f + 0.5f), 0x6800);            /* 2048 */
    ck_assert_uint_eq(tc_f32_to_f16(0.1f), 0x2E66);
    ck_assert_uint_eq(tc_f32_to_f16(-2.0f), 0xC000);
    ck_assert_uint_eq(tc_f32_to_f16(0.0f), 0x0000);
    ck_assert_uint_eq(tc_f32_to_f16(-0.0f), 0x8000);
}
END_TEST

START_TEST(f32_to_f16_should_produce_exact_subnormals)
{
    ck_assert_uint_eq(tc_f32_to_f16(0x1p-24f), 0x0001);           /* smallest subnormal */
    ck_assert_uint_eq(tc_f32_to_f16(-0x1p-24f), 0x8001);
    ck_assert_uint_eq(tc_f32_to_f16(0x1p-25f), 0x0000);           /* tie -> even 0 */
    ck_assert_uint_eq(tc_f32_to_f16(0x1.000002p-25f), 0x0001);    /* just above the tie */
    ck_assert_uint_eq(tc_f32_to_f16(0x1.8p-24f), 0x0002);         /* 1.5 ulp tie -> 2 */
    ck_assert_uint_eq(tc_f32_to_f16(0x1.4p-23f), 0x0002);         /* 2.5 ulp tie -> 2 */
    ck_assert_uint_eq(tc_f32_to_f16(1023 * 0x1p-24f), 0x03FF);    /* largest subnormal */
    ck_assert_uint_eq(tc_f32_to_f16(1023.5f * 0x1p-24f), 0x0400); /* rounds into normal */
    ck_assert_uint_eq(tc_f32_to_f16(0x1p-14f), 0x0400);           /* smallest normal */
    ck_assert_uint_eq(tc_f32_to_f16(0x1p-26f), 0x0000);
    ck_assert_uint_eq(tc_f32_to_f16(float_of(0x00000001u)), 0x0000); /* f32 subnormal */
    ck_assert_uint_eq(tc_f32_to_f16(float_of(0x80400000u)), 0x8000);
}
END_TEST

START_TEST(f32_to_f16_should_overflow_to_infinity)
{
    ck_assert_uint_eq(tc_f32_to_f16(65504.0f), 0x7BFF);
    ck_assert_uint_eq(tc_f32_to_f16(65519.996f), 0x7BFF);
    ck_assert_uint_eq(tc_f32_to_f16(65520.0f), 0x7C00); /* tie, 65504 odd -> Inf */
    ck_assert_uint_eq(tc_f32_to_f16(1e10f), 0x7C00);
    ck_assert_uint_eq(tc_f32_to_f16(-1e10f), 0xFC00);
    ck_assert_uint_eq(tc_f32_to_f16(3.4e38f), 0x7C00);
    ck_assert_uint_eq(tc_f32_to_f16(INFINITY), 0x7C00);
    ck_assert_uint_eq(tc_f32_to_f16(-INFINITY), 0xFC00);
}
END_TEST

START_TEST(f32_to_f16_should_map_nan_to_sign_and_7e00)
{
    ck_assert_uint_eq(tc_f32_to_f16(float_of(0x7FC00000u)), 0x7E00);
    ck_assert_uint_eq(tc_f32_to_f16(float_of(0xFFC00000u)), 0xFE00);
    ck_assert_uint_eq(tc_f32_to_f16(float_of(0x7F800001u)), 0x7E00); /* signalling */
    ck_assert_uint_eq(tc_f32_to_f16(float_of(0xFFFFFFFFu)), 0xFE00);
    ck_assert_uint_eq(tc_f32_to_f16(float_of(0x7FBFE000u)), 0x7E00); /* payload dropped */
}
END_TEST

START_TEST(f32_to_f16_should_match_the_fp16_library_on_a_sweep)
{
    /* ~4.2M patterns spread over all 2^32, plus every pattern around the
     * F16 boundaries (subnormal/normal, overflow, NaN). */
    /* Assert once at the end: a Check assertion per value is slow. */
    uint64_t bad = 0;
    uint32_t first_bad = 0;
    for (uint64_t u = 0; u <= 0xFFFFFFFFull; u += 1021) {
        float f = float_of((uint32_t)u);
        if (tc_f32_to_f16(f) != fp16_lib_from_fp32(f) && bad++ == 0)
            first_bad = (uint32_t)u;
    }
    static const uint32_t centers[] = { 0x33000000u, 0x38800000u, 0x387FC000u, 0x477FE000u,
                                        0x477FF000u, 0x7F800000u, 0x00000000u };
    for (size_t c = 0; c < sizeof centers / sizeof centers[0]; c++) {
        for (int64_t d = -70000; d <= 70000; d++) {
            uint32_t u = (uint32_t)((int64_t)centers[c] + d);
            for (int sgn = 0; sgn < 2; sgn++) {
                uint32_t v = sgn ? u | 0x80000000u : u;
                if (tc_f32_to_f16(float_of(v)) != fp16_lib_from_fp32(float_of(v)) && bad++ == 0)
                    first_bad = v;
            }
        }
    }
    ck_assert_msg(bad == 0, "%llu mismatches, first at f32 bits 0x%08x",
                  (unsigned long long)bad, first_bad);
}
END_TEST

START_TEST(f16_should_round_trip_through_f32_for_all_65536_values)
{
    uint32_t bad = 0, first_bad = 0;
    for (uint32_t i = 0; i < 65536; i++) {
        uint16_t h = (uint16_t)i;
        float f = tc_f16_to_f32(h);
        int ok;
        if (f16_is_nan(h)) {
            ok = isnan(f) && (bits_of(f) & 0x80000000u) == (uint32_t)(h & 0x8000) << 16 &&
                 (bits_of(f) & 0x00400000u) /* quiet */ &&
                 tc_f32_to_f16(f) == ((h & 0x8000) | 0x7E00);
        } else {
            ok = (double)f == f16_value(h) && bits_of(f) >> 31 == (uint32_t)h >> 15 &&
                 tc_f32_to_f16(f) == h; /* -0 keeps its sign */
        }
        if (!ok && bad++ == 0)
            first_bad = i;
    }
    ck_assert_msg(bad == 0, "%u mismatches, first at f16 0x%04x", bad, first_bad);
}
END_TEST

START_TEST(bf16_should_round_trip_through_f32_for_all_65536_values)
{
    uint32_t bad = 0, first_bad = 0;
    for (uint32_t i = 0; i < 65536; i++) {
        uint16_t b = (uint16_t)i;
        float f = tc_bf16_to_f32(b);
        int ok = bits_of(f) == (uint32_t)b << 16 &&
                 tc_f32_to_bf16(f) == (bf16_is_nan(b) ? 0x7FC0 : b);
        if (!ok && bad++ == 0)
            first_bad = i;
    }
    ck_assert_msg(bad == 0, "%u mismatches, first at bf16 0x%04x", bad, first_bad);
}
END_TEST

START_TEST(f32_to_bf16_should_round_ties_to_even_and_canonicalize_nan)
{
    ck_assert_uint_eq(tc_f32_to_bf16(float_of(0x3F808000u)), 0x3F80); /* tie, even down */
    ck_assert_uint_eq(tc_f32_to_bf16(float_of(0x3F818000u)), 0x3F82); /* tie, even up */
    ck_assert_uint_eq(tc_f32_to_bf16(float_of(0x3F808001u)), 0x3F81);
    ck_assert_uint_eq(tc_f32_to_bf16(float_of(0x3F807FFFu)), 0x3F80);
    ck_assert_uint_eq(tc_f32_to_bf16(float_of(0x00000001u)), 0x0000); /* f32 subnormal */
    ck_assert_uint_eq(tc_f32_to_bf16(float_of(0x00018000u)), 0x0002);
    ck_assert_uint_eq(tc_f32_to_bf16(float_of(0x7F7FFFFFu)), 0x7F80); /* max -> Inf */
    ck_assert_uint_eq(tc_f32_to_bf16(INFINITY), 0x7F80);
    ck_assert_uint_eq(tc_f32_to_bf16(-INFINITY), 0xFF80);
    ck_assert_uint_eq(tc_f32_to_bf16(float_of(0x7FC00000u)), 0x7FC0);
    ck_assert_uint_eq(tc_f32_to_bf16(float_of(0xFFC00000u)), 0x7FC0); /* sign dropped */
    ck_assert_uint_eq(tc_f32_to_bf16(float_of(0x7F800001u)), 0x7FC0);
    ck_assert_uint_eq(tc_f32_to_bf16(float_of(0xFF80FFFFu)), 0x7FC0);
    ck_assert_uint_eq(tc_f32_to_bf16(-0.0f), 0x8000);
    ck_assert_uint_eq(tc_f32_to_bf16(1.0f / 3.0f), 0x3EAB);
}
END_TEST

START_TEST(f32_to_bf16_should_match_the_formula_on_a_sweep)
{
    uint64_t bad = 0;
    for (uint64_t u = 0; u <= 0xFFFFFFFFull; u += 997) {
        uint32_t w = (uint32_t)u;
        uint16_t want = (w & 0x7FFFFFFFu) > 0x7F800000u
                            ? 0x7FC0
                            : (uint16_t)((w + 0x7FFFu + ((w >> 16) & 1u)) >> 16);
        bad += tc_f32_to_bf16(float_of(w)) != want;
    }
    ck_assert_uint_eq(bad, 0);
}
END_TEST

START_TEST(f16_bf16_conversions_should_go_through_f32)
{
    uint32_t bad = 0;
    for (uint32_t i = 0; i < 65536; i++) {
        uint16_t h = (uint16_t)i, out;
        tc_convert(&out, TC_DT_BF16, &h, TC_DT_F16, 1);
        bad += out != tc_f32_to_bf16(tc_f16_to_f32(h));
        tc_convert(&out, TC_DT_F16, &h, TC_DT_BF16, 1);
        bad += out != tc_f32_to_f16(tc_bf16_to_f32(h));
    }
    ck_assert_uint_eq(bad, 0);
    uint16_t h = 0x7BFF, b; /* 65504 -> bf16 rounds up to 65536 */
    tc_convert(&b, TC_DT_BF16, &h, TC_DT_F16, 1);
    ck_assert_uint_eq(b, 0x4780);
    b = 0x47C3; /* ~99840 -> F16 Inf */
    tc_convert(&h, TC_DT_F16, &b, TC_DT_BF16, 1);
    ck_assert_uint_eq(h, 0x7C00);
}
END_TEST

START_TEST(convert_should_match_scalar_functions_for_every_pair_and_alignment)
{
    enum { N = 1037 };
    static const tc_dtype types[] = { TC_DT_F32, TC_DT_F16, TC_DT_BF16 };
    uint8_t *src = malloc(N * 4 + 8), *dst = malloc(N * 4 + 8), *want = malloc(N * 4);
    ck_assert(src && dst && want);
    uint32_t x = 12345;
    for (size_t i = 0; i < N * 4 + 8; i++) {
        x = x * 1103515245u + 12345u;
        src[i] = (uint8_t)(x >> 16);
    }
    for (size_t si = 0; si < 3; si++) {
        for (size_t di = 0; di < 3; di++) {
            tc_dtype s = types[si], d = types[di];
            size_t sb = tc_dtype_bits(s) / 8, db = tc_dtype_bits(d) / 8;
            for (size_t off = 0; off < 3; off++) { /* odd offsets: unaligned buffers */
                const uint8_t *sp = src + off;
                for (size_t i = 0; i < N; i++) {
                    float f;
                    uint16_t h;
                    uint32_t w;
                    if (s == TC_DT_F32) {
                        memcpy(&w, sp + 4 * i, 4);
                        f = float_of(w);
                    } else {
                        memcpy(&h, sp + 2 * i, 2);
                        f = s == TC_DT_F16 ? tc_f16_to_f32(h) : tc_bf16_to_f32(h);
                    }
                    if (s == d) {
                        memcpy(want + db * i, sp + sb * i, db);
                    } else if (d == TC_DT_F32) {
                        w = bits_of(f);
                        memcpy(want + 4 * i, &w, 4);
                    } else {
                        h = d == TC_DT_F16 ? tc_f32_to_f16(f) : tc_f32_to_bf16(f);
                        memcpy(want + 2 * i, &h, 2);
                    }
                }
                memset(dst, 0xAB, N * 4 + 8);
                tc_convert(dst + off, d, sp, s, N);
                ck_assert_mem_eq(dst + off, want, N * db);
                ck_assert_uint_eq(dst[off + N * db], 0xAB); /* no overrun */
            }
        }
    }
    /* same type in place is a no-op */
    memcpy(dst, src, N * 2);
    tc_convert(dst, TC_DT_F16, dst, TC_DT_F16, N);
    ck_assert_mem_eq(dst, src, N * 2);
    tc_convert(dst, TC_DT_F16, src, TC_DT_F32, 0); /* n == 0 */
    free(src);
    free(dst);
    free(want);
}
END_TEST

/* ---- FP8 E4M3 (torch.float8_e4m3fn) ---- */

START_TEST(e4m3fn_should_round_trip_every_finite_byte)
{
    for (int b = 0; b < 256; b++) {
        const float f = tc_e4m3fn_to_f32((uint8_t)b);
        if ((b & 0x7F) == 0x7F) {
            ck_assert_msg(isnan(f), "byte 0x%02x should be NaN", b);
            continue;
        }
        ck_assert_msg(tc_f32_to_e4m3fn(f) == b, "byte 0x%02x -> %g -> 0x%02x", b, (double)f,
                      tc_f32_to_e4m3fn(f));
    }
    ck_assert(tc_e4m3fn_to_f32(0x7E) == 448.0f);
    ck_assert(tc_e4m3fn_to_f32(0x01) == 0x1p-9f);
    ck_assert(tc_e4m3fn_to_f32(0x08) == 0x1p-6f);
}
END_TEST

START_TEST(e4m3fn_should_round_to_nearest_even_and_not_saturate)
{
    static const struct { float in; uint8_t out; } v[] = {
        { 0.0f, 0x00 }, { -0.0f, 0x80 }, { 1.0f, 0x38 }, { -1.0f, 0xB8 },
        { 1.0625f, 0x38 },          /* tie between 1 and 1.125: even (1) */
        { 1.1875f, 0x3A },          /* tie between 1.125 and 1.25: even (1.25) */
        { 1.0625001f, 0x39 },       /* above the tie */
        { 448.0f, 0x7E }, { 460.0f, 0x7E },
        { 464.0f, 0x7E },           /* tie at the top: to even 448 */
        { 465.0f, 0x7F },           /* beyond it: NaN, no saturation (c10) */
        { 479.9f, 0x7F }, { 480.0f, 0x7F }, { -500.0f, 0xFF },
        { 0x1p-9f, 0x01 },          /* smallest subnormal */
        { 0x1p-10f, 0x00 },         /* tie to even zero */
        { 0x1.8p-10f, 0x01 },       /* above the tie */
        { 0x1.8p-9f, 0x02 },        /* subnormal tie 1.5 -> 2 */
        { 0x1.4p-8f, 0x02 },        /* 2.5 subnormal units -> even 2 */
        { 0x1.ep-7f, 0x08 },        /* 7.5 units: tie to the smallest normal */
        { -0x1p-12f, 0x80 },        /* underflow keeps the sign */
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        ck_assert_msg(tc_f32_to_e4m3fn(v[i].in) == v[i].out, "%a -> 0x%02x, expected 0x%02x",
                      (double)v[i].in, tc_f32_to_e4m3fn(v[i].in), v[i].out);
    ck_assert_int_eq(tc_f32_to_e4m3fn(INFINITY), 0x7F);
    ck_assert_int_eq(tc_f32_to_e4m3fn(-INFINITY), 0xFF);
    ck_assert_int_eq(tc_f32_to_e4m3fn(NAN) & 0x7F, 0x7F);
}
END_TEST

START_TEST(e4m3fn_should_pick_the_nearest_value_on_a_sweep)
{
    /* Against a brute-force nearest search over the 253 finite values
     * (ties to the even code), for every float16 value in range. */
    for (uint32_t h = 0; h < 0x10000; h++) {
        const float f = tc_f16_to_f32((uint16_t)h);
        if (!isfinite(f) || fabsf(f) >= 464.0f)
            continue;
        int best = -1;
        double bd = 0;
        for (int b = 0; b < 128; b++) {
            if (b == 0x7F)
                continue;
            const double d = fabs((double)fabsf(f) - (double)tc_e4m3fn_to_f32((uint8_t)b));
            if (best < 0 || d < bd || (d == bd && (b & 1) == 0)) {
                best = b;
                bd = d;
            }
        }
        const uint8_t want = (uint8_t)(best | (signbit(f) ? 0x80 : 0));
        ck_assert_msg(tc_f32_to_e4m3fn(f) == want, "f16 0x%04x (%g): 0x%02x, nearest 0x%02x", h,
                      (double)f, tc_f32_to_e4m3fn(f), want);
    }
}
END_TEST

static Suite *dtype_suite(void)
{
    Suite *s = suite_create("dtype");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, dtype_parse_should_accept_exact_names_only);
    tcase_add_test(tc, dtype_bits_should_match_the_reference_table);
    tcase_add_test(tc, sort_rank_should_follow_the_v043_enum_order);
    tcase_add_test(tc, float_type_parse_should_accept_torch_names);
    tcase_add_test(tc, f32_to_f16_should_round_ties_to_even);
    tcase_add_test(tc, f32_to_f16_should_produce_exact_subnormals);
    tcase_add_test(tc, f32_to_f16_should_overflow_to_infinity);
    tcase_add_test(tc, f32_to_f16_should_map_nan_to_sign_and_7e00);
    tcase_add_test(tc, f32_to_f16_should_match_the_fp16_library_on_a_sweep);
    tcase_add_test(tc, f16_should_round_trip_through_f32_for_all_65536_values);
    tcase_add_test(tc, bf16_should_round_trip_through_f32_for_all_65536_values);
    tcase_add_test(tc, f32_to_bf16_should_round_ties_to_even_and_canonicalize_nan);
    tcase_add_test(tc, f32_to_bf16_should_match_the_formula_on_a_sweep);
    tcase_add_test(tc, f16_bf16_conversions_should_go_through_f32);
    tcase_add_test(tc, convert_should_match_scalar_functions_for_every_pair_and_alignment);
    tcase_add_test(tc, e4m3fn_should_round_trip_every_finite_byte);
    tcase_add_test(tc, e4m3fn_should_round_to_nearest_even_and_not_saturate);
    tcase_add_test(tc, e4m3fn_should_pick_the_nearest_value_on_a_sweep);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(dtype_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failures ? 1 : 0;
}
