/* calib_stats.h: SmoothQuant / INT8-KV calibration statistics in model form.
 *
 * What (trtllm-checkpoint.md §5.2): for every linear of every decoder layer
 * (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, Hugging
 * Face names) and for lm_head:
 *   x[in]  = max over all calibration tokens of |input|, per input channel;
 *   y[out] = max over all tokens of |output|, per output channel;
 *   w[out] = max over the input dimension of |W|, per output row.
 * Values are those of the forward dtype (float16 for SmoothQuant) held in
 * float32, exactly. "Model form": full channel counts, independent of the
 * tp/pp layout that computed them, so one file serves every layout.
 *
 * Mixture-of-experts models (experts > 1, docs/moe.md): gate_proj, up_proj
 * and down_proj are the experts' w1, w3 and w2, their statistics stacked
 * over the experts (expert e's at [e * n, (e + 1) * n), n the per-expert
 * length). As NVIDIA ModelOpt calibrates them, every expert sees every
 * calibration token, not only those routed to it. down_proj's y is not
 * collected (under moe_tp a rank's expert output is a partial sum): zeros.
 *
 * HDF5 file (written by rank 0, read by rank 0 and broadcast):
 *   /                         attributes: format = "trtconv-calib-stats",
 *                             format_version = 1, model, hidden_size,
 *                             num_hidden_layers, num_attention_heads,
 *                             num_key_value_heads, head_dim,
 *                             intermediate_size, vocab_size, samples,
 *                             tokens, max_seq_length, calib_dataset,
 *                             forward_dtype, computed_layout, producer,
 *                             note (statistics are taken before smoothing
 *                             and do not depend on alpha); num_experts
 *                             (only for a mixture-of-experts model)
 *   /layers/<L>/<linear>/{x,y,w}   1-D float32 datasets, L = 0..layers-1,
 *                             linear = q_proj k_proj v_proj o_proj
 *                             gate_proj up_proj down_proj
 *   /lm_head/{x,y,w}          only when collected: a conversion calibrates
 *                             without lm_head (no method quantizes it) unless
 *                             it writes the file (--calib_stats_out)
 * A file is hostile input: every dataset's type class, rank and length is
 * checked against the model before it is read, and the error names the file,
 * the dataset and the rule.
 *
 * Ownership: tc_calib_stats owns `data`; pointers from tc_calib_get borrow
 * from it. */
#ifndef TRTCONV_CALIB_STATS_H
#define TRTCONV_CALIB_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "trtconv/model/hf_model.h"
#include "trtconv/core/status.h"

typedef enum tc_linear {
    TC_LIN_Q, TC_LIN_K, TC_LIN_V, TC_LIN_O, TC_LIN_GATE, TC_LIN_UP, TC_LIN_DOWN,
    TC_LIN_COUNT,
    TC_LIN_LM_HEAD = TC_LIN_COUNT   /* only with layer = -1 */
} tc_linear;

typedef enum tc_stat_kind { TC_STAT_X, TC_STAT_Y, TC_STAT_W, TC_STAT_COUNT } tc_stat_kind;

/* "q_proj", ..., "down_proj", "lm_head"; "x", "y", "w". */
const char *tc_linear_name(tc_linear lin);
const char *tc_stat_kind_name(tc_stat_kind k);

typedef struct tc_calib_dims {
    int64_t layers, hidden, heads, kv_heads, head_dim, inter, vocab;
    int64_t experts;   /* > 1: a mixture-of-experts model (stacked MLP statistics) */
} tc_calib_dims;

typedef struct tc_calib_stats {
    tc_calib_dims d;
    size_t n;              /* floats in data */
    float *data;           /* owned */
    bool lm_head_absent;   /* lm_head's statistics not collected: zeros in data */
    /* provenance, written as attributes */
    int64_t samples, tokens, max_seq_length;
    char model[512], calib_dataset[512], forward_dtype[16], layout[64];
} tc_calib_stats;

void tc_calib_dims_from_config(const tc_hf_config *cfg, tc_calib_dims *d);

/* Input / output channel count of a linear (lm_head: hidden -> vocab), of
 * one expert for the stacked MLP linears of an MoE model. */
int64_t tc_calib_in_dim(const tc_calib_dims *d, tc_linear lin);
int64_t tc_calib_out_dim(const tc_calib_dims *d, tc_linear lin);
/* How many experts a linear's statistics are stacked over (1: not stacked). */
int64_t tc_calib_stack(const tc_calib_dims *d, tc_linear lin);

/* Offset (in floats) of one statistic in data; layer -1 with TC_LIN_LM_HEAD. */
size_t tc_calib_offset(const tc_calib_dims *d, int64_t layer, tc_linear lin, tc_stat_kind k);

/* The statistics in data (and file) order: layers 0 .. layers-1, each
 * q_proj .. down_proj, each x, y, w; then lm_head x, y, w (layer -1).
 * Entry i of tc_calib_entry_count(d) names one of them; its name in the
 * HDF5 file ("/layers/3/o_proj/x", "/lm_head/w") goes to path. */
size_t tc_calib_entry_count(const tc_calib_dims *d);
void tc_calib_entry(const tc_calib_dims *d, size_t i, int64_t *layer, tc_linear *lin,
                    tc_stat_kind *k);
void tc_calib_entry_path(int64_t layer, tc_linear lin, tc_stat_kind k, char *path, size_t n);

/* Zero-filled statistics for the dims. */
tc_status tc_calib_stats_alloc(const tc_calib_dims *d, tc_calib_stats *s);
void tc_calib_stats_free(tc_calib_stats *s); /* accepts a zeroed struct */

/* Borrowed pointer to one statistic; *len gets its length (all experts'). */
float *tc_calib_get(const tc_calib_stats *s, int64_t layer, tc_linear lin, tc_stat_kind k,
                    int64_t *len);

/* First non-finite or negative value: TC_E_INPUT naming layer, linear and
 * statistic ("NaN or Inf in the activations of layer 3 mlp.down_proj ..."). */
tc_status tc_calib_stats_check(const tc_calib_stats *s, const char *label);
/* The global statistics a conversion divides by (each decoder linear's
 * input maxima, q_proj's standing for k and v, and every output maxima)
 * are not all zero for any linear: 127 / max would be infinite. Names the
 * layer and linear (an MoE model's down_proj y is not collected: skipped). */
tc_status tc_calib_stats_check_scales(const tc_calib_stats *s, const char *label);

/* HDF5 (see the top of the file). Both fail with TC_E_USAGE when trtconv was
 * built without HDF5. read checks the file's dims against `expect`. */
tc_status tc_calib_stats_write_h5(const tc_calib_stats *s, const char *path);
tc_status tc_calib_stats_read_h5(const char *path, const tc_calib_dims *expect,
                                 tc_calib_stats *out);

/* Statistics dumped by TensorRT-LLM's capture_activation_range as a
 * safetensors file: "model.layers.L.self_attn.q_proj.x" (F32), ".y" (F32),
 * ".w" (F16), and "lm_head.{x,y,w}" (optional). Dense models only (upstream
 * dumps no experts). */
tc_status tc_calib_stats_import_safetensors(const char *path, const tc_calib_dims *expect,
                                            tc_calib_stats *out);

#endif
