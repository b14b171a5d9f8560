/* eval.h: how much a converted checkpoint's quantization costs, measured
 * with the distributed forward pass (docs/eval.md).
 *
 * The source model and the converted checkpoint run over the same token
 * sequences in the checkpoint's tp x pp layout (dp on extra ranks), micro-
 * batch by micro-batch in lockstep; per batch the source's hidden states and
 * logits are kept on the ranks that produce them and compared with the
 * converted model's as they arrive:
 *   perplexity   exp(mean over predicted tokens of -log softmax(logits)[next
 *                id]) for each model, the log-sum-exp over the whole
 *                vocabulary (tensor-parallel columns reduced exactly);
 *   top-1        share of predicted tokens whose argmax (lowest index on
 *                ties) is the same;
 *   KL           mean over predicted tokens of KL(source || converted), nats;
 *   layer error  per decoder layer (and the final norm): ||h_c - h_s||_2 /
 *                ||h_s||_2 over every token of the set, each model running on
 *                its own hidden states (the error as it accumulates);
 *   local error  the same with every converted layer given the source's
 *                input (the source's output of the layer before): what that
 *                layer alone adds (a third forward pass of the converted
 *                model, its layers fed through tc_fwd_set_layer_input);
 *   linear error per decoder layer and linear (qkv, dense, fc, gate, proj:
 *                the checkpoint's names; fc is Hugging Face's gate_proj,
 *                gate its up_proj), the same norm ratio of the linear's
 *                output in the local pass against the source's, over the
 *                first linear_tokens tokens of each micro-batch (the
 *                source's outputs of a whole chunk would not fit in host
 *                memory for a large model): which linear of a layer the
 *                error comes from; dense and proj before their bias;
 *   flagged      layers whose local error is at least TC_EVAL_FLAG_ERROR
 *                (half the hidden state's norm) and at least
 *                TC_EVAL_FLAG_JUMP times the median local error of the
 *                model's layers: what a corrupted tensor (a scale off by
 *                10x) does to its layer, where quantization, int4 included,
 *                spreads a smaller error over every layer.
 * Sums are float64; every quantity is reduced over the world in a fixed
 * order, so the numbers do not depend on the number of ranks beyond the
 * float32 arithmetic of the layout itself. */
#ifndef TRTCONV_EVAL_H
#define TRTCONV_EVAL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "trtconv/calib/tokens.h"
#include "trtconv/fwd/fwd.h"
#include "trtconv/model/hf_model.h"
#include "trtconv/mpi/comm.h"
#include "trtconv/mpi/gpu.h"
#include "trtconv/core/status.h"

#define TC_EVAL_FLAG_ERROR 0.5
#define TC_EVAL_FLAG_JUMP 4.0
#define TC_EVAL_LINEARS 5      /* qkv, dense, fc, gate, proj */
#define TC_EVAL_LINEAR_TOKENS 256  /* the default of --linear_tokens */
/* The name of linear i (tc_eval_result.linear_error's second index). */
const char *tc_eval_linear_name(int i);

typedef struct tc_eval_result {
    char label[512];            /* the checkpoint directory */
    double ppl_source, ppl_converted;
    double nll_source, nll_converted;   /* mean nats per predicted token */
    double top1;                /* fraction in [0, 1] */
    double kl;                  /* mean nats per predicted token */
    int64_t predicted;          /* tokens with a next token */
    int64_t layers;             /* L */
    double *layer_error;        /* [L + 1]: after decoder layer l; [L]: final norm */
    double *local_error;        /* [L + 1]: the same on the source's inputs */
    bool *flagged;              /* [L] */
    double *linear_error;       /* [L][TC_EVAL_LINEARS]; NaN: not measured (off; the
                                   experts of a mixture-of-experts layer) */
    int64_t linear_tokens;      /* rows compared per micro-batch (0: none) */
    int n_flagged;
} tc_eval_result;

/* Run the comparison. fwd is the engine setup of both models (model,
 * layout, emb, dtype, comm, gpu, threads, sizes; no weight source); the
 * converted model's engine reads its weights from `converted`. Collective
 * over fwd->comm; *out is complete on rank 0 (zero elsewhere); free it
 * with tc_eval_result_free. */
tc_status tc_eval_run(const tc_fwd_setup *fwd, const tc_fwd_weight_source *converted,
                      const tc_token_set *tokens, int64_t batch_size, int64_t linear_tokens,
                      tc_eval_result *out);
void tc_eval_result_free(tc_eval_result *r);

/* A checkpoint directory against its source model (eval_ckpt.c): its
 * config.json gives the layout (tp x pp; the world's other ranks are
 * replicas), dtype, embedding options and quantization; a weight-only
 * checkpoint's layout SM comes from target_sm or its trtconv-manifest.json.
 * A quantization eval does not compute is refused naming it. Collective
 * over comm; *out is complete on rank 0. */
typedef struct tc_eval_options {
    const tc_gpu_info *gpu;     /* NULL: the CPU backend */
    int threads;                /* CPU threads per rank (forward, logits) */
    int64_t batch_size;         /* sequences per micro-batch */
    int target_sm;              /* 0: from the manifest */
    int64_t linear_tokens;      /* per micro-batch for the linears' errors (0: off) */
} tc_eval_options;
tc_status tc_eval_checkpoint(const tc_comm *comm, tc_hf_model *model, const tc_token_set *tokens,
                             const char *dir, const tc_eval_options *o, tc_eval_result *out);
/* Whether eval emulates a quantization: config.json's quant_algo and
 * kv_cache_quant_algo (either may be NULL); `where` names the checkpoint in
 * the refusal. Fills q (ckpt_weights.h) when it does. */
struct tc_ckpt_quant;
tc_status tc_eval_quant_parse(const char *quant_algo, const char *kv_algo, const char *where,
                              struct tc_ckpt_quant *q);

/* Reports (eval_report.c): a table, a JSON document with every number,
 * and an SVG line chart of the layer errors, one line per result. */
void tc_eval_print(FILE *f, const tc_eval_result *r);
tc_status tc_eval_write_json(const char *path, const char *model_dir, const char *dataset,
                             const tc_eval_result *r, size_t n);
tc_status tc_eval_write_svg(const char *path, const tc_eval_result *r, size_t n);

/* `trtconv eval` (src/cli/eval_main.c): its command line, after MPI_Init;
 * returns the exit status. */
int tc_eval_main(int argc, char **argv);

#endif
