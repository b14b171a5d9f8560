/* hf_ckpt.h: the Hugging Face-style checkpoint (--output_format hf, issue
 * 22, docs/hf-output.md), what TensorRT-LLM's PyTorch backend, vLLM and
 * SGLang load: the directory of the source model with its weights replaced.
 *
 * Files (each written durably; config.json last, the commit marker):
 *   model-0000K-of-0000N.safetensors   the cells of this format: the whole
 *       model's tensors under their Hugging Face names (plan.h
 *       tc_plan_build_hf, quantized by quant/hf_quant.h), in that order,
 *       cut into shards of at most max_shard_bytes of tensor data (a
 *       tensor larger than that alone in its shard), "__metadata__"
 *       {"format": "pt"}. Shard k is written by rank k mod world, which
 *       reads only the source byte ranges of its own tensors;
 *   model.safetensors.index.json   {"metadata": {"total_size": bytes},
 *       "weight_map": {name: file}} with sorted keys, as save_pretrained;
 *   hf_quant_config.json   (quantized output) {"producer": {"name":
 *       "trtconv", "version"}, "quantization": {"quant_algo",
 *       "kv_cache_quant_algo", ["group_size": 16,] "exclude_modules"}};
 *   generation_config.json, tokenizer.json, tokenizer_config.json,
 *       tokenizer.model, special_tokens_map.json: copied when the source
 *       has them;
 *   trtconv-manifest.json, .trtconv-rank{k}.json   (manifest.h);
 *   config.json   the source's, "torch_dtype" set to the output dtype and,
 *       when quantized, "quantization_config" as ModelOpt's
 *       convert_hf_quant_config_format writes it.
 *
 * Ownership: a tc_hf_output owns its plan and shard map; plans returned by
 * tc_hf_output_plan_shard belong to the caller (tc_plan_free). */
#ifndef TRTCONV_OUTPUT_HF_CKPT_H
#define TRTCONV_OUTPUT_HF_CKPT_H

#include <stdint.h>
#include "trtconv/calib/calib_stats.h"
#include "trtconv/core/status.h"
#include "trtconv/model/hf_model.h"
#include "trtconv/output/format.h"
#include "trtconv/plan/plan.h"
#include "trtconv/quant/hf_quant.h"

#define TC_HF_DEFAULT_SHARD_BYTES 5000000000ULL  /* save_pretrained's "5GB" */

typedef struct tc_hf_output {
    tc_plan *full;             /* every output tensor, in file order */
    int *shard_of;             /* [full->n_tensors] */
    int shards;
    tc_hf_quant q;
    uint64_t total_bytes;      /* tensor data of every shard */
} tc_hf_output;

/* The output of model m in dtype dt: plan, quantization rewrite, shards.
 * Reads only headers; the same on every rank. */
tc_status tc_hf_output_build(tc_hf_model *m, tc_dtype dt, const tc_hf_quant *q,
                             uint64_t max_shard_bytes, tc_hf_output **out);
void tc_hf_output_free(tc_hf_output *o); /* accepts NULL */
/* The plan of shard `shard` (its tensors copied, rank = shard, naming
 * TC_CELLS_HF_SHARDS), scales filled from stats. stats NULL: none filled,
 * for a shard that needs no statistics or a run that fills each layer's
 * behind its gate while it calibrates (hf_quant.h). */
tc_status tc_hf_output_plan_shard(const tc_hf_output *o, int shard, const tc_calib_stats *stats,
                                  tc_plan **out);

extern const tc_output_format tc_output_hf;

#endif
