/* trtconv-stats: inspect, import and compare calibration statistics files
 * (calib_stats.h).
 *
 *   trtconv-stats import ACT_RANGE.safetensors --model_dir M --out S.h5
 *       convert TensorRT-LLM's capture_activation_range output (saved with
 *       safetensors) into trtconv's HDF5 statistics;
 *   trtconv-stats compare A B --model_dir M [--rtol X]
 *       A and B are .h5 files or act_range .safetensors dumps; exit 0 when
 *       every value agrees within X relative to the statistic's maximum
 *       (default 0: bit equality), printing the worst statistic;
 *   trtconv-stats show S.h5 --model_dir M
 *       provenance and per-linear maxima;
 *   trtconv-stats export S.h5 --model_dir M --out S.safetensors
 *       every statistic as an F32 tensor named by its HDF5 path with dots
 *       ("layers.3.o_proj.x", "lm_head.w"); an MoE model's stacked expert
 *       statistics as [experts, n]: to read them with numpy or plain
 *       Python, no HDF5 library needed. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "trtconv/calib/calib_stats.h"
#include "trtconv/cli/args.h"
#include "trtconv/formats/st_writer.h"
#include "trtconv/model/hf_model.h"
#include "trtconv/core/log.h"

static int usage(void)
{
    fprintf(stderr, "usage: trtconv-stats import ACT_RANGE.safetensors --model_dir M --out S.h5\n"
                    "       trtconv-stats compare A B --model_dir M [--rtol X]\n"
                    "       trtconv-stats show S.h5 --model_dir M\n"
                    "       trtconv-stats export S.h5 --model_dir M --out S.safetensors\n");
    return 2;
}

static tc_status load_any(const char *path, const tc_calib_dims *d, tc_calib_stats *s)
{
    size_t n = strlen(path);
    if (n > 12 && !strcmp(path + n - 12, ".safetensors"))
        return tc_calib_stats_import_safetensors(path, d, s);
    return tc_calib_stats_read_h5(path, d, s);
}

static int max_zero(const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (x[i] != 0.0f)
            return 0;
    return 1;
}

static int compare(const tc_calib_stats *a, const tc_calib_stats *b, double rtol)
{
    double worst = 0.0;
    char worst_name[96] = "";
    int bad = 0;
    for (size_t e = 0; e < tc_calib_entry_count(&a->d); e++) {
        int64_t layer, n;
        tc_linear lin;
        tc_stat_kind k;
        tc_calib_entry(&a->d, e, &layer, &lin, &k);
        const float *x = tc_calib_get(a, layer, lin, k, &n);
        const float *y = tc_calib_get(b, layer, lin, k, NULL);
        double ref = 0.0, err = 0.0;
        for (int64_t i = 0; i < n; i++) {
            ref = fmax(ref, fabs((double)y[i]));
            err = fmax(err, fabs((double)x[i] - (double)y[i]));
        }
        /* lm_head may be absent from a dump (all zero) or not collected. */
        if (layer < 0 && (a->lm_head_absent || b->lm_head_absent || ref == 0.0 || max_zero(x, n)))
            continue;
        const double rel = ref > 0.0 ? err / ref : err;
        char name[96];
        tc_calib_entry_path(layer, lin, k, name, sizeof name);
        if (rel > rtol) {
            if (bad < 10)
                printf("  %-32s max |a-b| / max|b| = %.3g > %.3g\n", name, rel, rtol);
            bad++;
        }
        if (rel >= worst) {
            worst = rel;
            snprintf(worst_name, sizeof worst_name, "%s", name);
        }
    }
    printf("worst: %s %.3g (rtol %.3g); %d statistic(s) outside\n", worst_name, worst, rtol, bad);
    return bad ? 1 : 0;
}

static int export_safetensors(const tc_calib_stats *s, const char *path)
{
    const size_t n = tc_calib_entry_count(&s->d);
    tc_st_out_tensor *t = calloc(n, sizeof *t);
    const void **data = calloc(n, sizeof *data);
    char (*names)[64] = calloc(n, sizeof *names);
    tc_status st = t && data && names ? TC_OK : tc_fail(TC_E_INTERNAL, "out of memory");
    size_t m = 0;
    for (size_t e = 0; st == TC_OK && e < n; e++) {
        int64_t layer, len;
        tc_linear lin;
        tc_stat_kind k;
        tc_calib_entry(&s->d, e, &layer, &lin, &k);
        if (layer < 0 && s->lm_head_absent)
            continue;
        data[m] = tc_calib_get(s, layer, lin, k, &len);
        tc_calib_entry_path(layer, lin, k, names[m], sizeof names[m]);
        for (char *c = names[m]; *c; c++)
            *c = *c == '/' ? '.' : *c;
        const int64_t stack = layer < 0 ? 1 : tc_calib_stack(&s->d, lin);
        t[m] = (tc_st_out_tensor){ .name = names[m] + 1, .dtype = TC_DT_F32,
                                   .ndim = stack > 1 ? 2 : 1,
                                   .shape = { stack > 1 ? stack : len, len / stack } };
        m++;
    }
    if (st == TC_OK)
        st = tc_st_write_file(path, t, data, m, NULL);
    free(t);
    free(data);
    free(names);
    return st == TC_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv); /* the library links MPI; a singleton is fine */
    tc_log_init(0, 1, NULL);
    int rc = 2;
    if (argc < 3) {
        rc = usage();
        goto out;
    }
    const char *cmd = argv[1], *a = argv[2], *b = NULL, *model = NULL, *outp = NULL;
    double rtol = 0.0;
    int first = 3;
    if (!strcmp(cmd, "compare")) {
        if (argc < 4) {
            rc = usage();
            goto out;
        }
        b = argv[3];
        first = 4;
    }
    const tc_arg table[] = {
        TC_OPT_STR("model_dir", &model),
        TC_OPT_STR("out", &outp),
        TC_OPT_REAL("rtol", &rtol, 0.0, false, INFINITY),
    };
    tc_args_stop stop;
    if (tc_args_parse("trtconv-stats", table, sizeof table / sizeof table[0], argc, argv, first,
                      NULL, &stop) != TC_OK) {
        rc = usage();
        goto out;
    }
    if (stop != TC_ARGS_RUN) {
        rc = stop == TC_ARGS_HELP ? usage() : 0;
        goto out;
    }
    if (!model) {
        rc = usage();
        goto out;
    }
    tc_hf_config cfg;
    if (tc_hf_config_load(model, &cfg) != TC_OK) {
        rc = 1;
        goto out;
    }
    tc_calib_dims d;
    tc_calib_dims_from_config(&cfg, &d);
    tc_calib_stats sa, sb;
    memset(&sa, 0, sizeof sa);
    memset(&sb, 0, sizeof sb);
    if (load_any(a, &d, &sa) != TC_OK) {
        rc = 1;
        goto out;
    }
    if (!strcmp(cmd, "import") && outp) {
        snprintf(sa.model, sizeof sa.model, "%s", model);
        rc = tc_calib_stats_write_h5(&sa, outp) == TC_OK ? 0 : 1;
    } else if (!strcmp(cmd, "export") && outp) {
        rc = export_safetensors(&sa, outp);
    } else if (!strcmp(cmd, "compare")) {
        rc = load_any(b, &d, &sb) == TC_OK ? compare(&sa, &sb, rtol) : 1;
    } else if (!strcmp(cmd, "show")) {
        printf("model %s\ndataset %s\nsamples %lld tokens %lld max_seq_length %lld\n"
               "forward %s, computed in %s\n", sa.model, sa.calib_dataset, (long long)sa.samples,
               (long long)sa.tokens, (long long)sa.max_seq_length, sa.forward_dtype, sa.layout);
        for (int64_t layer = 0; layer < d.layers; layer++)
            for (int l = 0; l < TC_LIN_COUNT; l++) {
                int64_t nx, ny;
                const float *x = tc_calib_get(&sa, layer, (tc_linear)l, TC_STAT_X, &nx);
                const float *y = tc_calib_get(&sa, layer, (tc_linear)l, TC_STAT_Y, &ny);
                float mx = 0, my = 0;
                for (int64_t k = 0; k < nx; k++)
                    mx = fmaxf(mx, x[k]);
                for (int64_t k = 0; k < ny; k++)
                    my = fmaxf(my, y[k]);
                printf("layer %lld %-9s max|x| %-10.5g max|y| %.5g\n", (long long)layer,
                       tc_linear_name((tc_linear)l), mx, my);
            }
        if (sa.lm_head_absent)
            printf("lm_head   not collected (a conversion calibrates without it)\n");
        rc = 0;
    } else {
        rc = usage();
    }
    tc_calib_stats_free(&sa);
    tc_calib_stats_free(&sb);
out:
    MPI_Finalize();
    return rc;
}
