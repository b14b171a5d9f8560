/* fuzz_config.c: libFuzzer target for the Hugging Face config.json parser
 * (both styles: torch_dtype/rope_theta/rope_scaling and transformers 5
 * dtype/rope_parameters). */
#include <stddef.h>
#include <stdint.h>
#include "trtconv/model/hf_model.h"
#include "trtconv/core/log.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tc_hf_config cfg;
    if (tc_hf_config_parse("fuzz/config.json", (const char *)data, size, &cfg) == TC_OK) {
        if (cfg.hidden_size <= 0 || cfg.num_attention_heads <= 0 || cfg.head_dim <= 0)
            __builtin_trap();
        tc_hf_config_free(&cfg);
    }
    tc_clear_first_error();
    return 0;
}
