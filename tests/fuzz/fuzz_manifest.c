/* fuzz_manifest.c: libFuzzer target for the rank records --resume trusts
 * (manifest.h): JSON text -> tc_rank_entry_parse. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "trtconv/core/jsonutil.h"
#include "trtconv/core/log.h"
#include "fuzz_common.h"
#include "trtconv/output/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *o = tc_json_parse(NULL, (const char *)data, size);
    if (o) {
        tc_rank_entry e;
        char why[256];
        if (tc_rank_entry_parse(o, &e, why, sizeof why)) {
            if (strlen(e.sha256) != 64 || e.rank < 0)
                __builtin_trap();
        }
        cJSON_Delete(o);
    }
    tc_clear_first_error();
    return 0;
}
