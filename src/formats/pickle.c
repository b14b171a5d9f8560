/* pickle.c: the restricted pickle machine of torch.save files
 * (tc_pkl_parse, see torchfile.h). Opcode semantics follow
 * CPython's Lib/pickletools.py; which objects torch.save writes follows
 * torch/serialization.py (_save, persistent_id) and torch/_tensor.py
 * (_reduce_ex_internal). Nothing here calls anything named by the pickle:
 * the three allowed callables are tags whose effect is built in. */
#define _POSIX_C_SOURCE 200809L
#include "trtconv/formats/torchfile.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trtconv/core/log.h"
#include "trtconv/formats/zipread.h"

#define TC_PKL_MAX_STACK (1u << 20)
#define TC_PKL_MAX_KEY 64
#define TC_PKL_MAX_GLOBAL 200

enum vkind { V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_TUPLE, V_DICT, V_GLOBAL, V_STORAGE, V_TENSOR };
static const char *const vkind_name[] = {
    "None", "a bool", "an int", "a float", "a str", "a tuple", "a dict", "a global",
    "a storage", "a tensor",
};
enum gkind { G_ODICT, G_REBUILD, G_STORAGE };

typedef struct pval {
    uint8_t kind;
    uint8_t depth;      /* 0 for scalars; containers 1 + deepest element */
    uint32_t n;         /* tuple elements, dict entries, str bytes */
    uint32_t a;         /* tuple: first kid; dict: first entry; global: gkind;
                           storage/tensor: index */
    uint32_t b;         /* dict: last entry; global storage: its dtype */
    int64_t i;          /* int, bool */
    const char *s;      /* str, borrowed from the pickle */
} pval;

typedef struct dent {
    uint32_t key, val, next;
} dent;

#define NO_ENTRY UINT32_MAX

typedef struct vm {
    const char *label;
    const unsigned char *p;
    size_t len, pos, op_pos;
    pval *vals;
    size_t nvals, capvals;
    uint32_t *kids;
    size_t nkids, capkids;
    dent *ents;
    size_t nents, capents;
    uint32_t *stack;
    size_t sp, capstack;
    size_t marks[TC_PKL_MAX_MARKS];
    int nmarks;
    uint32_t *memo;      /* value index + 1; 0 = empty */
    size_t capmemo;
    tc_pkl_storage *storages;
    size_t nstorages, capstorages;
    tc_pkl_tensor *tensors; /* unnamed tensor objects */
    size_t ntensors, captensors;
} vm;

static const char *op_name(unsigned c)
{
    static const struct { unsigned char op; const char *name; } t[] = {
        { '(', "MARK" }, { '.', "STOP" }, { '0', "POP" }, { '1', "POP_MARK" }, { '2', "DUP" },
        { 'F', "FLOAT" }, { 'I', "INT" }, { 'J', "BININT" }, { 'K', "BININT1" }, { 'L', "LONG" },
        { 'M', "BININT2" }, { 'N', "NONE" }, { 'P', "PERSID" }, { 'Q', "BINPERSID" },
        { 'R', "REDUCE" }, { 'S', "STRING" }, { 'T', "BINSTRING" }, { 'U', "SHORT_BINSTRING" },
        { 'V', "UNICODE" }, { 'X', "BINUNICODE" }, { 'a', "APPEND" }, { 'b', "BUILD" },
        { 'c', "GLOBAL" }, { 'd', "DICT" }, { '}', "EMPTY_DICT" }, { 'e', "APPENDS" },
        { 'g', "GET" }, { 'h', "BINGET" }, { 'i', "INST" }, { 'j', "LONG_BINGET" },
        { 'l', "LIST" }, { ']', "EMPTY_LIST" }, { 'o', "OBJ" }, { 'p', "PUT" }, { 'q', "BINPUT" },
        { 'r', "LONG_BINPUT" }, { 's', "SETITEM" }, { 't', "TUPLE" }, { ')', "EMPTY_TUPLE" },
        { 'u', "SETITEMS" }, { 'G', "BINFLOAT" }, { 0x80, "PROTO" }, { 0x81, "NEWOBJ" },
        { 0x82, "EXT1" }, { 0x83, "EXT2" }, { 0x84, "EXT4" }, { 0x85, "TUPLE1" },
        { 0x86, "TUPLE2" }, { 0x87, "TUPLE3" }, { 0x88, "NEWTRUE" }, { 0x89, "NEWFALSE" },
        { 0x8a, "LONG1" }, { 0x8b, "LONG4" }, { 'B', "BINBYTES" }, { 'C', "SHORT_BINBYTES" },
        { 0x8c, "SHORT_BINUNICODE" }, { 0x8d, "BINUNICODE8" }, { 0x8e, "BINBYTES8" },
        { 0x8f, "EMPTY_SET" }, { 0x90, "ADDITEMS" }, { 0x91, "FROZENSET" },
        { 0x92, "NEWOBJ_EX" }, { 0x93, "STACK_GLOBAL" }, { 0x94, "MEMOIZE" }, { 0x95, "FRAME" },
        { 0x96, "BYTEARRAY8" }, { 0x97, "NEXT_BUFFER" }, { 0x98, "READONLY_BUFFER" },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (t[i].op == c)
            return t[i].name;
    return "unknown";
}

static tc_status vfail(vm *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static tc_status vfail(vm *m, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return tc_fail(TC_E_INPUT, "%s: pickle byte %zu (%s): %s", m->label, m->op_pos,
                   m->op_pos < m->len ? op_name(m->p[m->op_pos]) : "end", msg);
}

/* Copy of n bytes of s fit for a message: non-printable bytes become '?'. */
static void printable(char *dst, size_t cap, const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 4 < cap; i++)
        dst[k++] = (s[i] >= 0x20 && s[i] < 0x7F) ? s[i] : '?';
    if (n > 0 && k + 4 >= cap && k < n) {
        memcpy(dst + k, "...", 3);
        k += 3;
    }
    dst[k] = '\0';
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap : 64;
    while (nc < need)
        nc *= 2;
    void *q = realloc(*p, nc * elem);
    if (!q)
        return -1;
    *p = q;
    *cap = nc;
    return 0;
}

static tc_status oom(vm *m)
{
    return tc_fail(TC_E_INTERNAL, "%s: out of memory interpreting the pickle", m->label);
}

static tc_status new_val(vm *m, enum vkind k, uint32_t *out)
{
    if (m->nvals >= TC_PKL_MAX_OBJECTS)
        return vfail(m, "more than %u objects (limit of trtconv's pickle reader)",
                     TC_PKL_MAX_OBJECTS);
    if (grow((void **)&m->vals, &m->capvals, m->nvals + 1, sizeof *m->vals))
        return oom(m);
    memset(&m->vals[m->nvals], 0, sizeof *m->vals);
    m->vals[m->nvals].kind = (uint8_t)k;
    *out = (uint32_t)m->nvals++;
    return TC_OK;
}

static tc_status push(vm *m, uint32_t v)
{
    if (m->sp >= TC_PKL_MAX_STACK)
        return vfail(m, "stack deeper than %u entries", TC_PKL_MAX_STACK);
    if (grow((void **)&m->stack, &m->capstack, m->sp + 1, sizeof *m->stack))
        return oom(m);
    m->stack[m->sp++] = v;
    return TC_OK;
}

static size_t floor_sp(const vm *m)
{
    return m->nmarks ? m->marks[m->nmarks - 1] : 0;
}

static tc_status pop(vm *m, uint32_t *v)
{
    if (m->sp <= floor_sp(m))
        return vfail(m, "stack underflow (nothing above the %s)",
                     m->nmarks ? "last MARK" : "stack bottom");
    *v = m->stack[--m->sp];
    return TC_OK;
}

static tc_status top(vm *m, uint32_t *v)
{
    if (m->sp <= floor_sp(m))
        return vfail(m, "stack underflow (nothing above the %s)",
                     m->nmarks ? "last MARK" : "stack bottom");
    *v = m->stack[m->sp - 1];
    return TC_OK;
}

static tc_status need_bytes(vm *m, size_t n)
{
    if (n > m->len - m->pos)
        return vfail(m, "argument of %zu bytes runs past the end of the %zu-byte pickle", n,
                     m->len);
    return TC_OK;
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static tc_status set_depth(vm *m, uint32_t v, unsigned child_depth)
{
    unsigned d = child_depth + 1;
    if (d > TC_PKL_MAX_DEPTH)
        return vfail(m, "objects nested deeper than %d levels", TC_PKL_MAX_DEPTH);
    if (d > m->vals[v].depth)
        m->vals[v].depth = (uint8_t)d;
    return TC_OK;
}

/* A tuple of the n values on top of the stack (above any mark checked by
 * the caller). */
static tc_status make_tuple(vm *m, size_t n)
{
    uint32_t t;
    TC_TRY(new_val(m, V_TUPLE, &t));
    if (grow((void **)&m->kids, &m->capkids, m->nkids + n, sizeof *m->kids))
        return oom(m);
    m->vals[t].a = (uint32_t)m->nkids;
    m->vals[t].n = (uint32_t)n;
    for (size_t i = 0; i < n; i++) {
        uint32_t k = m->stack[m->sp - n + i];
        m->kids[m->nkids++] = k;
        TC_TRY(set_depth(m, t, m->vals[k].depth));
    }
    m->sp -= n;
    return push(m, t);
}

static tc_status dict_add(vm *m, uint32_t d, uint32_t key, uint32_t val)
{
    if (m->vals[d].kind != V_DICT)
        return vfail(m, "item assignment into %s (only dicts take items)",
                     vkind_name[m->vals[d].kind]);
    if (m->nents >= TC_PKL_MAX_OBJECTS)
        return vfail(m, "more than %u dict items", TC_PKL_MAX_OBJECTS);
    if (grow((void **)&m->ents, &m->capents, m->nents + 1, sizeof *m->ents))
        return oom(m);
    uint32_t e = (uint32_t)m->nents++;
    m->ents[e].key = key;
    m->ents[e].val = val;
    m->ents[e].next = NO_ENTRY;
    pval *dv = &m->vals[d];
    if (dv->n == 0)
        dv->a = e;
    else
        m->ents[dv->b].next = e;
    dv->b = e;
    dv->n++;
    TC_TRY(set_depth(m, d, m->vals[key].depth));
    return set_depth(m, d, m->vals[val].depth);
}

static tc_status op_global(vm *m)
{
    const char *mod = (const char *)m->p + m->pos, *nl1, *name, *nl2;
    size_t left = m->len - m->pos;
    nl1 = memchr(mod, '\n', left < TC_PKL_MAX_GLOBAL ? left : TC_PKL_MAX_GLOBAL);
    if (!nl1)
        return vfail(m, "GLOBAL module name not terminated by a newline within %d bytes",
                     TC_PKL_MAX_GLOBAL);
    name = nl1 + 1;
    left = m->len - (size_t)(name - (const char *)m->p);
    nl2 = memchr(name, '\n', left < TC_PKL_MAX_GLOBAL ? left : TC_PKL_MAX_GLOBAL);
    if (!nl2)
        return vfail(m, "GLOBAL name not terminated by a newline within %d bytes",
                     TC_PKL_MAX_GLOBAL);
    size_t ml = (size_t)(nl1 - mod), nlen = (size_t)(nl2 - name);
    m->pos = (size_t)(nl2 + 1 - (const char *)m->p);
#define IS(s_, p_, l_) (strlen(s_) == (l_) && memcmp((s_), (p_), (l_)) == 0)
    int kind = -1;
    tc_dtype dt = TC_DT_F32;
    if (IS("collections", mod, ml) && IS("OrderedDict", name, nlen)) {
        kind = G_ODICT;
    } else if (IS("torch._utils", mod, ml) && IS("_rebuild_tensor_v2", name, nlen)) {
        kind = G_REBUILD;
    } else if (IS("torch", mod, ml) && IS("FloatStorage", name, nlen)) {
        kind = G_STORAGE;
        dt = TC_DT_F32;
    } else if (IS("torch", mod, ml) && IS("HalfStorage", name, nlen)) {
        kind = G_STORAGE;
        dt = TC_DT_F16;
    } else if (IS("torch", mod, ml) && IS("BFloat16Storage", name, nlen)) {
        kind = G_STORAGE;
        dt = TC_DT_BF16;
    }
    char pm[96], pn[96];
    printable(pm, sizeof pm, mod, ml);
    printable(pn, sizeof pn, name, nlen);
    if (kind < 0 && IS("torch", mod, ml) && nlen > 7 && memcmp(name + nlen - 7, "Storage", 7) == 0)
        return vfail(m, "storage type %s.%s is not supported: only FloatStorage, HalfStorage and "
                     "BFloat16Storage (F32, F16, BF16 weights) can be converted", pm, pn);
    if (kind < 0)
        return vfail(m, "global %s.%s is not allowed: a torch.save state_dict needs only "
                     "collections.OrderedDict, torch._utils._rebuild_tensor_v2 and "
                     "torch.{Float,Half,BFloat16}Storage, and trtconv never calls anything a "
                     "checkpoint names", pm, pn);
#undef IS
    uint32_t v;
    TC_TRY(new_val(m, V_GLOBAL, &v));
    m->vals[v].a = (uint32_t)kind;
    m->vals[v].b = (uint32_t)dt;
    return push(m, v);
}

static tc_status op_persid(vm *m)
{
    uint32_t pid;
    TC_TRY(pop(m, &pid));
    const pval *t = &m->vals[pid];
    if (t->kind != V_TUPLE || t->n != 5)
        return vfail(m, "persistent id must be the 5-tuple ('storage', type, key, location, "
                     "numel), not %s of %u", vkind_name[t->kind], t->n);
    const pval *tag = &m->vals[m->kids[t->a]], *type = &m->vals[m->kids[t->a + 1]];
    const pval *key = &m->vals[m->kids[t->a + 2]], *loc = &m->vals[m->kids[t->a + 3]];
    const pval *num = &m->vals[m->kids[t->a + 4]];
    if (tag->kind != V_STR || tag->n != 7 || memcmp(tag->s, "storage", 7) != 0)
        return vfail(m, "persistent id tag must be 'storage'");
    if (type->kind != V_GLOBAL || type->a != G_STORAGE)
        return vfail(m, "persistent id storage type must be a torch storage class, not %s",
                     vkind_name[type->kind]);
    if (key->kind != V_STR || key->n == 0 || key->n > TC_PKL_MAX_KEY)
        return vfail(m, "storage key must be a str of 1 to %d characters", TC_PKL_MAX_KEY);
    for (uint32_t i = 0; i < key->n; i++) {
        char c = key->s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '_'))
            return vfail(m, "storage key may hold only [0-9A-Za-z_] (it names the archive entry "
                         "data/KEY)");
    }
    if (loc->kind != V_STR)
        return vfail(m, "storage location must be a str, not %s", vkind_name[loc->kind]);
    if (num->kind != V_INT || num->i < 0 || num->i > (INT64_C(1) << 62))
        return vfail(m, "storage element count must be an int in [0, 2^62]");
    tc_dtype dt = (tc_dtype)type->b;
    size_t idx;
    for (idx = 0; idx < m->nstorages; idx++) {
        tc_pkl_storage *s = &m->storages[idx];
        if (strlen(s->key) == key->n && memcmp(s->key, key->s, key->n) == 0) {
            if (s->dtype != dt || s->numel != (uint64_t)num->i)
                return vfail(m, "storage '%s' is declared twice with different types or sizes "
                             "(%s x %llu, then %s x %lld)", s->key, tc_dtype_name(s->dtype),
                             (unsigned long long)s->numel, tc_dtype_name(dt),
                             (long long)num->i);
            break;
        }
    }
    if (idx == m->nstorages) {
        if (grow((void **)&m->storages, &m->capstorages, m->nstorages + 1, sizeof *m->storages))
            return oom(m);
        tc_pkl_storage *s = &m->storages[m->nstorages];
        if (!(s->key = malloc(key->n + 1)))
            return oom(m);
        memcpy(s->key, key->s, key->n);
        s->key[key->n] = '\0';
        s->dtype = dt;
        s->numel = (uint64_t)num->i;
        m->nstorages++;
    }
    uint32_t v;
    TC_TRY(new_val(m, V_STORAGE, &v));
    m->vals[v].a = (uint32_t)idx;
    return push(m, v);
}

/* torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride,
 * requires_grad, backward_hooks[, metadata]). */
static tc_status rebuild_tensor(vm *m, const pval *args)
{
    if (args->n != 6 && args->n != 7)
        return vfail(m, "_rebuild_tensor_v2 takes 6 or 7 arguments, got %u", args->n);
    const uint32_t *k = &m->kids[args->a];
    const pval *sv = &m->vals[k[0]], *off = &m->vals[k[1]], *size = &m->vals[k[2]];
    const pval *stride = &m->vals[k[3]], *rg = &m->vals[k[4]], *hooks = &m->vals[k[5]];
    if (sv->kind != V_STORAGE)
        return vfail(m, "_rebuild_tensor_v2 argument 0 must be a storage (persistent id), not %s",
                     vkind_name[sv->kind]);
    if (off->kind != V_INT || off->i < 0)
        return vfail(m, "_rebuild_tensor_v2 storage_offset must be a non-negative int");
    if (size->kind != V_TUPLE || stride->kind != V_TUPLE || size->n != stride->n)
        return vfail(m, "_rebuild_tensor_v2 size and stride must be tuples of equal length");
    if (size->n > TC_PKL_MAX_DIMS)
        return vfail(m, "tensor of %u dimensions (at most %d)", size->n, TC_PKL_MAX_DIMS);
    if (rg->kind != V_BOOL)
        return vfail(m, "_rebuild_tensor_v2 requires_grad must be a bool");
    if (hooks->kind != V_DICT || hooks->n != 0)
        return vfail(m, "_rebuild_tensor_v2 backward_hooks must be an empty OrderedDict");
    if (args->n == 7 && m->vals[k[6]].kind != V_DICT)
        return vfail(m, "_rebuild_tensor_v2 metadata must be a dict");
    const tc_pkl_storage *s = &m->storages[sv->a];
    tc_pkl_tensor t;
    memset(&t, 0, sizeof t);
    t.storage = sv->a;
    t.storage_offset = (uint64_t)off->i;
    t.ndim = (int)size->n;
    t.numel = 1;
    uint64_t last = t.storage_offset; /* element index of the last element */
    for (int d = 0; d < t.ndim; d++) {
        const pval *sz = &m->vals[m->kids[size->a + d]], *sd = &m->vals[m->kids[stride->a + d]];
        if (sz->kind != V_INT || sd->kind != V_INT || sz->i < 0 || sd->i < 0 ||
            sz->i > (INT64_C(1) << 62) || sd->i > (INT64_C(1) << 62))
            return vfail(m, "tensor size and stride entries must be ints in [0, 2^62]");
        t.shape[d] = sz->i;
        t.stride[d] = sd->i;
        uint64_t step;
        if (__builtin_mul_overflow(t.numel, (uint64_t)sz->i, &t.numel) ||
            t.numel > (UINT64_C(1) << 62))
            return vfail(m, "tensor element count overflows");
        if (sz->i > 0 && (__builtin_mul_overflow((uint64_t)(sz->i - 1), (uint64_t)sd->i, &step) ||
                          __builtin_add_overflow(last, step, &last)))
            return vfail(m, "tensor extent overflows");
    }
    if (t.numel > 0 && last >= s->numel)
        return vfail(m, "tensor reaches element %llu of storage '%s', which holds %llu",
                     (unsigned long long)last, s->key, (unsigned long long)s->numel);
    if (t.numel == 0 && t.storage_offset > s->numel)
        return vfail(m, "storage_offset %llu is past the end of storage '%s' (%llu elements)",
                     (unsigned long long)t.storage_offset, s->key, (unsigned long long)s->numel);
    /* torch's is_contiguous: dimensions of size 1 may have any stride. */
    t.contiguous = true;
    int64_t expect = 1;
    for (int d = t.ndim - 1; d >= 0 && t.numel > 0; d--) {
        if (t.shape[d] != 1 && t.stride[d] != expect)
            t.contiguous = false;
        expect *= t.shape[d];
    }
    if (grow((void **)&m->tensors, &m->captensors, m->ntensors + 1, sizeof *m->tensors))
        return oom(m);
    m->tensors[m->ntensors] = t;
    uint32_t v;
    TC_TRY(new_val(m, V_TENSOR, &v));
    m->vals[v].a = (uint32_t)m->ntensors++;
    return push(m, v);
}

static tc_status op_reduce(vm *m)
{
    uint32_t av, fv;
    TC_TRY(pop(m, &av));
    TC_TRY(pop(m, &fv));
    const pval *f = &m->vals[fv], *args = &m->vals[av];
    if (f->kind != V_GLOBAL)
        return vfail(m, "REDUCE of %s: only collections.OrderedDict and "
                     "torch._utils._rebuild_tensor_v2 may be applied", vkind_name[f->kind]);
    if (args->kind != V_TUPLE)
        return vfail(m, "REDUCE arguments must be a tuple, not %s", vkind_name[args->kind]);
    if (f->a == G_ODICT) {
        if (args->n != 0)
            return vfail(m, "collections.OrderedDict applied to %u arguments (torch.save writes "
                         "it with none)", args->n);
        uint32_t d;
        TC_TRY(new_val(m, V_DICT, &d));
        return push(m, d);
    }
    if (f->a == G_REBUILD)
        return rebuild_tensor(m, args);
    return vfail(m, "REDUCE of a torch storage class: only collections.OrderedDict and "
                 "torch._utils._rebuild_tensor_v2 may be applied");
}

static tc_status step(vm *m, bool *stop)
{
    m->op_pos = m->pos;
    unsigned op = m->p[m->pos++];
    uint32_t v, a, b;
    switch (op) {
    case 0x80: /* PROTO */
        TC_TRY(need_bytes(m, 1));
        if (m->op_pos != 0)
            return vfail(m, "PROTO is only allowed as the first opcode");
        if (m->p[m->pos] != 2)
            return vfail(m, "pickle protocol %u; torch.save writes protocol 2 and trtconv reads "
                         "only that", m->p[m->pos]);
        m->pos++;
        return TC_OK;
    case '.': /* STOP */
        if (m->nmarks != 0 || m->sp != 1)
            return vfail(m, "STOP with %zu objects and %d open MARKs on the stack (want one "
                         "object)", m->sp, m->nmarks);
        if (m->pos != m->len)
            return vfail(m, "%zu bytes after STOP", m->len - m->pos);
        *stop = true;
        return TC_OK;
    case '(': /* MARK */
        if (m->nmarks >= TC_PKL_MAX_MARKS)
            return vfail(m, "more than %d nested MARKs", TC_PKL_MAX_MARKS);
        m->marks[m->nmarks++] = m->sp;
        return TC_OK;
    case ')': /* EMPTY_TUPLE */
        return make_tuple(m, 0);
    case 0x85: case 0x86: case 0x87: { /* TUPLE1..3 */
        size_t n = op - 0x84;
        if (m->sp - floor_sp(m) < n)
            return vfail(m, "stack underflow (TUPLE%zu needs %zu objects)", n, n);
        return make_tuple(m, n);
    }
    case 't': { /* TUPLE */
        if (m->nmarks == 0)
            return vfail(m, "TUPLE without a MARK");
        size_t n = m->sp - m->marks[--m->nmarks];
        return make_tuple(m, n);
    }
    case '}': /* EMPTY_DICT */
        TC_TRY(new_val(m, V_DICT, &v));
        return push(m, v);
    case 's': /* SETITEM */
        TC_TRY(pop(m, &b));
        TC_TRY(pop(m, &a));
        TC_TRY(top(m, &v));
        return dict_add(m, v, a, b);
    case 'u': { /* SETITEMS */
        if (m->nmarks == 0)
            return vfail(m, "SETITEMS without a MARK");
        size_t base = m->marks[--m->nmarks];
        if ((m->sp - base) % 2 != 0)
            return vfail(m, "SETITEMS with an odd number (%zu) of keys and values", m->sp - base);
        if (base <= floor_sp(m))
            return vfail(m, "SETITEMS with no dict below its MARK");
        uint32_t d = m->stack[base - 1];
        for (size_t i = base; i < m->sp; i += 2)
            TC_TRY(dict_add(m, d, m->stack[i], m->stack[i + 1]));
        m->sp = base;
        return TC_OK;
    }
    case 'q': case 'r': { /* BINPUT, LONG_BINPUT */
        size_t w = op == 'q' ? 1 : 4;
        TC_TRY(need_bytes(m, w));
        size_t idx = w == 1 ? m->p[m->pos] : le32(m->p + m->pos);
        m->pos += w;
        if (idx >= TC_PKL_MAX_OBJECTS)
            return vfail(m, "memo index %zu above the limit of %u", idx, TC_PKL_MAX_OBJECTS);
        TC_TRY(top(m, &v));
        size_t old = m->capmemo;
        if (grow((void **)&m->memo, &m->capmemo, idx + 1, sizeof *m->memo))
            return oom(m);
        if (m->capmemo > old)
            memset(m->memo + old, 0, (m->capmemo - old) * sizeof *m->memo);
        m->memo[idx] = v + 1;
        return TC_OK;
    }
    case 'h': case 'j': { /* BINGET, LONG_BINGET */
        size_t w = op == 'h' ? 1 : 4;
        TC_TRY(need_bytes(m, w));
        size_t idx = w == 1 ? m->p[m->pos] : le32(m->p + m->pos);
        m->pos += w;
        if (idx >= m->capmemo || m->memo[idx] == 0)
            return vfail(m, "memo index %zu was never stored", idx);
        return push(m, m->memo[idx] - 1);
    }
    case 'K': case 'M': case 'J': { /* BININT1, BININT2, BININT */
        size_t w = op == 'K' ? 1 : op == 'M' ? 2 : 4;
        TC_TRY(need_bytes(m, w));
        const unsigned char *q = m->p + m->pos;
        int64_t x = w == 1 ? q[0] : w == 2 ? (int64_t)(q[0] | q[1] << 8) : (int64_t)(int32_t)le32(q);
        m->pos += w;
        TC_TRY(new_val(m, V_INT, &v));
        m->vals[v].i = x;
        return push(m, v);
    }
    case 0x8a: { /* LONG1: n-byte little-endian two's complement */
        TC_TRY(need_bytes(m, 1));
        size_t n = m->p[m->pos++];
        if (n > 8)
            return vfail(m, "LONG1 of %zu bytes: integers wider than 64 bits are not supported", n);
        TC_TRY(need_bytes(m, n));
        uint64_t u = 0;
        for (size_t i = 0; i < n; i++)
            u |= (uint64_t)m->p[m->pos + i] << (8 * i);
        if (n > 0 && n < 8 && (m->p[m->pos + n - 1] & 0x80))
            u |= ~UINT64_C(0) << (8 * n);
        m->pos += n;
        TC_TRY(new_val(m, V_INT, &v));
        memcpy(&m->vals[v].i, &u, sizeof u);
        return push(m, v);
    }
    case 'G': { /* BINFLOAT: big-endian IEEE double */
        TC_TRY(need_bytes(m, 8));
        uint64_t u = 0;
        for (int i = 0; i < 8; i++)
            u = u << 8 | m->p[m->pos + i];
        m->pos += 8;
        TC_TRY(new_val(m, V_FLOAT, &v));
        memcpy(&m->vals[v].i, &u, sizeof u);
        return push(m, v);
    }
    case 'X': { /* BINUNICODE: 4-byte length, UTF-8 */
        TC_TRY(need_bytes(m, 4));
        uint32_t n = le32(m->p + m->pos);
        m->pos += 4;
        TC_TRY(need_bytes(m, n));
        TC_TRY(new_val(m, V_STR, &v));
        m->vals[v].s = (const char *)m->p + m->pos;
        m->vals[v].n = n;
        m->pos += n;
        return push(m, v);
    }
    case 'N': /* NONE */
        TC_TRY(new_val(m, V_NONE, &v));
        return push(m, v);
    case 0x88: case 0x89: /* NEWTRUE, NEWFALSE */
        TC_TRY(new_val(m, V_BOOL, &v));
        m->vals[v].i = op == 0x88;
        return push(m, v);
    case 'c': /* GLOBAL */
        return op_global(m);
    case 'Q': /* BINPERSID */
        return op_persid(m);
    case 'R': /* REDUCE */
        return op_reduce(m);
    case 'b': /* BUILD: only the state dict of an OrderedDict (its _metadata) */
        TC_TRY(pop(m, &a));
        TC_TRY(top(m, &v));
        if (m->vals[v].kind != V_DICT)
            return vfail(m, "BUILD on %s: only an OrderedDict may receive state",
                         vkind_name[m->vals[v].kind]);
        if (m->vals[a].kind != V_DICT && m->vals[a].kind != V_NONE)
            return vfail(m, "BUILD state must be a dict or None, not %s",
                         vkind_name[m->vals[a].kind]);
        return TC_OK;
    default:
        return vfail(m, "opcode 0x%02x is not allowed (trtconv reads only the protocol-2 "
                     "opcodes torch.save uses for a state_dict)", op);
    }
}

static void vm_free(vm *m)
{
    free(m->vals);
    free(m->kids);
    free(m->ents);
    free(m->stack);
    free(m->memo);
    free(m->tensors);
    for (size_t i = 0; i < m->nstorages; i++)
        free(m->storages[i].key);
    free(m->storages);
}

void tc_pkl_free(tc_pkl_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_storages; i++)
        free(r->storages[i].key);
    free(r->storages);
    for (size_t i = 0; i < r->n_tensors; i++)
        free(r->tensors[i].name);
    free(r->tensors);
    memset(r, 0, sizeof *r);
}

tc_status tc_pkl_parse(const char *label, const unsigned char *buf, size_t len, tc_pkl_result *out)
{
    vm m;
    tc_status st = TC_OK;
    bool stop = false;

    memset(out, 0, sizeof *out);
    memset(&m, 0, sizeof m);
    m.label = label;
    m.p = buf;
    m.len = len;
    if (len > TC_PKL_MAX_BYTES)
        return tc_fail(TC_E_INPUT, "%s: pickle of %zu bytes is larger than the limit of %zu",
                       label, len, TC_PKL_MAX_BYTES);
    while (st == TC_OK && !stop) {
        if (m.pos >= m.len) {
            m.op_pos = m.len;
            st = vfail(&m, "the pickle ends without STOP");
            break;
        }
        st = step(&m, &stop);
    }
    if (st != TC_OK)
        goto done;

    const pval *root = &m.vals[m.stack[0]];
    if (root->kind != V_DICT) {
        st = tc_fail(TC_E_INPUT, "%s: the pickled object is %s; a state_dict (a dict of "
                     "tensor names to tensors) is required", label, vkind_name[root->kind]);
        goto done;
    }
    out->tensors = calloc(root->n ? root->n : 1, sizeof *out->tensors);
    if (!out->tensors) {
        st = oom(&m);
        goto done;
    }
    for (uint32_t e = root->n ? root->a : NO_ENTRY; e != NO_ENTRY; e = m.ents[e].next) {
        const pval *k = &m.vals[m.ents[e].key], *val = &m.vals[m.ents[e].val];
        if (k->kind != V_STR || k->n == 0 || memchr(k->s, 0, k->n)) {
            st = tc_fail(TC_E_INPUT, "%s: a state_dict key is %s; keys must be non-empty "
                         "strings without NUL", label,
                         k->kind == V_STR ? "empty or holds a NUL byte" : vkind_name[k->kind]);
            goto done;
        }
        char pk[160];
        printable(pk, sizeof pk, k->s, k->n);
        if (val->kind != V_TENSOR) {
            st = tc_fail(TC_E_INPUT, "%s: state_dict entry '%s' is %s, not a tensor (a nested "
                         "checkpoint such as {\"model\": state_dict} must be unwrapped first)",
                         label, pk, vkind_name[val->kind]);
            goto done;
        }
        tc_pkl_tensor *t = &out->tensors[out->n_tensors];
        *t = m.tensors[val->a];
        if (!(t->name = malloc(k->n + 1))) {
            st = oom(&m);
            goto done;
        }
        out->n_tensors++;
        memcpy(t->name, k->s, k->n);
        t->name[k->n] = '\0';
    }
    out->storages = m.storages;
    out->n_storages = m.nstorages;
    m.storages = NULL;
    m.nstorages = 0;

done:
    vm_free(&m);
    if (st != TC_OK)
        tc_pkl_free(out);
    return st;
}
