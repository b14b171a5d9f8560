/* rankfile.c: the rank-file protocol (see rankfile.h): partial file,
 * hashing while written, commit by rename, and the registry of partial
 * files the signal handlers remove. */
#define _GNU_SOURCE /* fallocate */
#include "trtconv/output/rankfile.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "trtconv/core/fsutil.h"
#include "trtconv/core/log.h"
#include "trtconv/core/sha256.h"
#include "trtconv/formats/safetensors.h"
#include "trtconv/output/manifest.h"

/* ---- hashing the rank file while it is written ----------------------
 *
 * The manifest records each rank file's sha256_tree digest (sha256.h): the
 * SHA-256 of every 64 MiB chunk, combined. Every write adds its length to
 * the counters of the chunks it overlaps; TC_HASH_THREADS threads per file
 * take whichever chunk is complete first (lowest offset among them: the
 * conversion writes mostly in file order, the overlapped calibration
 * layer by layer), read it back (from the page cache: it was just written)
 * and hash it. Hashing so
 * overlaps the conversion on several cores instead of being one serial
 * pass at the end. The counters also prove that every byte of the file was
 * written exactly once. */

#define HASH_CHUNK TC_SHA256_TREE_CHUNK
#define HASH_READ (2u << 20) /* per hashing thread; 4 threads per open file */

struct tc_cell_hasher {
    pthread_t threads[TC_HASH_THREADS];
    int n_threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int fd;
    const char *path;            /* borrowed from the cell */
    uint64_t file_size, n_chunks;
    uint8_t *taken;              /* per chunk, under mu: a thread hashes it */
    _Atomic uint32_t *written;   /* bytes written per chunk */
    uint8_t (*digests)[TC_SHA256_BYTES];
    atomic_int overwritten;      /* a byte written twice: a bug */
    atomic_int stop;
    tc_status st;                /* first failure of a thread, under mu */
};

static uint32_t hash_chunk_len(const struct tc_cell_hasher *h, uint64_t b)
{
    uint64_t end = (b + 1) * HASH_CHUNK < h->file_size ? (b + 1) * HASH_CHUNK : h->file_size;
    return (uint32_t)(end - b * HASH_CHUNK);
}

static tc_status hash_chunk(struct tc_cell_hasher *h, uint64_t b, uint8_t *buf)
{
    const uint32_t len = hash_chunk_len(h, b);
    tc_sha256 sha = { .scalar_only = false };
    tc_sha256_init(&sha);
    for (uint32_t done = 0; done < len;) {
        size_t want = len - done < HASH_READ ? len - done : HASH_READ;
        ssize_t r = pread(h->fd, buf, want, (off_t)(b * HASH_CHUNK + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return tc_fail(TC_E_IO, "%s: reading back %zu bytes at offset %llu to hash them "
                           "failed: %s", h->path, want,
                           (unsigned long long)(b * HASH_CHUNK + done),
                           r < 0 ? strerror(errno) : "end of file");
        tc_sha256_update(&sha, buf, (size_t)r);
        done += (uint32_t)r;
    }
    tc_sha256_final(&sha, h->digests[b]);
    return TC_OK;
}

static void *hasher_main(void *arg)
{
    struct tc_cell_hasher *h = arg;
    uint8_t *buf = malloc(HASH_READ);
    tc_status st = buf ? TC_OK : tc_fail(TC_E_INTERNAL, "%s: out of memory for hashing", h->path);
    while (st == TC_OK) {
        uint64_t b = UINT64_MAX;
        bool left = false;
        pthread_mutex_lock(&h->mu);
        for (;;) {
            left = false;
            for (uint64_t k = 0; k < h->n_chunks && b == UINT64_MAX; k++) {
                if (h->taken[k])
                    continue;
                left = true;
                if (atomic_load(&h->written[k]) >= hash_chunk_len(h, k)) {
                    h->taken[k] = 1;
                    b = k;
                }
            }
            if (b != UINT64_MAX || !left || atomic_load(&h->stop))
                break;
            pthread_cond_wait(&h->cv, &h->mu);
        }
        pthread_mutex_unlock(&h->mu);
        if (b == UINT64_MAX) {
            if (left)
                st = TC_E_CANCELLED; /* stopped with chunks unwritten */
            break;
        }
        st = hash_chunk(h, b, buf);
    }
    free(buf);
    if (st != TC_OK) {
        pthread_mutex_lock(&h->mu);
        if (h->st == TC_OK)
            h->st = st;
        atomic_store(&h->stop, 1);
        pthread_cond_broadcast(&h->cv);
        pthread_mutex_unlock(&h->mu);
    }
    return NULL;
}

static tc_status hasher_start(tc_cell_output *out)
{
    struct tc_cell_hasher *h = calloc(1, sizeof *h);
    if (!h)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    h->fd = out->fd;
    h->path = out->tmp_path;
    h->file_size = out->file_size;
    h->n_chunks = (out->file_size + HASH_CHUNK - 1) / HASH_CHUNK;
    h->written = calloc(h->n_chunks ? h->n_chunks : 1, sizeof *h->written);
    h->digests = calloc(h->n_chunks ? h->n_chunks : 1, sizeof *h->digests);
    h->taken = calloc(h->n_chunks ? h->n_chunks : 1, 1);
    if (!h->written || !h->digests || !h->taken) {
        free(h->written);
        free(h->digests);
        free(h->taken);
        free(h);
        return tc_fail(TC_E_INTERNAL, "out of memory");
    }
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    out->hasher = h;
    const uint64_t want = h->n_chunks < TC_HASH_THREADS ? h->n_chunks : TC_HASH_THREADS;
    for (uint64_t t = 0; t < want; t++) {
        if (pthread_create(&h->threads[h->n_threads], NULL, hasher_main, h) != 0)
            break;
        h->n_threads++;
    }
    if (h->n_threads == 0 && h->n_chunks > 0)
        return tc_fail(TC_E_INTERNAL, "%s: cannot start a hashing thread", out->tmp_path);
    return TC_OK;
}

/* Stop (when `cancel`) or wait for the threads and free the hasher; on
 * TC_OK hex holds the file's sha256_tree digest. */
static tc_status hasher_finish(tc_cell_output *out, bool cancel, char hex[TC_SHA256_HEX])
{
    struct tc_cell_hasher *h = out->hasher;
    if (!h)
        return TC_E_CANCELLED;
    if (cancel) {
        pthread_mutex_lock(&h->mu);
        atomic_store(&h->stop, 1);
        pthread_cond_broadcast(&h->cv);
        pthread_mutex_unlock(&h->mu);
    }
    for (int t = 0; t < h->n_threads; t++)
        pthread_join(h->threads[t], NULL);
    tc_status st = cancel ? TC_E_CANCELLED : h->st;
    if (st == TC_OK && h->n_threads == 0 && h->n_chunks > 0)
        st = TC_E_INTERNAL;
    if (st == TC_OK && hex)
        tc_sha256_tree_combine((const uint8_t(*)[TC_SHA256_BYTES])h->digests, h->n_chunks, hex);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h->written);
    free(h->digests);
    free(h->taken);
    free(h);
    out->hasher = NULL;
    return st;
}

/* First chunk of the file that was not written exactly once, or false. */
static bool hasher_gap(const struct tc_cell_hasher *h, uint64_t *off, uint32_t *have,
                       uint32_t *want)
{
    for (uint64_t b = 0; b < h->n_chunks; b++) {
        uint32_t got = atomic_load(&((struct tc_cell_hasher *)h)->written[b]);
        if (got != hash_chunk_len(h, b)) {
            *off = b * HASH_CHUNK;
            *have = got;
            *want = hash_chunk_len(h, b);
            return true;
        }
    }
    return false;
}

tc_status tc_cell_write(tc_cell_output *c, const void *buf, size_t n, uint64_t off)
{
    if (off > c->file_size || n > c->file_size - off)
        return tc_fail(TC_E_INTERNAL, "%s: write of %zu bytes at offset %llu past the planned "
                       "size %llu", c->tmp_path, n, (unsigned long long)off,
                       (unsigned long long)c->file_size);
    TC_TRY(tc_pwrite_all(c->fd, c->tmp_path, buf, n, off));
    /* Start the disk writes now: below the kernel's dirty threshold (10% of
     * a GPU host's memory is more than an 8B model's output) nothing else
     * would before the commit's fsync, which then waited seconds for all of
     * it. fsync still makes the data durable and reports any real error. */
    (void)sync_file_range(c->fd, (off_t)off, (off_t)n, SYNC_FILE_RANGE_WRITE);
    struct tc_cell_hasher *h = c->hasher;
    if (!h)
        return TC_OK;
    for (uint64_t pos = off, end = off + n; pos < end;) {
        const uint64_t b = pos / HASH_CHUNK;
        const uint64_t bend = (b + 1) * HASH_CHUNK < end ? (b + 1) * HASH_CHUNK : end;
        const uint32_t len = (uint32_t)(bend - pos);
        const uint32_t now = atomic_fetch_add(&h->written[b], len) + len;
        if (now > hash_chunk_len(h, b))
            atomic_store(&h->overwritten, 1);
        else if (now == hash_chunk_len(h, b)) {
            pthread_mutex_lock(&h->mu);
            pthread_cond_broadcast(&h->cv);
            pthread_mutex_unlock(&h->mu);
        }
        pos = bend;
    }
    return TC_OK;
}

/* The partial files this process has open, for tc_partial_unlink_all (a
 * signal handler): fixed slots, written before the file is created and
 * cleared when it is renamed or removed. */
#define MAX_PARTIAL 64
static char g_partial[MAX_PARTIAL][4096];
static atomic_int g_partial_used[MAX_PARTIAL];

static int partial_track(const char *path)
{
    for (int i = 0; i < MAX_PARTIAL; i++) {
        int expect = 0;
        if (atomic_compare_exchange_strong(&g_partial_used[i], &expect, 2)) {
            snprintf(g_partial[i], sizeof g_partial[i], "%s", path);
            atomic_store(&g_partial_used[i], 1);
            return i + 1;
        }
    }
    return 0; /* more open cells than slots: those stay until the next run */
}

static void partial_untrack(int slot)
{
    if (slot > 0)
        atomic_store(&g_partial_used[slot - 1], 0);
}

void tc_partial_unlink_all(void)
{
    for (int i = 0; i < MAX_PARTIAL; i++)
        if (atomic_load(&g_partial_used[i]) == 1)
            unlink(g_partial[i]);
}

void tc_cell_file_name(tc_cell_naming naming, int cell, int cells, char *buf, size_t n)
{
    if (naming == TC_CELLS_HF_SHARDS)
        snprintf(buf, n, "model-%05d-of-%05d.safetensors", cell + 1, cells);
    else
        snprintf(buf, n, "rank%d.safetensors", cell);
}

/* A run of decimal digits of exactly `width` characters (0: any, at most
 * 9) at *p: its value, *p moved past it; -1 otherwise. */
static long digits(const char **p, int width)
{
    long v = 0;
    int k = 0;
    while ((*p)[k] >= '0' && (*p)[k] <= '9' && k < 9)
        v = v * 10 + ((*p)[k++] - '0');
    if (k == 0 || (width && k != width) || ((*p)[k] >= '0' && (*p)[k] <= '9'))
        return -1;
    *p += k;
    return v;
}

long tc_cell_file_index(const char *name, long *cells)
{
    const char *p = name;
    *cells = -1;
    if (!strncmp(p, "rank", 4)) {
        p += 4;
        const long r = digits(&p, 0);
        return r >= 0 && !strcmp(p, ".safetensors") ? r : -1;
    }
    if (strncmp(p, "model-", 6))
        return -1;
    p += 6;
    const long k = digits(&p, 5);
    if (k < 1 || strncmp(p, "-of-", 4))
        return -1;
    p += 4;
    const long of = digits(&p, 5);
    if (of < k || strcmp(p, ".safetensors"))
        return -1;
    *cells = of;
    return k - 1;
}

tc_status tc_cell_open(const char *dir, tc_plan *plan, tc_cell_output *out)
{
    tc_status st = TC_OK;
    tc_st_out_tensor *desc = NULL;
    char *prefix = NULL;
    size_t prefix_len = 0;
    char name[64], tmp[80];

    memset(out, 0, sizeof *out);
    out->fd = -1;
    out->plan = plan;
    tc_cell_file_name(plan->naming, plan->rank, plan->cells, name, sizeof name);
    out->final_path = tc_path_join_alloc(dir, name);
    snprintf(tmp, sizeof tmp, ".%s.partial", name);
    out->tmp_path = tc_path_join_alloc(dir, tmp);
    out->offsets = calloc(plan->n_tensors ? plan->n_tensors : 1, sizeof *out->offsets);
    desc = calloc(plan->n_tensors ? plan->n_tensors : 1, sizeof *desc);
    if (!out->final_path || !out->tmp_path || !out->offsets || !desc) {
        st = tc_fail(TC_E_INTERNAL, "out of memory opening the output of rank %d", plan->rank);
        goto done;
    }
    tc_plan_out_tensors(plan, desc);
    st = plan->naming == TC_CELLS_HF_SHARDS
             ? tc_st_layout_pt(desc, plan->n_tensors, &prefix, &prefix_len, &out->file_size)
             : tc_st_layout(desc, plan->n_tensors, &prefix, &prefix_len, &out->file_size);
    if (st != TC_OK)
        goto done;
    for (size_t i = 0; i < plan->n_tensors; i++) {
        /* desc[i].name points into plan->tensors[k].name: recover k. */
        const tc_plan_tensor *t =
            (const tc_plan_tensor *)(const void *)(desc[i].name - offsetof(tc_plan_tensor, name));
        out->offsets[t - plan->tensors] = desc[i].file_offset;
    }

    /* A partial file is never trusted (nor a symlink planted in its place):
     * remove it and create a fresh one. */
    if (unlink(out->tmp_path) != 0 && errno != ENOENT) {
        st = tc_fail(TC_E_IO, "%s: cannot remove stale partial file: %s", out->tmp_path,
                     strerror(errno));
        goto done;
    }
    /* Read-write: the hashing thread reads the written blocks back. */
    out->partial_slot = partial_track(out->tmp_path);
    out->fd = open(out->tmp_path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (out->fd < 0) {
        st = tc_fail(TC_E_IO, "%s: cannot create output file: %s", out->tmp_path,
                     strerror(errno));
        goto done;
    }
    if (out->file_size > 0 && fallocate(out->fd, 0, 0, (off_t)out->file_size) != 0) {
        if (errno == ENOSPC || errno == EDQUOT) {
            st = tc_fail(TC_E_IO, "%s: not enough free disk space for %llu bytes: %s",
                         out->tmp_path, (unsigned long long)out->file_size, strerror(errno));
            goto done;
        }
        /* Filesystems without fallocate: size the file; ENOSPC comes at write. */
        if (ftruncate(out->fd, (off_t)out->file_size) != 0) {
            st = tc_fail(TC_E_IO, "%s: cannot size the file to %llu bytes: %s", out->tmp_path,
                         (unsigned long long)out->file_size, strerror(errno));
            goto done;
        }
    }
    st = hasher_start(out);
    if (st == TC_OK)
        st = tc_cell_write(out, prefix, prefix_len, 0);
done:
    free(prefix);
    free(desc);
    if (st != TC_OK)
        tc_cell_discard(out);
    return st;
}

void tc_cell_discard(tc_cell_output *out)
{
    if (out->hasher)
        (void)hasher_finish(out, true, NULL);
    if (out->fd >= 0) {
        close(out->fd);
        out->fd = -1;
        if (out->tmp_path)
            unlink(out->tmp_path);
    }
    partial_untrack(out->partial_slot);
    out->partial_slot = 0;
    free(out->tmp_path);
    free(out->final_path);
    free(out->offsets);
    out->tmp_path = out->final_path = NULL;
    out->offsets = NULL;
}

tc_status tc_file_publish(int fd, const char *tmp_path, const char *final_path)
{
    tc_status st = TC_OK;
    if (fsync(fd) != 0) {
        st = tc_fail(TC_E_IO, "%s: fsync failed: %s", tmp_path, strerror(errno));
        close(fd);
    } else if (close(fd) != 0) {
        st = tc_fail(TC_E_IO, "%s: close failed: %s", tmp_path, strerror(errno));
    } else if (rename(tmp_path, final_path) != 0) {
        st = tc_fail(TC_E_IO, "%s: rename to %s failed: %s", tmp_path, final_path,
                     strerror(errno));
    }
    if (st != TC_OK)
        unlink(tmp_path);
    return st;
}

/* The finished partial file, read back through the validating reader: the
 * header parses, covers the file exactly and lists the planned tensors. */
static tc_status check_written_file(const tc_cell_output *out)
{
    tc_st_file *f = NULL;
    tc_st_error err = TC_ST_OK;
    tc_status st = tc_st_open(out->tmp_path, &f, &err);
    if (st != TC_OK)
        return tc_fail(TC_E_INTERNAL, "%s: the file just written does not read back (%s)",
                       out->tmp_path, tc_st_error_name(err));
    if (f->n_tensors != out->plan->n_tensors || f->file_size != out->file_size)
        st = tc_fail(TC_E_INTERNAL, "%s: read back %zu tensors / %llu bytes, planned %zu / %llu",
                     out->tmp_path, f->n_tensors, (unsigned long long)f->file_size,
                     out->plan->n_tensors, (unsigned long long)out->file_size);
    tc_st_close(f);
    return st;
}

tc_status tc_cell_commit(tc_cell_output *out)
{
    uint64_t gap_off = 0;
    uint32_t have = 0, want = 0;
    tc_status st = TC_OK;
    if (out->hasher && hasher_gap(out->hasher, &gap_off, &have, &want))
        st = tc_fail(TC_E_INTERNAL, "%s: %u of the %u bytes at offset %llu were written "
                     "(every byte must be written exactly once)", out->tmp_path, have, want,
                     (unsigned long long)gap_off);
    else if (out->hasher && atomic_load(&out->hasher->overwritten))
        st = tc_fail(TC_E_INTERNAL, "%s: some bytes were written twice", out->tmp_path);
    char digest[TC_SHA256_HEX];
    const double t0 = tc_now_seconds();
    tc_status hs = out->hasher ? hasher_finish(out, st != TC_OK, digest)
                               : tc_fail(TC_E_INTERNAL, "%s: no hash", out->tmp_path);
    const double t_hash = tc_now_seconds() - t0;
    if (st == TC_OK)
        st = hs;
    if (st == TC_OK)
        st = check_written_file(out);
    if (st != TC_OK) {
        tc_cell_discard(out);
        return st;
    }
    const double t1 = tc_now_seconds();
    st = tc_file_publish(out->fd, out->tmp_path, out->final_path);
    out->fd = -1; /* closed, and the partial file is gone on failure */
    if (st == TC_OK) {
        memcpy(out->sha256, digest, TC_SHA256_HEX);
        out->committed = true;
        /* Where a slow commit's time goes: the last chunks' hashing, or the
         * disk catching up with the page cache. */
        tc_log(TC_LOG_VERBOSE, "%s: committed (waited %.2f s for the hash, %.2f s for fsync and "
               "rename)", out->final_path, t_hash, tc_now_seconds() - t1);
    }
    tc_cell_discard(out);
    return st;
}
