/* genmodel.h: the parts of trtconv-genmodel (src/tools/genmodel/), a
 * deterministic generator of Hugging Face LLaMA / Mistral checkpoint
 * directories of any shape (docs/genmodel.md):
 *   options.c       the command line (cli/args.h table)
 *   model.c         the tensor list and the value of every element
 *   hf_writer.c     config.json, the index, safetensors shards (threads)
 *   torch_writer.c  pytorch_model*.bin and Meta consolidated.*.pth
 *   main.c          the run
 *
 * Output (DIR = --out):
 *   DIR/config.json                      transformers 4 or 5 style, indent 2,
 *                                        keys sorted (json.dumps(indent=2,
 *                                        sort_keys=True) + "\n");
 *   DIR/model.safetensors                with --shards 1, or
 *   DIR/model-0000k-of-0000N.safetensors with --shards N > 1, plus
 *   DIR/model.safetensors.index.json     {"metadata":{"total_size":T},
 *                                         "weight_map":{name:file}}.
 * Safetensors files follow st_writer.h (no __metadata__).
 *
 * Values: element i of tensor `name` is a pure function of (seed, name, i):
 *   key = mix(seed ^ mix(fnv1a64(name)));  z = mix(key + (i + 1) * PHI64);
 *   x   = ((int64_t)(z >> 40) - 2^23) * 2^-23        in [-1, 1), exact;
 *   linear weight: x * (float)(1/sqrt(in_features));  embedding: x * 0.05f;
 *   bias: x * 0.01f;  norm weight: (float)(1.0 + (double)x * (double)0.05f)
 * (the double product is exact, so FMA contraction cannot change it),
 * all in binary32/binary64 IEEE arithmetic; then
 * converted to the output dtype by tc_convert (the rounding of
 * tc_f32_to_f16 / tc_f32_to_bf16). --special_values then overwrite the first
 * elements of two tensors (gm_special_*). Each file is filled in 4 MiB
 * chunks by several threads with pwrite; the bytes do not depend on the
 * thread count or the order of the chunks.
 *
 * Ownership: a gm_model owns its tensor list; gm_buf owns its text. */
#ifndef TRTCONV_GENMODEL_H
#define TRTCONV_GENMODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "trtconv/core/dtype.h"
#include "trtconv/core/status.h"

/* ------------------------------------------------------------------ */
/* Options                                                              */

#define GM_CHUNK_BYTES ((size_t)4 << 20)  /* bytes per generated chunk */
#define GM_SCRATCH_ELEMS ((size_t)16384)  /* F32 staging block, 64 KiB */
#define GM_MAX_DIM ((int64_t)1 << 31)     /* bound of every dimension */
#define GM_MAX_TOTAL ((uint64_t)1 << 50)  /* bound of the model size */
#define GM_MAX_THREADS 256
#define GM_NAME_MAX 128

enum gm_arch { GM_ARCH_LLAMA, GM_ARCH_MISTRAL };
enum gm_style { GM_STYLE_HF4, GM_STYLE_HF5 };
enum gm_rope { GM_ROPE_NONE, GM_ROPE_LINEAR, GM_ROPE_DYNAMIC, GM_ROPE_LLAMA3 };
enum gm_format { GM_FMT_SAFETENSORS, GM_FMT_BIN, GM_FMT_META };

struct gm_opts {
    const char *out;
    int64_t layers, hidden, heads, kv_heads, head_dim, intermediate, vocab;
    int64_t shards, max_pos, threads, seed, mp, multiple_of;
    int64_t experts, top_k;   /* > 0: a Mixtral (mixture of experts) */
    int64_t outlier_channels; /* > 0: that many of the layer norms' channels ... */
    double outlier_gain;      /* ... have their gain multiplied by this */
    int format;           /* enum gm_format */
    tc_float_type ft;
    bool tied, attention_bias, special_values;
    int arch;             /* enum gm_arch */
    int style;            /* enum gm_style */
    int rope;             /* enum gm_rope */
    double rope_theta, rms_norm_eps;
};


enum gm_kind { GM_K_EMBED, GM_K_LINEAR, GM_K_NORM, GM_K_BIAS };

struct gm_tensor {
    char name[GM_NAME_MAX];
    enum gm_kind kind;
    int ndim;
    int64_t shape[2];
    uint64_t nelem;
    uint64_t nbytes;
    uint64_t key;      /* per-tensor hash key */
    float scale;       /* half-width of the value range (see file top) */
    int special;       /* receives --special_values */
    int64_t outlier_every; /* > 0: elements i % outlier_every == 0 times outlier_gain */
    float outlier_gain;
    int shard;         /* 0-based file index */
};

#define GM_PHI64 0x9E3779B97F4A7C15ULL

struct gm_model {
    struct gm_tensor *t;   /* [n], HF state_dict order */
    size_t n;
    uint64_t total_bytes;
    size_t *first;         /* [shards + 1]: shard s holds t[first[s]..first[s+1]) */
};

/* A growable string for the JSON files. */
struct gm_buf {
    char *p;
    size_t len, cap;
    int oom;
};

void gm_usage(FILE *f);

tc_status gm_parse_args(int argc, char **argv, struct gm_opts *o, int *help);





tc_status gm_model_build(const struct gm_opts *o, struct gm_model *m);

void gm_special_list(tc_float_type ft, const uint32_t **v, size_t *n);

float gm_value(const struct gm_tensor *t, uint64_t i);

float gm_f32_of_bits(uint32_t u);


void gm_fill(const struct gm_tensor *t, tc_float_type ft, uint64_t e0,
                    size_t n, unsigned char *p, unsigned char *scratch);

tc_status gm_write_text(const char *path, const char *text);

void gm_buf_printf(struct gm_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void gm_fmt_float(double v, char out[64]);

tc_status gm_write_config(const struct gm_opts *o, const char *path);


tc_status gm_write_index(const struct gm_model *m,
                                char (*fnames)[64], const char *path);



tc_status gm_write_shard(const struct gm_opts *o, struct gm_model *m,
                                int shard, const char *path,
                                size_t *ntensors, uint64_t *fbytes);




tc_status gm_write_bin(const struct gm_opts *o, struct gm_model *m, char (*fnames)[64],
                              size_t *total_tensors, uint64_t *total_bytes);


tc_status gm_write_meta(const struct gm_opts *o, struct gm_model *m,
                               size_t *total_tensors, uint64_t *total_bytes);


#endif
