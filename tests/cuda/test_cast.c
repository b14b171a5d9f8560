/* test_cast.c: tc_cast_cuda (kernels/cast.cu) against the CPU reference
 * tc_convert (src/core/dtype.c), byte for byte (style.md A9, A15 level 2).
 *
 * Exits 77 (ctest SKIP_RETURN_CODE) when cudaGetDeviceCount reports no
 * device (A11). Otherwise, for each of the 9 (F32/F16/BF16 -> F32/F16/BF16)
 * pairs, each n in {0, 1, 7, 2^20, 3*2^20+5} and each buffer offset of 0
 * elements (16-byte aligned: vectorised kernel, created stream) and 1 element
 * (misaligned: scalar kernel, default stream):
 *   - the source holds special values first, then for F16/BF16 all 65536 bit
 *     patterns in order (so n >= 65536 + specials is exhaustive), then random
 *     bits; for F32 a table of edge cases, then random patterns from classes
 *     that hit NaN payloads, +-0, F32 and F16 subnormals, max, Inf, the F16
 *     overflow edge and round-to-nearest-even halfway cases of both targets;
 *   - the result must equal tc_convert's bytes, and guard elements before
 *     and after the destination range must be untouched.
 * Then 2^24 F32 patterns from the same generator are cast to F16 and BF16,
 * plus checks of n = 0 with NULL buffers, in-place same-type casts, an
 * unsupported dtype and tc_cuda_device_count.
 * Finally the throughput of a 1 GiB F32 -> F16 cast is timed with CUDA events
 * and printed (bytes read + written per second); the output is spot-checked.
 *
 * Usage: test_cast [seed]. The last line is "N passed, M failed"; the exit
 * status is 0 if M == 0, 1 otherwise, 77 if skipped. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "trtconv/core/dtype.h"
#include "trtconv/kernels/cast.h"
#include "trtconv/core/log.h"
#include "gpu_check.h"

#define SKIP_CODE 77
/* Guard elements after each destination range. */
#define GUARD 64
/* Byte the guard elements are filled with. */
#define GUARD_BYTE 0xA5
/* Mismatches printed per failing case. */
#define MAX_REPORT 8
/* Benchmark: 2^28 F32 elements = 1 GiB, filled from a 64 MiB random chunk. */
#define BENCH_N ((size_t)1 << 28)
#define BENCH_CHUNK ((size_t)1 << 24)
#define BENCH_WARMUP 2
#define BENCH_ITERS 20

/* result(), cuda_ok(), g_passed, g_failed */

/* ---- random bit patterns ------------------------------------------------ */

static uint64_t rng_next(uint64_t *s) /* splitmix64 */
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint32_t rng_u32(uint64_t *s) { return (uint32_t)(rng_next(s) >> 32); }

/* Uniform in [lo, hi]. */
static uint32_t rng_range(uint64_t *s, uint32_t lo, uint32_t hi)
{
    return lo + (uint32_t)(rng_next(s) % ((uint64_t)hi - lo + 1u));
}

static const uint16_t specials16[] = {
    0x7D55, /* F16 signalling NaN with payload / BF16 large normal */
    0x8000, 0x0000, 0x7C00, 0xFC00, 0x7E00, 0xFE00, 0x7C01, 0xFC01, 0x7FFF, 0xFFFF,
    0x0001, 0x8001, 0x03FF, 0x0400, 0x7BFF, 0xFBFF, 0x3C00, 0x3BFF,
    0x7F80, 0xFF80, 0x7FC0, 0xFFC0, 0x7F81, 0xFF81, 0x7F7F, 0x0080, 0x007F,
    0x3F80, 0x4780, 0x477F, 0x477E, 0x3380, 0x3300, 0x3301, 0x387F, 0x3880,
};
#define N_SPECIALS16 (sizeof specials16 / sizeof specials16[0])

/* Specials, then all 65536 patterns, then random bits. */
static void fill16(uint16_t *p, size_t n, uint64_t *s)
{
    for (size_t i = 0; i < n; i++) {
        if (i < N_SPECIALS16)
            p[i] = specials16[i];
        else if (i < N_SPECIALS16 + 65536)
            p[i] = (uint16_t)(i - N_SPECIALS16);
        else
            p[i] = (uint16_t)rng_u32(s);
    }
}

/* Hand-picked F32 edge cases, most telling first (n = 1 and 7 see these). */
static const uint32_t specials32[] = {
    0x7F800001u, /* signalling NaN, payload 1: F16 0x7E00, BF16 0x7FC0 */
    0xFFC12345u, /* negative quiet NaN with payload: F16 0xFE00 */
    0x477FF000u, /* 65520: first value rounding to F16 Inf */
    0x3F801000u, /* 1 + 2^-11: F16 halfway, ties to even (down) */
    0x3F803000u, /* 1 + 3*2^-11: F16 halfway, ties to even (up) */
    0x3F808000u, /* BF16 halfway, ties to even (down) */
    0x80000000u, /* -0 */
    0x00000000u, 0x7F800000u, 0xFF800000u, 0x7FC00000u, 0xFFFFFFFFu, 0x7FFFFFFFu,
    0x7F7FFFFFu, 0xFF7FFFFFu, 0x7F7F8000u, 0x7F7F7FFFu, 0x7F7F8001u,
    0x00000001u, 0x80000001u, 0x007FFFFFu, 0x00800000u, 0x00400000u,
    0x477FE000u, 0x477FEFFFu, 0x477FF001u, 0x477FFFFFu, 0x47800000u, 0xC77FF000u,
    0x38800000u, 0x387FFFFFu, 0x387FE000u, 0x387FF000u, 0x38000000u,
    0x33800000u, 0x33000000u, 0x33000001u, 0x32FFFFFFu, 0x33C00000u, 0x33400000u,
    0x3F800000u, 0xBF800000u, 0x3F801001u, 0x3F800FFFu, 0x3F808001u, 0x3F807FFFu,
    0x3F818000u, 0x3F7FFFFFu, 0x4F800000u, 0x5F000000u,
};
#define N_SPECIALS32 (sizeof specials32 / sizeof specials32[0])

/* Mantissas crossed with every exponent and sign in the deterministic
 * table: RNE edges for F16 (13 dropped bits) and BF16 (16 dropped bits). */
static const uint32_t mant_table[] = {
    0x000000u, 0x000001u, 0x000FFFu, 0x001000u, 0x001001u, 0x002000u, 0x003000u,
    0x007FFFu, 0x008000u, 0x008001u, 0x018000u, 0x3FFFFFu, 0x400000u, 0x400001u,
    0x7FE000u, 0x7FF000u, 0x7FFFFFu, 0x7F8000u, 0x7FFF80u, 0x155555u,
};
#define N_MANT (sizeof mant_table / sizeof mant_table[0])
#define N_TABLE32 (2u * 256u * N_MANT)

/* One random F32 pattern drawn from a class of interesting values. */
static uint32_t rand_f32(uint64_t *s)
{
    uint32_t r = rng_u32(s);
    uint32_t sign = (rng_u32(s) & 1u) << 31;
    uint32_t delta = rng_range(s, 0, 2); /* -1, 0, +1 around a halfway point */
    uint32_t e, m, sh;
    switch (rng_range(s, 0, 9)) {
    case 0: /* any bits */
        return r;
    case 1: /* NaN, random nonzero payload, random sign */
        m = r & 0x7FFFFFu;
        return sign | 0x7F800000u | (m ? m : 1u);
    case 2: /* the F16-relevant exponent range, random mantissa */
        return sign | (rng_range(s, 96, 145) << 23) | (r & 0x7FFFFFu);
    case 3: /* F16 normal result, halfway +-1 in the 13 dropped bits */
        e = rng_range(s, 113, 142);
        m = ((r & 0x7FE000u) | 0x1000u) + delta - 1u;
        return sign | (e << 23) | (m & 0x7FFFFFu);
    case 4: /* F16 subnormal result, halfway +-1 in the dropped bits */
        e = rng_range(s, 102, 112);
        sh = 126u - e; /* bits dropped from the 24-bit significand */
        m = (((r | 0x800000u) >> sh) << sh) | (1u << (sh - 1u));
        m = m + delta - 1u;
        return sign | (e << 23) | (m & 0x7FFFFFu);
    case 5: /* BF16 halfway +-1 in the 16 dropped bits, any exponent */
        m = ((r & 0x7F0000u) | 0x8000u) + delta - 1u;
        return sign | (rng_range(s, 0, 255) << 23) | (m & 0x7FFFFFu);
    case 6: /* F32 subnormal or zero */
        return sign | ((r & 1u) ? (r >> 9) : 0u);
    case 7: /* around the F16 overflow edge 65504 .. 65536 */
        return sign | rng_range(s, 0x477FC000u, 0x47800100u);
    case 8: /* around F32 max / Inf (BF16 overflow) */
        return sign | rng_range(s, 0x7F7F0000u, 0x7F800000u);
    default: /* +-0, +-Inf, +-max, smallest subnormal */
        switch (r % 4u) {
        case 0: return sign;
        case 1: return sign | 0x7F800000u;
        case 2: return sign | 0x7F7FFFFFu;
        default: return sign | 1u;
        }
    }
}

/* Specials, then the exponent x mantissa table, then random classes. */
static void fill32(uint32_t *p, size_t n, uint64_t *s)
{
    for (size_t i = 0; i < n; i++) {
        if (i < N_SPECIALS32) {
            p[i] = specials32[i];
        } else if (i < N_SPECIALS32 + N_TABLE32) {
            size_t k = i - N_SPECIALS32;
            uint32_t mant = mant_table[k % N_MANT];
            uint32_t exp = (uint32_t)(k / N_MANT) % 256u;
            uint32_t sign = (uint32_t)(k / (N_MANT * 256u)) << 31;
            p[i] = sign | (exp << 23) | mant;
        } else {
            p[i] = rand_f32(s);
        }
    }
}

static size_t elem_size(tc_dtype dt) { return tc_dtype_bits(dt) / 8; }

static void fill(void *p, tc_dtype dt, size_t n, uint64_t *s)
{
    if (dt == TC_DT_F32)
        fill32(p, n, s);
    else
        fill16(p, n, s);
}

/* Read element i of a buffer of type dt as bits. */
static uint32_t elem_bits(const void *p, tc_dtype dt, size_t i)
{
    if (dt == TC_DT_F32) {
        uint32_t w;
        memcpy(&w, (const uint8_t *)p + 4 * i, 4);
        return w;
    } else {
        uint16_t h;
        memcpy(&h, (const uint8_t *)p + 2 * i, 2);
        return h;
    }
}

/* ---- one case ----------------------------------------------------------- */

/* Cast n elements of src (host, type sdt) on the GPU at an offset of `off`
 * elements into fresh device buffers, on `stream`, and compare with
 * tc_convert, including the guard regions. Returns 1 if it matches. */
static int run_case(const void *src, tc_dtype sdt, tc_dtype ddt, size_t n, size_t off,
                    cudaStream_t stream, const char *label)
{
    size_t ss = elem_size(sdt), ds = elem_size(ddt);
    size_t dst_elems = off + n + GUARD;
    void *d_src = NULL, *d_dst = NULL, *want = NULL, *got = NULL;
    int ok = 0;
    tc_status st;

    want = malloc(n * ds + 1);
    got = malloc(dst_elems * ds);
    if (!want || !got) {
        printf("  out of host memory\n");
        goto done;
    }
    tc_convert(want, ddt, src, sdt, n);

    if (!cuda_ok(cudaMalloc(&d_src, (off + n + 1) * ss), "cudaMalloc src") ||
        !cuda_ok(cudaMalloc(&d_dst, dst_elems * ds), "cudaMalloc dst") ||
        !cuda_ok(cudaMemset(d_dst, GUARD_BYTE, dst_elems * ds), "cudaMemset") ||
        !cuda_ok(cudaMemcpy((uint8_t *)d_src + off * ss, src, n * ss, cudaMemcpyHostToDevice),
                 "cudaMemcpy H2D") ||
        /* The memset runs on the default stream and a pageable H2D copy may
         * return before its DMA lands; the cast below runs on a non-blocking
         * stream that does not wait for either. */
        !cuda_ok(cudaDeviceSynchronize(), "cudaDeviceSynchronize"))
        goto done;

    st = tc_cast_cuda((uint8_t *)d_dst + off * ds, ddt, (uint8_t *)d_src + off * ss, sdt, n,
                      (void *)stream);
    if (st != TC_OK) {
        printf("  tc_cast_cuda returned %s\n", tc_status_str(st));
        goto done;
    }
    if (!cuda_ok(cudaStreamSynchronize(stream), "cudaStreamSynchronize") ||
        !cuda_ok(cudaMemcpy(got, d_dst, dst_elems * ds, cudaMemcpyDeviceToHost),
                 "cudaMemcpy D2H"))
        goto done;

    ok = 1;
    {
        const uint8_t *g = got;
        for (size_t b = 0; b < off * ds; b++) {
            if (g[b] != GUARD_BYTE) {
                printf("  %s: write before dst (byte %zu)\n", label, b);
                ok = 0;
                break;
            }
        }
        for (size_t b = (off + n) * ds; b < dst_elems * ds; b++) {
            if (g[b] != GUARD_BYTE) {
                printf("  %s: write past dst[n] (byte %zu)\n", label, b - (off + n) * ds);
                ok = 0;
                break;
            }
        }
    }
    if (memcmp((const uint8_t *)got + off * ds, want, n * ds) != 0) {
        int reported = 0;
        size_t bad = 0;
        const uint8_t *g = (const uint8_t *)got + off * ds;
        for (size_t i = 0; i < n; i++) {
            uint32_t w = elem_bits(want, ddt, i), r = elem_bits(g, ddt, i);
            if (w == r)
                continue;
            bad++;
            if (reported++ < MAX_REPORT)
                printf("  %s: [%zu] src 0x%0*" PRIX32 " want 0x%0*" PRIX32 " got 0x%0*" PRIX32 "\n",
                       label, i, (int)(2 * ss), elem_bits(src, sdt, i), (int)(2 * ds), w,
                       (int)(2 * ds), r);
        }
        printf("  %s: %zu of %zu elements differ\n", label, bad, n);
        ok = 0;
    }

done:
    cudaFree(d_src);
    cudaFree(d_dst);
    free(want);
    free(got);
    return ok;
}

/* ---- benchmark ---------------------------------------------------------- */

/* Time a 1 GiB F32 -> F16 cast; print GB/s (bytes read + written). Skipped
 * (not failed) if the buffers do not fit; the output is spot-checked. */
static void bench(cudaStream_t stream, uint64_t *seed)
{
    float *h = NULL, *d_src = NULL;
    uint16_t *d_dst = NULL, *want = NULL, *got = NULL;
    cudaEvent_t t0 = NULL, t1 = NULL;
    float ms = 0.0f;
    int ok = 1, ran = 0;

    h = malloc(BENCH_CHUNK * sizeof *h);
    want = malloc(BENCH_CHUNK * sizeof *want);
    got = malloc(BENCH_CHUNK * sizeof *got);
    if (!h || !want || !got) {
        printf("bench: skipped (out of host memory)\n");
        goto done;
    }
    if (cudaMalloc((void **)&d_src, BENCH_N * sizeof *d_src) != cudaSuccess ||
        cudaMalloc((void **)&d_dst, BENCH_N * sizeof *d_dst) != cudaSuccess) {
        (void)cudaGetLastError();
        printf("bench: skipped (cannot allocate 1.5 GiB of device memory)\n");
        goto done;
    }
    ran = 1;
    /* Weight-like values: uniform in [-0.125, 0.125). */
    for (size_t i = 0; i < BENCH_CHUNK; i++)
        h[i] = (float)((double)(int32_t)rng_u32(seed) * 0x1p-34);
    for (size_t c = 0; c < BENCH_N; c += BENCH_CHUNK)
        if (!cuda_ok(cudaMemcpy(d_src + c, h, BENCH_CHUNK * sizeof *h, cudaMemcpyHostToDevice),
                     "bench cudaMemcpy H2D")) {
            ok = 0;
            goto done;
        }
    if (!cuda_ok(cudaDeviceSynchronize(), "cudaDeviceSynchronize") || /* see run_case */
        !cuda_ok(cudaEventCreate(&t0), "cudaEventCreate") ||
        !cuda_ok(cudaEventCreate(&t1), "cudaEventCreate")) {
        ok = 0;
        goto done;
    }
    for (int i = 0; i < BENCH_WARMUP; i++)
        if (tc_cast_cuda(d_dst, TC_DT_F16, d_src, TC_DT_F32, BENCH_N, (void *)stream) != TC_OK) {
            ok = 0;
            goto done;
        }
    if (!cuda_ok(cudaEventRecord(t0, stream), "cudaEventRecord")) {
        ok = 0;
        goto done;
    }
    for (int i = 0; i < BENCH_ITERS; i++)
        if (tc_cast_cuda(d_dst, TC_DT_F16, d_src, TC_DT_F32, BENCH_N, (void *)stream) != TC_OK) {
            ok = 0;
            goto done;
        }
    if (!cuda_ok(cudaEventRecord(t1, stream), "cudaEventRecord") ||
        !cuda_ok(cudaEventSynchronize(t1), "cudaEventSynchronize") ||
        !cuda_ok(cudaEventElapsedTime(&ms, t0, t1), "cudaEventElapsedTime")) {
        ok = 0;
        goto done;
    }
    {
        double per = (double)ms / BENCH_ITERS; /* ms per cast */
        double bytes = (double)BENCH_N * (sizeof(float) + sizeof(uint16_t));
        printf("bench: F32->F16 1 GiB (%zu elements): %.3f ms/cast, %.1f GB/s "
               "(read+write, 1 GB = 1e9 B; %d iterations after %d warm-up)\n",
               BENCH_N, per, bytes / (per * 1e-3) / 1e9, BENCH_ITERS, BENCH_WARMUP);
    }
    /* Spot check: the last chunk must equal the reference. */
    tc_convert(want, TC_DT_F16, h, TC_DT_F32, BENCH_CHUNK);
    if (!cuda_ok(cudaMemcpy(got, d_dst + (BENCH_N - BENCH_CHUNK), BENCH_CHUNK * sizeof *got,
                            cudaMemcpyDeviceToHost),
                 "bench cudaMemcpy D2H")) {
        ok = 0;
        goto done;
    }
    ok = memcmp(got, want, BENCH_CHUNK * sizeof *got) == 0;

done:
    if (ran)
        result(ok, "bench F32->F16 1 GiB runs and its last 16M elements match tc_convert");
    if (t0)
        cudaEventDestroy(t0);
    if (t1)
        cudaEventDestroy(t1);
    cudaFree(d_src);
    cudaFree(d_dst);
    free(h);
    free(want);
    free(got);
}

/* ---- main --------------------------------------------------------------- */

int main(int argc, char **argv)
{
    static const tc_dtype types[] = { TC_DT_F32, TC_DT_F16, TC_DT_BF16 };
    static const size_t sizes[] = { 0, 1, 7, (size_t)1 << 20, 3 * ((size_t)1 << 20) + 5 };
    const size_t max_n = (size_t)1 << 24;
    uint64_t seed = 0x7472746Eull; /* "trtn" */
    cudaStream_t stream = NULL;
    void *host_src = NULL;
    int count = 0, tc_count = -1;
    cudaError_t e;

    if (argc > 1) {
        char *end;
        seed = strtoull(argv[1], &end, 0);
        if (end == argv[1] || *end) {
            fprintf(stderr, "usage: %s [seed]\n", argv[0]);
            return 2;
        }
    }

    e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        printf("no CUDA device (%s): skipped\n",
               e != cudaSuccess ? cudaGetErrorString(e) : "cudaGetDeviceCount reports 0");
        return SKIP_CODE;
    }
    {
        struct cudaDeviceProp prop;
        if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
            printf("device 0: %s, sm_%d%d; seed 0x%" PRIX64 "\n", prop.name, prop.major,
                   prop.minor, seed);
    }

    {
        tc_status st = tc_cuda_device_count(&tc_count);
        result(st == TC_OK && tc_count == count,
               "tc_cuda_device_count gives %d like cudaGetDeviceCount (%d)", tc_count, count);
    }

    if (!cuda_ok(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate"))
        goto fail;
    host_src = malloc(max_n * 4);
    if (!host_src) {
        printf("out of host memory\n");
        goto fail;
    }

    /* Every pair x size x {aligned + own stream, misaligned + default}. */
    for (size_t si = 0; si < 3; si++) {
        for (size_t di = 0; di < 3; di++) {
            tc_dtype sdt = types[si], ddt = types[di];
            for (size_t ni = 0; ni < sizeof sizes / sizeof sizes[0]; ni++) {
                for (size_t off = 0; off < 2; off++) {
                    char label[96];
                    uint64_t s = seed + ni;
                    size_t n = sizes[ni];
                    fill(host_src, sdt, n, &s);
                    snprintf(label, sizeof label, "%s->%s n=%zu off=%zu %s",
                             tc_dtype_name(sdt), tc_dtype_name(ddt), n, off,
                             off ? "default-stream" : "stream");
                    result(run_case(host_src, sdt, ddt, n, off, off ? NULL : stream, label),
                           "%s matches tc_convert", label);
                }
            }
        }
    }

    /* 2^24 F32 patterns to each 16-bit type. */
    for (size_t di = 1; di < 3; di++) {
        char label[96];
        uint64_t s = seed ^ 0xF32F32ull;
        fill32(host_src, max_n, &s);
        snprintf(label, sizeof label, "F32->%s 2^24 edge+random patterns",
                 tc_dtype_name(types[di]));
        result(run_case(host_src, TC_DT_F32, types[di], max_n, 0, stream, label),
               "%s match tc_convert", label);
    }

    /* Argument handling. */
    result(tc_cast_cuda(NULL, TC_DT_F16, NULL, TC_DT_F32, 0, NULL) == TC_OK,
           "n = 0 with NULL buffers is a no-op");
    tc_log_set_quiet(1);
    result(tc_cast_cuda(NULL, TC_DT_I8, NULL, TC_DT_F32, 1, NULL) == TC_E_USAGE,
           "an unsupported dtype is TC_E_USAGE");
    tc_log_set_quiet(0);
    {
        /* Same type, dst == src: nothing changes. */
        uint16_t h[7], back[7];
        void *d = NULL;
        uint64_t s = seed;
        int ok = 0;
        fill16(h, 7, &s);
        if (cuda_ok(cudaMalloc(&d, sizeof h), "cudaMalloc") &&
            cuda_ok(cudaMemcpy(d, h, sizeof h, cudaMemcpyHostToDevice), "cudaMemcpy") &&
            tc_cast_cuda(d, TC_DT_BF16, d, TC_DT_BF16, 7, (void *)stream) == TC_OK &&
            cuda_ok(cudaStreamSynchronize(stream), "sync") &&
            cuda_ok(cudaMemcpy(back, d, sizeof back, cudaMemcpyDeviceToHost), "cudaMemcpy"))
            ok = memcmp(h, back, sizeof h) == 0;
        cudaFree(d);
        result(ok, "in-place same-type cast leaves the buffer as it was");
    }

    bench(stream, &seed);
    goto out;

fail:
    g_failed++;
out:
    free(host_src);
    if (stream)
        cudaStreamDestroy(stream);
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
}
