/* options.c: the command line of trtconv-genmodel (genmodel.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "genmodel.h"
#include "trtconv/cli/args.h"
#include "trtconv/core/fsutil.h"
#include "trtconv/core/log.h"
#include "trtconv/formats/st_writer.h"
#include "trtconv/formats/torchwrite.h"
#include "trtconv/formats/zipread.h"

void gm_usage(FILE *f)
{
    fputs(
"usage: trtconv-genmodel --out DIR [options]\n"
"Write a deterministic Hugging Face LLaMA/Mistral checkpoint to DIR.\n"
"\n"
"  --out DIR              output directory (created if missing)\n"
"  --layers N             num_hidden_layers (default 2)\n"
"  --hidden N             hidden_size (default 128)\n"
"  --heads N              num_attention_heads (default 4)\n"
"  --kv_heads N           num_key_value_heads (default = heads)\n"
"  --head_dim N           head_dim (default = hidden / heads)\n"
"  --intermediate N       intermediate_size (default 256)\n"
"  --vocab N              vocab_size, >= 3 (default 512)\n"
"  --dtype T              float16 | bfloat16 | float32 (default float16)\n"
"  --shards N             number of safetensors files (default 1)\n"
"  --tied                 tie_word_embeddings: no lm_head.weight\n"
"  --attention_bias       q/k/v projection biases\n"
"  --arch A               llama | mistral (default llama)\n"
"  --experts E            a Mixtral: E experts per layer (block_sparse_moe, the\n"
"                         published naming), router gate [E, hidden]\n"
"  --top_k K              experts per token (num_experts_per_tok, default 2)\n"
"  --config_style S       hf4 | hf5 (default hf5)\n"
"  --rope_theta X         rope theta (default 10000)\n"
"  --rope_scaling S       none | linear | dynamic | llama3 (default none)\n"
"  --max_pos N            max_position_embeddings (default 2048)\n"
"  --rms_norm_eps X       rms_norm_eps (default 1e-5)\n"
"  --seed N               value seed, 0 .. 2^63-1 (default 0)\n"
"  --outlier_channels N   N evenly spaced channels of every decoder layer's norms\n"
"                         get their gain times --outlier_gain (activation\n"
"                         outliers, the case SmoothQuant exists for)\n"
"  --outlier_gain G       (default 30)\n"
"  --special_values       put Inf, NaN, -0, extremes (and rounding ties for\n"
"                         float32) first in layer 0 q_proj and embed_tokens\n"
"  --threads N            generator threads (default: online CPUs, max 8);\n"
"                         the output does not depend on it\n"
"  --format F             safetensors | bin (pytorch_model*.bin, torch.save\n"
"                         layout) | meta (params.json + consolidated.NN.pth)\n"
"                         (default safetensors)\n"
"  --mp N                 meta: model-parallel shards (default 1)\n"
"  --multiple_of N        meta: params.json multiple_of (default 256)\n"
"  --help                 this text\n"
"\n"
"Exit codes: 0 ok, 2 usage, 4 I/O, 7 internal.\n", f);
}

tc_status gm_parse_args(int argc, char **argv, struct gm_opts *o, int *help)
{
    static const char *const archs[] = { "llama", "mistral", NULL };
    static const char *const styles[] = { "hf4", "hf5", NULL };
    static const char *const ropes[] = { "none", "linear", "dynamic", "llama3", NULL };
    static const char *const formats[] = { "safetensors", "bin", "meta", NULL };
    const char *dtype = "float16";

    memset(o, 0, sizeof *o);
    o->layers = 2;
    o->hidden = 128;
    o->heads = 4;
    o->kv_heads = -1;
    o->head_dim = -1;
    o->intermediate = 256;
    o->vocab = 512;
    o->shards = 1;
    o->max_pos = 2048;
    o->arch = GM_ARCH_LLAMA;
    o->style = GM_STYLE_HF5;
    o->rope = GM_ROPE_NONE;
    o->rope_theta = 10000.0;
    o->rms_norm_eps = 1e-5;
    o->mp = 1;
    o->multiple_of = 256;
    o->format = GM_FMT_SAFETENSORS;
    o->outlier_gain = 30.0;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    o->threads = ncpu < 1 ? 1 : ncpu > 8 ? 8 : ncpu;
    *help = 0;

    const tc_arg table[] = {
        TC_OPT_STR("out", &o->out),
        TC_OPT_INT("layers", &o->layers, 1, 100000),
        TC_OPT_INT("hidden", &o->hidden, 1, GM_MAX_DIM),
        TC_OPT_INT("heads", &o->heads, 1, GM_MAX_DIM),
        TC_OPT_INT("kv_heads", &o->kv_heads, 1, GM_MAX_DIM),
        TC_OPT_INT("head_dim", &o->head_dim, 1, GM_MAX_DIM),
        TC_OPT_INT("intermediate", &o->intermediate, 1, GM_MAX_DIM),
        TC_OPT_INT("vocab", &o->vocab, 3, GM_MAX_DIM),
        TC_OPT_STR("dtype", &dtype),
        TC_OPT_INT("shards", &o->shards, 1, 99999),
        TC_OPT_FLAG("tied", &o->tied),
        TC_OPT_FLAG("attention_bias", &o->attention_bias),
        TC_OPT_CHOICE("arch", &o->arch, archs),
        TC_OPT_CHOICE("config_style", &o->style, styles),
        TC_OPT_REAL("rope_theta", &o->rope_theta, 0.0, true, INFINITY),
        TC_OPT_CHOICE("rope_scaling", &o->rope, ropes),
        TC_OPT_INT("max_pos", &o->max_pos, 1, GM_MAX_DIM),
        TC_OPT_REAL("rms_norm_eps", &o->rms_norm_eps, 0.0, true, INFINITY),
        TC_OPT_INT("seed", &o->seed, 0, INT64_MAX),
        TC_OPT_FLAG("special_values", &o->special_values),
        TC_OPT_INT("threads", &o->threads, 1, GM_MAX_THREADS),
        TC_OPT_CHOICE("format", &o->format, formats),
        TC_OPT_INT("mp", &o->mp, 1, 64),
        TC_OPT_INT("multiple_of", &o->multiple_of, 1, GM_MAX_DIM),
        TC_OPT_INT("experts", &o->experts, 2, 4096),
        TC_OPT_INT("top_k", &o->top_k, 1, 4096),
        TC_OPT_INT("outlier_channels", &o->outlier_channels, 1, GM_MAX_DIM),
        TC_OPT_REAL("outlier_gain", &o->outlier_gain, 0.0, true, 1e6),
    };
    tc_args_stop stop;
    TC_TRY(tc_args_parse("trtconv-genmodel", table, sizeof table / sizeof table[0], argc, argv, 1,
                         NULL, &stop));
    if (stop != TC_ARGS_RUN) {
        *help = stop == TC_ARGS_HELP ? 1 : 2;
        return TC_OK;
    }
    if (tc_float_type_parse(dtype, &o->ft) != 0)
        return tc_fail(TC_E_USAGE, "--dtype: '%s' is not float16, bfloat16 or float32", dtype);
    if (!o->out)
        return tc_fail(TC_E_USAGE, "--out is required");
    if (!o->out[0])
        return tc_fail(TC_E_USAGE, "--out: empty path");
    /* Cross-option checks. */
    if (o->kv_heads < 0)
        o->kv_heads = o->heads;
    if (o->kv_heads > o->heads || o->heads % o->kv_heads != 0)
        return tc_fail(TC_E_USAGE, "--kv_heads %lld must divide --heads %lld",
                       (long long)o->kv_heads, (long long)o->heads);
    if (o->head_dim < 0) {
        if (o->hidden % o->heads != 0)
            return tc_fail(TC_E_USAGE, "--hidden %lld is not a multiple of "
                           "--heads %lld; give --head_dim",
                           (long long)o->hidden, (long long)o->heads);
        o->head_dim = o->hidden / o->heads;
    }
    if (o->experts && !o->top_k)
        o->top_k = 2;
    if (o->outlier_channels > o->hidden)
        return tc_fail(TC_E_USAGE, "--outlier_channels %lld is more than --hidden %lld",
                       (long long)o->outlier_channels, (long long)o->hidden);
    if (o->top_k && (!o->experts || o->top_k > o->experts))
        return tc_fail(TC_E_USAGE, "--top_k %lld needs --experts of at least that many",
                       (long long)o->top_k);
    if (o->experts && (o->format != GM_FMT_SAFETENSORS || o->arch != GM_ARCH_LLAMA))
        return tc_fail(TC_E_USAGE, "--experts: Mixtral checkpoints are written as safetensors "
                       "(no --format bin/meta, no --arch mistral)");
    if (o->format != GM_FMT_META && o->mp != 1)
        return tc_fail(TC_E_USAGE, "--mp needs --format meta");
    if (o->format == GM_FMT_META) {
        /* What a Meta checkpoint can express (docs/genmodel.md). */
        if (o->tied || o->attention_bias || o->arch != GM_ARCH_LLAMA ||
            o->head_dim * o->heads != o->hidden || o->shards != 1)
            return tc_fail(TC_E_USAGE, "--format meta: no --tied, --attention_bias, "
                           "--arch mistral, --shards or a head_dim other than "
                           "hidden / heads (Meta checkpoints have none of these)");
        if (o->rope == GM_ROPE_LINEAR || o->rope == GM_ROPE_DYNAMIC)
            return tc_fail(TC_E_USAGE, "--format meta: --rope_scaling may only be "
                           "none or llama3 (use_scaled_rope)");
        if (o->kv_heads % o->mp || o->intermediate % o->mp ||
            o->vocab % o->mp || o->hidden % o->mp)
            return tc_fail(TC_E_USAGE, "--mp %lld must divide --kv_heads, --heads, "
                           "--intermediate, --vocab and --hidden", (long long)o->mp);
    }
    return TC_OK;
}
