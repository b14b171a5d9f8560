/* options.h: the parsed command line, shared read-only by every module.
 *
 * Flag names, defaults and meanings follow TensorRT-LLM v0.12
 * examples/llama/convert_checkpoint.py (trtllm-checkpoint.md §1). Flags of
 * features that have not landed yet are parsed and refused with
 * "not supported yet" by tc_opts_parse, never ignored. */
#ifndef TRTCONV_OPTIONS_H
#define TRTCONV_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "trtconv/core/dtype.h"
#include "trtconv/core/log.h"
#include "trtconv/core/status.h"
#include "trtconv/output/format.h"
#include "trtconv/quant/method.h"

typedef struct tc_opts {
    const char *model_dir;        /* NULL: "fake config" mode */
    const char *meta_ckpt_dir;
    const char *output_dir;       /* default "tllm_checkpoint" */
    int64_t tp_size, pp_size;     /* default 1 */
    int64_t moe_tp_size, moe_ep_size; /* default -1 */
    bool dtype_auto;              /* --dtype auto: from HF torch_dtype */
    bool dtype_given;             /* --dtype on the command line */
    tc_float_type dtype;          /* default float16 */
    tc_model_flags model;         /* fake-config mode values (no --model_dir) */
    /* embedding */
    bool use_parallel_embedding;
    int64_t embedding_sharding_dim; /* 0 or 1 */
    bool use_embedding_sharing;
    /* quantization flags (refused until their issue lands) */
    bool use_weight_only;
    const char *weight_only_precision; /* "int8" */
    int woq_bits;                 /* 8 or 4 when use_weight_only, else 0 */
    int64_t target_sm;            /* --target_sm; 0 = the SM of the rank's GPU */
    int quantize_on;              /* --quantize_on: 0 auto, 1 cpu, 2 gpu */
    bool disable_weight_only_quant_plugin;
    double smoothquant;           /* NAN = None */
    bool per_channel, per_token, int8_kv_cache, fp8_kv_cache;
    bool fp8_kv_calibrate;        /* --calibrate_fp8_kv_scale (beyond v0.12) */
    bool use_fp8_rowwise, per_group;
    bool use_fp8;                 /* FP8 per tensor, calibrated (quant_algo FP8) */
    bool use_meta_fp8_rowwise_recipe; /* later upstream's flag: config.json use_meta_recipe */
    const char *quant_ckpt_path;
    int64_t group_size;
    const char *calib_dataset;
    int64_t calib_size, calib_max_seq_length;   /* calib_size -1: all samples */
    int64_t calib_batch_size;     /* samples per micro-batch (new; default 8) */
    bool calib_by_batch;          /* --calib_schedule batch (default layer: fwd_stream.c) */
    const char *calib_stats_out;  /* HDF5 file to write the statistics to */
    const char *calib_stats;      /* HDF5 file to reuse statistics from */
    const char *tokenizer_dir;    /* tokenizer for text calibration lines; NULL = model dir */
    const char *eval_dataset;     /* --eval: evaluate the checkpoint once written (docs/eval.md) */
    bool sq_enabled;              /* smoothquant given and > 0 */
    bool calibrate;               /* sq_enabled || int8_kv_cache */
    /* output format (--output_format hf: output/hf_ckpt.h) */
    bool output_hf;
    bool use_nvfp4;               /* --use_nvfp4 (hf only) */
    uint64_t max_shard_bytes;     /* --max_shard_size (hf), default 5 GB */
    const char *exclude_modules;  /* --exclude_modules (hf): comma-separated patterns */
    /* output protocol (manifest.h) */
    bool overwrite;               /* replace a complete checkpoint */
    bool resume;                  /* reuse matching rank files of an earlier run */
    bool verify_inputs;           /* full SHA-256 of inputs in the fingerprint */
    int64_t timeout_s;            /* --timeout: whole-job deadline, 0 = none */
    /* misc */
    bool load_by_shard, load_model_on_cpu, save_config_only;
    bool remove_duplicated_kv_heads;
    int64_t workers;              /* threads per rank, default 1 */
    enum tc_log_level log_level;  /* default info */
    bool progress_bar;            /* --progress bar */
    bool no_progress;             /* --progress none */
    bool progress_auto;           /* --progress auto (default) */
} tc_opts;

/* Fill defaults. */
void tc_opts_init(tc_opts *o);

/* Parse argv (strings are borrowed from argv). Cross-option checks run after
 * the loop. Errors print a usage message to `err` (only if err != NULL, so
 * that only rank 0 prints) and return TC_E_USAGE. --help prints the help to
 * `out` (if not NULL) and sets *help_shown. */
tc_status tc_opts_parse(tc_opts *o, int argc, char **argv, FILE *out,
                        FILE *err, bool *help_shown);

/* The quantization the flags ask for (quant/method.h selects the methods). */
void tc_opts_quant_request(const tc_opts *o, tc_quant_request *r);

#endif
