/* attention.cu: causal attention of the calibration forward pass without
 * materialised scores (launcher in trtconv/kernels/fwd.h).
 *
 * The cuBLAS path (src/fwd/fwd_gpu.c) writes every head's [len x len]
 * float32 scores to memory, reads them back for the softmax and writes the
 * probabilities again: at 512 tokens that traffic, not the arithmetic, made
 * attention 13% of the calibration. Here one block owns 64 query rows of one
 * KV group (rows are (token, head of the group) pairs, the layout rope_split
 * writes) and walks the key blocks up to the causal limit twice, with the
 * scores of each 64 x 64 tile computed by tensor cores (WMMA, float32
 * accumulation) into shared memory:
 *   1. the row maxima and the sums of exp(s - max) (running, rescaled as
 *      the maximum grows: the online softmax of FlashAttention, Dao et al.
 *      2022);
 *   2. the normalised probabilities exp(s - max) / sum rounded to the
 *      dtype, as the cuBLAS path rounds them, times V, accumulated in
 *      float32 in registers and rounded once.
 * The scores are computed twice (a third more arithmetic than one pass)
 * so that the output accumulators never need rescaling, which WMMA's
 * opaque fragment layout would force through shared memory.
 *
 * The results differ from the cuBLAS path's in the last bits (the sum's
 * order, exp's approximation); tests/cuda/test_fwd_cuda.c holds both to
 * the CPU backend within the attention tolerance. */
#include <mma.h>
#include <cuda_bf16.h>

#include "fwd_common.cuh"

using namespace nvcuda;

template <int DT> struct wmma_elem;
template <> struct wmma_elem<1> {
    typedef __half T;
    static __device__ __forceinline__ T from(float v) { return __float2half_rn(v); }
};
template <> struct wmma_elem<2> {
    typedef __nv_bfloat16 T;
    static __device__ __forceinline__ T from(float v) { return __float2bfloat16_rn(v); }
};

#define FA_BM 64        /* query rows per block */
#define FA_BN 64        /* keys per step */
#define FA_WARPS 4      /* each warp owns 16 of the query rows */
#define FA_THREADS (FA_WARPS * 32)

/* Shared-memory strides (elements), padded against bank conflicts and kept
 * multiples of 16 bytes as WMMA's loads and stores need. */
template <int D> struct fa_layout {
    static constexpr int QLD = D + 8;         /* Q, K, V tiles, dtype */
    static constexpr int SLD = FA_BN + 4;     /* scores, float */
    static constexpr int PLD = FA_BN + 8;     /* probabilities, dtype */
    static constexpr int OLD = D + 4;         /* output staging, float (in K and V) */
    static constexpr size_t bytes = (size_t)3 * FA_BM * QLD * 2 + (size_t)FA_BM * SLD * 4 +
                                    (size_t)FA_BM * PLD * 2;
    static_assert((size_t)FA_BM * OLD * 4 <= (size_t)2 * FA_BN * QLD * 2,
                  "the output staging fits where K and V were");
};

/* Stage a 64-row tile of `rows` valid rows (the rest zero: no stale NaN
 * times a zero probability) from src (row stride D) into dst. */
template <int D, typename T>
__device__ __forceinline__ void load_tile(T *dst, const T *src, int64_t rows)
{
    constexpr int CHUNKS = D / 8, LD = fa_layout<D>::QLD;
    for (int c = threadIdx.x; c < FA_BM * CHUNKS; c += FA_THREADS) {
        const int row = c / CHUNKS, col = c % CHUNKS * 8;
        *(uint4 *)(dst + row * LD + col) =
            row < rows ? *(const uint4 *)(src + (size_t)row * D + col) : make_uint4(0, 0, 0, 0);
    }
}

/* S = Q K^T * scale for the warp's 16 rows into its rows of sS. */
template <int D, typename T>
__device__ __forceinline__ void tile_scores(float *sS, const T *sQ, const T *sK, int warp)
{
    typedef fa_layout<D> L;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[FA_BN / 16];
#pragma unroll
    for (int j = 0; j < FA_BN / 16; j++)
        wmma::fill_fragment(acc[j], 0.0f);
#pragma unroll
    for (int kk = 0; kk < D; kk += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
        wmma::load_matrix_sync(a, sQ + warp * 16 * L::QLD + kk, L::QLD);
#pragma unroll
        for (int j = 0; j < FA_BN / 16; j++) {
            wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> b;
            wmma::load_matrix_sync(b, sK + j * 16 * L::QLD + kk, L::QLD);
            wmma::mma_sync(acc[j], a, b, acc[j]);
        }
    }
#pragma unroll
    for (int j = 0; j < FA_BN / 16; j++)
        wmma::store_matrix_sync(sS + warp * 16 * L::SLD + j * 16, acc[j], L::SLD,
                                wmma::mem_row_major);
}

/* grid: (ceil(len * g / FA_BM), kv heads, sequences of the run). The run's
 * sequences all have `len` tokens and follow each other: sequence s's q
 * region starts at token s * len (rope_split's layout: [kv group][t][g][d]
 * per sequence), its k and v regions likewise ([kv head][t][d]); o is
 * [tokens, nh * d] from the run's first token. In the softmax each pair of
 * lanes owns one of the warp's 16 rows, 32 keys each. */
template <int DT, int D>
__global__ void __launch_bounds__(FA_THREADS)
    flash_attn_kernel(void *o, const void *q, const void *k, const void *v, int64_t len,
                      int64_t nh, int64_t nkv, int64_t g, float scale)
{
    typedef typename wmma_elem<DT>::T T;
    typedef fa_layout<D> L;
    extern __shared__ __align__(128) unsigned char fa_smem[];
    T *sQ = (T *)fa_smem;
    T *sK = sQ + FA_BM * L::QLD;
    T *sV = sK + FA_BN * L::QLD;
    float *sS = (float *)(sV + FA_BN * L::QLD);
    T *sP = (T *)(sS + FA_BM * L::SLD);

    const int64_t R = len * g, r0 = (int64_t)blockIdx.x * FA_BM;
    if (r0 >= R)
        return;
    const int64_t grp = blockIdx.y, seq = blockIdx.z;
    const T *qg = (const T *)q + ((size_t)(seq * len * nh) + (size_t)(grp * len * g)) * D;
    const T *kg = (const T *)k + ((size_t)(seq * len * nkv) + (size_t)(grp * len)) * D;
    const T *vg = (const T *)v + ((size_t)(seq * len * nkv) + (size_t)(grp * len)) * D;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int row = warp * 16 + lane / 2, half = lane % 2;
    const int64_t t = (r0 + row) / g;    /* the row's token: keys 0 .. t */
    const int64_t last_row = (r0 + FA_BM < R ? r0 + FA_BM : R) - 1;
    const int64_t key_blocks = last_row / g / FA_BN + 1; /* the causal limit */

    load_tile<D>(sQ, qg + (size_t)r0 * D, R - r0);

    /* Pass 1: row maximum m and sum l of exp(s - m). */
    float m = -INFINITY, l = 0.0f;
    for (int64_t kb = 0; kb < key_blocks; kb++) {
        const int64_t n0 = kb * FA_BN;
        __syncthreads(); /* sK free (and sQ staged, the first time) */
        load_tile<D>(sK, kg + (size_t)n0 * D, len - n0);
        __syncthreads();
        tile_scores<D>(sS, sQ, sK, warp);
        __syncwarp();
        float s[32], mx = -INFINITY;
#pragma unroll
        for (int c = 0; c < 32; c++) {
            const int64_t key = n0 + half * 32 + c;
            s[c] = key <= t ? sS[row * L::SLD + half * 32 + c] * scale : -INFINITY;
            mx = fmaxf(mx, s[c]);
        }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        /* Key 0 is in every row's first block: m is finite after it. */
        const float m_new = fmaxf(m, mx);
        float sum = 0.0f;
#pragma unroll
        for (int c = 0; c < 32; c++)
            sum += __expf(s[c] - m_new);
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        l = l * __expf(m - m_new) + sum;
        m = m_new;
    }

    /* Pass 2: O = round(exp(s - m) / l) V, accumulated in registers. */
    const float inv_l = 1.0f / l;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[D / 16];
#pragma unroll
    for (int j = 0; j < D / 16; j++)
        wmma::fill_fragment(acc[j], 0.0f);
    for (int64_t kb = 0; kb < key_blocks; kb++) {
        const int64_t n0 = kb * FA_BN;
        __syncthreads(); /* sK, sV free */
        load_tile<D>(sK, kg + (size_t)n0 * D, len - n0);
        load_tile<D>(sV, vg + (size_t)n0 * D, len - n0);
        __syncthreads();
        tile_scores<D>(sS, sQ, sK, warp);
        __syncwarp();
#pragma unroll
        for (int c = 0; c < 32; c += 8) {
            T p[8];
#pragma unroll
            for (int x = 0; x < 8; x++) {
                const int col = half * 32 + c + x;
                const float sc = sS[row * L::SLD + col] * scale;
                p[x] = wmma_elem<DT>::from(n0 + col <= t ? __expf(sc - m) * inv_l : 0.0f);
            }
            *(uint4 *)(sP + row * L::PLD + half * 32 + c) = *(const uint4 *)p;
        }
        __syncwarp();
#pragma unroll
        for (int kk = 0; kk < FA_BN; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
            wmma::load_matrix_sync(a, sP + warp * 16 * L::PLD + kk, L::PLD);
#pragma unroll
            for (int j = 0; j < D / 16; j++) {
                wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> b;
                wmma::load_matrix_sync(b, sV + kk * L::QLD + j * 16, L::QLD);
                wmma::mma_sync(acc[j], a, b, acc[j]);
            }
        }
    }

    /* o[t, (grp * g + gi) * D + c] = round(O), staged where K and V were. */
    __syncthreads();
    float *sO = (float *)sK;
#pragma unroll
    for (int j = 0; j < D / 16; j++)
        wmma::store_matrix_sync(sO + warp * 16 * L::OLD + j * 16, acc[j], L::OLD,
                                wmma::mem_row_major);
    __syncwarp();
    T *os = (T *)o + (size_t)(seq * len * nh) * D;
    for (int rr = 0; rr < 16; rr++) {
        const int orow = warp * 16 + rr;
        const int64_t r = r0 + orow;
        if (r >= R)
            break;
        const int64_t head = grp * g + r % g;
        T *dst = os + (size_t)(r / g * nh + head) * D;
        for (int c = lane; c < D; c += 32)
            dst[c] = wmma_elem<DT>::from(sO[orow * L::OLD + c]);
    }
}

extern "C" int tc_fwd_attention_fused_supported(tc_dtype dt, int64_t head_dim)
{
    return (dt == TC_DT_F16 || dt == TC_DT_BF16) && (head_dim == 64 || head_dim == 128);
}

template <int DT, int D>
static tc_status launch_flash(void *o, const void *q, const void *k, const void *v, int64_t len,
                              int64_t n_seqs, int64_t nh, int64_t nkv, float scale,
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
                                                                   scale);
    return launched("flash_attn_kernel");
done:
    return st;
}

extern "C" tc_status tc_fwd_attention_fused_cuda(void *o, const void *q, const void *k,
                                                 const void *v, tc_dtype dt, int64_t nh,
                                                 int64_t nkv, int64_t head_dim, int64_t len,
                                                 int64_t n_seqs, float scale, void *stream)
{
    if (!tc_fwd_attention_fused_supported(dt, head_dim) || nkv < 1 || nh % nkv != 0)
        return tc_fail(TC_E_INTERNAL, "%s: %s, head_dim %lld, %lld/%lld heads not supported",
                       __func__, tc_dtype_name(dt), (long long)head_dim, (long long)nh,
                       (long long)nkv);
    if (len <= 0 || n_seqs <= 0)
        return TC_OK;
    if ((len * (nh / nkv) + FA_BM - 1) / FA_BM > INT32_MAX || nkv > 65535 || n_seqs > 65535)
        return tc_fail(TC_E_INTERNAL, "%s: grid too large", __func__);
    if (!aligned16(o) || !aligned16(q) || !aligned16(k) || !aligned16(v))
        return tc_fail(TC_E_INTERNAL, "%s: buffers not 16-byte aligned", __func__);
    cudaStream_t s = (cudaStream_t)stream;
    if (dt == TC_DT_F16)
        return head_dim == 128 ? launch_flash<1, 128>(o, q, k, v, len, n_seqs, nh, nkv, scale, s)
                               : launch_flash<1, 64>(o, q, k, v, len, n_seqs, nh, nkv, scale, s);
    return head_dim == 128 ? launch_flash<2, 128>(o, q, k, v, len, n_seqs, nh, nkv, scale, s)
                           : launch_flash<2, 64>(o, q, k, v, len, n_seqs, nh, nkv, scale, s);
}
