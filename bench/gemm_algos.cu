// gemm_algos.cu: which cuBLAS / cuBLASLt GEMM kernels the calibration shapes
// get, how fast each is, and whether its output equals the default's bit for
// bit (issue 23 item 3). A measuring tool, not part of trtconv:
//
//   nvcc -O2 -arch=sm_90 bench/gemm_algos.cu -o /tmp/gemm_algos -lcublasLt -lcublas
//   /tmp/gemm_algos [tokens]        # default 4096 tokens (8 sequences of 512)
//   /tmp/gemm_algos seq [tokens]    # the engine's order instead (below)
//   GEMM_SUSTAIN_MS=1000 /tmp/gemm_algos   # each timing sustained (below)
//
// GEMM_SUSTAIN_MS: every timing runs its GEMM back to back for 300 ms
// first and then for that many milliseconds, and reports the mean SM clock
// and power over the timed window (NVML, opened with dlopen). A burst of 20
// calls runs at the boost clock; the calibration keeps the GPU at its power
// cap, where an H100 SXM runs near 1,500 MHz (docs/performance.md, session
// 20), and a kernel that moves fewer bytes per FLOP may then win.
//
// Every GEMM is trtconv's gemm_nt (src/fwd/fwd_gpu.c): row-major
// C[M, N] = A[M, K] W[N, K]^T, float16 in, float32 accumulation, float16 or
// float32 out, split-K partial sums in float32.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <vector>

#define CK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { \
    fprintf(stderr, "%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e_)); exit(1); } } while (0)
#define BK(x) do { cublasStatus_t s_ = (x); if (s_ != CUBLAS_STATUS_SUCCESS) { \
    fprintf(stderr, "%s:%d cublas %d\n", __FILE__, __LINE__, (int)s_); exit(1); } } while (0)

struct shape { const char *name; int N, K; bool f32_out; };

__global__ void fill(__half *p, size_t n, uint32_t seed, float scale)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint32_t x = (uint32_t)i * 2654435761u ^ seed;
        x ^= x >> 13; x *= 0x5bd1e995u; x ^= x >> 15;
        p[i] = __float2half(((float)(x & 0xffff) / 65536.0f - 0.5f) * scale);
    }
}

/* NVML through dlopen (no header or link-time library needed): the SM
 * clock (MHz) and board power (mW) of GPU 0, or nothing without a driver. */
typedef int (*nvml_init_t)(void);
typedef int (*nvml_handle_t)(unsigned, void **);
typedef int (*nvml_clock_t)(void *, int, unsigned *);
typedef int (*nvml_power_t)(void *, unsigned *);
static struct { nvml_clock_t clock; nvml_power_t power; void *dev; } nvml;

static void nvml_open(void)
{
    void *so = dlopen("libnvidia-ml.so.1", RTLD_NOW);
    if (!so) return;
    nvml_init_t init = (nvml_init_t)dlsym(so, "nvmlInit_v2");
    nvml_handle_t handle = (nvml_handle_t)dlsym(so, "nvmlDeviceGetHandleByIndex_v2");
    nvml.clock = (nvml_clock_t)dlsym(so, "nvmlDeviceGetClockInfo");
    nvml.power = (nvml_power_t)dlsym(so, "nvmlDeviceGetPowerUsage");
    if (!init || !handle || !nvml.clock || !nvml.power || init() != 0 || handle(0, &nvml.dev) != 0)
        nvml.dev = NULL;
}

static int g_sustain_ms;                 /* GEMM_SUSTAIN_MS, 0: bursts */
static double g_mhz, g_watts;            /* the last sustained window's means */

/* Wait for `end`, sampling the SM clock (NVML_CLOCK_SM = 1) and power every
 * 5 ms meanwhile. */
static void sample_until(cudaEvent_t end)
{
    double mhz = 0, w = 0;
    int n = 0;
    while (cudaEventQuery(end) == cudaErrorNotReady) {
        unsigned c = 0, p = 0;
        if (nvml.dev && nvml.clock(nvml.dev, 1, &c) == 0 && nvml.power(nvml.dev, &p) == 0) {
            mhz += c; w += p / 1000.0; n++;
        }
        struct timespec ts = { 0, 5000000 };
        nanosleep(&ts, NULL);
    }
    g_mhz = n ? mhz / n : 0;
    g_watts = n ? w / n : 0;
}

static float time_ms(cudaStream_t s, int reps, void (*fn)(void *), void *ctx)
{
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a)); CK(cudaEventCreate(&b));
    fn(ctx); fn(ctx);
    CK(cudaEventRecord(a, s));
    for (int i = 0; i < reps; i++) fn(ctx);
    CK(cudaEventRecord(b, s));
    CK(cudaEventSynchronize(b));
    float ms; CK(cudaEventElapsedTime(&ms, a, b));
    if (g_sustain_ms > 0) {
        /* 300 ms to reach the power cap, then the timed window. */
        const float one = ms / reps;
        const int warm = (int)(300.0f / one) + 1, timed = (int)(g_sustain_ms / one) + 1;
        for (int i = 0; i < warm; i++) fn(ctx);
        CK(cudaEventRecord(a, s));
        for (int i = 0; i < timed; i++) fn(ctx);
        CK(cudaEventRecord(b, s));
        sample_until(b);
        CK(cudaEventElapsedTime(&ms, a, b));
        reps = timed;
    }
    cudaEventDestroy(a); cudaEventDestroy(b);
    return ms / reps;
}

/* " at N MHz, W W" after a sustained timing, else nothing. */
static const char *clock_note(void)
{
    static char buf[64];
    buf[0] = 0;
    if (g_sustain_ms > 0 && g_mhz > 0)
        snprintf(buf, sizeof buf, "  at %.0f MHz, %.0f W", g_mhz, g_watts);
    return buf;
}

struct run_ctx {
    cublasHandle_t h; cublasLtHandle_t lt; cudaStream_t s;
    const shape *sh; int M;
    __half *A, *W; void *C; void *ws; size_t ws_bytes;
    cublasLtMatmulDesc_t desc; cublasLtMatrixLayout_t la, lb, lc;
    const cublasLtMatmulAlgo_t *algo;
};

static void run_default(void *p)
{
    run_ctx *c = (run_ctx *)p;
    const float one = 1.0f, zero = 0.0f;
    BK(cublasGemmEx(c->h, CUBLAS_OP_T, CUBLAS_OP_N, c->sh->N, c->M, c->sh->K, &one, c->W,
                    CUDA_R_16F, c->sh->K, c->A, CUDA_R_16F, c->sh->K, &zero, c->C,
                    c->sh->f32_out ? CUDA_R_32F : CUDA_R_16F, c->sh->N, CUBLAS_COMPUTE_32F,
                    CUBLAS_GEMM_DEFAULT));
}

/* The engine's call before it moved the linears to cublasGemmEx. */
static void run_batched1(void *p)
{
    run_ctx *c = (run_ctx *)p;
    const float one = 1.0f, zero = 0.0f;
    BK(cublasGemmStridedBatchedEx(c->h, CUBLAS_OP_T, CUBLAS_OP_N, c->sh->N, c->M, c->sh->K, &one,
                                  c->W, CUDA_R_16F, c->sh->K, 0, c->A, CUDA_R_16F, c->sh->K, 0,
                                  &zero, c->C, c->sh->f32_out ? CUDA_R_32F : CUDA_R_16F, c->sh->N,
                                  0, 1, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

static void run_lt(void *p)
{
    run_ctx *c = (run_ctx *)p;
    const float one = 1.0f, zero = 0.0f;
    BK(cublasLtMatmul(c->lt, c->desc, &one, c->W, c->la, c->A, c->lb, &zero, c->C, c->lc, c->C,
                      c->lc, c->algo, c->ws, c->ws_bytes, c->s));
}

static int attr_i(const cublasLtMatmulAlgo_t *a, cublasLtMatmulAlgoConfigAttributes_t at)
{
    int v = 0; size_t w = 0;
    uint32_t u = 0; uint16_t h = 0;
    if (at == CUBLASLT_ALGO_CONFIG_ID || at == CUBLASLT_ALGO_CONFIG_SPLITK_NUM) {
        cublasLtMatmulAlgoConfigGetAttribute(a, at, &v, sizeof v, &w);
        return v;
    }
    if (at == CUBLASLT_ALGO_CONFIG_TILE_ID || at == CUBLASLT_ALGO_CONFIG_STAGES_ID ||
        at == CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME) {
        cublasLtMatmulAlgoConfigGetAttribute(a, at, &u, sizeof u, &w);
        return (int)u;
    }
    cublasLtMatmulAlgoConfigGetAttribute(a, at, &h, sizeof h, &w);
    return h;
}

/* `seq`: the 8B layer's five GEMMs (qkv, dense, fc, gate, proj) in the
 * engine's order, each timed by its own event pair as TRTCONV_FWD_PROFILE=
 * events does, over 8 copies of the weights taken in turn (so that a GEMM
 * finds its weights in HBM, not in the 50 MB L2, as in the engine), then
 * the same with one copy (weights hot in L2 as in the default mode): the
 * difference is what the engine's per-GEMM times lose to cold weights. */
static int run_seq(cublasHandle_t h, cudaStream_t s, int M)
{
    const shape sh[5] = { { "qkv", 6144, 4096, false }, { "dense", 4096, 4096, true },
                          { "fc", 14336, 4096, false }, { "gate", 14336, 4096, false },
                          { "proj", 4096, 14336, true } };
    const int copies = 8, rounds = 6;
    __half *W[5][8], *A;
    void *C;
    CK(cudaMalloc(&A, (size_t)M * 14336 * 2));
    CK(cudaMalloc(&C, (size_t)M * 14336 * 4));
    fill<<<1024, 256, 0, s>>>(A, (size_t)M * 14336, 17, 4.0f);
    for (int g = 0; g < 5; g++)
        for (int c = 0; c < copies; c++) {
            const size_t n = (size_t)sh[g].N * sh[g].K;
            CK(cudaMalloc(&W[g][c], n * 2));
            fill<<<1024, 256, 0, s>>>(W[g][c], n, 91 + c, 0.05f);
        }
    cudaEvent_t ev[6];
    for (int i = 0; i < 6; i++) CK(cudaEventCreate(&ev[i]));
    for (int hot = 0; hot < 2; hot++) {
        double t[5] = { 0 };
        for (int r = 0; r < rounds * copies; r++) {
            const int c = hot ? 0 : r % copies;
            CK(cudaEventRecord(ev[0], s));
            for (int g = 0; g < 5; g++) {
                const float one = 1.0f, zero = 0.0f;
                BK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, sh[g].N, M, sh[g].K, &one, W[g][c],
                                CUDA_R_16F, sh[g].K, A, CUDA_R_16F, sh[g].K, &zero, C,
                                sh[g].f32_out ? CUDA_R_32F : CUDA_R_16F, sh[g].N,
                                CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
                CK(cudaEventRecord(ev[g + 1], s));
            }
            CK(cudaEventSynchronize(ev[5]));
            for (int g = 0; g < 5 && r >= copies; g++) { /* the first pass warms up */
                float ms;
                CK(cudaEventElapsedTime(&ms, ev[g], ev[g + 1]));
                t[g] += ms;
            }
        }
        const int n = (rounds - 1) * copies;
        printf("engine order, weights %s:", hot ? "hot (one copy)" : "cold (8 copies in turn)");
        for (int g = 0; g < 5; g++) {
            const double ms = t[g] / n, flop = 2.0 * M * sh[g].N * (double)sh[g].K;
            printf("  %s %.3f ms %.0f TFLOP/s", sh[g].name, ms, flop / ms / 1e9);
        }
        printf("\n");
    }
    return 0;
}

int main(int argc, char **argv)
{
    const bool seq = argc > 1 && strcmp(argv[1], "seq") == 0;
    if (seq) {
        argc--;
        argv++;
    }
    const int M = argc > 1 ? atoi(argv[1]) : 4096;
    const char *sus = getenv("GEMM_SUSTAIN_MS"), *only = getenv("GEMM_SHAPES"),
               *nalg = getenv("GEMM_ALGOS");
    g_sustain_ms = sus ? atoi(sus) : 0;
    const int max_algos = nalg && atoi(nalg) > 0 ? atoi(nalg) : 32; /* heuristic results timed */
    if (g_sustain_ms > 0)
        nvml_open();
    const shape shapes[] = {
        { "8B qkv", 6144, 4096, false },   { "8B dense", 4096, 4096, true },
        { "8B fc/gate", 14336, 4096, false }, { "8B proj", 4096, 14336, true },
        { "8B lm_head", 128256, 4096, false }, { "70B qkv", 10240, 8192, false },
        { "70B dense", 8192, 8192, true },  { "70B fc/gate", 28672, 8192, false },
        { "70B proj", 8192, 28672, true },
    };
    cublasHandle_t h; cublasLtHandle_t lt; cudaStream_t s;
    BK(cublasCreate(&h)); BK(cublasLtCreate(&lt));
    CK(cudaStreamCreate(&s)); BK(cublasSetStream(h, s));
    BK(cublasSetMathMode(h, (cublasMath_t)(CUBLAS_DEFAULT_MATH |
                                           CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)));
    if (seq)
        return run_seq(h, s, M);
    size_t ws_bytes = 64u << 20;
    void *ws; CK(cudaMalloc(&ws, ws_bytes));
    for (const shape &sh : shapes) {
        if (only && !strstr(sh.name, only))
            continue; /* GEMM_SHAPES: a part of the names, e.g. "8B" */
        const size_t na = (size_t)M * sh.K, nw = (size_t)sh.N * sh.K, nc = (size_t)M * sh.N;
        const size_t ces = sh.f32_out ? 4 : 2;
        __half *A, *W; void *C, *C0;
        CK(cudaMalloc(&A, na * 2)); CK(cudaMalloc(&W, nw * 2));
        CK(cudaMalloc(&C, nc * ces)); CK(cudaMalloc(&C0, nc * ces));
        fill<<<1024, 256, 0, s>>>(A, na, 17, 4.0f);
        fill<<<1024, 256, 0, s>>>(W, nw, 91, 0.05f);
        run_ctx c = { h, lt, s, &sh, M, A, W, C, ws, ws_bytes };
        const double flop = 2.0 * M * sh.N * (double)sh.K;
        float ms = time_ms(s, 20, run_default, &c);
        CK(cudaMemcpyAsync(C0, C, nc * ces, cudaMemcpyDeviceToDevice, s));
        printf("%-12s M=%d N=%d K=%d out=%s  cublasGemmEx default: %.3f ms  %.0f TFLOP/s%s\n",
               sh.name, M, sh.N, sh.K, sh.f32_out ? "f32" : "f16", ms, flop / ms / 1e9,
               clock_note());
        if (g_sustain_ms == 0) {
            const float mb = time_ms(s, 20, run_batched1, &c);
            printf("%-12s batched1 (GemmStridedBatchedEx, batch 1): %.3f ms  %.0f TFLOP/s\n",
                   sh.name, mb, flop / mb / 1e9);
        }
        // cuBLASLt over the same column-major problem: C^T[N, M] = W^T... op(W)=T.
        const cudaDataType_t ct = sh.f32_out ? CUDA_R_32F : CUDA_R_16F;
        BK(cublasLtMatmulDescCreate(&c.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
        cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
        BK(cublasLtMatmulDescSetAttribute(c.desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
        BK(cublasLtMatmulDescSetAttribute(c.desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
        BK(cublasLtMatrixLayoutCreate(&c.la, CUDA_R_16F, sh.K, sh.N, sh.K));
        BK(cublasLtMatrixLayoutCreate(&c.lb, CUDA_R_16F, sh.K, M, sh.K));
        BK(cublasLtMatrixLayoutCreate(&c.lc, ct, sh.N, M, sh.N));
        cublasLtMatmulPreference_t pref;
        BK(cublasLtMatmulPreferenceCreate(&pref));
        BK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                &ws_bytes, sizeof ws_bytes));
        cublasLtMatmulHeuristicResult_t res[32];
        int got = 0;
        BK(cublasLtMatmulAlgoGetHeuristic(lt, c.desc, c.la, c.lb, c.lc, c.lc, pref, 32, res, &got));
        std::vector<uint16_t> h0(nc * ces / 2), h1(nc * ces / 2);
        CK(cudaMemcpy(h0.data(), C0, nc * ces, cudaMemcpyDeviceToHost));
        for (int i = 0; i < got && i < max_algos; i++) {
            if (res[i].state != CUBLAS_STATUS_SUCCESS) continue;
            c.algo = &res[i].algo;
            float t = time_ms(s, 20, run_lt, &c);
            CK(cudaMemcpy(h1.data(), C, nc * ces, cudaMemcpyDeviceToHost));
            size_t diff = 0;
            for (size_t k = 0; k < h0.size(); k++) diff += h0[k] != h1[k];
            printf("   lt#%-2d id=%-3d tile=%-3d stages=%-3d splitk=%-2d red=%d ws=%zu  %.3f ms  %.0f TFLOP/s%s  words differing from default: %zu\n",
                   i, attr_i(&res[i].algo, CUBLASLT_ALGO_CONFIG_ID),
                   attr_i(&res[i].algo, CUBLASLT_ALGO_CONFIG_TILE_ID),
                   attr_i(&res[i].algo, CUBLASLT_ALGO_CONFIG_STAGES_ID),
                   attr_i(&res[i].algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM),
                   attr_i(&res[i].algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME),
                   res[i].workspaceSize, t, flop / t / 1e9, clock_note(), diff);
        }
        cublasLtMatmulPreferenceDestroy(pref);
        cublasLtMatrixLayoutDestroy(c.la); cublasLtMatrixLayoutDestroy(c.lb);
        cublasLtMatrixLayoutDestroy(c.lc); cublasLtMatmulDescDestroy(c.desc);
        cudaFree(A); cudaFree(W); cudaFree(C); cudaFree(C0);
        fflush(stdout);
    }
    return 0;
}
