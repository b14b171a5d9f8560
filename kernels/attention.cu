/* attention.cu: causal attention of the calibration forward pass without
 * materialised scores (launcher in trtconv/kernels/fwd.h).
 *
 * The cuBLAS path (src/fwd/fwd_gpu.c) writes every head's [len x len]
 * float32 scores to memory, reads them back for the softmax and writes the
 * probabilities again: at 512 tokens that traffic, not the arithmetic, made
 * attention 13% of the calibration. Here one block of four warps owns 64
 * query rows of one KV group (rows are (token, head of the group) pairs,
 * the layout rope_split writes), each warp 16 of them, and walks the key
 * blocks of 64 up to the causal limit twice:
 *   1. the row maxima and the sums of exp(s - max) (running, rescaled as
 *      the maximum grows: the online softmax of FlashAttention, Dao et al.
 *      2022);
 *   2. the normalised probabilities exp(s - max) / sum rounded to the
 *      dtype, as the cuBLAS path rounds them, times V, accumulated in
 *      float32 in registers and rounded once.
 * The scores are computed twice (a third more arithmetic than one pass)
 * so that the output never needs rescaling and the probabilities are
 * rounded after the normalisation, as torch's eager attention rounds them.
 *
 * Tensor cores through mma.sync m16n8k16 (sm_80+; float32 accumulation)
 * with operands from ldmatrix: a score tile stays in the registers it was
 * accumulated in, and its accumulator layout is the layout of the A operand
 * of P V, so the probabilities never pass through shared memory (the
 * register mapping of FlashAttention-2, Dao 2023). K and V tiles arrive by
 * cp.async into two buffers, the next one loading while this one is used.
 * The WMMA kernel this replaces staged every score tile through shared
 * memory and loaded synchronously: 26 ms per layer of the 8B calibration on
 * an H100, about 60 TFLOP/s.
 *
 * The results differ from the cuBLAS path's in the last bits (the sum's
 * order, exp's approximation); tests/cuda/test_fwd_cuda.c holds both to
 * the CPU backend within the attention tolerance. */
#include "attention_common.cuh"

#define FA_BM 64        /* query rows per block: each warp owns 16 */

/* Shared memory: K and V in two buffers each, every tile 64 rows of D
 * elements at a stride padded by 16 bytes (ldmatrix's eight row reads then
 * fall in distinct banks). Q passes through V's second buffer on its way to
 * the registers, before pass 1 (V's first use is pass 2): four tiles, so
 * three blocks fit an SM. */
template <int D> struct fa_layout {
    static constexpr int LD = fa_ld(D);
    static constexpr int TILE = FA_BM * LD;
    static constexpr size_t bytes = (size_t)4 * TILE * 2;
};

/* A 64-row tile (attention_common.cuh load_rows). */
template <int D, typename T>
__device__ __forceinline__ void load_tile(T *dst, const T *src, int64_t rows, const T *any)
{
    load_rows<D, FA_BM>(dst, src, rows, any);
}

/* s = Q K^T for the warp's 16 rows and the tile's 64 keys: s[j] is the
 * accumulator of keys 8j .. 8j + 7. */
template <int DT, int D, typename T>
__device__ __forceinline__ void tile_scores(float (&s)[FA_BN / 8][4],
                                            const uint32_t (&qf)[D / 16][4], const T *sK,
                                            int lane)
{
    constexpr int LD = fa_layout<D>::LD;
#pragma unroll
    for (int j = 0; j < FA_BN / 8; j++)
        s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
#pragma unroll
        for (int jn = 0; jn < FA_BN / 16; jn++) {
            /* matrices: keys +0..7 / +8..15 (lane / 16) x dims +0 / +8
             * ((lane / 8) % 2): the two B halves of key tiles 2jn, 2jn+1 */
            uint32_t b[4];
            ldsm_x4(b, sK + (jn * 16 + lane % 8 + (lane / 16) * 8) * LD + kk * 16 +
                           (lane / 8 % 2) * 8);
            mma16816<DT>(s[2 * jn], qf[kk], b[0], b[1]);
            mma16816<DT>(s[2 * jn + 1], qf[kk], b[2], b[3]);
        }
    }
}

/* grid: (ceil(len * g / FA_BM), kv heads, sequences of the run). The run's
 * sequences all have `len` tokens and follow each other: sequence s's q
 * region starts at token s * len (rope_split's layout: [kv group][t][g][d]
 * per sequence), its k and v regions likewise ([kv head][t][d]); o is
 * [tokens, nh * d] from the run's first token. A thread holds two of its
 * warp's rows (lane / 4 and + 8) and, of each key tile of 8, keys
 * 2 (lane % 4) and + 1: a row's maximum and sum are reduced over the four
 * lanes of a quad. Blocks take their row tiles last first: the causal
 * limit makes a tile's work grow with its tokens, and the heaviest tiles
 * started first leave the light ones to fill the last wave. */
template <int DT, int D>
__global__ void __launch_bounds__(FA_THREADS)
    flash_attn_kernel(void *o, const void *q, const void *k, const void *v, int64_t len,
                      int64_t nh, int64_t nkv, int64_t g, float scale, float *omax)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
    __trap(); /* not launched: tc_fwd_attention_fused_cuda needs compute capability 8.0 */
#else
    typedef typename fa_elem<DT>::T T;
    typedef fa_layout<D> L;
    extern __shared__ __align__(128) unsigned char fa_smem[];
    T *sK = (T *)fa_smem; /* buffer b at sK + b * L::TILE */
    T *sV = sK + 2 * L::TILE;
    T *sQ = sV + L::TILE;  /* free again after pass 1's first barrier */

    const int64_t R = len * g, r0 = (int64_t)(gridDim.x - 1 - blockIdx.x) * FA_BM;
    if (r0 >= R)
        return;
    const int64_t grp = blockIdx.y, seq = blockIdx.z;
    const T *qg = (const T *)q + ((size_t)(seq * len * nh) + (size_t)(grp * len * g)) * D;
    const T *kg = (const T *)k + ((size_t)(seq * len * nkv) + (size_t)(grp * len)) * D;
    const T *vg = (const T *)v + ((size_t)(seq * len * nkv) + (size_t)(grp * len)) * D;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, col2 = 2 * (lane % 4);
    int64_t row[2], t[2]; /* the thread's rows and their tokens: keys 0 .. t */
#pragma unroll
    for (int i = 0; i < 2; i++) {
        row[i] = r0 + warp * 16 + lane / 4 + 8 * i;
        t[i] = row[i] / g;
    }
    const int64_t last_row = (r0 + FA_BM < R ? r0 + FA_BM : R) - 1;
    const int64_t key_blocks = last_row / g / FA_BN + 1; /* the causal limit */
    const int64_t t_first = r0 / g; /* key tiles up to it need no mask */

    load_tile<D>(sQ, qg + (size_t)r0 * D, R - r0, qg);
    load_tile<D>(sK, kg, len, kg);
    cp_async_commit();
    cp_async_wait_all();
    __syncthreads();
    uint32_t qf[D / 16][4];
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++)
        ldsm_x4(qf[kk], sQ + (warp * 16 + lane % 16) * L::LD + kk * 16 + (lane / 16) * 8);

    /* Pass 1: row maximum m and sum l of exp(s - m). */
    float m[2] = { -INFINITY, -INFINITY }, l[2] = { 0.0f, 0.0f };
    float s[FA_BN / 8][4];
    for (int64_t kb = 0; kb < key_blocks; kb++) {
        const int64_t n0 = kb * FA_BN;
        if (kb + 1 < key_blocks)
            load_tile<D>(sK + (kb + 1) % 2 * L::TILE, kg + (size_t)(n0 + FA_BN) * D,
                         len - n0 - FA_BN, kg);
        cp_async_commit();
        tile_scores<DT, D>(s, qf, sK + kb % 2 * L::TILE, lane);
        const int lim[2] = { (int)(t[0] - n0) - col2, (int)(t[1] - n0) - col2 };
        if (n0 + FA_BN - 1 > t_first)
            scale_mask<true>(s, scale, lim);
        else
            scale_mask<false>(s, scale, lim);
#pragma unroll
        for (int i = 0; i < 2; i++) {
            float mx = -INFINITY;
#pragma unroll
            for (int j = 0; j < FA_BN / 8; j++)
#pragma unroll
                for (int e = 0; e < 2; e++)
                    mx = fmaxf(mx, s[j][2 * i + e]);
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            /* Key 0 is in every row's first block: m is finite after it. */
            const float m_new = fmaxf(m[i], mx);
            float sum = 0.0f;
#pragma unroll
            for (int j = 0; j < FA_BN / 8; j++)
                sum += __expf(s[j][2 * i] - m_new) + __expf(s[j][2 * i + 1] - m_new);
            sum += __shfl_xor_sync(0xffffffffu, sum, 1);
            sum += __shfl_xor_sync(0xffffffffu, sum, 2);
            l[i] = l[i] * __expf(m[i] - m_new) + sum;
            m[i] = m_new;
        }
        cp_async_wait_all();
        __syncthreads(); /* the next tile arrived; this one is free */
    }

    /* Pass 2: O = round(exp(s - m) / l) V, accumulated in registers. */
    const float inv_l[2] = { 1.0f / l[0], 1.0f / l[1] };
    float acc[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++)
        acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
    load_tile<D>(sK, kg, len, kg);
    load_tile<D>(sV, vg, len, vg);
    cp_async_commit();
    cp_async_wait_all();
    __syncthreads();
    for (int64_t kb = 0; kb < key_blocks; kb++) {
        const int64_t n0 = kb * FA_BN;
        const int b = kb % 2;
        if (kb + 1 < key_blocks) {
            load_tile<D>(sK + (1 - b) * L::TILE, kg + (size_t)(n0 + FA_BN) * D, len - n0 - FA_BN,
                         kg);
            load_tile<D>(sV + (1 - b) * L::TILE, vg + (size_t)(n0 + FA_BN) * D, len - n0 - FA_BN,
                         vg);
        }
        cp_async_commit();
        tile_scores<DT, D>(s, qf, sK + b * L::TILE, lane);
        uint32_t pf[FA_BN / 16][4];
        const int lim[2] = { (int)(t[0] - n0) - col2, (int)(t[1] - n0) - col2 };
        if (n0 + FA_BN - 1 > t_first)
            probabilities<DT, true>(pf, s, scale, m, inv_l, lim);
        else
            probabilities<DT, false>(pf, s, scale, m, inv_l, lim);
        const T *vb = sV + b * L::TILE;
#pragma unroll
        for (int jk = 0; jk < FA_BN / 16; jk++)
#pragma unroll
            for (int dn = 0; dn < D / 16; dn++) {
                /* transposed matrices: keys +0..7 / +8..15 ((lane / 8) % 2)
                 * x dims +0 / +8 (lane / 16): the two B halves of dim
                 * tiles 2dn, 2dn+1 */
                uint32_t bv[4];
                ldsm_x4_trans(bv, vb + (jk * 16 + lane % 8 + (lane / 8 % 2) * 8) * L::LD +
                                      dn * 16 + (lane / 16) * 8);
                mma16816<DT>(acc[2 * dn], pf[jk], bv[0], bv[1]);
                mma16816<DT>(acc[2 * dn + 1], pf[jk], bv[2], bv[3]);
            }
        cp_async_wait_all();
        __syncthreads();
    }

    /* o[t, (grp * g + gi) * D + c] = round(O). With omax, the maxima of
     * the stored values per (head of the group, column) gather in shared
     * memory (the K/V buffers are free after the last barrier; the
     * launcher checks that g * D of them fit), then reach omax with one
     * global atomicMax per column the block touched. */
    unsigned *smax = (unsigned *)fa_smem;
    if (omax) {
        for (int64_t i = threadIdx.x; i < g * D; i += FA_THREADS)
            smax[i] = 0u;
        __syncthreads();
    }
    T *os = (T *)o + (size_t)(seq * len * nh) * D;
#pragma unroll
    for (int i = 0; i < 2; i++) {
        if (row[i] >= R)
            continue;
        const int64_t gi = row[i] % g;
        T *dst = os + (size_t)(row[i] / g * nh + grp * g + gi) * D;
#pragma unroll
        for (int n = 0; n < D / 8; n++) {
            const uint32_t pk = fa_elem<DT>::pack(acc[n][2 * i], acc[n][2 * i + 1]);
            *(uint32_t *)(dst + n * 8 + col2) = pk;
            if (omax) {
                /* The stored halves as absmax_cols would read them back. */
                const uint16_t h2[2] = { (uint16_t)(pk & 0xffffu), (uint16_t)(pk >> 16) };
                atomicMax(smax + gi * D + n * 8 + col2, abs_bits(elem<DT>::ld(h2, 0)));
                atomicMax(smax + gi * D + n * 8 + col2 + 1, abs_bits(elem<DT>::ld(h2, 1)));
            }
        }
    }
    if (omax) {
        __syncthreads();
        for (int64_t i = threadIdx.x; i < g * D; i += FA_THREADS)
            if (smax[i])
                atomicMax((unsigned *)omax + grp * g * D + i, smax[i]);
    }
#endif
}

extern "C" int tc_fwd_attention_fused_supported(tc_dtype dt, int64_t head_dim)
{
    return (dt == TC_DT_F16 || dt == TC_DT_BF16) && (head_dim == 64 || head_dim == 128);
}

template <int DT, int D>
static tc_status launch_flash(void *o, const void *q, const void *k, const void *v, int64_t len,
                              int64_t n_seqs, int64_t nh, int64_t nkv, float scale, float *omax,
                              cudaStream_t stream)
{
    tc_status st = TC_OK;
    const size_t bytes = fa_layout<D>::bytes;
    const int64_t g = nh / nkv, tiles = (len * g + FA_BM - 1) / FA_BM;
    const dim3 grid((unsigned)tiles, (unsigned)nkv, (unsigned)n_seqs);
    /* Above the 48 KiB default: opted in per kernel (cheap, and safe from
     * several threads). */
    TC_CUDA_TRY(cudaFuncSetAttribute(flash_attn_kernel<DT, D>,
                                     cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    flash_attn_kernel<DT, D><<<grid, FA_THREADS, bytes, stream>>>(o, q, k, v, len, nh, nkv, g,
                                                                   scale, omax);
    return launched("flash_attn_kernel");
done:
    return st;
}

extern "C" int tc_fwd_attention_max_supported(int64_t nh, int64_t nkv, int64_t head_dim)
{
    /* The block's maxima ([g][head_dim] words) fit in its K/V buffers. */
    const size_t bytes = head_dim == 128 ? fa_layout<128>::bytes : fa_layout<64>::bytes;
    return nkv >= 1 && nh % nkv == 0 && (size_t)(nh / nkv) * (size_t)head_dim * 4 <= bytes;
}

extern "C" tc_status tc_fwd_attention_fused_cuda(void *o, const void *q, const void *k,
                                                 const void *v, tc_dtype dt, int64_t nh,
                                                 int64_t nkv, int64_t head_dim, int64_t len,
                                                 int64_t n_seqs, float scale, float *omax,
                                                 void *stream)
{
    if (!tc_fwd_attention_fused_supported(dt, head_dim) || nkv < 1 || nh % nkv != 0)
        return tc_fail(TC_E_INTERNAL, "%s: %s, head_dim %lld, %lld/%lld heads not supported",
                       __func__, tc_dtype_name(dt), (long long)head_dim, (long long)nh,
                       (long long)nkv);
    if (len <= 0 || n_seqs <= 0)
        return TC_OK;
    if (len > INT32_MAX / 2 || (len * (nh / nkv) + FA_BM - 1) / FA_BM > INT32_MAX ||
        nkv > 65535 || n_seqs > 65535)
        return tc_fail(TC_E_INTERNAL, "%s: grid too large", __func__);
    if (!aligned16(o) || !aligned16(q) || !aligned16(k) || !aligned16(v))
        return tc_fail(TC_E_INTERNAL, "%s: buffers not 16-byte aligned", __func__);
    if (omax && !tc_fwd_attention_max_supported(nh, nkv, head_dim))
        return tc_fail(TC_E_INTERNAL, "%s: maxima of %lld heads per group not supported",
                       __func__, (long long)(nh / nkv));
    cudaStream_t s = (cudaStream_t)stream;
    if (dt == TC_DT_F16)
        return head_dim == 128
                   ? launch_flash<1, 128>(o, q, k, v, len, n_seqs, nh, nkv, scale, omax, s)
                   : launch_flash<1, 64>(o, q, k, v, len, n_seqs, nh, nkv, scale, omax, s);
    return head_dim == 128 ? launch_flash<2, 128>(o, q, k, v, len, n_seqs, nh, nkv, scale, omax, s)
                           : launch_flash<2, 64>(o, q, k, v, len, n_seqs, nh, nkv, scale, omax, s);
}
