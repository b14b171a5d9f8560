/* calib_max.cu: the calibration maxima (activation columns, weight rows)
 * and SmoothQuant's smoothing and int8 weight kernels (launchers in
 * trtconv/kernels/fwd.h). CPU references: the matching functions of
 * src/fwd/fwd_cpu.c, held bit for bit by tests/cuda/test_sq_cuda.c. */
#include "fwd_common.cuh"

/* ---- calibration maxima ---- */

/* A thread owns one column of a chunk of ABSMAX_ROWS rows (consecutive
 * threads read consecutive columns) and folds its maximum into acc with an
 * integer atomicMax on the bits of |v|: for non-negative floats integer
 * order is float order, and NaN bits exceed every number. */
#define ABSMAX_ROWS 64

template <int DT>
__global__ void absmax_cols_kernel(float *acc, const void *x, int x_f32, const void *bias,
                                   int64_t rows, int64_t ld, int64_t c0, int64_t cols)
{
    const int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols)
        return;
    const int64_t r0 = (int64_t)blockIdx.y * ABSMAX_ROWS;
    const int64_t r1 = r0 + ABSMAX_ROWS < rows ? r0 + ABSMAX_ROWS : rows;
    const float bc = bias ? elem<DT>::ld(bias, (size_t)c) : 0.0f;
    unsigned m = 0;
    for (int64_t r = r0; r < r1; r++) {
        const size_t i = (size_t)(r * ld + c0 + c);
        float v = x_f32 ? ((const float *)x)[i] : elem<DT>::ld(x, i);
        if (bias)
            v += bc;
        const unsigned a = __float_as_uint(v) & 0x7fffffffu;
        m = a > m ? a : m;
    }
    atomicMax((unsigned *)acc + c, m);
}

/* absmax_cols_kernel with each thread on VEC consecutive columns (16 or 32
 * bytes per row) and a slab of rows per block, so that the loads of a warp
 * are wide. AHEAD rows are loaded before any of them is folded in: a
 * thread loading one row at a time has one load in flight, and then the
 * whole grid keeps about 1 MB in flight at an 8B micro-batch, which the
 * memory's latency limits to about 1.3 TB/s (the kernel measured 26.5 us
 * for 33.6 MB on an H100, 43% of a copy; session 17). */
#define ABSMAX_VEC_ROWS 32
#define ABSMAX_VEC_AHEAD 4
#define ABSMAX_VEC_BLOCK 128
/* 8 slabs per block: 23.3 -> 15.6 us for [4096, 4096] on an H100 (session
 * 19; fold_row_warps). */
#define ABSMAX_VEC_ROW_WARPS 8

/* The slab a thread of a column-slab kernel owns: grid x and threadIdx.x
 * over groups of VEC columns, grid y and threadIdx.y over slabs of `slab`
 * rows (a block of blockDim.y row warps covers blockDim.y slabs): columns
 * [c, c + VEC), rows [r0, r1), and the bias of those columns (0 without
 * one). False past the last column, with no rows: such a thread still
 * reaches fold_row_warps' barrier. */
template <int DT>
__device__ __forceinline__ bool col_slab(int64_t cols, int64_t rows, int64_t slab,
                                         const void *bias, int64_t *c, int64_t *r0, int64_t *r1,
                                         float *bc)
{
    *c = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    *r0 = ((int64_t)blockIdx.y * blockDim.y + threadIdx.y) * slab;
    *r1 = *r0 + slab < rows ? *r0 + slab : rows;
    const bool in = *c < cols;
    if (!in || *r1 < *r0)
        *r1 = *r0;
#pragma unroll
    for (int k = 0; k < VEC; k++)
        bc[k] = bias && in ? elem<DT>::ld(bias, (size_t)(*c + k)) : 0.0f;
    return in;
}

/* Folds the column maxima m of a block's row warps (threadIdx.y) into the
 * threads of row warp 0 through shared memory, so that a column takes one
 * atomicMax per block instead of one per slab: atomics on one address
 * serialise in L2, and silu*mul's 24 per thread cost more than its
 * arithmetic when the slabs are short (bench_fwd_kernels' slab sweep).
 * Every thread of the block calls it (a barrier); true for the threads
 * that then hold the block's maxima. Shared memory: (blockDim.y - 1) * N *
 * blockDim.x words, row_warps_smem's bytes at launch. */
template <int N> __device__ __forceinline__ bool fold_row_warps(unsigned (&m)[N])
{
    if (blockDim.y == 1)
        return true;
    extern __shared__ unsigned row_warps_max[];
    const unsigned x = threadIdx.x, bx = blockDim.x;
    if (threadIdx.y > 0)
#pragma unroll
        for (int k = 0; k < N; k++)
            row_warps_max[((threadIdx.y - 1) * N + k) * bx + x] = m[k];
    __syncthreads();
    if (threadIdx.y > 0)
        return false;
    for (unsigned y = 1; y < blockDim.y; y++)
#pragma unroll
        for (int k = 0; k < N; k++) {
            const unsigned o = row_warps_max[((y - 1) * N + k) * bx + x];
            m[k] = o > m[k] ? o : m[k];
        }
    return true;
}

/* The block shape of a column-slab launch with `row_warps` slabs per block
 * (1, 2, 4 or 8) and `threads` threads in all, and its shared memory for
 * fold_row_warps with N maxima per thread. */
static inline bool row_warps_ok(int row_warps)
{
    return row_warps == 1 || row_warps == 2 || row_warps == 4 || row_warps == 8;
}
static inline dim3 row_warps_block(int threads, int row_warps)
{
    return dim3((unsigned)(threads / row_warps), (unsigned)row_warps);
}
static inline size_t row_warps_smem(int threads, int row_warps, int n)
{
    return (size_t)(row_warps - 1) * (size_t)n * (size_t)(threads / row_warps) * sizeof(unsigned);
}

/* The VEC values of row r as float32 (x float32 or dt), unconverted
 * loads first: see absmax_cols_vec_kernel. */
template <int DT> struct cols_row {
    uint4 raw[2];
    __device__ __forceinline__ void load(const void *x, int x_f32, size_t i)
    {
        if (x_f32) {
            raw[0] = *(const uint4 *)((const float *)x + i);
            raw[1] = *(const uint4 *)((const float *)x + i + 4);
        } else {
            raw[0] = vec<DT>::raw16(x, i);
        }
    }
    __device__ __forceinline__ void fold(int x_f32, bool bias, const float *bc,
                                         unsigned *m) const
    {
        float v[VEC];
        if (x_f32) {
            const float *f = (const float *)raw;
#pragma unroll
            for (int k = 0; k < VEC; k++)
                v[k] = f[k];
        } else {
            vec<DT> h;
            h.unpack(raw[0]);
#pragma unroll
            for (int k = 0; k < VEC; k++)
                v[k] = h.f[k];
        }
#pragma unroll
        for (int k = 0; k < VEC; k++) {
            if (bias)
                v[k] += bc[k];
            const unsigned a = abs_bits(v[k]);
            m[k] = a > m[k] ? a : m[k];
        }
    }
};

/* Where a column's maxima go: columns from c1 to acc1 (from its start),
 * from c2 on to acc2, those before c1 to the kernel's acc: the q, k and v
 * columns of qkv in one pass (tc_fwd_absmax_cols_qkv_cuda). c1, c2 are
 * multiples of VEC, so a thread's columns share one destination. */
struct col_split {
    float *acc1, *acc2;
    int64_t c1, c2;
};

__device__ __forceinline__ unsigned *split_dest(float *acc, const col_split &sp, int64_t c)
{
    if (c >= sp.c2)
        return (unsigned *)sp.acc2 + (c - sp.c2);
    if (c >= sp.c1)
        return (unsigned *)sp.acc1 + (c - sp.c1);
    return (unsigned *)acc + c;
}

template <int DT, int AHEAD>
__global__ void absmax_cols_vec_kernel(float *acc, const void *__restrict__ x, int x_f32,
                                       const void *bias, int64_t rows, int64_t ld, int64_t c0,
                                       int64_t cols, int64_t slab, col_split sp)
{
    int64_t c, r0, r1;
    float bc[VEC];
    const bool in = col_slab<DT>(cols, rows, slab, bias, &c, &r0, &r1, bc);
    const bool has_bias = bias != NULL;
    unsigned m[VEC] = { 0 };
    int64_t r = r0;
    for (; r + AHEAD <= r1; r += AHEAD) {
        cols_row<DT> row[AHEAD];
#pragma unroll
        for (int j = 0; j < AHEAD; j++)
            row[j].load(x, x_f32, (size_t)((r + j) * ld + c0 + c));
#pragma unroll
        for (int j = 0; j < AHEAD; j++)
            row[j].fold(x_f32, has_bias, bc, m);
    }
    for (; r < r1; r++) {
        cols_row<DT> row;
        row.load(x, x_f32, (size_t)(r * ld + c0 + c));
        row.fold(x_f32, has_bias, bc, m);
    }
    if (fold_row_warps(m) && in) {
        unsigned *dst = split_dest(acc, sp, c);
#pragma unroll
        for (int k = 0; k < VEC; k++)
            atomicMax(dst + k, m[k]);
    }
}

template <typename E>
__device__ __forceinline__ void absmax_row(float *out, const void *w, int64_t r, int64_t cols, E)
{
    unsigned m = 0;
    for (int64_t c = threadIdx.x % 32; c < cols; c += 32) {
        const unsigned a = __float_as_uint(E::ld(w, (size_t)(r * cols + c))) & 0x7fffffffu;
        m = a > m ? a : m;
    }
    for (int o = 16; o > 0; o /= 2) {
        const unsigned other = __shfl_down_sync(0xffffffffu, m, o);
        m = other > m ? other : m;
    }
    if (threadIdx.x % 32 == 0)
        out[r] = __uint_as_float(m);
}

/* One warp per row (grid-stride over rows: the grid is capped). */
template <int DT>
__global__ void absmax_rows_kernel(float *out, const void *w, int64_t rows, int64_t cols)
{
    const int64_t warps = (int64_t)gridDim.x * (blockDim.x / 32);
    for (int64_t r = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; r < rows;
         r += warps)
        absmax_row(out, w, r, cols, elem<DT>());
}

extern "C" tc_status tc_fwd_absmax_cols_cuda(float *acc, const void *x, int x_f32,
                                             const void *bias, tc_dtype dt, int64_t rows,
                                             int64_t ld, int64_t c0, int64_t cols, void *stream)
{
    return tc_fwd_absmax_cols_rows_cuda(acc, x, x_f32, bias, dt, rows, ld, c0, cols,
                                        ABSMAX_VEC_ROWS, ABSMAX_VEC_AHEAD, ABSMAX_VEC_ROW_WARPS,
                                        stream);
}

/* absmax_cols_vec_kernel<DT, ahead> for ahead 1, 2, 4 or 8 (below 1: 1,
 * between: the next lower power of two). */
template <int DT>
static void absmax_cols_vec_launch(int ahead, dim3 grid, dim3 block, size_t smem, cudaStream_t s,
                                   float *acc, const void *x, int x_f32, const void *bias,
                                   int64_t rows, int64_t ld, int64_t c0, int64_t cols,
                                   int64_t slab, col_split sp)
{
    if (ahead >= 8)
        absmax_cols_vec_kernel<DT, 8>
            <<<grid, block, smem, s>>>(acc, x, x_f32, bias, rows, ld, c0, cols, slab, sp);
    else if (ahead >= 4)
        absmax_cols_vec_kernel<DT, 4>
            <<<grid, block, smem, s>>>(acc, x, x_f32, bias, rows, ld, c0, cols, slab, sp);
    else if (ahead >= 2)
        absmax_cols_vec_kernel<DT, 2>
            <<<grid, block, smem, s>>>(acc, x, x_f32, bias, rows, ld, c0, cols, slab, sp);
    else
        absmax_cols_vec_kernel<DT, 1>
            <<<grid, block, smem, s>>>(acc, x, x_f32, bias, rows, ld, c0, cols, slab, sp);
}

/* The vector kernel when the layout allows it (then true, with *st its
 * launch's status), else false with nothing launched. */
static bool absmax_cols_vec(tc_status *st, float *acc, col_split sp, const void *x, int x_f32,
                            const void *bias, tc_dtype dt, int64_t rows, int64_t ld, int64_t c0,
                            int64_t cols, int64_t slab, int ahead, int row_warps, void *stream)
{
    const int64_t vy = slab > 0 ? (rows + slab * row_warps - 1) / (slab * row_warps) : 0;
    if (!(slab > 0 && vy <= 65535 && ld % VEC == 0 && c0 % VEC == 0 && cols % VEC == 0 &&
          (dt == TC_DT_F16 || dt == TC_DT_BF16) && aligned16(x) && aligned16(acc) &&
          (!bias || aligned16(bias))))
        return false;
    const int64_t threads = cols / VEC;
    const dim3 block = row_warps_block(ABSMAX_VEC_BLOCK, row_warps);
    const size_t smem = row_warps_smem(ABSMAX_VEC_BLOCK, row_warps, VEC);
    const dim3 vgrid((unsigned)((threads + block.x - 1) / block.x), (unsigned)vy);
    if (dt == TC_DT_F16)
        absmax_cols_vec_launch<1>(ahead, vgrid, block, smem, (cudaStream_t)stream, acc, x, x_f32,
                                  bias, rows, ld, c0, cols, slab, sp);
    else
        absmax_cols_vec_launch<2>(ahead, vgrid, block, smem, (cudaStream_t)stream, acc, x, x_f32,
                                  bias, rows, ld, c0, cols, slab, sp);
    *st = launched("absmax_cols_vec_kernel");
    return true;
}

static const col_split no_split = { NULL, NULL, INT64_MAX, INT64_MAX };

extern "C" tc_status tc_fwd_absmax_cols_rows_cuda(float *acc, const void *x, int x_f32,
                                                  const void *bias, tc_dtype dt, int64_t rows,
                                                  int64_t ld, int64_t c0, int64_t cols,
                                                  int64_t slab, int ahead, int row_warps,
                                                  void *stream)
{
    if (!row_warps_ok(row_warps))
        return tc_fail(TC_E_INTERNAL, "%s: %d row warps (1, 2, 4 or 8)", __func__, row_warps);
    if (rows <= 0 || cols <= 0)
        return TC_OK;
    const int64_t gy = (rows + ABSMAX_ROWS - 1) / ABSMAX_ROWS;
    if (gy > 65535)
        return tc_fail(TC_E_INTERNAL, "%s: %lld rows is more than supported", __func__,
                       (long long)rows);
    tc_status st;
    if (absmax_cols_vec(&st, acc, no_split, x, x_f32, bias, dt, rows, ld, c0, cols, slab, ahead,
                        row_warps, stream))
        return st;
    dim3 grid((unsigned)((cols + FWD_BLOCK - 1) / FWD_BLOCK), (unsigned)gy);
    DISPATCH(dt, absmax_cols_kernel, grid, FWD_BLOCK, stream, acc, x, x_f32, bias, rows, ld, c0,
             cols);
    return launched("absmax_cols_kernel");
}

/* The three launches of tc_fwd_absmax_cols_cuda over qkv's q, k and v
 * columns in one: at an 8B micro-batch the k and v launches (8 MB each)
 * took 12 us apiece, mostly the launch's ramp, beside 19 us for q's 33 MB
 * (Nsight Compute, session 20). */
extern "C" tc_status tc_fwd_absmax_cols_qkv_cuda(float *acc_q, float *acc_k, float *acc_v,
                                                 const void *qkv, tc_dtype dt, int64_t rows,
                                                 int64_t nq, int64_t nkv, void *stream)
{
    const int64_t ld = nq + 2 * nkv;
    if (rows <= 0 || ld <= 0)
        return TC_OK;
    tc_status st = TC_OK;
    const col_split sp = { acc_k, acc_v, nq, nq + nkv };
    if (rows <= (int64_t)(ABSMAX_ROWS) * 65535 && nq % VEC == 0 && nkv % VEC == 0 &&
        absmax_cols_vec(&st, acc_q, sp, qkv, 0, NULL, dt, rows, ld, 0, ld, ABSMAX_VEC_ROWS,
                        ABSMAX_VEC_AHEAD, ABSMAX_VEC_ROW_WARPS, stream))
        return st;
    st = tc_fwd_absmax_cols_cuda(acc_q, qkv, 0, NULL, dt, rows, ld, 0, nq, stream);
    if (st == TC_OK)
        st = tc_fwd_absmax_cols_cuda(acc_k, qkv, 0, NULL, dt, rows, ld, nq, nkv, stream);
    if (st == TC_OK)
        st = tc_fwd_absmax_cols_cuda(acc_v, qkv, 0, NULL, dt, rows, ld, nq + nkv, nkv, stream);
    return st;
}

extern "C" tc_status tc_fwd_absmax_rows_cuda(float *out, const void *w, tc_dtype dt, int64_t rows,
                                             int64_t cols, void *stream)
{
    const int per_block = FWD_BLOCK / 32;
    LAUNCH(row_grid, (rows + per_block - 1) / per_block, rows, absmax_rows_kernel, FWD_BLOCK,
           stream, out, w, rows, cols);
}

/* ---- residual and silu*mul with their maxima (one pass instead of two) ----
 * A thread owns VEC consecutive columns of a slab of rows: it applies the
 * operation as the vector kernels of fwd.cu do (the same steps, so the same
 * bytes), keeps the column maxima of the values absmax_cols would read in
 * registers, and folds them in with one atomicMax per column and block
 * (fold_row_warps). */
#define FUSED_BLOCK 128
/* The read-ahead: silu*mul 224.6 -> 209.1 us, residual 66.3 -> 59.1 us per
 * 8B micro-batch on an H100 (docs/performance.md, session 16). */
#define FUSED_AHEAD 1
/* Rows per thread and slabs per block, from bench_fwd_kernels' sweep on an
 * H100 (one 8B micro-batch): residual 32 x 8 52.0 us against 60.5 us at
 * 32 x 1 (session 19); silu*mul 32 x 8 127.1 us against 152.7 us at 8 x 4
 * once the conversions went two at a time (session 20; 8 x 4 had been the
 * best of the sweep with one conversion per instruction, 196.7 us). */
#define RESID_ROWS 32
#define RESID_ROW_WARPS 8
#define SILU_ROWS 32
#define SILU_ROW_WARPS 8

/* AHEAD: the next row's loads are issued before this row's arithmetic, so
 * that a thread has two rows of loads in flight at the cost of their
 * registers (one more row, not the four of the variant session 14 tried,
 * which doubled the registers and halved occupancy); bench_fwd_kernels
 * times both. The pointers are __restrict__: h is read and written by the
 * same thread at the same place, never through p. */
template <int DT, bool AHEAD>
__global__ void residual_max_kernel(void *__restrict__ h, const float *__restrict__ p,
                                    const void *__restrict__ bias, int64_t T, int64_t H,
                                    float *__restrict__ acc, int64_t slab)
{
    int64_t c, r0, r1;
    float bc[VEC];
    const bool in = col_slab<DT>(H, T, slab, bias, &c, &r0, &r1, bc);
    unsigned m[VEC] = { 0 };
    float4 na[2];
    uint4 nx;
    if (AHEAD && r0 < r1) {
        const size_t i = (size_t)(r0 * H + c);
        na[0] = *(const float4 *)(p + i), na[1] = *(const float4 *)(p + i + 4);
        nx = vec<DT>::raw16(h, i);
    }
    for (int64_t r = r0; r < r1; r++) {
        const size_t i = (size_t)(r * H + c);
        float4 a4[2];
        vec<DT> x;
        if (AHEAD) {
            a4[0] = na[0], a4[1] = na[1];
            x.unpack(nx);
            if (r + 1 < r1) {
                const size_t j = i + (size_t)H;
                na[0] = *(const float4 *)(p + j), na[1] = *(const float4 *)(p + j + 4);
                nx = vec<DT>::raw16(h, j);
            }
        } else {
            a4[0] = *(const float4 *)(p + i), a4[1] = *(const float4 *)(p + i + 4);
            x.load(h, i);
        }
        const float *a = (const float *)a4;
        vec<DT> y;
#pragma unroll
        for (int k = 0; k < VEC; k++) {
            /* absmax_cols adds the bias only when there is one; the
             * residual always adds (0.0f: the scalar kernel's -0). */
            const float v = bias ? a[k] + bc[k] : a[k];
            const unsigned b = abs_bits(v);
            m[k] = b > m[k] ? b : m[k];
            y.f[k] = a[k] + bc[k];
        }
        y.round();
#pragma unroll
        for (int k = 0; k < VEC; k++)
            x.f[k] = x.f[k] + y.f[k];
        x.store(h, i);
    }
    if (fold_row_warps(m) && in)
#pragma unroll
        for (int k = 0; k < VEC; k++)
            atomicMax((unsigned *)acc + c + k, m[k]);
}

template <int DT, bool AHEAD>
__global__ void silu_mul_max_kernel(void *__restrict__ out, const void *__restrict__ g,
                                    const void *__restrict__ u, int64_t T, int64_t I,
                                    float *__restrict__ acc_g, float *__restrict__ acc_u,
                                    float *__restrict__ acc_out, int64_t slab)
{
    int64_t c, r0, r1;
    float unused[VEC];
    const bool in = col_slab<DT>(I, T, slab, NULL, &c, &r0, &r1, unused);
    /* The maxima of g, u and out: [0, VEC), [VEC, 2 VEC), [2 VEC, 3 VEC). */
    unsigned m[3 * VEC] = { 0 };
    uint4 ng, nu;
    if (AHEAD && r0 < r1) {
        ng = vec<DT>::raw16(g, (size_t)(r0 * I + c));
        nu = vec<DT>::raw16(u, (size_t)(r0 * I + c));
    }
    for (int64_t r = r0; r < r1; r++) {
        const size_t i = (size_t)(r * I + c);
        vec<DT> x, y;
        if (AHEAD) {
            x.unpack(ng);
            y.unpack(nu);
            if (r + 1 < r1) {
                ng = vec<DT>::raw16(g, i + (size_t)I);
                nu = vec<DT>::raw16(u, i + (size_t)I);
            }
        } else {
            x.load(g, i);
            y.load(u, i);
        }
#pragma unroll
        for (int k = 0; k < VEC; k++) {
            unsigned b = abs_bits(x.f[k]);
            m[k] = b > m[k] ? b : m[k];
            b = abs_bits(y.f[k]);
            m[VEC + k] = b > m[VEC + k] ? b : m[VEC + k];
        }
        silu_rounded(x);
#pragma unroll
        for (int k = 0; k < VEC; k++)
            x.f[k] = x.f[k] * y.f[k];
        /* The stored value, as absmax_cols would read it back. */
        const uint4 stored = x.pack();
        x.unpack(stored);
#pragma unroll
        for (int k = 0; k < VEC; k++) {
            const unsigned b = abs_bits(x.f[k]);
            m[2 * VEC + k] = b > m[2 * VEC + k] ? b : m[2 * VEC + k];
        }
        *(uint4 *)((uint16_t *)out + i) = stored;
    }
    if (fold_row_warps(m) && in)
#pragma unroll
        for (int k = 0; k < VEC; k++) {
            atomicMax((unsigned *)acc_g + c + k, m[k]);
            atomicMax((unsigned *)acc_u + c + k, m[VEC + k]);
            atomicMax((unsigned *)acc_out + c + k, m[2 * VEC + k]);
        }
}

/* DISPATCH16 for the kernels above, with or without the read-ahead. */
#define DISPATCH16_AHEAD(ahead, dt, KERNEL, grid, block, smem, stream, ...)                  \
    do {                                                                                    \
        const cudaStream_t s_ = (cudaStream_t)stream;                                       \
        if (dt == TC_DT_F16 && ahead)                                                       \
            KERNEL<1, true><<<grid, block, smem, s_>>>(__VA_ARGS__);                         \
        else if (dt == TC_DT_F16)                                                           \
            KERNEL<1, false><<<grid, block, smem, s_>>>(__VA_ARGS__);                        \
        else if (ahead)                                                                     \
            KERNEL<2, true><<<grid, block, smem, s_>>>(__VA_ARGS__);                         \
        else                                                                                \
            KERNEL<2, false><<<grid, block, smem, s_>>>(__VA_ARGS__);                        \
    } while (0)

static inline bool fused_ok(tc_dtype dt, int64_t T, int64_t cols, int64_t slab, int row_warps)
{
    return (dt == TC_DT_F16 || dt == TC_DT_BF16) && cols % VEC == 0 && slab > 0 &&
           (T + slab * row_warps - 1) / (slab * row_warps) <= 65535;
}

extern "C" tc_status tc_fwd_residual_add_max_cuda(void *h, const float *p32, const void *bias,
                                                  tc_dtype dt, int64_t T, int64_t H, float *acc,
                                                  void *stream)
{
    return tc_fwd_residual_add_max_rows_cuda(h, p32, bias, dt, T, H, acc, RESID_ROWS,
                                             FUSED_AHEAD, RESID_ROW_WARPS, stream);
}

extern "C" tc_status tc_fwd_residual_add_max_rows_cuda(void *h, const float *p32,
                                                       const void *bias, tc_dtype dt, int64_t T,
                                                       int64_t H, float *acc, int64_t slab,
                                                       int ahead, int row_warps, void *stream)
{
    if (!row_warps_ok(row_warps))
        return tc_fail(TC_E_INTERNAL, "%s: %d row warps (1, 2, 4 or 8)", __func__, row_warps);
    if (T <= 0 || H <= 0)
        return TC_OK;
    if (!fused_ok(dt, T, H, slab, row_warps) || !aligned16(h) || !aligned16(p32)) {
        TC_TRY(tc_fwd_absmax_cols_cuda(acc, p32, 1, bias, dt, T, H, 0, H, stream));
        return tc_fwd_residual_add_cuda(h, p32, bias, dt, T, H, stream);
    }
    const int64_t threads = H / VEC;
    const dim3 block = row_warps_block(FUSED_BLOCK, row_warps);
    const dim3 grid((unsigned)((threads + block.x - 1) / block.x),
                    (unsigned)((T + slab * row_warps - 1) / (slab * row_warps)));
    DISPATCH16_AHEAD(ahead, dt, residual_max_kernel, grid, block,
                     row_warps_smem(FUSED_BLOCK, row_warps, VEC), stream, h, p32, bias, T, H, acc,
                     slab);
    return launched("residual_max_kernel");
}

extern "C" tc_status tc_fwd_silu_mul_max_cuda(void *out, const void *g, const void *u, tc_dtype dt,
                                              int64_t T, int64_t I, float *acc_g, float *acc_u,
                                              float *acc_out, void *stream)
{
    return tc_fwd_silu_mul_max_rows_cuda(out, g, u, dt, T, I, acc_g, acc_u, acc_out, SILU_ROWS,
                                         FUSED_AHEAD, SILU_ROW_WARPS, stream);
}

extern "C" tc_status tc_fwd_silu_mul_max_rows_cuda(void *out, const void *g, const void *u,
                                                   tc_dtype dt, int64_t T, int64_t I,
                                                   float *acc_g, float *acc_u, float *acc_out,
                                                   int64_t slab, int ahead, int row_warps,
                                                   void *stream)
{
    if (!row_warps_ok(row_warps))
        return tc_fail(TC_E_INTERNAL, "%s: %d row warps (1, 2, 4 or 8)", __func__, row_warps);
    if (T <= 0 || I <= 0)
        return TC_OK;
    if (!fused_ok(dt, T, I, slab, row_warps) || !aligned16(out) || !aligned16(g) || !aligned16(u)) {
        TC_TRY(tc_fwd_silu_mul_cuda(out, g, u, dt, (size_t)(T * I), stream));
        TC_TRY(tc_fwd_absmax_cols_cuda(acc_g, g, 0, NULL, dt, T, I, 0, I, stream));
        TC_TRY(tc_fwd_absmax_cols_cuda(acc_u, u, 0, NULL, dt, T, I, 0, I, stream));
        return tc_fwd_absmax_cols_cuda(acc_out, out, 0, NULL, dt, T, I, 0, I, stream);
    }
    const int64_t threads = I / VEC;
    const dim3 block = row_warps_block(FUSED_BLOCK, row_warps);
    const dim3 grid((unsigned)((threads + block.x - 1) / block.x),
                    (unsigned)((T + slab * row_warps - 1) / (slab * row_warps)));
    DISPATCH16_AHEAD(ahead, dt, silu_mul_max_kernel, grid, block,
                     row_warps_smem(FUSED_BLOCK, row_warps, 3 * VEC), stream, out, g, u, T, I,
                     acc_g, acc_u, acc_out, slab);
    return launched("silu_mul_max_kernel");
}

/* ---- SmoothQuant smoothing and int8 weights ---- */

template <int DT>
/* Blocks over rows, threads over columns: no per-element division. */
__global__ void smooth_cols_kernel(void *w, int64_t rows, int64_t cols, const double *s, int divide)
{
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x)
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
            const size_t i = (size_t)(r * cols + c);
            const double v = (double)elem<DT>::ld(w, i), sc = s[c];
            /* float64 result cast to float, then stored in dt (torch's path). */
            elem<DT>::st(w, i, __double2float_rn(divide ? __ddiv_rn(v, sc) : __dmul_rn(v, sc)));
        }
}

/* Round a float to the quantization dtype (fwd_backend.h quantize_i8):
 * float16, bfloat16, or float32 (unchanged); the same bit functions as the
 * CPU's tc_round_to_dtype. */
__device__ __forceinline__ float round_qdt(float v, int qdt)
{
    if (qdt == TC_DT_F16)
        return elem<1>::rnd(v);
    if (qdt == TC_DT_BF16)
        return elem<2>::rnd(v);
    return v;
}

template <int DT>
__global__ void quantize_i8_kernel(int8_t *q, const void *w, int qdt, int64_t rows, int64_t cols,
                                   const float *scale, int mode)
{
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float sc = scale[r];
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
            const size_t i = (size_t)(r * cols + c);
            const float x = round_qdt(elem<DT>::ld(w, i), qdt);
            float v;
            if (mode == 0)
                v = round_qdt(__fmul_rn(x, round_qdt(sc, qdt)), qdt);
            else if (mode == 1)
                v = round_qdt(__fdiv_rn(x, sc), qdt);
            else
                v = __fmul_rn(x, sc);
            v = rintf(v);
            v = v > 127.0f ? 127.0f : (v < -127.0f ? -127.0f : v);
            q[i] = (int8_t)v;
        }
    }
}

extern "C" tc_status tc_sq_smooth_cols_cuda(void *w, tc_dtype dt, int64_t rows, int64_t cols,
                                            const double *s, int divide, void *stream)
{
    const size_t n = (size_t)rows * (size_t)cols;
    LAUNCH(row_grid, rows, n, smooth_cols_kernel, FWD_BLOCK, stream, w, rows, cols, s, divide);
}

extern "C" tc_status tc_sq_quantize_i8_cuda(int8_t *q, const void *w, tc_dtype dt, tc_dtype qdt,
                                            int64_t rows, int64_t cols, const float *scale,
                                            int mode, void *stream)
{
    const size_t n = (size_t)rows * (size_t)cols;
    LAUNCH(row_grid, rows, n, quantize_i8_kernel, FWD_BLOCK, stream, q, w, (int)qdt, rows, cols,
           scale, mode);
}
