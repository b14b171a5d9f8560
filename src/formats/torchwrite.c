/* torchwrite.c: torch.save-layout writer (see torchwrite.h). The opcode
 * choices mirror CPython's Pickler at protocol 2 (save_long picks BININT1,
 * BININT2, BININT or LONG1; save_tuple TUPLE1-3 or MARK..TUPLE; every
 * non-empty tuple, str and class is memoized with BINPUT/LONG_BINPUT and
 * met again through BINGET/LONG_BINGET; _batch_setitems writes batches of
 * 1000 items as MARK..SETITEMS, a batch of one as SETITEM). */
#define _POSIX_C_SOURCE 200809L
#include "trtconv/formats/torchwrite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trtconv/core/log.h"
#include "trtconv/formats/zipread.h"

typedef struct pbuf {
    unsigned char *p;
    size_t len, cap;
    bool oom;
    uint32_t next_memo;
} pbuf;

static void put(pbuf *b, const void *src, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->len + n)
            nc *= 2;
        unsigned char *q = realloc(b->p, nc);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = nc;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void op(pbuf *b, unsigned char c)
{
    put(b, &c, 1);
}

static void le(pbuf *b, uint64_t v, int n)
{
    unsigned char x[8];
    for (int i = 0; i < n; i++)
        x[i] = (unsigned char)(v >> (8 * i));
    put(b, x, (size_t)n);
}

/* BINPUT/LONG_BINPUT of the next memo slot; returns the slot. */
static uint32_t memoize(pbuf *b)
{
    uint32_t k = b->next_memo++;
    if (k < 256) {
        op(b, 'q');
        op(b, (unsigned char)k);
    } else {
        op(b, 'r');
        le(b, k, 4);
    }
    return k;
}

static void get(pbuf *b, uint32_t k)
{
    if (k < 256) {
        op(b, 'h');
        op(b, (unsigned char)k);
    } else {
        op(b, 'j');
        le(b, k, 4);
    }
}

static void integer(pbuf *b, int64_t v)
{
    if (v >= 0 && v <= 0xFF) {
        op(b, 'K');
        op(b, (unsigned char)v);
    } else if (v >= 0 && v <= 0xFFFF) {
        op(b, 'M');
        le(b, (uint64_t)v, 2);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
        op(b, 'J');
        le(b, (uint64_t)v, 4);
    } else {
        /* LONG1: the shortest two's complement (pickle.encode_long). */
        int n = 1;
        while (n < 8 && !(v >> (8 * n - 1) == 0 || v >> (8 * n - 1) == -1))
            n++;
        op(b, 0x8a);
        op(b, (unsigned char)n);
        le(b, (uint64_t)v, n);
    }
}

static uint32_t str(pbuf *b, const char *s)
{
    op(b, 'X');
    le(b, strlen(s), 4);
    put(b, s, strlen(s));
    return memoize(b);
}

static uint32_t global(pbuf *b, const char *mod, const char *name)
{
    op(b, 'c');
    put(b, mod, strlen(mod));
    op(b, '\n');
    put(b, name, strlen(name));
    op(b, '\n');
    return memoize(b);
}

static void int_tuple(pbuf *b, const int64_t *v, int n)
{
    if (n == 0) {
        op(b, ')');
        return;
    }
    if (n > 3)
        op(b, '(');
    for (int i = 0; i < n; i++)
        integer(b, v[i]);
    op(b, n > 3 ? 't' : (unsigned char)(0x84 + n));
    memoize(b);
}

tc_status tc_tw_pickle(const tc_tw_tensor *t, size_t n, bool ordered, unsigned char **out,
                       size_t *len)
{
    pbuf b = { NULL, 0, 0, false, 0 };
    int64_t odict = -1, rebuild = -1, storage_str = -1, cpu = -1, cls[3] = { -1, -1, -1 };
    char key[32];

    *out = NULL;
    *len = 0;
    op(&b, 0x80);
    op(&b, 2);
    if (ordered) {
        odict = global(&b, "collections", "OrderedDict");
        op(&b, ')');
        op(&b, 'R');
    } else {
        op(&b, '}');
    }
    memoize(&b);
    for (size_t i = 0; i < n; i++) {
        const tc_tw_tensor *x = &t[i];
        if (x->ndim < 0 || x->ndim > 8)
            return tc_fail(TC_E_INTERNAL, "%s: tensor %s has %d dimensions", __func__, x->name,
                           x->ndim);
        int c = x->dtype == TC_DT_F32 ? 0 : x->dtype == TC_DT_F16 ? 1 : x->dtype == TC_DT_BF16 ? 2
                                                                                           : -1;
        if (c < 0)
            return tc_fail(TC_E_INTERNAL, "%s: tensor %s: dtype %s has no torch storage here",
                           __func__, x->name, tc_dtype_name(x->dtype));
        if (i % 1000 == 0 && n - i > 1)
            op(&b, '(');
        str(&b, x->name);
        if (rebuild < 0)
            rebuild = global(&b, "torch._utils", "_rebuild_tensor_v2");
        else
            get(&b, (uint32_t)rebuild);
        op(&b, '(');
        op(&b, '(');
        if (storage_str < 0)
            storage_str = str(&b, "storage");
        else
            get(&b, (uint32_t)storage_str);
        static const char *const names[3] = { "FloatStorage", "HalfStorage", "BFloat16Storage" };
        if (cls[c] < 0)
            cls[c] = global(&b, "torch", names[c]);
        else
            get(&b, (uint32_t)cls[c]);
        snprintf(key, sizeof key, "%zu", i);
        str(&b, key);
        if (cpu < 0)
            cpu = str(&b, "cpu");
        else
            get(&b, (uint32_t)cpu);
        int64_t numel = 1, stride[8];
        for (int d = x->ndim - 1; d >= 0; d--) {
            stride[d] = numel;
            numel *= x->shape[d];
        }
        integer(&b, numel);
        op(&b, 't');
        memoize(&b);
        op(&b, 'Q');
        integer(&b, 0);
        int_tuple(&b, x->shape, x->ndim);
        int_tuple(&b, stride, x->ndim);
        op(&b, 0x89);
        if (odict < 0)
            odict = global(&b, "collections", "OrderedDict");
        else
            get(&b, (uint32_t)odict);
        op(&b, ')');
        op(&b, 'R');
        memoize(&b);
        op(&b, 't');
        memoize(&b);
        op(&b, 'R');
        memoize(&b);
        if (i % 1000 == 999 || i + 1 == n)
            op(&b, i % 1000 == 0 ? 's' : 'u');
    }
    op(&b, '.');
    if (b.oom) {
        free(b.p);
        return tc_fail(TC_E_INTERNAL, "%s: out of memory", __func__);
    }
    *out = b.p;
    *len = b.len;
    return TC_OK;
}

/* ---- ZIP ---------------------------------------------------------------- */

#define ALIGN 64u
#define LOCAL_LEN 30u

static bool big(uint64_t v)
{
    return v >= 0xFFFFFFFFu;
}

/* Local header length before padding: fixed part, name, ZIP64 extra. */
static uint64_t local_fixed(const tc_zipw_entry *e)
{
    return LOCAL_LEN + strlen(e->name) + (big(e->size) ? 20u : 0u);
}

tc_status tc_zipw_layout(tc_zipw_entry *e, size_t n, uint64_t *cd_offset)
{
    uint64_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        if (strlen(e[i].name) > 0xFFFF - 64)
            return tc_fail(TC_E_INTERNAL, "%s: entry name too long", __func__);
        e[i].header_offset = pos;
        uint64_t data = pos + local_fixed(&e[i]);
        /* The padding is an extra field (4-byte header + filler), as in
         * PyTorch's writer: at least 4 bytes when any is needed. */
        if (data % ALIGN != 0) {
            uint64_t pad = ALIGN - data % ALIGN;
            if (pad < 4)
                pad += ALIGN;
            data += pad;
        }
        e[i].data_offset = data;
        pos = data + e[i].size;
    }
    *cd_offset = pos;
    return TC_OK;
}

static void w16(unsigned char *p, uint64_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void w32(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void w64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

tc_status tc_zipw_local(const tc_zipw_entry *e, unsigned char **out, size_t *len)
{
    size_t nlen = strlen(e->name);
    size_t total = (size_t)(e->data_offset - e->header_offset);
    unsigned char *p = calloc(1, total);
    if (!p)
        return tc_fail(TC_E_INTERNAL, "%s: out of memory", __func__);
    size_t z64 = big(e->size) ? 20u : 0u;
    size_t extra = total - LOCAL_LEN - nlen;
    w32(p, 0x04034b50u);
    w16(p + 4, z64 ? 45 : 20);  /* version needed: 4.5 for ZIP64 */
    w16(p + 6, 0x0800);         /* UTF-8 names */
    w16(p + 8, 0);              /* stored */
    w32(p + 14, e->crc32);
    w32(p + 18, z64 ? 0xFFFFFFFFu : e->size);
    w32(p + 22, z64 ? 0xFFFFFFFFu : e->size);
    w16(p + 26, nlen);
    w16(p + 28, extra);
    memcpy(p + LOCAL_LEN, e->name, nlen);
    unsigned char *x = p + LOCAL_LEN + nlen;
    if (z64) {
        w16(x, 0x0001);
        w16(x + 2, 16);
        w64(x + 4, e->size);
        w64(x + 12, e->size);
        x += 20;
    }
    size_t pad = extra - z64;
    if (pad > 0) {
        w16(x, 0x4246);         /* "FB", PyTorch's padding field id */
        w16(x + 2, pad - 4);
        memset(x + 4, 'Z', pad - 4);
    }
    *out = p;
    *len = total;
    return TC_OK;
}

tc_status tc_zipw_tail(const tc_zipw_entry *e, size_t n, uint64_t cd_offset, unsigned char **out,
                       size_t *len)
{
    size_t cd = 0;
    for (size_t i = 0; i < n; i++)
        cd += 46 + strlen(e[i].name) + 28;
    size_t total = cd + 56 + 20 + 22;
    unsigned char *p = calloc(1, total), *q = p;
    if (!p)
        return tc_fail(TC_E_INTERNAL, "%s: out of memory", __func__);
    for (size_t i = 0; i < n; i++) {
        size_t nlen = strlen(e[i].name);
        bool bs = big(e[i].size), bo = big(e[i].header_offset);
        size_t xl = (bs ? 16u : 0u) + (bo ? 8u : 0u);
        w32(q, 0x02014b50u);
        w16(q + 4, 0x032d);
        w16(q + 6, xl ? 45 : 20);
        w16(q + 8, 0x0800);
        w32(q + 16, e[i].crc32);
        w32(q + 20, bs ? 0xFFFFFFFFu : e[i].size);
        w32(q + 24, bs ? 0xFFFFFFFFu : e[i].size);
        w16(q + 28, nlen);
        w16(q + 30, xl ? xl + 4 : 0);
        w32(q + 42, bo ? 0xFFFFFFFFu : e[i].header_offset);
        memcpy(q + 46, e[i].name, nlen);
        q += 46 + nlen;
        if (xl) {
            w16(q, 0x0001);
            w16(q + 2, xl);
            q += 4;
            if (bs) {
                w64(q, e[i].size);
                w64(q + 8, e[i].size);
                q += 16;
            }
            if (bo) {
                w64(q, e[i].header_offset);
                q += 8;
            }
        }
    }
    size_t cd_len = (size_t)(q - p);
    uint64_t z64_at = cd_offset + cd_len;
    w32(q, 0x06064b50u);
    w64(q + 4, 44);
    w16(q + 12, 0x032d);
    w16(q + 14, 45);
    w64(q + 24, n);
    w64(q + 32, n);
    w64(q + 40, cd_len);
    w64(q + 48, cd_offset);
    q += 56;
    w32(q, 0x07064b50u);
    w64(q + 8, z64_at);
    w32(q + 16, 1);
    q += 20;
    w32(q, 0x06054b50u);
    w16(q + 8, n >= 0xFFFF ? 0xFFFF : n);
    w16(q + 10, n >= 0xFFFF ? 0xFFFF : n);
    w32(q + 12, big(cd_len) ? 0xFFFFFFFFu : cd_len);
    w32(q + 16, big(cd_offset) ? 0xFFFFFFFFu : cd_offset);
    q += 22;
    *out = p;
    *len = (size_t)(q - p);
    return TC_OK;
}

tc_status tc_tw_archive_mem(const char *prefix, const unsigned char *pkl, size_t pkl_len,
                            const unsigned char *const *storage, const uint64_t *sizes,
                            size_t n_storages, unsigned char **out, size_t *len)
{
    tc_status st = TC_OK;
    size_t n = n_storages + 3;
    tc_zipw_entry *e = calloc(n, sizeof *e);
    char (*names)[128] = calloc(n, sizeof *names);
    const unsigned char **data = calloc(n, sizeof *data);
    unsigned char *buf = NULL, *part = NULL;
    size_t part_len = 0;
    uint64_t cd = 0;

    *out = NULL;
    *len = 0;
    if (!e || !names || !data) {
        st = tc_fail(TC_E_INTERNAL, "%s: out of memory", __func__);
        goto done;
    }
    snprintf(names[0], sizeof names[0], "%s/data.pkl", prefix);
    data[0] = pkl;
    e[0].size = pkl_len;
    snprintf(names[1], sizeof names[1], "%s/byteorder", prefix);
    data[1] = (const unsigned char *)"little";
    e[1].size = 6;
    for (size_t i = 0; i < n_storages; i++) {
        snprintf(names[2 + i], sizeof names[2 + i], "%s/data/%zu", prefix, i);
        data[2 + i] = storage[i];
        e[2 + i].size = sizes[i];
    }
    snprintf(names[n - 1], sizeof names[n - 1], "%s/version", prefix);
    data[n - 1] = (const unsigned char *)"3\n";
    e[n - 1].size = 2;
    for (size_t i = 0; i < n; i++) {
        e[i].name = names[i];
        e[i].crc32 = tc_crc32(0, data[i], (size_t)e[i].size);
    }
    if ((st = tc_zipw_layout(e, n, &cd)) != TC_OK)
        goto done;
    if ((st = tc_zipw_tail(e, n, cd, &part, &part_len)) != TC_OK)
        goto done;
    if (!(buf = calloc(1, (size_t)cd + part_len))) {
        st = tc_fail(TC_E_INTERNAL, "%s: out of memory", __func__);
        goto done;
    }
    memcpy(buf + cd, part, part_len);
    *len = (size_t)cd + part_len;
    free(part);
    part = NULL;
    for (size_t i = 0; i < n; i++) {
        if ((st = tc_zipw_local(&e[i], &part, &part_len)) != TC_OK)
            goto done;
        memcpy(buf + e[i].header_offset, part, part_len);
        free(part);
        part = NULL;
        if (e[i].size)
            memcpy(buf + e[i].data_offset, data[i], (size_t)e[i].size);
    }
    *out = buf;
    buf = NULL;

done:
    free(part);
    free(buf);
    free(data);
    free(names);
    free(e);
    if (st != TC_OK)
        *len = 0;
    return st;
}
