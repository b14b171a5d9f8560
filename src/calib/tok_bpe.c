/* tok_bpe.c: vocabulary table, BPE merges and word encoding, and the
 * SentencePiece model file reader (see tokenizer.h and tok_internal.h).
 *
 * The word encoding follows the tokenizers library's BPE (models/bpe/
 * model.rs merge_word, word.rs merge_all) step for step, including its
 * priority queue with lazily discarded entries: the queue pops the lowest
 * (rank, position) and only checks that the pair at that position still
 * merges into the same new id, so results equal Hugging Face's even where
 * two different pairs merge into one token. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tok_internal.h"
#include "trtconv/core/log.h"
#include "trtconv/calib/tokenizer.h"

/* ---- hashing ---- */
static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint32_t pow2_at_least(uint64_t n)
{
    uint64_t c = 16;
    while (c < n)
        c <<= 1;
    return c > (1ull << 31) ? (1u << 31) : (uint32_t)c;
}

/* ---- vocabulary ---- */
tc_status tok_vocab_init(tok_vocab *v, uint32_t expected)
{
    memset(v, 0, sizeof *v);
    if (expected > (1u << 26))
        return tc_fail(TC_E_INPUT, "tokenizer vocabulary of %u entries exceeds the limit of %u",
                       expected, 1u << 26);
    v->cap = pow2_at_least((uint64_t)expected * 2 + 16);
    v->slots = calloc(v->cap, sizeof *v->slots);
    return v->slots ? TC_OK : tc_fail(TC_E_INTERNAL, "out of memory for the vocabulary");
}

static tc_status vocab_grow_ids(tok_vocab *v, uint32_t need)
{
    if (need <= v->n_ids)
        return TC_OK;
    uint32_t n = v->n_ids ? v->n_ids : 1024;
    while (n < need)
        n *= 2;
    char **s = realloc(v->str, (size_t)n * sizeof *s);
    if (!s)
        return tc_fail(TC_E_INTERNAL, "out of memory for the vocabulary");
    v->str = s;
    uint32_t *l = realloc(v->slen, (size_t)n * sizeof *l);
    if (!l)
        return tc_fail(TC_E_INTERNAL, "out of memory for the vocabulary");
    v->slen = l;
    memset(v->str + v->n_ids, 0, (size_t)(n - v->n_ids) * sizeof *s);
    memset(v->slen + v->n_ids, 0, (size_t)(n - v->n_ids) * sizeof *l);
    v->n_ids = n;
    return TC_OK;
}

static tc_status vocab_rehash(tok_vocab *v)
{
    uint32_t cap = v->cap * 2;
    uint32_t *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return tc_fail(TC_E_INTERNAL, "out of memory for the vocabulary");
    for (uint32_t i = 0; i < v->cap; i++) {
        if (!v->slots[i])
            continue;
        uint32_t id = v->slots[i] - 1;
        uint64_t h = hash_bytes(v->str[id], v->slen[id]);
        uint32_t j = (uint32_t)h & (cap - 1);
        while (slots[j])
            j = (j + 1) & (cap - 1);
        slots[j] = v->slots[i];
    }
    free(v->slots);
    v->slots = slots;
    v->cap = cap;
    return TC_OK;
}

tc_status tok_vocab_add(tok_vocab *v, const char *s, size_t len, int32_t id, bool replace)
{
    if (id < 0 || (uint32_t)id >= (1u << 26))
        return tc_fail(TC_E_INPUT, "token id %d outside [0, %u)", id, 1u << 26);
    if (len > (1u << 20))
        return tc_fail(TC_E_INPUT, "token of %zu bytes exceeds the limit of 1 MiB", len);
    if ((uint64_t)(v->count + 1) * 2 > v->cap)
        TC_TRY(vocab_rehash(v));
    uint64_t h = hash_bytes(s, len);
    uint32_t j = (uint32_t)h & (v->cap - 1);
    while (v->slots[j]) {
        uint32_t other = v->slots[j] - 1;
        if (v->slen[other] == len && memcmp(v->str[other], s, len) == 0) {
            if (replace)
                v->slots[j] = (uint32_t)id + 1;
            break;
        }
        j = (j + 1) & (v->cap - 1);
    }
    TC_TRY(vocab_grow_ids(v, (uint32_t)id + 1));
    if (!v->str[id]) {
        char *copy = malloc(len + 1);
        if (!copy)
            return tc_fail(TC_E_INTERNAL, "out of memory for the vocabulary");
        memcpy(copy, s, len);
        copy[len] = '\0';
        v->str[id] = copy;
        v->slen[id] = (uint32_t)len;
    }
    if (!v->slots[j]) {
        v->slots[j] = (uint32_t)id + 1;
        v->count++;
    }
    return TC_OK;
}

int32_t tok_vocab_get(const tok_vocab *v, const char *s, size_t len)
{
    if (!v->cap)
        return -1;
    uint64_t h = hash_bytes(s, len);
    uint32_t j = (uint32_t)h & (v->cap - 1);
    while (v->slots[j]) {
        uint32_t id = v->slots[j] - 1;
        if (v->slen[id] == len && memcmp(v->str[id], s, len) == 0)
            return (int32_t)id;
        j = (j + 1) & (v->cap - 1);
    }
    return -1;
}

void tok_vocab_free(tok_vocab *v)
{
    for (uint32_t i = 0; i < v->n_ids; i++)
        free(v->str[i]);
    free(v->str);
    free(v->slen);
    free(v->slots);
    memset(v, 0, sizeof *v);
}

/* ---- BPE ---- */
tc_status tok_bpe_init(tok_bpe *m, uint32_t vocab_size)
{
    memset(m, 0, sizeof *m);
    m->unk_id = -1;
    for (int b = 0; b < 256; b++)
        m->byte_ids[b] = -1;
    return tok_vocab_init(&m->vocab, vocab_size);
}

static tc_status merges_rehash(tok_bpe *m)
{
    uint32_t cap = m->merge_cap ? m->merge_cap * 2 : 1024;
    tok_merge_slot *slots = malloc((size_t)cap * sizeof *slots);
    if (!slots)
        return tc_fail(TC_E_INTERNAL, "out of memory for the merges");
    for (uint32_t i = 0; i < cap; i++)
        slots[i].key = UINT64_MAX;
    for (uint32_t i = 0; i < m->merge_cap; i++) {
        if (m->merges[i].key == UINT64_MAX)
            continue;
        uint32_t j = (uint32_t)hash_u64(m->merges[i].key) & (cap - 1);
        while (slots[j].key != UINT64_MAX)
            j = (j + 1) & (cap - 1);
        slots[j] = m->merges[i];
    }
    free(m->merges);
    m->merges = slots;
    m->merge_cap = cap;
    return TC_OK;
}

tc_status tok_bpe_add_merge(tok_bpe *m, int32_t left, int32_t right, int32_t new_id, uint32_t rank)
{
    if ((uint64_t)(m->n_merges + 1) * 2 > m->merge_cap)
        TC_TRY(merges_rehash(m));
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    uint32_t j = (uint32_t)hash_u64(key) & (m->merge_cap - 1);
    while (m->merges[j].key != UINT64_MAX && m->merges[j].key != key)
        j = (j + 1) & (m->merge_cap - 1);
    if (m->merges[j].key == UINT64_MAX)
        m->n_merges++;
    m->merges[j].key = key;
    m->merges[j].rank = rank;
    m->merges[j].new_id = (uint32_t)new_id;
    return TC_OK;
}

static const tok_merge_slot *merge_find(const tok_bpe *m, int32_t left, int32_t right)
{
    if (!m->merge_cap)
        return NULL;
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    uint32_t j = (uint32_t)hash_u64(key) & (m->merge_cap - 1);
    while (m->merges[j].key != UINT64_MAX) {
        if (m->merges[j].key == key)
            return &m->merges[j];
        j = (j + 1) & (m->merge_cap - 1);
    }
    return NULL;
}

void tok_bpe_finish(tok_bpe *m)
{
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", (unsigned)b);
        m->byte_ids[b] = tok_vocab_get(&m->vocab, name, 6);
    }
}

void tok_bpe_free(tok_bpe *m)
{
    tok_vocab_free(&m->vocab);
    free(m->merges);
    memset(m, 0, sizeof *m);
}

typedef struct bpe_sym {
    int32_t id;
    int32_t prev, next;
    uint32_t len;
} bpe_sym;

typedef struct bpe_qitem {
    uint32_t rank, pos, new_id;
} bpe_qitem;

static bool q_less(const bpe_qitem *a, const bpe_qitem *b)
{
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void q_push(bpe_qitem *q, size_t *n, bpe_qitem it)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!q_less(&it, &q[p]))
            break;
        q[i] = q[p];
        i = p;
    }
    q[i] = it;
}

static bpe_qitem q_pop(bpe_qitem *q, size_t *n)
{
    bpe_qitem top = q[0], last = q[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && q_less(&q[c + 1], &q[c]))
            c++;
        if (!q_less(&q[c], &last))
            break;
        q[i] = q[c];
        i = c;
    }
    if (*n)
        q[i] = last;
    return top;
}

static tc_status ids_push(int32_t **ids, size_t *n, size_t *cap, int32_t id)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        int32_t *p = realloc(*ids, c * sizeof *p);
        if (!p)
            return tc_fail(TC_E_INTERNAL, "out of memory for token ids");
        *ids = p;
        *cap = c;
    }
    (*ids)[(*n)++] = id;
    return TC_OK;
}

static void sym_add(bpe_sym *s, size_t *n, int32_t id, uint32_t len)
{
    int32_t prev = -1;
    if (*n) {
        s[*n - 1].next = (int32_t)*n;
        prev = (int32_t)*n - 1;
    }
    s[*n] = (bpe_sym){id, prev, -1, len};
    (*n)++;
}

tc_status tok_bpe_word(const tok_bpe *m, const char *w, size_t len, int32_t **ids, size_t *n,
                       size_t *cap)
{
    if (len == 0)
        return TC_OK;
    if (m->ignore_merges) {
        int32_t id = tok_vocab_get(&m->vocab, w, len);
        if (id >= 0)
            return ids_push(ids, n, cap, id);
    }
    /* At most one symbol per byte and two queue entries per merge; most
     * words fit the stack buffers. */
    bpe_sym sym_stack[64];
    bpe_qitem q_stack[2 * 64 + 1];
    bool heap = len > 64;
    bpe_sym *sym = heap ? malloc(len * sizeof *sym) : sym_stack;
    bpe_qitem *q = heap ? malloc(len * 2 * sizeof *q + sizeof *q) : q_stack;
    if (!sym || !q) {
        if (heap) {
            free(sym);
            free(q);
        }
        return tc_fail(TC_E_INTERNAL, "out of memory for a word of %zu bytes", len);
    }
    size_t ns = 0;
    int32_t unk_id = -1;
    uint32_t unk_len = 0;
    bool unk_pending = false;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t cl = tok_utf8_next(w, len, i, &cp);
        int32_t id = tok_vocab_get(&m->vocab, w + i, cl);
        if (id >= 0) {
            if (unk_pending) {
                sym_add(sym, &ns, unk_id, unk_len);
                unk_pending = false;
            }
            sym_add(sym, &ns, id, (uint32_t)cl);
        } else {
            bool done = false;
            if (m->byte_fallback) {
                bool all = true;
                for (size_t k = 0; k < cl; k++)
                    all = all && m->byte_ids[(unsigned char)w[i + k]] >= 0;
                if (all) {
                    /* As tokenizers does, a pending unk is not flushed here. */
                    for (size_t k = 0; k < cl; k++)
                        sym_add(sym, &ns, m->byte_ids[(unsigned char)w[i + k]], 1);
                    done = true;
                }
            }
            if (!done && m->unk_id >= 0) {
                if (unk_pending && m->fuse_unk) {
                    unk_len += (uint32_t)cl;
                } else {
                    if (unk_pending)
                        sym_add(sym, &ns, unk_id, unk_len);
                    unk_id = m->unk_id;
                    unk_len = (uint32_t)cl;
                    unk_pending = true;
                }
            }
        }
        i += cl;
    }
    if (unk_pending)
        sym_add(sym, &ns, unk_id, unk_len);

    size_t nq = 0;
    for (size_t i = 0; i + 1 < ns; i++) {
        const tok_merge_slot *mg = merge_find(m, sym[i].id, sym[i + 1].id);
        if (mg)
            q_push(q, &nq, (bpe_qitem){mg->rank, (uint32_t)i, mg->new_id});
    }
    while (nq) {
        bpe_qitem top = q_pop(q, &nq);
        bpe_sym *cur = &sym[top.pos];
        if (cur->len == 0 || cur->next == -1)
            continue;
        size_t next_pos = (size_t)cur->next;
        bpe_sym right = sym[next_pos];
        const tok_merge_slot *mg = merge_find(m, cur->id, right.id);
        if (!mg || mg->new_id != top.new_id)
            continue;
        cur->id = (int32_t)top.new_id;
        cur->len += right.len;
        cur->next = right.next;
        sym[next_pos].len = 0;
        if (right.next > -1 && (size_t)right.next < ns)
            sym[right.next].prev = (int32_t)top.pos;
        if (cur->prev >= 0) {
            const tok_merge_slot *p = merge_find(m, sym[cur->prev].id, cur->id);
            if (p)
                q_push(q, &nq, (bpe_qitem){p->rank, (uint32_t)cur->prev, p->new_id});
        }
        if (cur->next >= 0 && (size_t)cur->next < ns) {
            const tok_merge_slot *p = merge_find(m, cur->id, sym[cur->next].id);
            if (p)
                q_push(q, &nq, (bpe_qitem){p->rank, top.pos, p->new_id});
        }
    }
    tc_status st = TC_OK;
    for (size_t i = 0; i < ns && st == TC_OK; i++)
        if (sym[i].len != 0)
            st = ids_push(ids, n, cap, sym[i].id);
    if (heap) {
        free(sym);
        free(q);
    }
    return st;
}

/* ---- SentencePiece ModelProto (protobuf wire format) ----
 * ModelProto: 1 pieces (repeated message: 1 piece string, 2 score float,
 * 3 type enum), 2 trainer_spec (message: 3 model_type enum, UNIGRAM = 1
 * (default), BPE = 2, WORD = 3, CHAR = 4), 3 normalizer_spec, ... Unknown
 * fields are skipped; every length is checked against the enclosing message. */
typedef struct pb_reader {
    const uint8_t *p, *end;
} pb_reader;

static bool pb_varint(pb_reader *r, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end)
            return false;
        uint8_t b = *r->p++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

/* Next field: number, wire type, and for wire type 2 the payload. */
static bool pb_field(pb_reader *r, uint32_t *field, uint32_t *wt, pb_reader *sub, uint64_t *val)
{
    uint64_t key;
    if (!pb_varint(r, &key) || (key >> 3) == 0 || (key >> 3) > UINT32_MAX)
        return false;
    *field = (uint32_t)(key >> 3);
    *wt = (uint32_t)(key & 7);
    switch (*wt) {
    case 0:
        return pb_varint(r, val);
    case 1:
        if (r->end - r->p < 8)
            return false;
        r->p += 8;
        return true;
    case 2: {
        uint64_t n;
        if (!pb_varint(r, &n) || n > (uint64_t)(r->end - r->p))
            return false;
        sub->p = r->p;
        sub->end = r->p + n;
        r->p += n;
        return true;
    }
    case 5:
        if (r->end - r->p < 4)
            return false;
        r->p += 4;
        return true;
    default: /* groups (3, 4) and reserved types */
        return false;
    }
}

static tc_status spm_model_type(const char *path, pb_reader spec, uint64_t *type)
{
    *type = 1;
    while (spec.p < spec.end) {
        uint32_t f, wt;
        pb_reader sub;
        uint64_t v = 0;
        if (!pb_field(&spec, &f, &wt, &sub, &v))
            return tc_fail(TC_E_INPUT, "%s: malformed protobuf in trainer_spec", path);
        if (f == 3 && wt == 0)
            *type = v;
    }
    return TC_OK;
}

tc_status tok_spm_load(const char *path, const uint8_t *data, size_t len, tok_bpe *m)
{
    static const char *const type_names[] = {"?", "UNIGRAM", "BPE", "WORD", "CHAR"};
    pb_reader r = {data, data + len};
    uint32_t n_pieces = 0;
    uint64_t model_type = 1;
    bool have_spec = false;
    /* Pass 1: count pieces, check the structure and the model type. */
    while (r.p < r.end) {
        uint32_t f, wt;
        pb_reader sub;
        uint64_t v = 0;
        if (!pb_field(&r, &f, &wt, &sub, &v))
            return tc_fail(TC_E_INPUT, "%s: not a SentencePiece model (malformed protobuf at byte %zu)",
                           path, (size_t)(r.p - data));
        if (f == 1 && wt == 2) {
            if (++n_pieces > (1u << 24))
                return tc_fail(TC_E_INPUT, "%s: more than %u pieces", path, 1u << 24);
        } else if (f == 2 && wt == 2) {
            TC_TRY(spm_model_type(path, sub, &model_type));
            have_spec = true;
        }
    }
    if (n_pieces == 0)
        return tc_fail(TC_E_INPUT, "%s: not a SentencePiece model (no pieces)", path);
    if (model_type != 2)
        return tc_fail(TC_E_INPUT,
                       "%s: SentencePiece model type %s%s; trtconv supports BPE models "
                       "(LLaMA-1/2, Mistral)",
                       path, model_type <= 4 ? type_names[model_type] : "unknown",
                       have_spec ? "" : " (no trainer_spec: protobuf default)");
    TC_TRY(tok_bpe_init(m, n_pieces));
    m->byte_fallback = true;
    m->fuse_unk = true;
    /* Pass 2: the pieces, in id order. */
    r.p = data;
    int32_t id = 0;
    uint64_t work = 0; /* merge generation hashes every prefix and suffix */
    tc_status st = TC_OK;
    while (r.p < r.end && st == TC_OK) {
        uint32_t f, wt;
        pb_reader sub;
        uint64_t v = 0;
        (void)pb_field(&r, &f, &wt, &sub, &v); /* validated in pass 1 */
        if (f != 1 || wt != 2)
            continue;
        const uint8_t *piece = NULL;
        size_t plen = 0;
        while (sub.p < sub.end) {
            uint32_t pf, pwt;
            pb_reader s2;
            uint64_t pv = 0;
            if (!pb_field(&sub, &pf, &pwt, &s2, &pv)) {
                st = tc_fail(TC_E_INPUT, "%s: malformed protobuf in piece %d", path, id);
                break;
            }
            if (pf == 1 && pwt == 2) {
                piece = s2.p;
                plen = (size_t)(s2.end - s2.p);
            }
        }
        if (st != TC_OK)
            break;
        if (!piece || plen == 0)
            st = tc_fail(TC_E_INPUT, "%s: piece %d has no text", path, id);
        else if (plen > TC_TOKENIZER_MAX_PIECE)
            st = tc_fail(TC_E_INPUT, "%s: piece %d is %zu bytes long, over the limit of %u "
                         "(SentencePiece pieces of LLaMA-family models are a few characters)",
                         path, id, plen, TC_TOKENIZER_MAX_PIECE);
        else if ((work += (uint64_t)plen * plen) > TC_TOKENIZER_MAX_PIECE_WORK)
            st = tc_fail(TC_E_INPUT, "%s: the pieces are too long in total (sum of squared "
                         "lengths over %llu at piece %d): generating merges would take "
                         "too long", path, (unsigned long long)TC_TOKENIZER_MAX_PIECE_WORK, id);
        else if (!tc_utf8_valid((const char *)piece, plen))
            st = tc_fail(TC_E_INPUT, "%s: piece %d is not valid UTF-8", path, id);
        else if (tok_vocab_get(&m->vocab, (const char *)piece, plen) >= 0)
            st = tc_fail(TC_E_INPUT, "%s: piece %d \"%.*s\" occurs twice", path, id, (int)plen,
                         (const char *)piece);
        else
            st = tok_vocab_add(&m->vocab, (const char *)piece, plen, id, false);
        id++;
    }
    /* Merges as transformers 5's generate_merges(vocab) without scores:
     * pieces in id order, each split point in order. */
    uint32_t rank = 0;
    for (int32_t p = 0; p < id && st == TC_OK; p++) {
        const char *s = m->vocab.str[p];
        size_t sl = m->vocab.slen[p];
        uint32_t cp;
        for (size_t i = tok_utf8_next(s, sl, 0, &cp); i < sl && st == TC_OK;
             i += tok_utf8_next(s, sl, i, &cp)) {
            int32_t l = tok_vocab_get(&m->vocab, s, i);
            int32_t rr = l >= 0 ? tok_vocab_get(&m->vocab, s + i, sl - i) : -1;
            if (rr >= 0)
                st = tok_bpe_add_merge(m, l, rr, p, rank++);
        }
    }
    if (st == TC_OK)
        tok_bpe_finish(m);
    else
        tok_bpe_free(m);
    return st;
}
