/* eval_logits.cu: trtconv eval's per-token logits comparison on the GPU
 * (launchers in trtconv/kernels/eval_logits.h): one block per row, the
 * steps of the CPU reference src/eval/logits_rows.c with the same float32
 * exponent arguments and float64 sums, block-reduced. */
#include <limits.h>

#include "fwd_common.cuh"

#include "trtconv/kernels/eval_logits.h"

#define EVAL_BLOCK 256

__device__ __forceinline__ double block_sum_d(double v, double *shared)
{
    return block_reduce(v, 0.0, shared, reduce_add());
}

__device__ __forceinline__ long long block_min_ll(long long v, long long *shared)
{
    return block_reduce(v, (long long)LLONG_MAX, shared, reduce_min());
}

template <int DA, int DB>
__global__ void rows_max_kernel(const void *a, int64_t lda, const void *b, int64_t ldb,
                                int64_t T, int64_t V, double *mx)
{
    __shared__ float sh[32];
    for (int64_t r = blockIdx.x; r < T; r += gridDim.x) {
        float ba = -INFINITY, bb = -INFINITY;
        for (int64_t k = threadIdx.x; k < V; k += blockDim.x) {
            const float va = elem<DA>::ld(a, (size_t)(r * lda + k));
            const float vb = elem<DB>::ld(b, (size_t)(r * ldb + k));
            ba = va > ba ? va : ba; /* a NaN is never the maximum, as on the host */
            bb = vb > bb ? vb : bb;
        }
        ba = block_max(ba, sh);
        bb = block_max(bb, sh);
        if (threadIdx.x == 0) {
            mx[2 * r] = ba;
            mx[2 * r + 1] = bb;
        }
    }
}

template <int DA, int DB>
__global__ void rows_sums_kernel(const void *a, int64_t lda, const void *b, int64_t ldb,
                                 int64_t T, int64_t V, int64_t col0, const int32_t *next,
                                 const double *mx, double *sums, long long *arg)
{
    __shared__ double shd[32];
    __shared__ long long shl[32];
    for (int64_t r = blockIdx.x; r < T; r += gridDim.x) {
        const float ma = (float)mx[2 * r], mb = (float)mx[2 * r + 1];
        double za = 0.0, zb = 0.0, s = 0.0;
        long long ia = LLONG_MAX, ib = LLONG_MAX;
        for (int64_t k = threadIdx.x; k < V; k += blockDim.x) {
            const float va = elem<DA>::ld(a, (size_t)(r * lda + k));
            const float vb = elem<DB>::ld(b, (size_t)(r * ldb + k));
            const double ea = expf(va - ma);
            za += ea;
            zb += expf(vb - mb);
            s += ea * ((double)va - (double)vb);
            /* k rises: a thread's first match is its smallest column. */
            if (ia == LLONG_MAX && va == ma)
                ia = col0 + k;
            if (ib == LLONG_MAX && vb == mb)
                ib = col0 + k;
        }
        za = block_sum_d(za, shd);
        zb = block_sum_d(zb, shd);
        s = block_sum_d(s, shd);
        ia = block_min_ll(ia, shl);
        ib = block_min_ll(ib, shl);
        if (threadIdx.x == 0) {
            double ta = 0.0, tb = 0.0;
            const int64_t nx = next[r];
            if (nx >= col0 && nx < col0 + V) {
                ta = elem<DA>::ld(a, (size_t)(r * lda + nx - col0));
                tb = elem<DB>::ld(b, (size_t)(r * ldb + nx - col0));
            }
            double *o = sums + 6 * r;
            o[0] = za, o[1] = zb, o[2] = s, o[3] = ta, o[4] = tb, o[5] = 0.0;
            arg[2 * r] = ia;
            arg[2 * r + 1] = ib;
        }
    }
}

/* KERNEL<DA, DB> for the two dtypes, on stream 0 of the current device. */
#define DISPATCH2(dta, dtb, KERNEL, grid, ...)                                              \
    do {                                                                                    \
        const int ca_ = dt_code(dta), cb_ = dt_code(dtb);                                   \
        if (ca_ < 0 || cb_ < 0)                                                             \
            return tc_fail(TC_E_USAGE, "%s: logits in %s and %s", __func__,                 \
                           tc_dtype_name(dta), tc_dtype_name(dtb));                         \
        switch (ca_ * 3 + cb_) {                                                            \
        case 0: KERNEL<0, 0><<<grid, EVAL_BLOCK>>>(__VA_ARGS__); break;                     \
        case 1: KERNEL<0, 1><<<grid, EVAL_BLOCK>>>(__VA_ARGS__); break;                     \
        case 2: KERNEL<0, 2><<<grid, EVAL_BLOCK>>>(__VA_ARGS__); break;                     \
        case 3: KERNEL<1, 0><<<grid, EVAL_BLOCK>>>(__VA_ARGS__); break;                     \
        case 4: KERNEL<1, 1><<<grid, EVAL_BLOCK>>>(__VA_ARGS__); break;                     \
        case 5: KERNEL<1, 2><<<grid, EVAL_BLOCK>>>(__VA_ARGS__); break;                     \
        case 6: KERNEL<2, 0><<<grid, EVAL_BLOCK>>>(__VA_ARGS__); break;                     \
        case 7: KERNEL<2, 1><<<grid, EVAL_BLOCK>>>(__VA_ARGS__); break;                     \
        default: KERNEL<2, 2><<<grid, EVAL_BLOCK>>>(__VA_ARGS__); break;                    \
        }                                                                                   \
    } while (0)

extern "C" tc_status tc_logits_rows_max_cuda(const void *a, tc_dtype dta, int64_t lda,
                                             const void *b, tc_dtype dtb, int64_t ldb, int64_t T,
                                             int64_t V, double *mx)
{
    tc_status st = TC_OK;
    double *d_mx = NULL;
    unsigned grid = 1;
    if (dt_code(dta) < 0 || dt_code(dtb) < 0)
        return tc_fail(TC_E_USAGE, "logits in %s and %s", tc_dtype_name(dta), tc_dtype_name(dtb));
    if (T <= 0)
        return TC_OK;
    TC_CUDA_TRY(cudaDeviceSynchronize()); /* the engines' streams */
    TC_CUDA_TRY(cudaMalloc((void **)&d_mx, (size_t)T * 2 * sizeof(double)));
    st = tc_cuda_capped_grid(T, 32, &grid);
    if (st != TC_OK)
        goto done;
    DISPATCH2(dta, dtb, rows_max_kernel, grid, a, lda, b, ldb, T, V, d_mx);
    TC_CUDA_TRY(cudaGetLastError());
    TC_CUDA_TRY(cudaMemcpy(mx, d_mx, (size_t)T * 2 * sizeof(double), cudaMemcpyDeviceToHost));
done:
    cudaFree(d_mx);
    return st;
}

extern "C" tc_status tc_logits_rows_sums_cuda(const void *a, tc_dtype dta, int64_t lda,
                                              const void *b, tc_dtype dtb, int64_t ldb, int64_t T,
                                              int64_t V, int64_t col0, const int32_t *next,
                                              const double *mx, double *sums, long long *arg)
{
    tc_status st = TC_OK;
    double *d_mx = NULL, *d_sums = NULL;
    long long *d_arg = NULL;
    int32_t *d_next = NULL;
    unsigned grid = 1;
    if (dt_code(dta) < 0 || dt_code(dtb) < 0)
        return tc_fail(TC_E_USAGE, "logits in %s and %s", tc_dtype_name(dta), tc_dtype_name(dtb));
    if (T <= 0)
        return TC_OK;
    TC_CUDA_TRY(cudaDeviceSynchronize());
    TC_CUDA_TRY(cudaMalloc((void **)&d_mx, (size_t)T * 2 * sizeof(double)));
    TC_CUDA_TRY(cudaMalloc((void **)&d_sums, (size_t)T * 6 * sizeof(double)));
    TC_CUDA_TRY(cudaMalloc((void **)&d_arg, (size_t)T * 2 * sizeof(long long)));
    TC_CUDA_TRY(cudaMalloc((void **)&d_next, (size_t)T * sizeof(int32_t)));
    TC_CUDA_TRY(cudaMemcpy(d_mx, mx, (size_t)T * 2 * sizeof(double), cudaMemcpyHostToDevice));
    TC_CUDA_TRY(cudaMemcpy(d_next, next, (size_t)T * sizeof(int32_t), cudaMemcpyHostToDevice));
    st = tc_cuda_capped_grid(T, 32, &grid);
    if (st != TC_OK)
        goto done;
    DISPATCH2(dta, dtb, rows_sums_kernel, grid, a, lda, b, ldb, T, V, col0, d_next, d_mx, d_sums,
              d_arg);
    TC_CUDA_TRY(cudaGetLastError());
    TC_CUDA_TRY(cudaMemcpy(sums, d_sums, (size_t)T * 6 * sizeof(double), cudaMemcpyDeviceToHost));
    TC_CUDA_TRY(cudaMemcpy(arg, d_arg, (size_t)T * 2 * sizeof(long long), cudaMemcpyDeviceToHost));
done:
    cudaFree(d_mx);
    cudaFree(d_sums);
    cudaFree(d_arg);
    cudaFree(d_next);
    return st;
}
