/* fuzz_index.c: libFuzzer target for model.safetensors.index.json (the
 * weight map, including the path-traversal rule on shard names). */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "trtconv/model/hf_model.h"
#include "trtconv/core/log.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tc_hf_model *m = calloc(1, sizeof *m);
    if (!m)
        return 0;
    pthread_mutex_init(&m->lock, NULL);
    if (tc_hf_index_parse(m, "fuzz/index.json", (const char *)data, size) == TC_OK) {
        for (size_t i = 0; i < m->n_shards; i++)
            if (!tc_hf_shard_name_ok(m->shard_names[i]))
                __builtin_trap();
        for (size_t i = 0; i < m->n_entries; i++)
            if (m->entry_shard[i] < 0 || (size_t)m->entry_shard[i] >= m->n_shards)
                __builtin_trap();
    }
    tc_hf_close(m);
    tc_clear_first_error();
    return 0;
}
