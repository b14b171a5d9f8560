/* fwd_moe.h (private to src/fwd/): the mixture-of-experts MLP block of the
 * forward pass (fwd_moe.c). fwd.c owns the weights (loaded from the cell
 * plan: router [E, H], experts fc [E_l * 2 I_l, H] = per expert the up then
 * the gate rows, proj [E_l * H, I_l]) and the shared activation buffers;
 * the block owns its routing buffers (tc_fwd_moe_create / _free). */
#ifndef TRTCONV_FWD_MOE_H
#define TRTCONV_FWD_MOE_H

#include <stdbool.h>
#include <stdint.h>
#include "trtconv/fwd/backend.h"

typedef struct fwd_moe_geom {
    tc_dtype dt;
    int64_t H, E, top_k;     /* hidden size, all experts, experts per token */
    int64_t E_l, e0, I_l;    /* this rank's experts [e0, e0 + E_l), its intermediate slice */
    bool renormalize;        /* MoeConfig RENORMALIZE (Mixtral) */
    int64_t max_tokens;
} fwd_moe_geom;

/* FP8 experts as trtconv eval emulates them (fake_quant.h): the expert
 * weights hold their E4M3 values; fc's and proj's inputs are quantized with
 * one static scale for all experts (x * act, the GEMM's rows times row, as
 * TensorRT-LLM v0.12's MoE plugin takes "a single activation scaling
 * factor"), each expert's output times its own weight scale. Backend
 * memory borrowed from the engine. */
typedef struct fwd_moe_quant {
    float fc_act, fc_row, proj_act, proj_row;
    const float *fc_col, *proj_col;   /* [E_l]: expert j's weight scale */
    void *q_in;                       /* [T, max(H, I_l)] dt scratch */
    float *q_acc, *q_row;             /* [T, max(2 I_l, H)], [T] float32 scratch */
} fwd_moe_quant;

typedef struct fwd_moe_weights {
    const void *router, *fc, *proj;   /* backend memory, owned by the engine */
    const fwd_moe_quant *q;           /* NULL: the experts are float */
} fwd_moe_weights;

typedef struct fwd_moe fwd_moe;

tc_status tc_fwd_moe_create(const fwd_ops *ops, fwd_backend *b, const fwd_moe_geom *g,
                            fwd_moe **out);
void tc_fwd_moe_free(fwd_moe *m, const fwd_ops *ops, fwd_backend *b); /* accepts NULL */

/* Calibration: called for every local expert j (0 <= j < E_l) with its
 * gate (w1 x), up (w3 x) and SiLU product for all T tokens. */
typedef tc_status (*fwd_moe_stats_fn)(void *ctx, int64_t j, const void *g_buf, const void *u_buf,
                                      const void *a_buf, int64_t T);

/* p32[T, H] = this rank's share of the block's output for the normed input
 * x [T, H] (dt); g/u/a: [T, I_l] dt scratch of the caller. The caller
 * all-reduces p32 over tp and adds it to the residual. With stats (else
 * NULL) every local expert runs on every token, as NVIDIA ModelOpt's
 * calibration forwards all tokens to all experts (_QuantSparseMoe), and
 * stats sees each; the output still uses the top-k routing. */
tc_status tc_fwd_moe_run(fwd_moe *m, const fwd_ops *ops, fwd_backend *b, const fwd_moe_weights *w,
                         const void *x, void *g_buf, void *u_buf, void *a_buf, float *p32, int64_t T,
                         fwd_moe_stats_fn stats, void *stats_ctx);

#endif
