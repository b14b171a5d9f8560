/* safetensors.h: validating reader for safetensors files.
 *
 * File format (huggingface/safetensors; shared/spec/safetensors.md):
 *   1. bytes [0, 8): N, unsigned 64-bit little endian, the header length.
 *   2. bytes [8, 8+N): UTF-8 JSON object, may be padded with whitespace:
 *        { "__metadata__": {str: str, ...}        (optional)
 *          "<name>": {"dtype": "F16", "shape": [d0, ...],
 *                     "data_offsets": [begin, end]}, ... }
 *   3. bytes [8+N, file end): data area; offsets are relative to 8+N,
 *      little endian, row-major, no padding between tensors.
 *
 * tc_st_open reads only the 8-byte prefix and the header (pread), never the
 * data, and enforces every rule of the reference reader (safetensors.md §4)
 * plus the differentials of §6: duplicate names, non-integral or negative
 * numbers, numbers above 2^53, trailing garbage, non-string metadata.
 * Every error message names the file, the tensor (when there is one) and the
 * rule broken, and sets a tc_st_error kind equal to the reference's variant. */
#ifndef TRTCONV_SAFETENSORS_H
#define TRTCONV_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "trtconv/core/dtype.h"
#include "trtconv/core/status.h"

#define TC_ST_MAX_HEADER 100000000ULL  /* reference MAX_HEADER_SIZE (decimal) */

/* One-to-one with the reference's SafeTensorError variants, plus
 * DuplicateKey and UnknownDtype which the reference folds into others. */
typedef enum tc_st_error {
    TC_ST_OK = 0,
    TC_ST_HEADER_TOO_SMALL,          /* file shorter than 8 bytes */
    TC_ST_HEADER_TOO_LARGE,          /* N > 100 000 000 */
    TC_ST_INVALID_HEADER_LENGTH,     /* 8+N past the end of the file */
    TC_ST_INVALID_HEADER,            /* header not UTF-8 */
    TC_ST_INVALID_HEADER_DESERIALIZATION, /* JSON or schema wrong */
    TC_ST_DUPLICATE_KEY,             /* a tensor name appears twice */
    TC_ST_UNKNOWN_DTYPE,             /* dtype string not a known variant */
    TC_ST_INVALID_OFFSET,            /* gap, overlap, reversed range */
    TC_ST_VALIDATION_OVERFLOW,       /* shape product overflows */
    TC_ST_MISALIGNED_SLICE,          /* sub-byte tensor not whole bytes */
    TC_ST_TENSOR_INVALID_INFO,       /* end-begin != nelements*bits/8 */
    TC_ST_METADATA_INCOMPLETE_BUFFER,/* data area not exactly covered */
    TC_ST_IO_ERROR                   /* open/stat/pread failed */
} tc_st_error;

const char *tc_st_error_name(tc_st_error e); /* "InvalidOffset", ... */

typedef struct tc_st_tensor {
    char *name;          /* NUL-terminated; owned by the file */
    tc_dtype dtype;
    int ndim;
    int64_t *shape;      /* ndim entries; owned by the file */
    uint64_t nelements;
    uint64_t begin;      /* byte offsets relative to the data area */
    uint64_t end;
} tc_st_tensor;

typedef struct tc_st_file {
    char *path;          /* owned copy, used in messages */
    int fd;              /* open read-only for the life of the struct */
    uint64_t file_size;
    uint64_t header_len; /* N */
    uint64_t data_offset;/* 8 + N: absolute file offset of the data area */
    size_t n_tensors;
    tc_st_tensor *tensors; /* sorted by name (byte-wise) for tc_st_find */
} tc_st_file;

/* Open and validate path. On TC_OK, *out belongs to the caller; release it
 * with tc_st_close(). On error, *out is NULL, a message naming the file and
 * rule has been logged through tc_fail, and *err (if not NULL) tells which
 * rule failed. Returns TC_E_INPUT for format errors, TC_E_IO for I/O. */
tc_status tc_st_open(const char *path, tc_st_file **out, tc_st_error *err);

/* Validate a header held in memory: buf holds the header JSON bytes (N of
 * them, not NUL-terminated), file_size is the total file length the header
 * claims to describe. On TC_OK, *out is a tc_st_file with fd = -1 that the
 * caller releases with tc_st_close(). For unit tests and fuzzing. */
tc_status tc_st_parse_header(const char *label, const char *buf, size_t n,
                             uint64_t file_size, tc_st_file **out,
                             tc_st_error *err);

/* Accepts NULL. Closes the descriptor and frees everything. */
void tc_st_close(tc_st_file *f);

/* Binary search by exact name; the result borrows from f. NULL if absent. */
const tc_st_tensor *tc_st_find(const tc_st_file *f, const char *name);

/* Read n bytes at offset off of the data area into dst, retrying short
 * reads and EINTR. Thread-safe (pread). Fails with TC_E_IO, naming the file,
 * if the range is outside the data area or the read fails/ends early. */
tc_status tc_st_read(const tc_st_file *f, uint64_t off, void *dst, size_t n);
/* Bytes tc_st_read has read in this process so far (all threads): what the
 * run's summary reports per rank, to show each reads only its slices. */
uint64_t tc_st_bytes_read(void);

#endif
