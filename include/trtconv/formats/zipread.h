/* zipread.h: validating reader for the ZIP archives torch.save writes.
 *
 * File format (PKWARE APPNOTE.TXT 6.3.x; all fields little endian):
 *   local file header   (4.3.7)  sig 0x04034b50, 30 bytes, then the name,
 *                                 the extra field and the entry's bytes;
 *   central directory   (4.3.12) sig 0x02014b50, 46 bytes + name + extra +
 *                                 comment per entry: method, flags, CRC-32,
 *                                 sizes and the local header's offset;
 *   ZIP64 end record    (4.3.14) sig 0x06064b50 and its locator (4.3.15,
 *                                 sig 0x07064b50), present when a count,
 *                                 size or offset does not fit 16/32 bits;
 *   end of central dir  (4.3.16) sig 0x06054b50, 22 bytes + comment, last.
 * A 0xFFFF/0xFFFFFFFF field means "see the ZIP64 extra field" (id 0x0001,
 * 4.5.3: uncompressed size, compressed size, local header offset, disk, in
 * that order, each present only when its 32-bit field is saturated).
 *
 * PyTorch's writer (caffe2/serialize/inline_container.cc, miniz) stores
 * every record uncompressed (method 0) and pads the local extra field so
 * the data starts 64-byte aligned; the entry's data offset is therefore
 * taken from the local header (30 + name + local extra), never assumed.
 *
 * Refused, each with a message naming the file, the entry and the rule:
 * compressed entries (any method but 0: torch.load could read them, but a
 * rank could not read a slice without inflating the whole entry), encrypted
 * entries (flag bit 0 or 6), multi-disk archives, entries whose bytes run
 * past the central directory or overlap another entry, a local header that
 * disagrees with the central one (name, method), duplicate names, names with
 * NUL bytes, and archives with more entries than their central directory
 * can hold. Data CRCs are not checked here (that would read every byte);
 * tc_zip_read_entry checks the CRC of the small entries it reads whole. */
#ifndef TRTCONV_ZIPREAD_H
#define TRTCONV_ZIPREAD_H

#include <stddef.h>
#include <stdint.h>
#include "trtconv/core/status.h"

#define TC_ZIP_NAME_MAX 4096        /* longest entry name accepted */

typedef struct tc_zip_entry {
    char *name;              /* NUL-terminated; owned by the archive */
    uint64_t header_offset;  /* local file header */
    uint64_t data_offset;    /* absolute offset of the entry's bytes */
    uint64_t size;           /* stored size (= uncompressed size) */
    uint32_t crc32;          /* from the central directory */
} tc_zip_entry;

typedef struct tc_zip {
    char *path;              /* owned copy, used in messages */
    int fd;                  /* -1 when parsed from memory */
    const unsigned char *mem;/* borrowed buffer when parsed from memory */
    uint64_t size;           /* archive length in bytes */
    size_t n_entries;
    tc_zip_entry *entries;   /* owned; central directory order */
} tc_zip;

/* Open and validate path (central directory and every local header). On
 * TC_OK *out belongs to the caller (tc_zip_close). TC_E_INPUT for format
 * errors, TC_E_IO for I/O. */
tc_status tc_zip_open(const char *path, tc_zip **out);
/* The same for an archive held in memory (label names it in messages);
 * buf must outlive *out. For unit tests and fuzzing. */
tc_status tc_zip_parse_mem(const char *label, const unsigned char *buf, size_t len,
                           tc_zip **out);
/* Accepts NULL; closes the descriptor. */
void tc_zip_close(tc_zip *z);

/* Exact-name lookup; borrows from z. NULL if absent. */
const tc_zip_entry *tc_zip_find(const tc_zip *z, const char *name);

/* Read entry e whole (at most max bytes, else TC_E_INPUT) and check its
 * CRC-32. On TC_OK *out (malloc'd, NUL-terminated after *len bytes) belongs
 * to the caller. */
tc_status tc_zip_read_entry(const tc_zip *z, const tc_zip_entry *e, size_t max,
                            unsigned char **out, size_t *len);

/* Read n bytes at absolute offset off (file or memory). */
tc_status tc_zip_read_at(const tc_zip *z, uint64_t off, void *dst, size_t n);

/* CRC-32 (ISO 3309 / ITU-T V.42, the ZIP and zlib polynomial 0xEDB88320)
 * of n bytes continuing from crc (start with 0). */
uint32_t tc_crc32(uint32_t crc, const void *buf, size_t n);

#endif
