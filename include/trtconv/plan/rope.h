/* rope.h: the three float32 rotary buffers of TensorRT-LLM v0.12 rank files.
 *
 * Every rank file of the per-rank path (plain, weight-only; not the
 * SmoothQuant / INT8-KV quantize path, which writes its dict directly)
 * holds the buffers that Attention.create_attention_const_params
 * (tensorrt_llm/layers/attention.py) registers on the model object and
 * save_checkpoint writes with the parameters:
 *
 *   embed_positions                    F32 [1, P, D]   row p: sin(p*f0 .. p*f(D/2-1)),
 *                                                      then cos of the same, f from
 *                                                      theta 10000 whatever the model's
 *                                                      base (create_sinusoidal_positions)
 *   rotary_inv_freq                    F32 [D/2]       g: rotary_base and rotary_scaling
 *   embed_positions_for_gpt_attention  F32 [1, P*D]    row p: cos(p*g0), sin(p*g0), cos(p*g1),
 *                                                      ... (create_sinusoidal_positions_
 *                                                      for_attention_plugin)
 *
 * P = max_position_embeddings, D = rotary_dim = head_size (LLaMA has no
 * rotary_pct). Arithmetic as numpy 2 does it in that code (NEP 50: Python
 * scalars take the array's float32): f = 1 / float32(theta ** (2j/D)) with
 * the power in float64, the angle p*f one float32 product, and sin/cos of
 * it as numpy's FMA builds compute float32 sin/cos (rope.c;
 * docs/rope-buffers.md gives the evidence and the bound elsewhere).
 * Scaling types: none, linear (scale 1/factor), dynamic and longrope
 * (scale = factor, as that function applies it), llama3
 * (apply_llama3_scaling in float32); any other type is refused, as
 * RotaryScalingType.from_string refuses it. */
#ifndef TRTCONV_ROPE_H
#define TRTCONV_ROPE_H

#include <stdint.h>
#include "trtconv/core/status.h"

struct cJSON;

typedef enum tc_rope_buffer {
    TC_ROPE_NONE = 0,
    TC_ROPE_EMBED_POSITIONS,          /* rows P x cols D */
    TC_ROPE_INV_FREQ,                 /* rows D/2 x cols 1 */
    TC_ROPE_FOR_GPT_ATTENTION,        /* rows P x cols D */
} tc_rope_buffer;

typedef struct tc_rope_tables {
    int64_t max_pos, dim;
    float *inv_freq_plain;   /* [dim/2], theta 10000: embed_positions (owned) */
    float *inv_freq_attn;    /* [dim/2], rotary_base + scaling (owned) */
} tc_rope_tables;

/* Build the frequencies. rotary_scaling is the object written as
 * config.json's rotary_scaling (NULL for none); label names the input in
 * errors. On TC_OK the caller frees *t with tc_rope_tables_free. */
tc_status tc_rope_tables_init(const char *label, const struct cJSON *rotary_scaling,
                              double rotary_base, int64_t max_pos, int64_t dim,
                              tc_rope_tables *t);
void tc_rope_tables_free(tc_rope_tables *t);

/* Rows [row0, row0 + rows) of buffer `which` as float32 into dst (rows x
 * cols of the shapes above). */
void tc_rope_fill(const tc_rope_tables *t, tc_rope_buffer which, int64_t row0, int64_t rows,
                  float *dst);

/* Name of each buffer in the rank file. */
const char *tc_rope_buffer_name(tc_rope_buffer which);

#endif
