/* torch_writer.c: pytorch_model*.bin and Meta consolidated.*.pth files (genmodel.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "genmodel.h"
#include "trtconv/core/fsutil.h"
#include "trtconv/core/log.h"
#include "trtconv/formats/st_writer.h"
#include "trtconv/formats/torchwrite.h"
#include "trtconv/formats/zipread.h"

/* ------------------------------------------------------------------ */
/* torch.save layout (--format bin / meta)                               */

/* One tensor of a torch file: its values are those of HF tensor src, at
 * HF element gm_src_index(f, k) for file element k. */
struct gm_ftensor {
    const struct gm_tensor *src;
    char name[GM_NAME_MAX];
    int ndim;
    int64_t shape[2];      /* this file's part */
    uint64_t nelem;
    int split;             /* -1 whole, 0 rows, 1 columns (Meta MP) */
    int64_t part, nparts;
    int64_t rope_d;        /* > 0: Meta's interleaved q/k rows */
};

/* Meta row m of head h (m = h*d + 2i + half) holds HF row h*d + half*d/2 + i:
 * the inverse of the permutation TensorRT-LLM's load_from_meta_llama and
 * transformers' convert_llama_weights_to_hf.py apply. */
static uint64_t gm_src_index(const struct gm_ftensor *f, uint64_t k)
{
    uint64_t cols = f->ndim == 2 ? (uint64_t)f->shape[1] : 1;
    uint64_t row = k / cols, col = k % cols;
    if (f->split == 0) {
        uint64_t m = (uint64_t)f->part * (uint64_t)f->shape[0] + row;
        if (f->rope_d > 0) {
            uint64_t d = (uint64_t)f->rope_d, h = m / d, j = m % d;
            m = h * d + (j % 2) * (d / 2) + j / 2;
        }
        return m * cols + col;
    }
    if (f->split == 1)
        return row * cols * (uint64_t)f->nparts + (uint64_t)f->part * cols + col;
    return k;
}

/* F32 value of HF element i of t, --special_values included. */
static float gm_value_special(const struct gm_tensor *t, tc_float_type ft, uint64_t i)
{
    if (t->special) {
        const uint32_t *sv;
        size_t ns;
        gm_special_list(ft, &sv, &ns);
        if (i < ns && i < t->nelem)
            return gm_f32_of_bits(sv[i]);
    }
    return gm_value(t, i);
}

static tc_status gm_write_torch_file(const struct gm_opts *o, const struct gm_ftensor *ft,
                                     size_t n, bool ordered, const char *path,
                                     const char *prefix, uint64_t *fbytes)
{
    tc_status st = TC_OK;
    tc_tw_tensor *tw = calloc(n ? n : 1, sizeof *tw);
    tc_zipw_entry *e = calloc(n + 3, sizeof *e);
    char (*names)[GM_NAME_MAX + 64] = calloc(n + 3, sizeof *names);
    unsigned char *pkl = NULL, *part = NULL, *chunk = NULL;
    float *f32 = NULL;
    size_t pkl_len = 0, part_len = 0;
    uint64_t cd = 0;
    int fd = -1;
    const tc_dtype dt = tc_float_type_dtype(o->ft);
    const unsigned es = tc_dtype_bits(dt) / 8;

    f32 = malloc(GM_SCRATCH_ELEMS * sizeof *f32);
    chunk = malloc(GM_SCRATCH_ELEMS * 4);
    if (!tw || !e || !names || !f32 || !chunk) {
        st = tc_fail(TC_E_INTERNAL, "%s: out of memory", path);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        tw[i].name = ft[i].name;
        tw[i].dtype = dt;
        tw[i].ndim = ft[i].ndim;
        tw[i].shape[0] = ft[i].shape[0];
        tw[i].shape[1] = ft[i].shape[1];
    }
    if ((st = tc_tw_pickle(tw, n, ordered, &pkl, &pkl_len)) != TC_OK)
        goto done;
    snprintf(names[0], sizeof names[0], "%s/data.pkl", prefix);
    e[0].size = pkl_len;
    e[0].crc32 = tc_crc32(0, pkl, pkl_len);
    snprintf(names[1], sizeof names[1], "%s/byteorder", prefix);
    e[1].size = 6;
    e[1].crc32 = tc_crc32(0, "little", 6);
    for (size_t i = 0; i < n; i++) {
        snprintf(names[2 + i], sizeof names[2 + i], "%s/data/%zu", prefix, i);
        e[2 + i].size = ft[i].nelem * es;
    }
    snprintf(names[n + 2], sizeof names[n + 2], "%s/version", prefix);
    e[n + 2].size = 2;
    e[n + 2].crc32 = tc_crc32(0, "3\n", 2);
    for (size_t i = 0; i < n + 3; i++)
        e[i].name = names[i];
    if ((st = tc_zipw_layout(e, n + 3, &cd)) != TC_OK)
        goto done;

    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        st = tc_fail(TC_E_IO, "%s: open: %s", path, strerror(errno));
        goto done;
    }
    if ((st = tc_pwrite_all(fd, path, pkl, pkl_len, e[0].data_offset)) != TC_OK ||
        (st = tc_pwrite_all(fd, path, "little", 6, e[1].data_offset)) != TC_OK ||
        (st = tc_pwrite_all(fd, path, "3\n", 2, e[n + 2].data_offset)) != TC_OK)
        goto done;
    /* Storages, in order, with their CRC computed as they are written. */
    for (size_t i = 0; i < n; i++) {
        uint32_t crc = 0;
        for (uint64_t k0 = 0; k0 < ft[i].nelem; k0 += GM_SCRATCH_ELEMS) {
            size_t m = ft[i].nelem - k0 < GM_SCRATCH_ELEMS ? (size_t)(ft[i].nelem - k0)
                                                            : GM_SCRATCH_ELEMS;
            for (size_t k = 0; k < m; k++)
                f32[k] = gm_value_special(ft[i].src, o->ft, gm_src_index(&ft[i], k0 + k));
            tc_convert(chunk, dt, f32, TC_DT_F32, m);
            crc = tc_crc32(crc, chunk, m * es);
            if ((st = tc_pwrite_all(fd, path, chunk, m * es,
                                    e[2 + i].data_offset + k0 * es)) != TC_OK)
                goto done;
        }
        e[2 + i].crc32 = crc;
    }
    for (size_t i = 0; i < n + 3; i++) {
        if ((st = tc_zipw_local(&e[i], &part, &part_len)) != TC_OK ||
            (st = tc_pwrite_all(fd, path, part, part_len, e[i].header_offset)) != TC_OK)
            goto done;
        free(part);
        part = NULL;
    }
    if ((st = tc_zipw_tail(e, n + 3, cd, &part, &part_len)) != TC_OK ||
        (st = tc_pwrite_all(fd, path, part, part_len, cd)) != TC_OK)
        goto done;
    if ((st = tc_close_file(&fd, path)) != TC_OK)
        goto done;
    *fbytes = cd + part_len;
done:
    if (fd >= 0)
        close(fd);
    free(part);
    free(chunk);
    free(f32);
    free(pkl);
    free(names);
    free(e);
    free(tw);
    return st;
}

/* pytorch_model.bin, or pytorch_model-0000k-of-0000N.bin plus
 * pytorch_model.bin.index.json: the HF tensors as they are. */
tc_status gm_write_bin(const struct gm_opts *o, struct gm_model *m, char (*fnames)[64],
                              size_t *total_tensors, uint64_t *total_bytes)
{
    tc_status st = TC_OK;
    char path[4096], prefix[64];
    struct gm_ftensor *ft = calloc(m->n, sizeof *ft);
    if (!ft)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    for (int64_t s = 0; s < o->shards && st == TC_OK; s++) {
        size_t n = 0;
        for (size_t i = m->first[s]; i < m->first[s + 1]; i++, n++) {
            const struct gm_tensor *t = &m->t[i];
            ft[n].src = t;
            memcpy(ft[n].name, t->name, sizeof ft[n].name);
            ft[n].ndim = t->ndim;
            ft[n].shape[0] = t->shape[0];
            ft[n].shape[1] = t->shape[1];
            ft[n].nelem = t->nelem;
            ft[n].split = -1;
        }
        /* torch.save names the archive directory after the file's stem. */
        snprintf(prefix, sizeof prefix, "%.*s", (int)(strlen(fnames[s]) - 4), fnames[s]);
        uint64_t fb = 0;
        st = tc_path_join(path, sizeof path, o->out, fnames[s]);
        if (st == TC_OK)
            st = gm_write_torch_file(o, ft, n, true, path, prefix, &fb);
        if (st == TC_OK) {
            printf("%s: %zu tensors, %llu bytes\n", fnames[s], n, (unsigned long long)fb);
            *total_tensors += n;
            *total_bytes += fb;
        }
    }
    free(ft);
    return st;
}

static tc_status gm_write_params(const struct gm_opts *o, const char *path)
{
    struct gm_buf b = { NULL, 0, 0, 0 };
    char eps[64], theta[64];
    tc_status st;
    gm_fmt_float(o->rms_norm_eps, eps);
    gm_fmt_float(o->rope_theta, theta);
    /* TensorRT-LLM's from_meta_ckpt: multiple_of * ceil(int(8 dim / 3) /
     * multiple_of) unless hidden_dim is given. */
    int64_t x = (int64_t)((double)(o->hidden * 8) / 3.0);
    int64_t formula = o->multiple_of * ((x + o->multiple_of - 1) / o->multiple_of);
    gm_buf_printf(&b, "{\"dim\": %lld, \"multiple_of\": %lld, ", (long long)o->hidden,
                  (long long)o->multiple_of);
    if (formula != o->intermediate)
        gm_buf_printf(&b, "\"hidden_dim\": %lld, ", (long long)o->intermediate);
    gm_buf_printf(&b, "\"n_heads\": %lld, \"n_kv_heads\": %lld, \"n_layers\": %lld, "
                  "\"norm_eps\": %s, \"rope_theta\": %s, ", (long long)o->heads,
                  (long long)o->kv_heads, (long long)o->layers, eps, theta);
    if (o->rope == GM_ROPE_LLAMA3)
        gm_buf_printf(&b, "\"use_scaled_rope\": true, ");
    gm_buf_printf(&b, "\"vocab_size\": %lld}\n", (long long)o->vocab);
    if (b.oom)
        st = tc_fail(TC_E_INTERNAL, "%s: out of memory", path);
    else
        st = gm_write_text(path, b.p);
    free(b.p);
    return st;
}

/* params.json + consolidated.NN.pth for NN < --mp, in Meta's state_dict
 * order and names, each tensor split along its model-parallel dimension. */
tc_status gm_write_meta(const struct gm_opts *o, struct gm_model *m,
                               size_t *total_tensors, uint64_t *total_bytes)
{
    static const struct { const char *hf, *meta; int split; int rope; } map[] = {
        { "self_attn.q_proj.weight", "attention.wq.weight", 0, 1 },
        { "self_attn.k_proj.weight", "attention.wk.weight", 0, 1 },
        { "self_attn.v_proj.weight", "attention.wv.weight", 0, 0 },
        { "self_attn.o_proj.weight", "attention.wo.weight", 1, 0 },
        { "mlp.gate_proj.weight", "feed_forward.w1.weight", 0, 0 },
        { "mlp.down_proj.weight", "feed_forward.w2.weight", 1, 0 },
        { "mlp.up_proj.weight", "feed_forward.w3.weight", 0, 0 },
        { "input_layernorm.weight", "attention_norm.weight", -1, 0 },
        { "post_attention_layernorm.weight", "ffn_norm.weight", -1, 0 },
    };
    tc_status st = TC_OK;
    char path[4096], fname[64], prefix[64], hfname[GM_NAME_MAX];
    size_t cap = 3 + (size_t)o->layers * 9;
    struct gm_ftensor *ft = calloc(cap, sizeof *ft);
    if (!ft)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    if ((st = tc_path_join(path, sizeof path, o->out, "params.json")) != TC_OK ||
        (st = gm_write_params(o, path)) != TC_OK)
        goto done;
    for (int64_t p = 0; p < o->mp; p++) {
        size_t n = 0;
#define GM_FT(hf_, meta_, split_, rope_)                                         \
        do {                                                                    \
            const struct gm_tensor *t_ = NULL;                                  \
            for (size_t i_ = 0; i_ < m->n; i_++)                                \
                if (strcmp(m->t[i_].name, hf_) == 0)                            \
                    t_ = &m->t[i_];                                             \
            if (!t_) {                                                          \
                st = tc_fail(TC_E_INTERNAL, "no tensor %s", hf_);               \
                goto done;                                                      \
            }                                                                   \
            struct gm_ftensor *f_ = &ft[n++];                                   \
            f_->src = t_;                                                       \
            snprintf(f_->name, sizeof f_->name, "%s", meta_);                   \
            f_->ndim = t_->ndim;                                                \
            f_->shape[0] = t_->shape[0];                                        \
            f_->shape[1] = t_->shape[1];                                        \
            f_->split = o->mp > 1 ? (split_) : -1;                              \
            f_->part = p;                                                       \
            f_->nparts = o->mp;                                                 \
            f_->rope_d = (rope_) ? o->head_dim : 0;                             \
            if ((split_) == 0 && o->mp > 1)                                     \
                f_->shape[0] /= o->mp;                                          \
            if ((split_) == 1 && o->mp > 1)                                     \
                f_->shape[1] /= o->mp;                                          \
            if ((rope_) && o->mp == 1)                                          \
                f_->split = 0;                                                  \
            f_->nelem = (uint64_t)f_->shape[0] *                                \
                        (uint64_t)(f_->ndim == 2 ? f_->shape[1] : 1);           \
        } while (0)
        GM_FT("model.embed_tokens.weight", "tok_embeddings.weight", 1, 0);
        for (int64_t L = 0; L < o->layers; L++) {
            for (size_t k = 0; k < sizeof map / sizeof map[0]; k++) {
                char mname[GM_NAME_MAX];
                snprintf(hfname, sizeof hfname, "model.layers.%lld.%s", (long long)L, map[k].hf);
                snprintf(mname, sizeof mname, "layers.%lld.%s", (long long)L, map[k].meta);
                GM_FT(hfname, mname, map[k].split, map[k].rope);
            }
        }
        GM_FT("model.norm.weight", "norm.weight", -1, 0);
        GM_FT("lm_head.weight", "output.weight", 0, 0);
#undef GM_FT
        snprintf(fname, sizeof fname, "consolidated.%02lld.pth", (long long)p);
        snprintf(prefix, sizeof prefix, "consolidated.%02lld", (long long)p);
        uint64_t fb = 0;
        if ((st = tc_path_join(path, sizeof path, o->out, fname)) != TC_OK ||
            (st = gm_write_torch_file(o, ft, n, false, path, prefix, &fb)) != TC_OK)
            goto done;
        printf("%s: %zu tensors, %llu bytes\n", fname, n, (unsigned long long)fb);
        *total_tensors += n;
        *total_bytes += fb;
    }
done:
    free(ft);
    return st;
}
