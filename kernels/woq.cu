/* woq.cu: weight-only quantization (W8A16 / W4A16) into TensorRT-LLM's
 * CUTLASS mixed-GEMM layouts on the GPU (tc_woq_quantize_rows_cuda).
 *
 * Bit-exact twin of tc_woq_quantize_rows / tc_woq_quantize_ref (src/quant/woq.c,
 * trtllm-checkpoint.md §4.7-4.8; style.md A9); tests/cuda/test_woq_cuda.c
 * holds every layout, precision and dtype to the reference byte for byte.
 *
 * Exactness. The arithmetic is the reference's, operation for operation, in
 * IEEE float32: amax by fmaxf over |x| (max is exact and order-independent,
 * so the warp reduction order does not matter; fmaxf drops NaN like the
 * reference's comparisons), s = amax * 0x1p-7f / 0x1p-3f (one rounded
 * multiply), q = s != 0 ? roundf(x / s) : 0 with the correctly rounded
 * division (nvcc's default -prec-div=true; this file must not be built with
 * -use_fast_math, -ftz=true or -prec-div=false), then the reference's
 * std::min/std::max clamp including its NaN results (woq_quant). The build passes --fmad=false as for every
 * kernel file; nothing here could be contracted into an FMA anyway (there is
 * no a*b+c), so the flag is belt and braces. Dtype conversions of inputs and
 * scales are integer bit formulas copied from cast.cu / dtype.c, except F16
 * inputs on the device: cvt.f32.f16, exact (see woq_f16).
 *
 * Layout as index algebra. Write E = 32/bits (elements per 32-bit word),
 * UE = 128/bits (elements per 16 output bytes: 16 int8, 32 int4) and I the
 * column interleave (1; Ampere: 2 int8, 4 int4). Every step of §4.8 moves
 * data only inside 64-element k-tiles (LDSM blocks R = 16/32 = UE, column
 * interleave tiles of 64 k, register interleave inside one word), so the
 * processed bytes of the row group g = [g*I, (g+1)*I) of W are a sequence of
 * 16-byte "units" u = 0 .. K*I/UE - 1, and unit u is made from UE
 * consecutive inputs of a single row:
 *   tile = u / (I*UPT), il = (u / UPT) % I, b = u % UPT  (UPT = 64/UE)
 *   row  = g*I + il,    k0 = tile*64 + b*UE
 * (I = 1 gives k0 = u*UE). Inside a unit, output element t (0..UE-1, in
 * 32-bit words of E elements, element j of a word in bits j*bits..) is
 *   word w = t / E, slot j = t % E;  source position p = w*E + SRC[j]
 *   (SRC = identity on sm90; int8 {0,2,1,3}, int4 {0,2,4,6,1,3,5,7}:
 *   the step-4 register interleave), then the LDSM permutation on sm75-89:
 *   input k = k0 + P(p), P(t) = 8*((t%E)/2) + t%2 + 2*(t/E)
 *   (§4.8 step 1, 035b99e0's formula), else k = k0 + p;
 *   value = q[row][k] + bias (128 / 8 on sm70-89, 0 on sm90), masked to bits.
 * Output byte offset of unit u of group g: (g*K*I/UE + u) * 16.
 *
 * Work split (woq_stage_kernel, the fast path): a block takes a tile of rb
 * consecutive rows (rb a power of two and a multiple of I, about 32 KiB of
 * input; grid-stride over tiles, int64 indices). Phase 1 stages the tile in
 * shared memory with 16-byte cp.async copies, so every input byte is read
 * from DRAM exactly once, coalesced; phase 2 takes each row's max |x| from
 * the staged copy (warps split the rows, butterfly, shared atomicMax on the
 * float bits); phase 3 quantizes the staged copy unit by unit, thread t
 * taking units t, t + 256, ... of the tile in output order, so every warp
 * writes 512 contiguous bytes with 16-byte stores. The staged rows are
 * XOR-swizzled in 16-byte chunks (woq_swz) so phase 3's unit-strided lanes
 * spread over the banks. The phases are __host__ __device__ so that the
 * index algebra can be run on the CPU against the reference.
 * Fallback (woq_kernel): input not 16-byte aligned, or one row group larger
 * than the device's shared memory per block: one warp per row group. Pass
 * 1: each lane reads its units and keeps the max of |x|; all units of a
 * lane belong to the same row (32 is a multiple of I*UPT), so per-row maxima
 * are butterfly reductions with the other rows masked to 0. Pass 2: each
 * lane re-reads its units (normally L1/L2 hits), quantizes and writes 16
 * bytes per unit (one vector store when out_rows is 16-byte aligned).
 *
 * C++ stays inside this file (style.md V15): the only exported symbol is the
 * extern "C" launcher declared in trtconv/woq_cuda.h.
 */
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cuda_runtime.h>

/* The project headers have no extern "C" guards of their own. */
extern "C" {
#include "trtconv/core/dtype.h"
#include "trtconv/core/log.h"
#include "trtconv/core/status.h"
#include "trtconv/quant/woq.h"
}
#include "trtconv/kernels/woq.h"
#include "cuda_util.cuh"
#include "fp_bits.cuh"

/* Threads per block (8 warps; woq_kernel: one row group per warp at a time). */
#define WOQ_BLOCK 256
#define WOQ_WARPS (WOQ_BLOCK / 32)
/* Cap on blocks per SM for the grid-stride loop (8 are resident at once
 * with 256 threads; the rest queue behind them and balance the tail). */
#define WOQ_BLOCKS_PER_SM 32


#define WOQ_HD static __host__ __device__ __forceinline__
/* #pragma unroll inside __host__ __device__ code, silent in the host pass. */
#ifdef __CUDA_ARCH__
#define WOQ_UNROLL _Pragma("unroll")
#else
#define WOQ_UNROLL
#endif

/* ---- element conversions (copies of dtype.c / cast.cu) ----------------- */
/* __host__ as well, so the index and rounding algebra can be exercised on
 * the CPU against the reference without a GPU. */

WOQ_HD float woq_f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

WOQ_HD uint32_t woq_bits_from_f32(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* F16/BF16 bit conversions: kernels/fp_bits.cuh. */

/* One trait per input/scale dtype: raw bit container, exact widening to
 * float, and the scale conversion from float32. */
struct woq_f32 {
    typedef uint32_t raw;
    static const bool RCP = false; /* x / s by woq_div_rcp: F16 only */
    static const bool RCP_RANGED = false; /* ... and BF16 for scales in range */
    WOQ_HD float to_float(raw x) { return woq_f32_from_bits(x); }
    WOQ_HD raw from_float(float f) { return woq_bits_from_f32(f); }
};
struct woq_f16 {
    typedef uint16_t raw;
    static const bool RCP = true;
    static const bool RCP_RANGED = false;
    /* The device takes the hardware conversion (cvt.f32.f16, exact for every
     * non-NaN input, subnormals included). A NaN's payload may differ from
     * the bit formula's, which changes nothing: a NaN only ever meets fmaxf
     * (which drops it) and x / s, whose NaN quotient then follows woq_quant's
     * NaN rule whatever its bits. */
    WOQ_HD float to_float(raw x)
    {
#ifdef __CUDA_ARCH__
        float f;
        asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(x));
        return f;
#else
        return woq_f32_from_bits(tc_fp_f32_bits_from_f16(x));
#endif
    }
    WOQ_HD raw from_float(float f) { return tc_fp_f16_from_f32_bits(woq_bits_from_f32(f)); }
};
struct woq_bf16 {
    typedef uint16_t raw;
    static const bool RCP = false;
    /* The reciprocal form for scales in [WOQ_BF16_RCP_MIN, FLT_MAX] (see
     * woq_div_rcp): its quotient may differ from x / s in the last bit, but
     * the quantized integer never does (exhaustive check below). */
#ifdef TRTCONV_WOQ_BF16_DIV /* benchmark A/B only: the division everywhere */
    static const bool RCP_RANGED = false;
#else
    static const bool RCP_RANGED = true;
#endif
    WOQ_HD float to_float(raw x) { return woq_f32_from_bits((uint32_t)x << 16); }
    WOQ_HD raw from_float(float f) { return tc_fp_bf16_from_f32_bits(woq_bits_from_f32(f)); }
};

/* ---- quantization and layout algebra (see the top of the file) ---------- */

/* Compile-time constants of one (bits, layout) pair. */
template <int BITS, int LAYOUT> struct woq_cfg {
    static const int E = 32 / BITS;                                  /* elements per word */
    static const int UE = 128 / BITS;                                /* elements per unit */
    static const int UPT = 64 / UE;                                  /* units per 64-k tile row */
    static const int I = LAYOUT == TC_WOQ_LAYOUT_AMPERE ? (BITS == 8 ? 2 : 4) : 1; /* step 3 */
    static const bool PERMUTE = LAYOUT == TC_WOQ_LAYOUT_AMPERE;      /* step 1 */
    static const bool SHUFFLE = LAYOUT != TC_WOQ_LAYOUT_HOPPER;      /* step 4 */
    static const int BIAS = SHUFFLE ? (BITS == 8 ? 128 : 8) : 0;
    static const uint32_t MASK = BITS == 8 ? 0xFFu : 0xFu;
};

/* a + b rounded toward zero (add.rz.f32). Host: the exact double sum
 * (exact here: |a| <= 2^8, b in {0.5, 2^23}), truncated to float. */
WOQ_HD float woq_fadd_rz(float a, float b)
{
#ifdef __CUDA_ARCH__
    return __fadd_rz(a, b);
#else
    const double d = (double)a + (double)b;
    float f = (float)d;
    if (fabs((double)f) > fabs(d))
        f = nextafterf(f, 0.0f);
    return f;
#endif
}

/* The reference's per-element rule (src/quant/woq.c ref_quantize, upstream
 * symmetric_quantize): r = s != 0 ? roundf(x / s) : 0 with IEEE division and
 * roundf = half away from zero; int8: std::max(-128.f, std::min(127.f, r)),
 * so NaN (x = +-Inf over s = Inf) gives 127; int4: std::max(-8,
 * std::min(7, int(r))) with int(NaN) and out-of-range conversions = INT_MIN as
 * on x86-64, so they give -8.
 * Computed without FRND/F2I (quarter rate): y = x / s (div.rn, unchanged) is
 * clamped first (roundf is monotone and fixes the integer bounds, so
 * clamp(roundf(y)) == roundf(clamp(y))), with NaN (and, int4, y >= 2^31) sent
 * to the reference's result; then for the finite c, |c| <= 128:
 * roundf(c) = sign(c) * floor(|c| + 0.5), where rz(|c| + 0.5) keeps the
 * floor (every integer <= 129 is a float, so rounding toward zero never
 * crosses one; round-to-nearest would take 0.5 - 2^-25 to 1), and
 * rz(v + 2^23) = 2^23 + floor(v) for 0 <= v < 2^23, whose low mantissa bits
 * are floor(v). Checked against roundf + the clamps for all 2^32 y. */
template <int BITS> WOQ_HD int woq_quant_y(float y)
{
    float c;
    if (BITS == 8) {
        c = y < 127.0f ? y : 127.0f;   /* std::min(127.f, r): NaN -> 127 */
        c = -128.0f < c ? c : -128.0f; /* std::max(-128.f, c) */
    } else {
        c = y < 0x1p31f ? y : -8.0f; /* NaN, int(r >= 2^31) = INT_MIN -> -8 */
        c = c < 7.0f ? c : 7.0f;
        c = -8.0f < c ? c : -8.0f;
    }
    const float t = woq_fadd_rz(woq_fadd_rz(fabsf(c), 0.5f), 0x1p23f);
    const int n = (int)(woq_bits_from_f32(t) - 0x4B000000u);
    return c < 0.0f ? -n : n;
}

template <int BITS> WOQ_HD int woq_quant(float x, float s)
{
    return woq_quant_y<BITS>(s != 0.0f ? x / s : 0.0f);
}

/* x / s for F16 inputs without a per-element division: r = 1 / s (div.rn,
 * once per unit), se = s (0 for s = Inf, so that x / Inf's +-0 / NaN come
 * out), q0 = rn(x * r), e = rn(x - q0 * s) (exact), y = rn(q0 + e * r), with
 * y = +-0 or NaN replaced by q0 (x = -0 gives -0 as x / s does; x = +-Inf
 * over a finite s gives +-Inf, not NaN). Checked bit for bit (NaN == NaN)
 * against the IEEE quotient for every F16 x (all 65536 patterns) and every
 * s = amax * 2^-7 and amax * 2^-3 the kernel can form (amax each
 * non-negative non-NaN F16, +Inf included; s = 0 keeps the 0 branch): zero
 * mismatches, on the CPU (fmaf) and on the device (tc_woq_rcp_check_cuda,
 * tests/cuda/test_woq_cuda.c). Not valid for BF16 or F32 inputs (their wide
 * exponent range over/underflows r, q0 or e), which keep x / s. */
WOQ_HD float woq_div_rcp(float x, float s, float r, float se)
{
#ifdef __CUDA_ARCH__
    const float q0 = __fmul_rn(x, r);
    const float e = __fmaf_rn(-q0, se, x);
    const float y = __fmaf_rn(e, r, q0);
#else
    const float q0 = x * r;
    const float e = fmaf(-q0, se, x);
    const float y = fmaf(e, r, q0);
#endif
    return y < 0.0f || y > 0.0f ? y : q0;
}

/* BF16 weights with s = amax * 2^-7 (or 2^-3) in [2^-100, FLT_MAX]: for
 * every BF16 x with |x| <= amax (the only ones a row with that amax holds,
 * NaN included), woq_quant_y of woq_div_rcp equals woq_quant_y of x / s.
 * The quotients themselves differ in the last bit for ~2M of the ~1.05e9
 * pairs per precision, never across a rounding boundary of the integer.
 * Checked exhaustively on the CPU (2^-100 bound: 0 integer mismatches for
 * int8 and int4; at 2^-126 there are 26) and on the device
 * (tc_woq_rcp_check_bf16_cuda). Outside the range (tiny or infinite
 * scales) the division stays. */
#define WOQ_BF16_RCP_MIN 0x1p-100f

template <int BITS> WOQ_HD int woq_quant_rcp(float x, float s, float r, float se)
{
    return woq_quant_y<BITS>(s != 0.0f ? woq_div_rcp(x, s, r, se) : 0.0f);
}

/* Step-4 register interleave: the element of a word that lands in slot j. */
template <int BITS, bool SHUFFLE> WOQ_HD int woq_src_slot(int j)
{
    if (!SHUFFLE)
        return j;
    if (BITS == 8)
        return j == 1 ? 2 : j == 2 ? 1 : j; /* e0 e2 e1 e3 */
    return (j & 3) * 2 + (j >> 2);          /* e0 e2 e4 e6 e1 e3 e5 e7 */
}

/* Step-1 LDSM permutation: permuted row t of a block reads input row P(t). */
template <int BITS> WOQ_HD int woq_ldsm_src(int t)
{
    const int E = 32 / BITS;
    return 8 * ((t % E) / 2) + t % 2 + 2 * (t / E);
}

/* Row within the group (il) and first k of unit u. */
template <int BITS, int LAYOUT>
WOQ_HD void woq_unit_pos(int64_t u, int *il, int64_t *k0)
{
    typedef woq_cfg<BITS, LAYOUT> C;
    const int64_t tile = u / (C::I * C::UPT);
    const int rem = (int)(u - tile * (C::I * C::UPT));
    *il = rem / C::UPT;
    *k0 = tile * 64 + (int64_t)(rem % C::UPT) * C::UE;
}

/* The 16 output bytes (4 little-endian words) of one unit from its UE
 * quantized inputs q[0..UE) (q[j] is input k0 + j). */
template <int BITS, int LAYOUT>
WOQ_HD void woq_unit_pack(const int (&q)[128 / BITS], uint32_t (&word)[4])
{
    typedef woq_cfg<BITS, LAYOUT> C;
WOQ_UNROLL
    for (int w = 0; w < 4; w++) {
        uint32_t acc = 0;
WOQ_UNROLL
        for (int j = 0; j < C::E; j++) {
            const int p = w * C::E + woq_src_slot<BITS, C::SHUFFLE>(j);
            const int src = C::PERMUTE ? woq_ldsm_src<BITS>(p) : p;
            acc |= ((uint32_t)(q[src] + C::BIAS) & C::MASK) << (BITS * j);
        }
        word[w] = acc;
    }
}

/* ---- kernel ------------------------------------------------------------- */

/* Load the UE inputs of one unit as floats: 16-byte vector loads when vec
 * (row pointer 16-byte aligned, which K's rules keep for every unit), else
 * element loads. */
template <class In, int UE>
static __device__ __forceinline__ void woq_load_unit(float (&f)[UE], const typename In::raw *p,
                                                     bool vec)
{
    typedef typename In::raw R;
    if (vec) {
        const int PER = (int)(16 / sizeof(R));
        const uint4 *pv = reinterpret_cast<const uint4 *>(p);
#pragma unroll
        for (int v = 0; v < UE / PER; v++) {
            uint4 x = __ldg(pv + v);
            R r[PER];
            memcpy(r, &x, 16);
#pragma unroll
            for (int j = 0; j < PER; j++)
                f[v * PER + j] = In::to_float(r[j]);
        }
    } else {
#pragma unroll
        for (int j = 0; j < UE; j++)
            f[j] = In::to_float(p[j]);
    }
}

/* Purpose: quantize row groups [0, ngroups) of w ([ngroups*I, k] of In)
 * into the processed bytes out (ngroups*I*k*BITS/8) and the scales
 * (ngroups*I elements of In), as described at the top of the file.
 * Assumptions: launcher checked K (multiple of UE, and of 64 when I > 1);
 * vec_in: w 16-byte aligned; vec_out: out 16-byte aligned; blockDim.x ==
 * WOQ_BLOCK; any grid size >= 1 (int64 grid-stride loop over groups). */
template <class In, int BITS, int LAYOUT>
static __global__ void __launch_bounds__(WOQ_BLOCK)
woq_kernel(const typename In::raw *__restrict__ w, int64_t ngroups, int64_t k,
           uint8_t *__restrict__ out, typename In::raw *__restrict__ scales, int vec_in,
           int vec_out)
{
    typedef woq_cfg<BITS, LAYOUT> C;
    typedef typename In::raw R;
    const int UE = C::UE;
    const float inv = BITS == 8 ? 0x1p-7f : 0x1p-3f; /* 1/128, 1/8: exact */
    const int lane = (int)(threadIdx.x & 31u);
    const int64_t nunits = k * C::I / UE;         /* per group */
    const int64_t gstride = (int64_t)gridDim.x * WOQ_WARPS;
    /* All units of this lane lie in row my_il of the group (32 % (I*UPT) == 0). */
    const int my_il = (lane / C::UPT) % C::I;

    for (int64_t g = (int64_t)blockIdx.x * WOQ_WARPS + (threadIdx.x >> 5); g < ngroups;
         g += gstride) {
        const R *wg = w + g * C::I * k;
        uint8_t *og = out + g * nunits * 16;

        /* Pass 1: max |x| of this lane's units, then per row over the warp. */
        float m = 0.0f;
        for (int64_t u = lane; u < nunits; u += 32) {
            int il;
            int64_t k0;
            float f[UE];
            woq_unit_pos<BITS, LAYOUT>(u, &il, &k0);
            woq_load_unit<In, UE>(f, wg + il * k + k0, vec_in != 0);
#pragma unroll
            for (int j = 0; j < UE; j++)
                m = fmaxf(m, fabsf(f[j]));
        }
        float s = 0.0f;
#pragma unroll
        for (int i = 0; i < C::I; i++) {
            float r = my_il == i ? m : 0.0f;
#pragma unroll
            for (int off = 16; off > 0; off >>= 1)
                r = fmaxf(r, __shfl_xor_sync(0xFFFFFFFFu, r, off));
            const float si = r * inv; /* float32 scale the values use */
            if (my_il == i)
                s = si;
            if (lane == i)
                scales[g * C::I + i] = In::from_float(si);
        }

        /* Pass 2: quantize and write 16 bytes per unit. */
        for (int64_t u = lane; u < nunits; u += 32) {
            int il;
            int64_t k0;
            float f[UE];
            int q[UE];
            uint32_t word[4];
            woq_unit_pos<BITS, LAYOUT>(u, &il, &k0);
            woq_load_unit<In, UE>(f, wg + il * k + k0, vec_in != 0);
#pragma unroll
            for (int j = 0; j < UE; j++)
                q[j] = woq_quant<BITS>(f[j], s);
            woq_unit_pack<BITS, LAYOUT>(q, word);
            uint8_t *o = og + u * 16;
            if (vec_out) {
                *reinterpret_cast<uint4 *>(o) = make_uint4(word[0], word[1], word[2], word[3]);
            } else {
#pragma unroll
                for (int b = 0; b < 16; b++)
                    o[b] = (uint8_t)(word[b / 4] >> (8 * (b % 4)));
            }
        }
    }
}

/* ---- staged kernel (the fast path) ---------------------------------------- */

/* Input bytes staged per tile (one tile per block at a time), and the most
 * rows a tile may hold (rmax[] below). */
#define WOQ_TILE_TARGET 32768
#define WOQ_TILE_MAX_ROWS 64

/* Tile geometry, fixed per launch (woq_tile_plan). A tile is rb consecutive
 * rows of W (rb a power of two and a multiple of I, so tiles never split a
 * row group; the last tile of a call may be shorter, still a multiple of I).
 * Row r of the tile is staged in shared memory as rs 16-byte chunks (cpr
 * of data, rounded up to a multiple of 8) at chunk r*rs, with chunk cr at
 * r*rs + woq_swz(r, cr): an XOR of the low three bits of cr, constant over
 * each aligned group of 8 chunks, so it stays inside the row's padded
 * storage and keeps every unit's chunks (at most 8, aligned) together. It
 * spreads the quantize phase's per-lane units over the 32 banks (lanes of
 * one unit-sized stride would otherwise hit the same banks). */
struct woq_tile {
    int rb;     /* rows per tile */
    int cpr;    /* 16-byte chunks of input per row: k * sizeof(raw) / 16 */
    int rs;     /* staged chunks per row: cpr rounded up to a multiple of 8 */
    int nug;    /* 16-byte output units per row group: k * I / UE */
    int parts;  /* warps per row in the amax phase: max(1, WOQ_WARPS / rb) */
};

WOQ_HD int woq_swz(int r, int cr)
{
    return cr ^ ((((cr >> 3) * 3) ^ (r * 5)) & 7);
}

/* Host: the tile geometry for rows of k elements of raw type R; returns the
 * dynamic shared memory bytes of one tile, or 0 when one row group does not
 * fit in max_smem bytes (the caller then takes woq_kernel). */
template <class In, int BITS, int LAYOUT>
static size_t woq_tile_plan(int64_t k, size_t max_smem, woq_tile *t)
{
    typedef woq_cfg<BITS, LAYOUT> C;
    const int64_t row_bytes = k * (int64_t)sizeof(typename In::raw);
    const int64_t cpr = row_bytes / 16;
    const int64_t rs = (cpr + 7) / 8 * 8;
    int64_t rb = C::I;
    if (row_bytes % 16 != 0 || rs * 16 * C::I > (int64_t)max_smem)
        return 0;
    while (rb * 2 <= WOQ_TILE_MAX_ROWS && rb * 2 * rs * 16 <= WOQ_TILE_TARGET)
        rb *= 2;
    t->rb = (int)rb;
    t->cpr = (int)cpr;
    t->rs = (int)rs;
    t->nug = (int)(k * C::I / C::UE);
    t->parts = rb < WOQ_WARPS ? WOQ_WARPS / (int)rb : 1;
    return (size_t)(rb * rs * 16);
}

/* Copy 16 bytes global -> shared without a register round trip (sm_80+
 * cp.async, completed by the kernel's commit/wait; .cg: through L2 only, the
 * input is read once). Older targets: a plain copy. Host: memcpy. */
WOQ_HD void woq_cp16(uint4 *dst, const uint8_t *src)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(d), "l"(src) : "memory");
#elif defined(__CUDA_ARCH__)
    *dst = __ldg(reinterpret_cast<const uint4 *>(src)); /* older targets */
#else
    memcpy(dst, src, 16);
#endif
}

/* Phase 1 for thread tid of nthr: stage the rbt rows at src (contiguous in
 * global memory, 16-byte aligned) into stage. Chunk c of the tile is row
 * c / cpr, chunk c % cpr; (r, cr) advance by nthr without a division. */
WOQ_HD void woq_stage_load(uint4 *stage, const uint8_t *src, int rbt, const woq_tile &t,
                           int tid, int nthr)
{
    const int n = rbt * t.cpr;
    const int step_r = nthr / t.cpr, step_c = nthr - step_r * t.cpr;
    int r = tid / t.cpr, cr = tid - r * t.cpr;
    for (int c = tid; c < n; c += nthr) {
        woq_cp16(stage + r * t.rs + woq_swz(r, cr), src + (int64_t)c * 16);
        r += step_r;
        cr += step_c;
        if (cr >= t.cpr) {
            cr -= t.cpr;
            r++;
        }
    }
}

/* Phase 2, one lane's share: max |x| over chunks p*32 + lane, step
 * 32*parts, of staged row r (fmaxf from 0: drops NaN like the reference). */
template <class In>
WOQ_HD float woq_seg_lane_max(const uint4 *stage, int r, int p, int lane, const woq_tile &t)
{
    typedef typename In::raw R;
    const int PER = (int)(16 / sizeof(R));
    float m = 0.0f;
    for (int cr = p * 32 + lane; cr < t.cpr; cr += 32 * t.parts) {
        const uint4 x = stage[r * t.rs + woq_swz(r, cr)];
        R v[PER];
        memcpy(v, &x, 16);
WOQ_UNROLL
        for (int j = 0; j < PER; j++)
            m = fmaxf(m, fabsf(In::to_float(v[j])));
    }
    return m;
}

/* Phase 3 for thread tid of nthr: quantize the rbt staged rows (row maxima
 * in rmax[], as float bits) into out (their rbt*k*BITS/8 output bytes,
 * contiguous). Unit u of the tile is unit u % nug of group u / nug, which
 * is the output order; (g, uu) advance by nthr without a division. */
template <class In, int BITS, int LAYOUT>
WOQ_HD void woq_stage_quant(const uint4 *stage, const unsigned *rmax, uint8_t *out, int rbt,
                            const woq_tile &t, int vec_out, int tid, int nthr)
{
    typedef woq_cfg<BITS, LAYOUT> C;
    typedef typename In::raw R;
    const int UE = C::UE;
    const int PER = (int)(16 / sizeof(R));
    const int P = UE / PER; /* chunks per unit: 1 .. 8, dividing 8 */
    const float inv = BITS == 8 ? 0x1p-7f : 0x1p-3f;
    const int n = rbt / C::I * t.nug;
    const int step_g = nthr / t.nug, step_u = nthr - step_g * t.nug;
    int g = tid / t.nug, uu = tid - g * t.nug;
    for (int u = tid; u < n; u += nthr) {
        int il;
        int64_t k0;
        float f[UE];
        int q[UE];
        uint32_t word[4];
        woq_unit_pos<BITS, LAYOUT>(uu, &il, &k0);
        const int r = g * C::I + il;
        const int cr0 = (int)k0 * (int)sizeof(R) / 16; /* multiple of P */
        const int base = r * t.rs + woq_swz(r, cr0);    /* cr0 ^ h; h < 8 */
        const float s = woq_f32_from_bits(rmax[r]) * inv;
WOQ_UNROLL
        for (int v = 0; v < P; v++) {
            /* Chunk cr0 + v sits at (cr0 + v) ^ h = (cr0 ^ h) ^ v. */
            const uint4 x = stage[base ^ v];
            R raw[PER];
            memcpy(raw, &x, 16);
WOQ_UNROLL
            for (int j = 0; j < PER; j++)
                f[v * PER + j] = In::to_float(raw[j]);
        }
        if (In::RCP || (In::RCP_RANGED && s >= WOQ_BF16_RCP_MIN && s <= 0x1.fffffep127f)) {
            const float rs = s != 0.0f ? 1.0f / s : 0.0f;
            const float se = rs != 0.0f ? s : 0.0f; /* s = Inf: 0 */
WOQ_UNROLL
            for (int j = 0; j < UE; j++)
                q[j] = woq_quant_rcp<BITS>(f[j], s, rs, se);
        } else {
WOQ_UNROLL
            for (int j = 0; j < UE; j++)
                q[j] = woq_quant<BITS>(f[j], s);
        }
        woq_unit_pack<BITS, LAYOUT>(q, word);
        uint8_t *o = out + (int64_t)u * 16;
        if (vec_out) {
            *reinterpret_cast<uint4 *>(o) = make_uint4(word[0], word[1], word[2], word[3]);
        } else {
WOQ_UNROLL
            for (int b = 0; b < 16; b++)
                o[b] = (uint8_t)(word[b / 4] >> (8 * (b % 4)));
        }
        g += step_g;
        uu += step_u;
        if (uu >= t.nug) {
            uu -= t.nug;
            g++;
        }
    }
}

/* Purpose: quantize rows [0, rows) of w ([rows, k] of In, 16-byte aligned)
 * into out (rows*k*BITS/8 bytes) and scales (rows elements of In): each
 * block takes tiles of t.rb rows (grid-stride, int64), stages a tile in
 * shared memory with one coalesced read of the input (phase 1), takes the
 * row maxima from the staged copy (phase 2: warp-per-segment butterfly,
 * then a shared atomicMax on the float bits, exact for the non-negative,
 * non-NaN maxima), then quantizes the staged copy into 16-byte output units
 * written in order (phase 3), so each block writes one contiguous range.
 * Assumptions: launcher checked K and alignment (rows % I == 0, w 16-byte
 * aligned, t from woq_tile_plan, dynamic shared memory t.rb*t.rs*16 bytes);
 * vec_out: out 16-byte aligned; blockDim.x == WOQ_BLOCK. */
/* Blocks per SM the register budget must allow: int8 6 (<= 40 registers,
 * as many blocks as the ~33 KB tiles leave room for in H100's 228 KB of
 * shared memory; ptxas fits it without spills); int4 4 (<= 64 registers;
 * at 48 or 40 ptxas spills). */
#define WOQ_STAGE_MIN_BLOCKS(bits) ((bits) == 8 ? 6 : 4)
template <class In, int BITS, int LAYOUT>
static __global__ void __launch_bounds__(WOQ_BLOCK, WOQ_STAGE_MIN_BLOCKS(BITS))
woq_stage_kernel(const typename In::raw *__restrict__ w, int64_t rows, int64_t k,
                 uint8_t *__restrict__ out, typename In::raw *__restrict__ scales, woq_tile t,
                 int vec_out)
{
    typedef woq_cfg<BITS, LAYOUT> C;
    extern __shared__ uint4 woq_stage[];
    __shared__ unsigned rmax[WOQ_TILE_MAX_ROWS];
    const float inv = BITS == 8 ? 0x1p-7f : 0x1p-3f;
    const int tid = (int)threadIdx.x;
    const int lane = tid & 31, warp = tid >> 5;
    const int64_t ntiles = (rows + t.rb - 1) / t.rb;

    for (int64_t tile = blockIdx.x; tile < ntiles; tile += gridDim.x) {
        const int64_t row0 = tile * t.rb;
        const int rbt = (int)(rows - row0 < t.rb ? rows - row0 : t.rb);
        if (tid < rbt)
            rmax[tid] = 0u;
        woq_stage_load(woq_stage, reinterpret_cast<const uint8_t *>(w + row0 * k), rbt, t, tid,
                       WOQ_BLOCK);
#if __CUDA_ARCH__ >= 800
        asm volatile("cp.async.commit_group;\n" ::: "memory");
        asm volatile("cp.async.wait_group 0;\n" ::: "memory");
#endif
        __syncthreads();

        for (int seg = warp; seg < rbt * t.parts; seg += WOQ_WARPS) {
            const int r = seg / t.parts;
            float m = woq_seg_lane_max<In>(woq_stage, r, seg - r * t.parts, lane, t);
#pragma unroll
            for (int off = 16; off > 0; off >>= 1)
                m = fmaxf(m, __shfl_xor_sync(0xFFFFFFFFu, m, off));
            if (lane == 0)
                atomicMax(&rmax[r], woq_bits_from_f32(m));
        }
        __syncthreads();

        if (tid < rbt)
            scales[row0 + tid] = In::from_float(woq_f32_from_bits(rmax[tid]) * inv);
        woq_stage_quant<In, BITS, LAYOUT>(woq_stage, rmax, out + row0 / C::I * t.nug * 16, rbt,
                                          t, vec_out, tid, WOQ_BLOCK);
        __syncthreads(); /* before the next tile overwrites stage and rmax */
    }
}

/* ---- launcher ----------------------------------------------------------- */


template <class In, int BITS, int LAYOUT>
static tc_status woq_launch(const void *w, int64_t rows, int64_t k, uint8_t *out, void *scales,
                            cudaStream_t s)
{
    typedef woq_cfg<BITS, LAYOUT> C;
    typedef typename In::raw R;
    tc_status st = TC_OK;
    unsigned grid = 0;
    const int64_t ngroups = rows / C::I;
    const int vec_in = (uintptr_t)w % 16 == 0;
    const int vec_out = (uintptr_t)out % 16 == 0;
    if (vec_in) {
        /* Fast path: staged tiles, when a row group fits in shared memory. */
        int dev = 0, optin = 0;
        woq_tile t;
        size_t smem;
        int64_t ntiles;
        TC_CUDA_TRY(cudaGetDevice(&dev));
        TC_CUDA_TRY(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
        /* Room for rmax[] (static shared memory) under the opt-in limit. */
        smem = woq_tile_plan<In, BITS, LAYOUT>(
            k, optin > 1024 ? (size_t)optin - 1024 : 0, &t);
        if (smem > 0) {
            if (smem > 48 * 1024)
                TC_CUDA_TRY(cudaFuncSetAttribute(woq_stage_kernel<In, BITS, LAYOUT>,
                                                  cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                  (int)smem));
            ntiles = (rows + t.rb - 1) / t.rb;
            grid = ntiles < (1 << 30) ? (unsigned)ntiles : (1u << 30);
            woq_stage_kernel<In, BITS, LAYOUT><<<grid, WOQ_BLOCK, smem, s>>>(
                (const R *)w, rows, k, out, (R *)scales, t, vec_out);
            TC_CUDA_TRY(cudaGetLastError());
            goto done;
        }
    }
    /* Fallback: unaligned input, or a row group too large to stage. */
    st = tc_cuda_capped_grid((ngroups + WOQ_WARPS - 1) / WOQ_WARPS, WOQ_BLOCKS_PER_SM, &grid);
    if (st != TC_OK)
        goto done;
    woq_kernel<In, BITS, LAYOUT><<<grid, WOQ_BLOCK, 0, s>>>((const R *)w, ngroups, k, out,
                                                            (R *)scales, vec_in, vec_out);
    TC_CUDA_TRY(cudaGetLastError());
done:
    return st;
}

template <class In, int BITS>
static tc_status woq_launch_layout(tc_woq_layout layout, const void *w, int64_t rows, int64_t k,
                                   uint8_t *out, void *scales, cudaStream_t s)
{
    switch (layout) {
    case TC_WOQ_LAYOUT_VOLTA:
        return woq_launch<In, BITS, TC_WOQ_LAYOUT_VOLTA>(w, rows, k, out, scales, s);
    case TC_WOQ_LAYOUT_AMPERE:
        return woq_launch<In, BITS, TC_WOQ_LAYOUT_AMPERE>(w, rows, k, out, scales, s);
    case TC_WOQ_LAYOUT_HOPPER:
        return woq_launch<In, BITS, TC_WOQ_LAYOUT_HOPPER>(w, rows, k, out, scales, s);
    }
    return tc_fail(TC_E_INTERNAL, "%s: unreachable layout %d", __func__, (int)layout);
}

template <class In>
static tc_status woq_launch_bits(int bits, tc_woq_layout layout, const void *w, int64_t rows,
                                 int64_t k, uint8_t *out, void *scales, cudaStream_t s)
{
    return bits == 8 ? woq_launch_layout<In, 8>(layout, w, rows, k, out, scales, s)
                     : woq_launch_layout<In, 4>(layout, w, rows, k, out, scales, s);
}

extern "C" tc_status tc_woq_quantize_rows_cuda(const void *w_rows, tc_dtype dt, int64_t rows,
                                               int64_t k, int bits, int sm, int64_t n0,
                                               uint8_t *out_rows, void *scales_rows,
                                               void *stream)
{
    cudaStream_t s = (cudaStream_t)stream;
    tc_woq_layout layout;
    tc_status st;
    int align, ue;

    /* Checks in the order of tc_woq_quantize_rows, with its statuses. First
     * bits, SM, k > 0 and the K-dependent rules of every step:
     * tc_woq_check_shape with N = 64 standing in for the whole tensor's N
     * (64 satisfies every N rule; the real N is checked once per tensor by
     * the caller, as a row range cannot see it). */
    st = tc_woq_check_shape("weight rows (GPU)", 64, k, bits, sm);
    if (st != TC_OK)
        return st;
    st = tc_woq_layout_for_sm(sm, &layout);
    if (st != TC_OK)
        return st;
    if (rows < 0)
        return tc_fail(TC_E_INPUT, "%s: negative row count %" PRId64, __func__, rows);
    if (dt != TC_DT_F32 && dt != TC_DT_F16 && dt != TC_DT_BF16)
        return tc_fail(TC_E_USAGE, "weight-only quantization takes F32, F16 or BF16 weights, "
                       "not %s", tc_dtype_name(dt));
    align = tc_woq_row_align(layout, bits);
    if (align < 1 || n0 < 0 || n0 % align != 0 || rows % align != 0)
        return tc_fail(TC_E_INTERNAL,
                       "%s: weight-only row range [%" PRId64 ", %" PRId64 ") is not aligned to "
                       "%d rows (int%d, sm%d)",
                       __func__, n0, n0 + rows, align, bits, sm);
    /* Defensive: the kernel's units need K % UE == 0 (and K % 64 == 0 when
     * interleaved), which the shape rules imply. */
    ue = 128 / bits;
    if (k % ue != 0 || (layout == TC_WOQ_LAYOUT_AMPERE && k % 64 != 0))
        return tc_fail(TC_E_INTERNAL, "%s: k %" PRId64 " passed tc_woq_check_shape but is not "
                       "a multiple of %d", __func__, k, layout == TC_WOQ_LAYOUT_AMPERE ? 64 : ue);
    /* Element offsets rows*k (and byte offsets *4) must fit in int64_t (V5). */
    if (rows > INT64_MAX / 4 / k || n0 > INT64_MAX / 4 / k)
        return tc_fail(TC_E_INPUT, "%s: %" PRId64 " x %" PRId64 " weight is too large", __func__,
                       rows, k);
    if (rows == 0)
        return TC_OK;
    if (!w_rows || !out_rows || !scales_rows)
        return tc_fail(TC_E_USAGE, "%s: NULL buffer for %" PRId64 " rows", __func__, rows);

    switch (dt) {
    case TC_DT_F32:
        return woq_launch_bits<woq_f32>(bits, layout, w_rows, rows, k, out_rows, scales_rows, s);
    case TC_DT_F16:
        return woq_launch_bits<woq_f16>(bits, layout, w_rows, rows, k, out_rows, scales_rows, s);
    default:
        return woq_launch_bits<woq_bf16>(bits, layout, w_rows, rows, k, out_rows, scales_rows, s);
    }
}

/* ---- exhaustive check of woq_div_rcp (tests/cuda/test_woq_cuda.c) ------- */

/* Block b takes amax = F16 bits b + 1 (1 .. 0x7C00: every positive F16 up to
 * +Inf), s = amax * inv as the kernels form it; threads take all 65536 F16
 * x. Counts y != x / s (bits; NaN == NaN) into *bad. */
static __global__ void woq_rcp_check_kernel(float inv, unsigned long long *bad)
{
    const float amax = woq_f16::to_float((uint16_t)(blockIdx.x + 1u));
    const float s = amax * inv;
    const float rs = s != 0.0f ? 1.0f / s : 0.0f;
    const float se = rs != 0.0f ? s : 0.0f;
    unsigned long long n = 0;
    if (s != 0.0f) {
        for (unsigned i = threadIdx.x; i < 65536u; i += blockDim.x) {
            const float x = woq_f16::to_float((uint16_t)i);
            const float want = x / s;
            const float got = woq_div_rcp(x, s, rs, se);
            const bool same = woq_bits_from_f32(want) == woq_bits_from_f32(got) ||
                              (want != want && got != got);
            n += same ? 0u : 1u;
        }
    }
    if (n)
        atomicAdd(bad, n);
}

/* Mismatches of woq_div_rcp against the IEEE quotient over all F16 x and all
 * scales of bits (8 or 4); -1 on a CUDA error. */
extern "C" long long tc_woq_rcp_check_cuda(int bits)
{
    unsigned long long *d = NULL, h = 0;
    long long r = -1;
    if (cudaMalloc((void **)&d, sizeof *d) != cudaSuccess)
        return -1;
    if (cudaMemset(d, 0, sizeof *d) == cudaSuccess) {
        woq_rcp_check_kernel<<<0x7C00u, 256>>>(bits == 8 ? 0x1p-7f : 0x1p-3f, d);
        if (cudaGetLastError() == cudaSuccess && cudaDeviceSynchronize() == cudaSuccess &&
            cudaMemcpy(&h, d, sizeof h, cudaMemcpyDeviceToHost) == cudaSuccess)
            r = (long long)h;
    }
    cudaFree(d);
    return r;
}

/* BF16: block b takes amax = BF16 bits b + 1 (every positive finite BF16),
 * s = amax * inv; for s in the reciprocal range, threads take every BF16 x
 * with |x| <= amax or x NaN, and count quantized integers that differ
 * between woq_quant_rcp and woq_quant (x / s) into *bad, and the pairs
 * checked into *pairs. */
template <int BITS>
static __global__ void woq_rcp_check_bf16_kernel(float inv, unsigned long long *bad,
                                                 unsigned long long *pairs)
{
    const float amax = woq_bf16::to_float((uint16_t)(blockIdx.x + 1u));
    const float s = amax * inv;
    if (!(s >= WOQ_BF16_RCP_MIN && s <= 0x1.fffffep127f))
        return;
    const float rs = 1.0f / s, se = s;
    unsigned long long n = 0, m = 0;
    for (unsigned i = threadIdx.x; i < 65536u; i += blockDim.x) {
        const float x = woq_bf16::to_float((uint16_t)i);
        if (!(fabsf(x) <= amax) && x == x)
            continue;
        m++;
        n += woq_quant_rcp<BITS>(x, s, rs, se) != woq_quant<BITS>(x, s) ? 1u : 0u;
    }
    atomicAdd(pairs, m);
    if (n)
        atomicAdd(bad, n);
}

extern "C" long long tc_woq_rcp_check_bf16_cuda(int bits, long long *pairs_checked)
{
    unsigned long long *d = NULL, h[2] = { 0, 0 };
    long long r = -1;
    if (cudaMalloc((void **)&d, 2 * sizeof *d) != cudaSuccess)
        return -1;
    if (cudaMemset(d, 0, 2 * sizeof *d) == cudaSuccess) {
        if (bits == 8)
            woq_rcp_check_bf16_kernel<8><<<0x7F7Fu, 256>>>(0x1p-7f, d, d + 1);
        else
            woq_rcp_check_bf16_kernel<4><<<0x7F7Fu, 256>>>(0x1p-3f, d, d + 1);
        if (cudaGetLastError() == cudaSuccess && cudaDeviceSynchronize() == cudaSuccess &&
            cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost) == cudaSuccess) {
            r = (long long)h[0];
            if (pairs_checked)
                *pairs_checked = (long long)h[1];
        }
    }
    cudaFree(d);
    return r;
}
