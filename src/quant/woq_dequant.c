/* woq_dequant.c: the stored weight-only layouts read back (woq.h
 * tc_woq_unprocess): each preprocessing step of woq.c undone in reverse
 * order, so `trtconv eval` (docs/eval.md) can compute with the weights a
 * TensorRT-LLM engine would dequantize. Every step is a permutation of
 * bytes, 32-bit words or nibbles, plus the +128 / +8 bias: exactly
 * invertible. */
#include "trtconv/quant/woq.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "trtconv/core/log.h"

static const int perm_int8[16] = { 0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15 };
static const int perm_int4[32] = { 0,  1,  8,  9,  16, 17, 24, 25, 2,  3,  10,
                                   11, 18, 19, 26, 27, 4,  5,  12, 13, 20, 21,
                                   28, 29, 6,  7,  14, 15, 22, 23, 30, 31 };

static int nibble(const uint8_t *buf, int64_t e)
{
    return (buf[e / 2] >> (4 * (e % 2))) & 0xF;
}

tc_status tc_woq_unprocess(const uint8_t *stored, int64_t n, int64_t k, int bits, int sm,
                           int8_t *q)
{
    if (bits != 8 && bits != 4)
        return tc_fail(TC_E_USAGE, "weight-only weights have 8 or 4 bits, not %d", bits);
    tc_woq_layout layout;
    TC_TRY(tc_woq_layout_for_sm(sm, &layout));
    TC_TRY(tc_woq_check_shape("weight (reading back)", n, k, bits, sm));
    const int64_t nbytes = n * k * bits / 8;
    uint8_t *a = malloc((size_t)nbytes), *b = malloc((size_t)nbytes);
    if (!a || !b) {
        free(a);
        free(b);
        return tc_fail(TC_E_INTERNAL, "out of memory reading back a [%lld, %lld] weight",
                       (long long)n, (long long)k);
    }
    memcpy(a, stored, (size_t)nbytes);

    /* Step 4: register interleave back, then the bias off. */
    if (layout != TC_WOQ_LAYOUT_HOPPER) {
        if (bits == 8) {
            for (int64_t base = 0; base < nbytes; base += 4) {
                const uint8_t t = a[base + 1];
                a[base + 1] = a[base + 2];
                a[base + 2] = t;
            }
            for (int64_t i = 0; i < nbytes; i++)
                a[i] = (uint8_t)(int8_t)((int)a[i] - 128);
        } else {
            for (int64_t base = 0; base < nbytes; base += 4) {
                const uint32_t reg = (uint32_t)a[base] | (uint32_t)a[base + 1] << 8 |
                                     (uint32_t)a[base + 2] << 16 | (uint32_t)a[base + 3] << 24;
                uint32_t t = 0;
                for (int dest = 0; dest < 8; dest++) {
                    const int src = dest < 4 ? 2 * dest : 2 * (dest - 4) + 1;
                    t |= ((reg >> (4 * dest)) & 0xFu) << (4 * src);
                }
                for (int j = 0; j < 4; j++)
                    a[base + j] = (uint8_t)(t >> (8 * j));
            }
            for (int64_t i = 0; i < nbytes; i++) {
                const int lo = (a[i] & 0xF) - 8, hi = (a[i] >> 4) - 8;
                a[i] = (uint8_t)((lo & 0xF) | ((hi & 0xF) << 4));
            }
        }
    }
    /* Step 3: column interleave back (32-bit words). */
    if (layout == TC_WOQ_LAYOUT_AMPERE) {
        const int64_t I = tc_woq_row_align(layout, bits);
        const int64_t Vk = k / (32 / bits), Vt = 64 / (32 / bits);
        for (int64_t nn = 0; nn < n; nn++)
            for (int64_t v = 0; v < Vk; v++) {
                const int64_t out_col = nn / I, base = (v / Vt) * Vt;
                const int64_t out_word = I * base + Vt * (nn % I) + (v % Vt);
                memcpy(b + 4 * (nn * Vk + v), a + 4 * (out_col * (Vk * I) + out_word), 4);
            }
        memcpy(a, b, (size_t)nbytes);
    }
    /* Steps 2 and 1 together: the transpose to [K, N], the row permutation
     * of K, and the final [K, N] -> [N, K] compose to a permutation along k
     * within each row of a ([N, K] here): element kbase + t of row n holds
     * q[n][kbase + P[t]] (Ampere), element k holds q[n][k] (the others).
     * Read row by row, no transpose. */
    const int R = bits == 8 ? 16 : 32;
    const int *P = bits == 8 ? perm_int8 : perm_int4;
    const bool permuted = layout == TC_WOQ_LAYOUT_AMPERE;
    for (int64_t nn = 0; nn < n; nn++) {
        int8_t *qr = q + nn * k;
        for (int64_t kk = 0; kk < k; kk++) {
            const int64_t dst = permuted ? kk - kk % R + P[kk % R] : kk;
            int v;
            if (bits == 8) {
                v = (int8_t)a[nn * k + kk];
            } else {
                v = nibble(a, nn * k + kk);
                v = v >= 8 ? v - 16 : v;
            }
            qr[dst] = (int8_t)v;
        }
    }
    free(a);
    free(b);
    return TC_OK;
}
