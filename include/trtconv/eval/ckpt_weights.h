/* ckpt_weights.h: a converted checkpoint's rank file as the forward
 * engine's weight source (fwd.h tc_fwd_weight_source), for trtconv eval
 * (docs/eval.md).
 *
 * The engine asks for the tensors of its unquantized cell plan (the names
 * and [rows, cols] a plain conversion in the checkpoint's layout would
 * write); each is found under the same name in rank{cell}.safetensors and
 * returned as the engine would compute with it:
 *   - stored in a float dtype with the plan's element count: its values,
 *     converted to the plan's dtype if they differ;
 *   - W8A16 / W4A16 with the weight-only plugin (quant_algo W8A16 / W4A16):
 *     the stored I8 [K, N*bits/8] read back through tc_woq_unprocess
 *     (target_sm's layout) and multiplied by `...per_channel_scale` [N]:
 *     round(q * s) in the plan's dtype, the product the mixed-dtype GEMM
 *     forms before accumulating.
 * Anything else (FP8, SmoothQuant, experts, weights stored without the
 * plugin) is refused naming the tensor, the dtype and the rule.
 * Hostile files: shapes, dtypes and byte ranges are checked against the
 * plan before anything is read or allocated.
 * Ownership: the source owns its open file and one dequantized tensor
 * (kept while the engine reads it in row chunks). Not thread-safe. */
#ifndef TRTCONV_CKPT_WEIGHTS_H
#define TRTCONV_CKPT_WEIGHTS_H

#include <stdint.h>
#include "trtconv/fwd/fwd.h"
#include "trtconv/core/status.h"

typedef struct tc_ckpt_weights tc_ckpt_weights;

/* weight_only_bits: 0 (none), 8 or 4; target_sm: the layout's SM (woq.h). */
tc_status tc_ckpt_weights_open(const char *dir, int rank_file, int weight_only_bits,
                               int target_sm, tc_ckpt_weights **out);
void tc_ckpt_weights_close(tc_ckpt_weights *w); /* accepts NULL */
/* The engine's view: src->rows = the reader, src->ctx = w. */
void tc_ckpt_weights_source(tc_ckpt_weights *w, tc_fwd_weight_source *src);

#endif
