/* eval_main.c: `trtconv eval`, what a conversion's quantization cost
 * (docs/eval.md):
 *
 *   mpirun -np N trtconv eval --model_dir HF --checkpoint_dir OUT \
 *       [--checkpoint_dir OUT2 ...] --dataset held_out.jsonl \
 *       [--tokenizer_dir DIR] [--max_samples N] [--max_seq_length N] \
 *       [--batch_size N] [--output_json F] [--plot F.svg]
 *
 * Each checkpoint is evaluated in its own tp x pp layout (config.json
 * "mapping"), the ranks beyond tp x pp being data-parallel replicas, in the
 * checkpoint's dtype; the source model runs in the same layout and dtype.
 * Rank 0 prints a table per checkpoint and writes the JSON and SVG. */
#define _POSIX_C_SOURCE 200809L
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "trtconv/build_config.h"
#include "trtconv/cli/args.h"
#include "trtconv/core/log.h"
#include "trtconv/eval/eval.h"
#include "trtconv/fwd/fwd.h"
#include "trtconv/model/hf_model.h"
#include "trtconv/mpi/comm.h"
#include "trtconv/mpi/gpu.h"
#include "trtconv/mpi/launch.h"

#define MAX_CHECKPOINTS 16

typedef struct eval_args {
    const char *model_dir, *dataset, *tokenizer_dir, *output_json, *plot, *device;
    const char *ckpt[MAX_CHECKPOINTS];
    int n_ckpt;
    int64_t max_samples, max_seq_length, batch_size, workers, target_sm, linear_tokens;
    enum tc_log_level log_level;
} eval_args;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mpirun -np N trtconv eval --model_dir HF --checkpoint_dir OUT --dataset D.jsonl\n"
            "  --checkpoint_dir DIR        a converted checkpoint (repeat to compare several)\n"
            "  --dataset FILE.jsonl        {\"input_ids\": [...]} or {\"text\": ...} lines\n"
            "  --tokenizer_dir DIR         tokenizer for text lines (default: --model_dir)\n"
            "  --max_samples N             first N sequences (default 128)\n"
            "  --max_seq_length N          truncate sequences (default 512)\n"
            "  --batch_size N              sequences per micro-batch (default 1)\n"
            "  --output_json FILE          every number, as JSON\n"
            "  --plot FILE.svg             per-layer error, one line per checkpoint\n"
            "  --linear_tokens N           tokens per micro-batch whose linear outputs are\n"
            "                              compared (default 256; 0: no per-linear errors)\n"
            "  --target_sm N               weight-only layout, when the checkpoint has no\n"
            "                              trtconv-manifest.json to say it\n"
            "  --device D                  auto (GPU when the rank has one), cpu, gpu\n"
            "  --workers N                 CPU threads per rank (default: the host's cores\n"
            "                              shared among its ranks)\n"
            "  --log_level L               error, warning, info, verbose\n");
}

/* --checkpoint_dir may repeat: take every occurrence out of argv first. */
static tc_status take_checkpoints(int *argc, char **argv, eval_args *a)
{
    int w = 0;
    for (int i = 0; i < *argc; i++) {
        const char *v = NULL;
        if (!strcmp(argv[i], "--checkpoint_dir") && i + 1 < *argc)
            v = argv[++i];
        else if (!strncmp(argv[i], "--checkpoint_dir=", 17))
            v = argv[i] + 17;
        if (!v) {
            argv[w++] = argv[i];
            continue;
        }
        if (a->n_ckpt == MAX_CHECKPOINTS)
            return tc_fail(TC_E_USAGE, "at most %d --checkpoint_dir", MAX_CHECKPOINTS);
        a->ckpt[a->n_ckpt++] = v;
    }
    *argc = w;
    return TC_OK;
}

static tc_status parse_args(int argc, char **argv, eval_args *a, bool *help, bool talk)
{
    memset(a, 0, sizeof *a);
    a->max_samples = 128;
    a->max_seq_length = 512;
    a->batch_size = 1;
    a->linear_tokens = TC_EVAL_LINEAR_TOKENS;
    a->workers = 0;
    a->device = "auto";
    a->log_level = TC_LOG_INFO;
    TC_TRY(take_checkpoints(&argc, argv, a));
    const char *log_level = NULL;
    const tc_arg table[] = {
        TC_OPT_STR("model_dir", &a->model_dir),
        TC_OPT_STR("dataset", &a->dataset),
        TC_OPT_STR("tokenizer_dir", &a->tokenizer_dir),
        TC_OPT_STR("output_json", &a->output_json),
        TC_OPT_STR("plot", &a->plot),
        TC_OPT_STR("device", &a->device),
        TC_OPT_STR("log_level", &log_level),
        TC_OPT_INT("max_samples", &a->max_samples, 1, INT64_MAX),
        TC_OPT_INT("max_seq_length", &a->max_seq_length, 2, 1 << 20),
        TC_OPT_INT("batch_size", &a->batch_size, 1, 1 << 20),
        TC_OPT_INT("workers", &a->workers, 1, 256),
        TC_OPT_INT("target_sm", &a->target_sm, 0, 1000),
        TC_OPT_INT("linear_tokens", &a->linear_tokens, 0, INT64_MAX),
    };
    tc_args_stop stop;
    tc_status st = tc_args_parse("trtconv eval", table, sizeof table / sizeof table[0], argc,
                                 argv, 1, NULL, &stop);
    if (st == TC_OK && stop == TC_ARGS_HELP && talk)
        usage(stdout);
    *help = stop != TC_ARGS_RUN;
    if (st != TC_OK || *help)
        return st;
    if (log_level && tc_log_level_parse(log_level, &a->log_level) != 0)
        return tc_fail(TC_E_USAGE, "--log_level needs error, warning, info or verbose");
    if (!a->model_dir || !a->dataset || a->n_ckpt == 0)
        return tc_fail(TC_E_USAGE, "--model_dir, --checkpoint_dir and --dataset are required "
                       "(see trtconv eval --help)");
    if (strcmp(a->device, "auto") && strcmp(a->device, "cpu") && strcmp(a->device, "gpu"))
        return tc_fail(TC_E_USAGE, "--device must be auto, cpu or gpu");
    return TC_OK;
}

static int run(int argc, char **argv)
{
    tc_comm comm;
    tc_log_init(0, 1, NULL);
    tc_status st = tc_comm_init(&comm);
    if (st != TC_OK)
        return (int)st;
    tc_log_init(comm.rank, comm.size, comm.host);
    comm.failure_note = "trtconv eval stopped";
    st = tc_launch_check_world(comm.size, getenv);
    eval_args a;
    bool help = false;
    if (st == TC_OK)
        st = parse_args(argc, argv, &a, &help, comm.rank == 0);
    if (help || st != TC_OK) {
        tc_comm_free(&comm);
        return help ? 0 : (int)st;
    }
    tc_log_set_level(a.log_level);
    tc_hf_model *model = NULL;
    tc_token_set tok;
    memset(&tok, 0, sizeof tok);
    tc_gpu_info gpu;
    memset(&gpu, 0, sizeof gpu);
    gpu.device = -1;
    st = tc_hf_open(a.model_dir, &model);
    if (st == TC_OK)
        st = tc_tokens_load_text_jsonl(a.dataset, a.max_samples, a.max_seq_length,
                                       model->cfg.vocab_size,
                                       a.tokenizer_dir ? a.tokenizer_dir : a.model_dir, &tok);
    if (st == TC_OK && strcmp(a.device, "cpu") != 0) {
        st = tc_gpu_probe(comm.local_rank, comm.local_size, comm.host, &gpu);
        if (st == TC_OK && gpu.device < 0 && !strcmp(a.device, "gpu"))
            st = tc_fail(TC_E_USAGE, "--device gpu: no CUDA device is visible to rank %d on %s",
                         comm.rank, comm.host);
    }
    st = tc_comm_agree(&comm, st, "setup");
    tc_eval_result res[MAX_CHECKPOINTS];
    memset(res, 0, sizeof res);
    int done = 0;
    for (; st == TC_OK && done < a.n_ckpt; done++) {
        const double t0 = tc_now_seconds();
        const tc_eval_options eo = {
            .gpu = gpu.device >= 0 ? &gpu : NULL,
            .threads = tc_comm_threads_per_rank(&comm, a.workers),
            .batch_size = a.batch_size,
            .target_sm = (int)a.target_sm,
            .linear_tokens = a.linear_tokens,
        };
        st = tc_eval_checkpoint(&comm, model, &tok, a.ckpt[done], &eo, &res[done]);
        if (st == TC_OK && comm.rank == 0) {
            tc_eval_print(stdout, &res[done]);
            printf("  (%.2f s)\n", tc_now_seconds() - t0);
            fflush(stdout);
        }
    }
    if (st == TC_OK && comm.rank == 0 && a.output_json)
        st = tc_eval_write_json(a.output_json, a.model_dir, a.dataset, res, (size_t)done);
    if (st == TC_OK && comm.rank == 0 && a.plot)
        st = tc_eval_write_svg(a.plot, res, (size_t)done);
    st = tc_comm_agree(&comm, st, "the reports");
    for (int i = 0; i < done; i++)
        tc_eval_result_free(&res[i]);
    tc_tokens_free(&tok);
    tc_hf_close(model);
    tc_comm_free(&comm);
    return (int)st;
}

int tc_eval_main(int argc, char **argv)
{
    return run(argc, argv);
}
