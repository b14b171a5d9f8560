/* fwdcompare.c: compare a trtconv-forward dump with a reference file.
 *
 *   tc-fwdcompare DUMP REF [--tol X] [--only PREFIX]
 *
 * For every float32 tensor of REF named embed, layer.N, norm or logits (or
 * starting with PREFIX), the tensor of the same name in DUMP must have the
 * same shape and satisfy   max|dump - ref| / max|ref| <= tol,   where tol is
 * REF's scalar tensor "tol.NAME" when present (the reference generator
 * stores the bound it derived, see tests/forward/make_reference.py), else
 * --tol (default 0: bit-identical values). input_ids and seq_offsets must be
 * equal when both files hold them. Prints one line per tensor; exit 0 when
 * all pass, 1 on a mismatch, 2 on usage or read errors. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "trtconv/core/log.h"
#include "trtconv/formats/safetensors.h"

static void *read_all(const tc_st_file *f, const tc_st_tensor *t)
{
    size_t n = (size_t)(t->end - t->begin);
    void *p = malloc(n + 1);
    if (p && tc_st_read(f, t->begin, p, n) != TC_OK) {
        free(p);
        p = NULL;
    }
    return p;
}

static bool same_shape(const tc_st_tensor *a, const tc_st_tensor *b)
{
    if (a->dtype != b->dtype || a->ndim != b->ndim)
        return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return false;
    return true;
}

static bool compared_name(const char *n, const char *only)
{
    if (only)
        return strncmp(n, only, strlen(only)) == 0;
    return !strcmp(n, "embed") || !strcmp(n, "norm") || !strcmp(n, "logits") ||
           !strncmp(n, "layer.", 6);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: tc-fwdcompare DUMP REF [--tol X] [--only PREFIX]\n");
        return 2;
    }
    double tol_default = 0.0;
    const char *only = NULL;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--tol") && i + 1 < argc)
            tol_default = atof(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else {
            fprintf(stderr, "tc-fwdcompare: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    tc_st_file *d = NULL, *r = NULL;
    if (tc_st_open(argv[1], &d, NULL) != TC_OK || tc_st_open(argv[2], &r, NULL) != TC_OK) {
        tc_st_close(d);
        return 2;
    }
    int bad = 0, compared = 0;
    const char *exact[] = { "input_ids", "seq_offsets" };
    for (int k = 0; k < 2; k++) {
        const tc_st_tensor *a = tc_st_find(d, exact[k]), *b = tc_st_find(r, exact[k]);
        if (!a || !b)
            continue;
        void *x = read_all(d, a), *y = read_all(r, b);
        bool ok = x && y && same_shape(a, b) && !memcmp(x, y, (size_t)(a->end - a->begin));
        printf("%-12s %s\n", exact[k], ok ? "equal" : "DIFFERENT");
        bad += !ok;
        free(x);
        free(y);
    }
    for (size_t i = 0; i < r->n_tensors; i++) {
        const tc_st_tensor *b = &r->tensors[i];
        if (b->dtype != TC_DT_F32 || !compared_name(b->name, only))
            continue;
        const tc_st_tensor *a = tc_st_find(d, b->name);
        if (!a || !same_shape(a, b)) {
            printf("%-12s %s\n", b->name, a ? "SHAPE MISMATCH" : "MISSING in dump");
            bad++;
            continue;
        }
        double tol = tol_default;
        char tn[160];
        snprintf(tn, sizeof tn, "tol.%s", b->name);
        const tc_st_tensor *tt = tc_st_find(r, tn);
        if (tt && tt->dtype == TC_DT_F32 && tt->nelements == 1) {
            float v;
            if (tc_st_read(r, tt->begin, &v, sizeof v) == TC_OK)
                tol = v;
        }
        float *x = read_all(d, a), *y = read_all(r, b);
        if (!x || !y) {
            free(x);
            free(y);
            tc_st_close(d);
            tc_st_close(r);
            return 2;
        }
        double maxerr = 0.0, maxref = 0.0;
        bool finite = true;
        for (uint64_t j = 0; j < b->nelements; j++) {
            if (!isfinite(x[j]) || !isfinite(y[j]))
                finite = false;
            double e = fabs((double)x[j] - (double)y[j]);
            if (e > maxerr)
                maxerr = e;
            if (fabs((double)y[j]) > maxref)
                maxref = fabs((double)y[j]);
        }
        double rel = maxref > 0.0 ? maxerr / maxref : maxerr;
        bool ok = finite && (tol == 0.0 ? !memcmp(x, y, (size_t)(b->end - b->begin)) : rel <= tol);
        printf("%-12s rel_err %.3e (max |err| %.3e, max |ref| %.3e) bound %.3e %s\n", b->name, rel,
               maxerr, maxref, tol, ok ? "ok" : "EXCEEDED");
        bad += !ok;
        compared++;
        free(x);
        free(y);
    }
    tc_st_close(d);
    tc_st_close(r);
    if (compared == 0) {
        printf("no tensors compared\n");
        return 1;
    }
    return bad ? 1 : 0;
}
