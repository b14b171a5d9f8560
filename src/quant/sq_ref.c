/* sq_ref.c: the scalar pieces of SmoothQuant that must round exactly as
 * PyTorch does (sq.h): float16 rounding, Tensor.pow(Scalar) on CUDA with
 * its fix-up table, smooth_gemm's per-channel smoother. */
#define _POSIX_C_SOURCE 200809L
#include "trtconv/quant/sq.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include "trtconv/core/dtype.h"

float tc_sq_round_f16(float v)
{
    return tc_round_to_dtype(TC_DT_F16, v);
}

typedef struct pow_fixup {
    uint16_t e, w, out;      /* bits of the exponent, the input, the result */
} pow_fixup;
#include "torch_pow_fixups.h"

static int cmp_fixup(const void *a, const void *b)
{
    const pow_fixup *x = a, *y = b;
    if (x->e != y->e)
        return x->e < y->e ? -1 : 1;
    return x->w < y->w ? -1 : x->w > y->w;
}

/* CUDA's powf is not correctly rounded (libdevice __nv_powf uses the
 * approximate reciprocal); after rounding to 16 bits it differs from the
 * correctly rounded power in a few inputs, all found by an exhaustive
 * comparison (tests/sq/gpu_pow_rope.sh) and listed in torch_pow_fixups.h.
 * TC_POW_NO_FIXUPS=1 turns the list off to regenerate it. */
static bool pow_fixup_find(tc_dtype dt, float w, float e_t, float *out)
{
    static int off = -1;
    if (off < 0)
        off = getenv("TC_POW_NO_FIXUPS") != NULL;
    if (off)
        return false;
    const bool h = dt == TC_DT_F16;
    const pow_fixup key = { h ? tc_f32_to_f16(e_t) : tc_f32_to_bf16(e_t),
                            h ? tc_f32_to_f16(w) : tc_f32_to_bf16(w), 0 };
    const pow_fixup *hit = bsearch(&key, h ? pow_fixups_f16 : pow_fixups_bf16,
                                   h ? POW_FIXUPS_F16 : POW_FIXUPS_BF16, sizeof key, cmp_fixup);
    if (!hit)
        return false;
    *out = h ? tc_f16_to_f32(hit->out) : tc_bf16_to_f32(hit->out);
    return true;
}

float tc_torch_pow_scalar(tc_dtype dt, float w, double e)
{
    /* Tensor.pow(Scalar) as PyTorch computes it on CUDA for a float16 or
     * bfloat16 tensor (upstream smooths on the GPU). pow_out (Pow.cpp)
     * answers exponents 0 and 1 itself (ones, a copy); pow_tensor_scalar_
     * kernel (cuda/PowKernel.cu) sends 0.5 to the sqrt kernel, comparing the
     * Scalar as a double. Anything else is first converted to the tensor's
     * dtype (Scalar::to<Half>: double -> float -> half) and then raised in
     * float: pow(float(w), float(e_half)), rounded to the dtype. So
     * 1 - 0.8 is raised as float16 0.199951171875, not as 0.2. */
    if (e == 0.0)
        return 1.0f;
    if (e == 1.0)
        return w;
    if (e == 0.5)
        return tc_round_to_dtype(dt, sqrtf(w));
    const float e_t = tc_round_to_dtype(dt, (float)e);
    /* The float pow: correctly rounded (pow in double, rounded once), then
     * the inputs where CUDA's powf rounds the other way. */
    float fixed;
    if (e_t > 0.0f && e_t < 1.0f && pow_fixup_find(dt, w, e_t, &fixed))
        return fixed;
    return tc_round_to_dtype(dt, (float)pow((double)w, (double)e_t));
}

float tc_sq_pow_f16(float w, double e)
{
    return tc_torch_pow_scalar(TC_DT_F16, w, e);
}

double tc_sq_smoother(float a, float wmax, double alpha)
{
    /* smooth_gemm / smooth_gemm_fc1_gate: act.to(float64).pow(alpha) (the
     * exponent stays a double) over weight_scales.pow(1 - alpha) on the
     * float16 weight maxima (the model is loaded in float16 for
     * SmoothQuant whatever --dtype says), a float64 division, clamped. */
    const double ad = (double)a;
    const double num = alpha == 1.0 ? ad : alpha == 0.5 ? sqrt(ad) : alpha == 0.0 ? 1.0 : pow(ad, alpha);
    const double s = num / (double)tc_sq_pow_f16(wmax, 1.0 - alpha);
    return s < 1e-5 ? 1e-5 : s;
}

/* Python's `c / t` for a tensor t is torch's t.reciprocal() * c
 * (Tensor.__rtruediv__): two roundings, in t's dtype. */
