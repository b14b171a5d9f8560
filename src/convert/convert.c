/* convert.c: read slices, convert dtypes, pwrite into the rank files.
 * See convert.h for the output protocol and the memory bound. */
#define _GNU_SOURCE /* fallocate */
#include "trtconv/convert/convert.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "trtconv/core/log.h"
#include "trtconv/formats/safetensors.h"
#include "trtconv/core/sha256.h"
#include "trtconv/output/manifest.h"
#include "trtconv/quant/woq.h"
#include "trtconv/build_config.h"
#if TRTCONV_HAVE_CUDA
#include <cuda_runtime_api.h>
#include "trtconv/kernels/woq.h"
#endif

static char *join_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

tc_status tc_pwrite_all(int fd, const char *path, const void *buf, size_t n, uint64_t off)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return tc_fail(TC_E_IO, "%s: write of %zu bytes at offset %llu failed: %s", path, n,
                           (unsigned long long)off, strerror(errno));
        }
        if (w == 0)
            return tc_fail(TC_E_IO, "%s: write returned 0 at offset %llu", path,
                           (unsigned long long)off);
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return TC_OK;
}

/* ---- hashing the rank file while it is written ----------------------
 *
 * The manifest records each rank file's sha256_tree digest (sha256.h): the
 * SHA-256 of every 64 MiB chunk, combined. Every write adds its length to
 * the counters of the chunks it overlaps; TC_HASH_THREADS threads per file
 * take the chunks in file order, wait until theirs is complete, read it
 * back (from the page cache: it was just written) and hash it. Hashing so
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
    uint64_t next_chunk;         /* under mu */
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
        pthread_mutex_lock(&h->mu);
        const uint64_t b = h->next_chunk < h->n_chunks ? h->next_chunk++ : UINT64_MAX;
        if (b != UINT64_MAX)
            while (atomic_load(&h->written[b]) < hash_chunk_len(h, b) && !atomic_load(&h->stop))
                pthread_cond_wait(&h->cv, &h->mu);
        pthread_mutex_unlock(&h->mu);
        if (b == UINT64_MAX)
            break;
        if (atomic_load(&h->written[b]) < hash_chunk_len(h, b))
            st = TC_E_CANCELLED;
        else
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
    if (!h->written || !h->digests) {
        free(h->written);
        free(h->digests);
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

tc_status tc_cell_open(const char *dir, tc_plan *plan, tc_cell_output *out)
{
    tc_status st = TC_OK;
    tc_st_out_tensor *desc = NULL;
    char *prefix = NULL;
    size_t prefix_len = 0;
    char name[64];

    memset(out, 0, sizeof *out);
    out->fd = -1;
    out->plan = plan;
    snprintf(name, sizeof name, "rank%d.safetensors", plan->rank);
    out->final_path = join_path(dir, name);
    snprintf(name, sizeof name, ".rank%d.safetensors.partial", plan->rank);
    out->tmp_path = join_path(dir, name);
    out->offsets = calloc(plan->n_tensors ? plan->n_tensors : 1, sizeof *out->offsets);
    desc = calloc(plan->n_tensors ? plan->n_tensors : 1, sizeof *desc);
    if (!out->final_path || !out->tmp_path || !out->offsets || !desc) {
        st = tc_fail(TC_E_INTERNAL, "out of memory opening the output of rank %d", plan->rank);
        goto done;
    }
    tc_plan_out_tensors(plan, desc);
    st = tc_st_layout(desc, plan->n_tensors, &prefix, &prefix_len, &out->file_size);
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
    tc_status hs = out->hasher ? hasher_finish(out, st != TC_OK, digest)
                               : tc_fail(TC_E_INTERNAL, "%s: no hash", out->tmp_path);
    if (st == TC_OK)
        st = hs;
    if (st == TC_OK)
        st = check_written_file(out);
    if (st != TC_OK) {
        tc_cell_discard(out);
        return st;
    }
    st = tc_file_publish(out->fd, out->tmp_path, out->final_path);
    out->fd = -1; /* closed, and the partial file is gone on failure */
    if (st == TC_OK) {
        memcpy(out->sha256, digest, TC_SHA256_HEX);
        out->committed = true;
    }
    tc_cell_discard(out);
    return st;
}

static uint64_t source_width(const tc_st_tensor *t)
{
    return t->ndim >= 2 ? (uint64_t)t->shape[1] : 1;
}

tc_status tc_convert_rows(const tc_plan_tensor *t, int64_t row0, int64_t rows, void *dst,
                          void *scratch)
{
    if (t->rope) {
        tc_rope_fill(t->rope_tables, t->rope, row0, rows, dst);
        return TC_OK;
    }
    const size_t oes = tc_dtype_bits(t->slice_dtype) / 8;
    const uint64_t cols = (uint64_t)t->cols;
    for (size_t k = 0; k < t->n_pieces; k++) {
        const tc_piece *pc = &t->pieces[k];
        int64_t a = pc->dst_row > row0 ? pc->dst_row : row0;
        int64_t b = pc->dst_row + pc->rows < row0 + rows ? pc->dst_row + pc->rows : row0 + rows;
        if (a >= b)
            continue;
        const uint64_t n = (uint64_t)(b - a);
        const uint64_t pcols = (uint64_t)pc->cols;
        char *out = (char *)dst + ((uint64_t)(a - row0) * cols + (uint64_t)pc->dst_col) * oes;
        if (!pc->src) {
            for (uint64_t j = 0; j < n; j++)
                memset(out + j * cols * oes, 0, pcols * oes);
            continue;
        }
        const tc_st_tensor *s = pc->src;
        const size_t ses = tc_dtype_bits(s->dtype) / 8;
        const uint64_t width = source_width(s);
        const uint64_t step = (uint64_t)pc->src_row_step;
        const uint64_t srow = (uint64_t)pc->src_row + (uint64_t)(a - pc->dst_row) * step;
        const bool same = s->dtype == t->slice_dtype;
        if (pc->src_col == 0 && pcols == width && pcols == cols && step == 1) {
            /* Whole rows, contiguous in the source and in the slice. */
            char *land = same ? out : (char *)scratch;
            tc_status st = tc_st_read(pc->src_file, s->begin + srow * width * ses, land,
                                      n * cols * ses);
            if (st != TC_OK)
                return st;
            if (!same)
                tc_convert(out, t->slice_dtype, scratch, s->dtype, n * cols);
            continue;
        }
        /* A column slice, a strided row run or a piece beside others: one
         * contiguous run per row. */
        for (uint64_t j = 0; j < n; j++) {
            uint64_t off = s->begin + ((srow + j * step) * width + (uint64_t)pc->src_col) * ses;
            char *row_out = out + j * cols * oes;
            tc_status st = tc_st_read(pc->src_file, off, same ? row_out : (char *)scratch,
                                      pcols * ses);
            if (st != TC_OK)
                return st;
            if (!same)
                tc_convert(row_out, t->slice_dtype, scratch, s->dtype, pcols);
        }
    }
    return TC_OK;
}

typedef struct work_item {
    uint32_t cell;
    uint32_t tensor;
    int64_t row0, rows;
    uint64_t file_pos;   /* where its bytes start in the cell's file */
} work_item;

/* Items run in file order (then cell), so each file fills from its start
 * and its hashing thread (above) can follow the writes instead of waiting
 * for the tensor that happens to be first in the file. */
static int cmp_item_file_order(const void *a, const void *b)
{
    const work_item *x = a, *y = b;
    if (x->file_pos != y->file_pos)
        return x->file_pos < y->file_pos ? -1 : 1;
    return x->cell < y->cell ? -1 : x->cell > y->cell;
}

struct tc_convert_job {
    tc_cell_output *cells;
    size_t n_cells;
    work_item *items;
    size_t n_items;
    _Atomic size_t next;
    size_t buf_bytes;          /* per-worker buffer size */
    tc_progress *progress;
    const tc_gpu_info *gpu;    /* NULL: quantize on the CPU */
    int n_workers;
    pthread_t *threads;
    int n_started;
    atomic_int running;
    pthread_mutex_t lock;
    tc_status first_error;
};

static void job_record_error(tc_convert_job *job, tc_status st)
{
    pthread_mutex_lock(&job->lock);
    if (job->first_error == TC_OK)
        job->first_error = st;
    pthread_mutex_unlock(&job->lock);
    atomic_store(&job->progress->cancel, 1);
}

/* ---- GPU staging for weight-only quantization -------------------------- */

typedef struct gpu_worker {
    void *stream;          /* cudaStream_t */
    void *d_in;            /* device copy of the slice rows */
    uint8_t *d_out;        /* device quantized rows + scales */
    size_t buf_bytes;
} gpu_worker;

#if TRTCONV_HAVE_CUDA
/* Each worker owns a stream and device buffers; its host slice and output
 * buffers are pinned so the copies run at PCIe speed (pageable copies are
 * ~7x slower, performance-anchors.md §4.2). */
static tc_status gpu_worker_init(gpu_worker *g, const tc_gpu_info *gpu, size_t buf_bytes,
                                 void **h_slice, uint8_t **h_out)
{
    tc_status st = tc_gpu_use(gpu);
    if (st != TC_OK)
        return st;
    g->buf_bytes = buf_bytes;
    cudaStream_t s = NULL;
    cudaError_t e = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    if (e == cudaSuccess)
        e = cudaMalloc(&g->d_in, buf_bytes);
    if (e == cudaSuccess)
        e = cudaMalloc((void **)&g->d_out, buf_bytes / 2);
    if (e == cudaSuccess)
        e = cudaMallocHost(h_slice, buf_bytes);
    if (e == cudaSuccess)
        e = cudaMallocHost((void **)h_out, buf_bytes / 2);
    g->stream = s;
    if (e != cudaSuccess)
        return tc_fail(TC_E_INTERNAL, "GPU %d: cannot set up worker buffers (%zu bytes): %s",
                       gpu->device, buf_bytes, cudaGetErrorString(e));
    return TC_OK;
}

static void gpu_worker_free(gpu_worker *g, void *h_slice, uint8_t *h_out)
{
    if (h_slice)
        cudaFreeHost(h_slice);
    if (h_out)
        cudaFreeHost(h_out);
    cudaFree(g->d_in);
    cudaFree(g->d_out);
    if (g->stream)
        cudaStreamDestroy((cudaStream_t)g->stream);
}

static tc_status gpu_quantize_rows(gpu_worker *g, const void *h_slice, const tc_plan_tensor *t,
                                   int64_t rows, int sm, int64_t n0, uint8_t *h_q, uint8_t *h_scales)
{
    cudaStream_t s = (cudaStream_t)g->stream;
    const size_t ses = tc_dtype_bits(t->slice_dtype) / 8;
    const size_t in_bytes = (size_t)rows * (size_t)t->cols * ses;
    const size_t q_bytes = (size_t)rows * (size_t)t->cols * (size_t)t->woq_bits / 8;
    const size_t s_off = (size_t)(h_scales - h_q);
    cudaError_t e = cudaMemcpyAsync(g->d_in, h_slice, in_bytes, cudaMemcpyHostToDevice, s);
    if (e != cudaSuccess)
        return tc_fail(TC_E_INTERNAL, "%s: copy to the GPU failed: %s", t->name, cudaGetErrorString(e));
    tc_status st = tc_woq_quantize_rows_cuda(g->d_in, t->slice_dtype, rows, t->cols, t->woq_bits,
                                             sm, n0, g->d_out, g->d_out + s_off, g->stream);
    if (st != TC_OK)
        return st;
    e = cudaMemcpyAsync(h_q, g->d_out, q_bytes, cudaMemcpyDeviceToHost, s);
    if (e == cudaSuccess)
        e = cudaMemcpyAsync(h_scales, g->d_out + s_off, (size_t)rows * ses, cudaMemcpyDeviceToHost, s);
    if (e == cudaSuccess)
        e = cudaStreamSynchronize(s);
    if (e != cudaSuccess)
        return tc_fail(TC_E_INTERNAL, "%s: GPU quantization failed: %s", t->name,
                       cudaGetErrorString(e));
    return TC_OK;
}
#else
static tc_status gpu_worker_init(gpu_worker *g, const tc_gpu_info *gpu, size_t buf_bytes,
                                 void **h_slice, uint8_t **h_out)
{
    (void)g; (void)buf_bytes; (void)h_slice; (void)h_out;
    return tc_fail(TC_E_INTERNAL, "GPU %d requested in a build without CUDA", gpu->device);
}

static void gpu_worker_free(gpu_worker *g, void *h_slice, uint8_t *h_out)
{
    (void)g;
    free(h_slice);
    free(h_out);
}

static tc_status gpu_quantize_rows(gpu_worker *g, const void *h_slice, const tc_plan_tensor *t,
                                   int64_t rows, int sm, int64_t n0, uint8_t *h_q, uint8_t *h_scales)
{
    (void)g; (void)h_slice; (void)rows; (void)sm; (void)n0; (void)h_q; (void)h_scales;
    return tc_fail(TC_E_INTERNAL, "%s: GPU quantization in a build without CUDA", t->name);
}
#endif

static void *worker_main(void *arg)
{
    tc_convert_job *job = arg;
    void *dst = NULL;
    void *scratch = malloc(job->buf_bytes);
    /* Quantized rows (rows*K*bits/8 <= buf/4) and their scales. */
    uint8_t *qbuf = NULL;
    gpu_worker g;
    memset(&g, 0, sizeof g);
    if (job->gpu) {
        tc_status gs = gpu_worker_init(&g, job->gpu, job->buf_bytes, &dst, &qbuf);
        if (gs != TC_OK) {
            job_record_error(job, gs);
            goto done;
        }
    } else {
        dst = malloc(job->buf_bytes);
        qbuf = malloc(job->buf_bytes / 2);
    }
    if (!dst || !scratch || !qbuf) {
        job_record_error(job, tc_fail(TC_E_INTERNAL, "out of memory: worker buffers of %zu bytes",
                                      job->buf_bytes));
        goto done;
    }
    for (;;) {
        if (atomic_load(&job->progress->cancel))
            break;
        size_t i = atomic_fetch_add(&job->next, 1);
        if (i >= job->n_items)
            break;
        const work_item *w = &job->items[i];
        tc_cell_output *c = &job->cells[w->cell];
        const tc_plan_tensor *t = &c->plan->tensors[w->tensor];
        tc_status st = tc_convert_rows(t, w->row0, w->rows, dst, scratch);
        size_t nbytes;
        uint64_t off;
        const void *data = dst;
        if (t->woq_bits && t->woq_transposed_only) {
            /* Non-plugin path: scales, then W^T in the config dtype. Rows
             * n0..n0+r of W are columns of the stored [K, N]: one write of r
             * elements per k, transposed in scratch (free once the slice is
             * assembled in dst). */
            const size_t es = tc_dtype_bits(t->slice_dtype) / 8;
            const int64_t r = w->rows, K = t->cols, N = t->rows;
            if (st == TC_OK)
                st = tc_woq_scales_rows(dst, t->slice_dtype, r, K, t->woq_bits, qbuf);
            if (st == TC_OK)
                st = tc_cell_write(c, qbuf, (size_t)r * es,
                                c->offsets[t->scale_index] + (uint64_t)w->row0 * es);
            const uint8_t *src8 = dst;
            uint8_t *tr = scratch;
            for (int64_t k = 0; st == TC_OK && k < K; k++)
                for (int64_t j = 0; j < r; j++)
                    memcpy(tr + ((size_t)k * (size_t)r + (size_t)j) * es,
                           src8 + ((size_t)j * (size_t)K + (size_t)k) * es, es);
            for (int64_t k = 0; st == TC_OK && k < K; k++)
                st = tc_cell_write(c, tr + (size_t)k * (size_t)r * es, (size_t)r * es,
                                c->offsets[w->tensor] + ((uint64_t)k * (uint64_t)N + (uint64_t)w->row0) * es);
            nbytes = (size_t)r * (size_t)K * es + (size_t)r * es;
            if (st != TC_OK) {
                job_record_error(job, st);
                break;
            }
            atomic_fetch_add(&job->progress->done_bytes, nbytes);
            continue;
        } else if (t->woq_bits) {
            /* Rows n0.. of W quantize to the contiguous output bytes from
             * n0*K*bits/8 (woq.h); their scales go to the scale tensor. */
            const size_t ses = tc_dtype_bits(t->slice_dtype) / 8;
            nbytes = (size_t)w->rows * (size_t)t->cols * (size_t)t->woq_bits / 8;
            off = c->offsets[w->tensor] + (uint64_t)w->row0 * (uint64_t)t->cols * (uint64_t)t->woq_bits / 8;
            uint8_t *scales = qbuf + ((nbytes + 63) & ~(size_t)63);
            if (st == TC_OK && job->gpu)
                st = gpu_quantize_rows(&g, dst, t, w->rows, c->plan->target_sm, w->row0, qbuf,
                                       scales);
            else if (st == TC_OK)
                st = tc_woq_quantize_rows(dst, t->slice_dtype, w->rows, t->cols, t->woq_bits,
                                          c->plan->target_sm, w->row0, qbuf, scales);
            if (st == TC_OK)
                st = tc_cell_write(c, scales, (size_t)w->rows * ses,
                                c->offsets[t->scale_index] + (uint64_t)w->row0 * ses);
            data = qbuf;
        } else {
            const size_t oes = tc_dtype_bits(t->dtype) / 8;
            nbytes = (size_t)w->rows * (size_t)t->cols * oes;
            off = c->offsets[w->tensor] + (uint64_t)w->row0 * (uint64_t)t->cols * oes;
        }
        if (st == TC_OK)
            st = tc_cell_write(c, data, nbytes, off);
        if (st != TC_OK) {
            job_record_error(job, st);
            break;
        }
        /* Start writeback of this chunk now, so the disk writes overlap the
         * rest of the conversion instead of all waiting for the final fsync
         * (which still makes the data durable). Failure here is harmless:
         * fsync reports any real write error. */
        (void)sync_file_range(c->fd, (off_t)off, (off_t)nbytes, SYNC_FILE_RANGE_WRITE);
        if (t->woq_bits)
            nbytes += (size_t)w->rows * (tc_dtype_bits(t->slice_dtype) / 8);
        atomic_fetch_add(&job->progress->done_bytes, nbytes);
    }
done:
    if (job->gpu) {
        gpu_worker_free(&g, dst, qbuf);
    } else {
        free(dst);
        free(qbuf);
    }
    free(scratch);
    atomic_fetch_sub(&job->running, 1);
    return NULL;
}

tc_status tc_convert_start(tc_cell_output *cells, size_t n, int workers,
                           const tc_gpu_info *gpu, tc_progress *progress, tc_convert_job **out)
{
    *out = NULL;
    tc_convert_job *job = calloc(1, sizeof *job);
    if (!job)
        return tc_fail(TC_E_INTERNAL, "out of memory starting the conversion");
    job->cells = cells;
    job->n_cells = n;
    job->progress = progress;
    job->gpu = gpu && gpu->device >= 0 ? gpu : NULL;
    job->first_error = TC_OK;
    pthread_mutex_init(&job->lock, NULL);

    /* Split every tensor into row ranges of at most one chunk (4-byte
     * elements, the widest source type, so scratch never overflows). */
    size_t cap = 0;
    job->buf_bytes = 4096;
    for (size_t c = 0; c < n; c++) {
        const tc_plan *p = cells[c].plan;
        if (cells[c].fd < 0)
            continue; /* not open: its file is reused from an earlier run (--resume) */
        for (size_t k = 0; k < p->n_tensors; k++) {
            const tc_plan_tensor *t = &p->tensors[k];
            if (t->scale_of >= 0 || t->computed)
                continue; /* filled by its weight's work items / by its owner */
            uint64_t row_bytes = (uint64_t)t->cols * 4;
            int64_t step = (int64_t)(TC_CONVERT_CHUNK_BYTES / (row_bytes ? row_bytes : 1));
            if (t->woq_bits && !t->woq_transposed_only) {
                tc_woq_layout layout;
                if (tc_woq_layout_for_sm(p->target_sm, &layout) != TC_OK) {
                    free(job->items);
                    free(job);
                    return TC_E_INTERNAL;
                }
                int64_t align = tc_woq_row_align(layout, t->woq_bits);
                step = step / align * align;
                if (step < align)
                    step = align;
            }
            if (step < 1)
                step = 1;
            uint64_t need = (uint64_t)(step < t->rows ? step : t->rows) * row_bytes;
            if (need > job->buf_bytes)
                job->buf_bytes = (size_t)need;
            for (int64_t r0 = 0; r0 < t->rows; r0 += step) {
                if (job->n_items == cap) {
                    cap = cap ? 2 * cap : 256;
                    work_item *ni = realloc(job->items, cap * sizeof *ni);
                    if (!ni) {
                        free(job->items);
                        free(job);
                        return tc_fail(TC_E_INTERNAL, "out of memory planning work items");
                    }
                    job->items = ni;
                }
                work_item *w = &job->items[job->n_items++];
                w->cell = (uint32_t)c;
                w->tensor = (uint32_t)k;
                w->row0 = r0;
                w->rows = t->rows - r0 < step ? t->rows - r0 : step;
                /* Bytes before this row range in the stored tensor, in
                 * proportion to its rows (exact for unquantized tensors,
                 * monotonic for the others: all an ordering needs). */
                const uint64_t stored = tc_dtype_bits(t->dtype) / 8 * tc_plan_tensor_elems(t);
                w->file_pos = cells[c].offsets[k] +
                              (t->rows ? stored / (uint64_t)t->rows * (uint64_t)r0 : 0);
            }
        }
    }
    qsort(job->items, job->n_items, sizeof *job->items, cmp_item_file_order);
    job->n_workers = workers < 1 ? 1 : workers;
    job->threads = calloc((size_t)job->n_workers, sizeof *job->threads);
    if (!job->threads) {
        free(job->items);
        free(job);
        return tc_fail(TC_E_INTERNAL, "out of memory starting workers");
    }
    atomic_store(&job->running, job->n_workers);
    for (int i = 0; i < job->n_workers; i++) {
        int rc = pthread_create(&job->threads[i], NULL, worker_main, job);
        if (rc != 0) {
            atomic_fetch_sub(&job->running, job->n_workers - i);
            job_record_error(job, tc_fail(TC_E_INTERNAL, "cannot start worker thread: %s",
                                          strerror(rc)));
            break;
        }
        job->n_started++;
    }
    *out = job;
    return TC_OK;
}

bool tc_convert_done(tc_convert_job *job)
{
    return atomic_load(&job->running) == 0;
}

tc_status tc_convert_join(tc_convert_job *job)
{
    for (int i = 0; i < job->n_started; i++)
        pthread_join(job->threads[i], NULL);
    tc_status st = job->first_error;
    if (st == TC_OK && atomic_load(&job->next) < job->n_items)
        st = TC_E_CANCELLED;
    pthread_mutex_destroy(&job->lock);
    free(job->threads);
    free(job->items);
    free(job);
    return st;
}
