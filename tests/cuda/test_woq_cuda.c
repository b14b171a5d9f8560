/* test_woq_cuda.c: tc_woq_quantize_rows_cuda (kernels/woq.cu) against the CPU
 * reference tc_woq_quantize_ref (src/quant/woq.c), byte for byte (style.md A9, A15
 * level 2).
 *
 * Exits 77 (ctest SKIP_RETURN_CODE) when no CUDA device is visible (A11).
 * Otherwise, for int8 and int4, target SM 70, 75, 80, 86, 89, 90, weight
 * dtype F32, F16, BF16 and (K, N) in (64, 64), (128, 192), (256, 128),
 * (4096, 1024), (16384, 64) (W = [N, K], the HF orientation; the last one
 * stages row groups above 48 KiB of shared memory, and F32 int4 for sm75-89
 * takes the kernel's unstaged fallback), one random matrix per case
 * whose rows are drawn from classes (zero rows, +-amax present, exact .5
 * rounding ties for power-of-two and 3*2^e scales, ties +-1 ulp, subnormal
 * rows, only -amax, weight-like values, NaN and +-Inf elements) is quantized
 * on the GPU with five row partitions, each compared in full (all output
 * bytes, all scales, and a guard zone after both buffers) with the reference:
 *   whole       one call for all N rows, created non-blocking stream;
 *   align       calls of tc_woq_row_align rows each, legacy default stream;
 *   uneven      aligned chunks of 1, 3, 7, 2, 13, 5 x align rows, created stream;
 *   middle      one chunk [2a, 5a) only (a = align): bytes and scales outside
 *               its range must keep the guard pattern;
 *   misaligned  whole, with input, output and scales 1 byte/element off 16-byte
 *               alignment (scalar loads and byte stores in the kernel).
 * Then argument checks (statuses as the CPU path), and the benchmark: W =
 * [14336, 4096] F16 to int8 and int4 for sm90 and sm80 layouts: kernel time
 * with CUDA events, GB/s of input and of input + output against the memory
 * bandwidth of the device, and pinned host -> device -> kernel -> host times
 * (serial, and pipelined in row chunks over 3 streams). Benchmark outputs are
 * compared with the reference too.
 *
 * Usage: test_woq_cuda [seed] [--no-bench]. Last line: "N passed, M failed";
 * exit 0 if M == 0, 1 otherwise, 77 if skipped, 2 for bad arguments. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda_runtime.h>

#include "trtconv/core/dtype.h"
#include "trtconv/kernels/cast.h"
#include "trtconv/core/log.h"
#include "trtconv/quant/woq.h"
#include "trtconv/kernels/woq.h"
#include "gpu_check.h"

#define SKIP_CODE 77
/* Guard bytes after each device buffer, and their fill pattern. */
#define GUARD 256
#define GUARD_BYTE 0xA5
/* Mismatching bytes printed per failing comparison. */
#define MAX_REPORT 8
/* Benchmark matrix: W = [BENCH_N, BENCH_K] F16 (a LLaMA-3-8B mlp.fc). */
#define BENCH_N 14336
#define BENCH_K 4096
#define BENCH_WARMUP 2
#define BENCH_ITERS 20
#define BENCH_E2E_ITERS 5
/* Rows per chunk and streams of the pipelined host->host benchmark. */
#define PIPE_ROWS 1024
#define PIPE_STREAMS 3

/* result(), cuda_ok(), g_passed, g_failed */

/* ---- random inputs ------------------------------------------------------ */

static uint64_t rng_next(uint64_t *s) /* splitmix64 */
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n). */
static uint32_t rng_below(uint64_t *s, uint32_t n) { return (uint32_t)(rng_next(s) % n); }

/* Uniform in [-1, 1). */
static float rng_sym(uint64_t *s)
{
    return (float)((double)(int64_t)rng_next(s) * 0x1p-63);
}

/* Row classes of the generator. */
enum row_class {
    RC_ZERO,       /* all zeros: s = 0, q = 0 */
    RC_PM_AMAX,    /* uniform, with +amax and -amax both present */
    RC_TIES_POW2,  /* amax = 2^e: x = (j + 0.5) * s exactly */
    RC_TIES_3,     /* amax = 3 * 2^e: x = (j + 0.5) * s exactly (s not a power of 2) */
    RC_NEAR_TIES,  /* ties +-1 ulp in float32 */
    RC_SUBNORMAL,  /* tiny values (F32/BF16: F32 subnormals; F16: F16 subnormals) */
    RC_NEG_AMAX,   /* -amax present, positives smaller: -128 / -8 */
    RC_WEIGHTS,    /* weight-like, |x| < 0.05 */
    RC_NAN,        /* weight-like with NaN elements (ignored by amax) */
    RC_INF,        /* weight-like with a +-Inf element (s = Inf) */
    RC_COUNT
};

/* Row n of W ([k] floats) for class c; `bits` picks the tie grid. */
static void gen_row(float *x, int64_t k, int bits, tc_dtype dt, enum row_class c, uint64_t *s)
{
    const int qm = bits == 8 ? 128 : 8;
    const int e = (int)rng_below(s, 13) - 6; /* amax = 2^e, e in [-6, 6] */
    float amax = ldexpf(1.0f, e);
    if (c == RC_TIES_3)
        amax *= 3.0f;
    const float step = amax / (float)qm; /* exact: qm is a power of 2 */
    for (int64_t i = 0; i < k; i++) {
        float v;
        switch (c) {
        case RC_ZERO:
            v = 0.0f;
            break;
        case RC_PM_AMAX:
            v = rng_sym(s) * amax;
            break;
        case RC_TIES_POW2:
        case RC_TIES_3:
        case RC_NEAR_TIES: {
            int j = (int)rng_below(s, (uint32_t)(2 * qm)) - qm; /* [-qm, qm) */
            v = ((float)j + 0.5f) * step;
            if (c == RC_NEAR_TIES)
                v = nextafterf(v, (rng_next(s) & 1) ? INFINITY : -INFINITY);
            break;
        }
        case RC_SUBNORMAL:
            v = rng_sym(s) * (dt == TC_DT_F16 ? 0x1p-16f : 0x1p-128f);
            break;
        case RC_NEG_AMAX:
            v = rng_sym(s) * amax * 0.5f;
            break;
        case RC_NAN:
            v = (rng_below(s, 16) == 0) ? NAN : rng_sym(s) * 0.05f;
            break;
        case RC_INF:
        case RC_WEIGHTS:
        default:
            v = rng_sym(s) * 0.05f;
            break;
        }
        x[i] = v;
    }
    /* Pin the row's extremes at random positions. */
    if (c == RC_PM_AMAX || c == RC_TIES_POW2 || c == RC_TIES_3 || c == RC_NEAR_TIES) {
        x[rng_below(s, (uint32_t)k)] = amax;
        x[rng_below(s, (uint32_t)k)] = -amax;
    } else if (c == RC_NEG_AMAX) {
        x[rng_below(s, (uint32_t)k)] = -amax;
    } else if (c == RC_INF) {
        x[rng_below(s, (uint32_t)k)] = (rng_next(s) & 1) ? INFINITY : -INFINITY;
    }
}

/* W = [n, k] of dt from random row classes (first rows: every class once). */
/* W = [n, k]: the first rows one of each class, then random classes; with
 * weights_only every row weight-like (what a checkpoint holds). */
static void gen_matrix_kind(void *w, float *tmp, tc_dtype dt, int64_t n, int64_t k, int bits,
                            uint64_t *s, bool weights_only)
{
    size_t es = tc_dtype_bits(dt) / 8;
    for (int64_t r = 0; r < n; r++) {
        enum row_class c = weights_only ? RC_WEIGHTS
                           : r < RC_COUNT ? (enum row_class)r
                                          : (enum row_class)rng_below(s, RC_COUNT);
        gen_row(tmp, k, bits, dt, c, s);
        tc_convert((uint8_t *)w + (size_t)r * (size_t)k * es, dt, tmp, TC_DT_F32, (size_t)k);
    }
}

static void gen_matrix(void *w, float *tmp, tc_dtype dt, int64_t n, int64_t k, int bits,
                       uint64_t *s)
{
    gen_matrix_kind(w, tmp, dt, n, k, bits, s, false);
}

/* ---- comparison --------------------------------------------------------- */

/* Compare got[0..n) with want; print the first mismatches. Returns 1 if equal. */
static int same_bytes(const uint8_t *got, const uint8_t *want, size_t n, const char *what,
                      const char *label)
{
    size_t bad = 0;
    int reported = 0;
    if (memcmp(got, want, n) == 0)
        return 1;
    for (size_t i = 0; i < n; i++) {
        if (got[i] == want[i])
            continue;
        bad++;
        if (reported++ < MAX_REPORT)
            printf("  %s: %s byte %zu: want 0x%02X got 0x%02X\n", label, what, i, want[i], got[i]);
    }
    printf("  %s: %s: %zu of %zu bytes differ\n", label, what, bad, n);
    return 0;
}

/* 1 if every byte of p[0..n) is GUARD_BYTE. */
static int all_guard(const uint8_t *p, size_t n, const char *what, const char *label)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != GUARD_BYTE) {
            printf("  %s: %s byte %zu was written (0x%02X)\n", label, what, i, p[i]);
            return 0;
        }
    }
    return 1;
}

/* ---- one case ----------------------------------------------------------- */

enum partition { P_WHOLE, P_ALIGN, P_UNEVEN, P_MIDDLE, P_MISALIGNED, P_COUNT };
static const char *const partition_name[P_COUNT] = { "whole", "align", "uneven", "middle",
                                                     "misaligned" };

/* Device buffers of one case: input (1 spare element for the misaligned
 * run), output and scales (16 spare bytes + GUARD each). */
struct dev_bufs {
    uint8_t *w, *out, *sc;
};

/* Run one partition of the case on the GPU and compare with the reference
 * (want, want_sc). Returns 1 if everything matches. */
static int run_partition(enum partition p, const struct dev_bufs *d, const void *w_host,
                         tc_dtype dt, int64_t n, int64_t k, int bits, int sm, int64_t align,
                         const uint8_t *want, const uint8_t *want_sc, uint8_t *got,
                         uint8_t *got_sc, cudaStream_t stream, const char *label)
{
    static const int uneven[] = { 1, 3, 7, 2, 13, 5 };
    const size_t es = tc_dtype_bits(dt) / 8;
    const size_t in_bytes = (size_t)n * (size_t)k * es;
    const size_t out_bytes = (size_t)n * (size_t)k * (size_t)bits / 8;
    const size_t sc_bytes = (size_t)n * es;
    const size_t ioff = p == P_MISALIGNED ? es : 0; /* input offset, bytes */
    const size_t ooff = p == P_MISALIGNED ? 1 : 0;  /* output offset, bytes */
    const size_t soff = p == P_MISALIGNED ? es : 0; /* scales offset, bytes */
    const int64_t row_in = k * (int64_t)es, row_out = k * bits / 8;
    int64_t m0 = 0, m1 = n; /* rows written (middle: [2a, 5a)) */
    tc_status st = TC_OK;
    int ok = 1;
    char plabel[160];

    snprintf(plabel, sizeof plabel, "%s %s", label, partition_name[p]);
    if (!cuda_ok(cudaMemset(d->out, GUARD_BYTE, out_bytes + 16 + GUARD), "cudaMemset out") ||
        !cuda_ok(cudaMemset(d->sc, GUARD_BYTE, sc_bytes + 16 + GUARD), "cudaMemset scales") ||
        !cuda_ok(cudaMemcpy(d->w + ioff, w_host, in_bytes, cudaMemcpyHostToDevice),
                 "cudaMemcpy H2D") ||
        /* The memsets run on the default stream and a pageable H2D copy may
         * return before its DMA lands; the launches below may run on a
         * non-blocking stream that waits for neither. */
        !cuda_ok(cudaDeviceSynchronize(), "cudaDeviceSynchronize"))
        return 0;

    switch (p) {
    case P_WHOLE:
    case P_MISALIGNED:
        st = tc_woq_quantize_rows_cuda(d->w + ioff, dt, n, k, bits, sm, 0, d->out + ooff,
                                       d->sc + soff, (void *)stream);
        break;
    case P_ALIGN:
        for (int64_t r = 0; r < n && st == TC_OK; r += align)
            st = tc_woq_quantize_rows_cuda(d->w + r * row_in, dt, align, k, bits, sm, r,
                                           d->out + r * row_out, d->sc + (size_t)r * es, NULL);
        break;
    case P_UNEVEN: {
        int i = 0;
        for (int64_t r = 0; r < n && st == TC_OK; i++) {
            int64_t rows = uneven[i % 6] * align;
            if (rows > n - r)
                rows = n - r;
            st = tc_woq_quantize_rows_cuda(d->w + r * row_in, dt, rows, k, bits, sm, r,
                                           d->out + r * row_out, d->sc + (size_t)r * es,
                                           (void *)stream);
            r += rows;
        }
        break;
    }
    case P_MIDDLE:
        m0 = 2 * align;
        m1 = 5 * align < n ? 5 * align : n;
        st = tc_woq_quantize_rows_cuda(d->w + m0 * row_in, dt, m1 - m0, k, bits, sm, m0,
                                       d->out + m0 * row_out, d->sc + (size_t)m0 * es,
                                       (void *)stream);
        break;
    default:
        break;
    }
    if (st != TC_OK) {
        printf("  %s: tc_woq_quantize_rows_cuda returned %s\n", plabel, tc_status_str(st));
        return 0;
    }
    if (!cuda_ok(cudaStreamSynchronize(stream), "cudaStreamSynchronize") ||
        !cuda_ok(cudaDeviceSynchronize(), "cudaDeviceSynchronize") ||
        !cuda_ok(cudaMemcpy(got, d->out, out_bytes + 16 + GUARD, cudaMemcpyDeviceToHost),
                 "cudaMemcpy D2H out") ||
        !cuda_ok(cudaMemcpy(got_sc, d->sc, sc_bytes + 16 + GUARD, cudaMemcpyDeviceToHost),
                 "cudaMemcpy D2H scales"))
        return 0;

    {
        /* Bytes [o0, o1) of the output and [s0, s1) of the scales are the
         * rows written; everything else in the buffers must be guard. */
        const size_t o0 = ooff + (size_t)(m0 * row_out), o1 = ooff + (size_t)(m1 * row_out);
        const size_t s0 = soff + (size_t)m0 * es, s1 = soff + (size_t)m1 * es;
        ok &= all_guard(got, o0, "output before the range", plabel);
        ok &= same_bytes(got + o0, want + (o0 - ooff), o1 - o0, "output", plabel);
        ok &= all_guard(got + o1, out_bytes + 16 + GUARD - o1, "output after the range", plabel);
        ok &= all_guard(got_sc, s0, "scales before the range", plabel);
        ok &= same_bytes(got_sc + s0, want_sc + (s0 - soff), s1 - s0, "scales", plabel);
        ok &= all_guard(got_sc + s1, sc_bytes + 16 + GUARD - s1, "scales after the range",
                        plabel);
    }
    return ok;
}

/* One (bits, sm, dt, K, N) case: all partitions. */
static void run_case(int bits, int sm, tc_dtype dt, int64_t k, int64_t n, cudaStream_t stream,
                     uint64_t seed)
{
    const size_t es = tc_dtype_bits(dt) / 8;
    const size_t in_bytes = (size_t)n * (size_t)k * es;
    const size_t out_bytes = (size_t)n * (size_t)k * (size_t)bits / 8;
    const size_t sc_bytes = (size_t)n * es;
    struct dev_bufs d = { NULL, NULL, NULL };
    void *w = NULL;
    float *tmp = NULL;
    uint8_t *want = NULL, *want_sc = NULL, *got = NULL, *got_sc = NULL;
    tc_woq_layout layout;
    int64_t align;
    char label[96];
    int passed = 0;
    tc_status st;

    snprintf(label, sizeof label, "int%d sm%d %s K=%" PRId64 " N=%" PRId64, bits, sm,
             tc_dtype_name(dt), k, n);
    w = malloc(in_bytes);
    tmp = malloc((size_t)k * sizeof *tmp);
    want = malloc(out_bytes);
    want_sc = malloc(sc_bytes);
    got = malloc(out_bytes + 16 + GUARD);
    got_sc = malloc(sc_bytes + 16 + GUARD);
    if (!w || !tmp || !want || !want_sc || !got || !got_sc) {
        result(0, "%s: out of host memory", label);
        goto done;
    }
    gen_matrix(w, tmp, dt, n, k, bits, &seed);
    st = tc_woq_quantize_ref(w, dt, n, k, bits, sm, want, want_sc);
    if (st != TC_OK || tc_woq_layout_for_sm(sm, &layout) != TC_OK) {
        result(0, "%s: reference failed (%s)", label, tc_status_str(st));
        goto done;
    }
    align = tc_woq_row_align(layout, bits);
    if (!cuda_ok(cudaMalloc((void **)&d.w, in_bytes + 16), "cudaMalloc w") ||
        !cuda_ok(cudaMalloc((void **)&d.out, out_bytes + 16 + GUARD), "cudaMalloc out") ||
        !cuda_ok(cudaMalloc((void **)&d.sc, sc_bytes + 16 + GUARD), "cudaMalloc scales")) {
        result(0, "%s: cannot allocate device buffers", label);
        goto done;
    }
    for (int p = 0; p < P_COUNT; p++) {
        if (run_partition((enum partition)p, &d, w, dt, n, k, bits, sm, align, want, want_sc, got,
                          got_sc, stream, label)) {
            passed++;
            g_passed++;
        } else {
            result(0, "%s %s matches tc_woq_quantize_ref", label, partition_name[p]);
        }
    }
    if (passed == P_COUNT)
        printf("ok   %s: whole, align (%" PRId64 " rows), uneven, middle, misaligned match "
               "tc_woq_quantize_ref\n",
               label, align);
    fflush(stdout);

done:
    cudaFree(d.w);
    cudaFree(d.out);
    cudaFree(d.sc);
    free(w);
    free(tmp);
    free(want);
    free(want_sc);
    free(got);
    free(got_sc);
}

/* ---- argument checks ---------------------------------------------------- */

static void check_args(cudaStream_t stream)
{
    void *d = NULL;
    tc_status st;
    tc_log_set_quiet(1);
    result(tc_woq_quantize_rows_cuda(NULL, TC_DT_F16, 0, 64, 8, 80, 0, NULL, NULL,
                                     (void *)stream) == TC_OK,
           "rows = 0 with NULL buffers queues nothing and returns TC_OK");
    st = tc_woq_quantize_rows_cuda(NULL, TC_DT_F16, 2, 64, 8, 60, 0, NULL, NULL, NULL);
    result(st == TC_E_USAGE, "sm 60 is TC_E_USAGE (got %s)", tc_status_str(st));
    st = tc_woq_quantize_rows_cuda(NULL, TC_DT_F16, 2, 64, 3, 80, 0, NULL, NULL, NULL);
    result(st == TC_E_USAGE, "bits = 3 is TC_E_USAGE (got %s)", tc_status_str(st));
    st = tc_woq_quantize_rows_cuda(NULL, TC_DT_F16, 2, 96, 8, 80, 0, NULL, NULL, NULL);
    result(st == TC_E_INPUT, "int8 sm80 K = 96 (not a multiple of 64) is TC_E_INPUT (got %s)",
           tc_status_str(st));
    st = tc_woq_quantize_rows_cuda(NULL, TC_DT_F16, 2, 96, 4, 90, 0, NULL, NULL, NULL);
    result(st == TC_E_INPUT, "int4 sm90 K = 96 (not a multiple of 64) is TC_E_INPUT (got %s)",
           tc_status_str(st));
    st = tc_woq_quantize_rows_cuda(NULL, TC_DT_I8, 2, 64, 8, 80, 0, NULL, NULL, NULL);
    result(st == TC_E_USAGE, "I8 weights are TC_E_USAGE (got %s)", tc_status_str(st));
    st = tc_woq_quantize_rows_cuda(NULL, TC_DT_F16, 4, 64, 4, 80, 2, NULL, NULL, NULL);
    result(st == TC_E_INTERNAL, "int4 sm80 n0 = 2 (align 4) is TC_E_INTERNAL (got %s)",
           tc_status_str(st));
    st = tc_woq_quantize_rows_cuda(NULL, TC_DT_F16, 3, 64, 8, 86, 0, NULL, NULL, NULL);
    result(st == TC_E_INTERNAL, "int8 sm86 rows = 3 (align 2) is TC_E_INTERNAL (got %s)",
           tc_status_str(st));
    st = tc_woq_quantize_rows_cuda(NULL, TC_DT_F16, 2, 64, 8, 90, 0, NULL, NULL, NULL);
    result(st == TC_E_USAGE, "NULL buffers with rows > 0 are TC_E_USAGE (got %s)",
           tc_status_str(st));
    /* A valid call on an unrelated buffer after the failures still works. */
    if (cuda_ok(cudaMalloc(&d, 64 * 2 * 2 + 64 * 2 + 4), "cudaMalloc")) {
        uint8_t *b = d;
        cudaMemset(b, 0, 64 * 2 * 2 + 64 * 2 + 4);
        cudaDeviceSynchronize();
        st = tc_woq_quantize_rows_cuda(b, TC_DT_F16, 2, 64, 8, 90, 0, b + 256, b + 384,
                                       (void *)stream);
        result(st == TC_OK && cuda_ok(cudaStreamSynchronize(stream), "sync"),
               "a valid call after rejected ones succeeds");
    }
    cudaFree(d);
    tc_log_set_quiet(0);
}

/* ---- benchmark ---------------------------------------------------------- */

/* Peak DRAM bandwidth in bytes/s from the device attributes (0 if unknown). */
static double peak_bandwidth(int dev)
{
    int khz = 0, bus = 0;
    if (cudaDeviceGetAttribute(&khz, cudaDevAttrMemoryClockRate, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&bus, cudaDevAttrGlobalMemoryBusWidth, dev) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0.0;
    }
    return 2.0 * (double)khz * 1e3 * (double)bus / 8.0;
}

/* Time one (bits, sm) configuration of the benchmark; check its output. */
static void bench_one(tc_dtype dt, const char *kind, int bits, int sm, const uint16_t *h_w, uint8_t *h_out, uint8_t *h_sc,
                      const uint8_t *want, const uint8_t *want_sc, uint8_t *d_w, uint8_t *d_out,
                      uint8_t *d_sc, cudaStream_t *streams, double peak)
{
    const int64_t n = BENCH_N, k = BENCH_K;
    const size_t in_bytes = (size_t)n * (size_t)k * 2;
    const size_t out_bytes = (size_t)n * (size_t)k * (size_t)bits / 8;
    const size_t sc_bytes = (size_t)n * 2;
    cudaStream_t s = streams[0];
    cudaEvent_t t0 = NULL, t1 = NULL;
    float ms = 0.0f;
    int ok = 1;
    char label[64];

    snprintf(label, sizeof label, "bench int%d sm%d [%d, %d] %s %s", bits, sm, BENCH_N,
             BENCH_K, tc_dtype_name(dt), kind);
    if (!cuda_ok(cudaEventCreate(&t0), "cudaEventCreate") ||
        !cuda_ok(cudaEventCreate(&t1), "cudaEventCreate") ||
        !cuda_ok(cudaMemcpy(d_w, h_w, in_bytes, cudaMemcpyHostToDevice), "cudaMemcpy H2D") ||
        !cuda_ok(cudaDeviceSynchronize(), "cudaDeviceSynchronize")) {
        ok = 0;
        goto done;
    }

    /* Kernel only. */
    for (int i = 0; i < BENCH_WARMUP + BENCH_ITERS && ok; i++) {
        if (i == BENCH_WARMUP)
            ok &= cuda_ok(cudaEventRecord(t0, s), "cudaEventRecord");
        ok &= tc_woq_quantize_rows_cuda(d_w, dt, n, k, bits, sm, 0, d_out, d_sc,
                                        (void *)s) == TC_OK;
    }
    if (!ok || !cuda_ok(cudaEventRecord(t1, s), "cudaEventRecord") ||
        !cuda_ok(cudaEventSynchronize(t1), "cudaEventSynchronize") ||
        !cuda_ok(cudaEventElapsedTime(&ms, t0, t1), "cudaEventElapsedTime")) {
        ok = 0;
        goto done;
    }
    {
        double t = (double)ms / BENCH_ITERS * 1e-3;
        double gin = (double)in_bytes / t / 1e9;
        double gio = (double)(in_bytes + out_bytes + sc_bytes) / t / 1e9;
        printf("%s kernel: %.1f us; input %.0f GB/s, input+output %.0f GB/s", label, t * 1e6,
               gin, gio);
        if (peak > 0)
            printf(" = %.0f%% of the %.0f GB/s peak", 100.0 * gio * 1e9 / peak, peak / 1e9);
        printf(" (%d runs after %d warm-up)\n", BENCH_ITERS, BENCH_WARMUP);
    }
    /* Check the kernel's result. */
    if (!cuda_ok(cudaMemcpy(h_out, d_out, out_bytes, cudaMemcpyDeviceToHost), "D2H") ||
        !cuda_ok(cudaMemcpy(h_sc, d_sc, sc_bytes, cudaMemcpyDeviceToHost), "D2H")) {
        ok = 0;
        goto done;
    }
    ok &= same_bytes(h_out, want, out_bytes, "output", label);
    ok &= same_bytes(h_sc, want_sc, sc_bytes, "scales", label);

    /* Pinned host slice -> device -> kernel -> host bytes, serial. */
    memset(h_out, 0, out_bytes);
    if (!cuda_ok(cudaEventRecord(t0, s), "cudaEventRecord")) {
        ok = 0;
        goto done;
    }
    for (int i = 0; i < BENCH_E2E_ITERS && ok; i++) {
        ok &= cuda_ok(cudaMemcpyAsync(d_w, h_w, in_bytes, cudaMemcpyHostToDevice, s), "H2D");
        ok &= tc_woq_quantize_rows_cuda(d_w, dt, n, k, bits, sm, 0, d_out, d_sc,
                                        (void *)s) == TC_OK;
        ok &= cuda_ok(cudaMemcpyAsync(h_out, d_out, out_bytes, cudaMemcpyDeviceToHost, s), "D2H");
        ok &= cuda_ok(cudaMemcpyAsync(h_sc, d_sc, sc_bytes, cudaMemcpyDeviceToHost, s), "D2H");
    }
    if (!ok || !cuda_ok(cudaEventRecord(t1, s), "cudaEventRecord") ||
        !cuda_ok(cudaEventSynchronize(t1), "cudaEventSynchronize") ||
        !cuda_ok(cudaEventElapsedTime(&ms, t0, t1), "cudaEventElapsedTime")) {
        ok = 0;
        goto done;
    }
    {
        double t = (double)ms / BENCH_E2E_ITERS * 1e-3;
        printf("%s host->host serial (H2D + kernel + D2H, pinned): %.2f ms; %.1f GB/s of input "
               "weights\n",
               label, t * 1e3, (double)in_bytes / t / 1e9);
    }
    ok &= same_bytes(h_out, want, out_bytes, "host->host output", label);
    ok &= same_bytes(h_sc, want_sc, sc_bytes, "host->host scales", label);

    /* Pipelined: row chunks round-robin over PIPE_STREAMS streams, so copies
     * in both directions overlap the kernels of other chunks. */
    memset(h_out, 0, out_bytes);
    {
        double t_start, t;
        if (!cuda_ok(cudaDeviceSynchronize(), "cudaDeviceSynchronize")) {
            ok = 0;
            goto done;
        }
        t_start = tc_now_seconds();
        for (int it = 0; it < BENCH_E2E_ITERS && ok; it++) {
            int c = 0;
            for (int64_t r = 0; r < n && ok; r += PIPE_ROWS, c++) {
                cudaStream_t cs = streams[c % PIPE_STREAMS];
                int64_t rows = n - r < PIPE_ROWS ? n - r : PIPE_ROWS;
                size_t ib = (size_t)r * (size_t)k * 2, ob = (size_t)r * (size_t)k * (size_t)bits / 8;
                ok &= cuda_ok(cudaMemcpyAsync(d_w + ib, (const uint8_t *)h_w + ib,
                                              (size_t)rows * (size_t)k * 2,
                                              cudaMemcpyHostToDevice, cs), "H2D");
                ok &= tc_woq_quantize_rows_cuda(d_w + ib, dt, rows, k, bits, sm, r,
                                                d_out + ob, d_sc + (size_t)r * 2,
                                                (void *)cs) == TC_OK;
                ok &= cuda_ok(cudaMemcpyAsync(h_out + ob, d_out + ob,
                                              (size_t)rows * (size_t)k * (size_t)bits / 8,
                                              cudaMemcpyDeviceToHost, cs), "D2H");
                ok &= cuda_ok(cudaMemcpyAsync(h_sc + (size_t)r * 2, d_sc + (size_t)r * 2,
                                              (size_t)rows * 2, cudaMemcpyDeviceToHost, cs), "D2H");
            }
        }
        if (!ok || !cuda_ok(cudaDeviceSynchronize(), "cudaDeviceSynchronize")) {
            ok = 0;
            goto done;
        }
        t = (tc_now_seconds() - t_start) / BENCH_E2E_ITERS;
        printf("%s host->host pipelined (%d-row chunks, %d streams): %.2f ms; %.1f GB/s of input "
               "weights\n",
               label, PIPE_ROWS, PIPE_STREAMS, t * 1e3, (double)in_bytes / t / 1e9);
    }
    ok &= same_bytes(h_out, want, out_bytes, "pipelined output", label);
    ok &= same_bytes(h_sc, want_sc, sc_bytes, "pipelined scales", label);

done:
    result(ok, "%s runs and all its outputs match tc_woq_quantize_ref", label);
    if (t0)
        cudaEventDestroy(t0);
    if (t1)
        cudaEventDestroy(t1);
}

static void bench(int dev, uint64_t seed)
{
    static const int cfg[][2] = { { 8, 90 }, { 4, 90 }, { 8, 80 }, { 4, 80 } };
    const int64_t n = BENCH_N, k = BENCH_K;
    const size_t in_bytes = (size_t)n * (size_t)k * 2;
    const size_t out_max = (size_t)n * (size_t)k;
    uint16_t *h_w = NULL;
    uint8_t *h_out = NULL, *h_sc = NULL, *want = NULL, *want_sc = NULL;
    uint8_t *d_w = NULL, *d_out = NULL, *d_sc = NULL;
    float *tmp = NULL;
    cudaStream_t streams[PIPE_STREAMS] = { NULL };
    double peak = peak_bandwidth(dev);
    struct cudaDeviceProp prop;

    if (cudaGetDeviceProperties(&prop, dev) == cudaSuccess)
        printf("bench: %s, %d SMs; peak DRAM bandwidth from the device attributes: %.0f GB/s "
               "(nominal: H100 SXM 3350, H100 PCIe 2000, H200 4800 GB/s)\n",
               prop.name, prop.multiProcessorCount, peak / 1e9);
    if (!cuda_ok(cudaMallocHost((void **)&h_w, in_bytes), "cudaMallocHost") ||
        !cuda_ok(cudaMallocHost((void **)&h_out, out_max), "cudaMallocHost") ||
        !cuda_ok(cudaMallocHost((void **)&h_sc, (size_t)n * 2), "cudaMallocHost")) {
        result(0, "bench: cannot allocate pinned host memory");
        goto done;
    }
    want = malloc(out_max);
    want_sc = malloc((size_t)n * 2);
    tmp = malloc((size_t)k * sizeof *tmp);
    if (!want || !want_sc || !tmp) {
        result(0, "bench: out of host memory");
        goto done;
    }
    if (cudaMalloc((void **)&d_w, in_bytes) != cudaSuccess ||
        cudaMalloc((void **)&d_out, out_max) != cudaSuccess ||
        cudaMalloc((void **)&d_sc, (size_t)n * 2) != cudaSuccess) {
        (void)cudaGetLastError();
        printf("bench: skipped (cannot allocate %.0f MB of device memory)\n",
               (double)(in_bytes + out_max) / 1e6);
        goto done;
    }
    for (int i = 0; i < PIPE_STREAMS; i++)
        if (!cuda_ok(cudaStreamCreateWithFlags(&streams[i], cudaStreamNonBlocking),
                     "cudaStreamCreate")) {
            result(0, "bench: cannot create streams");
            goto done;
        }
    /* Rows from the random classes of the tests (weight-like values, ties,
     * zero rows, +-amax, NaN/Inf rows). */
    /* The test's row classes (ties, zero rows, tiny and NaN/Inf rows) for
     * F16 and BF16, and for BF16 also weight-like rows only: tiny-scale rows
     * take the division there (woq.cu), so the two differ. */
    static const struct { tc_dtype dt; bool weights_only; const char *kind; } runs[] = {
        { TC_DT_F16, false, "test rows" },
        { TC_DT_BF16, false, "test rows" },
        { TC_DT_BF16, true, "weight rows" },
    };
    for (size_t di = 0; di < sizeof runs / sizeof runs[0]; di++) {
        const tc_dtype dt = runs[di].dt;
        gen_matrix_kind(h_w, tmp, dt, n, k, 8, &seed, runs[di].weights_only);
        for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
            tc_status st;
            double t = tc_now_seconds();
            st = tc_woq_quantize_ref(h_w, dt, n, k, cfg[c][0], cfg[c][1], want, want_sc);
            if (st != TC_OK) {
                result(0, "bench: reference failed (%s)", tc_status_str(st));
                continue;
            }
            printf("bench int%d sm%d %s: CPU reference took %.2f s\n", cfg[c][0], cfg[c][1],
                   tc_dtype_name(dt), tc_now_seconds() - t);
            bench_one(dt, runs[di].kind, cfg[c][0], cfg[c][1], h_w, h_out, h_sc, want, want_sc, d_w, d_out,
                      d_sc, streams, peak);
        }
    }

done:
    for (int i = 0; i < PIPE_STREAMS; i++)
        if (streams[i])
            cudaStreamDestroy(streams[i]);
    cudaFreeHost(h_w);
    cudaFreeHost(h_out);
    cudaFreeHost(h_sc);
    cudaFree(d_w);
    cudaFree(d_out);
    cudaFree(d_sc);
    free(want);
    free(want_sc);
    free(tmp);
}

/* ---- main --------------------------------------------------------------- */

int main(int argc, char **argv)
{
    static const int bits_list[] = { 8, 4 };
    static const int sm_list[] = { 70, 75, 80, 86, 89, 90 };
    static const tc_dtype dt_list[] = { TC_DT_F32, TC_DT_F16, TC_DT_BF16 };
    static const int64_t shapes[][2] = { { 64, 64 },     { 128, 192 },  { 256, 128 },
                                         { 4096, 1024 }, { 16384, 64 } };
    uint64_t seed = 0x776F71ull; /* "woq" */
    int do_bench = 1, count = 0, dev = 0;
    cudaStream_t stream = NULL;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--no-bench") == 0) {
            do_bench = 0;
        } else {
            char *end;
            seed = strtoull(argv[i], &end, 0);
            if (end == argv[i] || *end) {
                fprintf(stderr, "usage: %s [seed] [--no-bench]\n", argv[0]);
                return 2;
            }
        }
    }

    if (tc_cuda_device_count(&count) != TC_OK || count == 0) {
        printf("no CUDA device: skipped\n");
        return SKIP_CODE;
    }
    {
        struct cudaDeviceProp prop;
        if (cuda_ok(cudaGetDevice(&dev), "cudaGetDevice") &&
            cudaGetDeviceProperties(&prop, dev) == cudaSuccess)
            printf("device %d: %s, sm_%d%d; seed 0x%" PRIX64 "\n", dev, prop.name, prop.major,
                   prop.minor, seed);
    }
    if (!cuda_ok(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate")) {
        g_failed++;
        goto out;
    }

    for (size_t bi = 0; bi < sizeof bits_list / sizeof bits_list[0]; bi++)
        for (size_t si = 0; si < sizeof sm_list / sizeof sm_list[0]; si++)
            for (size_t di = 0; di < sizeof dt_list / sizeof dt_list[0]; di++)
                for (size_t hi = 0; hi < sizeof shapes / sizeof shapes[0]; hi++)
                    run_case(bits_list[bi], sm_list[si], dt_list[di], shapes[hi][0],
                             shapes[hi][1], stream,
                             seed + 1000003u * (uint64_t)(((bi * 8 + si) * 4 + di) * 8 + hi));

    check_args(stream);
    for (int bits = 8; bits >= 4; bits -= 4) {
        const long long bad = tc_woq_rcp_check_cuda(bits);
        result(bad == 0, "int%d F16 x * (1/s) + FMA correction == IEEE x / s for all 65536 x "
                         "and all %d scales (%lld mismatches)",
               bits, 0x7C00, bad);
        long long pairs = 0;
        const long long bad_bf16 = tc_woq_rcp_check_bf16_cuda(bits, &pairs);
        result(bad_bf16 == 0 && pairs > 1000000000LL,
               "int%d BF16: the reciprocal form quantizes like IEEE x / s for every BF16 x with "
               "|x| <= amax, every scale in range (%lld pairs, %lld integer mismatches)",
               bits, pairs, bad_bf16);
    }
    if (do_bench)
        bench(dev, seed ^ 0xBE4Cull);

out:
    if (stream)
        cudaStreamDestroy(stream);
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
}
