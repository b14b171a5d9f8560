/* fuzz_tokenizer.c: libFuzzer target for the tokenizer loaders and the
 * encode pipeline (tokenizer.h). The first input byte picks the file kind
 * (even: tokenizer.json, odd: tokenizer.model); the rest is the file. A
 * tokenizer that loads then encodes fixed probe strings and the input's own
 * bytes when they are valid UTF-8: every id must lie below the tokenizer's
 * id limit, and truncation must hold. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz_common.h"
#include "trtconv/calib/tokenizer.h"

static void probe(const tc_tokenizer *t, const char *s, size_t len)
{
    int32_t *ids = NULL;
    size_t n = 0;
    if (tc_tokenizer_encode(t, s, len, true, 0, "fuzz", &ids, &n) == TC_OK) {
        for (size_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= tc_tokenizer_id_limit(t))
                __builtin_trap();
    }
    free(ids);
    ids = NULL;
    if (tc_tokenizer_encode(t, s, len, true, 8, "fuzz", &ids, &n) == TC_OK && n > 8)
        __builtin_trap();
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    tc_tokenizer_source kind = (data[0] & 1) ? TC_TOKENIZER_SPM_MODEL : TC_TOKENIZER_HF_JSON;
    tc_tokenizer *t = NULL;
    if (tc_tokenizer_from_memory(kind, "fuzz", (const char *)data + 1, size - 1, NULL, 0, "fuzz",
                                 &t) != TC_OK)
        return 0;
    static const char *const probes[] = {"", " ", "Hello world", "<s> a</s>", "12345 x\n\ny",
                                         "\xe2\x96\x81\xc4\xa0 caf\xc3\xa9 \xf0\x9f\x98\x80"};
    for (size_t i = 0; i < sizeof probes / sizeof *probes; i++)
        probe(t, probes[i], strlen(probes[i]));
    if (size > 1 && size < 4096 && tc_utf8_valid((const char *)data + 1, size - 1))
        probe(t, (const char *)data + 1, size - 1);
    tc_tokenizer_free(t);
    return 0;
}
