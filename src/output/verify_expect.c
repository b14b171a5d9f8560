/* verify_expect.c: the list of expected tensors that verify.c and
 * verify_hf.c build from a checkpoint's config and check its files
 * against (verify_internal.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "verify_internal.h"

tc_verify_expected *tc_verify_expect(tc_verify_expect_list *l, tc_dtype dt, int ndim, int64_t d0,
                                     int64_t d1, const char *fmt, ...)
{
    if (l->n == l->cap) {
        const size_t cap = l->cap ? 2 * l->cap : 256;
        tc_verify_expected *v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            l->out_of_memory = true;
            return NULL;
        }
        l->v = v;
        l->cap = cap;
    }
    tc_verify_expected *x = &l->v[l->n++];
    memset(x, 0, sizeof *x);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->name, sizeof x->name, fmt, ap);
    va_end(ap);
    x->dtype = dt;
    x->ndim = ndim;
    x->shape[0] = d0;
    x->shape[1] = d1;
    return x;
}

tc_verify_expected *tc_verify_expect_find(tc_verify_expect_list *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->v[i].name, name))
            return &l->v[i];
    return NULL;
}

void tc_verify_expect_free(tc_verify_expect_list *l)
{
    free(l->v);
    memset(l, 0, sizeof *l);
}
