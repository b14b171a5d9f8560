/* stcompare.c: compare two safetensors files tensor by tensor.
 *
 * usage: tc-stcompare [--ignore SUBSTRING]... [--f32_ulp SUBSTRING=N]...
 *                     EXPECTED ACTUAL
 * Exit 0 when both hold the same tensor names (minus ignored ones) with the
 * same dtype, shape and bytes (F32 tensors whose name contains a --f32_ulp
 * SUBSTRING: values within N units in the last place, the largest distance
 * printed); 1 with a message naming the first difference;
 * 2 on usage or read errors. Used to hold trtconv to the golden files of
 * the upstream converter, whose rank files carry extra tensors (INT8 KV
 * scales) that a plain conversion does not write. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "trtconv/core/log.h"
#include "trtconv/formats/safetensors.h"

static int ignored(const char *name, char **ign, int n)
{
    for (int i = 0; i < n; i++)
        if (strstr(name, ign[i]))
            return 1;
    return 0;
}

/* Distance in float32 units in the last place (ordered integer images). */
static int64_t ulp_distance(uint32_t x, uint32_t y)
{
    int64_t ox = x & 0x80000000u ? -(int64_t)(x & 0x7fffffffu) : (int64_t)x;
    int64_t oy = y & 0x80000000u ? -(int64_t)(y & 0x7fffffffu) : (int64_t)y;
    return ox > oy ? ox - oy : oy - ox;
}

static int compare_ulp(const tc_st_file *a, const tc_st_tensor *ta, const tc_st_file *b,
                       const tc_st_tensor *tb, int64_t max_ulp)
{
    const uint64_t n = (ta->end - ta->begin) / 4;
    const uint64_t step = 1 << 18;
    uint32_t *x = malloc(step * 4), *y = malloc(step * 4);
    int64_t worst = 0;
    uint64_t n_diff = 0, at = 0;
    int rc = x && y ? 0 : 2;
    for (uint64_t off = 0; off < n && rc == 0; off += step) {
        size_t len = (size_t)(n - off < step ? n - off : step);
        if (tc_st_read(a, ta->begin + off * 4, x, len * 4) != TC_OK ||
            tc_st_read(b, tb->begin + off * 4, y, len * 4) != TC_OK) {
            rc = 2;
            break;
        }
        for (size_t i = 0; i < len; i++) {
            int64_t d = ulp_distance(x[i], y[i]);
            n_diff += d != 0;
            if (d > worst) {
                worst = d;
                at = off + i;
            }
        }
    }
    free(x);
    free(y);
    if (rc == 0)
        printf("%s: %llu of %llu values differ, at most %lld ulp (element %llu)\n", ta->name,
               (unsigned long long)n_diff, (unsigned long long)n, (long long)worst,
               (unsigned long long)at);
    return rc ? rc : worst > max_ulp;
}

static int compare_one(const tc_st_file *a, const tc_st_tensor *ta, const tc_st_file *b,
                       const tc_st_tensor *tb, int64_t max_ulp)
{
    if (ta->dtype != tb->dtype) {
        printf("%s: dtype %s vs %s\n", ta->name, tc_dtype_name(ta->dtype), tc_dtype_name(tb->dtype));
        return 1;
    }
    if (ta->ndim != tb->ndim || memcmp(ta->shape, tb->shape, (size_t)ta->ndim * sizeof *ta->shape)) {
        printf("%s: shapes differ\n", ta->name);
        return 1;
    }
    if (max_ulp >= 0 && ta->dtype == TC_DT_F32)
        return compare_ulp(a, ta, b, tb, max_ulp);
    uint64_t n = ta->end - ta->begin;
    const uint64_t step = 1 << 20;
    char *x = malloc(step), *y = malloc(step);
    int rc = 0;
    for (uint64_t off = 0; off < n && rc == 0; off += step) {
        size_t len = (size_t)(n - off < step ? n - off : step);
        if (tc_st_read(a, ta->begin + off, x, len) != TC_OK ||
            tc_st_read(b, tb->begin + off, y, len) != TC_OK) {
            rc = 2;
            break;
        }
        if (memcmp(x, y, len) != 0) {
            size_t i = 0;
            while (x[i] == y[i])
                i++;
            printf("%s: bytes differ at byte %llu\n", ta->name, (unsigned long long)(off + i));
            rc = 1;
        }
    }
    free(x);
    free(y);
    return rc;
}

int main(int argc, char **argv)
{
    char *ign[64], *ulp_on[16];
    int64_t ulp_max[16];
    int n_ign = 0, n_ulp = 0, i = 1;
    for (; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--ignore") == 0 && n_ign < 64) {
            ign[n_ign++] = argv[i + 1];
        } else if (strcmp(argv[i], "--f32_ulp") == 0 && n_ulp < 16) {
            char *eq = strrchr(argv[i + 1], '=');
            if (!eq)
                break;
            *eq = 0;
            ulp_on[n_ulp] = argv[i + 1];
            ulp_max[n_ulp++] = strtoll(eq + 1, NULL, 10);
        } else {
            break;
        }
    }
    if (argc - i != 2) {
        fprintf(stderr, "usage: tc-stcompare [--ignore SUBSTRING]... [--f32_ulp SUBSTRING=N]... "
                        "EXPECTED ACTUAL\n");
        return 2;
    }
    tc_st_file *a = NULL, *b = NULL;
    if (tc_st_open(argv[i], &a, NULL) != TC_OK || tc_st_open(argv[i + 1], &b, NULL) != TC_OK) {
        tc_st_close(a);
        return 2;
    }
    int rc = 0;
    size_t na = 0, nb = 0;
    for (size_t k = 0; k < a->n_tensors && rc == 0; k++) {
        const tc_st_tensor *ta = &a->tensors[k];
        if (ignored(ta->name, ign, n_ign))
            continue;
        na++;
        const tc_st_tensor *tb = tc_st_find(b, ta->name);
        if (!tb) {
            printf("%s: missing in %s\n", ta->name, argv[i + 1]);
            rc = 1;
            break;
        }
        int64_t max_ulp = -1;
        for (int u = 0; u < n_ulp; u++)
            if (strstr(ta->name, ulp_on[u]))
                max_ulp = ulp_max[u];
        rc = compare_one(a, ta, b, tb, max_ulp);
    }
    for (size_t k = 0; k < b->n_tensors; k++)
        if (!ignored(b->tensors[k].name, ign, n_ign))
            nb++;
    if (rc == 0 && na != nb) {
        printf("%s has %zu tensors, %s has %zu\n", argv[i], na, argv[i + 1], nb);
        rc = 1;
    }
    if (rc == 0)
        printf("same: %zu tensors\n", na);
    tc_st_close(a);
    tc_st_close(b);
    return rc;
}
