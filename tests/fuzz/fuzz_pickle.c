/* fuzz_pickle.c: libFuzzer target for the restricted pickle machine
 * (torchfile.c tc_pkl_parse): any bytes as data.pkl. Accepted results must
 * be self-consistent: every tensor inside its storage. */
#include <stddef.h>
#include <stdint.h>
#include "fuzz_common.h"
#include "trtconv/formats/torchfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tc_pkl_result r;
    if (tc_pkl_parse("fuzz", data, size, &r) == TC_OK) {
        for (size_t i = 0; i < r.n_tensors; i++) {
            const tc_pkl_tensor *t = &r.tensors[i];
            if (t->storage >= r.n_storages || t->ndim > TC_PKL_MAX_DIMS)
                __builtin_trap();
            if (t->numel > 0 && t->contiguous &&
                t->storage_offset + t->numel > r.storages[t->storage].numel)
                __builtin_trap();
        }
        tc_pkl_free(&r);
    }
    tc_clear_first_error();
    return 0;
}
