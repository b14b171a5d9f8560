/* fuzz_common.h: what every libFuzzer target of trtconv shares. The
 * readers report errors through tc_fail, which would print one line per
 * rejected input: the targets run quiet. */
#ifndef TRTCONV_FUZZ_COMMON_H
#define TRTCONV_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include "trtconv/core/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    tc_log_init(0, 1, "fuzz");
    tc_log_set_quiet(1);
    return 0;
}

#endif
