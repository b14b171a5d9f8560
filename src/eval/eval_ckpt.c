/* eval_ckpt.c: a converted checkpoint directory evaluated (eval.h
 * tc_eval_checkpoint): what its config.json and trtconv-manifest.json say
 * about its layout, dtype and quantization, checked against what eval
 * computes (docs/eval.md), then tc_eval_run with the rank file as the
 * converted engine's weight source. */
#define _POSIX_C_SOURCE 200809L
#include "trtconv/eval/eval.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "trtconv/core/fsutil.h"
#include "trtconv/core/jsonutil.h"
#include "trtconv/core/log.h"
#include "trtconv/eval/ckpt_weights.h"
#include "trtconv/eval/hf_weights.h"
#include "trtconv/plan/layout.h"
#include "trtconv/plan/plan.h"

/* What eval needs of a checkpoint's config.json and manifest. */
typedef struct ckpt_info {
    tc_layout layout;
    tc_embedding emb;
    tc_dtype dtype;
    tc_ckpt_quant q;
    bool hf;                 /* a Hugging Face-style checkpoint (--output_format hf) */
} ckpt_info;

static cJSON *read_json(const char *dir, const char *name, bool required, tc_status *st)
{
    char path[4096];
    *st = tc_path_join(path, sizeof path, dir, name);
    if (*st != TC_OK)
        return NULL;
    char *text = NULL;
    size_t len = 0;
    FILE *probe = fopen(path, "rb");
    if (!probe) {
        if (required)
            *st = tc_fail(TC_E_INPUT, "%s: missing: not a converted checkpoint (or never "
                          "committed)", path);
        return NULL;
    }
    fclose(probe);
    *st = tc_read_small_file(path, 16u << 20, &text, &len);
    if (*st != TC_OK)
        return NULL;
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        *st = tc_fail(TC_E_INPUT, "%s: not a JSON object", path);
    }
    return j;
}

tc_status tc_eval_quant_parse(const char *a, const char *kv, const char *where,
                              struct tc_ckpt_quant *q)
{
    memset(q, 0, sizeof *q);
    if (!a) {
        /* unquantized weights */
    } else if (!strcmp(a, "W8A16"))
        q->woq_bits = 8;
    else if (!strcmp(a, "W4A16"))
        q->woq_bits = 4;
    else if (!strncmp(a, "W8A8_SQ_PER_", 12) && strstr(a, "_PLUGIN")) {
        q->act = TC_FQ_INT8;
        q->per_token = strstr(a, "PER_TOKEN") != NULL;
    } else if (!strcmp(a, "FP8"))
        q->act = TC_FQ_FP8;
    else if (!strcmp(a, "FP8_PER_CHANNEL_PER_TOKEN")) {
        q->act = TC_FQ_FP8;
        q->per_token = q->rowwise = true;
    } else
        return tc_fail(TC_E_USAGE, "%s: quant_algo %s: trtconv eval emulates unquantized, "
                       "weight-only (W8A16, W4A16), SmoothQuant (W8A8_SQ_*), FP8 and FP8 "
                       "rowwise checkpoints so far (docs/eval.md)", where, a);
    if (!kv)
        return TC_OK;
    if (!strcmp(kv, "INT8"))
        q->kv = TC_FQ_INT8;
    else if (!strcmp(kv, "FP8"))
        q->kv = TC_FQ_FP8;
    else
        return tc_fail(TC_E_USAGE, "%s: kv_cache_quant_algo %s is not emulated (INT8 and FP8 "
                       "are)", where, kv);
    return TC_OK;
}

/* A Hugging Face-style checkpoint (no "mapping"): evaluated in tp 1 x pp 1,
 * every rank a replica; its dtype and quantization_config. */
static tc_status hf_read_info(const char *dir, const cJSON *cfg, ckpt_info *ci)
{
    ci->hf = true;
    ci->layout = (tc_layout){ .tp = 1, .pp = 1 };
    TC_TRY(tc_layout_set_moe(&ci->layout, -1, -1));
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(cfg, "torch_dtype");
    if (!cJSON_IsString(dt))
        dt = cJSON_GetObjectItemCaseSensitive(cfg, "dtype");
    tc_float_type ft;
    if (!cJSON_IsString(dt) || tc_float_type_parse(dt->valuestring, &ft) != 0)
        return tc_fail(TC_E_INPUT, "%s/config.json: torch_dtype must be float16, bfloat16 or "
                       "float32", dir);
    ci->dtype = tc_float_type_dtype(ft);
    const cJSON *qc = cJSON_GetObjectItemCaseSensitive(cfg, "quantization_config");
    const cJSON *algo = cJSON_IsObject(qc) ? cJSON_GetObjectItemCaseSensitive(qc, "quant_algo") : NULL;
    if (cJSON_IsString(algo) && !strcmp(algo->valuestring, "FP8")) {
        ci->q.act = TC_FQ_FP8;
    } else if (cJSON_IsString(algo) && !strcmp(algo->valuestring, "FP8_PER_CHANNEL_PER_TOKEN")) {
        ci->q.act = TC_FQ_FP8;
        ci->q.per_token = true;
    } else if (cJSON_IsString(algo) && !strcmp(algo->valuestring, "NVFP4")) {
        ci->q.act = TC_FQ_NVFP4;
    } else if (algo) {
        return tc_fail(TC_E_USAGE, "%s: quant_algo %s: trtconv eval emulates unquantized, FP8, "
                       "FP8_PER_CHANNEL_PER_TOKEN and NVFP4 Hugging Face-style checkpoints "
                       "(docs/eval.md)", dir,
                       cJSON_IsString(algo) ? algo->valuestring : "(not a string)");
    }
    if (cJSON_IsObject(qc) && cJSON_GetObjectItemCaseSensitive(qc, "kv_cache_scheme"))
        ci->q.kv = TC_FQ_FP8;
    return TC_OK;
}

static tc_status ckpt_read_info(const char *dir, int64_t target_sm, ckpt_info *ci)
{
    memset(ci, 0, sizeof *ci);
    tc_status st;
    cJSON *cfg = read_json(dir, "config.json", true, &st);
    if (!cfg)
        return st;
    if (!cJSON_GetObjectItemCaseSensitive(cfg, "mapping") &&
        cJSON_GetObjectItemCaseSensitive(cfg, "architectures")) {
        st = hf_read_info(dir, cfg, ci);
        cJSON_Delete(cfg);
        return st;
    }
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(cfg, "mapping");
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(cfg, "quantization");
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(cfg, "dtype");
    int64_t tp = 0, pp = 0, shard = 0;
    if (!cJSON_IsObject(map) ||
        !tc_json_int(cJSON_GetObjectItemCaseSensitive(map, "tp_size"), 1, 4096, &tp) ||
        !tc_json_int(cJSON_GetObjectItemCaseSensitive(map, "pp_size"), 1, 4096, &pp))
        st = tc_fail(TC_E_INPUT, "%s/config.json: mapping.tp_size and mapping.pp_size must be "
                     "integers in [1, 4096]", dir);
    tc_float_type ft;
    if (st == TC_OK && (!cJSON_IsString(dt) || tc_float_type_parse(dt->valuestring, &ft) != 0))
        st = tc_fail(TC_E_INPUT, "%s/config.json: dtype must be float16, bfloat16 or float32",
                     dir);
    const cJSON *algo = cJSON_IsObject(q) ? cJSON_GetObjectItemCaseSensitive(q, "quant_algo") : NULL;
    const cJSON *kv = cJSON_IsObject(q) ? cJSON_GetObjectItemCaseSensitive(q, "kv_cache_quant_algo") : NULL;
    if (st == TC_OK)
        st = tc_eval_quant_parse(cJSON_IsString(algo) ? algo->valuestring : NULL,
                                 cJSON_IsString(kv) ? kv->valuestring : NULL, dir, &ci->q);
    ci->q.woq_no_plugin = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg,
                                                                       "disable_weight_only_quant_plugin"));
    if (st == TC_OK && ci->q.woq_no_plugin && ci->q.woq_bits != 8)
        st = tc_fail(TC_E_INPUT, "%s/config.json: disable_weight_only_quant_plugin is for int8 "
                     "weight-only checkpoints (W8A16)", dir);
    if (st == TC_OK) {
        ci->layout = (tc_layout){ .tp = (int)tp, .pp = (int)pp };
        /* A mixture of experts' split (absent: the defaults, moe_tp = tp). */
        int64_t moe_tp = -1, moe_ep = -1;
        const cJSON *mt = cJSON_GetObjectItemCaseSensitive(map, "moe_tp_size");
        const cJSON *me = cJSON_GetObjectItemCaseSensitive(map, "moe_ep_size");
        if ((mt && !tc_json_int(mt, 1, 4096, &moe_tp)) || (me && !tc_json_int(me, 1, 4096, &moe_ep)))
            st = tc_fail(TC_E_INPUT, "%s/config.json: mapping.moe_tp_size and moe_ep_size must "
                         "be integers in [1, 4096]", dir);
        else
            st = tc_layout_set_moe(&ci->layout, moe_tp, moe_ep);
    }
    if (st == TC_OK) {
        ci->dtype = tc_float_type_dtype(ft);
        ci->emb.parallel = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, "use_parallel_embedding"));
        ci->emb.share = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, "share_embedding_table"));
        if (tc_json_int(cJSON_GetObjectItemCaseSensitive(cfg, "embedding_sharding_dim"), 0, 1,
                        &shard))
            ci->emb.sharding_dim = (int)shard;
    }
    cJSON_Delete(cfg);
    if (st != TC_OK || !ci->q.woq_bits || ci->q.woq_no_plugin)
        return st; /* no CUTLASS layout to undo */
    /* The weight-only layout: --target_sm, else what trtconv recorded. */
    ci->q.target_sm = (int)target_sm;
    if (!ci->q.target_sm) {
        cJSON *man = read_json(dir, "trtconv-manifest.json", false, &st);
        const cJSON *par = man ? cJSON_GetObjectItemCaseSensitive(man, "parameters") : NULL;
        const cJSON *sm = par ? cJSON_GetObjectItemCaseSensitive(par, "target_sm") : NULL;
        if (cJSON_IsString(sm))
            ci->q.target_sm = atoi(sm->valuestring);
        cJSON_Delete(man);
    }
    if (st == TC_OK && !ci->q.target_sm)
        st = tc_fail(TC_E_USAGE, "%s: a weight-only checkpoint's layout depends on the SM it "
                     "was converted for, which it does not record: pass --target_sm", dir);
    return st;
}

tc_status tc_eval_checkpoint(const tc_comm *comm, tc_hf_model *model, const tc_token_set *tok,
                             const char *dir, const tc_eval_options *o, tc_eval_result *out)
{
    memset(out, 0, sizeof *out);
    ckpt_info ci;
    tc_status st = ckpt_read_info(dir, o->target_sm, &ci);
    ci.layout.ranks = comm->size;
    ci.emb.share = ci.emb.share && model->cfg.tie_word_embeddings;
    const tc_plan_params checks = { .layout = ci.layout, .emb = ci.emb, .out_dtype = ci.dtype };
    if (st == TC_OK)
        st = tc_layout_check_replicas(&checks.layout, "trtconv eval", "");
    if (st == TC_OK)
        st = tc_plan_check_model(&model->cfg, &checks);
    tc_ckpt_weights *w = NULL;
    tc_hf_weights *hw = NULL;
    const int cell = tc_layout_replica_cell(&ci.layout, comm->rank);
    if (st == TC_OK && ci.hf)
        st = tc_hf_weights_open(dir, &ci.q, tc_layout_pp_rank(&ci.layout, cell) *
                                                (model->cfg.num_hidden_layers / ci.layout.pp),
                                &hw);
    else if (st == TC_OK)
        st = tc_ckpt_weights_open(dir, cell, &ci.q, &w);
    st = tc_comm_agree(comm, st, dir);
    if (st == TC_OK) {
        tc_fwd_weight_source src;
        if (hw)
            tc_hf_weights_source(hw, &src);
        else
            tc_ckpt_weights_source(w, &src);
        const tc_fwd_setup s = {
            .model = model, .layout = ci.layout, .emb = ci.emb, .dtype = ci.dtype, .comm = comm,
            .gpu = o->gpu, .threads = o->threads > 0 ? o->threads : 1,
            .max_batch_tokens = tc_fwd_max_batch_tokens(tok, o->batch_size),
            .max_seq_len = tc_tokens_longest(tok, 0, tok->n_seqs),
        };
        if (comm->rank == 0)
            tc_log(TC_LOG_INFO, "evaluating %s: tp %d x pp %d, %d replica(s), %s, %zu sequences",
                   dir, ci.layout.tp, ci.layout.pp, tc_layout_dp(&ci.layout),
                   tc_dtype_name(ci.dtype), tok->n_seqs);
        st = tc_eval_run(&s, &src, tok, o->batch_size, o->linear_tokens, out);
        snprintf(out->label, sizeof out->label, "%s", dir);
    }
    tc_ckpt_weights_close(w);
    tc_hf_weights_close(hw);
    return st;
}

