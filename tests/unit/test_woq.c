/* test_woq.c: weight-only quantization (trtllm-checkpoint.md §4.6-4.8):
 * hand-computed quantization vectors, the step maps of §4.8 observed through
 * index-encoding weights (Step 1 P order, Step 3 word placement, Step 4 byte
 * and nibble order), reference vs fast path on random matrices for every
 * layout family, precision and dtype and on row partitions, and the shape
 * preconditions with their messages. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trtconv/core/dtype.h"
#include "trtconv/core/log.h"
#include "trtconv/quant/woq.h"

/* ---- helpers -------------------------------------------------------------- */

static size_t dt_size(tc_dtype dt) { return tc_dtype_bits(dt) / 8; }

/* W [n, k] of float32 values converted to dt (caller frees). */
static void *to_dtype(const float *w, tc_dtype dt, int64_t count)
{
    void *p = malloc((size_t)count * dt_size(dt));
    ck_assert_ptr_nonnull(p);
    tc_convert(p, dt, w, TC_DT_F32, (size_t)count);
    return p;
}

static float scale_at(const void *scales, tc_dtype dt, int64_t i)
{
    const uint8_t *p = scales;
    if (dt == TC_DT_F32) {
        float f;
        memcpy(&f, p + 4 * i, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    return dt == TC_DT_F16 ? tc_f16_to_f32(h) : tc_bf16_to_f32(h);
}

/* Quantize with both the reference and the fast path (whole matrix), check
 * they agree, return the reference output and scales (caller frees). */
static uint8_t *quantize_both(const float *wf, tc_dtype dt, int64_t n, int64_t k, int bits,
                              int sm, void **scales_out)
{
    int64_t nbytes = n * k * bits / 8;
    void *w = to_dtype(wf, dt, n * k);
    uint8_t *ref = malloc((size_t)nbytes);
    uint8_t *fast = malloc((size_t)nbytes);
    void *sref = malloc((size_t)n * dt_size(dt));
    void *sfast = malloc((size_t)n * dt_size(dt));
    ck_assert(ref && fast && sref && sfast);
    memset(ref, 0xA5, (size_t)nbytes);
    memset(fast, 0x5A, (size_t)nbytes);
    ck_assert_int_eq(tc_woq_quantize_ref(w, dt, n, k, bits, sm, ref, sref), TC_OK);
    ck_assert_int_eq(tc_woq_quantize_rows(w, dt, n, k, bits, sm, 0, fast, sfast), TC_OK);
    ck_assert_mem_eq(ref, fast, (size_t)nbytes);
    ck_assert_mem_eq(sref, sfast, (size_t)n * dt_size(dt));
    free(w);
    free(fast);
    free(sfast);
    if (scales_out)
        *scales_out = sref;
    else
        free(sref);
    return ref;
}

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

/* Uniform in [-1, 1). */
static float rng_unit(void) { return (float)((double)(rng_next() >> 11) * 0x1.0p-52 - 1.0); }

/* ---- hand-computed quantization ------------------------------------------ */

START_TEST(hopper_int8_should_store_q_row_major_with_hand_computed_values)
{
    enum { N = 64, K = 64 };
    static float w[N * K];
    memset(w, 0, sizeof w);
    /* Row 0: amax 128 -> s = 1, q = round half away from zero of x. */
    float r0[] = { 128.0f, 2.5f, -2.5f, 0.5f, -0.5f, -128.0f, 1.49f, 0.49999997f, -3.5f, 127.5f };
    memcpy(w, r0, sizeof r0);
    /* Row 1: amax 3 -> s = 3/128 (exact); +amax -> 128 -> 127, -amax -> -128. */
    w[1 * K + 0] = 3.0f;
    w[1 * K + 1] = -3.0f;
    w[1 * K + 2] = 1.5f; /* 64 */
    /* Row 2 stays zero: scale 0, q 0, no NaN. */
    /* Row 3: a negative amax: -128 -> s = 1, -128 -> -128. */
    w[3 * K + 5] = -128.0f;
    w[3 * K + 6] = 64.5f; /* 65 */

    void *sc = NULL;
    uint8_t *out = quantize_both(w, TC_DT_F32, N, K, 8, 90, &sc);
    const int8_t *q = (const int8_t *)out;
    int8_t want0[] = { 127, 3, -3, 1, -1, -128, 1, 0, -4, 127 }; /* 127.5 -> 128 -> 127 */
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(q[i], want0[i]);
    for (int i = 10; i < K; i++)
        ck_assert_int_eq(q[i], 0);
    ck_assert_int_eq(q[1 * K + 0], 127);
    ck_assert_int_eq(q[1 * K + 1], -128);
    ck_assert_int_eq(q[1 * K + 2], 64);
    for (int i = 0; i < K; i++)
        ck_assert_int_eq(q[2 * K + i], 0);
    ck_assert_int_eq(q[3 * K + 5], -128);
    ck_assert_int_eq(q[3 * K + 6], 65);
    ck_assert(scale_at(sc, TC_DT_F32, 0) == 1.0f);
    ck_assert(scale_at(sc, TC_DT_F32, 1) == 3.0f / 128.0f);
    ck_assert(scale_at(sc, TC_DT_F32, 2) == 0.0f);
    ck_assert(!signbit(scale_at(sc, TC_DT_F32, 2)));
    ck_assert(scale_at(sc, TC_DT_F32, 3) == 1.0f);
    for (int n = 4; n < N; n++)
        ck_assert(scale_at(sc, TC_DT_F32, n) == 0.0f);
    free(out);
    free(sc);
}
END_TEST

START_TEST(hopper_int4_should_pack_element_2j_in_the_low_nibble)
{
    enum { N = 64, K = 64 };
    static float w[N * K];
    memset(w, 0, sizeof w);
    /* Row 0: amax 8 -> s = 1. */
    float r0[] = { 8.0f, -8.0f, 2.5f, -2.5f, 0.5f, -0.5f, 7.5f, -7.5f, 1.0f, -2.0f, 6.49f, -0.49f };
    memcpy(w, r0, sizeof r0);
    /* Row 1: amax 4 -> s = 0.5, -amax -> -8. */
    w[1 * K + 0] = -4.0f;
    w[1 * K + 1] = 4.0f;
    w[1 * K + 2] = 1.25f; /* 2.5 -> 3 */

    void *sc = NULL;
    uint8_t *out = quantize_both(w, TC_DT_F32, N, K, 4, 90, &sc);
    /* q: 7 -8 | 3 -3 | 1 -1 | 8->7 -8 | 1 -2 | 6 0; byte = lo | hi << 4. */
    uint8_t want0[] = { 0x87, 0xD3, 0xF1, 0x87, 0xE1, 0x06 };
    for (int j = 0; j < 6; j++)
        ck_assert_uint_eq(out[j], want0[j]);
    for (int j = 6; j < K / 2; j++)
        ck_assert_uint_eq(out[j], 0);
    /* Row 1 starts at byte K/2: q = -8, 7, 3. */
    ck_assert_uint_eq(out[K / 2 + 0], 0x78);
    ck_assert_uint_eq(out[K / 2 + 1], 0x03);
    ck_assert(scale_at(sc, TC_DT_F32, 0) == 1.0f);
    ck_assert(scale_at(sc, TC_DT_F32, 1) == 0.5f);
    ck_assert(scale_at(sc, TC_DT_F32, 2) == 0.0f);
    free(out);
    free(sc);
}
END_TEST

START_TEST(zero_rows_should_give_zero_scale_and_biased_zero_on_every_layout)
{
    enum { N = 64, K = 64 };
    static float w[N * K];
    memset(w, 0, sizeof w);
    const int sms[] = { 70, 80, 90 };
    for (int si = 0; si < 3; si++) {
        for (int bits = 4; bits <= 8; bits += 4) {
            const tc_dtype dts[] = { TC_DT_F32, TC_DT_F16, TC_DT_BF16 };
            for (int di = 0; di < 3; di++) {
                const tc_dtype dt = dts[di];
                void *sc = NULL;
                uint8_t *out = quantize_both(w, dt, N, K, bits, sms[si], &sc);
                uint8_t want = sms[si] == 90 ? 0x00 : bits == 8 ? 0x80 : 0x88;
                for (int i = 0; i < N * K * bits / 8; i++)
                    ck_assert_uint_eq(out[i], want);
                for (int n = 0; n < N; n++) {
                    float s = scale_at(sc, dt, n);
                    ck_assert(s == 0.0f && !isnan(s));
                }
                free(out);
                free(sc);
            }
        }
    }
}
END_TEST

START_TEST(scales_should_be_rounded_to_the_config_dtype_but_q_should_use_float32_s)
{
    enum { N = 64, K = 64 };
    static float w[N * K];
    memset(w, 0, sizeof w);
    /* amax = 1.1 (an F32 value): s = 1.1f/128 is not an F16/BF16 value. */
    const float amax = 1.1f;
    w[0] = amax;
    w[1] = 0.55f;
    const tc_dtype dts[] = { TC_DT_F32, TC_DT_BF16 };
    for (int i = 0; i < 2; i++) {
        void *sc = NULL;
        uint8_t *out = quantize_both(w, dts[i], N, K, 8, 90, &sc);
        float a = dts[i] == TC_DT_F32 ? amax : tc_bf16_to_f32(tc_f32_to_bf16(amax));
        float s = a * (1.0f / 128.0f);
        uint16_t h;
        memcpy(&h, sc, 2);
        if (dts[i] == TC_DT_BF16)
            ck_assert_uint_eq(h, tc_f32_to_bf16(s));
        else
            ck_assert(scale_at(sc, TC_DT_F32, 0) == s);
        float x1 = dts[i] == TC_DT_F32 ? 0.55f : tc_bf16_to_f32(tc_f32_to_bf16(0.55f));
        ck_assert_int_eq((int8_t)out[0], 127);
        ck_assert_int_eq((int8_t)out[1], (int)roundf(x1 / s));
        free(out);
        free(sc);
    }
    /* F16 too. */
    void *sc = NULL;
    uint8_t *out = quantize_both(w, TC_DT_F16, N, K, 8, 80, &sc);
    float a = tc_f16_to_f32(tc_f32_to_f16(amax));
    uint16_t h;
    memcpy(&h, sc, 2);
    ck_assert_uint_eq(h, tc_f32_to_f16(a * (1.0f / 128.0f)));
    free(out);
    free(sc);
}
END_TEST

START_TEST(nan_and_inf_should_follow_upstream_std_min_max_semantics)
{
    enum { N = 64, K = 64 };
    static float w[N * K];
    memset(w, 0, sizeof w);
    /* Row 0: NaN is ignored by amax (std::max), then NaN/s = NaN -> 127 (int8)
     * and -8 (int4, int(NaN) = INT_MIN on x86-64). */
    w[0] = NAN;
    w[1] = 128.0f;
    w[2] = 64.0f;
    /* Row 1: Inf makes s = Inf: finite -> 0, +-Inf -> NaN. */
    w[K + 0] = INFINITY;
    w[K + 1] = 5.0f;
    w[K + 2] = -INFINITY;
    void *sc = NULL;
    uint8_t *out = quantize_both(w, TC_DT_F32, N, K, 8, 90, &sc);
    ck_assert_int_eq((int8_t)out[0], 127);
    ck_assert_int_eq((int8_t)out[1], 127);
    ck_assert_int_eq((int8_t)out[2], 64);
    ck_assert(scale_at(sc, TC_DT_F32, 0) == 1.0f);
    ck_assert_int_eq((int8_t)out[K + 0], 127);
    ck_assert_int_eq((int8_t)out[K + 1], 0);
    ck_assert_int_eq((int8_t)out[K + 2], 127);
    ck_assert(isinf(scale_at(sc, TC_DT_F32, 1)));
    free(out);
    free(sc);

    w[1] = 8.0f; /* int4 row 0: NaN, 8 -> 7, 64 -> clamp 7 */
    w[2] = 4.0f;
    out = quantize_both(w, TC_DT_F32, N, K, 4, 90, &sc);
    ck_assert_uint_eq(out[0], 0x78); /* NaN -> -8 low, 8 -> 7 high */
    ck_assert_uint_eq(out[1] & 0xF, 4);
    ck_assert_uint_eq(out[K / 2 + 0], 0x08); /* Inf -> -8, 5/Inf -> 0 */
    ck_assert_uint_eq(out[K / 2 + 1] & 0xF, 8);
    free(out);
    free(sc);
}
END_TEST

/* ---- step maps, observed through index-encoding weights ------------------ */

/* Row n with x[k] = k - 128 (K = 128): amax 128, s = 1, q = k - 128, and after
 * the int8 bias every stored byte equals its source k. */
static void encode_k_int8(float *row, int64_t k)
{
    for (int64_t i = 0; i < k; i++)
        row[i] = (float)(i - 128);
}

START_TEST(volta_int8_should_bias_by_128_and_swap_bytes_1_and_2)
{
    enum { N = 32, K = 128 };
    static float w[N * K];
    memset(w, 0, sizeof w);
    encode_k_int8(w, K);
    uint8_t *out = quantize_both(w, TC_DT_F32, N, K, 8, 70, NULL);
    uint8_t want[8] = { 0, 2, 1, 3, 4, 6, 5, 7 };
    ck_assert_mem_eq(out, want, 8);
    for (int k = 0; k < K; k++) {
        int e = k % 4, slot = e == 1 ? 2 : e == 2 ? 1 : e;
        ck_assert_uint_eq(out[k - e + slot], (unsigned)k);
    }
    for (int i = K; i < N * K; i++)
        ck_assert_uint_eq(out[i], 0x80);
    free(out);
}
END_TEST

START_TEST(volta_int4_should_bias_by_8_and_put_even_nibbles_first)
{
    enum { N = 64, K = 64 };
    static float w[N * K];
    memset(w, 0, sizeof w);
    for (int k = 0; k < K; k++)
        w[k] = (float)(k % 16 - 8); /* amax 8, s = 1, biased nibble = k % 16 */
    uint8_t *out = quantize_both(w, TC_DT_F32, N, K, 4, 72, NULL);
    /* Word of e0..e7 = 0..7: slots e0 e2 e4 e6 e1 e3 e5 e7. */
    uint8_t want[8] = { 0x20, 0x64, 0x31, 0x75, 0xA8, 0xEC, 0xB9, 0xFD };
    ck_assert_mem_eq(out, want, 8);
    ck_assert_mem_eq(out + 8, want, 8);
    for (int i = K / 2; i < N * K / 2; i++)
        ck_assert_uint_eq(out[i], 0x88);
    free(out);
}
END_TEST

START_TEST(ampere_int8_should_read_rows_in_p_order_within_each_16_row_block)
{
    enum { N = 64, K = 128 };
    static const int P[16] = { 0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15 };
    static float w[N * K];
    memset(w, 0, sizeof w);
    encode_k_int8(w, K); /* row 0 */
    uint8_t *out = quantize_both(w, TC_DT_F32, N, K, 8, 80, NULL);
    /* Row 0, tile 0 is bytes 0..63: Step 1 gives k' -> P order, Step 4 swaps
     * bytes 1 and 2 of every word. */
    uint8_t want16[16] = { 0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15 };
    ck_assert_mem_eq(out, want16, 16);
    /* Every position: tile t of row 0 lands at (t*I + 0) * 64, I = 2. */
    for (int t = 0; t < K / 64; t++) {
        const uint8_t *chunk = out + t * 2 * 64;
        for (int kp = 0; kp < 64; kp++) { /* position after Step 1 */
            int k = t * 64 + (kp / 16) * 16 + P[kp % 16];
            int e = kp % 4, slot = e == 1 ? 2 : e == 2 ? 1 : e;
            ck_assert_uint_eq(chunk[kp - e + slot], (unsigned)k);
        }
        /* Row 1's chunk of the same tile sits right after, all zero -> 0x80. */
        for (int i = 0; i < 64; i++)
            ck_assert_uint_eq(chunk[64 + i], 0x80);
    }
    free(out);
}
END_TEST

START_TEST(ampere_int4_should_read_rows_in_p_order_within_each_32_row_block)
{
    enum { N = 64, K = 64 };
    static const int P[32] = { 0, 1, 8,  9,  16, 17, 24, 25, 2, 3, 10, 11, 18, 19, 26, 27,
                               4, 5, 12, 13, 20, 21, 28, 29, 6, 7, 14, 15, 22, 23, 30, 31 };
    static float w[N * K];
    memset(w, 0, sizeof w);
    for (int k = 0; k < K; k++) {
        w[0 * K + k] = (float)(k % 16 - 8); /* row 0: nibble = k % 16 */
        w[1 * K + k] = (float)(k / 16 - 8); /* row 1: nibble = k / 16 (amax 8 from k < 16) */
    }
    uint8_t *out = quantize_both(w, TC_DT_F32, N, K, 4, 86, NULL);
    /* I = 4, tile = 64 elements = 32 bytes: row 0 at bytes 0..31, row 1 at
     * 32..63. First word: k' = 0..7 -> k = 0 1 8 9 16 17 24 25; slots hold
     * e0 e2 e4 e6 e1 e3 e5 e7 -> k = 0 8 16 24 1 9 17 25. */
    uint8_t want_row0[4] = { 0x80, 0x80, 0x91, 0x91 }; /* k % 16 */
    uint8_t want_row1[4] = { 0x00, 0x11, 0x00, 0x11 }; /* k / 16 */
    ck_assert_mem_eq(out, want_row0, 4);
    ck_assert_mem_eq(out + 32, want_row1, 4);
    for (int p = 0; p < 64; p++) { /* nibble position in the chunk */
        int wd = p / 8, d = p % 8;
        int e = d < 4 ? 2 * d : 2 * (d - 4) + 1;
        int kp = wd * 8 + e;
        int k = (kp / 32) * 32 + P[kp % 32];
        int lo = (out[p / 2] >> (4 * (p % 2))) & 0xF;
        int hi = (out[32 + p / 2] >> (4 * (p % 2))) & 0xF;
        ck_assert_int_eq(hi * 16 + lo, k);
    }
    for (int i = 64; i < N * K / 2; i++)
        ck_assert_uint_eq(out[i], 0x88);
    free(out);
}
END_TEST

START_TEST(column_interleave_should_place_word_v_of_channel_n_at_the_formula_word)
{
    {
        /* int8, K = 128, N = 64: I = 2, Vk = 32, Vt = 16. */
        enum { N = 64, K = 128 };
        static float w[N * K];
        memset(w, 0, sizeof w);
        encode_k_int8(w + 2 * K, K);    /* row 2: byte = k */
        for (int k = 0; k < K; k++)      /* row 3: q = -(k+1), byte = 127 - k */
            w[3 * K + k] = (float)(-(k + 1));
        uint8_t *out = quantize_both(w, TC_DT_F32, N, K, 8, 89, NULL);
        /* n = 2, v = 20: out_col 1, base 16, out_word = 2*16 + 16*0 + 4 = 36,
         * word 1*64 + 36 = 100 (bytes 400..403). Input word 20 of column 2
         * holds k' = 80..83 = block 80 + P[0..3] = 80 81 88 89; Step 4 -> 80 88 81 89. */
        uint8_t want_a[4] = { 80, 88, 81, 89 };
        ck_assert_mem_eq(out + 400, want_a, 4);
        /* n = 3, v = 5: out_col 1, base 0, out_word = 0 + 16*1 + 5 = 21, word
         * 85 (bytes 340..343). k' = 20..23 = 16 + P[4..7] = 18 19 26 27, Step 4
         * -> 18 26 19 27, stored 127 - k. */
        uint8_t want_b[4] = { 109, 101, 108, 100 };
        ck_assert_mem_eq(out + 340, want_b, 4);
        /* n = 2, v = 0 at word 64 (byte 256); n = 3, v = 0 at word 64+16 = 80 (byte 320). */
        ck_assert_uint_eq(out[256], 0);
        ck_assert_uint_eq(out[320], 127);
        /* Rows 0, 1 are zero: group 0 = bytes 0..255 all 0x80. */
        for (int i = 0; i < 256; i++)
            ck_assert_uint_eq(out[i], 0x80);
        free(out);
    }
    {
        /* int4, K = 128, N = 64: I = 4, Vk = 16, Vt = 8. */
        enum { N = 64, K = 128 };
        static float w[N * K];
        memset(w, 0, sizeof w);
        for (int k = 0; k < K; k++) {
            w[6 * K + k] = (float)(k % 16 - 8); /* row 6: nibble k % 16 */
            w[7 * K + k] = (float)(k / 16 - 8); /* row 7: nibble k / 16 */
        }
        uint8_t *out = quantize_both(w, TC_DT_F32, N, K, 4, 75, NULL);
        /* n = 6, v = 11: out_col 1, base 8, out_word = 4*8 + 8*2 + 3 = 51, word
         * 64 + 51 = 115 (bytes 460..463). k' = 88..95 = 64 + P[24..31] =
         * 70 71 78 79 86 87 94 95; slots e0 e2 e4 e6 e1 e3 e5 e7 ->
         * 70 78 86 94 71 79 87 95; k % 16 = 6 14 6 14 7 15 7 15. */
        uint8_t want_a[4] = { 0xE6, 0xE6, 0xF7, 0xF7 };
        ck_assert_mem_eq(out + 460, want_a, 4);
        /* n = 7, v = 11: out_word = 32 + 8*3 + 3 = 59, word 123 (bytes
         * 492..495); k / 16 = 4 4 5 5 4 4 5 5. */
        uint8_t want_b[4] = { 0x44, 0x55, 0x44, 0x55 };
        ck_assert_mem_eq(out + 492, want_b, 4);
        free(out);
    }
}
END_TEST

/* ---- reference vs fast path on random matrices ---------------------------- */

/* Fill row r of W (float32 values before the dtype cast) with one of several
 * kinds: random magnitudes, zero, exact .5 ties, tiny (subnormal), NaN/Inf,
 * large. */
static void fill_random_row(float *row, int64_t k, int bits, tc_dtype dt)
{
    int kind = (int)(rng_next() % 10);
    float mag = ldexpf(1.0f, (int)(rng_next() % 40) - 20);
    switch (kind) {
    case 0: /* zero */
        memset(row, 0, (size_t)k * sizeof *row);
        break;
    case 1: { /* ties: amax = 128 (int8) / 8 (int4) -> s = 1, x = j + 0.5 */
        float amax = bits == 8 ? 128.0f : 8.0f;
        for (int64_t i = 0; i < k; i++)
            row[i] = (float)((int)(rng_next() % (unsigned)(2 * amax)) - (int)amax) + 0.5f;
        row[rng_next() % (uint64_t)k] = (rng_next() & 1) ? amax : -amax;
        break;
    }
    case 2: /* tiny: F32/BF16 subnormals, F16 subnormals */
        for (int64_t i = 0; i < k; i++)
            row[i] = rng_unit() * (dt == TC_DT_F16 ? 1e-6f : 1e-40f);
        break;
    case 3: /* NaN / Inf sprinkled */
        for (int64_t i = 0; i < k; i++)
            row[i] = rng_unit() * mag;
        row[rng_next() % (uint64_t)k] = NAN;
        if (rng_next() & 1)
            row[rng_next() % (uint64_t)k] = (rng_next() & 1) ? INFINITY : -INFINITY;
        break;
    case 4: /* large */
        for (int64_t i = 0; i < k; i++)
            row[i] = rng_unit() * (dt == TC_DT_F16 ? 65504.0f : 3e38f);
        break;
    default:
        for (int64_t i = 0; i < k; i++)
            row[i] = rng_unit() * mag;
        break;
    }
}

/* Quantize [n, k] with the reference, then with the fast path over a row
 * partition given as a list of chunk sizes (cycled), and compare. */
static void check_partition(const void *w, tc_dtype dt, int64_t n, int64_t k, int bits, int sm,
                            const uint8_t *ref, const uint8_t *sref, const int64_t *sizes,
                            int nsizes)
{
    int64_t nbytes = n * k * bits / 8, row_bytes = k * bits / 8;
    size_t es = dt_size(dt);
    uint8_t *fast = malloc((size_t)nbytes);
    uint8_t *sfast = malloc((size_t)n * es);
    ck_assert(fast && sfast);
    memset(fast, 0xC3, (size_t)nbytes);
    memset(sfast, 0xC3, (size_t)n * es);
    int64_t n0 = 0;
    for (int i = 0; n0 < n; i = (i + 1) % nsizes) {
        int64_t rows = sizes[i] < n - n0 ? sizes[i] : n - n0;
        /* Copy the rows to their own buffer so reads past the range are caught. */
        void *wr = malloc((size_t)(rows * k) * es);
        ck_assert_ptr_nonnull(wr);
        memcpy(wr, (const uint8_t *)w + (size_t)(n0 * k) * es, (size_t)(rows * k) * es);
        ck_assert_int_eq(tc_woq_quantize_rows(wr, dt, rows, k, bits, sm, n0,
                                              fast + n0 * row_bytes, sfast + (size_t)n0 * es),
                         TC_OK);
        free(wr);
        n0 += rows;
    }
    if (memcmp(ref, fast, (size_t)nbytes) != 0) {
        int64_t i = 0;
        while (ref[i] == fast[i])
            i++;
        ck_abort_msg("sm%d int%d %s N=%lld K=%lld chunk0=%lld: byte %lld ref 0x%02x fast 0x%02x",
                     sm, bits, tc_dtype_name(dt), (long long)n, (long long)k, (long long)sizes[0],
                     (long long)i, ref[i], fast[i]);
    }
    ck_assert_mem_eq(sref, sfast, (size_t)n * es);
    free(fast);
    free(sfast);
}

static const int family_sm[] = { 70, 75, 80, 86, 89, 90 };
#define N_FAMILIES ((int)(sizeof family_sm / sizeof family_sm[0]))

/* _i in [0, 2*N_FAMILIES): sm = family_sm[_i / 2], bits = _i % 2 ? 4 : 8. */
START_TEST(fast_path_should_match_reference_byte_for_byte_on_random_matrices)
{
    const int sm = family_sm[_i / 2];
    const int bits = _i % 2 ? 4 : 8;
    static const int64_t dims[] = { 64, 128, 192, 256, 96, 160 };
    const tc_dtype dts[] = { TC_DT_F32, TC_DT_F16, TC_DT_BF16 };
    tc_woq_layout layout;
    ck_assert_int_eq(tc_woq_layout_for_sm(sm, &layout), TC_OK);
    const int64_t a = tc_woq_row_align(layout, bits);
    rng_state = UINT64_C(0x9E3779B97F4A7C15) ^ (uint64_t)(unsigned)(sm * 16 + bits);
    tc_log_set_quiet(1);
    int shapes_run = 0;
    for (int ki = 0; ki < 6; ki++) {
        for (int ni = 0; ni < 6; ni++) {
            const int64_t k = dims[ki], n = dims[ni];
            tc_clear_first_error();
            if (tc_woq_check_shape("random", n, k, bits, sm) != TC_OK)
                continue;
            shapes_run++;
            for (int di = 0; di < 3; di++) {
                const tc_dtype dt = dts[di];
                float *wf = malloc((size_t)(n * k) * sizeof *wf);
                ck_assert_ptr_nonnull(wf);
                for (int64_t r = 0; r < n; r++)
                    fill_random_row(wf + r * k, k, bits, dt);
                void *w = to_dtype(wf, dt, n * k);
                uint8_t *ref = malloc((size_t)(n * k * bits / 8));
                uint8_t *sref = malloc((size_t)n * dt_size(dt));
                ck_assert(ref && sref);
                ck_assert_int_eq(tc_woq_quantize_ref(w, dt, n, k, bits, sm, ref, sref), TC_OK);
                const int64_t whole[] = { n };
                const int64_t unit[] = { a };
                const int64_t uneven[] = { 3 * a, a, 5 * a, 2 * a, 7 * a };
                check_partition(w, dt, n, k, bits, sm, ref, sref, whole, 1);
                check_partition(w, dt, n, k, bits, sm, ref, sref, unit, 1);
                check_partition(w, dt, n, k, bits, sm, ref, sref, uneven, 5);
                free(wf);
                free(w);
                free(ref);
                free(sref);
            }
        }
    }
    /* Volta/Hopper int8 need K, N % 32 only: 96 and 160 run too. */
    int want = (layout != TC_WOQ_LAYOUT_AMPERE && bits == 8) ? 36 : 16;
    ck_assert_int_eq(shapes_run, want);
}
END_TEST

START_TEST(fast_path_should_match_reference_on_a_larger_matrix_with_odd_chunks)
{
    /* A qkv-like slice: N = 384, K = 512, F16, for each family. */
    const int64_t n = 384, k = 512;
    rng_state = 12345;
    float *wf = malloc((size_t)(n * k) * sizeof *wf);
    ck_assert_ptr_nonnull(wf);
    for (int64_t r = 0; r < n; r++)
        fill_random_row(wf + r * k, k, 8, TC_DT_F16);
    void *w = to_dtype(wf, TC_DT_F16, n * k);
    for (int si = 0; si < N_FAMILIES; si++) {
        for (int bits = 4; bits <= 8; bits += 4) {
            tc_woq_layout layout;
            ck_assert_int_eq(tc_woq_layout_for_sm(family_sm[si], &layout), TC_OK);
            const int64_t a = tc_woq_row_align(layout, bits);
            uint8_t *ref = malloc((size_t)(n * k * bits / 8));
            uint8_t *sref = malloc((size_t)n * 2);
            ck_assert(ref && sref);
            ck_assert_int_eq(
                tc_woq_quantize_ref(w, TC_DT_F16, n, k, bits, family_sm[si], ref, sref), TC_OK);
            const int64_t sizes[] = { 11 * a, 4 * a, 29 * a };
            check_partition(w, TC_DT_F16, n, k, bits, family_sm[si], ref, sref, sizes, 3);
            free(ref);
            free(sref);
        }
    }
    free(wf);
    free(w);
}
END_TEST

/* ---- preconditions --------------------------------------------------------- */

START_TEST(layout_for_sm_should_map_every_supported_arch_and_refuse_others)
{
    tc_woq_layout l;
    const int volta[] = { 70, 72 }, ampere[] = { 75, 80, 86, 87, 89 };
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(tc_woq_layout_for_sm(volta[i], &l), TC_OK);
        ck_assert_int_eq(l, TC_WOQ_LAYOUT_VOLTA);
    }
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(tc_woq_layout_for_sm(ampere[i], &l), TC_OK);
        ck_assert_int_eq(l, TC_WOQ_LAYOUT_AMPERE);
    }
    ck_assert_int_eq(tc_woq_layout_for_sm(90, &l), TC_OK);
    ck_assert_int_eq(l, TC_WOQ_LAYOUT_HOPPER);
    tc_log_set_quiet(1);
    const int bad[] = { 0, 60, 61, 73, 74, 76, 85, 88, 91, 100, 120 };
    for (int i = 0; i < (int)(sizeof bad / sizeof bad[0]); i++) {
        tc_clear_first_error();
        ck_assert_int_eq(tc_woq_layout_for_sm(bad[i], &l), TC_E_USAGE);
    }
    tc_clear_first_error();
    ck_assert_int_eq(tc_woq_layout_for_sm(100, &l), TC_E_USAGE);
    ck_assert_str_eq(tc_first_error(),
                     "unsupported --target_sm 100 (supported: 70, 72, 75, 80, 86, 87, 89, 90)");
}
END_TEST

START_TEST(row_align_should_be_the_column_interleave_factor)
{
    ck_assert_int_eq(tc_woq_row_align(TC_WOQ_LAYOUT_AMPERE, 8), 2);
    ck_assert_int_eq(tc_woq_row_align(TC_WOQ_LAYOUT_AMPERE, 4), 4);
    ck_assert_int_eq(tc_woq_row_align(TC_WOQ_LAYOUT_VOLTA, 8), 1);
    ck_assert_int_eq(tc_woq_row_align(TC_WOQ_LAYOUT_VOLTA, 4), 1);
    ck_assert_int_eq(tc_woq_row_align(TC_WOQ_LAYOUT_HOPPER, 8), 1);
    ck_assert_int_eq(tc_woq_row_align(TC_WOQ_LAYOUT_HOPPER, 4), 1);
}
END_TEST

START_TEST(check_shape_should_refuse_int4_k96_on_sm80_naming_tensor_and_rule)
{
    tc_log_set_quiet(1);
    tc_clear_first_error();
    ck_assert_int_eq(tc_woq_check_shape("attention.qkv.weight", 384, 96, 4, 80), TC_E_INPUT);
    const char *m = tc_first_error();
    ck_assert_ptr_nonnull(strstr(m, "attention.qkv.weight: int4 for sm80"));
    ck_assert_ptr_nonnull(strstr(m, "input dimension K (here 96, from HF shape [N=384, K=96]"));
    ck_assert_ptr_nonnull(strstr(m, "multiple of 64"));
    ck_assert_ptr_nonnull(strstr(m, "column interleave"));
    ck_assert_ptr_nonnull(strstr(m, "§4.8"));
    /* The reference and the fast path refuse it too, before writing. */
    float *w = calloc(384 * 96, sizeof *w);
    uint8_t out[1];
    uint16_t sc[1];
    ck_assert_int_eq(tc_woq_quantize_ref(w, TC_DT_F32, 384, 96, 4, 80, out, sc), TC_E_INPUT);
    ck_assert_int_eq(tc_woq_quantize_rows(w, TC_DT_F32, 384, 96, 4, 80, 0, out, sc), TC_E_INPUT);
    free(w);
    /* int8 K = 96 on sm80 also fails (interleave), but is fine on sm70/sm90. */
    ck_assert_int_eq(tc_woq_check_shape("t", 128, 96, 8, 80), TC_E_INPUT);
    ck_assert_int_eq(tc_woq_check_shape("t", 128, 96, 8, 70), TC_OK);
    ck_assert_int_eq(tc_woq_check_shape("t", 128, 96, 8, 90), TC_OK);
    /* int4 K = 96 fails everywhere (sub-byte transpose needs K*4/8 % 32). */
    tc_clear_first_error();
    ck_assert_int_eq(tc_woq_check_shape("t", 128, 96, 4, 90), TC_E_INPUT);
    ck_assert_ptr_nonnull(strstr(tc_first_error(), "sub-byte transpose"));
}
END_TEST

START_TEST(check_shape_should_refuse_n_not_multiple_of_64_on_sm80)
{
    tc_log_set_quiet(1);
    tc_clear_first_error();
    ck_assert_int_eq(tc_woq_check_shape("mlp.fc.weight", 96, 128, 8, 80), TC_E_INPUT);
    const char *m = tc_first_error();
    ck_assert_ptr_nonnull(strstr(m, "mlp.fc.weight: int8 for sm80"));
    ck_assert_ptr_nonnull(strstr(m, "output dimension N (here 96"));
    ck_assert_ptr_nonnull(strstr(m, "multiple of 64"));
    ck_assert_ptr_nonnull(strstr(m, "column interleave"));
    /* tp=8 fc of LLaMA-2-7B: N = 1376 = 21.5 * 64 (§7). */
    ck_assert_int_eq(tc_woq_check_shape("mlp.fc.weight", 1376, 4096, 4, 86), TC_E_INPUT);
    ck_assert_int_eq(tc_woq_check_shape("mlp.fc.weight", 2752, 4096, 4, 86), TC_OK);
    ck_assert_int_eq(tc_woq_check_shape("mlp.proj.weight", 4096, 5504, 4, 80), TC_OK);
    /* Also below the Step 1 rule and on other dims. */
    ck_assert_int_eq(tc_woq_check_shape("t", 64, 16, 8, 75), TC_E_INPUT);
    ck_assert_int_eq(tc_woq_check_shape("t", 4, 64, 8, 75), TC_E_INPUT);
    ck_assert_int_eq(tc_woq_check_shape("t", 0, 64, 8, 90), TC_E_INPUT);
    ck_assert_int_eq(tc_woq_check_shape("t", 64, 0, 8, 90), TC_E_INPUT);
    ck_assert_int_eq(tc_woq_check_shape("t", 64, 64, 3, 90), TC_E_USAGE);
    ck_assert_int_eq(tc_woq_check_shape("t", INT64_MAX / 2, 64, 8, 90), TC_E_INPUT);
}
END_TEST

START_TEST(check_shape_should_accept_sm90_int8_k32_n32)
{
    tc_log_set_quiet(1);
    ck_assert_int_eq(tc_woq_check_shape("t", 32, 32, 8, 90), TC_OK);
    ck_assert_int_eq(tc_woq_check_shape("t", 32, 32, 8, 70), TC_OK);
    ck_assert_int_eq(tc_woq_check_shape("t", 32, 32, 8, 80), TC_E_INPUT);
    ck_assert_int_eq(tc_woq_check_shape("t", 32, 32, 4, 90), TC_E_INPUT);
    enum { N = 32, K = 32 };
    static float w[N * K];
    rng_state = 7;
    for (int i = 0; i < N * K; i++)
        w[i] = rng_unit();
    uint8_t *out = quantize_both(w, TC_DT_BF16, N, K, 8, 90, NULL);
    free(out);
}
END_TEST

START_TEST(check_shape_should_refuse_unsupported_sm_100)
{
    tc_log_set_quiet(1);
    tc_clear_first_error();
    ck_assert_int_eq(tc_woq_check_shape("t", 64, 64, 8, 100), TC_E_USAGE);
    ck_assert_ptr_nonnull(strstr(tc_first_error(), "unsupported --target_sm 100"));
    ck_assert_int_eq(tc_woq_check_shape("t", 64, 64, 4, 120), TC_E_USAGE);
}
END_TEST

START_TEST(quantize_rows_should_refuse_misaligned_row_ranges_and_bad_dtypes)
{
    tc_log_set_quiet(1);
    static float w[64 * 64];
    uint8_t out[64 * 64];
    float sc[64];
    ck_assert_int_eq(tc_woq_quantize_rows(w, TC_DT_F32, 2, 64, 4, 80, 2, out, sc), TC_E_INTERNAL);
    ck_assert_int_eq(tc_woq_quantize_rows(w, TC_DT_F32, 3, 64, 8, 80, 0, out, sc), TC_E_INTERNAL);
    ck_assert_int_eq(tc_woq_quantize_rows(w, TC_DT_F32, 4, 64, 4, 80, 4, out, sc), TC_OK);
    ck_assert_int_eq(tc_woq_quantize_rows(w, TC_DT_F32, 3, 64, 8, 90, 5, out, sc), TC_OK);
    ck_assert_int_eq(tc_woq_quantize_rows(w, TC_DT_F32, 0, 64, 8, 90, 0, out, sc), TC_OK);
    ck_assert_int_eq(tc_woq_quantize_rows(w, TC_DT_I8, 2, 64, 8, 90, 0, out, sc), TC_E_USAGE);
    ck_assert_int_eq(tc_woq_quantize_ref(w, TC_DT_F64, 64, 64, 8, 90, out, sc), TC_E_USAGE);
}
END_TEST


/* Reading back (woq_dequant.c): for every layout and precision, the values
 * recovered from the stored bytes are the quantized values, computed here
 * from the formula of woq.c's header (q = clamp(roundf(x / s)), s =
 * amax / 128 or / 8 in float32), and q * s is within s / 2 of x. */
START_TEST(unprocess_should_recover_the_quantized_values_on_every_layout)
{
    const int sms[] = { 70, 75, 80, 90 };
    const int64_t n = 128, k = 128;
    for (int b = 0; b < 2; b++) {
        const int bits = b ? 4 : 8;
        for (size_t si = 0; si < sizeof sms / sizeof sms[0]; si++) {
            float *wf = malloc((size_t)(n * k) * sizeof(float));
            ck_assert_ptr_nonnull(wf);
            for (int64_t i = 0; i < n * k; i++)
                wf[i] = rng_unit() * (float)(1 + i % 7);
            void *w16 = to_dtype(wf, TC_DT_F16, n * k);
            uint8_t *stored = malloc((size_t)(n * k * bits / 8));
            void *scales = malloc((size_t)n * 2);
            int8_t *q = malloc((size_t)(n * k));
            ck_assert_int_eq(tc_woq_quantize_ref(w16, TC_DT_F16, n, k, bits, sms[si], stored,
                                                 scales), TC_OK);
            ck_assert_int_eq(tc_woq_unprocess(stored, n, k, bits, sms[si], q), TC_OK);
            for (int64_t r = 0; r < n; r++) {
                float amax = 0.0f;
                for (int64_t c = 0; c < k; c++) {
                    const float a = fabsf(tc_f16_to_f32(((uint16_t *)w16)[r * k + c]));
                    amax = amax < a ? a : amax;
                }
                const float sc = amax * (bits == 8 ? (1.0f / 128.0f) : (1.0f / 8.0f));
                for (int64_t c = 0; c < k; c++) {
                    const float x = tc_f16_to_f32(((uint16_t *)w16)[r * k + c]);
                    float want = roundf(x / sc);
                    want = bits == 8 ? fmaxf(-128.0f, fminf(127.0f, want))
                                     : fmaxf(-8.0f, fminf(7.0f, want));
                    ck_assert_msg(q[r * k + c] == (int8_t)want,
                                  "sm %d int%d: q[%lld][%lld] = %d, want %d", sms[si], bits,
                                  (long long)r, (long long)c, q[r * k + c], (int)want);
                    ck_assert(fabsf((float)q[r * k + c] * sc - x) <= sc * 0.5f + 1e-6f ||
                              (float)q[r * k + c] == (bits == 8 ? 127.0f : 7.0f));
                }
            }
            free(wf), free(w16), free(stored), free(scales), free(q);
        }
    }
}
END_TEST

static Suite *woq_suite(void)
{
    Suite *s = suite_create("woq");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, hopper_int8_should_store_q_row_major_with_hand_computed_values);
    tcase_add_test(tc, hopper_int4_should_pack_element_2j_in_the_low_nibble);
    tcase_add_test(tc, zero_rows_should_give_zero_scale_and_biased_zero_on_every_layout);
    tcase_add_test(tc, scales_should_be_rounded_to_the_config_dtype_but_q_should_use_float32_s);
    tcase_add_test(tc, nan_and_inf_should_follow_upstream_std_min_max_semantics);
    tcase_add_test(tc, volta_int8_should_bias_by_128_and_swap_bytes_1_and_2);
    tcase_add_test(tc, volta_int4_should_bias_by_8_and_put_even_nibbles_first);
    tcase_add_test(tc, ampere_int8_should_read_rows_in_p_order_within_each_16_row_block);
    tcase_add_test(tc, ampere_int4_should_read_rows_in_p_order_within_each_32_row_block);
    tcase_add_test(tc, column_interleave_should_place_word_v_of_channel_n_at_the_formula_word);
    tcase_add_loop_test(tc, fast_path_should_match_reference_byte_for_byte_on_random_matrices, 0,
                        2 * N_FAMILIES);
    tcase_add_test(tc, fast_path_should_match_reference_on_a_larger_matrix_with_odd_chunks);
    tcase_add_test(tc, layout_for_sm_should_map_every_supported_arch_and_refuse_others);
    tcase_add_test(tc, row_align_should_be_the_column_interleave_factor);
    tcase_add_test(tc, check_shape_should_refuse_int4_k96_on_sm80_naming_tensor_and_rule);
    tcase_add_test(tc, check_shape_should_refuse_n_not_multiple_of_64_on_sm80);
    tcase_add_test(tc, check_shape_should_accept_sm90_int8_k32_n32);
    tcase_add_test(tc, check_shape_should_refuse_unsupported_sm_100);
    tcase_add_test(tc, quantize_rows_should_refuse_misaligned_row_ranges_and_bad_dtypes);
    tcase_add_test(tc, unprocess_should_recover_the_quantized_values_on_every_layout);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(woq_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failures ? 1 : 0;
}
