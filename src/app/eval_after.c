/* eval_after.c: `trtconv ... --eval DATASET`: the checkpoint just committed,
 * evaluated against its source model at once (docs/eval.md), in the run's
 * own layout and on its ranks. Checked before converting, so a
 * quantization eval does not compute yet fails before hours of work. */
#include "trtconv/app/job.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "trtconv/calib/tokens.h"
#include "trtconv/core/log.h"
#include "trtconv/eval/ckpt_weights.h"
#include "trtconv/eval/eval.h"
#include "trtconv/model/hf_model.h"

tc_status tc_job_eval_check(const tc_job *j)
{
    const tc_opts *o = j->o;
    if (!o->eval_dataset)
        return TC_OK;
    const tc_quant_method *w = j->s.quant.weights, *kv = j->s.quant.kv;
    if (!j->model || o->save_config_only)
        return tc_fail(TC_E_USAGE, "--eval needs a model to convert (--model_dir) and its rank "
                       "files");
    tc_ckpt_quant q;
    TC_TRY(tc_eval_quant_parse(w->config_algo, kv->config_algo, "--eval", &q));
    if (tc_hf_is_moe(&j->model->cfg) &&
        ((q.act && q.act != TC_FQ_FP8) || q.per_token || q.rowwise ||
         (q.woq_bits && o->disable_weight_only_quant_plugin)))
        return tc_fail(TC_E_USAGE, "--eval: of the quantized experts of a mixture-of-experts "
                       "model eval emulates weight-only (with the plugin) and FP8 per tensor "
                       "ones (docs/eval.md)");
    /* A Hugging Face-style checkpoint runs in tp 1 x pp 1 on any ranks. */
    const int cells = j->s.hf ? 1 : tc_layout_cells(&j->s.layout);
    if (j->comm->size % cells != 0)
        return tc_fail(TC_E_USAGE, "--eval runs the checkpoint in its layout: the number of "
                       "ranks (%d) must be a multiple of tp_size x pp_size = %d", j->comm->size,
                       cells);
    if (access(o->eval_dataset, R_OK) != 0)
        return tc_fail(TC_E_USAGE, "--eval %s: cannot read it", o->eval_dataset);
    return TC_OK;
}

tc_status tc_job_eval(const tc_job *j)
{
    const tc_opts *o = j->o;
    const tc_comm *c = j->comm;
    tc_token_set tok;
    memset(&tok, 0, sizeof tok);
    tc_status st = tc_tokens_load_text_jsonl(o->eval_dataset, 128, 512,
                                             j->model->cfg.vocab_size,
                                             o->tokenizer_dir ? o->tokenizer_dir : j->model->dir,
                                             &tok);
    st = tc_comm_agree(c, st, "reading the --eval data");
    tc_eval_result r;
    memset(&r, 0, sizeof r);
    if (st == TC_OK) {
        const tc_eval_options eo = {
            .gpu = j->s.calib_gpu,
            .threads = tc_comm_threads_per_rank(c, o->workers > 1 ? o->workers : 0),
            .batch_size = 1,
            .target_sm = (int)j->s.quant.target_sm,
            .linear_tokens = TC_EVAL_LINEAR_TOKENS,
        };
        st = tc_eval_checkpoint(c, j->model, &tok, o->output_dir, &eo, &r);
    }
    if (st == TC_OK && c->rank == 0) {
        tc_eval_print(stdout, &r);
        fflush(stdout);
    }
    tc_eval_result_free(&r);
    tc_tokens_free(&tok);
    return st;
}
