/* verify_hf.c: `trtconv verify` of a Hugging Face-style checkpoint
 * (output/hf_ckpt.h), called by verify.c once the manifest says
 * "output_format": "hf" and config.json's digest is checked:
 *   integrity  every model-0000K-of-0000N.safetensors the manifest lists has
 *              its recorded size, tensor count and SHA-256 and a header the
 *              validating reader accepts;
 *   index      model.safetensors.index.json maps every tensor of every shard
 *              to the file holding it, nothing else, and its total_size is
 *              the sum of their bytes;
 *   format     the tensors are exactly those config.json implies: the
 *              LLaMA names and shapes in its dtype, and for the
 *              quantization_config's quant_algo (FP8,
 *              FP8_PER_CHANNEL_PER_TOKEN, NVFP4) each linear not matched by
 *              "ignore" stored quantized with its scales, the KV cache
 *              scales when kv_cache_scheme is set; every F32 scale finite
 *              and positive. Derived from config.json alone. */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <fnmatch.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "trtconv/core/dtype.h"
#include "trtconv/core/fsutil.h"
#include "trtconv/core/jsonutil.h"
#include "trtconv/core/log.h"
#include "trtconv/formats/safetensors.h"
#include "trtconv/output/manifest.h"
#include "trtconv/output/rankfile.h"
#include "verify_internal.h"

#define INDEX_MAX_BYTES (64u << 20)

typedef tc_verify_expect_list hf_list;

#define problem tc_verify_problem
/* One more tensor config.json implies (the list records a failure). */
#define add(l, ...) ((void)tc_verify_expect((l), __VA_ARGS__))

static int64_t cfg_int(const cJSON *c, const char *key, int64_t dflt)
{
    int64_t v;
    return tc_json_int(tc_json_get(c, key), 1, INT64_C(1) << 40, &v) ? v : dflt;
}

static bool ignored(const cJSON *ignore, const char *module)
{
    const cJSON *p;
    cJSON_ArrayForEach(p, ignore)
        if (cJSON_IsString(p) && fnmatch(p->valuestring, module, 0) == 0)
            return true;
    return false;
}

/* A linear `module` [N, K] as config.json's quantization implies. */
static void add_linear(hf_list *l, const cJSON *qc, const char *algo, tc_dtype dt, bool bias,
                       int64_t N, int64_t K, const char *module)
{
    const bool q = algo && !ignored(tc_json_get(qc, "ignore"), module);
    if (!q)
        add(l, dt, 2, N, K, "%s.weight", module);
    else if (!strcmp(algo, "NVFP4")) {
        add(l, TC_DT_U8, 2, N, K / 2, "%s.weight", module);
        add(l, TC_DT_F8_E4M3, 2, N, K / 16, "%s.weight_scale", module);
        add(l, TC_DT_F32, 0, 0, 0, "%s.weight_scale_2", module);
        add(l, TC_DT_F32, 0, 0, 0, "%s.input_scale", module);
    } else {
        add(l, TC_DT_F8_E4M3, 2, N, K, "%s.weight", module);
        if (!strcmp(algo, "FP8")) {
            add(l, TC_DT_F32, 0, 0, 0, "%s.weight_scale", module);
            add(l, TC_DT_F32, 0, 0, 0, "%s.input_scale", module);
        } else {
            add(l, TC_DT_F32, 1, N, 0, "%s.weight_scale", module);
        }
    }
    if (bias)
        add(l, dt, 1, N, 0, "%s.bias", module);
}

/* Every tensor config.json implies; false (with a problem) when it cannot
 * say. */
static bool expected_tensors(const cJSON *c, hf_list *l)
{
    const int64_t H = cfg_int(c, "hidden_size", -1), L = cfg_int(c, "num_hidden_layers", -1);
    const int64_t nh = cfg_int(c, "num_attention_heads", -1), V = cfg_int(c, "vocab_size", -1);
    const int64_t I = cfg_int(c, "intermediate_size", -1);
    const int64_t nkv = cfg_int(c, "num_key_value_heads", nh);
    const int64_t d = cfg_int(c, "head_dim", nh > 0 ? H / nh : -1);
    const cJSON *dtj = tc_json_get(c, "torch_dtype");
    if (!cJSON_IsString(dtj))
        dtj = tc_json_get(c, "dtype");
    tc_float_type ft;
    if (H < 1 || L < 1 || nh < 1 || V < 1 || I < 1 || !cJSON_IsString(dtj) ||
        tc_float_type_parse(dtj->valuestring, &ft) != 0) {
        problem("config.json: hidden_size, num_hidden_layers, num_attention_heads, vocab_size, "
                "intermediate_size and torch_dtype are needed to know the tensors");
        return false;
    }
    const tc_dtype dt = tc_float_type_dtype(ft);
    const cJSON *qc = tc_json_get(c, "quantization_config");
    const cJSON *algo_j = tc_json_get(qc, "quant_algo");
    const char *algo = cJSON_IsString(algo_j) ? algo_j->valuestring : NULL;
    if (algo && strcmp(algo, "FP8") && strcmp(algo, "FP8_PER_CHANNEL_PER_TOKEN") &&
        strcmp(algo, "NVFP4")) {
        problem("config.json: quantization_config.quant_algo %s is not one trtconv writes", algo);
        return false;
    }
    const bool kv = tc_json_get(qc, "kv_cache_scheme") != NULL;
    const bool ab = cJSON_IsTrue(tc_json_get(c, "attention_bias"));
    const bool mb = cJSON_IsTrue(tc_json_get(c, "mlp_bias"));
    add(l, dt, 2, V, H, "model.embed_tokens.weight");
    for (int64_t g = 0; g < L; g++) {
        char m[128];
#define MOD(s_) (snprintf(m, sizeof m, "model.layers.%lld.%s", (long long)g, s_), m)
        add_linear(l, qc, algo, dt, ab, nh * d, H, MOD("self_attn.q_proj"));
        add_linear(l, qc, algo, dt, ab, nkv * d, H, MOD("self_attn.k_proj"));
        add_linear(l, qc, algo, dt, ab, nkv * d, H, MOD("self_attn.v_proj"));
        add_linear(l, qc, algo, dt, ab, H, nh * d, MOD("self_attn.o_proj"));
        add_linear(l, qc, algo, dt, mb, I, H, MOD("mlp.gate_proj"));
        add_linear(l, qc, algo, dt, mb, I, H, MOD("mlp.up_proj"));
        add_linear(l, qc, algo, dt, mb, H, I, MOD("mlp.down_proj"));
#undef MOD
        if (kv) {
            add(l, TC_DT_F32, 0, 0, 0, "model.layers.%lld.self_attn.k_proj.k_scale", (long long)g);
            add(l, TC_DT_F32, 0, 0, 0, "model.layers.%lld.self_attn.v_proj.v_scale", (long long)g);
        }
        add(l, dt, 1, H, 0, "model.layers.%lld.input_layernorm.weight", (long long)g);
        add(l, dt, 1, H, 0, "model.layers.%lld.post_attention_layernorm.weight", (long long)g);
    }
    add(l, dt, 1, H, 0, "model.norm.weight");
    if (!cJSON_IsTrue(tc_json_get(c, "tie_word_embeddings")))
        add(l, dt, 2, V, H, "lm_head.weight");
    return true;
}


/* A 0-dim or 1-D F32 scale: every value finite and positive. */
static void check_scale(const char *path, tc_st_file *f, const tc_st_tensor *t)
{
    const size_t n = (size_t)((t->end - t->begin) / 4);
    float *v = malloc(n ? n * 4 : 4);
    if (!v || tc_st_read(f, t->begin, v, n * 4) != TC_OK) {
        problem("%s: tensor %s cannot be read", path, t->name);
    } else {
        for (size_t i = 0; i < n; i++)
            if (!isfinite(v[i]) || v[i] <= 0.0f) {
                problem("%s: tensor %s element %zu is %g, not a positive finite scale", path,
                        t->name, i, (double)v[i]);
                break;
            }
    }
    free(v);
}

void tc_verify_hf(const char *dir, const cJSON *config, const cJSON *man, bool hash,
                  int64_t *files_ok, uint64_t *bytes)
{
    hf_list l = { 0 };
    char path[4200];
    cJSON *index = NULL;
    const cJSON *files = tc_json_get(man, "files");
    int64_t world = 0;
    if (!expected_tensors(config, &l))
        goto done;
    if (l.out_of_memory) {
        problem("%s: out of memory listing the tensors config.json implies", dir);
        goto done;
    }
    if (!tc_json_int(tc_json_get(man, "world_size"), 1, 99999, &world) || !cJSON_IsArray(files) ||
        cJSON_GetArraySize(files) != world) {
        problem("%s/%s: world_size and \"files\" must list every shard", dir, TC_MANIFEST_NAME);
        goto done;
    }
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    char *text = NULL;
    size_t len = 0;
    tc_log_push_quiet();
    const tc_status rs = tc_read_small_file(path, INDEX_MAX_BYTES, &text, &len);
    tc_log_pop_quiet();
    index = rs == TC_OK ? tc_json_parse(path, text, len) : NULL;
    free(text);
    const cJSON *map = tc_json_get(index, "weight_map");
    int64_t total = -1;
    if (!cJSON_IsObject(map) ||
        !tc_json_int(tc_json_get(tc_json_get(index, "metadata"), "total_size"), 0,
                     INT64_C(1) << 53, &total))
        problem("%s: missing, or without weight_map and metadata.total_size", path);
    const cJSON *it;
    cJSON_ArrayForEach(it, map) {
        tc_verify_expected *x = tc_verify_expect_find(&l, it->string);
        if (!x)
            problem("%s: names %s, which config.json does not imply", path, it->string);
        else if (cJSON_IsString(it))
            snprintf(x->file, sizeof x->file, "%s", it->valuestring);
    }
    uint64_t data = 0;
    for (int64_t r = 0; r < world; r++) {
        tc_rank_entry e;
        char why[256];
        long of = -1;
        if (!tc_rank_entry_parse(cJSON_GetArrayItem(files, (int)r), &e, why, sizeof why) ||
            e.rank != r || tc_cell_file_index(e.file, &of) != r || of != world) {
            problem("%s/%s: files[%lld]: %s", dir, TC_MANIFEST_NAME, (long long)r,
                    e.rank != r || of != world ? "not shard r of world_size" : why);
            continue;
        }
        const int before = tc_verify_problems();
        snprintf(path, sizeof path, "%s/%s", dir, e.file);
        struct stat sb;
        tc_st_file *f = NULL;
        tc_st_error err = TC_ST_OK;
        if (lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode) || (uint64_t)sb.st_size != e.size) {
            problem("%s: missing or not the %llu bytes the manifest records", path,
                    (unsigned long long)e.size);
            continue;
        }
        if (tc_st_open(path, &f, &err) != TC_OK) {
            problem("%s: header invalid (%s)", path, tc_st_error_name(err));
            continue;
        }
        if (f->n_tensors != e.tensors)
            problem("%s: %zu tensors, the manifest records %llu", path, f->n_tensors,
                    (unsigned long long)e.tensors);
        for (size_t k = 0; k < f->n_tensors; k++) {
            const tc_st_tensor *t = &f->tensors[k];
            tc_verify_expected *x = tc_verify_expect_find(&l, t->name);
            data += t->end - t->begin;
            if (!x) {
                problem("%s: tensor %s is not part of the format for this config", path, t->name);
                continue;
            }
            if (x->seen)
                problem("%s: tensor %s is stored twice", path, t->name);
            x->seen = true;
            if (strcmp(x->file, e.file))
                problem("%s: tensor %s is here, the index says %s", path, t->name,
                        x->file[0] ? x->file : "(nothing)");
            bool shape_ok = t->ndim == x->ndim && t->dtype == x->dtype;
            for (int dd = 0; shape_ok && dd < x->ndim; dd++)
                shape_ok = t->shape[dd] == x->shape[dd];
            if (!shape_ok)
                problem("%s: tensor %s is not %s of %d dimension(s) [%lld, %lld] as config.json "
                        "implies", path, t->name, tc_dtype_name(x->dtype), x->ndim,
                        (long long)x->shape[0], (long long)x->shape[1]);
            else if (x->dtype == TC_DT_F32 && strstr(t->name, "scale"))
                check_scale(path, f, t);
        }
        tc_st_close(f);
        if (hash) {
            char hex[TC_SHA256_HEX];
            uint64_t size = 0;
            if (tc_sha256_tree_file(path, TC_HASH_THREADS, hex, &size) != TC_OK)
                problem("%s: cannot be read to hash it", path);
            else if (strcmp(hex, e.sha256) != 0)
                problem("%s: sha256_tree %s, the manifest records %s", path, hex, e.sha256);
        }
        if (tc_verify_problems() == before) {
            (*files_ok)++;
            *bytes += e.size;
        }
    }
    for (size_t i = 0; i < l.n; i++)
        if (!l.v[i].seen)
            problem("%s: tensor %s missing from every shard", dir, l.v[i].name);
    if (total >= 0 && (uint64_t)total != data)
        problem("%s/model.safetensors.index.json: total_size %lld, the shards hold %llu bytes",
                dir, (long long)total, (unsigned long long)data);
done:
    cJSON_Delete(index);
    tc_verify_expect_free(&l);
}
