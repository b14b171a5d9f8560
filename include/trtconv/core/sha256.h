/* sha256.h: SHA-256 (FIPS 180-4) of byte streams, for the output manifest
 * and input fingerprints (durability-and-failures.md §2.3), and the chunked
 * form trtconv records for rank files:
 *
 *   sha256-tree-64MiB(file) = SHA-256( SHA-256(chunk_0) || ... || SHA-256(chunk_n-1) )
 *
 * where chunk_i is bytes [i*64 MiB, (i+1)*64 MiB) of the file (the last one
 * shorter; an empty file has no chunks) and || joins the raw 32-byte
 * digests. The chunks hash independently, so several threads share one
 * file: on CPUs whose SHA-256 runs at ~1 GB/s per core a plain digest of a
 * 16 GB rank file would take longer than writing it. coreutils reproduces it:
 *   split -b 64M --filter=sha256sum FILE | cut -c1-64 | tr -d '\n' |
 *     tr a-f A-F | basenc --base16 -d | sha256sum
 *
 * The block function uses the x86 SHA extensions when the CPU has them
 * (checked once at run time) and a portable scalar version otherwise; both
 * give the same digest, which is what `sha256sum` prints. Plain value
 * types: nothing is allocated. */
#ifndef TRTCONV_SHA256_H
#define TRTCONV_SHA256_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TC_SHA256_BYTES 32
#define TC_SHA256_HEX 65 /* 64 hex digits + NUL */

typedef struct tc_sha256 {
    uint32_t state[8];
    uint64_t total;          /* bytes fed so far */
    uint8_t buf[64];
    size_t buf_len;
    bool scalar_only;        /* tests: force the portable block function */
} tc_sha256;

void tc_sha256_init(tc_sha256 *h);
void tc_sha256_update(tc_sha256 *h, const void *data, size_t n);
void tc_sha256_final(tc_sha256 *h, uint8_t out[TC_SHA256_BYTES]);
/* Lowercase hex of a digest into hex (TC_SHA256_HEX bytes). */
void tc_sha256_hex(const uint8_t digest[TC_SHA256_BYTES], char hex[TC_SHA256_HEX]);
/* One-shot convenience: hex digest of data[0..n). */
void tc_sha256_hex_of(const void *data, size_t n, char hex[TC_SHA256_HEX]);
#define TC_SHA256_TREE_CHUNK (64u << 20)

/* Combine chunk digests (n * 32 bytes, in file order) into the tree digest. */
void tc_sha256_tree_combine(const uint8_t (*chunk_digests)[TC_SHA256_BYTES], size_t n,
                            char hex[TC_SHA256_HEX]);

/* True when the hardware block function is used. */
bool tc_sha256_hw(void);

#endif
