/* forward_main.c: trtconv-forward, the distributed forward pass on its own:
 * run a Hugging Face LLaMA checkpoint over token sequences in the
 * (dp, tp, pp) layout of the conversion and report throughput; optionally
 * dump logits and per-layer hidden states for comparison with transformers.
 *
 *   mpirun -np 4 trtconv-forward --model_dir M --input ids.jsonl \
 *       --tp_size 2 --pp_size 2 [--batch_size 8] [--dump out.safetensors]
 *
 * Dump file (written by rank 0; safetensors, all float32 unless noted; rows
 * are the packed tokens of every sequence in input order):
 *   input_ids   I32 [T]        seq_offsets I64 [n + 1]
 *   embed       [T, H]         output of the embedding (input of layer 0)
 *   layer.L     [T, H]         output of decoder layer L (global index)
 *   norm        [T, H]         output of the final norm
 *   logits      [T, vocab]     unpadded vocabulary
 * Values are the model-dtype activations widened to float32. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "trtconv/build_config.h"
#include "trtconv/cli/args.h"
#include "trtconv/mpi/coll.h"
#include "trtconv/mpi/comm.h"
#include "trtconv/fwd/fwd.h"
#include "trtconv/mpi/gpu.h"
#include "trtconv/mpi/launch.h"
#include "trtconv/model/hf_model.h"
#include "trtconv/core/log.h"
#include "trtconv/cli/options.h"
#include "trtconv/formats/st_writer.h"
#include "trtconv/calib/tokens.h"

/* Rank 0 refuses dumps larger than this (they are for verification runs). */
#define DUMP_MAX_BYTES (8ull << 30)

typedef struct fwd_args {
    const char *model_dir, *input, *dump;
    int64_t tp, pp, moe_tp, moe_ep, num_samples, max_seq_length, batch_size, workers;
    const char *dtype;      /* "auto", "float16", "bfloat16", "float32" */
    const char *device;     /* "auto", "cpu", "gpu" */
    bool parallel_embedding, embedding_sharing;
    int64_t sharding_dim;
    enum tc_log_level log_level;
} fwd_args;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mpirun -np N trtconv-forward --model_dir DIR --input IDS.jsonl [options]\n"
            "  --tp_size N, --pp_size N     tensor / pipeline parallel sizes (default 1);\n"
            "  --moe_tp_size N, --moe_ep_size N   mixture of experts, as trtconv (default -1)\n"
            "                               N ranks = dp x tp x pp, the rest is data parallel\n"
            "  --num_samples N              first N sequences of the file (default all)\n"
            "  --max_seq_length N           truncate sequences (default 2048)\n"
            "  --batch_size N               sequences per micro-batch (default 8)\n"
            "  --dtype T                    auto (config torch_dtype), float16, bfloat16, float32\n"
            "  --device D                   auto (GPU when the rank has one), cpu, gpu\n"
            "  --workers N                  CPU threads per rank (default 1)\n"
            "  --use_parallel_embedding, --embedding_sharding_dim 0|1, --use_embedding_sharing\n"
            "  --dump FILE.safetensors      logits and hidden states of every token (rank 0)\n"
            "  --log_level L                error, warning, info, verbose\n"
            "IDS.jsonl: one {\"input_ids\": [...]} object per line.\n");
}

static tc_status parse_args(int argc, char **argv, fwd_args *a, bool *help, bool talk)
{
    memset(a, 0, sizeof *a);
    a->tp = a->pp = 1;
    a->moe_tp = a->moe_ep = -1;
    a->num_samples = INT64_MAX;
    a->max_seq_length = 2048;
    a->batch_size = 8;
    a->workers = 1;
    a->dtype = "auto";
    a->device = "auto";
    a->log_level = TC_LOG_INFO;
    const char *log_level = NULL;
    const tc_arg table[] = {
        TC_OPT_INT("tp_size", &a->tp, 1, 4096),
        TC_OPT_INT("pp_size", &a->pp, 1, 4096),
        TC_OPT_INT("moe_tp_size", &a->moe_tp, -1, 4096),
        TC_OPT_INT("moe_ep_size", &a->moe_ep, -1, 4096),
        TC_OPT_INT("num_samples", &a->num_samples, 1, INT64_MAX),
        TC_OPT_INT("max_seq_length", &a->max_seq_length, 1, 1 << 20),
        TC_OPT_INT("batch_size", &a->batch_size, 1, 1 << 20),
        TC_OPT_INT("workers", &a->workers, 1, 256),
        TC_OPT_INT("embedding_sharding_dim", &a->sharding_dim, 0, 1),
        TC_OPT_STR("model_dir", &a->model_dir),
        TC_OPT_STR("input", &a->input),
        TC_OPT_STR("dump", &a->dump),
        TC_OPT_STR("dtype", &a->dtype),
        TC_OPT_STR("device", &a->device),
        TC_OPT_STR("log_level", &log_level),
        TC_OPT_FLAG("use_parallel_embedding", &a->parallel_embedding),
        TC_OPT_FLAG("use_embedding_sharing", &a->embedding_sharing),
    };
    tc_args_stop stop;
    tc_status st = tc_args_parse("trtconv-forward", table, sizeof table / sizeof table[0], argc,
                                 argv, 1, NULL, &stop);
    if (st == TC_OK && stop == TC_ARGS_HELP && talk)
        usage(stdout);
    *help = stop != TC_ARGS_RUN;
    if (st != TC_OK || *help)
        return st;
    if (log_level && tc_log_level_parse(log_level, &a->log_level) != 0)
        return tc_fail(TC_E_USAGE, "--log_level needs error, warning, info or verbose");
    if (!a->model_dir || !a->input)
        return tc_fail(TC_E_USAGE, "--model_dir and --input are required (see --help)");
    if (strcmp(a->device, "auto") && strcmp(a->device, "cpu") && strcmp(a->device, "gpu"))
        return tc_fail(TC_E_USAGE, "--device must be auto, cpu or gpu");
    return TC_OK;
}

static tc_status resolve_dtype(const char *name, const tc_hf_config *cfg, tc_dtype *out)
{
    tc_float_type ft;
    if (!strcmp(name, "auto"))
        ft = cfg->has_torch_dtype ? cfg->torch_dtype : TC_FT_FLOAT16;
    else if (tc_float_type_parse(name, &ft) != 0)
        return tc_fail(TC_E_USAGE, "--dtype must be auto, float16, bfloat16 or float32");
    *out = tc_float_type_dtype(ft);
    return TC_OK;
}

/* ---- dump: records on every rank, gathered to rank 0 in a fixed order ---- */

typedef struct record {
    int64_t batch, layer, col0, rows, cols;
    char kind[8];
    float *data;
} record;

typedef struct dump_state {
    record *recs;
    size_t n, cap;
} dump_state;

static tc_status keep_record(void *ctx, int64_t batch, const char *kind, int64_t layer, int64_t col0,
                             const float *data, int64_t rows, int64_t cols)
{
    dump_state *d = ctx;
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 64;
        record *p = realloc(d->recs, cap * sizeof *p);
        if (!p)
            return tc_fail(TC_E_INTERNAL, "out of memory keeping forward outputs");
        d->recs = p;
        d->cap = cap;
    }
    record *r = &d->recs[d->n];
    memset(r, 0, sizeof *r);
    r->batch = batch, r->layer = layer, r->col0 = col0, r->rows = rows, r->cols = cols;
    snprintf(r->kind, sizeof r->kind, "%s", kind);
    r->data = malloc((size_t)(rows * cols) * sizeof(float) + 1);
    if (!r->data)
        return tc_fail(TC_E_INTERNAL, "out of memory keeping forward outputs");
    memcpy(r->data, data, (size_t)(rows * cols) * sizeof(float));
    d->n++;
    return TC_OK;
}

static void dump_free(dump_state *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->recs[i].data);
    free(d->recs);
    memset(d, 0, sizeof *d);
}

/* Send this rank's records to rank 0 in creation order (a subsequence of
 * the canonical order rank 0 receives in, so blocking sends cannot cross).
 * `world` is a host-buffer communicator over every rank (coll.h). */
static tc_status dump_send(tc_coll *world, const dump_state *d)
{
    for (size_t i = 0; i < d->n; i++) {
        const record *r = &d->recs[i];
        tc_status st = tc_coll_send(world, r->data, (size_t)(r->rows * r->cols) * sizeof(float), 0);
        if (st != TC_OK)
            return st;
    }
    return TC_OK;
}

typedef struct dump_out {
    int64_t T, H, V, L;
    float *embed, *norm, *logits;
    float **layers;
} dump_out;

static tc_status recv_into(tc_coll *world, const dump_state *mine, size_t *next_mine, int src,
                           float *dst, int64_t rows, int64_t cols, int64_t stride)
{
    const size_t bytes = (size_t)(rows * cols) * sizeof(float);
    float *tmp = NULL;
    const float *data;
    if (src == 0) {
        if (*next_mine >= mine->n)
            return tc_fail(TC_E_INTERNAL, "dump: rank 0 is missing one of its own outputs");
        data = mine->recs[(*next_mine)++].data;
    } else {
        tmp = malloc(bytes + 1);
        if (!tmp)
            return tc_fail(TC_E_INTERNAL, "out of memory gathering the dump");
        tc_status st = tc_coll_recv(world, tmp, bytes, src);
        if (st != TC_OK) {
            free(tmp);
            return st;
        }
        data = tmp;
    }
    for (int64_t r = 0; r < rows; r++)
        memcpy(dst + r * stride, data + r * cols, (size_t)cols * sizeof(float));
    free(tmp);
    return TC_OK;
}

static tc_status dump_gather(tc_coll *c, const tc_fwd_layout *lay, const tc_token_set *tok,
                             int64_t batch_size, const dump_state *mine, dump_out *o)
{
    const int64_t nb = tc_fwd_batch_count(tok, batch_size);
    const int64_t per_stage = o->L / lay->pp;
    const int64_t vl = (o->V + lay->tp - 1) / lay->tp;
    size_t next_mine = 0;
    for (int64_t b = 0; b < nb; b++) {
        const int d = (int)(b % lay->dp);
        const size_t s0 = (size_t)(b * batch_size);
        const size_t s1 = s0 + (size_t)batch_size < tok->n_seqs ? s0 + (size_t)batch_size : tok->n_seqs;
        const int64_t row0 = tok->offsets[s0], rows = tok->offsets[s1] - row0;
#define RANK(p, t) ((d * lay->pp + (p)) * lay->tp + (t))
        tc_status st = recv_into(c, mine, &next_mine, RANK(0, 0), o->embed + row0 * o->H, rows,
                                 o->H, o->H);
        for (int64_t l = 0; st == TC_OK && l < o->L; l++)
            st = recv_into(c, mine, &next_mine, RANK((int)(l / per_stage), 0),
                           o->layers[l] + row0 * o->H, rows, o->H, o->H);
        if (st == TC_OK)
            st = recv_into(c, mine, &next_mine, RANK(lay->pp - 1, 0), o->norm + row0 * o->H, rows,
                           o->H, o->H);
        for (int t = 0; st == TC_OK && t < lay->tp; t++) {
            int64_t c0 = t * vl, cols = o->V - c0 < vl ? o->V - c0 : vl;
            if (cols > 0)
                st = recv_into(c, mine, &next_mine, RANK(lay->pp - 1, t),
                               o->logits + row0 * o->V + c0, rows, cols, o->V);
        }
#undef RANK
        if (st != TC_OK)
            return st;
    }
    return TC_OK;
}

static tc_status dump_write(const char *path, const tc_token_set *tok, const dump_out *o)
{
    const size_t nt = 5 + (size_t)o->L;
    tc_st_out_tensor *t = calloc(nt, sizeof *t);
    const void **data = calloc(nt, sizeof *data);
    char (*names)[32] = calloc((size_t)o->L + 1, sizeof *names);
    if (!t || !data || !names) {
        free(t);
        free(data);
        free(names);
        return tc_fail(TC_E_INTERNAL, "out of memory writing the dump");
    }
    size_t k = 0;
    t[k] = (tc_st_out_tensor){ .name = "input_ids", .dtype = TC_DT_I32, .ndim = 1, .shape = { o->T } };
    data[k++] = tok->ids;
    t[k] = (tc_st_out_tensor){ .name = "seq_offsets", .dtype = TC_DT_I64, .ndim = 1,
                               .shape = { (int64_t)tok->n_seqs + 1 } };
    data[k++] = tok->offsets;
    t[k] = (tc_st_out_tensor){ .name = "embed", .dtype = TC_DT_F32, .ndim = 2, .shape = { o->T, o->H } };
    data[k++] = o->embed;
    for (int64_t l = 0; l < o->L; l++) {
        snprintf(names[l], sizeof names[l], "layer.%lld", (long long)l);
        t[k] = (tc_st_out_tensor){ .name = names[l], .dtype = TC_DT_F32, .ndim = 2,
                                   .shape = { o->T, o->H } };
        data[k++] = o->layers[l];
    }
    t[k] = (tc_st_out_tensor){ .name = "norm", .dtype = TC_DT_F32, .ndim = 2, .shape = { o->T, o->H } };
    data[k++] = o->norm;
    t[k] = (tc_st_out_tensor){ .name = "logits", .dtype = TC_DT_F32, .ndim = 2, .shape = { o->T, o->V } };
    data[k++] = o->logits;
    tc_status st = tc_st_write_file(path, t, data, k, NULL);
    free(t);
    free(data);
    free(names);
    return st;
}

static int run(int argc, char **argv)
{
    tc_comm comm;
    tc_log_init(0, 1, NULL);
    tc_status st = tc_comm_init(&comm);
    if (st != TC_OK)
        return (int)st;
    tc_log_init(comm.rank, comm.size, comm.host);
    st = tc_launch_check_world(comm.size, getenv);
    if (st != TC_OK) {
        tc_comm_free(&comm);
        return (int)st;
    }
    fwd_args a;
    bool help = false;
    st = parse_args(argc, argv, &a, &help, comm.rank == 0);
    if (help) {
        tc_comm_free(&comm);
        return 0;
    }
    if (st == TC_OK)
        tc_log_set_level(a.log_level);

    tc_hf_model *model = NULL;
    tc_token_set tok;
    memset(&tok, 0, sizeof tok);
    tc_dtype dt = TC_DT_F16;
    tc_gpu_info gpu;
    memset(&gpu, 0, sizeof gpu);
    gpu.device = -1;
    tc_fwd_engine *eng = NULL;
    dump_state dump;
    memset(&dump, 0, sizeof dump);
    dump_out out;
    memset(&out, 0, sizeof out);

    if (st == TC_OK)
        st = tc_hf_open(a.model_dir, &model);
    if (st == TC_OK)
        st = resolve_dtype(a.dtype, &model->cfg, &dt);
    if (st == TC_OK)
        st = tc_tokens_load_jsonl(a.input, a.num_samples, a.max_seq_length, model->cfg.vocab_size,
                                  &tok);
    if (st == TC_OK && strcmp(a.device, "cpu") != 0) {
        st = tc_gpu_probe(comm.local_rank, comm.local_size, comm.host, &gpu);
        if (st == TC_OK && gpu.device < 0 && !strcmp(a.device, "gpu"))
            st = tc_fail(TC_E_USAGE, "--device gpu: no CUDA device is visible to rank %d on %s%s",
                         comm.rank, comm.host,
#if TRTCONV_HAVE_CUDA
                         ""
#else
                         " (this build has no CUDA)"
#endif
            );
    }
    if (st == TC_OK && a.dump && comm.rank == 0) {
        const tc_hf_config *cf = &model->cfg;
        double bytes = (double)tok.offsets[tok.n_seqs] *
                       (double)(cf->vocab_size + (cf->num_hidden_layers + 2) * cf->hidden_size) * 4.0;
        if (bytes > (double)DUMP_MAX_BYTES)
            st = tc_fail(TC_E_USAGE, "--dump of %.1f GiB exceeds the %llu GiB limit; use fewer "
                         "samples", bytes / (1 << 30), DUMP_MAX_BYTES >> 30);
    }
    tc_layout moe_layout = { .tp = (int)a.tp, .pp = (int)a.pp, .ranks = comm.size };
    if (st == TC_OK)
        st = tc_layout_set_moe(&moe_layout, a.moe_tp, a.moe_ep);
    st = tc_comm_agree(&comm, st, "setup");
    if (st == TC_OK) {
        const tc_plan_params checks = {
            .layout = moe_layout,
            .emb = { .parallel = a.parallel_embedding, .sharding_dim = (int)a.sharding_dim,
                     .share = a.embedding_sharing && model->cfg.tie_word_embeddings },
        };
        st = tc_layout_check_replicas(&checks.layout, "the forward pass", "");
        if (st == TC_OK)
            st = tc_plan_check_model(&model->cfg, &checks);
        tc_fwd_setup s = {
            .model = model, .dtype = dt, .comm = &comm,
            .layout = checks.layout, .emb = checks.emb,
            .gpu = gpu.device >= 0 ? &gpu : NULL, .threads = (int)a.workers,
            .max_batch_tokens = tc_fwd_max_batch_tokens(&tok, a.batch_size),
            .max_seq_len = tc_tokens_longest(&tok, 0, tok.n_seqs),
        };
        if (st == TC_OK)
            st = tc_fwd_create(&s, &eng);
        st = tc_comm_agree(&comm, st, "loading the model slices");
    }
    tc_fwd_layout lay;
    memset(&lay, 0, sizeof lay);
    if (st == TC_OK) {
        tc_fwd_get_layout(eng, &lay);
        double load = lay.load_seconds, load_max = 0;
        MPI_Reduce(&load, &load_max, 1, MPI_DOUBLE, MPI_MAX, 0, comm.world);
        unsigned long long wb = lay.weight_bytes, wb_sum = 0;
        MPI_Reduce(&wb, &wb_sum, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, 0, comm.world);
        if (comm.rank == 0)
            tc_log(TC_LOG_INFO,
                   "layout dp %d x pp %d x tp %d on %d ranks; compute %s; collectives: tp %s, "
                   "pp %s, dp %s; %s; slices %.1f MB read in %.2f s (slowest rank)",
                   lay.dp, lay.pp, lay.tp, comm.size, lay.backend, lay.coll_tp, lay.coll_pp,
                   lay.coll_dp, tc_dtype_name(dt), (double)wb_sum / 1e6, load_max);
        MPI_Barrier(comm.world);
        double t0 = tc_now_seconds();
        st = tc_fwd_run(eng, &tok, a.batch_size, a.dump ? keep_record : NULL, &dump);
        double sec = tc_now_seconds() - t0, sec_max = 0;
        st = tc_comm_agree(&comm, st, "the forward pass");
        if (comm.rank == 0)
            tc_fwd_profile_report(eng);
        MPI_Reduce(&sec, &sec_max, 1, MPI_DOUBLE, MPI_MAX, 0, comm.world);
        if (st == TC_OK && comm.rank == 0) {
            double ntok = (double)tok.offsets[tok.n_seqs];
            tc_log(TC_LOG_INFO, "forward: %zu sequences, %.0f tokens, batch %lld: %.3f s, "
                   "%.0f tokens/s", tok.n_seqs, ntok, (long long)a.batch_size, sec_max,
                   ntok / sec_max);
            printf("forward_seconds=%.6f tokens=%.0f tokens_per_second=%.1f\n", sec_max, ntok,
                   ntok / sec_max);
            fflush(stdout);
        }
    }
    tc_coll world;
    memset(&world, 0, sizeof world);
    world.comm = MPI_COMM_NULL;
    if (st == TC_OK && a.dump)
        st = tc_coll_create(comm.world, 0, comm.rank, NULL, NULL, &world);
    if (st == TC_OK && a.dump) {
        if (comm.rank == 0) {
            const tc_hf_config *cf = &model->cfg;
            out.T = tok.offsets[tok.n_seqs];
            out.H = cf->hidden_size;
            out.V = cf->vocab_size;
            out.L = cf->num_hidden_layers;
            size_t th = (size_t)(out.T * out.H);
            out.embed = malloc(th * sizeof(float));
            out.norm = malloc(th * sizeof(float));
            out.logits = malloc((size_t)(out.T * out.V) * sizeof(float));
            out.layers = calloc((size_t)out.L, sizeof *out.layers);
            bool ok = out.embed && out.norm && out.logits && out.layers;
            for (int64_t l = 0; ok && l < out.L; l++)
                ok = (out.layers[l] = malloc(th * sizeof(float))) != NULL;
            st = ok ? dump_gather(&world, &lay, &tok, a.batch_size, &dump, &out)
                    : tc_fail(TC_E_INTERNAL, "out of memory for the dump");
            if (st == TC_OK)
                st = dump_write(a.dump, &tok, &out);
            if (st == TC_OK)
                tc_log(TC_LOG_INFO, "wrote %s", a.dump);
        } else {
            st = dump_send(&world, &dump);
        }
        st = tc_comm_agree(&comm, st, "writing the dump");
    }
    free(out.embed);
    free(out.norm);
    free(out.logits);
    for (int64_t l = 0; out.layers && l < out.L; l++)
        free(out.layers[l]);
    free(out.layers);
    tc_coll_free(&world);
    dump_free(&dump);
    tc_fwd_destroy(eng);
    tc_tokens_free(&tok);
    tc_hf_close(model);
    tc_comm_free(&comm);
    return (int)st;
}

int main(int argc, char **argv)
{
    int provided = 0;
    if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "trtconv-forward: error: MPI_Init_thread failed\n");
        return 5;
    }
    int code = run(argc, argv);
    if (code == TC_E_COMM)
        MPI_Abort(MPI_COMM_WORLD, code);
    MPI_Finalize();
    return code;
}
