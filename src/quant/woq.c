/* woq.c: weight-only quantization (W8A16 / W4A16) into TensorRT-LLM v0.12's
 * CUTLASS mixed-GEMM byte layouts (trtllm-checkpoint.md §4.6-4.8).
 *
 * Two implementations that must agree byte for byte:
 *   tc_woq_quantize_ref  - §4.7/§4.8 literally, one whole-matrix temporary
 *                          buffer per step (clarity over speed).
 *   tc_woq_quantize_rows - the fast path: works from rows of W directly and
 *                          writes every output byte in its final place.
 *
 * Formats (all byte buffers; 32-bit words are little endian):
 *   W        [N, K] row-major, dt in {F32, F16, BF16}; row n = output channel.
 *   B = W^T  [K, N] float32 (reference only).
 *   scales   [N] of dt (F32: float32; F16/BF16: round to nearest even).
 *   unprocessed quantized B: [K, N*bits/8] bytes; int8 two's complement;
 *            int4: byte j of row k holds element n = 2j in bits 0-3 and
 *            n = 2j+1 in bits 4-7 (two's-complement nibbles).
 *   processed (the stored `...weight`): [K, N*bits/8] bytes, produced by
 *            Step 1 LDSM row permutation (Ampere only), Step 2 sub-byte
 *            transpose to [N, K] (int4 repacked along k, even k low nibble),
 *            Step 3 column interleave (Ampere only), Step 4 bias (+128 int8,
 *            +8 per nibble int4) and register interleave (Volta, Ampere;
 *            int8 bytes e0 e2 e1 e3, int4 nibble slots e0 e2 e4 e6 e1 e3 e5 e7).
 *
 * Quantization (upstream cutlass_preprocessors.cpp symmetric_quantize):
 *   amax = max_k |x|, float32, from 0.0, with std::max semantics
 *          ((a < b) ? b : a), so NaN elements never enter amax;
 *   s    = amax * (1/128) (int8) or (1/8) (int4), float32;
 *   r    = s != 0 ? roundf(x / s) : 0  (float32 division; roundf = half away
 *          from zero);
 *   int8: std::max(-128.f, std::min(127.f, r)): NaN -> 127;
 *   int4: std::max(-8, std::min(7, int(r))): int(NaN) and int(r >= 2^31)
 *          are INT_MIN on x86-64 (cvttss2si), so they give -8. (r >= 2^31
 *          cannot happen for |x| <= amax; it is emulated for completeness.)
 *
 * No -ffast-math (style.md V7): the division and rounding must be IEEE. */
#include "trtconv/quant/woq.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trtconv/core/log.h"

#define WOQ_SUPPORTED_SM "70, 72, 75, 80, 86, 87, 89, 90"

/* ---- layout selection ---------------------------------------------------- */

tc_status tc_woq_layout_for_sm(int sm, tc_woq_layout *out)
{
    tc_woq_layout l;
    switch (sm) {
    case 70:
    case 72:
        l = TC_WOQ_LAYOUT_VOLTA;
        break;
    case 75:
    case 80:
    case 86:
    case 87:
    case 89:
        l = TC_WOQ_LAYOUT_AMPERE;
        break;
    case 90:
        l = TC_WOQ_LAYOUT_HOPPER;
        break;
    default:
        return tc_fail(TC_E_USAGE, "unsupported --target_sm %d (supported: " WOQ_SUPPORTED_SM ")",
                       sm);
    }
    if (out)
        *out = l;
    return TC_OK;
}

int tc_woq_row_align(tc_woq_layout layout, int bits)
{
    if (layout == TC_WOQ_LAYOUT_AMPERE)
        return bits == 4 ? 4 : bits == 8 ? 2 : 1;
    return 1;
}

static int layout_uses_permute(tc_woq_layout l) { return l == TC_WOQ_LAYOUT_AMPERE; }
static int layout_uses_interleave(tc_woq_layout l) { return l == TC_WOQ_LAYOUT_AMPERE; }
/* 70 <= arch < 90 in v0.9-v0.12: Volta and Turing/Ampere/Ada, not Hopper. */
static int layout_uses_bias(tc_woq_layout l) { return l != TC_WOQ_LAYOUT_HOPPER; }

/* ---- preconditions (§4.8) ------------------------------------------------ */

static const char *precision_name(int bits) { return bits == 4 ? "int4" : "int8"; }

static int64_t lcm64(int64_t a, int64_t b)
{
    int64_t x = a, y = b;
    while (y) {
        int64_t t = x % y;
        x = y;
        y = t;
    }
    return a / x * b;
}

/* One divisibility rule on one dimension. */
struct woq_rule {
    const char *step;
    int64_t mult;
};

/* Collect the rules of every step `layout` uses on dimension K (dim_k = 1) or
 * N (dim_k = 0), as element multiples. Returns the count. */
static int shape_rules(tc_woq_layout layout, int bits, int dim_k, struct woq_rule *r)
{
    int c = 0;
    if (layout_uses_permute(layout)) {
        /* Step 1: K % R == 0 (R = 16 int8 / 32 int4), N % 8 == 0. */
        r[c].step = "LDSM row permutation";
        r[c++].mult = dim_k ? (bits == 8 ? 16 : 32) : 8;
    }
    /* Step 2: (K*bits/8) % 32 == 0 and (N*bits/8) % 32 == 0. */
    r[c].step = "sub-byte transpose";
    r[c++].mult = 256 / bits;
    if (layout_uses_interleave(layout)) {
        /* Step 3: K % 64 == 0, K % (32/bits) == 0; N % 64 == 0 (upstream's
         * num_cols % rows_per_tile; K % 64 because a partial tile writes out
         * of bounds upstream). */
        if (dim_k) {
            r[c].step = "column interleave";
            r[c++].mult = 32 / bits;
        }
        r[c].step = "column interleave";
        r[c++].mult = 64;
    }
    return c;
}

/* Check the dimension, return TC_OK or fail with the message naming the
 * failing rules and the full required multiple. */
static tc_status check_dim(const char *tensor, int64_t n, int64_t k, int bits, int sm,
                           tc_woq_layout layout, int dim_k)
{
    struct woq_rule rules[8];
    int nr = shape_rules(layout, bits, dim_k, rules);
    int64_t v = dim_k ? k : n;
    int64_t need = 1;
    char steps[160] = "";
    size_t used = 0;
    for (int i = 0; i < nr; i++) {
        need = lcm64(need, rules[i].mult);
        if (v % rules[i].mult == 0 || strstr(steps, rules[i].step))
            continue;
        int w = snprintf(steps + used, sizeof steps - used, "%s%s", used ? ", " : "",
                         rules[i].step);
        if (w > 0 && (size_t)w < sizeof steps - used)
            used += (size_t)w;
    }
    if (v % need == 0)
        return TC_OK;
    return tc_fail(TC_E_INPUT,
                   "%s: %s for sm%d needs the %s dimension %s (here %lld, from HF shape [N=%lld, "
                   "K=%lld] after the tp split) to be a multiple of %lld (%s, "
                   "trtllm-checkpoint.md §4.8)",
                   tensor, precision_name(bits), sm, dim_k ? "input" : "output", dim_k ? "K" : "N",
                   (long long)v, (long long)n, (long long)k, (long long)need, steps);
}

/* All preconditions; check_n = 0 skips the rules on N (row ranges of the
 * fast path, whose full N is not known here). */
static tc_status check_shape_impl(const char *tensor, int64_t n, int64_t k, int bits, int sm,
                                  int check_n, tc_woq_layout *layout_out)
{
    tc_woq_layout layout;
    tc_status st;
    if (!tensor)
        tensor = "weight";
    if (bits != 4 && bits != 8)
        return tc_fail(TC_E_USAGE, "%s: weight-only quantization supports 8 or 4 bits, not %d",
                       tensor, bits);
    st = tc_woq_layout_for_sm(sm, &layout);
    if (st != TC_OK)
        return st;
    if (k <= 0 || n < 0 || (check_n && n == 0))
        return tc_fail(TC_E_INPUT, "%s: %s needs a non-empty weight, HF shape is [N=%lld, K=%lld]",
                       tensor, precision_name(bits), (long long)n, (long long)k);
    /* The reference holds B as float32 [K, N]: keep 4*N*K within int64/size_t. */
    int64_t lim = INT64_MAX / 8;
    if ((uint64_t)lim > SIZE_MAX / 8)
        lim = (int64_t)(SIZE_MAX / 8);
    if (n > lim / k)
        return tc_fail(TC_E_INPUT, "%s: HF shape [N=%lld, K=%lld] is too large", tensor,
                       (long long)n, (long long)k);
    st = check_dim(tensor, n, k, bits, sm, layout, 1);
    if (st != TC_OK)
        return st;
    if (check_n) {
        st = check_dim(tensor, n, k, bits, sm, layout, 0);
        if (st != TC_OK)
            return st;
        /* Step 4: int8 element count % 4, int4 byte count % 4. */
        if (layout_uses_bias(layout)) {
            int64_t count = bits == 8 ? n * k : n * k / 2;
            if (count % 4 != 0)
                return tc_fail(TC_E_INPUT,
                               "%s: %s for sm%d needs the %s count (here %lld, from HF shape "
                               "[N=%lld, K=%lld]) to be a multiple of 4 (bias and register "
                               "interleave, trtllm-checkpoint.md §4.8)",
                               tensor, precision_name(bits), sm, bits == 8 ? "element" : "byte",
                               (long long)count, (long long)n, (long long)k);
        }
    }
    if (layout_out)
        *layout_out = layout;
    return TC_OK;
}

tc_status tc_woq_check_shape(const char *tensor, int64_t n, int64_t k, int bits, int sm)
{
    return check_shape_impl(tensor, n, k, bits, sm, 1, NULL);
}

static tc_status check_dtype(tc_dtype dt)
{
    if (dt != TC_DT_F32 && dt != TC_DT_F16 && dt != TC_DT_BF16)
        return tc_fail(TC_E_USAGE, "weight-only quantization takes F32, F16 or BF16 weights, not %s",
                       tc_dtype_name(dt));
    return TC_OK;
}

static void store_scale(void *scales, int64_t i, tc_dtype dt, float s)
{
    uint8_t *p = scales;
    if (dt == TC_DT_F32) {
        memcpy(p + 4 * i, &s, 4);
    } else {
        uint16_t h = dt == TC_DT_F16 ? tc_f32_to_f16(s) : tc_f32_to_bf16(s);
        memcpy(p + 2 * i, &h, 2);
    }
}

/* ---- reference ------------------------------------------------------------ */

/* Step 1 maps: output row t of each R-row block = input row base + P[t]. */
static const int ref_perm_int8[16] = { 0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15 };
static const int ref_perm_int4[32] = { 0,  1,  8,  9,  16, 17, 24, 25, 2,  3,  10,
                                       11, 18, 19, 26, 27, 4,  5,  12, 13, 20, 21,
                                       28, 29, 6,  7,  14, 15, 22, 23, 30, 31 };

static float ref_load(const void *w, tc_dtype dt, int64_t i)
{
    const uint8_t *p = w;
    if (dt == TC_DT_F32) {
        float f;
        memcpy(&f, p + 4 * i, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    return dt == TC_DT_F16 ? tc_f16_to_f32(h) : tc_bf16_to_f32(h);
}

/* One element, exactly as upstream (see the top of the file). */
static int ref_quantize(float x, float s, int bits)
{
    float r = (s != 0.0f) ? roundf(x / s) : 0.0f;
    if (bits == 8) {
        float m = (r < 127.0f) ? r : 127.0f;   /* std::min(127.f, r) */
        m = (-128.0f < m) ? m : -128.0f;       /* std::max(-128.f, m) */
        return (int)m;
    }
    int32_t iv;
    if (r >= -2147483648.0f && r < 2147483648.0f)
        iv = (int32_t)r;
    else
        iv = INT32_MIN; /* int(NaN), int(out of range): x86-64 cvttss2si */
    if (iv > 7)
        iv = 7;
    if (iv < -8)
        iv = -8;
    return iv;
}

static int ref_nibble(const uint8_t *buf, int64_t elem)
{
    return (buf[elem / 2] >> (4 * (elem % 2))) & 0xF;
}

static void ref_set_nibble(uint8_t *buf, int64_t elem, int v)
{
    buf[elem / 2] = (uint8_t)(buf[elem / 2] | ((v & 0xF) << (4 * (elem % 2))));
}

tc_status tc_woq_quantize_ref(const void *w, tc_dtype dt, int64_t n, int64_t k, int bits,
                              int sm, uint8_t *out, void *scales)
{
    tc_status st;
    tc_woq_layout layout;
    float *b = NULL;      /* B = W^T, [K, N] float32 */
    float *s = NULL;      /* [N] float32 scales */
    uint8_t *u = NULL;    /* unprocessed quantized B, [K, N*bits/8] */
    uint8_t *p1 = NULL;   /* after Step 1, [K, N*bits/8] */
    uint8_t *p2 = NULL;   /* after Step 2, [N, K*bits/8] */
    uint8_t *p3 = NULL;   /* after Step 3 */
    uint8_t *p4 = NULL;   /* after Step 4 */
    const uint8_t *cur;

    st = check_shape_impl("weight (reference)", n, k, bits, sm, 1, &layout);
    if (st != TC_OK)
        return st;
    st = check_dtype(dt);
    if (st != TC_OK)
        return st;

    const int64_t K = k, N = n;
    const int64_t nbytes = K * N * bits / 8;
    b = malloc((size_t)(K * N) * sizeof *b);
    s = malloc((size_t)N * sizeof *s);
    u = calloc((size_t)nbytes, 1);
    p1 = calloc((size_t)nbytes, 1);
    p2 = calloc((size_t)nbytes, 1);
    p3 = calloc((size_t)nbytes, 1);
    p4 = calloc((size_t)nbytes, 1);
    if (!b || !s || !u || !p1 || !p2 || !p3 || !p4) {
        st = tc_fail(TC_E_INTERNAL, "out of memory in the weight-only reference ([N=%lld, K=%lld])",
                     (long long)N, (long long)K);
        goto done;
    }

    /* B = transpose(W) in float32. */
    for (int64_t kk = 0; kk < K; kk++)
        for (int64_t nn = 0; nn < N; nn++)
            b[kk * N + nn] = ref_load(w, dt, nn * K + kk);

    /* Per column n of B: amax, s (§4.7). */
    for (int64_t nn = 0; nn < N; nn++) {
        float amax = 0.0f;
        for (int64_t kk = 0; kk < K; kk++) {
            float a = fabsf(b[kk * N + nn]);
            amax = (amax < a) ? a : amax; /* std::max(amax, a) */
        }
        s[nn] = amax * (bits == 8 ? (1.0f / 128.0f) : (1.0f / 8.0f));
        store_scale(scales, nn, dt, s[nn]);
    }

    /* Quantize and pack into the unprocessed [K, N*bits/8] buffer. */
    for (int64_t kk = 0; kk < K; kk++) {
        for (int64_t nn = 0; nn < N; nn++) {
            int q = ref_quantize(b[kk * N + nn], s[nn], bits);
            if (bits == 8)
                u[kk * N + nn] = (uint8_t)(int8_t)q;
            else
                ref_set_nibble(u, kk * N + nn, q); /* n = 2j low, 2j+1 high */
        }
    }
    cur = u;

    /* Step 1: LDSM row permutation, whole rows of N*bits/8 bytes. */
    if (layout_uses_permute(layout)) {
        const int R = bits == 8 ? 16 : 32;
        const int *P = bits == 8 ? ref_perm_int8 : ref_perm_int4;
        const int64_t row_bytes = N * bits / 8; /* = words_per_row * 4 */
        for (int64_t base = 0; base < K; base += R)
            for (int t = 0; t < R; t++)
                memcpy(p1 + (base + t) * row_bytes, cur + (base + P[t]) * row_bytes,
                       (size_t)row_bytes);
        cur = p1;
    }

    /* Step 2: sub-byte transpose [K, N] -> [N, K]. */
    for (int64_t kk = 0; kk < K; kk++) {
        for (int64_t nn = 0; nn < N; nn++) {
            if (bits == 8)
                p2[nn * K + kk] = cur[kk * N + nn];
            else
                ref_set_nibble(p2, nn * K + kk, ref_nibble(cur, kk * N + nn));
        }
    }
    cur = p2;

    /* Step 3: column interleave, in 32-bit words. */
    if (layout_uses_interleave(layout)) {
        const int64_t I = tc_woq_row_align(layout, bits);
        const int64_t Vk = K / (32 / bits);
        const int64_t Vt = 64 / (32 / bits);
        for (int64_t nn = 0; nn < N; nn++) {
            for (int64_t v = 0; v < Vk; v++) {
                int64_t out_col = nn / I;
                int64_t base = (v / Vt) * Vt;
                int64_t out_word = I * base + Vt * (nn % I) + (v % Vt);
                memcpy(p3 + 4 * (out_col * (Vk * I) + out_word), cur + 4 * (nn * Vk + v), 4);
            }
        }
        cur = p3;
    }

    /* Step 4: bias and register interleave. */
    if (layout_uses_bias(layout)) {
        if (bits == 8) {
            for (int64_t i = 0; i < nbytes; i++)
                p4[i] = (uint8_t)((int8_t)cur[i] + 128);
            for (int64_t base = 0; base < nbytes; base += 4) {
                uint8_t t = p4[base + 1];
                p4[base + 1] = p4[base + 2];
                p4[base + 2] = t;
            }
        } else {
            for (int64_t i = 0; i < nbytes; i++) {
                int lo = cur[i] & 0xF, hi = cur[i] >> 4;
                lo = (lo >= 8 ? lo - 16 : lo) + 8; /* signed nibble + 8 */
                hi = (hi >= 8 ? hi - 16 : hi) + 8;
                p4[i] = (uint8_t)(lo | (hi << 4));
            }
            for (int64_t base = 0; base < nbytes; base += 4) {
                uint32_t reg = (uint32_t)p4[base] | (uint32_t)p4[base + 1] << 8 |
                               (uint32_t)p4[base + 2] << 16 | (uint32_t)p4[base + 3] << 24;
                uint32_t t = 0;
                for (int dest = 0; dest < 8; dest++) {
                    int src = dest < 4 ? 2 * dest : 2 * (dest - 4) + 1;
                    t |= ((reg >> (4 * src)) & 0xFu) << (4 * dest);
                }
                for (int j = 0; j < 4; j++)
                    p4[base + j] = (uint8_t)(t >> (8 * j));
            }
        }
        cur = p4;
    }

    memcpy(out, cur, (size_t)nbytes);

done:
    free(b);
    free(s);
    free(u);
    free(p1);
    free(p2);
    free(p3);
    free(p4);
    return st;
}

/* ---- fast path ------------------------------------------------------------- */

/* After the transpose, row n of W becomes a "column" of K elements. Every
 * layout moves elements only within aligned tiles of TILE k-values of one
 * row: Step 1 within 16/32-row blocks, Step 3 within 64-element tiles (word
 * v / Vt = k / 64), Step 4 within 32-bit words. So for row n and tile t the
 * output is one contiguous chunk of TILE*bits/8 bytes at
 *   (n / I) * I * row_bytes + (t * I + n % I) * tile_bytes
 * (row_bytes = K*bits/8; I = 1 for Volta/Hopper) whose element p comes from
 * element gather[p] of the tile. TILE = 64 for Ampere (the interleave tile),
 * 32 otherwise (K need only be a multiple of 32 for int8 there). */
struct woq_plan {
    int bits;
    int64_t I;          /* column interleave */
    int tile;           /* k-values per tile */
    int64_t tile_bytes; /* tile * bits / 8 */
    int bias;           /* 128 / 8, or 0 for Hopper */
    uint8_t gather[64]; /* chunk element p <- tile element gather[p] */
};

static void plan_init(struct woq_plan *pl, tc_woq_layout layout, int bits)
{
    const int E = 32 / bits; /* elements per 32-bit word */
    pl->bits = bits;
    pl->I = tc_woq_row_align(layout, bits);
    pl->tile = layout == TC_WOQ_LAYOUT_AMPERE ? 64 : 32;
    pl->tile_bytes = (int64_t)pl->tile * bits / 8;
    pl->bias = layout_uses_bias(layout) ? (bits == 8 ? 128 : 8) : 0;
    for (int j = 0; j < pl->tile; j++) {
        /* j = k % tile before the steps; find its final position p. */
        int jp = j; /* position after Step 1 (k') */
        if (layout_uses_permute(layout)) {
            const int R = bits == 8 ? 16 : 32;
            const int *P = bits == 8 ? ref_perm_int8 : ref_perm_int4;
            for (int t = 0; t < R; t++)
                if (P[t] == j % R)
                    jp = (j / R) * R + t;
        }
        int e = jp % E, p = jp;
        if (layout_uses_bias(layout)) {
            /* Step 4: element e of a word goes to slot S(e). int8: e0 e2 e1
             * e3 (swap 1 and 2); int4: slots hold e0 e2 e4 e6 e1 e3 e5 e7. */
            int slot = bits == 8 ? (e == 1 ? 2 : e == 2 ? 1 : e) : (e % 2 ? 4 + e / 2 : e / 2);
            p = (jp / E) * E + slot;
        }
        pl->gather[p] = (uint8_t)j;
    }
}

/* q for one row of float32 values, biased and masked to the stored width:
 * int8 -> (uint8)(q + bias); int4 -> (q + bias) & 0xF. Same results as
 * ref_quantize for every input including NaN/Inf; rounding half away from
 * zero is done by hand (trunc + exact fraction) to avoid a libm call:
 * clamping before rounding equals clamping after it for these ranges. */
static void quantize_row_int8(const float *x, int64_t k, float s, int bias, uint8_t *q)
{
    if (s == 0.0f) {
        memset(q, (uint8_t)bias, (size_t)k);
        return;
    }
    for (int64_t i = 0; i < k; i++) {
        float y = x[i] / s;
        float m = (y < 127.0f) ? y : 127.0f;  /* NaN -> 127 as upstream */
        m = (-128.0f < m) ? m : -128.0f;
        int32_t t = (int32_t)m;
        float f = m - (float)t; /* exact */
        t += (f >= 0.5f) - (f <= -0.5f);
        q[i] = (uint8_t)(t + bias);
    }
}

static void quantize_row_int4(const float *x, int64_t k, float s, int bias, uint8_t *q)
{
    if (s == 0.0f) {
        memset(q, (uint8_t)(bias & 0xF), (size_t)k);
        return;
    }
    for (int64_t i = 0; i < k; i++) {
        float y = x[i] / s;
        /* int(NaN) / int(>= 2^31) is INT_MIN upstream -> -8. */
        int bad = !(y < 2147483648.0f);
        float m = (y < 7.0f) ? y : 7.0f;
        m = (-8.0f < m) ? m : -8.0f;
        int32_t t = (int32_t)m;
        float f = m - (float)t;
        t += (f >= 0.5f) - (f <= -0.5f);
        t = bad ? -8 : t;
        q[i] = (uint8_t)((t + bias) & 0xF);
    }
}

tc_status tc_woq_quantize_rows(const void *w_rows, tc_dtype dt, int64_t rows, int64_t k,
                               int bits, int sm, int64_t n0, uint8_t *out_rows,
                               void *scales_rows)
{
    tc_status st;
    tc_woq_layout layout;
    struct woq_plan pl;
    float *x = NULL;   /* one row of W in float32, [K] */
    uint8_t *q = NULL; /* one row quantized, biased, [K] (one value per byte) */

    st = check_shape_impl("weight rows", rows, k, bits, sm, 0, &layout);
    if (st != TC_OK)
        return st;
    st = check_dtype(dt);
    if (st != TC_OK)
        return st;
    const int64_t align = tc_woq_row_align(layout, bits);
    if (n0 < 0 || n0 % align != 0 || rows % align != 0)
        return tc_fail(TC_E_INTERNAL,
                       "weight-only row range [%lld, %lld) is not aligned to %lld rows (%s, sm%d)",
                       (long long)n0, (long long)(n0 + rows), (long long)align,
                       precision_name(bits), sm);
    if (rows == 0)
        return TC_OK;

    plan_init(&pl, layout, bits);
    x = malloc((size_t)k * sizeof *x);
    q = malloc((size_t)k);
    if (!x || !q) {
        st = tc_fail(TC_E_INTERNAL, "out of memory quantizing weight rows (K=%lld)", (long long)k);
        goto done;
    }

    const size_t in_row_bytes = (size_t)k * (tc_dtype_bits(dt) / 8);
    const int64_t row_bytes = k * bits / 8;
    const int64_t ntiles = k / pl.tile;
    const uint8_t *in = w_rows;
    for (int64_t r = 0; r < rows; r++) {
        const int64_t n = n0 + r;
        tc_convert(x, TC_DT_F32, in + (size_t)r * in_row_bytes, dt, (size_t)k);

        float amax = 0.0f;
        for (int64_t i = 0; i < k; i++) {
            float a = fabsf(x[i]);
            amax = (amax < a) ? a : amax;
        }
        float s = amax * (bits == 8 ? (1.0f / 128.0f) : (1.0f / 8.0f));
        store_scale(scales_rows, r, dt, s);

        if (bits == 8)
            quantize_row_int8(x, k, s, pl.bias, q);
        else
            quantize_row_int4(x, k, s, pl.bias, q);

        uint8_t *dst_row = out_rows + ((n / pl.I) * pl.I - n0) * row_bytes +
                           (n % pl.I) * pl.tile_bytes;
        const int64_t tile_stride = pl.I * pl.tile_bytes;
        if (pl.bias == 0) {
            /* Hopper: row n of the output is q[n][0..K) packed along k. */
            if (bits == 8) {
                memcpy(dst_row, q, (size_t)k);
            } else {
                for (int64_t j = 0; j < k / 2; j++)
                    dst_row[j] = (uint8_t)(q[2 * j] | (q[2 * j + 1] << 4));
            }
            continue;
        }
        for (int64_t t = 0; t < ntiles; t++) {
            uint8_t *dst = dst_row + t * tile_stride;
            const uint8_t *src = q + t * pl.tile;
            if (bits == 8) {
                for (int p = 0; p < pl.tile; p++)
                    dst[p] = src[pl.gather[p]];
            } else {
                for (int p = 0; p < pl.tile / 2; p++)
                    dst[p] = (uint8_t)(src[pl.gather[2 * p]] | (src[pl.gather[2 * p + 1]] << 4));
            }
        }
    }

done:
    free(x);
    free(q);
    return st;
}

/* ---- scales only (--disable_weight_only_quant_plugin) ----------------------- */

tc_status tc_woq_scales_rows(const void *w_rows, tc_dtype dt, int64_t rows, int64_t k, int bits,
                             void *scales_rows)
{
    tc_status st = check_dtype(dt);
    if (st != TC_OK)
        return st;
    if (bits != 8 && bits != 4)
        return tc_fail(TC_E_USAGE, "weight-only quantization has 8 or 4 bits, not %d", bits);
    for (int64_t r = 0; r < rows; r++) {
        float amax = 0.0f;
        for (int64_t i = 0; i < k; i++) {
            float a = fabsf(ref_load(w_rows, dt, r * k + i));
            amax = (amax < a) ? a : amax; /* std::max: a NaN never wins */
        }
        store_scale(scales_rows, r, dt, amax * (bits == 8 ? (1.0f / 128.0f) : (1.0f / 8.0f)));
    }
    return TC_OK;
}
