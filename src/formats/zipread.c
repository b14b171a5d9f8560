/* zipread.c: validating reader of stored (uncompressed) ZIP archives, the
 * container of torch.save files. See zipread.h for the format and rules. */
#define _POSIX_C_SOURCE 200809L
#include "trtconv/formats/zipread.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "trtconv/core/fsutil.h"
#include "trtconv/core/log.h"

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOC64 0x07064b50u
#define EOCD_LEN 22u
#define LOC64_LEN 20u
#define EOCD64_LEN 56u
#define CENTRAL_LEN 46u
#define LOCAL_LEN 30u
#define MAX_COMMENT 65535u

static uint16_t rd16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (unsigned)p[1] << 8);
}

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const unsigned char *p)
{
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

uint32_t tc_crc32(uint32_t crc, const void *buf, size_t n)
{
    /* Bitwise-reflected table of the 0xEDB88320 polynomial, built once; the
     * race on first use writes the same values from every thread. */
    static uint32_t table[256];
    static volatile int ready;
    if (!ready) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        ready = 1;
    }
    const unsigned char *p = buf;
    crc = ~crc;
    for (size_t i = 0; i < n; i++)
        crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

tc_status tc_zip_read_at(const tc_zip *z, uint64_t off, void *dst, size_t n)
{
    if (off > z->size || (uint64_t)n > z->size - off)
        return tc_fail(TC_E_INPUT, "%s: read of %zu bytes at offset %llu runs past the end of "
                       "the %llu-byte archive", z->path, n, (unsigned long long)off,
                       (unsigned long long)z->size);
    if (z->mem) {
        memcpy(dst, z->mem + off, n);
        return TC_OK;
    }
    char *p = dst;
    while (n > 0) {
        ssize_t r = pread(z->fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return tc_fail(TC_E_IO, "%s: read of %zu bytes at offset %llu failed: %s", z->path,
                           n, (unsigned long long)off, r < 0 ? strerror(errno) : "end of file");
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return TC_OK;
}

void tc_zip_close(tc_zip *z)
{
    if (!z)
        return;
    if (z->fd >= 0)
        close(z->fd);
    for (size_t i = 0; i < z->n_entries; i++)
        free(z->entries[i].name);
    free(z->entries);
    free(z->path);
    free(z);
}

/* Find the end-of-central-directory record: the last signature whose
 * comment length ends exactly at the end of the archive. */
static tc_status find_eocd(tc_zip *z, uint64_t *pos, unsigned char eocd[EOCD_LEN])
{
    if (z->size < EOCD_LEN)
        return tc_fail(TC_E_INPUT, "%s: not a zip archive (%llu bytes, shorter than the 22-byte "
                       "end of central directory record)", z->path, (unsigned long long)z->size);
    uint64_t span = z->size < EOCD_LEN + MAX_COMMENT ? z->size : EOCD_LEN + MAX_COMMENT;
    unsigned char *tail = malloc((size_t)span);
    if (!tail)
        return tc_fail(TC_E_INTERNAL, "%s: out of memory", z->path);
    tc_status st = tc_zip_read_at(z, z->size - span, tail, (size_t)span);
    if (st != TC_OK) {
        free(tail);
        return st;
    }
    for (uint64_t i = span - EOCD_LEN + 1; i-- > 0;) {
        if (rd32(tail + i) == SIG_EOCD && i + EOCD_LEN + rd16(tail + i + 20) == span) {
            memcpy(eocd, tail + i, EOCD_LEN);
            *pos = z->size - span + i;
            free(tail);
            return TC_OK;
        }
    }
    free(tail);
    return tc_fail(TC_E_INPUT, "%s: not a zip archive (no end of central directory record; a "
                   "torch.save file from PyTorch < 1.6 or with _use_new_zipfile_serialization="
                   "False is a bare pickle stream, which trtconv does not read: re-save it with a "
                   "current torch.save or convert it to safetensors)", z->path);
}

/* The ZIP64 extra field (id 0x0001) of a central header: fills the
 * saturated fields in order. */
static tc_status zip64_extra(const tc_zip *z, const char *name, const unsigned char *ex,
                             size_t len, uint64_t *usize, uint64_t *csize, uint64_t *off,
                             bool need_u, bool need_c, bool need_o, bool need_d)
{
    size_t i = 0;
    while (i + 4 <= len) {
        uint16_t id = rd16(ex + i), n = rd16(ex + i + 2);
        if (n > len - i - 4)
            return tc_fail(TC_E_INPUT, "%s: entry '%s': extra field 0x%04x of %u bytes runs past "
                           "the extra area", z->path, name, id, n);
        if (id == 0x0001) {
            const unsigned char *p = ex + i + 4;
            size_t want = 8u * (need_u + need_c + need_o) + 4u * need_d;
            if (n < want)
                return tc_fail(TC_E_INPUT, "%s: entry '%s': ZIP64 extra field has %u bytes, the "
                               "saturated header fields need %zu", z->path, name, n, want);
            if (need_u) { *usize = rd64(p); p += 8; }
            if (need_c) { *csize = rd64(p); p += 8; }
            if (need_o) { *off = rd64(p); p += 8; }
            return TC_OK;
        }
        i += 4u + n;
    }
    if (need_u || need_c || need_o || need_d)
        return tc_fail(TC_E_INPUT, "%s: entry '%s': a size or offset field is 0xFFFFFFFF but there "
                       "is no ZIP64 extra field", z->path, name);
    return TC_OK;
}

static int cmp_by_offset(const void *a, const void *b)
{
    const tc_zip_entry *x = *(const tc_zip_entry *const *)a, *y = *(const tc_zip_entry *const *)b;
    return x->header_offset < y->header_offset ? -1 : x->header_offset > y->header_offset;
}

static int cmp_by_name(const void *a, const void *b)
{
    return strcmp((*(const tc_zip_entry *const *)a)->name, (*(const tc_zip_entry *const *)b)->name);
}

static tc_status parse(tc_zip *z)
{
    tc_status st = TC_OK;
    unsigned char eocd[EOCD_LEN] = { 0 }, buf[EOCD64_LEN] = { 0 };
    unsigned char *cd = NULL;
    tc_zip_entry **order = NULL;
    uint64_t eocd_pos = 0;

    TC_TRY(find_eocd(z, &eocd_pos, eocd));
    uint64_t n_disk = rd16(eocd + 4), disk_cd = rd16(eocd + 6);
    uint64_t n_here = rd16(eocd + 8), n_total = rd16(eocd + 10);
    uint64_t cd_size = rd32(eocd + 12), cd_off = rd32(eocd + 16);
    uint64_t cd_end_limit = eocd_pos; /* the central directory ends before this */
    if (n_here == 0xFFFF || n_total == 0xFFFF || cd_size == 0xFFFFFFFFu ||
        cd_off == 0xFFFFFFFFu || n_disk == 0xFFFF || disk_cd == 0xFFFF) {
        if (eocd_pos < LOC64_LEN)
            return tc_fail(TC_E_INPUT, "%s: end of central directory needs ZIP64 but there is no "
                           "room for the ZIP64 locator", z->path);
        TC_TRY(tc_zip_read_at(z, eocd_pos - LOC64_LEN, buf, LOC64_LEN));
        if (rd32(buf) != SIG_LOC64)
            return tc_fail(TC_E_INPUT, "%s: end of central directory needs ZIP64 but the ZIP64 "
                           "locator signature is missing", z->path);
        uint64_t rec = rd64(buf + 8);
        if (rd32(buf + 4) != 0 || rd32(buf + 16) != 1)
            return tc_fail(TC_E_INPUT, "%s: multi-disk (split) archives are not supported",
                           z->path);
        if (rec > eocd_pos - LOC64_LEN || eocd_pos - LOC64_LEN - rec < EOCD64_LEN)
            return tc_fail(TC_E_INPUT, "%s: ZIP64 end of central directory offset %llu is not "
                           "before its locator", z->path, (unsigned long long)rec);
        TC_TRY(tc_zip_read_at(z, rec, buf, EOCD64_LEN));
        if (rd32(buf) != SIG_EOCD64)
            return tc_fail(TC_E_INPUT, "%s: no ZIP64 end of central directory record at offset "
                           "%llu", z->path, (unsigned long long)rec);
        n_disk = rd32(buf + 16);
        disk_cd = rd32(buf + 20);
        n_here = rd64(buf + 24);
        n_total = rd64(buf + 32);
        cd_size = rd64(buf + 40);
        cd_off = rd64(buf + 48);
        cd_end_limit = rec;
    }
    if (n_disk != 0 || disk_cd != 0 || n_here != n_total)
        return tc_fail(TC_E_INPUT, "%s: multi-disk (split) archives are not supported", z->path);
    if (cd_off > cd_end_limit || cd_size > cd_end_limit - cd_off)
        return tc_fail(TC_E_INPUT, "%s: central directory [%llu, +%llu) runs past its end record "
                       "at %llu", z->path, (unsigned long long)cd_off, (unsigned long long)cd_size,
                       (unsigned long long)cd_end_limit);
    if (n_total > cd_size / CENTRAL_LEN)
        return tc_fail(TC_E_INPUT, "%s: %llu entries cannot fit a %llu-byte central directory "
                       "(46 bytes each at least)", z->path, (unsigned long long)n_total,
                       (unsigned long long)cd_size);
    if (n_total == 0)
        return tc_fail(TC_E_INPUT, "%s: the zip archive is empty", z->path);

    cd = malloc((size_t)cd_size);
    z->entries = calloc((size_t)n_total, sizeof *z->entries);
    order = calloc((size_t)n_total, sizeof *order);
    if (!cd || !z->entries || !order) {
        st = tc_fail(TC_E_INTERNAL, "%s: out of memory (%llu entries)", z->path,
                     (unsigned long long)n_total);
        goto done;
    }
    if ((st = tc_zip_read_at(z, cd_off, cd, (size_t)cd_size)) != TC_OK)
        goto done;

    size_t pos = 0;
    for (uint64_t i = 0; i < n_total; i++) {
        if (cd_size - pos < CENTRAL_LEN || rd32(cd + pos) != SIG_CENTRAL) {
            st = tc_fail(TC_E_INPUT, "%s: central directory entry %llu: bad signature or "
                         "truncated at offset %llu", z->path, (unsigned long long)i,
                         (unsigned long long)(cd_off + pos));
            goto done;
        }
        const unsigned char *h = cd + pos;
        uint16_t flags = rd16(h + 8), method = rd16(h + 10);
        uint32_t crc = rd32(h + 16);
        uint64_t csize = rd32(h + 20), usize = rd32(h + 24);
        size_t nlen = rd16(h + 28), elen = rd16(h + 30), clen = rd16(h + 32);
        uint64_t disk = rd16(h + 34), off = rd32(h + 42);
        if (CENTRAL_LEN + nlen + elen + clen > cd_size - pos) {
            st = tc_fail(TC_E_INPUT, "%s: central directory entry %llu: name, extra and comment "
                         "lengths run past the central directory", z->path,
                         (unsigned long long)i);
            goto done;
        }
        if (nlen == 0 || memchr(h + CENTRAL_LEN, 0, nlen)) {
            st = tc_fail(TC_E_INPUT, "%s: central directory entry %llu: empty name or a NUL byte "
                         "in the name", z->path, (unsigned long long)i);
            goto done;
        }
        tc_zip_entry *e = &z->entries[i];
        z->n_entries = (size_t)i + 1;
        if (!(e->name = malloc(nlen + 1))) {
            st = tc_fail(TC_E_INTERNAL, "%s: out of memory", z->path);
            goto done;
        }
        memcpy(e->name, h + CENTRAL_LEN, nlen);
        e->name[nlen] = '\0';
        if ((st = zip64_extra(z, e->name, h + CENTRAL_LEN + nlen, elen, &usize, &csize, &off,
                              usize == 0xFFFFFFFFu, csize == 0xFFFFFFFFu, off == 0xFFFFFFFFu,
                              disk == 0xFFFF)) != TC_OK)
            goto done;
        if (flags & 0x41) {
            st = tc_fail(TC_E_INPUT, "%s: entry '%s' is encrypted (flags 0x%04x); trtconv reads "
                         "only unencrypted stored entries", z->path, e->name, flags);
            goto done;
        }
        if (method != 0) {
            st = tc_fail(TC_E_INPUT, "%s: entry '%s' is compressed (method %u%s); trtconv reads "
                         "only stored (method 0) entries, as torch.save writes them, so that a "
                         "rank can read a slice without inflating the whole entry",
                         z->path, e->name, method, method == 8 ? ", deflate" : "");
            goto done;
        }
        if (csize != usize) {
            st = tc_fail(TC_E_INPUT, "%s: entry '%s' is stored but its compressed size %llu "
                         "differs from its size %llu", z->path, e->name,
                         (unsigned long long)csize, (unsigned long long)usize);
            goto done;
        }
        if (disk != 0 && disk != 0xFFFF) {
            st = tc_fail(TC_E_INPUT, "%s: entry '%s' starts on disk %llu; multi-disk archives are "
                         "not supported", z->path, e->name, (unsigned long long)disk);
            goto done;
        }
        e->header_offset = off;
        e->size = usize;
        e->crc32 = crc;
        order[i] = e;
        pos += CENTRAL_LEN + nlen + elen + clen;
    }

    /* Local headers: same name and method, data inside [header, cd_off). */
    for (size_t i = 0; i < z->n_entries; i++) {
        tc_zip_entry *e = &z->entries[i];
        unsigned char lh[LOCAL_LEN];
        if (e->header_offset > cd_off || cd_off - e->header_offset < LOCAL_LEN) {
            st = tc_fail(TC_E_INPUT, "%s: entry '%s': local header offset %llu is not before the "
                         "central directory at %llu", z->path, e->name,
                         (unsigned long long)e->header_offset, (unsigned long long)cd_off);
            goto done;
        }
        if ((st = tc_zip_read_at(z, e->header_offset, lh, LOCAL_LEN)) != TC_OK)
            goto done;
        size_t nlen = rd16(lh + 26), elen = rd16(lh + 28);
        if (rd32(lh) != SIG_LOCAL) {
            st = tc_fail(TC_E_INPUT, "%s: entry '%s': no local file header signature at offset "
                         "%llu", z->path, e->name, (unsigned long long)e->header_offset);
            goto done;
        }
        if ((rd16(lh + 6) & 0x41) != 0 || rd16(lh + 8) != 0) {
            st = tc_fail(TC_E_INPUT, "%s: entry '%s': local header says compressed or encrypted "
                         "(method %u, flags 0x%04x) unlike the central directory", z->path,
                         e->name, rd16(lh + 8), rd16(lh + 6));
            goto done;
        }
        uint64_t data = e->header_offset + LOCAL_LEN + nlen + elen;
        if (data > cd_off || e->size > cd_off - data) {
            st = tc_fail(TC_E_INPUT, "%s: entry '%s': its %llu bytes at offset %llu run past the "
                         "start of the central directory at %llu", z->path, e->name,
                         (unsigned long long)e->size, (unsigned long long)data,
                         (unsigned long long)cd_off);
            goto done;
        }
        if (nlen != strlen(e->name)) {
            st = tc_fail(TC_E_INPUT, "%s: entry '%s': the local header names a different file "
                         "than the central directory", z->path, e->name);
            goto done;
        }
        char name[TC_ZIP_NAME_MAX];
        if (nlen >= sizeof name) {
            st = tc_fail(TC_E_INPUT, "%s: entry name of %zu bytes is longer than %d", z->path,
                         nlen, TC_ZIP_NAME_MAX - 1);
            goto done;
        }
        if ((st = tc_zip_read_at(z, e->header_offset + LOCAL_LEN, name, nlen)) != TC_OK)
            goto done;
        if (memcmp(name, e->name, nlen) != 0) {
            st = tc_fail(TC_E_INPUT, "%s: entry '%s': the local header names a different file "
                         "than the central directory", z->path, e->name);
            goto done;
        }
        e->data_offset = data;
    }

    /* No two entries may share bytes: a crafted archive could otherwise
     * make one storage alias another's data or its headers. */
    qsort(order, z->n_entries, sizeof *order, cmp_by_offset);
    for (size_t i = 1; i < z->n_entries; i++) {
        const tc_zip_entry *a = order[i - 1], *b = order[i];
        if (a->data_offset + a->size > b->header_offset) {
            st = tc_fail(TC_E_INPUT, "%s: entries '%s' (bytes %llu..%llu) and '%s' (header at "
                         "%llu) overlap", z->path, a->name, (unsigned long long)a->header_offset,
                         (unsigned long long)(a->data_offset + a->size), b->name,
                         (unsigned long long)b->header_offset);
            goto done;
        }
    }
    qsort(order, z->n_entries, sizeof *order, cmp_by_name);
    for (size_t i = 1; i < z->n_entries; i++) {
        if (strcmp(order[i - 1]->name, order[i]->name) == 0) {
            st = tc_fail(TC_E_INPUT, "%s: entry name '%s' appears more than once", z->path,
                         order[i]->name);
            goto done;
        }
    }

done:
    free(order);
    free(cd);
    return st;
}

static tc_status make(const char *label, tc_zip **out)
{
    tc_zip *z = calloc(1, sizeof *z);
    size_t n = strlen(label) + 1;
    if (!z || !(z->path = malloc(n))) {
        free(z);
        return tc_fail(TC_E_INTERNAL, "%s: out of memory", label);
    }
    memcpy(z->path, label, n);
    z->fd = -1;
    *out = z;
    return TC_OK;
}

tc_status tc_zip_open(const char *path, tc_zip **out)
{
    tc_zip *z = NULL;
    struct stat sb;
    *out = NULL;
    TC_TRY(make(path, &z));
    tc_status st = TC_OK;
    st = tc_open_input(path, NULL, &z->fd);
    if (st != TC_OK) {
        /* reported */
    } else if (fstat(z->fd, &sb) != 0) {
        st = tc_fail(TC_E_IO, "%s: cannot stat: %s", path, strerror(errno));
    } else {
        z->size = (uint64_t)sb.st_size;
        st = parse(z);
    }
    if (st != TC_OK) {
        tc_zip_close(z);
        return st;
    }
    *out = z;
    return TC_OK;
}

tc_status tc_zip_parse_mem(const char *label, const unsigned char *buf, size_t len, tc_zip **out)
{
    tc_zip *z = NULL;
    *out = NULL;
    TC_TRY(make(label, &z));
    z->mem = buf;
    z->size = len;
    tc_status st = parse(z);
    if (st != TC_OK) {
        tc_zip_close(z);
        return st;
    }
    *out = z;
    return TC_OK;
}

const tc_zip_entry *tc_zip_find(const tc_zip *z, const char *name)
{
    for (size_t i = 0; i < z->n_entries; i++)
        if (strcmp(z->entries[i].name, name) == 0)
            return &z->entries[i];
    return NULL;
}

tc_status tc_zip_read_entry(const tc_zip *z, const tc_zip_entry *e, size_t max,
                            unsigned char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (e->size > (uint64_t)max)
        return tc_fail(TC_E_INPUT, "%s: entry '%s' is %llu bytes, more than the limit of %zu",
                       z->path, e->name, (unsigned long long)e->size, max);
    unsigned char *buf = malloc((size_t)e->size + 1);
    if (!buf)
        return tc_fail(TC_E_INTERNAL, "%s: out of memory (%llu bytes)", z->path,
                       (unsigned long long)e->size);
    tc_status st = tc_zip_read_at(z, e->data_offset, buf, (size_t)e->size);
    if (st == TC_OK) {
        uint32_t crc = tc_crc32(0, buf, (size_t)e->size);
        if (crc != e->crc32)
            st = tc_fail(TC_E_INPUT, "%s: entry '%s': CRC-32 of its bytes is %08x, the central "
                         "directory says %08x (damaged file)", z->path, e->name, crc, e->crc32);
    }
    if (st != TC_OK) {
        free(buf);
        return st;
    }
    buf[e->size] = '\0';
    *out = buf;
    *len = (size_t)e->size;
    return TC_OK;
}
