/* plan_hf.c: the whole model under its Hugging Face names (plan.h
 * tc_plan_build_hf), the input of the Hugging Face-style output
 * (output/hf_ckpt.c splits it into shards, quant/hf_quant.c rewrites its
 * linears). Every tensor is a source tensor, whole: its pieces come from
 * the builder of plan_internal.h, so a Meta checkpoint's model-parallel
 * parts and rotary permutation are undone exactly as for the TensorRT-LLM
 * layout. */
#include "plan_internal.h"
#include "trtconv/core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRY(expr) TC_TRY(expr)

/* Source tensor `name` [d0] or [d0, d1], whole, as the next tensor. */
static tc_status whole(builder *b, const char *name, int ndim, int64_t d0, int64_t d1,
                       tc_dtype dt, bool linear)
{
    tc_hf_tensor t;
    TRY(tcp_need(b, name, ndim, d0, d1, &t));
    TRY(tcp_begin_tensor(b, name, dt, ndim, d0, ndim == 1 ? 1 : d1));
    TRY(tcp_add_piece(b, &t, 0, 0, d0));
    if (linear)
        tcp_mark_linear(b);
    return TC_OK;
}

/* A linear `prefix`: its weight [N, K] and, when the model has them, its
 * bias [N]. */
static tc_status linear(builder *b, const char *prefix, int64_t N, int64_t K, bool bias,
                        tc_dtype dt)
{
    char name[192];
    snprintf(name, sizeof name, "%s.weight", prefix);
    TRY(whole(b, name, 2, N, K, dt, true));
    if (!bias)
        return TC_OK;
    snprintf(name, sizeof name, "%s.bias", prefix);
    return whole(b, name, 1, N, 0, dt, false);
}

static tc_status plan_layer(builder *b, const tc_hf_config *c, int64_t g, tc_dtype dt)
{
    const int64_t H = c->hidden_size, d = c->head_dim, I = c->intermediate_size;
    const int64_t q = c->num_attention_heads * d, kv = c->num_key_value_heads * d;
    const bool ab = c->attention_bias, mb = c->mlp_bias;
    char p[160];
#define AT(fmt_) (snprintf(p, sizeof p, "model.layers.%lld." fmt_, (long long)g), p)
    TRY(linear(b, AT("self_attn.q_proj"), q, H, ab, dt));
    TRY(linear(b, AT("self_attn.k_proj"), kv, H, ab, dt));
    TRY(linear(b, AT("self_attn.v_proj"), kv, H, ab, dt));
    TRY(linear(b, AT("self_attn.o_proj"), H, q, ab, dt));
    TRY(linear(b, AT("mlp.gate_proj"), I, H, mb, dt));
    TRY(linear(b, AT("mlp.up_proj"), I, H, mb, dt));
    TRY(linear(b, AT("mlp.down_proj"), H, I, mb, dt));
    TRY(whole(b, AT("input_layernorm.weight"), 1, H, 0, dt, false));
    return whole(b, AT("post_attention_layernorm.weight"), 1, H, 0, dt, false);
#undef AT
}

tc_status tc_plan_build_hf(tc_hf_model *m, tc_dtype dt, tc_plan **plan)
{
    *plan = NULL;
    const tc_hf_config *c = &m->cfg;
    if (tc_hf_is_moe(c))
        return tc_fail(TC_E_USAGE, "--output_format hf: mixture-of-experts models (%s, %lld "
                       "experts) are not written in this format yet", c->architecture,
                       (long long)c->moe_num_experts);
    if (c->fbgemm_fp8 || c->kv_heads_stored_twice)
        return tc_fail(TC_E_USAGE, "--output_format hf: the model's %s is not carried into this "
                       "format", c->fbgemm_fp8 ? "fbgemm_fp8 quantization"
                                               : "duplicated KV heads (--remove_duplicated_kv_heads)");
    builder b;
    memset(&b, 0, sizeof b);
    b.m = m;
    b.plan = calloc(1, sizeof *b.plan);
    if (!b.plan)
        return tc_fail(TC_E_INTERNAL, "out of memory building the plan");
    b.plan->layers_total = c->num_hidden_layers;
    const int64_t H = c->hidden_size, V = c->vocab_size;
    tc_status st = whole(&b, "model.embed_tokens.weight", 2, V, H, dt, false);
    for (int64_t g = 0; st == TC_OK && g < c->num_hidden_layers; g++)
        st = plan_layer(&b, c, g, dt);
    if (st == TC_OK)
        st = whole(&b, "model.norm.weight", 1, H, 0, dt, false);
    if (st == TC_OK && !c->tie_word_embeddings)
        st = whole(&b, "lm_head.weight", 2, V, H, dt, false);
    if (st != TC_OK) {
        tc_plan_free(b.plan);
        return st;
    }
    tc_plan_recount(b.plan);
    *plan = b.plan;
    return TC_OK;
}
