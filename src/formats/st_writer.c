/* st_writer.c: byte layout of the safetensors files trtconv writes.
 *
 * Mirrors safetensors `prepare` + serde_json serialisation (v0.4.x):
 *   [8-byte LE N][compact JSON, "__metadata__" first if any, then the tensors
 *   in file order][spaces up to N % 8 == 0][tensor data back to back].
 * File order: tc_dtype_sort_rank descending, then name ascending (byte-wise,
 * strcmp). Strings are escaped as serde_json does: '"' and '\\' with a
 * backslash, control characters as \b \t \n \f \r or \u00xx (lowercase hex);
 * everything else, non-ASCII included, is copied as is. */
#define _POSIX_C_SOURCE 200809L
#include "trtconv/formats/st_writer.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "trtconv/core/jsonutil.h"
#include "trtconv/core/log.h"
#include "trtconv/formats/safetensors.h" /* TC_ST_MAX_HEADER */

/* ---- growable byte buffer ----------------------------------------------- */

typedef struct sbuf {
    char *p;    /* owned, malloc'd */
    size_t len;
    size_t cap;
    int oom;    /* set once an allocation failed; later puts are no-ops */
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n) {
            if (cap > ((size_t)-1) / 2) {
                b->oom = 1;
                return;
            }
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_u64(sbuf *b, uint64_t v)
{
    char tmp[24];
    int r = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    if (r < 0 || (size_t)r >= sizeof tmp) {
        b->oom = 1; /* cannot happen for a u64 */
        return;
    }
    sb_put(b, tmp, (size_t)r);
}

/* A JSON string with serde_json's escaping. */
static void sb_json_string(sbuf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    sb_put(b, "\"", 1);
    const char *run = s; /* start of bytes not yet copied */
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[7];
        size_t elen = 2;
        if (c == '"' || c == '\\') {
            esc[1] = (char)c;
        } else if (c < 0x20) {
            switch (c) {
            case '\b': esc[1] = 'b'; break;
            case '\t': esc[1] = 't'; break;
            case '\n': esc[1] = 'n'; break;
            case '\f': esc[1] = 'f'; break;
            case '\r': esc[1] = 'r'; break;
            default:
                memcpy(esc + 1, "u00", 3);
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                elen = 6;
                break;
            }
        } else {
            continue;
        }
        esc[0] = '\\';
        sb_put(b, run, (size_t)(s - run));
        sb_put(b, esc, elen);
        run = s + 1;
    }
    sb_put(b, run, (size_t)(s - run));
    sb_put(b, "\"", 1);
}

/* ---- layout ------------------------------------------------------------- */

static int cmp_file_order(const void *pa, const void *pb)
{
    const tc_st_out_tensor *a = pa, *b = pb;
    int ra = tc_dtype_sort_rank(a->dtype), rb = tc_dtype_sort_rank(b->dtype);
    if (ra != rb)
        return ra > rb ? -1 : 1; /* larger rank first */
    return strcmp(a->name, b->name);
}

static int cmp_name_ptr(const void *pa, const void *pb)
{
    return strcmp(*(const char *const *)pa, *(const char *const *)pb);
}

/* Check the tensors and compute nbytes. */
static tc_status check_tensors(tc_st_out_tensor *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!t[i].name)
            return tc_fail(TC_E_INPUT, "st_layout: tensor %zu has no name", i);
        if ((unsigned)t[i].dtype >= TC_DT_COUNT)
            return tc_fail(TC_E_INPUT, "st_layout: tensor '%s': invalid dtype %d", t[i].name,
                           (int)t[i].dtype);
        if (t[i].ndim < 0 || t[i].ndim > TC_ST_OUT_MAX_DIMS)
            return tc_fail(TC_E_INPUT, "st_layout: tensor '%s': %d dimensions (0..%d allowed)",
                           t[i].name, t[i].ndim, TC_ST_OUT_MAX_DIMS);
        uint64_t nel = 1;
        for (int d = 0; d < t[i].ndim; d++) {
            if (t[i].shape[d] < 0)
                return tc_fail(TC_E_INPUT, "st_layout: tensor '%s': negative dimension %lld",
                               t[i].name, (long long)t[i].shape[d]);
            uint64_t v = (uint64_t)t[i].shape[d];
            if (v != 0 && nel > UINT64_MAX / v)
                return tc_fail(TC_E_INPUT, "st_layout: tensor '%s': element count overflows",
                               t[i].name);
            nel *= v;
        }
        unsigned bits = tc_dtype_bits(t[i].dtype);
        if (nel > UINT64_MAX / bits)
            return tc_fail(TC_E_INPUT, "st_layout: tensor '%s': byte size overflows", t[i].name);
        if (nel * bits % 8 != 0)
            return tc_fail(TC_E_INPUT, "st_layout: tensor '%s': %llu elements of %s are not a "
                           "whole number of bytes", t[i].name, (unsigned long long)nel,
                           tc_dtype_name(t[i].dtype));
        t[i].nbytes = nel * bits / 8;
    }
    return TC_OK;
}

/* tc_st_layout with optional metadata (a cJSON object of strings, emitted
 * first in its own order). */
static tc_status layout_impl(tc_st_out_tensor *t, size_t n, const cJSON *meta, char **prefix,
                             size_t *prefix_len, uint64_t *file_size)
{
    tc_status st = TC_OK;
    const char **names = NULL;
    sbuf b = { 0 };

    *prefix = NULL;
    *prefix_len = 0;
    *file_size = 0;
    if ((st = check_tensors(t, n)) != TC_OK)
        goto done;
    if (n > 0) {
        names = malloc(n * sizeof *names);
        if (!names) {
            st = tc_fail(TC_E_INTERNAL, "st_layout: out of memory for %zu names", n);
            goto done;
        }
        for (size_t i = 0; i < n; i++)
            names[i] = t[i].name;
        qsort(names, n, sizeof *names, cmp_name_ptr);
        for (size_t i = 1; i < n; i++) {
            if (strcmp(names[i - 1], names[i]) == 0) {
                st = tc_fail(TC_E_INPUT, "st_layout: tensor name '%s' appears twice", names[i]);
                goto done;
            }
        }
        qsort(t, n, sizeof *t, cmp_file_order);
    }

    /* Relative offsets first (the JSON holds them); file_offset gets the
     * header length added once it is known. */
    uint64_t rel = 0;
    for (size_t i = 0; i < n; i++) {
        if (t[i].nbytes > UINT64_MAX - rel) {
            st = tc_fail(TC_E_INPUT, "st_layout: total data size overflows");
            goto done;
        }
        t[i].file_offset = rel;
        rel += t[i].nbytes;
    }

    sb_put(&b, "\0\0\0\0\0\0\0\0", 8);
    sb_put(&b, "{", 1);
    int first = 1;
    if (meta) {
        sb_puts(&b, "\"__metadata__\":{");
        for (const cJSON *c = meta->child; c; c = c->next) {
            if (c != meta->child)
                sb_put(&b, ",", 1);
            sb_json_string(&b, c->string);
            sb_put(&b, ":", 1);
            sb_json_string(&b, c->valuestring);
        }
        sb_put(&b, "}", 1);
        first = 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!first)
            sb_put(&b, ",", 1);
        first = 0;
        sb_json_string(&b, t[i].name);
        sb_puts(&b, ":{\"dtype\":\"");
        sb_puts(&b, tc_dtype_name(t[i].dtype));
        sb_puts(&b, "\",\"shape\":[");
        for (int d = 0; d < t[i].ndim; d++) {
            if (d)
                sb_put(&b, ",", 1);
            sb_u64(&b, (uint64_t)t[i].shape[d]);
        }
        sb_puts(&b, "],\"data_offsets\":[");
        sb_u64(&b, t[i].file_offset);
        sb_put(&b, ",", 1);
        sb_u64(&b, t[i].file_offset + t[i].nbytes);
        sb_puts(&b, "]}");
    }
    sb_put(&b, "}", 1);
    while ((b.len - 8) % 8 != 0 && !b.oom)
        sb_put(&b, " ", 1);
    if (b.oom) {
        st = tc_fail(TC_E_INTERNAL, "st_layout: out of memory building the header");
        goto done;
    }

    uint64_t hlen = b.len - 8;
    if (hlen > TC_ST_MAX_HEADER) {
        st = tc_fail(TC_E_INPUT, "st_layout: header of %llu bytes exceeds the limit of %llu",
                     (unsigned long long)hlen, (unsigned long long)TC_ST_MAX_HEADER);
        goto done;
    }
    if (rel > UINT64_MAX - 8 - hlen) {
        st = tc_fail(TC_E_INPUT, "st_layout: file size overflows");
        goto done;
    }
    for (int i = 0; i < 8; i++)
        b.p[i] = (char)(unsigned char)(hlen >> (8 * i));
    for (size_t i = 0; i < n; i++)
        t[i].file_offset += 8 + hlen;

    *prefix = b.p;
    *prefix_len = b.len;
    *file_size = 8 + hlen + rel;
    b.p = NULL;

done:
    free(names);
    free(b.p);
    return st;
}

tc_status tc_st_layout(tc_st_out_tensor *t, size_t n, char **prefix, size_t *prefix_len,
                       uint64_t *file_size)
{
    return layout_impl(t, n, NULL, prefix, prefix_len, file_size);
}

tc_status tc_st_layout_pt(tc_st_out_tensor *t, size_t n, char **prefix, size_t *prefix_len,
                          uint64_t *file_size)
{
    cJSON *meta = cJSON_CreateObject();
    if (!meta || !cJSON_AddStringToObject(meta, "format", "pt")) {
        cJSON_Delete(meta);
        return tc_fail(TC_E_INTERNAL, "st_layout: out of memory");
    }
    const tc_status st = layout_impl(t, n, meta, prefix, prefix_len, file_size);
    cJSON_Delete(meta);
    return st;
}

/* ---- whole-file writer -------------------------------------------------- */

static int pwrite_full(int fd, const void *src, size_t n, uint64_t off)
{
    const char *p = src;
    while (n > 0) {
        size_t want = n < ((size_t)1 << 30) ? n : ((size_t)1 << 30);
        ssize_t r = pwrite(fd, p, want, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0) {
            errno = EIO;
            return -1;
        }
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

/* Original index of a tensor by name, to find data[i] after sorting. */
typedef struct name_idx {
    const char *name;
    size_t idx;
} name_idx;

static int cmp_name_idx(const void *pa, const void *pb)
{
    return strcmp(((const name_idx *)pa)->name, ((const name_idx *)pb)->name);
}

tc_status tc_st_write_file(const char *path, const tc_st_out_tensor *t, const void *const *data,
                           size_t n, const char *metadata_json)
{
    tc_status st = TC_OK;
    tc_st_out_tensor *sorted = NULL;
    name_idx *idx = NULL;
    cJSON *meta = NULL;
    char *prefix = NULL;
    size_t prefix_len = 0;
    uint64_t fsize = 0;
    int fd = -1;
    int created = 0;

    if (metadata_json) {
        meta = tc_json_parse(NULL, metadata_json, strlen(metadata_json));
        if (!cJSON_IsObject(meta) || tc_json_find_duplicate_key(meta)) {
            st = tc_fail(TC_E_INPUT, "%s: metadata is not a JSON object with unique keys",
                         path);
            goto done;
        }
        for (const cJSON *c = meta->child; c; c = c->next) {
            if (!cJSON_IsString(c)) {
                st = tc_fail(TC_E_INPUT, "%s: metadata value of '%s' is not a string", path,
                             c->string);
                goto done;
            }
        }
    }
    if (n > 0) {
        sorted = malloc(n * sizeof *sorted);
        idx = malloc(n * sizeof *idx);
        if (!sorted || !idx) {
            st = tc_fail(TC_E_INTERNAL, "%s: out of memory for %zu tensors", path, n);
            goto done;
        }
        memcpy(sorted, t, n * sizeof *sorted);
    }
    if ((st = layout_impl(sorted, n, meta, &prefix, &prefix_len, &fsize)) != TC_OK)
        goto done;
    for (size_t i = 0; i < n; i++) {
        idx[i].name = t[i].name;
        idx[i].idx = i;
    }
    if (n > 0)
        qsort(idx, n, sizeof *idx, cmp_name_idx);

    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        st = tc_fail(TC_E_IO, "%s: cannot create: %s", path, strerror(errno));
        goto done;
    }
    created = 1;
    if (pwrite_full(fd, prefix, prefix_len, 0) != 0) {
        st = tc_fail(TC_E_IO, "%s: cannot write the header: %s", path, strerror(errno));
        goto done;
    }
    for (size_t j = 0; j < n; j++) {
        name_idx key = { sorted[j].name, 0 };
        const name_idx *hit = bsearch(&key, idx, n, sizeof *idx, cmp_name_idx);
        const void *src = hit ? data[hit->idx] : NULL;
        if (sorted[j].nbytes == 0)
            continue;
        if (!src) {
            st = tc_fail(TC_E_INPUT, "%s: tensor '%s' has no data", path, sorted[j].name);
            goto done;
        }
        if (pwrite_full(fd, src, (size_t)sorted[j].nbytes, sorted[j].file_offset) != 0) {
            st = tc_fail(TC_E_IO, "%s: cannot write tensor '%s': %s", path, sorted[j].name,
                         strerror(errno));
            goto done;
        }
    }
    int fd_to_close = fd;
    fd = -1;
    if (close(fd_to_close) != 0) {
        st = tc_fail(TC_E_IO, "%s: close failed: %s", path, strerror(errno));
        goto done;
    }

done:
    if (fd >= 0)
        close(fd);
    if (st != TC_OK && created)
        unlink(path); /* never leave a half-written file behind */
    cJSON_Delete(meta);
    free(prefix);
    free(idx);
    free(sorted);
    return st;
}
