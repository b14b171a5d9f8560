/* sha256.c: SHA-256 per FIPS 180-4 §6.2, see sha256.h. */
#include "trtconv/core/sha256.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define TC_SHA_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static inline uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void blocks_scalar(uint32_t s[8], const uint8_t *p, size_t nblocks)
{
    for (; nblocks > 0; nblocks--, p += 64) {
        uint32_t w[64];
        for (int t = 0; t < 16; t++)
            w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 |
                   (uint32_t)p[4 * t + 2] << 8 | p[4 * t + 3];
        for (int t = 16; t < 64; t++) {
            uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
            uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
            w[t] = w[t - 16] + s0 + w[t - 7] + s1;
        }
        uint32_t a = s[0], b = s[1], c = s[2], d = s[3], e = s[4], f = s[5], g = s[6], h = s[7];
        for (int t = 0; t < 64; t++) {
            uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) +
                          K[t] + w[t];
            uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            h = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
        }
        s[0] += a; s[1] += b; s[2] += c; s[3] += d;
        s[4] += e; s[5] += f; s[6] += g; s[7] += h;
    }
}

#ifdef TC_SHA_X86
/* The SHA extensions keep the state as two vectors, ABEF and CDGH, and run
 * two rounds per sha256rnds2; sha256msg1/msg2 compute the message schedule
 * four words at a time (Intel, "New Instructions Supporting the Secure Hash
 * Algorithm on Intel Architecture Processors", 2013). */
__attribute__((target("sha,sse4.1,ssse3")))
static void blocks_shani(uint32_t s[8], const uint8_t *p, size_t nblocks)
{
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i dcba = _mm_loadu_si128((const __m128i *)(const void *)&s[0]);
    __m128i hgfe = _mm_loadu_si128((const __m128i *)(const void *)&s[4]);
    __m128i cdab = _mm_shuffle_epi32(dcba, 0xB1);
    __m128i efgh = _mm_shuffle_epi32(hgfe, 0x1B);
    __m128i abef = _mm_alignr_epi8(cdab, efgh, 8);
    __m128i cdgh = _mm_blend_epi16(efgh, cdab, 0xF0);

    for (; nblocks > 0; nblocks--, p += 64) {
        const __m128i abef0 = abef, cdgh0 = cdgh;
        __m128i w[4];
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) {
            __m128i wi;
            if (i < 4) {
                wi = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(const void *)(p + 16 * i)),
                                      bswap);
            } else {
                /* w[t-16] + s0(w[t-15]) + w[t-7], then s1 of the two before. */
                __m128i x = _mm_sha256msg1_epu32(w[i & 3], w[(i - 3) & 3]);
                x = _mm_add_epi32(x, _mm_alignr_epi8(w[(i - 1) & 3], w[(i - 2) & 3], 4));
                wi = _mm_sha256msg2_epu32(x, w[(i - 1) & 3]);
            }
            w[i & 3] = wi;
            __m128i m = _mm_add_epi32(wi, _mm_loadu_si128((const __m128i *)(const void *)&K[4 * i]));
            cdgh = _mm_sha256rnds2_epu32(cdgh, abef, m);
            m = _mm_shuffle_epi32(m, 0x0E);
            abef = _mm_sha256rnds2_epu32(abef, cdgh, m);
        }
        abef = _mm_add_epi32(abef, abef0);
        cdgh = _mm_add_epi32(cdgh, cdgh0);
    }
    __m128i feba = _mm_shuffle_epi32(abef, 0x1B);
    __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);
    dcba = _mm_blend_epi16(feba, dchg, 0xF0);
    hgfe = _mm_alignr_epi8(dchg, feba, 8);
    _mm_storeu_si128((__m128i *)(void *)&s[0], dcba);
    _mm_storeu_si128((__m128i *)(void *)&s[4], hgfe);
}

static int detect_shani(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    const int sse41 = (c >> 19) & 1, ssse3 = (c >> 9) & 1;
    if (__get_cpuid_max(0, NULL) < 7)
        return 0;
    __cpuid_count(7, 0, a, b, c, d);
    return sse41 && ssse3 && ((b >> 29) & 1);
}
#endif

bool tc_sha256_hw(void)
{
#ifdef TC_SHA_X86
    static int cached = -1; /* benign race: every thread computes the same value */
    if (cached < 0)
        cached = detect_shani();
    return cached == 1;
#else
    return false;
#endif
}

static void blocks(tc_sha256 *h, const uint8_t *p, size_t nblocks)
{
#ifdef TC_SHA_X86
    if (!h->scalar_only && tc_sha256_hw()) {
        blocks_shani(h->state, p, nblocks);
        return;
    }
#endif
    blocks_scalar(h->state, p, nblocks);
}

void tc_sha256_init(tc_sha256 *h)
{
    static const uint32_t iv[8] = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 };
    const bool scalar_only = h->scalar_only;
    memset(h, 0, sizeof *h);
    memcpy(h->state, iv, sizeof iv);
    h->scalar_only = scalar_only;
}

void tc_sha256_update(tc_sha256 *h, const void *data, size_t n)
{
    const uint8_t *p = data;
    if (n == 0)
        return; /* data may be NULL */
    h->total += n;
    if (h->buf_len > 0) {
        size_t take = 64 - h->buf_len < n ? 64 - h->buf_len : n;
        memcpy(h->buf + h->buf_len, p, take);
        h->buf_len += take;
        p += take;
        n -= take;
        if (h->buf_len < 64)
            return;
        blocks(h, h->buf, 1);
        h->buf_len = 0;
    }
    if (n >= 64) {
        blocks(h, p, n / 64);
        p += n / 64 * 64;
        n %= 64;
    }
    memcpy(h->buf, p, n);
    h->buf_len = n;
}

void tc_sha256_final(tc_sha256 *h, uint8_t out[TC_SHA256_BYTES])
{
    const uint64_t bits = h->total * 8;
    uint8_t pad[72] = { 0x80 };
    size_t padlen = (h->buf_len < 56 ? 56 : 120) - h->buf_len;
    for (int i = 0; i < 8; i++)
        pad[padlen + (size_t)i] = (uint8_t)(bits >> (56 - 8 * i));
    const uint64_t total = h->total;
    tc_sha256_update(h, pad, padlen + 8);
    h->total = total;
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(h->state[i] >> 24);
        out[4 * i + 1] = (uint8_t)(h->state[i] >> 16);
        out[4 * i + 2] = (uint8_t)(h->state[i] >> 8);
        out[4 * i + 3] = (uint8_t)h->state[i];
    }
}

void tc_sha256_hex(const uint8_t digest[TC_SHA256_BYTES], char hex[TC_SHA256_HEX])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < TC_SHA256_BYTES; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[64] = '\0';
}

void tc_sha256_hex_of(const void *data, size_t n, char hex[TC_SHA256_HEX])
{
    tc_sha256 h = { .scalar_only = false };
    tc_sha256_init(&h);
    tc_sha256_update(&h, data, n);
    uint8_t d[TC_SHA256_BYTES];
    tc_sha256_final(&h, d);
    tc_sha256_hex(d, hex);
}

void tc_sha256_tree_combine(const uint8_t (*chunk_digests)[TC_SHA256_BYTES], size_t n,
                            char hex[TC_SHA256_HEX])
{
    tc_sha256_hex_of(chunk_digests, n * TC_SHA256_BYTES, hex);
}
