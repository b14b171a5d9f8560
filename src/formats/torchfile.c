/* torchfile.c: the tensor index of a torch.save archive (see torchfile.h):
 * the ZIP entries (zipread.h) around the pickle that pickle.c runs, checked
 * and turned into safetensors-style tensor descriptors. */
#define _POSIX_C_SOURCE 200809L
#include "trtconv/formats/torchfile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trtconv/core/log.h"
#include "trtconv/formats/zipread.h"

/* ------------------------------------------------------------------------
 * The archive around the pickle
 * ---------------------------------------------------------------------- */

static int cmp_tensor(const void *a, const void *b)
{
    return strcmp(((const tc_st_tensor *)a)->name, ((const tc_st_tensor *)b)->name);
}

static tc_status index_archive(tc_zip *z, tc_st_file **out)
{
    tc_status st = TC_OK;
    unsigned char *pkl = NULL, *order = NULL;
    size_t pkl_len = 0, order_len = 0;
    tc_pkl_result r;
    tc_st_file *f = NULL;
    char name[TC_ZIP_NAME_MAX + 80];

    memset(&r, 0, sizeof r);
    *out = NULL;
    /* PyTorchStreamReader takes the archive directory from the first entry. */
    const char *first = z->entries[0].name, *slash = strchr(first, '/');
    if (!slash || slash == first) {
        st = tc_fail(TC_E_INPUT, "%s: first entry '%s' is not inside a directory; a torch.save "
                     "archive holds PREFIX/data.pkl and PREFIX/data/*", z->path, first);
        goto done;
    }
    size_t plen = (size_t)(slash - first);
    for (size_t i = 0; i < z->n_entries; i++) {
        if (strncmp(z->entries[i].name, first, plen + 1) != 0) {
            st = tc_fail(TC_E_INPUT, "%s: entry '%s' is outside the archive directory '%.*s/'",
                         z->path, z->entries[i].name, (int)plen, first);
            goto done;
        }
    }
    snprintf(name, sizeof name, "%.*s/byteorder", (int)plen, first);
    const tc_zip_entry *e = tc_zip_find(z, name);
    if (e) {
        if ((st = tc_zip_read_entry(z, e, 64, &order, &order_len)) != TC_OK)
            goto done;
        if (order_len != 6 || memcmp(order, "little", 6) != 0) {
            st = tc_fail(TC_E_INPUT, "%s: %s is not \"little\": big-endian checkpoints are not "
                         "supported", z->path, name);
            goto done;
        }
    }
    snprintf(name, sizeof name, "%.*s/data.pkl", (int)plen, first);
    if (!(e = tc_zip_find(z, name))) {
        st = tc_fail(TC_E_INPUT, "%s: no %s entry: not a torch.save archive", z->path, name);
        goto done;
    }
    if ((st = tc_zip_read_entry(z, e, TC_PKL_MAX_BYTES, &pkl, &pkl_len)) != TC_OK)
        goto done;
    char label[TC_ZIP_NAME_MAX + 4200];
    snprintf(label, sizeof label, "%s: %s", z->path, name);
    if ((st = tc_pkl_parse(label, pkl, pkl_len, &r)) != TC_OK)
        goto done;

    f = calloc(1, sizeof *f);
    if (!f || !(f->path = malloc(strlen(z->path) + 1)) ||
        !(f->tensors = calloc(r.n_tensors ? r.n_tensors : 1, sizeof *f->tensors))) {
        st = tc_fail(TC_E_INTERNAL, "%s: out of memory", z->path);
        goto done;
    }
    memcpy(f->path, z->path, strlen(z->path) + 1);
    f->fd = -1;
    f->file_size = z->size;
    /* Storage entries: data/KEY of exactly numel * element-size bytes. */
    uint64_t *base = calloc(r.n_storages ? r.n_storages : 1, sizeof *base);
    if (!base) {
        st = tc_fail(TC_E_INTERNAL, "%s: out of memory", z->path);
        goto done;
    }
    for (size_t i = 0; i < r.n_storages && st == TC_OK; i++) {
        const tc_pkl_storage *s = &r.storages[i];
        uint64_t es = tc_dtype_bits(s->dtype) / 8;
        snprintf(name, sizeof name, "%.*s/data/%s", (int)plen, first, s->key);
        e = tc_zip_find(z, name);
        if (!e)
            st = tc_fail(TC_E_INPUT, "%s: storage '%s' has no entry %s", z->path, s->key, name);
        else if (e->size / es != s->numel || e->size % es != 0)
            st = tc_fail(TC_E_INPUT, "%s: entry %s is %llu bytes but storage '%s' declares %llu "
                         "%s elements (%llu bytes)", z->path, name, (unsigned long long)e->size,
                         s->key, (unsigned long long)s->numel, tc_dtype_name(s->dtype),
                         (unsigned long long)(s->numel * es));
        else
            base[i] = e->data_offset;
    }
    for (size_t i = 0; i < r.n_tensors && st == TC_OK; i++) {
        const tc_pkl_tensor *pt = &r.tensors[i];
        const tc_pkl_storage *s = &r.storages[pt->storage];
        if (!pt->contiguous) {
            char sh[160] = "", sd[160] = "";
            size_t a = 0, b = 0;
            for (int d = 0; d < pt->ndim; d++) {
                a += (size_t)snprintf(sh + a, sizeof sh - a, "%s%lld", d ? ", " : "",
                                      (long long)pt->shape[d]);
                b += (size_t)snprintf(sd + b, sizeof sd - b, "%s%lld", d ? ", " : "",
                                      (long long)pt->stride[d]);
                if (a >= sizeof sh - 24 || b >= sizeof sd - 24)
                    break;
            }
            st = tc_fail(TC_E_INPUT, "%s: tensor '%s' is not contiguous (shape [%s], strides "
                         "[%s]); trtconv reads row-major tensors only: save it with "
                         ".contiguous()", z->path, pt->name, sh, sd);
            break;
        }
        uint64_t es = tc_dtype_bits(s->dtype) / 8;
        tc_st_tensor *t = &f->tensors[i];
        f->n_tensors = i + 1;
        if (!(t->name = malloc(strlen(pt->name) + 1)) ||
            !(t->shape = malloc(sizeof *t->shape * (pt->ndim ? (size_t)pt->ndim : 1)))) {
            st = tc_fail(TC_E_INTERNAL, "%s: out of memory", z->path);
            break;
        }
        memcpy(t->name, pt->name, strlen(pt->name) + 1);
        t->dtype = s->dtype;
        t->ndim = pt->ndim;
        for (int d = 0; d < pt->ndim; d++)
            t->shape[d] = pt->shape[d];
        t->nelements = pt->numel;
        t->begin = base[pt->storage] + pt->storage_offset * es;
        t->end = t->begin + pt->numel * es;
    }
    free(base);
    if (st != TC_OK)
        goto done;
    qsort(f->tensors, f->n_tensors, sizeof *f->tensors, cmp_tensor);
    for (size_t i = 1; i < f->n_tensors; i++) {
        if (strcmp(f->tensors[i - 1].name, f->tensors[i].name) == 0) {
            st = tc_fail(TC_E_INPUT, "%s: tensor name '%s' appears more than once in the "
                         "state_dict", z->path, f->tensors[i].name);
            goto done;
        }
    }
    f->fd = z->fd; /* the index now owns the descriptor */
    z->fd = -1;
    *out = f;
    f = NULL;

done:
    tc_st_close(f);
    tc_pkl_free(&r);
    free(pkl);
    free(order);
    return st;
}

tc_status tc_torch_open(const char *path, tc_st_file **out)
{
    tc_zip *z = NULL;
    *out = NULL;
    TC_TRY(tc_zip_open(path, &z));
    tc_status st = index_archive(z, out);
    tc_zip_close(z);
    return st;
}

tc_status tc_torch_parse_mem(const char *label, const unsigned char *buf, size_t len,
                             tc_st_file **out)
{
    tc_zip *z = NULL;
    *out = NULL;
    TC_TRY(tc_zip_parse_mem(label, buf, len, &z));
    tc_status st = index_archive(z, out);
    tc_zip_close(z);
    return st;
}
