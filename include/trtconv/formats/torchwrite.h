/* torchwrite.h: writing the torch.save layout (torchfile.h describes it),
 * for trtconv-genmodel and the tests. Not used by the converter.
 *
 * The pickle is the opcode sequence CPython's pickle module (protocol 2,
 * with memo) emits for a torch.save of a state_dict of contiguous tensors,
 * each on its own storage: checked byte for byte against files written by
 * torch 2.11 (tests/data/pickle). The archive is ZIP with stored entries
 * whose data start 64-byte aligned (the local extra field is padding, as in
 * PyTorch's writer), CRC-32 and sizes in the local and central headers
 * (ZIP64 extra fields when a size or offset needs 64 bits) and, like
 * PyTorch's writer, always a ZIP64 end record + locator before the end of
 * central directory record. */
#ifndef TRTCONV_TORCHWRITE_H
#define TRTCONV_TORCHWRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "trtconv/core/dtype.h"
#include "trtconv/core/status.h"

typedef struct tc_tw_tensor {
    const char *name;          /* state_dict key; borrowed */
    tc_dtype dtype;            /* F32, F16 or BF16 */
    int ndim;                  /* 0 .. 8 */
    int64_t shape[8];
} tc_tw_tensor;

/* data.pkl for tensors t[0..n) stored in storages "0", "1", ... in that
 * order; ordered: a collections.OrderedDict (Hugging Face), else a plain
 * dict (Meta). On TC_OK *out (malloc'd) belongs to the caller. */
tc_status tc_tw_pickle(const tc_tw_tensor *t, size_t n, bool ordered, unsigned char **out,
                       size_t *len);

typedef struct tc_zipw_entry {
    const char *name;          /* borrowed */
    uint64_t size;
    uint32_t crc32;            /* filled by the caller before the headers */
    uint64_t header_offset;    /* set by tc_zipw_layout */
    uint64_t data_offset;      /* set by tc_zipw_layout: 64-byte aligned */
} tc_zipw_entry;

/* Place the entries one after the other; *cd_offset is where the central
 * directory goes. */
tc_status tc_zipw_layout(tc_zipw_entry *e, size_t n, uint64_t *cd_offset);
/* The local header of e: the bytes [header_offset, data_offset). On TC_OK
 * *out (malloc'd) belongs to the caller. */
tc_status tc_zipw_local(const tc_zipw_entry *e, unsigned char **out, size_t *len);
/* Central directory, ZIP64 end record, locator and end record, to be
 * written at cd_offset. On TC_OK *out (malloc'd) belongs to the caller. */
tc_status tc_zipw_tail(const tc_zipw_entry *e, size_t n, uint64_t cd_offset, unsigned char **out,
                       size_t *len);

/* A whole archive in memory: PREFIX/data.pkl = pkl, PREFIX/byteorder,
 * PREFIX/data/<i> = storage[i] (sizes[i] bytes), PREFIX/version. On TC_OK
 * *out (malloc'd) belongs to the caller. For tests and fuzz seeds. */
tc_status tc_tw_archive_mem(const char *prefix, const unsigned char *pkl, size_t pkl_len,
                            const unsigned char *const *storage, const uint64_t *sizes,
                            size_t n_storages, unsigned char **out, size_t *len);

#endif
