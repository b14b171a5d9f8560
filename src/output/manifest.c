/* manifest.c: run fingerprints, rank records and the output manifest
 * (formats in manifest.h). */
#define _GNU_SOURCE /* O_NOFOLLOW, struct stat st_mtim */
#include "trtconv/output/manifest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "trtconv/convert/convert.h"
#include "trtconv/core/fsutil.h"
#include "trtconv/model/hf_model.h"
#include "trtconv/core/jsonutil.h"
#include "trtconv/core/log.h"
#include "trtconv/formats/safetensors.h"
#include "trtconv/output/rankfile.h"

#define RECORD_MAX_BYTES 4096
#define HASH_READ_BYTES (4u << 20)

/* ---- canonical run text ---- */

void tc_run_text_init(tc_run_text *r) { memset(r, 0, sizeof *r); }

void tc_run_text_free(tc_run_text *r)
{
    free(r->text);
    memset(r, 0, sizeof *r);
}

static tc_status run_append(tc_run_text *r, const char *s, size_t n)
{
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 1024;
        while (cap < r->len + n + 1)
            cap *= 2;
        char *t = realloc(r->text, cap);
        if (!t)
            return tc_fail(TC_E_INTERNAL, "out of memory");
        r->text = t;
        r->cap = cap;
    }
    memcpy(r->text + r->len, s, n);
    r->len += n;
    r->text[r->len] = '\0';
    return TC_OK;
}

tc_status tc_run_param(tc_run_text *r, const char *key, const char *fmt, ...)
{
    char value[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(value, sizeof value, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof value)
        return tc_fail(TC_E_INTERNAL, "run parameter %s: value too long", key);
    TC_TRY(run_append(r, key, strlen(key)));
    TC_TRY(run_append(r, " ", 1));
    TC_TRY(run_append(r, value, (size_t)n));
    return run_append(r, "\n", 1);
}

tc_status tc_run_input(tc_run_text *r, const char *line)
{
    TC_TRY(run_append(r, line, strlen(line)));
    return run_append(r, "\n", 1);
}

void tc_run_seal(tc_run_text *r)
{
    tc_sha256_hex_of(r->text ? r->text : "", r->len, r->run);
}

/* ---- hashing files ---- */

/* Add bytes [off, off + len) of fd to h, reading through buf
 * (HASH_READ_BYTES). *done gets the bytes hashed: fewer than len when the
 * file ends first (the callers compare sizes). */
static tc_status hash_range(tc_sha256 *h, int fd, const char *path, uint64_t off, uint64_t len,
                            uint8_t *buf, uint64_t *done)
{
    uint64_t at = 0;
    while (at < len) {
        size_t want = len - at < HASH_READ_BYTES ? (size_t)(len - at) : HASH_READ_BYTES;
        ssize_t got = pread(fd, buf, want, (off_t)(off + at));
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return tc_fail(TC_E_IO, "%s: read at offset %llu failed: %s", path,
                           (unsigned long long)(off + at), strerror(errno));
        if (got == 0)
            break;
        tc_sha256_update(h, buf, (size_t)got);
        at += (uint64_t)got;
    }
    *done = at;
    return TC_OK;
}

static tc_status hash_fd(int fd, const char *path, uint64_t limit, char hex[TC_SHA256_HEX],
                         uint64_t *hashed)
{
    uint8_t *buf = malloc(HASH_READ_BYTES);
    if (!buf)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    tc_sha256 h = { .scalar_only = false };
    tc_sha256_init(&h);
    uint64_t done = 0;
    tc_status st = hash_range(&h, fd, path, 0, limit, buf, &done);
    free(buf);
    if (st == TC_OK) {
        uint8_t d[TC_SHA256_BYTES];
        tc_sha256_final(&h, d);
        tc_sha256_hex(d, hex);
        if (hashed)
            *hashed = done;
    }
    return st;
}

/* ---- the chunked digest of a whole file, on several threads ---- */

typedef struct tree_job {
    int fd;
    const char *path;
    uint64_t size, n_chunks;
    atomic_uint_fast64_t next;
    uint8_t (*digests)[TC_SHA256_BYTES];
    pthread_mutex_t mu;
    tc_status st;
} tree_job;

static void *tree_worker(void *arg)
{
    tree_job *j = arg;
    uint8_t *buf = malloc(HASH_READ_BYTES);
    tc_status st = buf ? TC_OK : tc_fail(TC_E_INTERNAL, "out of memory");
    for (;;) {
        uint64_t c = atomic_fetch_add(&j->next, 1);
        if (st != TC_OK || c >= j->n_chunks)
            break;
        const uint64_t begin = c * TC_SHA256_TREE_CHUNK;
        const uint64_t end = begin + TC_SHA256_TREE_CHUNK < j->size ? begin + TC_SHA256_TREE_CHUNK
                                                                      : j->size;
        tc_sha256 h = { .scalar_only = false };
        tc_sha256_init(&h);
        for (uint64_t off = begin; off < end && st == TC_OK;) {
            size_t want = end - off < HASH_READ_BYTES ? (size_t)(end - off) : HASH_READ_BYTES;
            ssize_t got = pread(j->fd, buf, want, (off_t)off);
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0)
                st = tc_fail(TC_E_IO, "%s: read at offset %llu failed: %s", j->path,
                             (unsigned long long)off, got < 0 ? strerror(errno) : "end of file");
            else {
                tc_sha256_update(&h, buf, (size_t)got);
                off += (uint64_t)got;
            }
        }
        if (st == TC_OK)
            tc_sha256_final(&h, j->digests[c]);
    }
    free(buf);
    if (st != TC_OK) {
        pthread_mutex_lock(&j->mu);
        if (j->st == TC_OK)
            j->st = st;
        pthread_mutex_unlock(&j->mu);
        atomic_store(&j->next, j->n_chunks); /* the others stop */
    }
    return NULL;
}

tc_status tc_sha256_tree_file(const char *path, int threads, char hex[TC_SHA256_HEX],
                              uint64_t *size)
{
    int fd = -1;
    TC_TRY(tc_open_input(path, NULL, &fd));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return tc_fail(TC_E_IO, "%s: cannot stat: %s", path, strerror(errno));
    }
    tree_job j;
    memset(&j, 0, sizeof j);
    j.fd = fd;
    j.path = path;
    j.size = (uint64_t)sb.st_size;
    j.n_chunks = (j.size + TC_SHA256_TREE_CHUNK - 1) / TC_SHA256_TREE_CHUNK;
    atomic_init(&j.next, 0);
    j.digests = calloc(j.n_chunks ? j.n_chunks : 1, sizeof *j.digests);
    pthread_mutex_init(&j.mu, NULL);
    tc_status st = j.digests ? TC_OK : tc_fail(TC_E_INTERNAL, "out of memory");
    if (threads < 1)
        threads = 1;
    if ((uint64_t)threads > j.n_chunks)
        threads = j.n_chunks ? (int)j.n_chunks : 1;
    pthread_t tid[64];
    int started = 0;
    for (int t = 1; st == TC_OK && t < threads && t < 64; t++)
        if (pthread_create(&tid[started], NULL, tree_worker, &j) == 0)
            started++;
    if (st == TC_OK)
        tree_worker(&j);
    for (int t = 0; t < started; t++)
        pthread_join(tid[t], NULL);
    if (st == TC_OK)
        st = j.st;
    if (st == TC_OK) {
        tc_sha256_tree_combine((const uint8_t(*)[TC_SHA256_BYTES])j.digests, j.n_chunks, hex);
        if (size)
            *size = j.size;
    }
    pthread_mutex_destroy(&j.mu);
    free(j.digests);
    close(fd);
    return st;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* SHA-256 of TC_FP_SAMPLES blocks of TC_FP_SAMPLE_BYTES spread evenly over
 * [0, size), the first at 0 and the last ending at size (the whole file
 * when it is smaller than all the blocks together). */
#define TC_FP_SAMPLES 16
#define TC_FP_SAMPLE_BYTES (64u << 10)

static tc_status hash_samples(int fd, const char *path, uint64_t size, char hex[TC_SHA256_HEX])
{
    const uint64_t total = (uint64_t)TC_FP_SAMPLES * TC_FP_SAMPLE_BYTES;
    if (size <= total)
        return hash_fd(fd, path, size, hex, NULL);
    uint8_t *buf = malloc(HASH_READ_BYTES);
    if (!buf)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    tc_sha256 h = { .scalar_only = false };
    tc_sha256_init(&h);
    tc_status st = TC_OK;
    for (uint64_t k = 0; st == TC_OK && k < TC_FP_SAMPLES; k++) {
        const uint64_t off = k * (size - TC_FP_SAMPLE_BYTES) / (TC_FP_SAMPLES - 1);
        uint64_t done = 0;
        st = hash_range(&h, fd, path, off, TC_FP_SAMPLE_BYTES, buf, &done);
        if (st == TC_OK && done != TC_FP_SAMPLE_BYTES)
            st = tc_fail(TC_E_IO, "%s: ended at offset %llu, before its size %llu", path,
                         (unsigned long long)(off + done), (unsigned long long)size);
    }
    free(buf);
    if (st == TC_OK) {
        uint8_t d[TC_SHA256_BYTES];
        tc_sha256_final(&h, d);
        tc_sha256_hex(d, hex);
    }
    return st;
}

tc_status tc_input_fingerprint(const char *dir, const char *name, bool full,
                               char line[TC_INPUT_LINE])
{
    char path[4096];
    /* One line per input: only a newline (or a name too long for the line)
     * would break the canonical text. */
    if (strlen(name) > 400 || strchr(name, '\n'))
        return tc_fail(TC_E_INPUT, "%s: input file name unusable in a fingerprint (newline or "
                       "over 400 bytes)", name);
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return tc_fail(TC_E_USAGE, "%s/%s: path too long", dir, name);
    int fd = -1;
    TC_TRY(tc_open_input(path, NULL, &fd));
    struct stat sb;
    tc_status st = TC_OK;
    if (fstat(fd, &sb) != 0) {
        st = tc_fail(TC_E_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto done;
    }
    const uint64_t size = (uint64_t)sb.st_size;
    uint64_t limit = size;
    const bool header_only = !full && ends_with(name, ".safetensors");
    if (header_only) {
        /* The header names every tensor's dtype, shape and offsets: with the
         * size and mtime it identifies a shard without reading its data. */
        uint8_t n8[8];
        uint64_t n = 0;
        if (size >= 8 && pread(fd, n8, 8, 0) == 8) {
            for (int i = 7; i >= 0; i--)
                n = n << 8 | n8[i];
        }
        limit = n <= TC_ST_MAX_HEADER && 8 + n <= size ? 8 + n : (size < 8 ? size : 8);
    }
    char hex[TC_SHA256_HEX], sample[TC_SHA256_HEX] = "";
    st = hash_fd(fd, path, limit, hex, NULL);
    /* Beyond size and mtime (which a user can set back with touch -d): the
     * inode and ctime, which no user can set (any write, truncate, rename
     * over the file or utimensat moves ctime to now), and a hash of sampled
     * data blocks. docs/durability.md states what this catches. */
    if (st == TC_OK && header_only)
        st = hash_samples(fd, path, size, sample);
    if (st == TC_OK)
        snprintf(line, TC_INPUT_LINE,
                 "input %s size=%llu mtime_ns=%lld ctime_ns=%lld ino=%llu %s=%s%s%s", name,
                 (unsigned long long)size,
                 (long long)sb.st_mtim.tv_sec * 1000000000LL + sb.st_mtim.tv_nsec,
                 (long long)sb.st_ctim.tv_sec * 1000000000LL + sb.st_ctim.tv_nsec,
                 (unsigned long long)sb.st_ino, header_only ? "header_sha256" : "sha256", hex,
                 header_only ? " sample_sha256=" : "", sample);
done:
    close(fd);
    return st;
}

/* ---- durable small files ---- */

tc_status tc_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return tc_fail(TC_E_IO, "%s: cannot open directory for fsync: %s", dir, strerror(errno));
    tc_status st = TC_OK;
    if (fsync(fd) != 0 && errno != EINVAL)
        st = tc_fail(TC_E_IO, "%s: directory fsync failed: %s", dir, strerror(errno));
    close(fd);
    return st;
}

tc_status tc_write_file_durable(const char *dir, const char *name, const char *text)
{
    return tc_write_bytes_durable(dir, name, text, strlen(text));
}

tc_status tc_write_bytes_durable(const char *dir, const char *name, const void *data, size_t n)
{
    char tmp[4200], final[4200];
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name);
    snprintf(final, sizeof final, "%s/%s", dir, name);
    if (unlink(tmp) != 0 && errno != ENOENT)
        return tc_fail(TC_E_IO, "%s: cannot remove stale temporary file: %s", tmp,
                       strerror(errno));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return tc_fail(TC_E_IO, "%s: cannot create: %s", tmp, strerror(errno));
    tc_status st = tc_pwrite_all(fd, tmp, data, n, 0);
    if (st != TC_OK) {
        close(fd);
        unlink(tmp);
        return st;
    }
    TC_TRY(tc_file_publish(fd, tmp, final));
    return tc_fsync_dir(dir);
}

/* ---- rank records ---- */

static bool is_hex64(const char *s)
{
    if (!s || strlen(s) != 64)
        return false;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static cJSON *entry_json(const tc_rank_entry *e)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddNumberToObject(o, "rank", e->rank);
    cJSON_AddStringToObject(o, "file", e->file);
    cJSON_AddNumberToObject(o, "size", (double)e->size);
    cJSON_AddStringToObject(o, "sha256_tree", e->sha256);
    cJSON_AddNumberToObject(o, "tensors", (double)e->tensors);
    return o;
}

tc_status tc_rank_record_write(const char *dir, const char *run, const tc_rank_entry *e)
{
    cJSON *o = entry_json(e);
    if (!o)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    cJSON *fmt = cJSON_CreateString("trtconv-rank-record");
    cJSON_AddItemToObject(o, "format", fmt);
    cJSON_AddNumberToObject(o, "version", 1);
    cJSON_AddStringToObject(o, "run", run);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    char name[64];
    snprintf(name, sizeof name, ".trtconv-rank%d.json", e->rank);
    tc_status st = tc_write_file_durable(dir, name, text);
    free(text);
    return st;
}

bool tc_rank_entry_parse(const cJSON *o, tc_rank_entry *e, char *why, size_t n)
{
    int64_t rank, size, tensors;
    const cJSON *file = tc_json_get(o, "file"), *sha = tc_json_get(o, "sha256_tree");
    if (!tc_json_int(tc_json_get(o, "rank"), 0, 1 << 20, &rank) ||
        !tc_json_int(tc_json_get(o, "size"), 0, INT64_C(1) << 53, &size) ||
        !tc_json_int(tc_json_get(o, "tensors"), 0, INT64_C(1) << 40, &tensors) ||
        !cJSON_IsString(sha) || !is_hex64(sha->valuestring) || !cJSON_IsString(file)) {
        snprintf(why, n, "rank/file/size/sha256_tree/tensors missing or malformed");
        return false;
    }
    long cells = -1;
    if (strlen(file->valuestring) >= sizeof e->file ||
        tc_cell_file_index(file->valuestring, &cells) != (long)rank) {
        snprintf(why, n, "file \"%.80s\" is not the name of cell %lld (rank%lld.safetensors or "
                 "model-%05lld-of-NNNNN.safetensors)", file->valuestring, (long long)rank,
                 (long long)rank, (long long)rank + 1);
        return false;
    }
    snprintf(e->file, sizeof e->file, "%s", file->valuestring);
    e->rank = (int)rank;
    e->size = (uint64_t)size;
    e->tensors = (uint64_t)tensors;
    memcpy(e->sha256, sha->valuestring, TC_SHA256_HEX);
    return true;
}

bool tc_rank_reusable(const char *dir, const char *run, int rank, const char *file,
                      uint64_t n_tensors, tc_rank_entry *e, char *why, size_t n)
{
    char path[4200], *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/.trtconv-rank%d.json", dir, rank);
    struct stat sb;
    if (lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        snprintf(why, n, "no record of an earlier run");
        return false;
    }
    tc_log_push_quiet();
    tc_status st = tc_read_small_file(path, RECORD_MAX_BYTES, &text, &len);
    tc_log_pop_quiet();
    if (st != TC_OK) {
        snprintf(why, n, "record unreadable");
        return false;
    }
    cJSON *o = tc_json_parse(NULL, text, len);
    free(text);
    bool ok = false;
    const cJSON *fmt = tc_json_get(o, "format"), *r = tc_json_get(o, "run");
    int64_t version = 0;
    if (!o || !cJSON_IsString(fmt) || strcmp(fmt->valuestring, "trtconv-rank-record") != 0 ||
        !tc_json_int(tc_json_get(o, "version"), 1, 1, &version) || !cJSON_IsString(r)) {
        snprintf(why, n, "record malformed");
    } else if (!tc_rank_entry_parse(o, e, why, n)) {
        /* why set */
    } else if (e->rank != rank || strcmp(e->file, file) != 0) {
        snprintf(why, n, "record names %s", e->file);
    } else if (strcmp(r->valuestring, run) != 0) {
        snprintf(why, n, "written with other inputs or options");
    } else if (e->tensors != n_tensors) {
        snprintf(why, n, "records %llu tensors, this run plans %llu",
                 (unsigned long long)e->tensors, (unsigned long long)n_tensors);
    } else {
        ok = true;
    }
    cJSON_Delete(o);
    if (!ok)
        return false;

    snprintf(path, sizeof path, "%s/%s", dir, file);
    if (lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode) || (uint64_t)sb.st_size != e->size) {
        snprintf(why, n, "%s missing or not %llu bytes", file, (unsigned long long)e->size);
        return false;
    }
    tc_st_file *f = NULL;
    tc_log_push_quiet();
    st = tc_st_open(path, &f, NULL);
    tc_log_pop_quiet();
    if (st != TC_OK || f->n_tensors != n_tensors) {
        snprintf(why, n, "%s does not parse as planned", file);
        tc_st_close(f);
        return false;
    }
    tc_st_close(f);
    char hex[TC_SHA256_HEX];
    uint64_t size = 0;
    tc_log_push_quiet();
    st = tc_sha256_tree_file(path, TC_HASH_THREADS, hex, &size);
    tc_log_pop_quiet();
    if (st != TC_OK || size != e->size || strcmp(hex, e->sha256) != 0) {
        snprintf(why, n, "%s does not have the recorded SHA-256 digest", file);
        return false;
    }
    return true;
}

/* A cell file (rankfile.h tc_cell_file_index: *cells its shard count, -1
 * for a rank file) or .trtconv-rank{r}.json: r, else -1. */
static long output_file_rank(const char *name, bool *is_record, long *cells)
{
    *cells = -1;
    *is_record = strncmp(name, ".trtconv-rank", 13) == 0;
    if (!*is_record)
        return tc_cell_file_index(name, cells);
    const char *p = name + 13;
    if (*p < '0' || *p > '9')
        return -1;
    char *end;
    long r = strtol(p, &end, 10);
    return strcmp(end, ".json") == 0 && r >= 0 ? r : -1;
}

tc_status tc_output_clear_stale(const char *dir, int64_t world, tc_cell_naming naming,
                                bool keep_records)
{
    DIR *d = opendir(dir);
    if (!d)
        return tc_fail(TC_E_IO, "%s: cannot list: %s", dir, strerror(errno));
    tc_status st = TC_OK;
    bool changed = false;
    struct dirent *de;
    while (st == TC_OK && (de = readdir(d)) != NULL) {
        bool is_record = false;
        long shards = -1;
        long r = output_file_rank(de->d_name, &is_record, &shards);
        /* A cell file of the other naming is another format's: stale too. */
        const bool other = !is_record && (shards >= 0) != (naming == TC_CELLS_HF_SHARDS);
        bool drop = strcmp(de->d_name, TC_MANIFEST_NAME) == 0 ||
                    (r >= 0 && (r >= world || other || (is_record && !keep_records) ||
                                (shards >= 0 && shards != world)));
        if (!drop)
            continue;
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (unlink(path) != 0 && errno != ENOENT)
            st = tc_fail(TC_E_IO, "%s: cannot remove (left by an earlier run): %s", path,
                         strerror(errno));
        changed = true;
    }
    closedir(d);
    if (st == TC_OK && changed)
        st = tc_fsync_dir(dir);
    return st;
}

/* ---- manifest ---- */

tc_status tc_manifest_write(const char *dir, const char *tool_version, const tc_run_text *run,
                            int64_t world, int64_t tp, int64_t pp, const char *config_text,
                            const tc_rank_entry *entries)
{
    cJSON *m = cJSON_CreateObject(), *params = cJSON_CreateObject(),
          *inputs = cJSON_CreateArray(), *files = cJSON_CreateArray();
    tc_status st = TC_OK;
    if (!m || !params || !inputs || !files) {
        cJSON_Delete(m); cJSON_Delete(params); cJSON_Delete(inputs); cJSON_Delete(files);
        return tc_fail(TC_E_INTERNAL, "out of memory");
    }
    char tool[64], config_hex[TC_SHA256_HEX];
    snprintf(tool, sizeof tool, "trtconv %s", tool_version);
    tc_sha256_hex_of(config_text, strlen(config_text), config_hex);
    cJSON_AddStringToObject(m, "format", "trtconv-manifest");
    cJSON_AddNumberToObject(m, "version", 1);
    cJSON_AddStringToObject(m, "tool", tool);
    cJSON_AddStringToObject(m, "run", run->run);
    cJSON_AddStringToObject(m, "digest", "sha256_tree = SHA-256 of the concatenated SHA-256 of "
                            "each 64 MiB chunk of the file (sha256.h)");
    cJSON_AddNumberToObject(m, "world_size", (double)world);
    cJSON_AddNumberToObject(m, "tp_size", (double)tp);
    cJSON_AddNumberToObject(m, "pp_size", (double)pp);
    /* The canonical text, split back into its two kinds of lines. */
    const char *p = run->text ? run->text : "";
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char line[TC_INPUT_LINE + 64];
        if (len >= sizeof line)
            len = sizeof line - 1;
        memcpy(line, p, len);
        line[len] = '\0';
        if (strncmp(line, "input ", 6) == 0) {
            cJSON_AddItemToArray(inputs, cJSON_CreateString(line + 6));
        } else {
            char *sp = strchr(line, ' ');
            if (sp) {
                *sp = '\0';
                cJSON_AddStringToObject(params, line, sp + 1);
            }
        }
        p += len + (nl ? 1 : 0);
    }
    cJSON_AddItemToObject(m, "parameters", params);
    cJSON_AddItemToObject(m, "inputs", inputs);
    cJSON_AddStringToObject(m, "config_sha256", config_hex);
    for (int64_t r = 0; r < world; r++)
        cJSON_AddItemToArray(files, entry_json(&entries[r]));
    cJSON_AddItemToObject(m, "files", files);
    char *text = cJSON_Print(m);
    cJSON_Delete(m);
    if (!text)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    st = tc_write_file_durable(dir, TC_MANIFEST_NAME, text);
    free(text);
    return st;
}
