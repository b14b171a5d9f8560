/* st_writer.h: byte layout of the safetensors files trtconv writes.
 *
 * Layout = what safetensors.torch.save_file (v0.4.x) writes without metadata
 * (trtllm-checkpoint.md §2.1):
 *   - 8 bytes: header length N (u64 LE), N % 8 == 0;
 *   - N bytes: compact JSON, entries in file order
 *       "name":{"dtype":"F16","shape":[d0,d1],"data_offsets":[b,e]}
 *     followed by ASCII spaces up to a multiple of 8;
 *   - the data, in the same order, back to back.
 * Order: tc_dtype_sort_rank descending, then name ascending (byte-wise).
 * Names are escaped as serde_json does ('"', '\\', control characters).
 *
 * The writer only computes the layout; callers pwrite the header and each
 * tensor's bytes at the offsets it returns, so several threads can fill one
 * file in any order and the bytes are always the same. */
#ifndef TRTCONV_ST_WRITER_H
#define TRTCONV_ST_WRITER_H

#include <stddef.h>
#include <stdint.h>
#include "trtconv/core/dtype.h"
#include "trtconv/core/status.h"

#define TC_ST_OUT_MAX_DIMS 4

typedef struct tc_st_out_tensor {
    const char *name;        /* borrowed; must outlive the layout call */
    tc_dtype dtype;
    int ndim;                /* 0..TC_ST_OUT_MAX_DIMS */
    int64_t shape[TC_ST_OUT_MAX_DIMS];
    /* Filled by tc_st_layout: */
    uint64_t nbytes;         /* prod(shape) * bits / 8 */
    uint64_t file_offset;    /* absolute offset of the data in the file */
} tc_st_out_tensor;

/* Sort t[0..n) into file order, fill nbytes and file_offset, and build the
 * file prefix (8-byte length + padded JSON). On TC_OK *prefix (malloc'd,
 * caller frees) holds *prefix_len bytes to write at offset 0 and *file_size
 * is the total length of the finished file. Fails (TC_E_INPUT) on duplicate
 * names, negative dimensions, or a header larger than TC_ST_MAX_HEADER. */
tc_status tc_st_layout(tc_st_out_tensor *t, size_t n, char **prefix,
                       size_t *prefix_len, uint64_t *file_size);
/* The same with "__metadata__": {"format": "pt"}, as save_pretrained
 * writes it (transformers refuses other formats, accepts none). */
tc_status tc_st_layout_pt(tc_st_out_tensor *t, size_t n, char **prefix,
                          size_t *prefix_len, uint64_t *file_size);

/* Convenience for tests and the model generator: write a whole file from
 * in-memory tensors. data[i] holds t[i]'s bytes as given BEFORE sorting
 * (the function sorts a private copy). metadata_json, if not NULL, is the
 * compact JSON object text written as "__metadata__" first (string values
 * only; HF files carry {"format":"pt"}). Writes path directly (no rename). */
tc_status tc_st_write_file(const char *path, const tc_st_out_tensor *t,
                           const void *const *data, size_t n,
                           const char *metadata_json);

#endif
