/* trtllm_ckpt.c: TensorRT-LLM v0.12's checkpoint as an output format
 * (format.h): config.json from convert_checkpoint.py's mapping of the job
 * (trtllm-checkpoint.md §1, §3), rank files through convert.h, the
 * manifest, config.json last. */
#include "trtconv/output/format.h"
#include "trtconv/core/log.h"

#include <math.h>
#include <string.h>
#include "trtconv/build_config.h"
#include "trtconv/formats/trtllm_config.h"

/* Fill the TensorRT-LLM config from the model config (or, without one,
 * from the flags, as convert_checkpoint.py does). */
static void build_config(const tc_output_desc *d, tc_trtllm_config *t)
{
    const tc_quant_settings *q = d->quant;
    memset(t, 0, sizeof *t);
    t->quant_algo = q->weights->config_algo;
    if (q->weights->smoothquant) {
        t->has_smoothquant_val = true;
        t->smoothquant_val = q->alpha;
    }
    t->kv_cache_quant_algo = q->kv->config_algo;
    if (q->has_clamp_val) {
        t->has_clamp_val = true;
        t->clamp_val[0] = q->clamp_val[0];
        t->clamp_val[1] = q->clamp_val[1];
    }
    t->disable_weight_only_quant_plugin = d->disable_weight_only_quant_plugin;
    t->remove_duplicated_kv_heads = d->remove_duplicated_kv_heads;
    t->use_meta_recipe = d->use_meta_fp8_rowwise_recipe;
    t->dtype = d->dtype;
    t->logits_dtype = "float32";
    t->position_embedding_type = "rope_gpt_neox";
    t->moe_normalization_mode = -1;
    t->world_size = tc_layout_cells(&d->layout);
    t->gpus_per_node = 8;
    t->cp_size = 1;
    t->tp_size = d->layout.tp;
    t->pp_size = d->layout.pp;
    /* Resolved as convert_checkpoint.py main() does (layout.h). */
    t->moe_tp_size = d->layout.moe_tp;
    t->moe_ep_size = d->layout.moe_ep;
    t->group_size = 128;
    t->use_parallel_embedding = d->emb.parallel;
    t->embedding_sharding_dim = d->emb.sharding_dim;
    t->share_embedding_table = d->share_embedding;
    const tc_hf_config *cfg = d->cfg;
    if (cfg) {
        t->attn_bias = cfg->attention_bias;
        t->rotary_base = cfg->rope_theta;
        t->rotary_scaling = cfg->rope_scaling;
        t->architecture = cfg->architecture;
        t->vocab_size = cfg->vocab_size;
        t->hidden_size = cfg->hidden_size;
        t->num_hidden_layers = cfg->num_hidden_layers;
        t->num_attention_heads = cfg->num_attention_heads;
        /* LLaMAConfig.from_hugging_face: "swiglu" for mixtral (and
         * arctic), the only model types with a normalization mode. */
        t->hidden_act = cfg->moe_normalization_mode == 1 ? "swiglu" : cfg->hidden_act;
        t->moe_num_experts = cfg->moe_num_experts;
        t->moe_top_k = cfg->moe_top_k;
        t->moe_normalization_mode = cfg->moe_normalization_mode;
        t->norm_epsilon = cfg->rms_norm_eps;
        t->max_position_embeddings = cfg->max_position_embeddings;
        t->num_key_value_heads = cfg->num_key_value_heads;
        t->intermediate_size = cfg->intermediate_size;
        t->head_size = cfg->head_dim;
        return;
    }
    const tc_model_flags *f = d->flags;
    t->rotary_base = f->rotary_base;
    t->architecture = "LlamaForCausalLM";
    t->vocab_size = f->vocab_size;
    t->hidden_size = f->n_embd;
    t->num_hidden_layers = f->n_layer;
    t->num_attention_heads = f->n_head;
    t->hidden_act = f->hidden_act;
    t->norm_epsilon = f->rms_norm_eps;
    t->max_position_embeddings = f->n_positions;
    t->num_key_value_heads = f->n_kv_head > 0 ? f->n_kv_head : f->n_head;
    t->intermediate_size = f->inter_size;
    t->head_size = f->n_embd / f->n_head;
    t->moe_num_experts = f->moe_num_experts;
    t->moe_top_k = f->moe_top_k;
    t->moe_normalization_mode = f->moe_renorm_mode;
    if (f->multiple_of > 0) {
        t->has_multiple_of = true;
        t->multiple_of = f->multiple_of;
    }
    if (!isnan(f->ffn_dim_multiplier)) {
        t->has_ffn_dim_multiplier = true;
        t->ffn_dim_multiplier = f->ffn_dim_multiplier;
    }
}

static tc_status render(const tc_output_desc *d, char **text)
{
    tc_trtllm_config t;
    build_config(d, &t);
    return d->cfg ? tc_trtllm_config_render(&t, text) : tc_trtllm_cli_config_render(&t, text);
}

static tc_status commit(const char *dir, const tc_run_text *run, const tc_output_desc *d,
                        const char *metadata, const tc_rank_entry *entries)
{
    const tc_layout *l = &d->layout;
    TC_TRY(tc_manifest_write(dir, TRTCONV_VERSION, run, tc_layout_cells(l), l->tp, l->pp,
                             metadata, entries));
    return tc_write_file_durable(dir, "config.json", metadata);
}

const tc_output_format tc_output_trtllm = {
    .name = "TensorRT-LLM checkpoint (v0.12)",
    .commit_file = "config.json",
    .render_metadata = render,
    .open_cell = tc_cell_open,
    .commit = commit,
};
