/* fuzz_safetensors.c: libFuzzer target for the safetensors header reader.
 * The input is a whole file; the target applies the same framing checks as
 * tc_st_open (8-byte length, header within the file) and hands the header
 * to tc_st_parse_header with the input's length as the file size, so every
 * rule of safetensors.md §4 runs on attacker-chosen bytes. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "trtconv/core/log.h"
#include "fuzz_common.h"
#include "trtconv/formats/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8)
        return 0;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | data[i];
    if (n > TC_ST_MAX_HEADER || n > size - 8)
        return 0;
    tc_st_file *f = NULL;
    if (tc_st_parse_header("fuzz", (const char *)data + 8, (size_t)n, size, &f, NULL) == TC_OK) {
        /* Whatever was accepted must be self-consistent. */
        for (size_t i = 0; i < f->n_tensors; i++) {
            const tc_st_tensor *t = &f->tensors[i];
            if (t->begin > t->end || f->data_offset + t->end > size)
                __builtin_trap();
            if (tc_st_find(f, t->name) != t)
                __builtin_trap();
        }
        tc_st_close(f);
    }
    tc_clear_first_error();
    return 0;
}
