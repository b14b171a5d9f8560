/* options.c: command line of trtconv, compatible with TensorRT-LLM v0.12
 * examples/llama/convert_checkpoint.py (trtllm-checkpoint.md §1).
 *
 * Flag spelling follows argparse: "--flag value" or "--flag=value", unique
 * prefixes accepted (getopt_long_only also accepts the single-dash "-sq").
 * Flags whose feature has not landed are refused with TC_E_USAGE and a
 * message naming the issue that will bring them; none is ignored silently. */
#define _POSIX_C_SOURCE 200809L
#include "trtconv/cli/options.h"

#include "trtconv/build_config.h"
#include "trtconv/cli/args.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum opt_id {
    OPT_MODEL_DIR = 256, OPT_META_CKPT_DIR, OPT_TP_SIZE, OPT_PP_SIZE,
    OPT_MOE_TP_SIZE, OPT_MOE_EP_SIZE, OPT_DTYPE, OPT_VOCAB_SIZE, OPT_N_POSITIONS,
    OPT_N_LAYER, OPT_N_HEAD, OPT_N_KV_HEAD, OPT_N_EMBD, OPT_INTER_SIZE,
    OPT_MULTIPLE_OF, OPT_FFN_DIM_MULTIPLIER, OPT_RMS_NORM_EPS, OPT_USE_WEIGHT_ONLY,
    OPT_DISABLE_WOQ_PLUGIN, OPT_WEIGHT_ONLY_PRECISION, OPT_CALIB_DATASET,
    OPT_CALIB_SIZE, OPT_CALIB_MAX_SEQ_LENGTH, OPT_SMOOTHQUANT, OPT_PER_CHANNEL,
    OPT_PER_TOKEN, OPT_INT8_KV_CACHE, OPT_FP8_KV_CACHE, OPT_QUANT_CKPT_PATH,
    OPT_USE_FP8_ROWWISE, OPT_PER_GROUP, OPT_LOAD_BY_SHARD, OPT_HIDDEN_ACT,
    OPT_ROTARY_BASE, OPT_GROUP_SIZE, OPT_LOAD_MODEL_ON_CPU,
    OPT_USE_PARALLEL_EMBEDDING, OPT_EMBEDDING_SHARDING_DIM,
    OPT_USE_EMBEDDING_SHARING, OPT_OUTPUT_DIR, OPT_WORKERS, OPT_MOE_NUM_EXPERTS,
    OPT_MOE_TOP_K, OPT_MOE_RENORM_MODE, OPT_SAVE_CONFIG_ONLY,
    OPT_REMOVE_DUP_KV_HEADS, OPT_LOG_LEVEL, OPT_PROGRESS, OPT_HELP, OPT_VERSION,
    OPT_TARGET_SM, OPT_QUANTIZE_ON, OPT_CALIB_BATCH_SIZE, OPT_CALIB_SCHEDULE, OPT_CALIB_STATS_OUT, OPT_CALIB_STATS, OPT_EVAL,
    OPT_OVERWRITE, OPT_RESUME, OPT_VERIFY_INPUTS, OPT_TIMEOUT, OPT_TOKENIZER_DIR,
    OPT_CALIBRATE_FP8_KV_SCALE, OPT_USE_FP8, OPT_META_RECIPE, OPT_OUTPUT_FORMAT, OPT_USE_NVFP4,
    OPT_MAX_SHARD_SIZE, OPT_EXCLUDE_MODULES
};

static const struct option long_options[] = {
    { "model_dir", required_argument, NULL, OPT_MODEL_DIR },
    { "meta_ckpt_dir", required_argument, NULL, OPT_META_CKPT_DIR },
    { "tp_size", required_argument, NULL, OPT_TP_SIZE },
    { "pp_size", required_argument, NULL, OPT_PP_SIZE },
    { "moe_tp_size", required_argument, NULL, OPT_MOE_TP_SIZE },
    { "moe_ep_size", required_argument, NULL, OPT_MOE_EP_SIZE },
    { "dtype", required_argument, NULL, OPT_DTYPE },
    { "vocab_size", required_argument, NULL, OPT_VOCAB_SIZE },
    { "n_positions", required_argument, NULL, OPT_N_POSITIONS },
    { "n_layer", required_argument, NULL, OPT_N_LAYER },
    { "n_head", required_argument, NULL, OPT_N_HEAD },
    { "n_kv_head", required_argument, NULL, OPT_N_KV_HEAD },
    { "n_embd", required_argument, NULL, OPT_N_EMBD },
    { "inter_size", required_argument, NULL, OPT_INTER_SIZE },
    { "multiple_of", required_argument, NULL, OPT_MULTIPLE_OF },
    { "ffn_dim_multiplier", required_argument, NULL, OPT_FFN_DIM_MULTIPLIER },
    { "rms_norm_eps", required_argument, NULL, OPT_RMS_NORM_EPS },
    { "use_weight_only", no_argument, NULL, OPT_USE_WEIGHT_ONLY },
    { "disable_weight_only_quant_plugin", no_argument, NULL, OPT_DISABLE_WOQ_PLUGIN },
    { "weight_only_precision", optional_argument, NULL, OPT_WEIGHT_ONLY_PRECISION },
    { "calib_dataset", required_argument, NULL, OPT_CALIB_DATASET },
    { "calib_size", required_argument, NULL, OPT_CALIB_SIZE },
    { "calib_max_seq_length", required_argument, NULL, OPT_CALIB_MAX_SEQ_LENGTH },
    { "smoothquant", required_argument, NULL, OPT_SMOOTHQUANT },
    { "sq", required_argument, NULL, OPT_SMOOTHQUANT },
    { "per_channel", no_argument, NULL, OPT_PER_CHANNEL },
    { "per_token", no_argument, NULL, OPT_PER_TOKEN },
    { "int8_kv_cache", no_argument, NULL, OPT_INT8_KV_CACHE },
    { "fp8_kv_cache", no_argument, NULL, OPT_FP8_KV_CACHE },
    { "calibrate_fp8_kv_scale", no_argument, NULL, OPT_CALIBRATE_FP8_KV_SCALE },
    { "quant_ckpt_path", required_argument, NULL, OPT_QUANT_CKPT_PATH },
    { "use_fp8_rowwise", no_argument, NULL, OPT_USE_FP8_ROWWISE },
    { "use_fp8", no_argument, NULL, OPT_USE_FP8 },
    { "use_meta_fp8_rowwise_recipe", no_argument, NULL, OPT_META_RECIPE },
    { "per_group", no_argument, NULL, OPT_PER_GROUP },
    { "load_by_shard", no_argument, NULL, OPT_LOAD_BY_SHARD },
    { "hidden_act", required_argument, NULL, OPT_HIDDEN_ACT },
    { "rotary_base", required_argument, NULL, OPT_ROTARY_BASE },
    { "group_size", required_argument, NULL, OPT_GROUP_SIZE },
    { "load_model_on_cpu", no_argument, NULL, OPT_LOAD_MODEL_ON_CPU },
    { "use_parallel_embedding", no_argument, NULL, OPT_USE_PARALLEL_EMBEDDING },
    { "embedding_sharding_dim", required_argument, NULL, OPT_EMBEDDING_SHARDING_DIM },
    { "use_embedding_sharing", no_argument, NULL, OPT_USE_EMBEDDING_SHARING },
    { "output_dir", required_argument, NULL, OPT_OUTPUT_DIR },
    { "output_format", required_argument, NULL, OPT_OUTPUT_FORMAT },
    /* convert_checkpoint.py has no --output_format, so argparse takes
     * "--out" as --output_dir: an exact alias keeps such command lines. */
    { "out", required_argument, NULL, OPT_OUTPUT_DIR },
    { "use_nvfp4", no_argument, NULL, OPT_USE_NVFP4 },
    { "max_shard_size", required_argument, NULL, OPT_MAX_SHARD_SIZE },
    { "exclude_modules", required_argument, NULL, OPT_EXCLUDE_MODULES },
    { "workers", required_argument, NULL, OPT_WORKERS },
    { "moe_num_experts", required_argument, NULL, OPT_MOE_NUM_EXPERTS },
    { "moe_top_k", required_argument, NULL, OPT_MOE_TOP_K },
    { "moe_renorm_mode", required_argument, NULL, OPT_MOE_RENORM_MODE },
    { "save_config_only", no_argument, NULL, OPT_SAVE_CONFIG_ONLY },
    { "remove_duplicated_kv_heads", no_argument, NULL, OPT_REMOVE_DUP_KV_HEADS },
    { "log_level", required_argument, NULL, OPT_LOG_LEVEL },
    { "progress", required_argument, NULL, OPT_PROGRESS },
    { "target_sm", required_argument, NULL, OPT_TARGET_SM },
    { "quantize_on", required_argument, NULL, OPT_QUANTIZE_ON },
    { "calib_batch_size", required_argument, NULL, OPT_CALIB_BATCH_SIZE },
    { "calib_schedule", required_argument, NULL, OPT_CALIB_SCHEDULE },
    { "calib_stats_out", required_argument, NULL, OPT_CALIB_STATS_OUT },
    { "calib_stats", required_argument, NULL, OPT_CALIB_STATS },
    { "tokenizer_dir", required_argument, NULL, OPT_TOKENIZER_DIR },
    { "eval", required_argument, NULL, OPT_EVAL },
    { "overwrite", no_argument, NULL, OPT_OVERWRITE },
    { "resume", no_argument, NULL, OPT_RESUME },
    { "verify_inputs", no_argument, NULL, OPT_VERIFY_INPUTS },
    { "timeout", required_argument, NULL, OPT_TIMEOUT },
    { "help", no_argument, NULL, OPT_HELP },
    { "version", no_argument, NULL, OPT_VERSION },
    { NULL, 0, NULL, 0 }
};

static const char usage_text[] =
"usage: mpirun -np N trtconv --model_dir DIR [--output_dir DIR] [options]\n"
"\n"
"Converts a Hugging Face LLaMA-family checkpoint into a TensorRT-LLM v0.12\n"
"checkpoint (config.json + rank{N}.safetensors). Each MPI rank converts the\n"
"(tp, pp) cells r, r+N, r+2N, ... of the tp_size*pp_size mapping and reads\n"
"only the tensor slices those cells need. Flags are those of TensorRT-LLM's\n"
"examples/llama/convert_checkpoint.py.\n"
"\n"
"input and output:\n"
"  --model_dir DIR               Hugging Face model directory (default: None)\n"
"  --meta_ckpt_dir DIR           Meta checkpoint directory: params.json and\n"
"                                consolidated.NN.pth (default: None)\n"
"  --output_dir DIR              output directory (default: tllm_checkpoint)\n"
"  --output_format {trtllm,hf}   trtllm: TensorRT-LLM v0.12 checkpoint (default);\n"
"                                hf: Hugging Face-style checkpoint as NVIDIA ModelOpt\n"
"                                exports it (TensorRT-LLM 1.x, vLLM, SGLang; unquantized,\n"
"                                --use_fp8, --use_fp8_rowwise, --use_nvfp4, --fp8_kv_cache;\n"
"                                docs/hf-output.md)\n"
"  --max_shard_size SIZE         hf: shard size, e.g. 5GB (default), 500MB, bytes\n"
"  --exclude_modules P1,P2       hf: modules left unquantized (fnmatch patterns over\n"
"                                names such as model.layers.0.mlp.down_proj); lm_head\n"
"                                always\n"
"  --use_nvfp4                   hf: NVFP4 weights and activations (quant_algo NVFP4)\n"
"  --dtype {float32,bfloat16,float16,auto}\n"
"                                dtype of the weights (default: float16);\n"
"                                auto: the model's torch_dtype (float32 -> float16)\n"
"parallelism:\n"
"  --tp_size N                   tensor parallel size (default: 1)\n"
"  --pp_size N                   pipeline parallel size (default: 1)\n"
"  --moe_tp_size N, --moe_ep_size N   MoE parallelism: each expert split moe_tp\n"
"                                ways, the experts moe_ep ways; moe_tp x moe_ep =\n"
"                                tp_size (default -1: derived; both -1: moe_tp =\n"
"                                tp_size)\n"
"  --workers N                   threads converting each rank's tensors (default: 1)\n"
"embedding:\n"
"  --use_parallel_embedding      shard the embedding table across tp ranks\n"
"  --embedding_sharding_dim {0,1}  0: vocab rows, 1: hidden columns (default: 0)\n"
"  --use_embedding_sharing       share the embedding table with lm_head\n"
"weight-only quantization (W8A16 / W4A16):\n"
"  --use_weight_only             quantize qkv, dense, fc, gate, proj weights\n"
"  --weight_only_precision {int8,int4}  (default: int8)\n"
"  --target_sm {70,72,75,80,86,87,89,90}  GPU architecture that will run the\n"
"                                engine; the CUTLASS weight layout depends on it\n"
"                                (default: the SM of the rank's GPU)\n"
"  --quantize_on {auto,cpu,gpu}  where to calibrate and quantize (default:\n"
"                                auto: the rank's GPU if it has one, else the\n"
"                                CPU; cpu: both on the CPU)\n"
"  --disable_weight_only_quant_plugin  store the unquantized transposed weights\n"
"                                and scales for the non-plugin path (int8 only)\n"
"SmoothQuant (W8A8) and INT8 KV cache (docs/smoothquant.md):\n"
"  --smoothquant/-sq ALPHA       SmoothQuant with migration strength ALPHA in\n"
"                                (0, 1] (0 means off, as in the Python tool)\n"
"  --per_channel                 per-output-channel weight scales\n"
"  --per_token                   per-token (dynamic) activation scales\n"
"  --int8_kv_cache               INT8 KV cache (alone or with SmoothQuant)\n"
"  --calib_dataset FILE          calibration data: JSON Lines with a \"text\" or\n"
"                                \"article\" string (tokenized by the model's\n"
"                                tokenizer) or an \"input_ids\" array per line\n"
"                                (default: ccdv/cnn_dailymail, which must be\n"
"                                exported to such a file first)\n"
"  --tokenizer_dir DIR           tokenizer.model / tokenizer.json for text lines\n"
"                                (default: the model directory)\n"
"  --calib_size N                first N samples of the file (default: 512;\n"
"                                -1: all)\n"
"  --calib_max_seq_length N      truncate samples to N tokens (default: 512)\n"
"  --calib_batch_size N          samples per forward micro-batch (default: 8)\n"
"  --calib_schedule {layer,batch} calibrate layer by layer, one layer's weights in memory\n"
"                                (default), or micro-batch by micro-batch through all layers\n"
"  --calib_stats_out FILE.h5     write the statistics (HDF5) for later reuse\n"
"  --calib_stats FILE.h5         reuse statistics instead of calibrating\n"
"  --eval DATA.jsonl             once written, compare the checkpoint with the model on\n"
"                                DATA (128 sequences of 512 tokens; trtconv eval,\n"
"                                docs/eval.md)\n"
"  --use_fp8_rowwise             FP8 rowwise weights (FP8_PER_CHANNEL_PER_TOKEN)\n"
"                                for the MLPs of all but the first and last layer\n"
"  --use_meta_fp8_rowwise_recipe  (later TensorRT-LLM) config.json records\n"
"                                use_meta_recipe: the recipe v0.12 always applies;\n"
"                                v0.12 itself cannot read that key\n"
"  --use_fp8                     FP8 per-tensor W8A8 (quant_algo FP8), scales from\n"
"                                calibration as NVIDIA ModelOpt's export\n"
"  --fp8_kv_cache                FP8 KV cache (kv_cache_scaling_factor 1.0 as\n"
"                                v0.12 writes it; wins over --int8_kv_cache)\n"
"  --calibrate_fp8_kv_scale      with --fp8_kv_cache: the scale max(|k|,|v|)/448\n"
"                                of each layer from calibration (not in v0.12)\n"
"not supported (refused with an error):\n"
"  --quant_ckpt_path PATH, --per_group,\n"
"  --group_size N\n"
"config-only mode (no --model_dir): config.json from these values:\n"
"  --vocab_size 32000 --n_positions 2048 --n_layer 32 --n_head 32\n"
"  --n_kv_head (n_head) --n_embd 4096 --inter_size 11008 --multiple_of (None)\n"
"  --ffn_dim_multiplier (None) --rms_norm_eps 1e-06 --hidden_act silu\n"
"  --rotary_base 10000.0 --moe_num_experts 0 --moe_top_k 0 --moe_renorm_mode 1\n"
"output (docs/durability.md):\n"
"  --overwrite                   replace a complete checkpoint in --output_dir\n"
"                                (refused without it)\n"
"  --resume                      keep the rank files of an earlier run of the same\n"
"                                inputs and options whose SHA-256 still matches;\n"
"                                convert the rest\n"
"  --verify_inputs               fingerprint inputs by their full SHA-256 (default:\n"
"                                size, mtime and header hash)\n"
"  --timeout SECONDS             stop the whole job (exit 6) if it runs longer\n"
"  `trtconv verify DIR`          check a checkpoint against its manifest and the\n"
"                                format (no MPI needed)\n"
"other:\n"
"  --save_config_only            write config.json only, no weights\n"
"  --load_by_shard, --load_model_on_cpu   accepted; trtconv always streams slices\n"
"  --remove_duplicated_kv_heads  every KV head is stored twice (Llama-3.1-405B's\n"
"                                Hugging Face checkpoint): keep one of each pair\n"
"  --log_level LEVEL             internal_error, error, warning, info, verbose,\n"
"                                debug (default: info)\n"
"  --progress {auto,bar,lines,none}  rank 0 progress display (default: auto:\n"
"                                a live bar on a terminal, periodic lines otherwise)\n"
"  --help, --version\n"
"\n"
"Exit codes: 0 ok, 2 usage, 3 invalid input, 4 I/O, 5 communication,\n"
"6 timeout, 7 internal, 8 cancelled. Every rank exits with the same code.\n";

void tc_opts_init(tc_opts *o)
{
    memset(o, 0, sizeof *o);
    o->output_dir = "tllm_checkpoint";
    o->tp_size = 1;
    o->pp_size = 1;
    o->moe_tp_size = -1;
    o->moe_ep_size = -1;
    o->dtype = TC_FT_FLOAT16;
    o->model.vocab_size = 32000;
    o->model.n_positions = 2048;
    o->model.n_layer = 32;
    o->model.n_head = 32;
    o->model.n_kv_head = -1;
    o->model.n_embd = 4096;
    o->model.inter_size = 11008;
    o->model.multiple_of = -1;
    o->model.ffn_dim_multiplier = NAN;
    o->model.rms_norm_eps = 1e-06;
    o->model.rotary_base = 10000.0;
    o->model.hidden_act = "silu";
    o->model.moe_num_experts = 0;
    o->model.moe_top_k = 0;
    o->model.moe_renorm_mode = 1;
    o->embedding_sharding_dim = 0;
    o->weight_only_precision = "int8";
    o->smoothquant = NAN;
    o->group_size = 128;
    o->calib_dataset = "ccdv/cnn_dailymail";
    o->calib_size = 512;
    o->calib_max_seq_length = 512;
    o->calib_batch_size = 8;
    o->workers = 1;
    o->log_level = TC_LOG_INFO;
    o->progress_bar = false;
    o->no_progress = false;
    o->progress_auto = true;
}

static tc_status usage_error(FILE *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static tc_status usage_error(FILE *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(err, "trtconv: error: ");
        vfprintf(err, fmt, ap);
        fprintf(err, "\nRun 'trtconv --help' for the list of options.\n");
        va_end(ap);
    }
    return TC_E_USAGE;
}

static tc_status parse_int(FILE *err, const char *flag, const char *s, int64_t lo,
                           int64_t hi, int64_t *out)
{
    char msg[512];
    if (tc_arg_int(flag, s, lo, hi, out, msg, sizeof msg) != TC_OK)
        return usage_error(err, "%s", msg);
    return TC_OK;
}

static tc_status parse_double(FILE *err, const char *flag, const char *s, double *out)
{
    char msg[512];
    if (tc_arg_real(flag, s, -INFINITY, false, INFINITY, out, msg, sizeof msg) != TC_OK)
        return usage_error(err, "%s", msg);
    return TC_OK;
}

/* A size: bytes, or a number with KB, MB, GB (powers of 1000) or KiB, MiB,
 * GiB, as transformers' max_shard_size. */
static tc_status parse_size(FILE *err, const char *flag, const char *s, uint64_t *out)
{
    static const struct { const char *suffix; double mult; } units[] = {
        { "KiB", 1024.0 }, { "MiB", 1048576.0 }, { "GiB", 1073741824.0 },
        { "KB", 1e3 }, { "MB", 1e6 }, { "GB", 1e9 }, { "B", 1.0 }, { "", 1.0 },
    };
    char *end = NULL;
    errno = 0;
    const double v = strtod(s, &end);
    for (size_t i = 0; end != s && errno == 0 && i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(end, units[i].suffix) != 0)
            continue;
        const double bytes = v * units[i].mult;
        if (!(bytes >= 1.0 && bytes <= 1e15))
            break;
        *out = (uint64_t)bytes;
        return TC_OK;
    }
    return usage_error(err, "--%s: '%s' is not a size of at most 1PB (e.g. 5GB, 500MB, 2GiB, "
                       "or bytes)", flag, s);
}

static const char *flag_name(int id)
{
    for (const struct option *p = long_options; p->name; p++)
        if (p->val == id)
            return p->name;
    return "?";
}

/* Flags of features that later issues bring. */
static const char *not_yet_reason(int id)
{
    switch (id) {
    case OPT_QUANT_CKPT_PATH: case OPT_PER_GROUP: case OPT_GROUP_SIZE:
        return "GPTQ/AWQ pre-quantized checkpoints are not supported by trtconv";
    default:
        return NULL;
    }
}

tc_status tc_opts_parse(tc_opts *o, int argc, char **argv, FILE *out, FILE *err,
                        bool *help_shown)
{
    tc_status st = TC_OK;
    const char *progress = "auto";
    *help_shown = false;
    opterr = 0;
    optind = 0; /* 0, not 1: glibc then fully restarts its scan state */
    for (;;) {
        int idx = -1;
        int c = getopt_long_only(argc, argv, "h", long_options, &idx);
        if (c == -1)
            break;
        const char *a = optarg;
        if (a && a[0] == '-' && a[1] != '\0') {
            /* argparse refuses a flag as the value of another flag; only a
             * negative number may start with '-'. */
            char *end = NULL;
            (void)strtod(a, &end);
            if (*end != '\0')
                return usage_error(err, "--%s: expected one argument (got the flag '%s')",
                                   flag_name(c), a);
        }
        const char *reason = not_yet_reason(c);
        if (reason) {
            if (err)
                fprintf(err, "trtconv: error: --%s: not supported yet: %s.\n", flag_name(c),
                        reason);
            return TC_E_USAGE;
        }
        switch (c) {
        case 'h': case OPT_HELP:
            if (out)
                fputs(usage_text, out);
            *help_shown = true;
            return TC_OK;
        case OPT_VERSION:
            if (out)
                fprintf(out, "trtconv %s (TensorRT-LLM v0.12 checkpoint format)\n", TRTCONV_VERSION);
            *help_shown = true;
            return TC_OK;
        case OPT_MODEL_DIR: o->model_dir = a; break;
        case OPT_META_CKPT_DIR: o->meta_ckpt_dir = a; break;
        case OPT_OUTPUT_DIR: o->output_dir = a; break;
        case OPT_TP_SIZE: st = parse_int(err, "tp_size", a, 1, 4096, &o->tp_size); break;
        case OPT_PP_SIZE: st = parse_int(err, "pp_size", a, 1, 4096, &o->pp_size); break;
        case OPT_MOE_TP_SIZE:
            st = parse_int(err, "moe_tp_size", a, -1, 4096, &o->moe_tp_size);
            break;
        case OPT_MOE_EP_SIZE:
            st = parse_int(err, "moe_ep_size", a, -1, 4096, &o->moe_ep_size);
            break;
        case OPT_DTYPE:
            o->dtype_given = true;
            if (strcmp(a, "auto") == 0) {
                o->dtype_auto = true;
            } else if (tc_float_type_parse(a, &o->dtype) != 0) {
                return usage_error(err, "--dtype: invalid choice '%s' (choose from %s)", a,
                                   "'float32', 'bfloat16', 'float16', 'auto'");
            } else {
                o->dtype_auto = false;
            }
            break;
        case OPT_VOCAB_SIZE: st = parse_int(err, "vocab_size", a, 1, INT32_MAX, &o->model.vocab_size); break;
        case OPT_N_POSITIONS: st = parse_int(err, "n_positions", a, 1, INT32_MAX, &o->model.n_positions); break;
        case OPT_N_LAYER: st = parse_int(err, "n_layer", a, 1, 65536, &o->model.n_layer); break;
        case OPT_N_HEAD: st = parse_int(err, "n_head", a, 1, 65536, &o->model.n_head); break;
        case OPT_N_KV_HEAD: st = parse_int(err, "n_kv_head", a, 1, 65536, &o->model.n_kv_head); break;
        case OPT_N_EMBD: st = parse_int(err, "n_embd", a, 1, INT32_MAX, &o->model.n_embd); break;
        case OPT_INTER_SIZE: st = parse_int(err, "inter_size", a, 1, INT32_MAX, &o->model.inter_size); break;
        case OPT_MULTIPLE_OF: st = parse_int(err, "multiple_of", a, 1, INT32_MAX, &o->model.multiple_of); break;
        case OPT_FFN_DIM_MULTIPLIER: st = parse_double(err, "ffn_dim_multiplier", a, &o->model.ffn_dim_multiplier); break;
        case OPT_RMS_NORM_EPS: st = parse_double(err, "rms_norm_eps", a, &o->model.rms_norm_eps); break;
        case OPT_ROTARY_BASE: st = parse_double(err, "rotary_base", a, &o->model.rotary_base); break;
        case OPT_HIDDEN_ACT: o->model.hidden_act = a; break;
        case OPT_LOAD_BY_SHARD: o->load_by_shard = true; break;
        case OPT_LOAD_MODEL_ON_CPU: o->load_model_on_cpu = true; break;
        case OPT_USE_PARALLEL_EMBEDDING: o->use_parallel_embedding = true; break;
        case OPT_EMBEDDING_SHARDING_DIM:
            if (strcmp(a, "0") == 0)
                o->embedding_sharding_dim = 0;
            else if (strcmp(a, "1") == 0)
                o->embedding_sharding_dim = 1;
            else
                return usage_error(err, "--embedding_sharding_dim: invalid choice '%s' (choose from %s)",
                                   a, "0, 1");
            break;
        case OPT_USE_EMBEDDING_SHARING: o->use_embedding_sharing = true; break;
        case OPT_WORKERS: st = parse_int(err, "workers", a, 1, 256, &o->workers); break;
        case OPT_MOE_NUM_EXPERTS: st = parse_int(err, "moe_num_experts", a, 0, 65536, &o->model.moe_num_experts); break;
        case OPT_MOE_TOP_K: st = parse_int(err, "moe_top_k", a, 0, 65536, &o->model.moe_top_k); break;
        case OPT_MOE_RENORM_MODE: st = parse_int(err, "moe_renorm_mode", a, 0, 16, &o->model.moe_renorm_mode); break;
        case OPT_SAVE_CONFIG_ONLY: o->save_config_only = true; break;
        case OPT_REMOVE_DUP_KV_HEADS: o->remove_duplicated_kv_heads = true; break;
        case OPT_OVERWRITE: o->overwrite = true; break;
        case OPT_RESUME: o->resume = true; break;
        case OPT_VERIFY_INPUTS: o->verify_inputs = true; break;
        case OPT_TIMEOUT: st = parse_int(err, "timeout", a, 1, 30 * 24 * 3600, &o->timeout_s); break;
        case OPT_LOG_LEVEL:
            if (tc_log_level_parse(a, &o->log_level) != 0)
                return usage_error(err, "--log_level: invalid level '%s' (choose from %s)", a,
                                   "internal_error, error, warning, info, verbose, debug");
            break;
        case OPT_PROGRESS: progress = a; break;
        case OPT_USE_WEIGHT_ONLY: o->use_weight_only = true; break;
        case OPT_DISABLE_WOQ_PLUGIN: o->disable_weight_only_quant_plugin = true; break;
        case OPT_WEIGHT_ONLY_PRECISION:
            /* nargs='?', const 'int8' in the Python tool: argparse also
             * takes a following word that is not a flag; getopt only "=x". */
            if (!a && optind < argc && argv[optind][0] != '-')
                a = argv[optind++];
            o->weight_only_precision = a ? a : "int8";
            if (strcmp(o->weight_only_precision, "int8") != 0 &&
                strcmp(o->weight_only_precision, "int4") != 0) {
                if (strcmp(o->weight_only_precision, "int4_gptq") == 0)
                    return usage_error(err, "--weight_only_precision int4_gptq: GPTQ checkpoints "
                                       "are not supported by trtconv");
                return usage_error(err, "--weight_only_precision: invalid choice '%s' (choose "
                                   "from 'int8', 'int4')", o->weight_only_precision);
            }
            break;
        case OPT_TARGET_SM: {
            st = parse_int(err, "target_sm", a, 1, 1000, &o->target_sm);
            static const int known[] = { 70, 72, 75, 80, 86, 87, 89, 90 };
            bool ok = false;
            for (size_t i = 0; st == TC_OK && i < sizeof known / sizeof known[0]; i++)
                ok = ok || o->target_sm == known[i];
            if (st == TC_OK && !ok)
                return usage_error(err, "--target_sm: %lld is not supported (choose from 70, 72, "
                                   "75, 80, 86, 87, 89, 90; the v0.12 mixed-GEMM layouts)",
                                   (long long)o->target_sm);
            break;
        }
        case OPT_QUANTIZE_ON:
            if (strcmp(a, "auto") == 0)
                o->quantize_on = 0;
            else if (strcmp(a, "cpu") == 0)
                o->quantize_on = 1;
            else if (strcmp(a, "gpu") == 0)
                o->quantize_on = 2;
            else
                return usage_error(err, "--quantize_on: invalid choice '%s' (choose from auto, "
                                   "cpu, gpu)", a);
            break;
        case OPT_SMOOTHQUANT:
            st = parse_double(err, "smoothquant", a, &o->smoothquant);
            if (st == TC_OK && !(o->smoothquant >= 0.0 && o->smoothquant <= 1.0))
                return usage_error(err, "--smoothquant: alpha must be in [0, 1] (got %s)", a);
            break;
        case OPT_PER_CHANNEL: o->per_channel = true; break;
        case OPT_PER_TOKEN: o->per_token = true; break;
        case OPT_INT8_KV_CACHE: o->int8_kv_cache = true; break;
        case OPT_FP8_KV_CACHE: o->fp8_kv_cache = true; break;
        case OPT_USE_FP8_ROWWISE: o->use_fp8_rowwise = true; break;
        case OPT_USE_FP8: o->use_fp8 = true; break;
        case OPT_META_RECIPE: o->use_meta_fp8_rowwise_recipe = true; break;
        case OPT_CALIB_DATASET: o->calib_dataset = a; break;
        case OPT_CALIB_SIZE:
            st = parse_int(err, "calib_size", a, -1, INT32_MAX, &o->calib_size);
            if (st == TC_OK && o->calib_size == 0)
                return usage_error(err, "--calib_size: 0 samples cannot calibrate (-1: the "
                                   "whole file)");
            break;
        case OPT_CALIB_MAX_SEQ_LENGTH:
            st = parse_int(err, "calib_max_seq_length", a, 1, 1 << 20, &o->calib_max_seq_length);
            break;
        case OPT_CALIB_BATCH_SIZE:
            st = parse_int(err, "calib_batch_size", a, 1, 65536, &o->calib_batch_size);
            break;
        case OPT_CALIB_SCHEDULE:
            if (strcmp(a, "layer") == 0)
                o->calib_by_batch = false;
            else if (strcmp(a, "batch") == 0)
                o->calib_by_batch = true;
            else
                return usage_error(err, "--calib_schedule: invalid choice '%s' (choose from "
                                   "layer, batch)", a);
            break;
        case OPT_CALIB_STATS_OUT: o->calib_stats_out = a; break;
        case OPT_CALIB_STATS: o->calib_stats = a; break;
        case OPT_TOKENIZER_DIR: o->tokenizer_dir = a; break;
        case OPT_EVAL: o->eval_dataset = a; break;
        case OPT_OUTPUT_FORMAT:
            if (strcmp(a, "trtllm") && strcmp(a, "hf"))
                return usage_error(err, "--output_format: invalid choice '%s' (choose from "
                                   "trtllm, hf)", a);
            o->output_hf = !strcmp(a, "hf");
            break;
        case OPT_USE_NVFP4: o->use_nvfp4 = true; break;
        case OPT_MAX_SHARD_SIZE: st = parse_size(err, "max_shard_size", a, &o->max_shard_bytes); break;
        case OPT_EXCLUDE_MODULES: o->exclude_modules = a; break;
        case OPT_CALIBRATE_FP8_KV_SCALE: o->fp8_kv_calibrate = true; break;
        case '?':
        default:
            if (optopt >= OPT_MODEL_DIR || (optopt == 0 && optind > 0)) {
                const char *arg = argv[optind - 1];
                const struct option *p = NULL;
                for (p = long_options; p->name; p++)
                    if (p->val == optopt)
                        break;
                if (p && p->name && p->has_arg == required_argument)
                    return usage_error(err, "--%s: expected one argument", p->name);
                return usage_error(err, "unrecognized or ambiguous argument '%s'", arg);
            }
            return usage_error(err, "unrecognized argument '%s'", argv[optind - 1]);
        }
        if (st != TC_OK)
            return st;
    }
    if (optind < argc)
        return usage_error(err, "unrecognized argument '%s'", argv[optind]);

    /* Cross-option checks. */
    if (strcmp(progress, "auto") == 0) {
        o->progress_bar = false;
        o->no_progress = false;
        o->progress_auto = true;
    } else if (strcmp(progress, "bar") == 0) {
        o->progress_bar = true;
        o->progress_auto = false;
    } else if (strcmp(progress, "lines") == 0) {
        o->progress_bar = false;
        o->progress_auto = false;
    } else if (strcmp(progress, "none") == 0) {
        o->no_progress = true;
        o->progress_auto = false;
    } else {
        return usage_error(err, "--progress: invalid choice '%s' (choose from %s)", progress,
                           "auto, bar, lines, none");
    }
    /* convert_checkpoint.py: --moe_top_k defaults to 1 when experts are given. */
    if (o->model.moe_num_experts > 0 && o->model.moe_top_k == 0)
        o->model.moe_top_k = 1;
    if (o->tp_size * o->pp_size > 65536)
        return usage_error(err, "--tp_size x --pp_size: more than 65536 cells");
    if (o->use_weight_only)
        o->woq_bits = strcmp(o->weight_only_precision, "int4") == 0 ? 4 : 8;
    if (o->use_weight_only && o->disable_weight_only_quant_plugin && o->woq_bits == 4)
        return usage_error(err, "--disable_weight_only_quant_plugin stores unquantized weights "
                           "that only int8 can use (TensorRT-LLM's non-plugin path has no int4 "
                           "weight-only GEMM); use int8 or keep the plugin");
    /* convert_checkpoint.py tests `args.smoothquant` for truth: 0 is off. */
    o->sq_enabled = !isnan(o->smoothquant) && o->smoothquant > 0.0;
    /* args_to_quant_config sets INT8 then FP8: FP8 wins. */
    o->calibrate = o->sq_enabled || (o->int8_kv_cache && !o->fp8_kv_cache) ||
                   (o->fp8_kv_cache && o->fp8_kv_calibrate) || o->use_fp8;
    if (o->fp8_kv_calibrate && !o->fp8_kv_cache)
        return usage_error(err, "--calibrate_fp8_kv_scale needs --fp8_kv_cache");
    if (o->output_hf) {
        /* ModelOpt's formats: FP8 weights and activations (per tensor or
         * per channel/token), NVFP4, an FP8 KV cache with calibrated scales. */
        if (o->use_weight_only || o->sq_enabled || (o->int8_kv_cache && !o->fp8_kv_cache))
            return usage_error(err, "--output_format hf writes FP8, FP8 per channel (--use_fp8_"
                               "rowwise), NVFP4 or unquantized weights and an FP8 KV cache; "
                               "weight-only, SmoothQuant and INT8 KV are TensorRT-LLM formats");
        if ((int)o->use_fp8 + (int)o->use_fp8_rowwise + (int)o->use_nvfp4 > 1)
            return usage_error(err, "--use_fp8, --use_fp8_rowwise and --use_nvfp4 exclude each "
                               "other (one quant_algo per checkpoint)");
        if (o->use_parallel_embedding || o->use_embedding_sharing || o->meta_ckpt_dir ||
            o->remove_duplicated_kv_heads || o->use_meta_fp8_rowwise_recipe)
            return usage_error(err, "--output_format hf: --use_parallel_embedding, "
                               "--use_embedding_sharing, --meta_ckpt_dir, "
                               "--remove_duplicated_kv_heads and --use_meta_fp8_rowwise_recipe "
                               "belong to the TensorRT-LLM checkpoint");
        if (!o->model_dir)
            return usage_error(err, "--output_format hf needs --model_dir (the output is that "
                               "Hugging Face directory with its weights converted)");
        o->calibrate = o->use_fp8 || o->use_nvfp4 || o->fp8_kv_cache;
        /* A Hugging Face directory keeps the model's dtype unless told. */
        if (!o->dtype_given)
            o->dtype_auto = true;
    } else if (o->use_nvfp4 || o->exclude_modules || o->max_shard_bytes) {
        return usage_error(err, "--use_nvfp4, --exclude_modules and --max_shard_size belong to "
                           "--output_format hf");
    }
    if (!o->max_shard_bytes)
        o->max_shard_bytes = 5000000000ULL;
    if (o->use_fp8_rowwise && (o->sq_enabled || o->use_weight_only))
        return usage_error(err, "--use_fp8_rowwise excludes --smoothquant and --use_weight_only "
                           "(one quant_algo per checkpoint, as in TensorRT-LLM)");
    if (o->use_fp8 && (o->sq_enabled || o->use_weight_only || o->use_fp8_rowwise))
        return usage_error(err, "--use_fp8 excludes --smoothquant, --use_weight_only and "
                           "--use_fp8_rowwise (one quant_algo per checkpoint, as in TensorRT-LLM)");
    if (o->use_fp8 && o->int8_kv_cache && !o->fp8_kv_cache)
        return usage_error(err, "--use_fp8 with --int8_kv_cache: ModelOpt's FP8 export pairs FP8 "
                           "weights with an FP8 KV cache (--fp8_kv_cache) or none");
    if (o->sq_enabled && o->use_weight_only)
        return usage_error(err, "--smoothquant and --use_weight_only exclude each other (W8A8 "
                           "or weight-only, as in TensorRT-LLM's quant_algo)");
    if (!o->calibrate && (o->calib_stats || o->calib_stats_out))
        return usage_error(err, "--calib_stats/--calib_stats_out need a method that "
                           "calibrates: --smoothquant, --int8_kv_cache, --use_fp8 or "
                           "--fp8_kv_cache --calibrate_fp8_kv_scale");
    if (o->calib_stats && o->calib_stats_out)
        return usage_error(err, "--calib_stats reuses statistics and --calib_stats_out writes "
                           "new ones: give one of them");
    if (o->model_dir && o->meta_ckpt_dir)
        return usage_error(err, "--model_dir and --meta_ckpt_dir exclude each other (a Hugging "
                           "Face directory or a Meta checkpoint directory)");
    if (o->dtype_auto && !o->model_dir && !o->meta_ckpt_dir)
        return usage_error(err, "--dtype auto needs --model_dir or --meta_ckpt_dir (the dtype "
                           "comes from its config.json; bfloat16 for Meta checkpoints)");
    return TC_OK;
}

void tc_opts_quant_request(const tc_opts *o, tc_quant_request *r)
{
    memset(r, 0, sizeof *r);
    r->woq_bits = o->woq_bits;
    r->woq_no_plugin = o->disable_weight_only_quant_plugin;
    r->smoothquant = o->smoothquant;
    r->per_channel = o->per_channel;
    r->per_token = o->per_token;
    r->int8_kv_cache = o->int8_kv_cache;
    r->fp8_kv_cache = o->fp8_kv_cache;
    r->fp8_rowwise = o->use_fp8_rowwise;
    r->fp8 = o->use_fp8;
    r->fp8_kv_calibrate = o->fp8_kv_calibrate;
}
