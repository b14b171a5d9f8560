/* fuzz_zip.c: libFuzzer target for the torch.save archive reader. The
 * input is a whole file held in memory: zipread.c validates the central
 * directory, ZIP64 records and local headers, then torchfile.c reads
 * PREFIX/data.pkl (CRC-checked) and maps storages to entries. Whatever is
 * accepted must describe tensors inside the input. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "fuzz_common.h"
#include "trtconv/formats/torchfile.h"
#include "trtconv/formats/zipread.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tc_zip *z = NULL;
    if (tc_zip_parse_mem("fuzz", data, size, &z) == TC_OK) {
        for (size_t i = 0; i < z->n_entries; i++) {
            const tc_zip_entry *e = &z->entries[i];
            if (e->data_offset > size || e->size > size - e->data_offset)
                __builtin_trap();
        }
        tc_zip_close(z);
    }
    tc_st_file *f = NULL;
    if (tc_torch_parse_mem("fuzz", data, size, &f) == TC_OK) {
        for (size_t i = 0; i < f->n_tensors; i++) {
            const tc_st_tensor *t = &f->tensors[i];
            if (t->begin > t->end || t->end > size || tc_st_find(f, t->name) != t)
                __builtin_trap();
        }
        tc_st_close(f);
    }
    tc_clear_first_error();
    return 0;
}
