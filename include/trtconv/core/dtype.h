/* dtype.h: element types of safetensors files and conversions between the
 * floating types trtconv converts (F32, F16, BF16).
 *
 * Conversions match torch's Tensor.to(dtype) on CPU bit for bit:
 *  - F32 -> F16 and F32 -> BF16 round to nearest, ties to even; overflow
 *    gives +-Inf; subnormals are produced exactly as IEEE 754 binary16.
 *  - NaN stays NaN: F32->F16 gives sign|0x7E00; F32->BF16 gives 0x7FC0
 *    (torch's c10::BFloat16 drops the sign of NaN).
 *  - F16/BF16 -> F32 are exact. F16 <-> BF16 go through F32 as torch does.
 */
#ifndef TRTCONV_DTYPE_H
#define TRTCONV_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include "trtconv/core/status.h"

/* Every dtype name the safetensors reference knows (safetensors.md §3).
 * The enum order is NOT the writer's sort order: see tc_dtype_sort_rank. */
typedef enum tc_dtype {
    TC_DT_BOOL = 0, TC_DT_F4, TC_DT_F6_E2M3, TC_DT_F6_E3M2, TC_DT_U8, TC_DT_I8,
    TC_DT_F8_E5M2, TC_DT_F8_E4M3, TC_DT_F8_E8M0, TC_DT_F8_E4M3FNUZ,
    TC_DT_F8_E5M2FNUZ, TC_DT_I16, TC_DT_U16, TC_DT_F16, TC_DT_BF16, TC_DT_I32,
    TC_DT_U32, TC_DT_F32, TC_DT_C64, TC_DT_F64, TC_DT_I64, TC_DT_U64,
    TC_DT_COUNT
} tc_dtype;

/* Parse an exact, case-sensitive safetensors dtype name ("F16").
 * Returns 0 on success, -1 for an unknown name. */
int tc_dtype_parse(const char *name, tc_dtype *out);
const char *tc_dtype_name(tc_dtype dt);
/* Bits per element (4, 6, 8, 16, 32 or 64). */
unsigned tc_dtype_bits(tc_dtype dt);
/* Sort key of the safetensors writer (v0.4.3 alignment order): larger keys
 * are written first. F32 > BF16 > F16 > I8. */
int tc_dtype_sort_rank(tc_dtype dt);

/* Torch-style names used on the command line and in config.json. */
typedef enum tc_float_type { TC_FT_FLOAT32, TC_FT_FLOAT16, TC_FT_BFLOAT16 } tc_float_type;
int tc_float_type_parse(const char *name, tc_float_type *out); /* "float16", ... */
const char *tc_float_type_name(tc_float_type ft);
tc_dtype tc_float_type_dtype(tc_float_type ft);

/* v rounded to F16 or BF16 (nearest, ties to even) and back; other dtypes
 * return v. */
float tc_round_to_dtype(tc_dtype dt, float v);

/* Element conversions (see top of file for the rounding rules). */
uint16_t tc_f32_to_f16(float f);
uint16_t tc_f32_to_bf16(float f);
float tc_f16_to_f32(uint16_t h);
float tc_bf16_to_f32(uint16_t b);

/* FP8 E4M3 ("fn": no infinities, 0x7F/0xFF NaN, largest finite 448) as
 * PyTorch's float -> torch.float8_e4m3fn conversion does it
 * (c10/util/Float8_e4m3fn.h fp8e4m3fn_from_fp32_value): round to nearest,
 * ties to even; |f| >= 480 (Inf included) and NaN give NaN 0x7F with f's
 * sign, not saturation; values below the smallest subnormal (2^-9) round
 * to a signed zero. The reverse is exact. */
uint8_t tc_f32_to_e4m3fn(float f);
float tc_e4m3fn_to_f32(uint8_t b);

/* Element i of an array of dtype dt, F16, BF16 or F32 (any other dtype is
 * read and written as F32), as float32, and a float32 stored into it
 * (rounded as above): the accessors of the scalar reference code. */
static inline float tc_load_f32(const void *p, tc_dtype dt, size_t i)
{
    switch (dt) {
    case TC_DT_F16: return tc_f16_to_f32(((const uint16_t *)p)[i]);
    case TC_DT_BF16: return tc_bf16_to_f32(((const uint16_t *)p)[i]);
    default: return ((const float *)p)[i];
    }
}

static inline void tc_store_f32(void *p, tc_dtype dt, size_t i, float v)
{
    switch (dt) {
    case TC_DT_F16: ((uint16_t *)p)[i] = tc_f32_to_f16(v); break;
    case TC_DT_BF16: ((uint16_t *)p)[i] = tc_f32_to_bf16(v); break;
    default: ((float *)p)[i] = v; break;
    }
}

/* True if trtconv can convert between these element types (F32/F16/BF16). */
int tc_dtype_is_convertible(tc_dtype dt);

/* Convert n elements from src (type sdt) to dst (type ddt), little endian.
 * src and dst must not overlap unless sdt == ddt and src == dst. Both types
 * must satisfy tc_dtype_is_convertible. */
void tc_convert(void *dst, tc_dtype ddt, const void *src, tc_dtype sdt, size_t n);

/* Index of the first Inf or NaN among n elements of data (F32, F16 or BF16,
 * little endian), its value in *value; n when all are finite (and for any
 * other dtype). */
size_t tc_first_nonfinite(const void *data, tc_dtype dt, size_t n, float *value);

#endif
