/* fuzz_calib_jsonl.c: libFuzzer target for the calibration token file
 * (--calib_dataset, JSON Lines with an "input_ids" array per line). */
#define _GNU_SOURCE /* fmemopen */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "trtconv/core/log.h"
#include "fuzz_common.h"
#include "trtconv/calib/tokens.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    FILE *f = fmemopen((void *)(uintptr_t)data, size, "rb");
    if (!f)
        return 0;
    tc_token_set t;
    if (tc_tokens_load_stream(f, "fuzz.jsonl", 64, 256, 1000, &t) == TC_OK) {
        for (size_t s = 0; s < t.n_seqs; s++) {
            if (t.offsets[s + 1] <= t.offsets[s] || t.offsets[s + 1] - t.offsets[s] > 256)
                __builtin_trap();
            for (int64_t k = t.offsets[s]; k < t.offsets[s + 1]; k++)
                if (t.ids[k] < 0 || t.ids[k] >= 1000)
                    __builtin_trap();
        }
        tc_tokens_free(&t);
    }
    fclose(f);
    tc_clear_first_error();
    return 0;
}
