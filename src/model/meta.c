/* meta.c: Meta consolidated.*.pth checkpoints (params.json and model-
 * parallel shards) read under Hugging Face names (see hf_model.h). */
#define _POSIX_C_SOURCE 200809L
#include "trtconv/model/hf_model.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model_internal.h"
#include "trtconv/core/fsutil.h"
#include "trtconv/core/jsonutil.h"
#include "trtconv/core/log.h"
#include "trtconv/formats/torchfile.h"

/* ---------------------------------------------------------------------------
 * Source tensors (Hugging Face names) and Meta checkpoints
 * ------------------------------------------------------------------------- */

void hfm_fill_one(tc_hf_tensor *out, const tc_st_file *f, const tc_st_tensor *t)
{
    out->path = f->path;
    out->dtype = t->dtype;
    out->ndim = t->ndim;
    out->shape[0] = t->ndim >= 1 ? t->shape[0] : 1;
    out->shape[1] = t->ndim >= 2 ? t->shape[1] : 1;
    out->n_parts = 1;
    out->files[0] = f;
    out->parts[0] = t;
}

/* Meta's name, model-parallel dimension and rotary layout of a Hugging
 * Face tensor (TensorRT-LLM load_from_meta_llama: wo, w2 and tok_embeddings
 * are split on dim 1, norms are replicated, the rest split on dim 0). */
static bool meta_name(const char *hf, char *out, size_t n, int *split, bool *rope)
{
    static const struct { const char *hf, *meta; int split; bool rope; } layer[] = {
        { "self_attn.q_proj.weight", "attention.wq.weight", 0, true },
        { "self_attn.k_proj.weight", "attention.wk.weight", 0, true },
        { "self_attn.v_proj.weight", "attention.wv.weight", 0, false },
        { "self_attn.o_proj.weight", "attention.wo.weight", 1, false },
        { "mlp.gate_proj.weight", "feed_forward.w1.weight", 0, false },
        { "mlp.up_proj.weight", "feed_forward.w3.weight", 0, false },
        { "mlp.down_proj.weight", "feed_forward.w2.weight", 1, false },
        { "input_layernorm.weight", "attention_norm.weight", -1, false },
        { "post_attention_layernorm.weight", "ffn_norm.weight", -1, false },
    };
    *rope = false;
    if (strcmp(hf, "model.embed_tokens.weight") == 0) {
        *split = 1;
        return (size_t)snprintf(out, n, "tok_embeddings.weight") < n;
    }
    if (strcmp(hf, "model.norm.weight") == 0) {
        *split = -1;
        return (size_t)snprintf(out, n, "norm.weight") < n;
    }
    if (strcmp(hf, "lm_head.weight") == 0) {
        *split = 0;
        return (size_t)snprintf(out, n, "output.weight") < n;
    }
    long long layer_no = -1;
    int used = 0;
    if (sscanf(hf, "model.layers.%lld.%n", &layer_no, &used) != 1 || used == 0 || layer_no < 0)
        return false;
    for (size_t i = 0; i < sizeof layer / sizeof layer[0]; i++) {
        if (strcmp(hf + used, layer[i].hf) == 0) {
            *split = layer[i].split;
            *rope = layer[i].rope;
            return (size_t)snprintf(out, n, "layers.%lld.%s", layer_no, layer[i].meta) < n;
        }
    }
    return false;
}

tc_status hfm_meta_get(tc_hf_model *m, const char *name, bool required, tc_hf_tensor *out)
{
    char mn[256];
    int split = -1;
    bool rope = false;
    if (!meta_name(name, mn, sizeof mn, &split, &rope)) {
        if (required)
            return tc_fail(TC_E_INPUT, "tensor %s has no counterpart in a Meta checkpoint (%s)",
                           name, m->dir);
        return TC_OK;
    }
    size_t n = split < 0 ? 1 : m->n_shards;
    for (size_t s = 0; s < n; s++) {
        const tc_st_file *f = NULL;
        TC_TRY(hfm_get_shard(m, s, &f));
        const tc_st_tensor *t = tc_st_find(f, mn);
        if (!t) {
            if (!required && s == 0)
                return TC_OK;
            return tc_fail(TC_E_INPUT, "%s: tensor %s (Meta's name for %s) is missing", f->path,
                           mn, name);
        }
        if (t->ndim < 1 || t->ndim > 2 || (split == 1 && t->ndim != 2))
            return tc_fail(TC_E_INPUT, "%s: tensor %s has %d dimensions (expected %s)", f->path,
                           mn, t->ndim, split == 1 ? "2" : "1 or 2");
        if (s == 0) {
            hfm_fill_one(out, f, t);
        } else {
            const tc_st_tensor *t0 = out->parts[0];
            if (t->dtype != t0->dtype || t->ndim != t0->ndim || t->shape[0] != t0->shape[0] ||
                (t->ndim == 2 && t->shape[1] != t0->shape[1]))
                return tc_fail(TC_E_INPUT, "%s: tensor %s differs in dtype or shape from its "
                               "part in %s (model-parallel shards must hold equal pieces)",
                               f->path, mn, out->files[0]->path);
            out->files[s] = f;
            out->parts[s] = t;
        }
    }
    out->n_parts = n;
    out->split_dim = n > 1 ? split : -1;
    if (out->split_dim >= 0)
        out->shape[out->split_dim] *= (int64_t)n;
    if (rope) {
        const int64_t d = m->cfg.head_dim, part_rows = out->parts[0]->shape[0];
        if (d % 2 != 0 || part_rows % d != 0)
            return tc_fail(TC_E_INPUT, "%s: tensor %s has %lld rows per model-parallel shard, "
                           "not whole heads of head_dim %lld (an even number is needed for "
                           "the rotary permutation): the KV or attention heads are not "
                           "divisible by the %zu shards", out->path, mn,
                           (long long)part_rows, (long long)d, m->n_shards);
        out->rope_head_dim = d;
    }
    return TC_OK;
}

tc_status tc_meta_params_parse(const char *label, const char *text, size_t len,
                               tc_hf_config *cfg)
{
    tc_status st = TC_OK;
    cJSON *root = NULL;

    memset(cfg, 0, sizeof *cfg);
    root = tc_json_parse(label, text, len);
    if (!root) {
        st = tc_fail(TC_E_INPUT, "%s: not valid JSON", label);
        goto done;
    }
    if (!cJSON_IsObject(root)) {
        st = tc_fail(TC_E_INPUT, "%s: the top level must be a JSON object, not %s", label,
                     hfm_json_type_name(root));
        goto done;
    }
    if ((st = hfm_check_no_dup(label, root, "the top-level object")) != TC_OK)
        goto done;
    /* LLaMAConfig.from_meta_ckpt (TensorRT-LLM): fixed architecture,
     * max_position_embeddings 2048, silu, dtype 'auto' -> bfloat16. */
    memcpy(cfg->architecture, "LlamaForCausalLM", sizeof "LlamaForCausalLM");
    memcpy(cfg->model_type, "llama", sizeof "llama");
    memcpy(cfg->hidden_act, "silu", sizeof "silu");
    cfg->max_position_embeddings = 2048;
    cfg->rope_theta = 10000.0;
    cfg->has_torch_dtype = true;
    cfg->torch_dtype = TC_FT_BFLOAT16;
    if ((st = hfm_get_pos_int(label, root, "dim", &cfg->hidden_size)) != TC_OK ||
        (st = hfm_get_pos_int(label, root, "n_layers", &cfg->num_hidden_layers)) != TC_OK ||
        (st = hfm_get_pos_int(label, root, "n_heads", &cfg->num_attention_heads)) != TC_OK)
        goto done;
    cfg->num_key_value_heads = cfg->num_attention_heads;
    if ((st = hfm_get_opt_pos_int(label, root, "n_kv_heads", &cfg->num_key_value_heads)) != TC_OK)
        goto done;
    /* vocab_size: 32000 when absent, and -1 (Llama 2's params.json) means
     * 32000 too. */
    cfg->vocab_size = 32000;
    const cJSON *vs = hfm_get_opt(root, "vocab_size");
    if (!(vs && cJSON_IsNumber(vs) && vs->valuedouble == -1.0) &&
        (st = hfm_get_opt_pos_int(label, root, "vocab_size", &cfg->vocab_size)) != TC_OK)
        goto done;
    if (hfm_get_opt(root, "hidden_dim")) {
        if ((st = hfm_get_pos_int(label, root, "hidden_dim", &cfg->intermediate_size)) != TC_OK)
            goto done;
    } else {
        /* multiple_of * ceil(int(int(4 * dim * 2 / 3) * ffn_dim_multiplier)
         * / multiple_of), in Python's float arithmetic; Meta's model.py
         * FeedForward computes the same. */
        int64_t multiple_of = 1;
        double mult = 1.0;
        if ((st = hfm_get_opt_pos_int(label, root, "multiple_of", &multiple_of)) != TC_OK ||
            (st = hfm_get_opt_double(label, root, "", "ffn_dim_multiplier", true, &mult)) != TC_OK)
            goto done;
        int64_t n = (int64_t)((double)(cfg->hidden_size * 8) / 3.0);
        double h = (double)n * mult;
        if (!(h < 9.0e15)) {
            st = tc_fail(TC_E_INPUT, "%s: ffn_dim_multiplier = %.17g gives an intermediate size "
                         "that is too large", label, mult);
            goto done;
        }
        int64_t x = (int64_t)h;
        cfg->intermediate_size = multiple_of * ((x + multiple_of - 1) / multiple_of);
        if (cfg->intermediate_size < 1 || cfg->intermediate_size > TC_HF_DIM_MAX) {
            st = tc_fail(TC_E_INPUT, "%s: the intermediate size %lld computed from dim, "
                         "multiple_of and ffn_dim_multiplier is out of range", label,
                         (long long)cfg->intermediate_size);
            goto done;
        }
    }
    if (!hfm_get_opt(root, "norm_eps")) {
        st = tc_fail(TC_E_INPUT, "%s: required key \"norm_eps\" is missing", label);
        goto done;
    }
    if ((st = hfm_get_opt_double(label, root, "", "norm_eps", false, &cfg->rms_norm_eps)) != TC_OK ||
        (st = hfm_get_opt_double(label, root, "", "rope_theta", true, &cfg->rope_theta)) != TC_OK)
        goto done;
    bool scaled = false;
    if ((st = hfm_get_opt_bool(label, root, "use_scaled_rope", &scaled)) != TC_OK)
        goto done;
    const cJSON *rs = hfm_get_opt(root, "rope_scaling");
    if (scaled) {
        /* from_meta_ckpt: rotary_scaling = {"type": "llama3"}; TensorRT-LLM
         * fills factor 8, low 1, high 4, original 8192 for that type. */
        cfg->rope_scaling = cJSON_CreateObject();
        if (!cfg->rope_scaling || !cJSON_AddStringToObject(cfg->rope_scaling, "type", "llama3")) {
            st = tc_fail(TC_E_INTERNAL, "%s: out of memory", label);
            goto done;
        }
    } else if (rs) {
        if (!cJSON_IsObject(rs)) {
            st = tc_fail(TC_E_INPUT, "%s: \"rope_scaling\" must be an object or null, not %s",
                         label, hfm_json_type_name(rs));
            goto done;
        }
        if (!(cfg->rope_scaling = cJSON_Duplicate(rs, 1))) {
            st = tc_fail(TC_E_INTERNAL, "%s: out of memory", label);
            goto done;
        }
    }
    if (cfg->num_attention_heads % cfg->num_key_value_heads != 0) {
        st = tc_fail(TC_E_INPUT, "%s: n_kv_heads = %lld does not divide n_heads = %lld", label,
                     (long long)cfg->num_key_value_heads, (long long)cfg->num_attention_heads);
        goto done;
    }
    if (cfg->hidden_size % cfg->num_attention_heads != 0) {
        st = tc_fail(TC_E_INPUT, "%s: n_heads = %lld does not divide dim = %lld", label,
                     (long long)cfg->num_attention_heads, (long long)cfg->hidden_size);
        goto done;
    }
    cfg->head_dim = cfg->hidden_size / cfg->num_attention_heads;

done:
    cJSON_Delete(root);
    if (st != TC_OK)
        tc_hf_config_free(cfg);
    return st;
}

tc_status tc_meta_open(const char *dir, tc_hf_model **out)
{
    tc_status st = TC_OK;
    tc_hf_model *m = NULL;
    char path[TC_HF_PATH_MAX], name[64];
    char *text = NULL;
    size_t len = 0, n = 0;
    struct stat sb;
    DIR *d = NULL;

    *out = NULL;
    if (stat(dir, &sb) != 0)
        return tc_fail(TC_E_INPUT, "Meta checkpoint directory %s: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return tc_fail(TC_E_INPUT, "Meta checkpoint directory %s is not a directory", dir);
    m = calloc(1, sizeof *m);
    if (!m || !(m->dir = hfm_dup_str(dir)) || pthread_mutex_init(&m->lock, NULL) != 0) {
        if (m)
            free(m->dir);
        free(m);
        return tc_fail(TC_E_INTERNAL, "%s: out of memory", __func__);
    }
    m->format = TC_HF_META;
    m->config_name = "params.json";
    if ((st = tc_path_join(path, sizeof path, dir, "params.json")) != TC_OK)
        goto done;
    if (stat(path, &sb) != 0 && errno == ENOENT) {
        st = tc_fail(TC_E_INPUT, "%s: no params.json (is this a Meta checkpoint directory?)", dir);
        goto done;
    }
    if ((st = tc_read_small_file(path, TC_HF_CONFIG_MAX, &text, &len)) != TC_OK ||
        (st = tc_meta_params_parse(path, text, len, &m->cfg)) != TC_OK)
        goto done;

    /* consolidated.NN.pth, NN = 00 .. MP-1 with none missing (TensorRT-LLM
     * opens f"consolidated.{i:02d}.pth"). */
    if (!(d = opendir(dir))) {
        st = tc_fail(TC_E_IO, "%s: cannot list: %s", dir, strerror(errno));
        goto done;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l > 17 && strncmp(e->d_name, "consolidated.", 13) == 0 &&
            strcmp(e->d_name + l - 4, ".pth") == 0)
            n++;
    }
    if (n == 0) {
        st = tc_fail(TC_E_INPUT, "%s: no consolidated.*.pth files", dir);
        goto done;
    }
    if (n > TC_HF_MAX_PARTS) {
        st = tc_fail(TC_E_INPUT, "%s: %zu consolidated.*.pth files, more than the %d "
                     "model-parallel shards trtconv reads", dir, n, TC_HF_MAX_PARTS);
        goto done;
    }
    m->shard_names = calloc(n, sizeof *m->shard_names);
    m->shards = calloc(n, sizeof *m->shards);
    if (!m->shard_names || !m->shards) {
        st = tc_fail(TC_E_INTERNAL, "%s: out of memory", __func__);
        goto done;
    }
    m->n_shards = n;
    for (size_t i = 0; i < n; i++) {
        snprintf(name, sizeof name, "consolidated.%02zu.pth", i);
        if ((st = tc_path_join(path, sizeof path, dir, name)) != TC_OK)
            goto done;
        if (stat(path, &sb) != 0) {
            st = tc_fail(TC_E_INPUT, "%s: %zu consolidated.*.pth files but %s is missing (shards "
                         "must be numbered 00 .. %02zu)", dir, n, name, n - 1);
            goto done;
        }
        if (!(m->shard_names[i] = hfm_dup_str(name))) {
            st = tc_fail(TC_E_INTERNAL, "%s: out of memory", __func__);
            goto done;
        }
    }

done:
    if (d)
        closedir(d);
    free(text);
    if (st == TC_OK)
        *out = m;
    else
        tc_hf_close(m);
    return st;
}
