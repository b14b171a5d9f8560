/* hf_weights.h: a Hugging Face-style checkpoint (--output_format hf) as the
 * forward engine's weight source for trtconv eval; src/eval/hf_weights.c
 * says how each tensor and quantization is read and emulated.
 * Ownership: the source owns its open shards; close it after the engine. */
#ifndef TRTCONV_EVAL_HF_WEIGHTS_H
#define TRTCONV_EVAL_HF_WEIGHTS_H

#include <stdint.h>
#include "trtconv/core/status.h"
#include "trtconv/eval/ckpt_weights.h"
#include "trtconv/fwd/fwd.h"

typedef struct tc_hf_weights tc_hf_weights;

/* dir's model.safetensors.index.json (shards opened on first use); q: the
 * checkpoint's quantization (act FP8 static or per token, kv FP8); layer0:
 * the first layer of the engine's cell. */
tc_status tc_hf_weights_open(const char *dir, const tc_ckpt_quant *q, int64_t layer0,
                             tc_hf_weights **out);
void tc_hf_weights_close(tc_hf_weights *w); /* accepts NULL */
void tc_hf_weights_source(tc_hf_weights *w, tc_fwd_weight_source *src);

#endif
