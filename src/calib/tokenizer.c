/* tokenizer.c: loading a model's tokenizer, added tokens, the encode
 * pipeline and post-processing (see tokenizer.h).
 *
 * The pipeline is the tokenizers library's Tokenizer::encode: added tokens
 * are cut out of the raw text (those with normalized = false), the rest is
 * normalized and cut again at added tokens with normalized = true
 * (AddedVocabulary::extract_and_normalize), pre-tokenized, run through BPE,
 * truncated (room kept for the post-processor's special tokens) and
 * post-processed. */
#define _POSIX_C_SOURCE 200809L
#define PCRE2_CODE_UNIT_WIDTH 8
#include "trtconv/calib/tokenizer.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "tok_internal.h"
#include "trtconv/core/fsutil.h"
#include "trtconv/core/jsonutil.h"
#include "trtconv/core/log.h"

/* ---- small utilities ---- */

/* tc_read_small_file (fsutil.h) of an optional file: *exists false (and
 * TC_OK) when it is absent. */
static tc_status read_if_present(const char *path, bool *exists, char **data, size_t *len)
{
    struct stat sb;
    *data = NULL;
    *len = 0;
    *exists = stat(path, &sb) == 0 || errno != ENOENT;
    if (!*exists)
        return TC_OK;
    return tc_read_small_file(path, TC_TOKENIZER_MAX_FILE, data, len);
}

/* A token given as "text" or {"content": "text", ...}; NULL if neither. */
const char *tok_token_text(const cJSON *v)
{
    if (cJSON_IsString(v))
        return v->valuestring;
    const cJSON *c = tc_json_get(v, "content");
    return cJSON_IsString(c) ? c->valuestring : NULL;
}

bool tok_cfg_bool(const cJSON *cfg, const char *key, bool dflt, bool *present)
{
    const cJSON *v = tc_json_get(cfg, key);
    if (present)
        *present = cJSON_IsBool(v);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

/* ---- post-processor ---- */
static tc_status ids_append(int32_t **v, size_t *n, const int32_t *add, size_t k, bool front)
{
    if (k == 0)
        return TC_OK;
    int32_t *p = realloc(*v, (*n + k + 1) * sizeof *p);
    if (!p)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    if (front) {
        memmove(p + k, p, *n * sizeof *p);
        memcpy(p, add, k * sizeof *p);
    } else {
        memcpy(p + *n, add, k * sizeof *p);
    }
    *v = p;
    *n += k;
    return TC_OK;
}

/* TemplateProcessing "single": specials before and after {"Sequence": A}. */
static tc_status parse_template(tc_tokenizer *t, const cJSON *pp, const char *where)
{
    const cJSON *single = tc_json_get(pp, "single"), *specials = tc_json_get(pp, "special_tokens");
    if (!cJSON_IsArray(single))
        return tc_fail(TC_E_INPUT, "%s: TemplateProcessing needs a \"single\" array", where);
    int32_t *pre = NULL, *post = NULL;
    size_t n_pre = 0, n_post = 0;
    bool seen_a = false;
    tc_status st = TC_OK;
    for (const cJSON *it = single->child; it && st == TC_OK; it = it->next) {
        const cJSON *sp = tc_json_get(it, "SpecialToken"), *sq = tc_json_get(it, "Sequence");
        if (sq) {
            if (seen_a)
                st = tc_fail(TC_E_INPUT, "%s: TemplateProcessing single names $A twice", where);
            seen_a = true;
            continue;
        }
        const cJSON *name = tc_json_get(sp, "id");
        const cJSON *def = cJSON_IsString(name) ? tc_json_get(specials, name->valuestring) : NULL;
        const cJSON *ids = tc_json_get(def, "ids");
        if (!cJSON_IsArray(ids)) {
            st = tc_fail(TC_E_INPUT, "%s: TemplateProcessing item without a known special token",
                         where);
            break;
        }
        for (const cJSON *v = ids->child; v && st == TC_OK; v = v->next) {
            int64_t id;
            if (!tc_json_int(v, 0, (1 << 26) - 1, &id)) {
                st = tc_fail(TC_E_INPUT, "%s: TemplateProcessing special token id out of range",
                             where);
                break;
            }
            int32_t i32 = (int32_t)id;
            st = seen_a ? ids_append(&post, &n_post, &i32, 1, false)
                        : ids_append(&pre, &n_pre, &i32, 1, false);
        }
    }
    if (st == TC_OK && !seen_a)
        st = tc_fail(TC_E_INPUT, "%s: TemplateProcessing single has no $A", where);
    if (st == TC_OK)
        st = ids_append(&t->pre_ids, &t->n_pre, pre, n_pre, true);
    if (st == TC_OK)
        st = ids_append(&t->post_ids, &t->n_post, post, n_post, false);
    free(pre);
    free(post);
    return st;
}

static tc_status parse_post(tc_tokenizer *t, const cJSON *pp, const char *where)
{
    if (!pp || cJSON_IsNull(pp))
        return TC_OK;
    const cJSON *type = tc_json_get(pp, "type");
    const char *ty = cJSON_IsString(type) ? type->valuestring : "";
    if (strcmp(ty, "Sequence") == 0) {
        const cJSON *arr = tc_json_get(pp, "processors");
        if (!cJSON_IsArray(arr))
            return tc_fail(TC_E_INPUT, "%s: post_processor Sequence needs \"processors\"", where);
        for (const cJSON *c = arr->child; c; c = c->next)
            TC_TRY(parse_post(t, c, where));
        return TC_OK;
    }
    if (strcmp(ty, "ByteLevel") == 0)
        return TC_OK; /* offsets only */
    if (strcmp(ty, "TemplateProcessing") == 0)
        return parse_template(t, pp, where);
    if (strcmp(ty, "RobertaProcessing") == 0 || strcmp(ty, "BertProcessing") == 0) {
        const cJSON *cls = tc_json_get(pp, "cls"), *sep = tc_json_get(pp, "sep");
        int64_t c, s;
        if (!cJSON_IsArray(cls) || !cJSON_IsArray(sep) || cJSON_GetArraySize(cls) != 2 ||
            cJSON_GetArraySize(sep) != 2 ||
            !tc_json_int(cJSON_GetArrayItem(cls, 1), 0, (1 << 26) - 1, &c) ||
            !tc_json_int(cJSON_GetArrayItem(sep, 1), 0, (1 << 26) - 1, &s))
            return tc_fail(TC_E_INPUT, "%s: %s needs \"cls\" and \"sep\" as [token, id]", where, ty);
        int32_t ci = (int32_t)c, si = (int32_t)s;
        TC_TRY(ids_append(&t->pre_ids, &t->n_pre, &ci, 1, true));
        return ids_append(&t->post_ids, &t->n_post, &si, 1, false);
    }
    return tc_fail(TC_E_INPUT, "%s: post_processor type \"%s\" is not supported", where, ty);
}

/* transformers' update_post_processor: BOS/EOS from add_bos_token and
 * add_eos_token. */
static tc_status bos_eos_template(tc_tokenizer *t, const cJSON *cfg, bool add_bos, bool add_eos,
                                  const char *where)
{
    free(t->pre_ids);
    free(t->post_ids);
    t->pre_ids = t->post_ids = NULL;
    t->n_pre = t->n_post = 0;
    const char *bos = tok_token_text(tc_json_get(cfg, "bos_token"));
    const char *eos = tok_token_text(tc_json_get(cfg, "eos_token"));
    if (add_bos) {
        int32_t id = tok_token_id(t, bos ? bos : "<s>");
        if (id < 0)
            return tc_fail(TC_E_INPUT, "%s: add_bos_token is true but the BOS token \"%s\" is not "
                           "in the vocabulary", where, bos ? bos : "<s>");
        TC_TRY(ids_append(&t->pre_ids, &t->n_pre, &id, 1, false));
    }
    if (add_eos) {
        int32_t id = tok_token_id(t, eos ? eos : "</s>");
        if (id < 0)
            return tc_fail(TC_E_INPUT, "%s: add_eos_token is true but the EOS token \"%s\" is not "
                           "in the vocabulary", where, eos ? eos : "</s>");
        TC_TRY(ids_append(&t->post_ids, &t->n_post, &id, 1, false));
    }
    return TC_OK;
}

/* ---- loading ---- */
static tc_status parse_hf_model(tc_tokenizer *t, const cJSON *model, const char *where)
{
    const cJSON *type = tc_json_get(model, "type"), *vocab = tc_json_get(model, "vocab");
    const cJSON *merges = tc_json_get(model, "merges");
    if (!cJSON_IsObject(model))
        return tc_fail(TC_E_INPUT, "%s: no \"model\" object", where);
    if (type && (!cJSON_IsString(type) || strcmp(type->valuestring, "BPE") != 0))
        return tc_fail(TC_E_INPUT, "%s: model type \"%s\" is not supported (trtconv supports BPE)",
                       where, cJSON_IsString(type) ? type->valuestring : "?");
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges))
        return tc_fail(TC_E_INPUT, "%s: BPE model needs a \"vocab\" object and a \"merges\" array",
                       where);
    const char *unsupported[] = {"continuing_subword_prefix", "end_of_word_suffix", "dropout"};
    for (int i = 0; i < 3; i++) {
        const cJSON *v = tc_json_get(model, unsupported[i]);
        if (v && !cJSON_IsNull(v) && !(cJSON_IsString(v) && !v->valuestring[0]) &&
            !(cJSON_IsNumber(v) && v->valuedouble == 0.0))
            return tc_fail(TC_E_INPUT, "%s: BPE option \"%s\" is not supported", where,
                           unsupported[i]);
    }
    const char *dup = tc_json_find_duplicate_key(vocab);
    if (dup)
        return tc_fail(TC_E_INPUT, "%s: token \"%s\" occurs twice in the vocabulary", where, dup);
    TC_TRY(tok_bpe_init(&t->bpe, (uint32_t)cJSON_GetArraySize(vocab)));
    for (const cJSON *v = vocab->child; v; v = v->next) {
        int64_t id;
        size_t len = strlen(v->string);
        if (!tc_json_int(v, 0, (1 << 26) - 1, &id))
            return tc_fail(TC_E_INPUT, "%s: vocabulary entry \"%s\" has no id in [0, 2^26)", where,
                           v->string);
        if (!tc_utf8_valid(v->string, len))
            return tc_fail(TC_E_INPUT, "%s: vocabulary entry %lld is not valid UTF-8", where,
                           (long long)id);
        if ((uint64_t)id < t->bpe.vocab.n_ids && t->bpe.vocab.str[id])
            return tc_fail(TC_E_INPUT, "%s: id %lld is used by two tokens", where, (long long)id);
        TC_TRY(tok_vocab_add(&t->bpe.vocab, v->string, len, (int32_t)id, false));
    }
    uint32_t rank = 0;
    for (const cJSON *m = merges->child; m; m = m->next, rank++) {
        const char *l, *r;
        size_t ll, rl;
        if (cJSON_IsString(m)) { /* "left right" (tokenizers < 0.20) */
            const char *sp = strchr(m->valuestring, ' ');
            if (!sp || strchr(sp + 1, ' '))
                return tc_fail(TC_E_INPUT, "%s: merge %u \"%s\" is not two tokens separated by one "
                               "space", where, rank, m->valuestring);
            l = m->valuestring;
            ll = (size_t)(sp - l);
            r = sp + 1;
            rl = strlen(r);
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 &&
                   cJSON_IsString(m->child) && cJSON_IsString(m->child->next)) {
            l = m->child->valuestring;
            ll = strlen(l);
            r = m->child->next->valuestring;
            rl = strlen(r);
        } else {
            return tc_fail(TC_E_INPUT, "%s: merge %u is neither \"a b\" nor [\"a\", \"b\"]", where,
                           rank);
        }
        int32_t li = tok_vocab_get(&t->bpe.vocab, l, ll), ri = tok_vocab_get(&t->bpe.vocab, r, rl);
        char *cat = malloc(ll + rl + 1);
        if (!cat)
            return tc_fail(TC_E_INTERNAL, "out of memory");
        memcpy(cat, l, ll);
        memcpy(cat + ll, r, rl);
        int32_t ni = tok_vocab_get(&t->bpe.vocab, cat, ll + rl);
        free(cat);
        if (li < 0 || ri < 0 || ni < 0)
            return tc_fail(TC_E_INPUT, "%s: merge %u (\"%.*s\", \"%.*s\") names a token outside "
                           "the vocabulary", where, rank, (int)ll, l, (int)rl, r);
        TC_TRY(tok_bpe_add_merge(&t->bpe, li, ri, ni, rank));
    }
    const cJSON *unk = tc_json_get(model, "unk_token");
    if (cJSON_IsString(unk)) {
        t->bpe.unk_id = tok_vocab_get(&t->bpe.vocab, unk->valuestring, strlen(unk->valuestring));
        if (t->bpe.unk_id < 0)
            return tc_fail(TC_E_INPUT, "%s: unk_token \"%s\" is not in the vocabulary", where,
                           unk->valuestring);
    }
    t->bpe.byte_fallback = tok_cfg_bool(model, "byte_fallback", false, NULL);
    t->bpe.fuse_unk = tok_cfg_bool(model, "fuse_unk", false, NULL);
    t->bpe.ignore_merges = tok_cfg_bool(model, "ignore_merges", false, NULL);
    tok_bpe_finish(&t->bpe);
    return TC_OK;
}

/* transformers 5's LlamaTokenizer pipeline (see tokenizer.h). */
static tc_status llama_pipeline(tc_tokenizer *t, const cJSON *cfg, const char *where)
{
    bool legacy = tok_cfg_bool(cfg, "legacy", false, NULL);
    bool prefix = tok_cfg_bool(cfg, "add_prefix_space", true, NULL);
    tok_step_free(t->normalizer);
    tok_step_free(t->pretok);
    t->normalizer = t->pretok = NULL;
    t->bpe.byte_fallback = true;
    t->bpe.fuse_unk = true;
    t->bpe.unk_id = -1;
    t->bpe.ignore_merges = false;
    TC_TRY(tok_metaspace_new(!prefix ? "never" : legacy ? "always" : "first", &t->pretok));
    const char *specials[] = {"unk_token", "bos_token", "eos_token"};
    const char *dflt[] = {"<unk>", "<s>", "</s>"};
    for (int i = 0; i < 3; i++) {
        const char *s = tok_token_text(tc_json_get(cfg, specials[i]));
        s = s ? s : dflt[i];
        int32_t id = tok_vocab_get(&t->bpe.vocab, s, strlen(s));
        if (id >= 0)
            TC_TRY(tok_add_token(t, s, id, false, false, false, false, true, where));
    }
    return bos_eos_template(t, cfg, tok_cfg_bool(cfg, "add_bos_token", true, NULL),
                            tok_cfg_bool(cfg, "add_eos_token", false, NULL), where);
}

static bool is_llama_class(const cJSON *cfg)
{
    const cJSON *c = tc_json_get(cfg, "tokenizer_class");
    return cJSON_IsString(c) && (strcmp(c->valuestring, "LlamaTokenizer") == 0 ||
                                 strcmp(c->valuestring, "LlamaTokenizerFast") == 0);
}

static tc_status load_spm(tc_tokenizer *t, const char *path, const char *data, size_t len,
                          const cJSON *cfg, const char *cfg_path)
{
    TC_TRY(tok_spm_load(path, (const uint8_t *)data, len, &t->bpe));
    TC_TRY(tok_parse_added_decoder(t, cfg, cfg_path));
    TC_TRY(llama_pipeline(t, cfg, cfg_path));
    snprintf(t->desc, sizeof t->desc, "%s (SentencePiece BPE, %u pieces, %u merges), "
             "LlamaTokenizer pipeline (Metaspace %s)", path, t->bpe.vocab.count, t->bpe.n_merges,
             tok_cfg_bool(cfg, "legacy", false, NULL) ? "always" : "first");
    return TC_OK;
}

static tc_status load_hf_json(tc_tokenizer *t, const char *path, const cJSON *j, const cJSON *cfg,
                              const char *cfg_path)
{
    TC_TRY(parse_hf_model(t, tc_json_get(j, "model"), path));
    TC_TRY(tok_parse_added_tokens(t, tc_json_get(j, "added_tokens"), path));
    TC_TRY(tok_parse_added_decoder(t, cfg, cfg_path));
    const cJSON *pre = tc_json_get(j, "pre_tokenizer");
    TC_TRY(tok_normalizer_parse(tc_json_get(j, "normalizer"), path, &t->normalizer));
    TC_TRY(tok_pretokenizer_parse(pre, path, &t->pretok));
    TC_TRY(parse_post(t, tc_json_get(j, "post_processor"), path));
    const char *mode = "tokenizer.json pipeline";
    if (is_llama_class(cfg) && t->bpe.byte_fallback) {
        TC_TRY(llama_pipeline(t, cfg, cfg_path));
        mode = "LlamaTokenizer pipeline";
    } else {
        bool has_bos, has_eos;
        bool add_bos = tok_cfg_bool(cfg, "add_bos_token", false, &has_bos);
        bool add_eos = tok_cfg_bool(cfg, "add_eos_token", false, &has_eos);
        if ((has_bos || has_eos) && t->n_pre == 0 && t->n_post == 0)
            TC_TRY(bos_eos_template(t, cfg, add_bos, add_eos, cfg_path));
    }
    TC_TRY(tok_normalize_added(t));
    snprintf(t->desc, sizeof t->desc, "%s (BPE, %u tokens, %u merges, %zu added), %s: "
             "normalizer %s, pre-tokenizer %s", path, t->bpe.vocab.count, t->bpe.n_merges,
             t->n_added, mode, tok_step_name(t->normalizer), tok_step_name(t->pretok));
    return TC_OK;
}

/* Checks, limits and indexes that need the whole tokenizer. */
static tc_status finish_load(tc_tokenizer *t)
{
    TC_TRY(tok_build_trie(t));
    for (size_t i = 0; i < t->n_added; i++) {
        if (!t->added[i].single_word || t->word_char)
            continue;
        int err;
        PCRE2_SIZE off;
        t->word_char = pcre2_compile(
            (PCRE2_SPTR) "^[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}]",
            PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &off, NULL);
        if (!t->word_char)
            return tc_fail(TC_E_INTERNAL, "this PCRE2 lacks \\p{Alphabetic} (single_word tokens)");
    }
    for (int64_t i = (int64_t)t->bpe.vocab.n_ids - 1; i >= 0; i--)
        if (t->bpe.vocab.str[i]) {
            if (i + 1 > t->id_limit)
                t->id_limit = i + 1;
            break;
        }
    for (size_t i = 0; i < t->n_pre; i++)
        if (t->pre_ids[i] + 1 > t->id_limit)
            t->id_limit = t->pre_ids[i] + 1;
    for (size_t i = 0; i < t->n_post; i++)
        if (t->post_ids[i] + 1 > t->id_limit)
            t->id_limit = t->post_ids[i] + 1;
    return TC_OK;
}

tc_status tc_tokenizer_from_memory(tc_tokenizer_source kind, const char *name, const char *data,
                                   size_t len, const char *config, size_t config_len,
                                   const char *config_name, tc_tokenizer **out)
{
    *out = NULL;
    if (kind == TC_TOKENIZER_AUTO)
        return tc_fail(TC_E_USAGE, "tc_tokenizer_from_memory needs the file kind");
    if (len > TC_TOKENIZER_MAX_FILE || config_len > TC_TOKENIZER_MAX_FILE)
        return tc_fail(TC_E_INPUT, "%s: over the limit of %u bytes for tokenizer files", name,
                       TC_TOKENIZER_MAX_FILE);
    tc_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    cJSON *cfg = NULL, *j = NULL;
    tc_status st = TC_OK;
    if (config) {
        cfg = tc_json_parse(config_name, config, config_len);
        if (!cfg || !cJSON_IsObject(cfg))
            st = tc_fail(TC_E_INPUT, "%s: not a JSON object", config_name);
    }
    if (st == TC_OK && kind == TC_TOKENIZER_SPM_MODEL) {
        st = load_spm(t, name, data, len, cfg, config_name);
    } else if (st == TC_OK) {
        j = tc_json_parse(name, data, len);
        if (!j || !cJSON_IsObject(j))
            st = tc_fail(TC_E_INPUT, "%s: not a JSON object", name);
        else
            st = load_hf_json(t, name, j, cfg, config_name);
    }
    if (st == TC_OK)
        st = finish_load(t);
    cJSON_Delete(cfg);
    cJSON_Delete(j);
    if (st != TC_OK) {
        tc_tokenizer_free(t);
        return st;
    }
    *out = t;
    return TC_OK;
}

/* The files a tokenizer directory may hold, in the order they decide. */
enum { FILE_CONFIG, FILE_SPM, FILE_JSON };
static const char *const tokenizer_files[] = { "tokenizer_config.json", "tokenizer.model",
                                               "tokenizer.json", NULL };

const char *const *tc_tokenizer_files(void)
{
    return tokenizer_files;
}

tc_status tc_tokenizer_load(const char *dir, tc_tokenizer_source source, tc_tokenizer **out)
{
    *out = NULL;
    size_t dl = strlen(dir) + 32;
    char *cfg_path = malloc(dl), *spm_path = malloc(dl), *json_path = malloc(dl);
    char *cfg = NULL, *data = NULL;
    size_t cfg_len = 0, len = 0;
    bool have_cfg = false, have_spm = false, have_json = false;
    tc_status st = (cfg_path && spm_path && json_path) ? TC_OK
                                                       : tc_fail(TC_E_INTERNAL, "out of memory");
    if (st == TC_OK) {
        snprintf(cfg_path, dl, "%s/%s", dir, tokenizer_files[FILE_CONFIG]);
        snprintf(spm_path, dl, "%s/%s", dir, tokenizer_files[FILE_SPM]);
        snprintf(json_path, dl, "%s/%s", dir, tokenizer_files[FILE_JSON]);
        st = read_if_present(cfg_path, &have_cfg, &cfg, &cfg_len);
    }
    if (st == TC_OK && source != TC_TOKENIZER_HF_JSON)
        st = read_if_present(spm_path, &have_spm, &data, &len);
    if (st == TC_OK && !have_spm && source != TC_TOKENIZER_SPM_MODEL)
        st = read_if_present(json_path, &have_json, &data, &len);
    if (st == TC_OK && !have_spm && !have_json)
        st = tc_fail(TC_E_INPUT, "no tokenizer in %s: expected %s", dir,
                     source == TC_TOKENIZER_SPM_MODEL ? "tokenizer.model"
                     : source == TC_TOKENIZER_HF_JSON ? "tokenizer.json"
                                                      : "tokenizer.model or tokenizer.json");
    if (st == TC_OK)
        st = tc_tokenizer_from_memory(have_spm ? TC_TOKENIZER_SPM_MODEL : TC_TOKENIZER_HF_JSON,
                                      have_spm ? spm_path : json_path, data, len,
                                      have_cfg ? cfg : NULL, cfg_len, cfg_path, out);
    free(data);
    free(cfg);
    free(cfg_path);
    free(spm_path);
    free(json_path);
    return st;
}

void tc_tokenizer_free(tc_tokenizer *t)
{
    if (!t)
        return;
    tok_bpe_free(&t->bpe);
    tok_step_free(t->normalizer);
    tok_step_free(t->pretok);
    for (size_t i = 0; i < t->n_added; i++)
        free(t->added[i].content);
    free(t->added);
    free(t->term);
    free(t->edge_key);
    free(t->edge_child);
    if (t->added_seen_init)
        tok_vocab_free(&t->added_seen);
    free(t->pre_ids);
    free(t->post_ids);
    pcre2_code_free(t->word_char);
    free(t);
}

const char *tc_tokenizer_describe(const tc_tokenizer *t)
{
    return t->desc;
}

int64_t tc_tokenizer_id_limit(const tc_tokenizer *t)
{
    return t->id_limit;
}

/* ---- encoding ---- */
tc_status tc_tokenizer_encode(const tc_tokenizer *t, const char *text, size_t len,
                              bool add_special, int64_t max_len, const char *what,
                              int32_t **ids_out, size_t *n_out)
{
    *ids_out = NULL;
    *n_out = 0;
    if (!tc_utf8_valid(text, len))
        return tc_fail(TC_E_INPUT, "%s: text is not valid UTF-8", what);
    size_t n_special = add_special ? t->n_pre + t->n_post : 0;
    if (max_len > 0 && (uint64_t)max_len <= n_special)
        return tc_fail(TC_E_USAGE, "%s: max length %lld leaves no room beside %zu special tokens",
                       what, (long long)max_len, n_special);
    tok_arena a = {0};
    a.limit = (size_t)TC_TOKENIZER_EXPANSION * len + ((size_t)64 << 10);
    tok_pieces p1 = {0}, p2 = {0};
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    tok_piece whole = {0, len, -1, true};
    tc_status st = tok_arena_put(&a, text, len, &whole.off);
    /* 1. added tokens in the raw text */
    if (st == TC_OK && len)
        st = tok_split_added(t, false, &a, &whole, &p1);
    /* 2. normalize the rest, then normalized added tokens */
    for (size_t i = 0; i < p1.n && st == TC_OK; i++) {
        tok_piece pc = p1.v[i];
        if (pc.id >= 0) {
            st = tok_pieces_push(&p2, pc);
            continue;
        }
        st = tok_normalize(t->normalizer, &a, &pc);
        if (st == TC_OK && pc.len)
            st = tok_split_added(t, true, &a, &pc, &p2);
    }
    /* 3. pre-tokenize */
    if (st == TC_OK)
        st = tok_pretokenize(t->pretok, &a, &p2, &p1);
    if (a.exceeded)
        st = tc_fail(TC_E_INPUT, "%s: tokenizer %s: its normalizers and pre-tokenizers turn %zu "
                     "bytes of text into more than %zu (%ux + 64 KiB): refused (steps that "
                     "multiply the text, such as repeated ByteLevel, are not a real tokenizer)",
                     what, t->desc, len, a.limit, TC_TOKENIZER_EXPANSION);
    /* 4. model */
    if (st == TC_OK && add_special && t->n_pre)
        for (size_t i = 0; i < t->n_pre && st == TC_OK; i++)
            st = ids_append(&ids, &n, &t->pre_ids[i], 1, false);
    cap = n;
    size_t body_start = n;
    for (size_t i = 0; i < p1.n && st == TC_OK; i++) {
        if (p1.v[i].id >= 0) {
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                int32_t *q = realloc(ids, cap * sizeof *q);
                if (!q) {
                    st = tc_fail(TC_E_INTERNAL, "out of memory");
                    break;
                }
                ids = q;
            }
            ids[n++] = p1.v[i].id;
        } else {
            st = tok_bpe_word(&t->bpe, a.buf + p1.v[i].off, p1.v[i].len, &ids, &n, &cap);
        }
    }
    /* 5. truncate the body, then the post-processor's closing ids */
    if (st == TC_OK && max_len > 0 && (uint64_t)(n - body_start) > (uint64_t)max_len - n_special)
        n = body_start + (size_t)max_len - n_special;
    if (st == TC_OK && add_special && t->n_post)
        st = ids_append(&ids, &n, t->post_ids, t->n_post, false);
    tok_scratch_free(&a, &p1);
    free(p2.v);
    if (st != TC_OK || n == 0) {
        free(ids);
        ids = NULL;
        if (st == TC_OK)
            n = 0;
    }
    *ids_out = ids;
    *n_out = st == TC_OK ? n : 0;
    return st;
}

/* ---- calibration text (trtllm spec 5.1) ---- */
/* Python str.isspace(): White_Space plus the information separators. */
static bool py_isspace(uint32_t c)
{
    return tok_is_whitespace(c) || (c >= 0x1c && c <= 0x1f);
}

tc_status tc_calib_text(const char *text, size_t len, char **out, size_t *out_len)
{
    static const char suffix[] = " TL;DR: ";
    *out = NULL;
    *out_len = 0;
    size_t total = len + sizeof suffix - 1;
    char *s = malloc(total + 1);
    if (!s)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    memcpy(s, text, len);
    memcpy(s + len, suffix, sizeof suffix - 1);
    size_t lo = 0, hi = total;
    tok_strip(s, &lo, &hi, true, true, py_isspace);
    size_t o = 0;
    for (size_t i = lo; i < hi;) {
        if (hi - i >= 4 && memcmp(s + i, " n't", 4) == 0) {
            memcpy(s + o, "n't", 3);
            o += 3;
            i += 4;
        } else {
            s[o++] = s[i++];
        }
    }
    s[o] = '\0';
    *out = s;
    *out_len = o;
    return TC_OK;
}
