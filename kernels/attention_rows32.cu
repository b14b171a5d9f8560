/* attention_rows32.cu: the fused causal attention of attention.cu with 32
 * query rows per warp instead of 16 (128 per block of four warps; launched
 * through tc_fwd_attention_form_cuda, trtconv/kernels/fwd.h).
 *
 * Why: in attention.cu every warp reads each K and V tile from shared
 * memory for its 16 rows, and a warp's steps are one dependent chain
 * (scores, a quad's max and sum by shuffles, exp), with three warps per
 * scheduler to hide it; at an 8B micro-batch neither the tensor cores nor
 * shared memory is near its rate (docs/performance.md, session 18). Here a
 * warp owns two 16-row tiles: each K and V fragment it loads feeds two
 * mma.sync (half the K and V reads per row; Q is read again instead), and
 * the two tiles' steps are independent work for the scheduler, at two
 * blocks per SM (Q stays in shared memory, its fragments loaded for each
 * use; 254 registers at head dimension 128 on sm_90 without spilling, 16
 * bytes spilled on sm_80).
 * FlashAttention-2 (Dao 2023) takes 128 rows per block of four warps for
 * head dimension 128 for the same reasons.
 *
 * The same bytes as attention.cu: every row takes the same operations in
 * the same order (the score tiles' mma.sync over the same fragments, the
 * same key tiles up to the block's causal limit, the shared scale, mask
 * and probabilities of attention_common.cuh). A block of 128 rows walks
 * the key tiles of its last row, so a warp may add a tile that is wholly
 * past its rows' tokens: its scores are -inf, its probabilities 0, and
 * 0 x V adds nothing, unless V holds an infinity or NaN there (which
 * attention.cu's block would not have read).
 *
 * Kept apart from attention.cu while it has not run on a GPU, so that the
 * default kernel stays the code that passed there (a template over the
 * row-tile count changed its PTX): once timed, either this becomes
 * attention.cu's kernel with that count as a parameter, or this file
 * goes. */
#include "attention_common.cuh"

#define FA32_BM 128 /* query rows per block: each warp owns 32, two tiles of 16 */

/* Shared memory: Q (128 rows, read for every key tile), then K and V in
 * two buffers each (64 rows), every row at the padded stride fa_ld(D). */
template <int D> struct fa32_layout {
    static constexpr int LD = fa_ld(D);
    static constexpr int KV_TILE = FA_BN * LD;
    static constexpr size_t bytes = ((size_t)FA32_BM + 4 * (size_t)FA_BN) * LD * 2;
};

/* s[mt] = Q K^T for the warp's row tile mt (sQw: the warp's 32 rows) and
 * the key tile's 64 keys; each K fragment serves both row tiles. */
template <int DT, int D, typename T>
__device__ __forceinline__ void tile_scores32(float (&s)[2][FA_BN / 8][4], const T *sQw,
                                              const T *sK, int lane)
{
    constexpr int LD = fa_ld(D);
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int j = 0; j < FA_BN / 8; j++)
            s[mt][j][0] = s[mt][j][1] = s[mt][j][2] = s[mt][j][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
        uint32_t qa[2][4];
#pragma unroll
        for (int mt = 0; mt < 2; mt++)
            ldsm_x4(qa[mt], sQw + (mt * 16 + lane % 16) * LD + kk * 16 + (lane / 16) * 8);
#pragma unroll
        for (int jn = 0; jn < FA_BN / 16; jn++) {
            uint32_t b[4]; /* attention.cu tile_scores' B halves */
            ldsm_x4(b, sK + (jn * 16 + lane % 8 + (lane / 16) * 8) * LD + kk * 16 +
                           (lane / 8 % 2) * 8);
#pragma unroll
            for (int mt = 0; mt < 2; mt++) {
                mma16816<DT>(s[mt][2 * jn], qa[mt], b[0], b[1]);
                mma16816<DT>(s[mt][2 * jn + 1], qa[mt], b[2], b[3]);
            }
        }
    }
}

/* attention.cu flash_attn_kernel's grid and layouts with FA32_BM rows per
 * block; the thread holds rows lane / 4 and + 8 of each of its warp's two
 * row tiles. */
template <int DT, int D>
__global__ void __launch_bounds__(FA_THREADS, 2)
    flash_attn32_kernel(void *o, const void *q, const void *k, const void *v, int64_t len,
                        int64_t nh, int64_t nkv, int64_t g, float scale, float *omax)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
    __trap(); /* not launched: tc_fwd_attention_form_cuda needs compute capability 8.0 */
#else
    typedef typename fa_elem<DT>::T T;
    typedef fa32_layout<D> L;
    extern __shared__ __align__(128) unsigned char fa_smem[];
    T *sQ = (T *)fa_smem;
    T *sK = sQ + FA32_BM * L::LD; /* buffer b at sK + b * L::KV_TILE */
    T *sV = sK + 2 * L::KV_TILE;

    const int64_t R = len * g, r0 = (int64_t)(gridDim.x - 1 - blockIdx.x) * FA32_BM;
    if (r0 >= R)
        return;
    const int64_t grp = blockIdx.y, seq = blockIdx.z;
    const T *qg = (const T *)q + ((size_t)(seq * len * nh) + (size_t)(grp * len * g)) * D;
    const T *kg = (const T *)k + ((size_t)(seq * len * nkv) + (size_t)(grp * len)) * D;
    const T *vg = (const T *)v + ((size_t)(seq * len * nkv) + (size_t)(grp * len)) * D;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, col2 = 2 * (lane % 4);
    int64_t row[2][2], t[2][2]; /* [row tile][i]: the thread's rows and their tokens */
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int i = 0; i < 2; i++) {
            row[mt][i] = r0 + warp * 32 + mt * 16 + lane / 4 + 8 * i;
            t[mt][i] = row[mt][i] / g;
        }
    const int64_t last_row = (r0 + FA32_BM < R ? r0 + FA32_BM : R) - 1;
    const int64_t key_blocks = last_row / g / FA_BN + 1; /* the causal limit */
    const int64_t t_first = r0 / g;                       /* key tiles up to it need no mask */
    const T *sQw = sQ + warp * 32 * L::LD;

    load_rows<D, FA32_BM>(sQ, qg + (size_t)r0 * D, R - r0, qg);
    load_rows<D, FA_BN>(sK, kg, len, kg);
    cp_async_commit();
    cp_async_wait_all();
    __syncthreads();

    /* Pass 1: row maximum m and sum l of exp(s - m), as attention.cu. */
    float m[2][2] = { { -INFINITY, -INFINITY }, { -INFINITY, -INFINITY } };
    float l[2][2] = { { 0.0f, 0.0f }, { 0.0f, 0.0f } };
    float s[2][FA_BN / 8][4];
    for (int64_t kb = 0; kb < key_blocks; kb++) {
        const int64_t n0 = kb * FA_BN;
        if (kb + 1 < key_blocks)
            load_rows<D, FA_BN>(sK + (kb + 1) % 2 * L::KV_TILE, kg + (size_t)(n0 + FA_BN) * D,
                                len - n0 - FA_BN, kg);
        cp_async_commit();
        tile_scores32<DT, D>(s, sQw, sK + kb % 2 * L::KV_TILE, lane);
        const bool masked = n0 + FA_BN - 1 > t_first;
#pragma unroll
        for (int mt = 0; mt < 2; mt++) {
            const int lim[2] = { (int)(t[mt][0] - n0) - col2, (int)(t[mt][1] - n0) - col2 };
            if (masked)
                scale_mask<true>(s[mt], scale, lim);
            else
                scale_mask<false>(s[mt], scale, lim);
#pragma unroll
            for (int i = 0; i < 2; i++) {
                float mx = -INFINITY;
#pragma unroll
                for (int j = 0; j < FA_BN / 8; j++)
#pragma unroll
                    for (int e = 0; e < 2; e++)
                        mx = fmaxf(mx, s[mt][j][2 * i + e]);
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
                const float m_new = fmaxf(m[mt][i], mx);
                float sum = 0.0f;
#pragma unroll
                for (int j = 0; j < FA_BN / 8; j++)
                    sum += __expf(s[mt][j][2 * i] - m_new) + __expf(s[mt][j][2 * i + 1] - m_new);
                sum += __shfl_xor_sync(0xffffffffu, sum, 1);
                sum += __shfl_xor_sync(0xffffffffu, sum, 2);
                l[mt][i] = l[mt][i] * __expf(m[mt][i] - m_new) + sum;
                m[mt][i] = m_new;
            }
        }
        cp_async_wait_all();
        __syncthreads(); /* the next tile arrived; this one is free */
    }

    /* Pass 2: O = round(exp(s - m) / l) V; each V fragment serves both
     * row tiles. */
    float inv_l[2][2];
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int i = 0; i < 2; i++)
            inv_l[mt][i] = 1.0f / l[mt][i];
    float acc[2][D / 8][4];
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int n = 0; n < D / 8; n++)
            acc[mt][n][0] = acc[mt][n][1] = acc[mt][n][2] = acc[mt][n][3] = 0.0f;
    load_rows<D, FA_BN>(sK, kg, len, kg);
    load_rows<D, FA_BN>(sV, vg, len, vg);
    cp_async_commit();
    cp_async_wait_all();
    __syncthreads();
    for (int64_t kb = 0; kb < key_blocks; kb++) {
        const int64_t n0 = kb * FA_BN;
        const int b = kb % 2;
        if (kb + 1 < key_blocks) {
            load_rows<D, FA_BN>(sK + (1 - b) * L::KV_TILE, kg + (size_t)(n0 + FA_BN) * D,
                                len - n0 - FA_BN, kg);
            load_rows<D, FA_BN>(sV + (1 - b) * L::KV_TILE, vg + (size_t)(n0 + FA_BN) * D,
                                len - n0 - FA_BN, vg);
        }
        cp_async_commit();
        tile_scores32<DT, D>(s, sQw, sK + b * L::KV_TILE, lane);
        const bool masked = n0 + FA_BN - 1 > t_first;
        uint32_t pf[2][FA_BN / 16][4];
#pragma unroll
        for (int mt = 0; mt < 2; mt++) {
            const int lim[2] = { (int)(t[mt][0] - n0) - col2, (int)(t[mt][1] - n0) - col2 };
            if (masked)
                probabilities<DT, true>(pf[mt], s[mt], scale, m[mt], inv_l[mt], lim);
            else
                probabilities<DT, false>(pf[mt], s[mt], scale, m[mt], inv_l[mt], lim);
        }
        const T *vb = sV + b * L::KV_TILE;
#pragma unroll
        for (int jk = 0; jk < FA_BN / 16; jk++)
#pragma unroll
            for (int dn = 0; dn < D / 16; dn++) {
                uint32_t bv[4]; /* attention.cu's transposed B halves */
                ldsm_x4_trans(bv, vb + (jk * 16 + lane % 8 + (lane / 8 % 2) * 8) * L::LD +
                                      dn * 16 + (lane / 16) * 8);
#pragma unroll
                for (int mt = 0; mt < 2; mt++) {
                    mma16816<DT>(acc[mt][2 * dn], pf[mt][jk], bv[0], bv[1]);
                    mma16816<DT>(acc[mt][2 * dn + 1], pf[mt][jk], bv[2], bv[3]);
                }
            }
        cp_async_wait_all();
        __syncthreads();
    }

    /* The output and the maxima of o as attention.cu's epilogue (the
     * shared memory is free after the last barrier). */
    unsigned *smax = (unsigned *)fa_smem;
    if (omax) {
        for (int64_t i = threadIdx.x; i < g * D; i += FA_THREADS)
            smax[i] = 0u;
        __syncthreads();
    }
    T *os = (T *)o + (size_t)(seq * len * nh) * D;
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int i = 0; i < 2; i++) {
            if (row[mt][i] >= R)
                continue;
            const int64_t gi = row[mt][i] % g;
            T *dst = os + (size_t)(row[mt][i] / g * nh + grp * g + gi) * D;
#pragma unroll
            for (int n = 0; n < D / 8; n++) {
                const uint32_t pk = fa_elem<DT>::pack(acc[mt][n][2 * i], acc[mt][n][2 * i + 1]);
                *(uint32_t *)(dst + n * 8 + col2) = pk;
                if (omax) {
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

template <int DT, int D>
static tc_status launch32(void *o, const void *q, const void *k, const void *v, int64_t len,
                          int64_t n_seqs, int64_t nh, int64_t nkv, float scale, float *omax,
                          cudaStream_t stream)
{
    tc_status st = TC_OK;
    const size_t bytes = fa32_layout<D>::bytes;
    const int64_t g = nh / nkv, tiles = (len * g + FA32_BM - 1) / FA32_BM;
    const dim3 grid((unsigned)tiles, (unsigned)nkv, (unsigned)n_seqs);
    TC_CUDA_TRY(cudaFuncSetAttribute(flash_attn32_kernel<DT, D>,
                                     cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    flash_attn32_kernel<DT, D><<<grid, FA_THREADS, bytes, stream>>>(o, q, k, v, len, nh, nkv, g,
                                                                     scale, omax);
    return launched("flash_attn32_kernel");
done:
    return st;
}

size_t tc_fa32_smem_bytes(int64_t head_dim)
{
    return head_dim == 128 ? fa32_layout<128>::bytes : fa32_layout<64>::bytes;
}

tc_status tc_fa32_launch(void *o, const void *q, const void *k, const void *v, tc_dtype dt,
                         int64_t nh, int64_t nkv, int64_t head_dim, int64_t len, int64_t n_seqs,
                         float scale, float *omax, cudaStream_t s)
{
    if (dt == TC_DT_F16)
        return head_dim == 128 ? launch32<1, 128>(o, q, k, v, len, n_seqs, nh, nkv, scale, omax, s)
                               : launch32<1, 64>(o, q, k, v, len, n_seqs, nh, nkv, scale, omax, s);
    return head_dim == 128 ? launch32<2, 128>(o, q, k, v, len, n_seqs, nh, nkv, scale, omax, s)
                           : launch32<2, 64>(o, q, k, v, len, n_seqs, nh, nkv, scale, omax, s);
}
