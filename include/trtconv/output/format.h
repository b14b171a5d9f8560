/* format.h: the output seam. A checkpoint format is one tc_output_format:
 * how a cell's file is opened (its name and header), the metadata file
 * rendered from the job's description, and the commit that makes the
 * directory complete. The run (app/) only talks to this interface.
 *
 * Implemented: tc_output_trtllm (trtllm_ckpt.c), TensorRT-LLM v0.12's
 * checkpoint: rank{c}.safetensors per cell, trtconv-manifest.json, then
 * config.json last (trtllm-checkpoint.md, durability-and-failures.md §2);
 * tc_output_hf (hf_ckpt.c, hf_ckpt.h), the Hugging Face-style checkpoint
 * (issue 22): its cells are the model-0000K-of-0000N.safetensors shards.
 *
 * Ownership: formats are static; render_metadata returns a malloc'd text
 * the caller frees; a description borrows everything it points to. */
#ifndef TRTCONV_OUTPUT_FORMAT_H
#define TRTCONV_OUTPUT_FORMAT_H

#include <stdbool.h>
#include <stdint.h>
#include "trtconv/output/rankfile.h"
#include "trtconv/core/dtype.h"
#include "trtconv/model/hf_model.h"
#include "trtconv/output/manifest.h"
#include "trtconv/plan/layout.h"
#include "trtconv/plan/plan.h"
#include "trtconv/quant/method.h"

/* A model described by flags instead of a checkpoint (convert_checkpoint.py
 * without --model_dir): the fake-config values. */
typedef struct tc_model_flags {
    int64_t vocab_size, n_positions, n_layer, n_head, n_kv_head, n_embd;
    int64_t inter_size, multiple_of;      /* n_kv_head/multiple_of: -1 = None */
    double ffn_dim_multiplier;            /* NAN = None */
    double rms_norm_eps, rotary_base;
    const char *hidden_act;
    int64_t moe_num_experts, moe_top_k, moe_renorm_mode;
} tc_model_flags;

/* What the metadata says about a job. */
typedef struct tc_output_desc {
    const tc_hf_config *cfg;              /* NULL: the model is `flags` */
    const tc_model_flags *flags;
    tc_layout layout;
    tc_float_type dtype;
    const tc_quant_settings *quant;
    tc_embedding emb;
    bool share_embedding;
    bool disable_weight_only_quant_plugin;
    bool remove_duplicated_kv_heads;      /* the flag, recorded as v0.12 does */
    bool use_meta_fp8_rowwise_recipe;     /* later upstream's flag (docs/fp8.md) */
    const char *model_dir;                /* the source directory (NULL: none) */
    int cells;                            /* the output's cell files */
    const struct tc_hf_output *hf;        /* the Hugging Face output (NULL: other) */
} tc_output_desc;

typedef struct tc_output_format {
    const char *name;
    const char *commit_file;              /* written last: its presence = complete */
    /* The commit file's text. */
    tc_status (*render_metadata)(const tc_output_desc *d, char **text);
    /* Create the partial file of a cell (convert.h protocol). */
    tc_status (*open_cell)(const char *dir, tc_plan *plan, tc_cell_output *out);
    /* Rank 0, after every cell file is published: the manifest of the
     * files (entries[0..d->cells)), the format's other files, then the
     * commit file (metadata), durably. */
    tc_status (*commit)(const char *dir, const tc_run_text *run, const tc_output_desc *d,
                        const char *metadata, const tc_rank_entry *entries);
} tc_output_format;

extern const tc_output_format tc_output_trtllm;

#endif
