/* convert.c: read slices, convert dtypes, pwrite into the rank files
 * (output/rankfile.h) with worker threads. See convert.h for the memory
 * bound. */
#define _GNU_SOURCE /* fallocate */
#include "trtconv/convert/convert.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>
#include "trtconv/core/log.h"
#include "trtconv/formats/safetensors.h"
#include "trtconv/quant/fp8.h"
#include "trtconv/quant/hf_quant.h"
#include "trtconv/quant/nvfp4.h"
#include "trtconv/quant/woq.h"
#include "trtconv/build_config.h"
#if TRTCONV_HAVE_CUDA
#include <cuda_runtime_api.h>
#include "trtconv/kernels/fp8.h"
#include "trtconv/kernels/nvfp4.h"
#include "trtconv/kernels/woq.h"
#include "trtconv/mpi/gpu_errors.h"
#endif

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
    if (t->constant) {
        for (int64_t i = 0; i < rows * t->cols; i++)
            memcpy((char *)dst + 4 * i, &t->constant_values[(row0 * t->cols + i) % t->n_constant],
                   4);
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
    int64_t gate;        /* the tensor's gate_layer, -1 when not gated */
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

struct tc_convert_gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t layers;
    bool *open;
    bool cancelled;
};

tc_status tc_convert_gate_create(int64_t layers, tc_convert_gate **out)
{
    tc_convert_gate *g = calloc(1, sizeof *g);
    bool *open = calloc((size_t)(layers > 0 ? layers : 1), sizeof *open);
    if (!g || !open) {
        free(g);
        free(open);
        return tc_fail(TC_E_INTERNAL, "out of memory");
    }
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->layers = layers;
    g->open = open;
    *out = g;
    return TC_OK;
}

void tc_convert_gate_open(tc_convert_gate *g, int64_t layer)
{
    pthread_mutex_lock(&g->mu);
    if (layer >= 0 && layer < g->layers)
        g->open[layer] = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

void tc_convert_gate_cancel(tc_convert_gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->cancelled = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

void tc_convert_gate_free(tc_convert_gate *g)
{
    if (!g)
        return;
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g->open);
    free(g);
}

/* Wait until `layer` is open; false when the gate or the job was
 * cancelled first (the job's flag is polled: its setter does not know the
 * gate). */
static bool gate_wait(tc_convert_gate *g, int64_t layer, atomic_int *cancel)
{
    bool ok = false;
    pthread_mutex_lock(&g->mu);
    for (;;) {
        ok = layer >= 0 && layer < g->layers && g->open[layer];
        if (ok || g->cancelled || atomic_load(cancel) || layer < 0 || layer >= g->layers)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g->cv, &g->mu, &ts);
    }
    pthread_mutex_unlock(&g->mu);
    return ok;
}

struct tc_convert_job {
    tc_cell_output *cells;
    size_t n_cells;
    work_item *items;
    size_t n_items;
    _Atomic size_t next;
    size_t buf_bytes;          /* per-worker scratch; quantized output buf_bytes / 2 */
    size_t slice_bytes;        /* per-worker slice (dst): the widest item in its own dtype */
    tc_progress *progress;
    tc_convert_gate *gate;     /* NULL: nothing waits */
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
} gpu_worker;

#if TRTCONV_HAVE_CUDA
/* Each worker owns a stream and device buffers; its host slice and output
 * buffers are pinned so the copies run at PCIe speed (pageable copies are
 * ~7x slower, performance-anchors.md §4.2). Pinned memory is resident in
 * full from the start, so the slice buffer is only as large as the job's
 * widest slice (half the 4-byte-element bound for a 2-byte model). */
static tc_status gpu_worker_init(gpu_worker *g, const tc_gpu_info *gpu, size_t slice_bytes,
                                 size_t out_bytes, void **h_slice, uint8_t **h_out)
{
    tc_status st = tc_gpu_use(gpu);
    if (st != TC_OK)
        return st;
    cudaStream_t s = NULL;
    cudaError_t e = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    if (e == cudaSuccess)
        e = cudaMalloc(&g->d_in, slice_bytes);
    if (e == cudaSuccess)
        e = cudaMalloc((void **)&g->d_out, out_bytes);
    if (e == cudaSuccess)
        e = cudaMallocHost(h_slice, slice_bytes);
    if (e == cudaSuccess)
        e = cudaMallocHost((void **)h_out, out_bytes);
    g->stream = s;
    if (e != cudaSuccess)
        return tc_fail(TC_E_INTERNAL, "GPU %d: cannot set up worker buffers (%zu + %zu bytes): %s",
                       gpu->device, slice_bytes, out_bytes, cudaGetErrorString(e));
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

/* FP8 rowwise rows on the GPU (kernels/fp8.h): slice in, E4M3 bytes and
 * float32 scales out. */
static tc_status gpu_fp8_rows(gpu_worker *g, const void *h_slice, const tc_plan_tensor *t,
                              int64_t rows, uint8_t *h_q, float *h_scales)
{
    cudaStream_t s = (cudaStream_t)g->stream;
    const size_t ses = tc_dtype_bits(t->slice_dtype) / 8;
    const size_t in_bytes = (size_t)rows * (size_t)t->cols * ses;
    const size_t q_bytes = (size_t)rows * (size_t)t->cols;
    const size_t s_off = (size_t)((uint8_t *)h_scales - h_q);
    tc_status st = TC_CUDA_TRY(cudaMemcpyAsync(g->d_in, h_slice, in_bytes, cudaMemcpyHostToDevice, s));
    if (st == TC_OK)
        st = tc_fp8_rowwise_quantize_rows_cuda(g->d_in, t->slice_dtype, rows, t->cols,
                                               t->fp8_clamp[0], t->fp8_clamp[1], g->d_out,
                                               (float *)(void *)(g->d_out + s_off), g->stream);
    if (st == TC_OK)
        st = TC_CUDA_TRY(cudaMemcpyAsync(h_q, g->d_out, q_bytes, cudaMemcpyDeviceToHost, s));
    if (st == TC_OK)
        st = TC_CUDA_TRY(cudaMemcpyAsync(h_scales, g->d_out + s_off, (size_t)rows * 4,
                                         cudaMemcpyDeviceToHost, s));
    if (st == TC_OK)
        st = TC_CUDA_TRY(cudaStreamSynchronize(s));
    return st;
}

/* NVFP4 rows on the GPU (kernels/nvfp4.h, bit for bit quant/nvfp4.h):
 * slice in, packed codes and E4M3 block scales out. */
static tc_status gpu_nvfp4_rows(gpu_worker *g, const void *h_slice, const tc_plan_tensor *t,
                                int64_t rows, uint8_t *h_q, uint8_t *h_scales)
{
    cudaStream_t s = (cudaStream_t)g->stream;
    const size_t in_bytes = (size_t)rows * (size_t)t->cols * (tc_dtype_bits(t->slice_dtype) / 8);
    const size_t q_bytes = (size_t)rows * (size_t)t->cols / 2;
    const size_t sc_bytes = (size_t)rows * (size_t)(t->cols / TC_NVFP4_BLOCK);
    const size_t s_off = (size_t)(h_scales - h_q);
    tc_status st = TC_CUDA_TRY(cudaMemcpyAsync(g->d_in, h_slice, in_bytes, cudaMemcpyHostToDevice, s));
    if (st == TC_OK)
        st = tc_nvfp4_quantize_rows_cuda(g->d_in, t->slice_dtype, rows, t->cols, t->fp8_scale,
                                         g->d_out, g->d_out + s_off, g->stream);
    if (st == TC_OK)
        st = TC_CUDA_TRY(cudaMemcpyAsync(h_q, g->d_out, q_bytes, cudaMemcpyDeviceToHost, s));
    if (st == TC_OK)
        st = TC_CUDA_TRY(cudaMemcpyAsync(h_scales, g->d_out + s_off, sc_bytes,
                                         cudaMemcpyDeviceToHost, s));
    if (st == TC_OK)
        st = TC_CUDA_TRY(cudaStreamSynchronize(s));
    return st;
}

/* FP8 per-tensor rows on the GPU: slice in, E4M3 bytes out. */
static tc_status gpu_fp8_tensor_rows(gpu_worker *g, const void *h_slice, const tc_plan_tensor *t,
                                     int64_t rows, float scale, uint8_t *h_q)
{
    cudaStream_t s = (cudaStream_t)g->stream;
    const size_t in_bytes = (size_t)rows * (size_t)t->cols * (tc_dtype_bits(t->slice_dtype) / 8);
    tc_status st = TC_CUDA_TRY(cudaMemcpyAsync(g->d_in, h_slice, in_bytes, cudaMemcpyHostToDevice, s));
    if (st == TC_OK)
        st = tc_fp8_tensor_quantize_rows_cuda(g->d_in, t->slice_dtype, rows, t->cols, scale,
                                              g->d_out, g->stream);
    if (st == TC_OK)
        st = TC_CUDA_TRY(cudaMemcpyAsync(h_q, g->d_out, (size_t)rows * (size_t)t->cols,
                                         cudaMemcpyDeviceToHost, s));
    if (st == TC_OK)
        st = TC_CUDA_TRY(cudaStreamSynchronize(s));
    return st;
}
#else
static tc_status gpu_nvfp4_rows(gpu_worker *g, const void *h_slice, const tc_plan_tensor *t,
                                int64_t rows, uint8_t *h_q, uint8_t *h_scales)
{
    (void)g; (void)h_slice; (void)rows; (void)h_q; (void)h_scales;
    return tc_fail(TC_E_INTERNAL, "%s: GPU quantization in a build without CUDA", t->name);
}

static tc_status gpu_fp8_tensor_rows(gpu_worker *g, const void *h_slice, const tc_plan_tensor *t,
                                     int64_t rows, float scale, uint8_t *h_q)
{
    (void)g; (void)h_slice; (void)rows; (void)scale; (void)h_q;
    return tc_fail(TC_E_INTERNAL, "%s: GPU quantization in a build without CUDA", t->name);
}

static tc_status gpu_fp8_rows(gpu_worker *g, const void *h_slice, const tc_plan_tensor *t,
                              int64_t rows, uint8_t *h_q, float *h_scales)
{
    (void)g; (void)h_slice; (void)rows; (void)h_q; (void)h_scales;
    return tc_fail(TC_E_INTERNAL, "%s: GPU quantization in a build without CUDA", t->name);
}

static tc_status gpu_worker_init(gpu_worker *g, const tc_gpu_info *gpu, size_t slice_bytes,
                                 size_t out_bytes, void **h_slice, uint8_t **h_out)
{
    (void)g; (void)slice_bytes; (void)out_bytes; (void)h_slice; (void)h_out;
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

/* Rows row0 .. row0 + rows of an FP8 per-tensor weight (slice in src, E4M3
 * bytes to q) on the GPU worker g or, g NULL, the CPU: one scale, or for
 * stacked experts each expert's rows with that expert's scale. */
static tc_status fp8_tensor_rows(gpu_worker *g, const void *src, const tc_plan_tensor *t,
                                 int64_t row0, int64_t rows, uint8_t *q)
{
    const size_t row_bytes = (size_t)t->cols * (tc_dtype_bits(t->slice_dtype) / 8);
    for (int64_t r = 0; r < rows;) {
        int64_t n = rows - r;
        float scale = t->fp8_scale;
        if (t->fp8_expert_scales) {
            const int64_t e = (row0 + r) / t->expert_rows, end = (e + 1) * t->expert_rows - row0;
            n = end - r < n ? end - r : n;
            scale = t->fp8_expert_scales[e];
        }
        const char *in = (const char *)src + (size_t)r * row_bytes;
        uint8_t *out = q + (size_t)r * (size_t)t->cols;
        TC_TRY(g ? gpu_fp8_tensor_rows(g, in, t, n, scale, out)
                 : tc_fp8_tensor_quantize_rows(in, t->slice_dtype, n, t->cols, scale, out));
        r += n;
    }
    return TC_OK;
}

/* A work item's rows of a Hugging Face-style quantized weight (hf_quant.h)
 * from the slice in src: the weight's bytes to q (*nbytes at file offset
 * *off, written by the caller), the per-row or per-block scales written
 * here. NVFP4 on the GPU worker g when there is one (its E2M1 search is the
 * costly part); FP8 on the CPU. */
static tc_status hf_quantize(gpu_worker *g, tc_cell_output *c, const tc_plan_tensor *t,
                             const work_item *w, const void *src, uint8_t *q, size_t *nbytes,
                             uint64_t *off)
{
    const int64_t K = t->cols, r = w->rows;
    if (t->hf_quant == TC_HF_ALGO_NVFP4) {
        const size_t sb = (size_t)(K / TC_NVFP4_BLOCK);
        *nbytes = (size_t)r * (size_t)K / 2;
        *off = c->offsets[w->tensor] + (uint64_t)w->row0 * (uint64_t)K / 2;
        uint8_t *bs = q + ((*nbytes + 63) & ~(size_t)63);
        TC_TRY(g ? gpu_nvfp4_rows(g, src, t, r, q, bs)
                 : tc_nvfp4_quantize_rows(src, t->slice_dtype, r, K, t->fp8_scale, q, bs));
        return tc_cell_write(c, bs, (size_t)r * sb, c->offsets[t->scale_index] + (uint64_t)w->row0 * sb);
    }
    *nbytes = (size_t)r * (size_t)K;
    *off = c->offsets[w->tensor] + (uint64_t)w->row0 * (uint64_t)K;
    if (t->hf_quant == TC_HF_ALGO_FP8)
        return tc_hf_fp8_quantize_rows(src, t->slice_dtype, r, K, t->fp8_scale, q);
    float *scales = (float *)(void *)(q + ((*nbytes + 63) & ~(size_t)63));
    TC_TRY(tc_hf_fp8_pcpt_quantize_rows(src, t->slice_dtype, r, K, q, scales));
    return tc_cell_write(c, scales, (size_t)r * 4, c->offsets[t->scale_index] + (uint64_t)w->row0 * 4);
}

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
        tc_status gs = gpu_worker_init(&g, job->gpu, job->slice_bytes, job->buf_bytes / 2, &dst,
                                       &qbuf);
        if (gs != TC_OK) {
            job_record_error(job, gs);
            goto done;
        }
    } else {
        dst = malloc(job->slice_bytes);
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
        if (t->gated && job->gate && !gate_wait(job->gate, t->gate_layer, &job->progress->cancel)) {
            job_record_error(job, TC_E_CANCELLED);
            break;
        }
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
            /* Stacked experts: expert e's [K, N] block follows expert e-1's. */
            const int64_t r = w->rows, K = t->cols, N = tc_plan_matrix_rows(t);
            const uint64_t e0 = (uint64_t)(w->row0 / N) * (uint64_t)K * (uint64_t)N;
            const int64_t n0 = w->row0 % N;
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
                                c->offsets[w->tensor] + (e0 + (uint64_t)k * (uint64_t)N + (uint64_t)n0) * es);
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
            /* The row within its matrix (an expert's, when stacked). */
            const int64_t n0 = w->row0 % tc_plan_matrix_rows(t);
            if (st == TC_OK && job->gpu)
                st = gpu_quantize_rows(&g, dst, t, w->rows, t->woq_sm, n0, qbuf, scales);
            else if (st == TC_OK)
                st = tc_woq_quantize_rows(dst, t->slice_dtype, w->rows, t->cols, t->woq_bits,
                                          t->woq_sm, n0, qbuf, scales);
            if (st == TC_OK)
                st = tc_cell_write(c, scales, (size_t)w->rows * ses,
                                c->offsets[t->scale_index] + (uint64_t)w->row0 * ses);
            data = qbuf;
        } else if (t->fp8_rowwise) {
            /* Rows n0.. of W: F8 bytes from n0*K, float32 scales to the
             * scale tensor (quant/fp8.h). */
            nbytes = (size_t)w->rows * (size_t)t->cols;
            off = c->offsets[w->tensor] + (uint64_t)w->row0 * (uint64_t)t->cols;
            float *scales = (float *)(void *)(qbuf + ((nbytes + 63) & ~(size_t)63));
            if (st == TC_OK && job->gpu)
                st = gpu_fp8_rows(&g, dst, t, w->rows, qbuf, scales);
            else if (st == TC_OK)
                st = tc_fp8_rowwise_quantize_rows(dst, t->slice_dtype, w->rows, t->cols,
                                                  t->fp8_clamp, qbuf, scales);
            if (st == TC_OK)
                st = tc_cell_write(c, scales, (size_t)w->rows * 4,
                                   c->offsets[t->scale_index] + (uint64_t)w->row0 * 4);
            data = qbuf;
        } else if (t->hf_quant) {
            st = st == TC_OK ? hf_quantize(job->gpu ? &g : NULL, c, t, w, dst, qbuf, &nbytes, &off)
                             : st;
            data = qbuf;
        } else if (t->fp8_tensor) {
            nbytes = (size_t)w->rows * (size_t)t->cols;
            off = c->offsets[w->tensor] + (uint64_t)w->row0 * (uint64_t)t->cols;
            if (st == TC_OK)
                st = fp8_tensor_rows(job->gpu ? &g : NULL, dst, t, w->row0, w->rows, qbuf);
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
        /* (tc_cell_write has started the chunk's writeback.) */
        if (t->woq_bits)
            nbytes += (size_t)w->rows * (tc_dtype_bits(t->slice_dtype) / 8);
        else if (t->fp8_rowwise || t->hf_quant == TC_HF_ALGO_FP8_PC_PT)
            nbytes += (size_t)w->rows * 4;
        else if (t->hf_quant == TC_HF_ALGO_NVFP4)
            nbytes += (size_t)w->rows * (size_t)(t->cols / TC_NVFP4_BLOCK);
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

/* With a gate: ungated tensors first, then layer by layer (the order the
 * gates open), file order within each. */
static int cmp_item_gate_order(const void *a, const void *b)
{
    const work_item *x = a, *y = b;
    if (x->gate != y->gate)
        return x->gate < y->gate ? -1 : 1;
    return cmp_item_file_order(a, b);
}

tc_status tc_convert_start(tc_cell_output *cells, size_t n, int workers,
                           const tc_gpu_info *gpu, tc_progress *progress, tc_convert_gate *gate,
                           tc_convert_job **out)
{
    *out = NULL;
    tc_convert_job *job = calloc(1, sizeof *job);
    if (!job)
        return tc_fail(TC_E_INTERNAL, "out of memory starting the conversion");
    job->cells = cells;
    job->n_cells = n;
    job->progress = progress;
    job->gate = gate;
    job->gpu = gpu && gpu->device >= 0 ? gpu : NULL;
    job->first_error = TC_OK;
    pthread_mutex_init(&job->lock, NULL);

    /* Split every tensor into row ranges of at most one chunk (4-byte
     * elements, the widest source type, so scratch never overflows). */
    size_t cap = 0;
    job->buf_bytes = 4096;
    job->slice_bytes = 4096;
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
                if (tc_woq_layout_for_sm(t->woq_sm, &layout) != TC_OK) {
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
            const uint64_t item_rows = (uint64_t)(step < t->rows ? step : t->rows);
            uint64_t need = item_rows * row_bytes;
            if (need > job->buf_bytes)
                job->buf_bytes = (size_t)need;
            /* What dst holds: the slice (tc_convert_rows), read back in the
             * stored dtype when written unquantized; rope and constant
             * tensors as float32. */
            size_t des = tc_dtype_bits(t->slice_dtype) / 8;
            const size_t stored_es = tc_dtype_bits(t->dtype) / 8;
            des = stored_es > des ? stored_es : des;
            des = (t->rope || t->constant) && des < 4 ? 4 : des;
            if (item_rows * (uint64_t)t->cols * des > job->slice_bytes)
                job->slice_bytes = (size_t)(item_rows * (uint64_t)t->cols * des);
            /* Work items never straddle two stacked experts: each expert's
             * rows (the whole tensor otherwise) are a segment of their own. */
            const int64_t seg = tc_plan_matrix_rows(t);
            int64_t w_rows_last = 0;
            for (int64_t r0 = 0; r0 < t->rows; r0 += w_rows_last) {
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
                w->gate = t->gated ? t->gate_layer : -1;
                const int64_t seg_end = (r0 / seg + 1) * seg < t->rows ? (r0 / seg + 1) * seg : t->rows;
                w->rows = seg_end - r0 < step ? seg_end - r0 : step;
                w_rows_last = w->rows;
                /* Bytes before this row range in the stored tensor, in
                 * proportion to its rows (exact for unquantized tensors,
                 * monotonic for the others: all an ordering needs). */
                const uint64_t stored = tc_dtype_bits(t->dtype) / 8 * tc_plan_tensor_elems(t);
                w->file_pos = cells[c].offsets[k] +
                              (t->rows ? stored / (uint64_t)t->rows * (uint64_t)r0 : 0);
            }
        }
    }
    /* No items at all (every file of this rank kept by --resume): items is
     * NULL, which qsort may not be given even for zero elements. */
    if (job->n_items > 1)
        qsort(job->items, job->n_items, sizeof *job->items,
              gate ? cmp_item_gate_order : cmp_item_file_order);
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
