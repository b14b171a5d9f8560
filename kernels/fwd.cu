/* fwd.cu: elementwise, normalisation, rope and softmax kernels of the
 * forward pass (launchers in trtconv/kernels/fwd.h; GEMMs are cuBLAS calls
 * in src/fwd/fwd_gpu.c; calibration maxima and SmoothQuant's kernels in
 * calib_max.cu).
 *
 * The scalar CPU reference of every kernel is the matching function of
 * src/fwd/fwd_cpu.c: same rounding points (each value torch would hold in the
 * model dtype is rounded with the bit-exact conversions of fp_bits.cuh),
 * float32 everywhere else. Built with --fmad=false so that no product is
 * fused into an add the CPU path rounds separately. Reductions (rmsnorm's
 * sum of squares, softmax's max and sum) use a tree order, so they agree
 * with the CPU path to float32 rounding, not bit for bit; the tests
 * (tests/cuda/test_fwd_cuda.c) hold them to a tolerance, and to the bits
 * where the order is the same (elementwise kernels, rope, residual). */
#include "fwd_common.cuh"

/* ---- kernels ---- */

__global__ void sum_slices_kernel(float *out, const float *in, int nslices, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float s = in[i];
        for (int m = 1; m < nslices; m++)
            s += in[(size_t)m * n + i];
        out[i] = s;
    }
}

template <int DT>
__global__ void embed_kernel(float *out, const void *table, int64_t row0, int64_t rows,
                             int64_t col0, int64_t cols, int64_t H, const int32_t *ids, int64_t T)
{
    for (int64_t t = blockIdx.x; t < T; t += gridDim.x) {
        const int64_t r = (int64_t)ids[t] - row0;
        const bool have = r >= 0 && r < rows;
        for (int64_t c = threadIdx.x; c < H; c += blockDim.x) {
            float v = 0.0f;
            if (have && c >= col0 && c < col0 + cols)
                v = elem<DT>::ld(table, (size_t)(r * cols + (c - col0)));
            out[t * H + c] = v;
        }
    }
}

template <int DT> __global__ void round_kernel(void *out, const float *in, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        elem<DT>::st(out, i, in[i]);
}

template <int DT> __global__ void widen_kernel(float *out, const void *in, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = elem<DT>::ld(in, i);
}

/* The same 8 elements at a time (fwd_common.cuh vec: the paired
 * conversions), n a multiple of VEC: cuda_fwd holds them to the CPU's
 * conversions over every float16 / bfloat16 and a sweep of float32. */
template <int DT> __global__ void round_vec_kernel(void *out, const float *in, size_t n)
{
    for (size_t i = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) * VEC; i < n;
         i += (size_t)gridDim.x * blockDim.x * VEC) {
        const float4 a = *(const float4 *)(in + i), b = *(const float4 *)(in + i + 4);
        const vec<DT> x = { { a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w } };
        x.store(out, i);
    }
}

template <int DT> __global__ void widen_vec_kernel(float *out, const void *in, size_t n)
{
    for (size_t i = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) * VEC; i < n;
         i += (size_t)gridDim.x * blockDim.x * VEC) {
        vec<DT> x;
        x.load(in, i);
        *(float4 *)(out + i) = make_float4(x.f[0], x.f[1], x.f[2], x.f[3]);
        *(float4 *)(out + i + 4) = make_float4(x.f[4], x.f[5], x.f[6], x.f[7]);
    }
}

template <int DT>
__global__ void rmsnorm_kernel(void *out, const void *in, const void *w, int64_t T, int64_t H,
                               float eps)
{
    __shared__ float shared[32];
    for (int64_t t = blockIdx.x; t < T; t += gridDim.x) {
        const size_t base = (size_t)(t * H);
        float ss = 0.0f;
        for (int64_t i = threadIdx.x; i < H; i += blockDim.x) {
            float x = elem<DT>::ld(in, base + i);
            ss += x * x;
        }
        ss = block_sum(ss, shared);
        const float r = 1.0f / sqrtf(ss / (float)H + eps);
        for (int64_t i = threadIdx.x; i < H; i += blockDim.x) {
            float x = elem<DT>::ld(in, base + i);
            elem<DT>::st(out, base + i, elem<DT>::ld(w, i) * elem<DT>::rnd(x * r));
        }
    }
}

template <int DT>
__global__ void bias_kernel(void *out, int out_f32, const float *in, const void *bias, int64_t M,
                            int64_t N)
{
    const size_t n = (size_t)(M * N);
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float v = in[i] + (bias ? elem<DT>::ld(bias, i % (size_t)N) : 0.0f);
        if (out_f32)
            ((float *)out)[i] = v;
        else
            elem<DT>::st(out, i, v);
    }
}

/* One block per token; threads over (head, e < d/2) for q and k, then v. */
template <int DT>
__global__ void rope_split_kernel(void *q, void *k, void *v, const void *qkv, int64_t nh,
                                  int64_t nkv, int64_t d, int64_t T, const int32_t *pos,
                                  const int32_t *seq_start, const int32_t *seq_len,
                                  const float *cosv, const float *sinv)
{
    const int64_t half = d / 2, g = nh / nkv, width = (nh + 2 * nkv) * d;
    for (int64_t t = blockIdx.x; t < T; t += gridDim.x) {
        const int64_t os = seq_start[t], ls = seq_len[t], tt = t - os, p = pos[t];
        const float *cs = cosv + p * half, *sn = sinv + p * half;
        const size_t row = (size_t)(t * width);
        for (int64_t x = threadIdx.x; x < (nh + nkv) * half; x += blockDim.x) {
            const int64_t h = x / half, e = x % half;
            const size_t src = row + (size_t)(h * d);
            const rope_head rh(h, nh, nkv, g, d);
            void *out = rh.tensor(q, k);
            const size_t dst = rh.at(os, ls, tt);
            const float x1 = elem<DT>::ld(qkv, src + e), x2 = elem<DT>::ld(qkv, src + e + half);
            const float lo = elem<DT>::rnd(x1 * cs[e]) + elem<DT>::rnd(-x2 * sn[e]);
            const float hi = elem<DT>::rnd(x2 * cs[e]) + elem<DT>::rnd(x1 * sn[e]);
            elem<DT>::st(out, dst + e, lo);
            elem<DT>::st(out, dst + e + half, hi);
        }
        for (int64_t x = threadIdx.x; x < nkv * d; x += blockDim.x) {
            const int64_t h = x / d, e = x % d;
            const size_t src = row + (size_t)((nh + nkv + h) * d + e);
            elem<DT>::st(v, (size_t)(os * nkv * d + (h * ls + tt) * d + e), elem<DT>::ld(qkv, src));
        }
    }
}

/* One warp per row; rows of up to SOFTMAX_CACHE * 32 keys keep their
 * exponentials in registers (one expf per element), longer rows recompute. */
#define SOFTMAX_CACHE 32
#define SOFTMAX_WARPS 8

template <int DT>
__global__ void softmax_kernel(void *p, const float *s, int64_t rows, int64_t ls, int64_t g)
{
    const int lane = threadIdx.x & 31;
    const int64_t warps = (int64_t)gridDim.x * SOFTMAX_WARPS;
    for (int64_t r = (int64_t)blockIdx.x * SOFTMAX_WARPS + (threadIdx.x >> 5); r < rows; r += warps) {
        const int64_t valid = (r % (ls * g)) / g + 1;
        const float *sr = s + r * ls;
        float mx = -INFINITY;
        for (int64_t j = lane; j < valid; j += 32)
            mx = fmaxf(mx, sr[j]);
        for (int o = 16; o > 0; o >>= 1)
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
        float cache[SOFTMAX_CACHE];
        const bool cached = valid <= 32 * SOFTMAX_CACHE;
        float sum = 0.0f;
#pragma unroll
        for (int k = 0; k < SOFTMAX_CACHE; k++) {
            const int64_t j = lane + 32 * k;
            cache[k] = (cached && j < valid) ? expf(sr[j] - mx) : 0.0f;
            sum += cache[k];
        }
        if (!cached)
            for (int64_t j = lane; j < valid; j += 32)
                sum += expf(sr[j] - mx);
        for (int o = 16; o > 0; o >>= 1)
            sum += __shfl_xor_sync(0xffffffffu, sum, o);
        if (cached) {
#pragma unroll
            for (int k = 0; k < SOFTMAX_CACHE; k++) {
                const int64_t j = lane + 32 * k;
                if (j < ls)
                    elem<DT>::st(p, (size_t)(r * ls + j), j < valid ? cache[k] / sum : 0.0f);
            }
            for (int64_t j = lane + 32 * SOFTMAX_CACHE; j < ls; j += 32)
                elem<DT>::st(p, (size_t)(r * ls + j), 0.0f);
        } else {
            for (int64_t j = lane; j < ls; j += 32)
                elem<DT>::st(p, (size_t)(r * ls + j), j < valid ? expf(sr[j] - mx) / sum : 0.0f);
        }
    }
}

template <int DT>
__global__ void gather_heads_kernel(void *o, const void *og, int64_t nh, int64_t nkv, int64_t d,
                                    int64_t T, const int32_t *seq_start, const int32_t *seq_len)
{
    const int64_t g = nh / nkv;
    for (int64_t t = blockIdx.x; t < T; t += gridDim.x) {
        const int64_t os = seq_start[t], ls = seq_len[t], tt = t - os;
        for (int64_t x = threadIdx.x; x < nh * d; x += blockDim.x) {
            const int64_t h = x / d, e = x % d;
            const size_t src = (size_t)(os * nh * d + (((h / g) * ls + tt) * g + h % g) * d + e);
            elem<DT>::st(o, (size_t)(t * nh * d + x), elem<DT>::ld(og, src));
        }
    }
}

template <int DT>
__global__ void residual_kernel(void *h, const float *p, const void *bias, int64_t T, int64_t H)
{
    const size_t n = (size_t)(T * H);
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float a = elem<DT>::rnd(p[i] + (bias ? elem<DT>::ld(bias, i % (size_t)H) : 0.0f));
        elem<DT>::st(h, i, elem<DT>::ld(h, i) + a);
    }
}

template <int DT> __global__ void silu_mul_kernel(void *out, const void *g, const void *u, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        const float x = elem<DT>::ld(g, i);
        const float s = elem<DT>::rnd(x / (1.0f + expf(-x)));
        elem<DT>::st(out, i, s * elem<DT>::ld(u, i));
    }
}

template <int DT>
__global__ void expert_add_kernel(float *acc, const void *y, const float *w, int64_t T, int64_t H)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (size_t)(T * H);
         i += (size_t)gridDim.x * blockDim.x) {
        const float wt = w[i / (size_t)H];
        if (wt != 0.0f)
            acc[i] += elem<DT>::rnd(elem<DT>::ld(y, i) * wt);
    }
}

/* ---- vector forms (fwd_common.cuh vec: the same steps, 8 elements at a time) ---- */

/* One block per token; each thread keeps its 8-element pieces of the row
 * between the sum of squares and the output. */
template <int DT>
__global__ void rmsnorm_vec_kernel(void *out, const void *in, const void *w, int64_t T, int64_t H,
                                   float eps)
{
    __shared__ float shared[32];
    for (int64_t t = blockIdx.x; t < T; t += gridDim.x) {
        const size_t base = (size_t)(t * H);
        float ss = 0.0f;
        for (int64_t i = threadIdx.x * VEC; i < H; i += blockDim.x * VEC) {
            vec<DT> x;
            x.load(in, base + i);
#pragma unroll
            for (int k = 0; k < VEC; k++)
                ss += x.f[k] * x.f[k];
        }
        ss = block_sum(ss, shared);
        const float r = 1.0f / sqrtf(ss / (float)H + eps);
        for (int64_t i = threadIdx.x * VEC; i < H; i += blockDim.x * VEC) {
            vec<DT> x, wv;
            x.load(in, base + i);
            wv.load(w, i);
            rms_scaled(x, wv, r);
            x.store(out, base + i);
        }
    }
}

/* rope_split_kernel with each thread on 8 consecutive rotary pairs (half a
 * multiple of 8) and v copied 8 values at a time. */
/* The units of one row of rope_split_vec_kernel: `pairs` (may be NULL) of
 * 8 rotary pairs (query and key heads), then nkv * d / 8 vectors of v. */
__host__ __device__ inline int64_t rope_vec_units(int64_t nh, int64_t nkv, int64_t d,
                                                  int64_t *pairs)
{
    const int64_t p = (nh + nkv) * (d / 2 / VEC);
    if (pairs)
        *pairs = p;
    return p + nkv * d / VEC;
}

template <int DT>
__global__ void rope_split_vec_kernel(void *q, void *k, void *v, const void *qkv, int64_t nh,
                                      int64_t nkv, int64_t d, int64_t T, const int32_t *pos,
                                      const int32_t *seq_start, const int32_t *seq_len,
                                      const float *cosv, const float *sinv)
{
    const int64_t half = d / 2, g = nh / nkv, width = (nh + 2 * nkv) * d, hv = half / VEC;
    /* One loop over a row's units, rotary pairs first, then v's vectors:
     * the launcher sizes the block to the row, so that no thread idles
     * through a second, partial pass (two loops of 256 threads took 80.4 us
     * per 8B micro-batch on an H100, one of 448 74.4 us; session 17). */
    int64_t pairs;
    const int64_t units = rope_vec_units(nh, nkv, d, &pairs);
    /* A thread decodes its unit once and then takes it through the block's
     * rows (64-bit divisions per unit and row made the kernel
     * issue-bound); for each row a warp's units are still consecutive. */
    for (int64_t x = threadIdx.x; x < units; x += blockDim.x) {
        if (x >= pairs) {
            const int64_t y = x - pairs, h = y * VEC / d, e = y * VEC % d;
            const int64_t col = (nh + nkv + h) * d + e;
            for (int64_t t = blockIdx.x; t < T; t += gridDim.x) {
                const int64_t os = seq_start[t], ls = seq_len[t], tt = t - os;
                *(uint4 *)((uint16_t *)v + (size_t)(os * nkv * d + (h * ls + tt) * d + e)) =
                    *(const uint4 *)((const uint16_t *)qkv + (size_t)(t * width + col));
            }
            continue;
        }
        const int64_t h = x / hv, e = (x % hv) * VEC, col = h * d + e;
        const rope_head rh(h, nh, nkv, g, d);
        void *out = rh.tensor(q, k);
        for (int64_t t = blockIdx.x; t < T; t += gridDim.x) {
            const int64_t os = seq_start[t], ls = seq_len[t], tt = t - os, p = pos[t];
            const size_t src = (size_t)(t * width + col);
            const size_t dst = rh.at(os, ls, tt) + (size_t)e;
            const float4 *cs = (const float4 *)(cosv + p * half + e);
            const float4 *sn = (const float4 *)(sinv + p * half + e);
            const float4 c4[2] = { cs[0], cs[1] }, s4[2] = { sn[0], sn[1] };
            const float *c = (const float *)c4, *s = (const float *)s4;
            vec<DT> x1, x2;
            x1.load(qkv, src);
            x2.load(qkv, src + (size_t)half);
            lo_hi<DT> r;
            rope_pairs(r, x1, x2, c, s);
            r.lo.store(out, dst);
            r.hi.store(out, dst + (size_t)half);
        }
    }
}

/* gather_heads_kernel as 16-byte copies (the values are not converted). */
template <int DT>
__global__ void gather_heads_vec_kernel(void *o, const void *og, int64_t nh, int64_t nkv, int64_t d,
                                        int64_t T, const int32_t *seq_start, const int32_t *seq_len)
{
    const int64_t g = nh / nkv;
    for (int64_t t = blockIdx.x; t < T; t += gridDim.x) {
        const int64_t os = seq_start[t], ls = seq_len[t], tt = t - os;
        for (int64_t x = threadIdx.x * VEC; x < nh * d; x += blockDim.x * VEC) {
            const int64_t h = x / d, e = x % d;
            const size_t src = (size_t)(os * nh * d + (((h / g) * ls + tt) * g + h % g) * d + e);
            *(uint4 *)((uint16_t *)o + (size_t)(t * nh * d + x)) =
                *(const uint4 *)((const uint16_t *)og + src);
        }
    }
}

template <int DT> __global__ void residual_vec_kernel(void *h, const float *p, size_t n)
{
    for (size_t i = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) * VEC; i < n;
         i += (size_t)gridDim.x * blockDim.x * VEC) {
        const float4 a4[2] = { *(const float4 *)(p + i), *(const float4 *)(p + i + 4) };
        const float *a = (const float *)a4;
        vec<DT> x, y;
        x.load(h, i);
#pragma unroll
        for (int k = 0; k < VEC; k++)
            y.f[k] = a[k] + 0.0f; /* + 0.0f: the scalar path's -0 */
        y.round();
#pragma unroll
        for (int k = 0; k < VEC; k++)
            x.f[k] = x.f[k] + y.f[k];
        x.store(h, i);
    }
}

template <int DT> __global__ void silu_mul_vec_kernel(void *out, const void *g, const void *u, size_t n)
{
    for (size_t i = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) * VEC; i < n;
         i += (size_t)gridDim.x * blockDim.x * VEC) {
        vec<DT> x, y;
        x.load(g, i);
        y.load(u, i);
        silu_rounded(x);
#pragma unroll
        for (int k = 0; k < VEC; k++)
            x.f[k] = x.f[k] * y.f[k];
        x.store(out, i);
    }
}

/* ---- launchers ---- */

extern "C" tc_status tc_sum_slices_f32_cuda(float *out, const float *in, int nslices, size_t n,
                                            void *stream)
{
    unsigned grid;
    tc_status st = grid_for(n, &grid);
    if (st != TC_OK || n == 0)
        return st;
    sum_slices_kernel<<<grid, FWD_BLOCK, 0, (cudaStream_t)stream>>>(out, in, nslices, n);
    return launched("sum_slices_kernel");
}

extern "C" tc_status tc_fwd_embed_cuda(float *out32, const void *table, tc_dtype dt, int64_t row0,
                                       int64_t rows, int64_t col0, int64_t cols, int64_t H,
                                       const int32_t *ids, int64_t T, void *stream)
{
    LAUNCH(row_grid, T, T, embed_kernel, FWD_BLOCK, stream, out32, table, row0, rows, col0, cols, H, ids, T);
}

extern "C" tc_status tc_fwd_round_f32_cuda(void *out, tc_dtype dt, const float *in32, size_t n,
                                           void *stream)
{
    if (n > 0 && vec_ok(dt, n, out, in32)) {
        unsigned grid;
        TC_TRY(grid_for(n / VEC, &grid));
        DISPATCH16(dt, round_vec_kernel, grid, FWD_BLOCK, stream, out, in32, n);
        return launched("round_vec_kernel");
    }
    LAUNCH(grid_for, n, n, round_kernel, FWD_BLOCK, stream, out, in32, n);
}

extern "C" tc_status tc_fwd_to_f32_cuda(float *out32, const void *in, tc_dtype dt, size_t n,
                                        void *stream)
{
    if (n > 0 && vec_ok(dt, n, out32, in)) {
        unsigned grid;
        TC_TRY(grid_for(n / VEC, &grid));
        DISPATCH16(dt, widen_vec_kernel, grid, FWD_BLOCK, stream, out32, in, n);
        return launched("widen_vec_kernel");
    }
    LAUNCH(grid_for, n, n, widen_kernel, FWD_BLOCK, stream, out32, in, n);
}

extern "C" tc_status tc_fwd_rmsnorm_cuda(void *out, const void *in, const void *w, tc_dtype dt,
                                         int64_t T, int64_t H, float eps, void *stream)
{
    if (T > 0 && vec_ok(dt, (size_t)H, out, in, w)) {
        unsigned grid;
        TC_TRY(row_grid(T, &grid));
        DISPATCH16(dt, rmsnorm_vec_kernel, grid, FWD_BLOCK, stream, out, in, w, T, H, eps);
        return launched("rmsnorm_vec_kernel");
    }
    LAUNCH(row_grid, T, T, rmsnorm_kernel, FWD_BLOCK, stream, out, in, w, T, H, eps);
}

extern "C" tc_status tc_fwd_bias_cuda(void *out, int out_f32, const float *in32, const void *bias,
                                      tc_dtype dt, int64_t M, int64_t N, void *stream)
{
    LAUNCH(grid_for, (size_t)(M * N), M * N, bias_kernel, FWD_BLOCK, stream, out, out_f32, in32, bias, M, N);
}

extern "C" tc_status tc_fwd_rope_split_cuda(void *q, void *k, void *v, const void *qkv,
                                            tc_dtype dt, int64_t nh, int64_t nkv, int64_t d,
                                            int64_t T, const int32_t *pos,
                                            const int32_t *seq_start, const int32_t *seq_len,
                                            const float *cosv, const float *sinv, void *stream)
{
    return tc_fwd_rope_split_threads_cuda(q, k, v, qkv, dt, nh, nkv, d, T, pos, seq_start,
                                          seq_len, cosv, sinv, 0, stream);
}

/* The most threads a rope_split_vec_kernel block has: 1024 would need more
 * registers than an SM holds (67 per thread for float16 on sm_90). */
#define ROPE_MAX_BLOCK 512

extern "C" tc_status tc_fwd_rope_split_threads_cuda(void *q, void *k, void *v, const void *qkv,
                                                    tc_dtype dt, int64_t nh, int64_t nkv,
                                                    int64_t d, int64_t T, const int32_t *pos,
                                                    const int32_t *seq_start,
                                                    const int32_t *seq_len, const float *cosv,
                                                    const float *sinv, int threads, void *stream)
{
    if (T > 0 && vec_ok(dt, (size_t)(d / 2), q, k, v, qkv) && aligned16(cosv) && aligned16(sinv)) {
        /* A row's units (rope_split_vec_kernel) in passes of at most
         * ROPE_MAX_BLOCK threads, split evenly and rounded up to whole warps
         * (the 8B heads: 448 units, one pass; 70B: 704, two of 352). */
        const int64_t units = rope_vec_units(nh, nkv, d, NULL);
        const int64_t passes = (units + ROPE_MAX_BLOCK - 1) / ROPE_MAX_BLOCK;
        int64_t block = threads > 0 ? threads : ((units + passes - 1) / passes + 31) / 32 * 32;
        if (block > ROPE_MAX_BLOCK)
            block = ROPE_MAX_BLOCK;
        unsigned grid;
        TC_TRY(row_grid(T, &grid));
        DISPATCH16(dt, rope_split_vec_kernel, grid, (unsigned)block, stream, q, k, v, qkv, nh,
                   nkv, d, T, pos, seq_start, seq_len, cosv, sinv);
        return launched("rope_split_vec_kernel");
    }
    LAUNCH(row_grid, T, T, rope_split_kernel, FWD_BLOCK, stream, q, k, v, qkv, nh, nkv, d, T, pos, seq_start, seq_len, cosv, sinv);
}

extern "C" tc_status tc_fwd_softmax_cuda(void *p, const float *s, tc_dtype dt, int64_t rows,
                                         int64_t ls, int64_t g, void *stream)
{
    LAUNCH(row_grid, (rows + SOFTMAX_WARPS - 1) / SOFTMAX_WARPS, rows, softmax_kernel, 32 * SOFTMAX_WARPS, stream, p, s, rows, ls, g);
}

extern "C" tc_status tc_fwd_gather_heads_cuda(void *o, const void *og, tc_dtype dt, int64_t nh,
                                              int64_t nkv, int64_t d, int64_t T,
                                              const int32_t *seq_start, const int32_t *seq_len,
                                              void *stream)
{
    if (T > 0 && vec_ok(dt, (size_t)d, o, og)) {
        unsigned grid;
        TC_TRY(row_grid(T, &grid));
        DISPATCH16(dt, gather_heads_vec_kernel, grid, FWD_BLOCK, stream, o, og, nh, nkv, d, T,
                   seq_start, seq_len);
        return launched("gather_heads_vec_kernel");
    }
    LAUNCH(row_grid, T, T, gather_heads_kernel, FWD_BLOCK, stream, o, og, nh, nkv, d, T, seq_start, seq_len);
}

extern "C" tc_status tc_fwd_residual_add_cuda(void *h, const float *p32, const void *bias,
                                              tc_dtype dt, int64_t T, int64_t H, void *stream)
{
    if (T * H > 0 && !bias && vec_ok(dt, (size_t)(T * H), h, p32)) {
        unsigned grid;
        TC_TRY(grid_for((size_t)(T * H) / VEC, &grid));
        DISPATCH16(dt, residual_vec_kernel, grid, FWD_BLOCK, stream, h, p32, (size_t)(T * H));
        return launched("residual_vec_kernel");
    }
    LAUNCH(grid_for, (size_t)(T * H), T * H, residual_kernel, FWD_BLOCK, stream, h, p32, bias, T, H);
}

extern "C" tc_status tc_fwd_silu_mul_cuda(void *out, const void *g, const void *u, tc_dtype dt,
                                          size_t n, void *stream)
{
    if (n > 0 && vec_ok(dt, n, out, g, u)) {
        unsigned grid;
        TC_TRY(grid_for(n / VEC, &grid));
        DISPATCH16(dt, silu_mul_vec_kernel, grid, FWD_BLOCK, stream, out, g, u, n);
        return launched("silu_mul_vec_kernel");
    }
    LAUNCH(grid_for, n, n, silu_mul_kernel, FWD_BLOCK, stream, out, g, u, n);
}

extern "C" tc_status tc_fwd_expert_add_cuda(float *acc32, const void *y, const float *w32,
                                            tc_dtype dt, int64_t T, int64_t H, void *stream)
{
    LAUNCH(grid_for, (size_t)(T * H), T * H, expert_add_kernel, FWD_BLOCK, stream, acc32, y, w32,
           T, H);
}

