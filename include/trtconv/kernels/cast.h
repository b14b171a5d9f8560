/* kernels.h: C entry points of trtconv's CUDA kernels (the .cu files under kernels/).
 *
 * Plain C: no CUDA header is needed to include this file. A stream argument
 * is a `void *` that holds a cudaStream_t (cudaStream_t is itself a pointer,
 * `struct CUstream_st *`); pass NULL for the legacy default stream.
 *
 * Availability: the functions are compiled into tccore only when
 * TRTCONV_HAVE_CUDA is 1 (trtconv/build_config.h). In a CPU-only build they
 * are declared but not defined, so guard every call with
 * `#if TRTCONV_HAVE_CUDA`.
 *
 * Ownership: the caller owns every device buffer passed in (allocates it,
 * keeps it alive until the stream has finished the work queued on it, and
 * frees it); no function here allocates or frees device memory or
 * synchronises a stream. Launchers are asynchronous: TC_OK means the work was
 * queued on `stream`; an error that happens while it runs (bad address, ...)
 * surfaces at the caller's next synchronising CUDA call on that stream.
 *
 * Errors: CUDA API and launch failures are logged through tc_fail with the
 * CUDA error name and string and return TC_E_INTERNAL (status.h has no CUDA
 * code); an unsupported dtype or an element count too large for the byte
 * size to fit in int64_t returns TC_E_USAGE.
 *
 * Casts (tc_cast_cuda) give exactly the bits of the CPU reference tc_convert
 * (dtype.c), which matches torch's Tensor.to(dtype):
 *   F32 -> F16 : round to nearest, ties to even, on the bit pattern;
 *                F16 subnormals exact; |x| >= 65520 -> +-Inf;
 *                NaN -> sign | 0x7E00 (payload dropped, sign kept).
 *   F32 -> BF16: NaN -> 0x7FC0 (sign dropped), else
 *                (u + 0x7FFF + ((u >> 16) & 1)) >> 16 (RNE; overflow -> Inf).
 *   F16 -> F32 : exact; an F16 NaN keeps its payload shifted into the F32
 *                mantissa and is quieted (bit 22 set).
 *   BF16 -> F32: exact (bits << 16), NaN payloads kept as they are.
 *   F16 <-> BF16 go through F32 with the rules above (so an F16 NaN becomes
 *                BF16 0x7FC0).
 *   Same type  : a device-to-device copy (nothing when dst == src).
 * The kernels work on integer bit patterns only, so they do not depend on
 * the GPU rounding mode, FTZ/DAZ or FMA contraction.
 */
#ifndef TRTCONV_KERNELS_H
#define TRTCONV_KERNELS_H

#include <stddef.h>

#include "trtconv/core/dtype.h"
#include "trtconv/core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Store the number of visible CUDA devices in *n. No driver, no device or any
 * other cudaGetDeviceCount error gives *n = 0 and TC_OK (logged at verbose
 * level); only n == NULL is an error (TC_E_USAGE). */
tc_status tc_cuda_device_count(int *n);

/* Convert n elements of device buffer src (type sdt) into device buffer dst
 * (type ddt) on `stream` (a cudaStream_t, NULL = default stream), bit-exact
 * with tc_convert. sdt and ddt must satisfy tc_dtype_is_convertible (F32,
 * F16, BF16). src and dst must not overlap unless sdt == ddt and src == dst.
 * Both buffers belong to the caller and must stay valid until the stream
 * has run the cast; no alignment beyond the element size is required
 * (16-byte aligned buffers take a vectorised path). n == 0 queues nothing. */
tc_status tc_cast_cuda(void *dst, tc_dtype ddt, const void *src, tc_dtype sdt,
                       size_t n, void *stream);

#ifdef __cplusplus
}
#endif

#endif
