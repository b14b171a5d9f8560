/* calib_fused.cu: rmsnorm and rope+split over slabs of rows, each with the
 * calibration maxima of its values taken in the same pass (launchers in
 * trtconv/kernels/fwd.h; backend.h rmsnorm_max, rope_split_max).
 *
 * Why: the calibration read every rmsnorm output twice more (the maxima of
 * the qkv and MLP inputs) and the qkv output once more, separate passes at
 * under half the memory rate (issue 23 item 3). Column maxima need one
 * thread to see a column over many rows, so these kernels give a thread
 * fixed columns and a block a slab of rows (the layout of calib_max.cu's
 * fused kernels), fold the maxima in registers and add them with one
 * atomicMax per column per block.
 *
 * rmsnorm: a block is one row wide (H / VEC threads, each VEC columns);
 * NORM_GROUP rows are loaded before their sums of squares are reduced
 * together, so that loads are in flight across the barriers. The sum's
 * order (VEC terms per thread, then fwd_common.cuh's block tree) differs
 * from the CPU reference's, as every GPU reduction's does (within float32
 * rounding; tests/cuda/test_fwd_cuda.c). The GPU backend's plain rmsnorm
 * takes the same kernel when these are on (fwd_gpu.c fused_maxima), so a
 * calibration and a plain forward pass give the same bits.
 *
 * rope+split: each thread owns 8 rotary pairs of one head (both halves) or
 * 8 values of a v head; the arithmetic is rope_split_vec_kernel's (fwd.cu),
 * so q, k and v are the same bytes. */
#include "fwd_common.cuh"

#define NORM_ROWS 16  /* rows per block */
#define NORM_GROUP 4  /* rows loaded, then reduced, together */
#define ROPE_ROWS 16
#define ROPE_BLOCK 256

/* A block-wide sum of N values at once (block_reduce's tree for each):
 * one round of barriers for the group. shared: [32][N]. */
template <int N> __device__ __forceinline__ void block_sum_n(float (&v)[N], float (*shared)[N])
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
    for (int j = 0; j < N; j++) {
        for (int o = 16; o > 0; o >>= 1)
            v[j] += __shfl_xor_sync(0xffffffffu, v[j], o);
        if (lane == 0)
            shared[warp][j] = v[j];
    }
    __syncthreads();
    if (threadIdx.x < 32) {
#pragma unroll
        for (int j = 0; j < N; j++) {
            float r = threadIdx.x < (blockDim.x >> 5) ? shared[threadIdx.x][j] : 0.0f;
            for (int o = 16; o > 0; o >>= 1)
                r += __shfl_xor_sync(0xffffffffu, r, o);
            if (threadIdx.x == 0)
                shared[0][j] = r;
        }
    }
    __syncthreads();
#pragma unroll
    for (int j = 0; j < N; j++)
        v[j] = shared[0][j];
    __syncthreads();
}

/* out = round(w * round(x * rsqrt(mean(x^2) + eps))) for rows
 * [blockIdx.x * NORM_ROWS, + NORM_ROWS); acc (may be NULL) gets the column
 * maxima of |out| as stored. blockDim.x = H / VEC. */
template <int DT>
__global__ void __launch_bounds__(1024)
    rmsnorm_slab_kernel(void *out, const void *in, const void *w, int64_t T, int64_t H,
                        float eps, float *acc)
{
    __shared__ float shared[32][NORM_GROUP];
    const int64_t c = (int64_t)threadIdx.x * VEC;
    const int64_t r0 = (int64_t)blockIdx.x * NORM_ROWS;
    const int64_t r1 = r0 + NORM_ROWS < T ? r0 + NORM_ROWS : T;
    vec<DT> wv;
    wv.load(w, (size_t)c);
    unsigned m[VEC] = { 0 };
    for (int64_t rg = r0; rg < r1; rg += NORM_GROUP) {
        uint4 raw[NORM_GROUP];
#pragma unroll
        for (int j = 0; j < NORM_GROUP; j++)
            if (rg + j < r1)
                raw[j] = vec<DT>::raw16(in, (size_t)((rg + j) * H + c));
        float ss[NORM_GROUP];
#pragma unroll
        for (int j = 0; j < NORM_GROUP; j++) {
            ss[j] = 0.0f;
            if (rg + j < r1) {
                vec<DT> x;
                x.unpack(raw[j]);
#pragma unroll
                for (int k = 0; k < VEC; k++)
                    ss[j] += x.f[k] * x.f[k];
            }
        }
        block_sum_n<NORM_GROUP>(ss, shared);
#pragma unroll
        for (int j = 0; j < NORM_GROUP; j++) {
            if (rg + j >= r1)
                break;
            const float r = 1.0f / sqrtf(ss[j] / (float)H + eps);
            vec<DT> x;
            x.unpack(raw[j]);
            rms_scaled(x, wv, r);
            /* The stored value, whose maxima absmax_cols would read. */
            const uint4 stored = x.pack();
            x.unpack(stored);
#pragma unroll
            for (int k = 0; k < VEC; k++) {
                const unsigned b = abs_bits(x.f[k]);
                m[k] = b > m[k] ? b : m[k];
            }
            *(uint4 *)((uint16_t *)out + (size_t)((rg + j) * H + c)) = stored;
        }
    }
    if (acc)
#pragma unroll
        for (int k = 0; k < VEC; k++)
            atomicMax((unsigned *)acc + c + k, m[k]);
}

/* rope+split for tokens [blockIdx.x * ROPE_ROWS, + ROPE_ROWS), thread
 * blockIdx.y * blockDim.x + threadIdx.x on one unit: units below
 * (nh + nkv) * d / 2 / VEC are 8 rotary pairs (columns e .. e + 7 and
 * half + e .. of head h, query heads first), the rest 8 values of a v head.
 * acc_q / acc_k / acc_v (all or none) get the column maxima of the q, k
 * and v columns of qkv as read. */
template <int DT>
__global__ void rope_split_slab_kernel(void *q, void *k, void *v, const void *qkv, int64_t nh,
                                       int64_t nkv, int64_t d, int64_t T, const int32_t *pos,
                                       const int32_t *seq_start, const int32_t *seq_len,
                                       const float *cosv, const float *sinv, float *acc_q,
                                       float *acc_k, float *acc_v)
{
    const int64_t half = d / 2, hv = half / VEC, g = nh / nkv, width = (nh + 2 * nkv) * d;
    const int64_t rot_units = (nh + nkv) * hv;
    const int64_t x = (int64_t)blockIdx.y * blockDim.x + threadIdx.x;
    if (x >= rot_units + nkv * d / VEC)
        return;
    const int64_t r0 = (int64_t)blockIdx.x * ROPE_ROWS;
    const int64_t r1 = r0 + ROPE_ROWS < T ? r0 + ROPE_ROWS : T;
    unsigned m[2 * VEC] = { 0 };
    if (x < rot_units) {
        const int64_t h = x / hv, e = (x % hv) * VEC, src = h * d + e;
        for (int64_t t = r0; t < r1; t++) {
            const int64_t os = seq_start[t], ls = seq_len[t], tt = t - os, p = pos[t];
            const size_t row = (size_t)(t * width);
            vec<DT> x1, x2;
            x1.load(qkv, row + (size_t)src);
            x2.load(qkv, row + (size_t)(src + half));
            const float4 *cs = (const float4 *)(cosv + p * half + e);
            const float4 *sn = (const float4 *)(sinv + p * half + e);
            const float4 c4[2] = { cs[0], cs[1] }, s4[2] = { sn[0], sn[1] };
            const float *cf = (const float *)c4, *sf = (const float *)s4;
#pragma unroll
            for (int j = 0; j < VEC; j++) {
                unsigned b = abs_bits(x1.f[j]);
                m[j] = b > m[j] ? b : m[j];
                b = abs_bits(x2.f[j]);
                m[VEC + j] = b > m[VEC + j] ? b : m[VEC + j];
            }
            lo_hi<DT> rot;
            rope_pairs(rot, x1, x2, cf, sf);
            /* Decoded per row, as before: taken out of the loop it kept 13
             * more registers live. */
            const rope_head rh(h, nh, nkv, g, d);
            void *o = rh.tensor(q, k);
            const size_t dst = rh.at(os, ls, tt);
            rot.lo.store(o, dst + (size_t)e);
            rot.hi.store(o, dst + (size_t)(e + half));
        }
        if (acc_q) {
            float *a = h < nh ? acc_q + h * d : acc_k + (h - nh) * d;
#pragma unroll
            for (int j = 0; j < VEC; j++) {
                atomicMax((unsigned *)a + e + j, m[j]);
                atomicMax((unsigned *)a + half + e + j, m[VEC + j]);
            }
        }
        return;
    }
    const int64_t xv = (x - rot_units) * VEC, h = xv / d, e = xv % d;
    for (int64_t t = r0; t < r1; t++) {
        const int64_t os = seq_start[t], ls = seq_len[t], tt = t - os;
        const uint4 raw = vec<DT>::raw16(qkv, (size_t)(t * width + (nh + nkv + h) * d + e));
        *(uint4 *)((uint16_t *)v + (size_t)(os * nkv * d + (h * ls + tt) * d + e)) = raw;
        if (acc_v) {
            vec<DT> val;
            val.unpack(raw);
#pragma unroll
            for (int j = 0; j < VEC; j++) {
                const unsigned b = abs_bits(val.f[j]);
                m[j] = b > m[j] ? b : m[j];
            }
        }
    }
    if (acc_v)
#pragma unroll
        for (int j = 0; j < VEC; j++)
            atomicMax((unsigned *)acc_v + h * d + e + j, m[j]);
}

/* ---- launchers ---- */

extern "C" int tc_fwd_rmsnorm_slab_supported(tc_dtype dt, int64_t H)
{
    return (dt == TC_DT_F16 || dt == TC_DT_BF16) && H > 0 && H % (VEC * 32) == 0 &&
           H / VEC <= 1024;
}

extern "C" tc_status tc_fwd_rmsnorm_slab_cuda(void *out, const void *in, const void *w,
                                              tc_dtype dt, int64_t T, int64_t H, float eps,
                                              float *acc, void *stream)
{
    if (!tc_fwd_rmsnorm_slab_supported(dt, H) || !aligned16(out) || !aligned16(in) ||
        !aligned16(w))
        return tc_fail(TC_E_INTERNAL, "%s: %s, H %lld or alignment not supported", __func__,
                       tc_dtype_name(dt), (long long)H);
    if (T <= 0)
        return TC_OK;
    const int64_t blocks = (T + NORM_ROWS - 1) / NORM_ROWS;
    if (blocks > INT32_MAX)
        return tc_fail(TC_E_INTERNAL, "%s: %lld rows is more than supported", __func__,
                       (long long)T);
    DISPATCH16(dt, rmsnorm_slab_kernel, (unsigned)blocks, (unsigned)(H / VEC), stream, out, in, w,
               T, H, eps, acc);
    return launched("rmsnorm_slab_kernel");
}

extern "C" tc_status tc_fwd_rmsnorm_max_cuda(void *out, const void *in, const void *w,
                                             tc_dtype dt, int64_t T, int64_t H, float eps,
                                             float *acc, void *stream)
{
    if (tc_fwd_rmsnorm_slab_supported(dt, H) && aligned16(out) && aligned16(in) && aligned16(w))
        return tc_fwd_rmsnorm_slab_cuda(out, in, w, dt, T, H, eps, acc, stream);
    TC_TRY(tc_fwd_rmsnorm_cuda(out, in, w, dt, T, H, eps, stream));
    return acc ? tc_fwd_absmax_cols_cuda(acc, out, 0, NULL, dt, T, H, 0, H, stream) : TC_OK;
}

extern "C" tc_status tc_fwd_rope_split_max_cuda(void *q, void *k, void *v, const void *qkv,
                                                tc_dtype dt, int64_t nh, int64_t nkv, int64_t d,
                                                int64_t T, const int32_t *pos,
                                                const int32_t *seq_start, const int32_t *seq_len,
                                                const float *cosv, const float *sinv,
                                                float *acc_q, float *acc_k, float *acc_v,
                                                void *stream)
{
    if (T <= 0)
        return TC_OK;
    const int64_t units = (nh + nkv) * (d / 2 / VEC) + nkv * d / VEC;
    const int64_t width = (nh + 2 * nkv) * d;
    if (vec_ok(dt, (size_t)(d / 2), q, k, v, qkv) && aligned16(cosv) && aligned16(sinv) &&
        (T + ROPE_ROWS - 1) / ROPE_ROWS <= INT32_MAX &&
        (units + ROPE_BLOCK - 1) / ROPE_BLOCK <= 65535) {
        const dim3 grid((unsigned)((T + ROPE_ROWS - 1) / ROPE_ROWS),
                        (unsigned)((units + ROPE_BLOCK - 1) / ROPE_BLOCK));
        DISPATCH16(dt, rope_split_slab_kernel, grid, ROPE_BLOCK, stream, q, k, v, qkv, nh, nkv, d,
                   T, pos, seq_start, seq_len, cosv, sinv, acc_q, acc_k, acc_v);
        return launched("rope_split_slab_kernel");
    }
    TC_TRY(tc_fwd_rope_split_cuda(q, k, v, qkv, dt, nh, nkv, d, T, pos, seq_start, seq_len, cosv,
                                  sinv, stream));
    if (!acc_q)
        return TC_OK;
    TC_TRY(tc_fwd_absmax_cols_cuda(acc_q, qkv, 0, NULL, dt, T, width, 0, nh * d, stream));
    TC_TRY(tc_fwd_absmax_cols_cuda(acc_k, qkv, 0, NULL, dt, T, width, nh * d, nkv * d, stream));
    return tc_fwd_absmax_cols_cuda(acc_v, qkv, 0, NULL, dt, T, width, (nh + nkv) * d, nkv * d,
                                   stream);
}
