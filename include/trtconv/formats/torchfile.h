/* torchfile.h: PyTorch checkpoints (torch.save: pytorch_model*.bin, Meta's
 * consolidated.NN.pth) read without executing anything.
 *
 * File format (torch/serialization.py `_save`, PyTorch >= 1.6): a ZIP
 * archive (zipread.h) whose entries all start with one directory PREFIX/:
 *   PREFIX/data.pkl      a pickle, protocol 2, of the saved object;
 *   PREFIX/data/KEY      the raw bytes of storage KEY, little endian;
 *   PREFIX/byteorder     "little" (absent in older files: little endian);
 *   PREFIX/version, PREFIX/.format_version, ...   not needed here.
 * In data.pkl a storage is a persistent id (BINPERSID) of the tuple
 *   ('storage', torch.<T>Storage, KEY, LOCATION, NUMEL)
 * and a tensor is REDUCE of torch._utils._rebuild_tensor_v2 on
 *   (storage, storage_offset, size, stride, requires_grad,
 *    backward_hooks [, metadata])
 * (torch/_tensor.py `_reduce_ex_internal`, torch/_utils.py). A state_dict
 * is a collections.OrderedDict (REDUCE of the class on (), then SETITEMS,
 * then BUILD with its _metadata) or, in Meta's files, a plain dict.
 *
 * The pickle is interpreted by a restricted machine (opcode semantics as in
 * CPython Lib/pickletools.py) that knows only the opcodes protocol 2 uses
 * for such objects (PROTO, STOP, MARK, the memo, integers, floats, strings,
 * None/bools, tuples, dicts, GLOBAL, REDUCE, BUILD, BINPERSID) and only the
 * globals collections.OrderedDict, torch._utils._rebuild_tensor_v2 and
 * torch.{Float,Half,BFloat16}Storage. Any other opcode or global, a REDUCE of
 * anything but those two callables, nesting deeper than TC_PKL_MAX_DEPTH,
 * a length field past the end, more than TC_PKL_MAX_OBJECTS objects, a
 * tensor outside its storage or a storage whose entry has another size is
 * refused with a message naming the file, the byte offset and the rule.
 * Nothing is ever called: the "callables" are tags.
 *
 * Tensors must be contiguous in row-major order (torch's is_contiguous);
 * others are refused with their strides named, because a rank reads its
 * rows as byte ranges. Views sharing one storage are accepted. */
#ifndef TRTCONV_TORCHFILE_H
#define TRTCONV_TORCHFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "trtconv/core/dtype.h"
#include "trtconv/formats/safetensors.h"
#include "trtconv/core/status.h"

#define TC_PKL_MAX_DIMS 8
#define TC_PKL_MAX_DEPTH 32           /* nesting of tuples/dicts */
#define TC_PKL_MAX_MARKS 32           /* open MARKs at once */
#define TC_PKL_MAX_OBJECTS (1u << 23) /* objects a pickle may create */
#define TC_PKL_MAX_BYTES ((size_t)256 << 20) /* data.pkl size limit */

typedef struct tc_pkl_storage {
    char *key;            /* owned; [0-9A-Za-z_]+ */
    tc_dtype dtype;       /* F32, F16 or BF16 */
    uint64_t numel;
} tc_pkl_storage;

typedef struct tc_pkl_tensor {
    char *name;           /* owned; the state_dict key */
    size_t storage;       /* index into storages */
    uint64_t storage_offset; /* in elements */
    int ndim;
    int64_t shape[TC_PKL_MAX_DIMS];
    int64_t stride[TC_PKL_MAX_DIMS];
    uint64_t numel;
    bool contiguous;      /* torch's Tensor.is_contiguous() */
} tc_pkl_tensor;

typedef struct tc_pkl_result {
    size_t n_storages;
    tc_pkl_storage *storages; /* owned */
    size_t n_tensors;
    tc_pkl_tensor *tensors;   /* owned; in pickle order */
} tc_pkl_result;

/* Interpret data.pkl (len bytes at buf; label names it in messages). The
 * top-level object must be a dict/OrderedDict of str -> tensor. On TC_OK
 * *out is filled and released with tc_pkl_free; on error it is empty. */
tc_status tc_pkl_parse(const char *label, const unsigned char *buf, size_t len,
                       tc_pkl_result *out);
void tc_pkl_free(tc_pkl_result *r); /* accepts zeroed structs */

/* Open a torch.save file as a tensor index with the shape of a safetensors
 * file: every tc_st_tensor's begin/end are absolute file offsets (the
 * returned file has data_offset 0), so tc_st_read reads a tensor's bytes
 * exactly as for safetensors. On TC_OK *out belongs to the caller
 * (tc_st_close). */
tc_status tc_torch_open(const char *path, tc_st_file **out);
/* The same for an archive held in memory (fd -1: nothing can be read
 * through it). For unit tests and fuzzing. */
tc_status tc_torch_parse_mem(const char *label, const unsigned char *buf, size_t len,
                             tc_st_file **out);

#endif
