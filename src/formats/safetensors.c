/* safetensors.c: validating reader for safetensors files.
 *
 * The rules and their order follow the reference reader
 * (huggingface/safetensors read_metadata + Metadata::validate,
 * shared/spec/safetensors.md §4), with the cJSON differentials of §6 closed:
 *   1. file >= 8 bytes                                  HeaderTooSmall
 *   2. N <= 100 000 000                                 HeaderTooLarge
 *   3. 8 + N <= file size                               InvalidHeaderLength
 *   4. header bytes are UTF-8 (as Rust from_utf8)       InvalidHeader
 *   5. header is JSON as serde_json reads it into the reference structs:
 *      strict lexical rules (JSON whitespace only, no raw control characters
 *      in strings, no leading zeros, nesting < 128 as serde_json's recursion
 *      limit), only non-negative integers <= 2^53-1, one object with nothing
 *      after it, string-only __metadata__, every entry with dtype, shape
 *      and a 2-element data_offsets                    InvalidHeaderDeserialization
 *      duplicate tensor names, duplicate __metadata__, duplicate fields in
 *      an entry (serde keeps the last tensor, cJSON the first)   DuplicateKey
 *      dtype not a known variant                        UnknownDtype
 *   6. sorted by data_offsets, contiguous from 0        InvalidOffset
 *      shape product * bits without overflow            ValidationOverflow
 *      whole bytes                                      MisalignedSlice
 *      end - begin == bytes of shape x dtype            TensorInvalidInfo
 *   7. last end + 8 + N == file size                    MetadataIncompleteBuffer
 *
 * Deliberate differences from the reference (all stricter, all for inputs no
 * real writer produces): numbers above 2^53-1 (the schema caps sizes at
 * 2^48), and floats or negative numbers anywhere, even in entry fields the
 * reference ignores, are rejected; a "\u0000" escape is rejected because C
 * strings cannot hold it (cJSON would cut the name there). */
#define _POSIX_C_SOURCE 200809L
#include "trtconv/formats/safetensors.h"
#include "trtconv/core/utf8.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "trtconv/core/jsonutil.h"
#include "trtconv/core/log.h"

#define ST_MAX_UINT ((int64_t)9007199254740991LL) /* 2^53 - 1 */
#define ST_SERDE_MAX_DEPTH 127 /* serde_json fails on the 128th level */
#define ST_READ_CHUNK ((size_t)1 << 30)

const char *tc_st_error_name(tc_st_error e)
{
    switch (e) {
    case TC_ST_OK: return "Ok";
    case TC_ST_HEADER_TOO_SMALL: return "HeaderTooSmall";
    case TC_ST_HEADER_TOO_LARGE: return "HeaderTooLarge";
    case TC_ST_INVALID_HEADER_LENGTH: return "InvalidHeaderLength";
    case TC_ST_INVALID_HEADER: return "InvalidHeader";
    case TC_ST_INVALID_HEADER_DESERIALIZATION: return "InvalidHeaderDeserialization";
    case TC_ST_DUPLICATE_KEY: return "DuplicateKey";
    case TC_ST_UNKNOWN_DTYPE: return "UnknownDtype";
    case TC_ST_INVALID_OFFSET: return "InvalidOffset";
    case TC_ST_VALIDATION_OVERFLOW: return "ValidationOverflow";
    case TC_ST_MISALIGNED_SLICE: return "MisalignedSlice";
    case TC_ST_TENSOR_INVALID_INFO: return "TensorInvalidInfo";
    case TC_ST_METADATA_INCOMPLETE_BUFFER: return "MetadataIncompleteBuffer";
    case TC_ST_IO_ERROR: return "IoError";
    }
    return "Unknown";
}

/* ---- messages ----------------------------------------------------------- */

/* Log "<label>: <detail> (<Kind>)" through tc_fail, store the kind, return st. */
static tc_status st_fail(tc_st_error *kind_out, tc_st_error kind, tc_status st,
                         const char *label, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static tc_status st_fail(tc_st_error *kind_out, tc_st_error kind, tc_status st,
                         const char *label, const char *fmt, ...)
{
    char detail[1024];
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    if (r < 0)
        detail[0] = '\0'; /* a truncated detail is still useful; keep it */
    *kind_out = kind;
    return tc_fail(st, "%s: %s (%s)", label, detail, tc_st_error_name(kind));
}

/* Printable form of an untrusted tensor name for messages: at most ~120
 * bytes, control and non-ASCII bytes as \xNN. */
static const char *msg_name(const char *name, char *buf, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; name[i] != '\0'; i++) {
        unsigned char c = (unsigned char)name[i];
        if (o + 8 >= cap || i >= 120) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (c < 0x20 || c >= 0x7F || c == '\\' || c == '\'') {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[c >> 4];
            buf[o++] = hex[c & 15];
        } else {
            buf[o++] = (char)c;
        }
    }
    buf[o] = '\0';
    return buf;
}

/* "[2,3]" (truncated with "..." if long). */
static const char *msg_shape(const int64_t *shape, int ndim, char *buf, size_t cap)
{
    size_t o = 0;
    buf[o++] = '[';
    for (int i = 0; i < ndim; i++) {
        int r = snprintf(buf + o, cap - o, "%s%lld", i ? "," : "", (long long)shape[i]);
        if (r < 0 || (size_t)r >= cap - o - 5) {
            snprintf(buf + o, cap - o, ",...]");
            return buf;
        }
        o += (size_t)r;
    }
    buf[o++] = ']';
    buf[o] = '\0';
    return buf;
}

/* ---- lexical checks ----------------------------------------------------- */


/* Lexical rules where cJSON is laxer than serde_json. Returns NULL if the
 * text passes, else a description and the offending position in *pos. */
static const char *json_lex_check(const char *text, size_t len, size_t *pos)
{
    int in_string = 0;
    int depth = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        *pos = i;
        if (in_string) {
            if (c < 0x20)
                return "raw control character inside a string";
            if (c == '"') {
                in_string = 0;
            } else if (c == '\\') {
                if (i + 1 < len && text[i + 1] == 'u' && len - i >= 6 &&
                    memcmp(text + i + 2, "0000", 4) == 0)
                    return "\\u0000 escape (NUL) inside a string";
                i++; /* skip the escaped character; cJSON checks the rest */
            }
            continue;
        }
        switch (c) {
        case ' ': case '\t': case '\n': case '\r':
        case ':': case ',': case '-': case '+': case '.':
            break;
        case '"':
            in_string = 1;
            break;
        case '{': case '[':
            if (++depth > ST_SERDE_MAX_DEPTH)
                return "nesting deeper than serde_json's recursion limit";
            break;
        case '}': case ']':
            depth--;
            break;
        default:
            if (c >= '0' && c <= '9') {
                /* a number token starts here unless a digit precedes it */
                int starts = i == 0 || !(text[i - 1] >= '0' && text[i - 1] <= '9');
                if (starts && c == '0' && i + 1 < len && text[i + 1] >= '0' &&
                    text[i + 1] <= '9')
                    return "number with a leading zero";
            } else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) {
                return c < 0x20 || c == 0x7F ? "control character outside a string"
                                             : "unexpected byte outside a string";
            }
            break;
        }
    }
    return NULL;
}

/* ---- schema ------------------------------------------------------------- */

static int cmp_by_offsets(const void *pa, const void *pb)
{
    const tc_st_tensor *a = pa, *b = pb;
    if (a->begin != b->begin)
        return a->begin < b->begin ? -1 : 1;
    if (a->end != b->end)
        return a->end < b->end ? -1 : 1;
    return strcmp(a->name, b->name);
}

static int cmp_by_name(const void *pa, const void *pb)
{
    const tc_st_tensor *a = pa, *b = pb;
    return strcmp(a->name, b->name);
}

/* Fill t from one header entry (name already set). */
static tc_status parse_entry(const char *label, const cJSON *e, tc_st_tensor *t,
                             tc_st_error *kind)
{
    char nb[160];
    const char *dup;
    const cJSON *dt, *shape, *offs;
    if (!cJSON_IsObject(e))
        return st_fail(kind, TC_ST_INVALID_HEADER_DESERIALIZATION, TC_E_INPUT, label,
                       "tensor '%s': entry is not a JSON object",
                       msg_name(t->name, nb, sizeof nb));
    if ((dup = tc_json_find_duplicate_key(e)) != NULL)
        return st_fail(kind, TC_ST_DUPLICATE_KEY, TC_E_INPUT, label,
                       "tensor '%s': field '%s' appears more than once",
                       msg_name(t->name, nb, sizeof nb), dup);

    dt = tc_json_get(e, "dtype");
    shape = tc_json_get(e, "shape");
    offs = tc_json_get(e, "data_offsets");
    if (!dt || !shape || !offs)
        return st_fail(kind, TC_ST_INVALID_HEADER_DESERIALIZATION, TC_E_INPUT, label,
                       "tensor '%s': missing field '%s'", msg_name(t->name, nb, sizeof nb),
                       !dt ? "dtype" : !shape ? "shape" : "data_offsets");

    if (!cJSON_IsString(dt))
        return st_fail(kind, TC_ST_INVALID_HEADER_DESERIALIZATION, TC_E_INPUT, label,
                       "tensor '%s': dtype is not a string", msg_name(t->name, nb, sizeof nb));
    if (tc_dtype_parse(dt->valuestring, &t->dtype) != 0) {
        char db[160];
        return st_fail(kind, TC_ST_UNKNOWN_DTYPE, TC_E_INPUT, label,
                       "tensor '%s': unknown dtype '%s' (names are case-sensitive, e.g. F16)",
                       msg_name(t->name, nb, sizeof nb), msg_name(dt->valuestring, db, sizeof db));
    }

    if (!cJSON_IsArray(shape))
        return st_fail(kind, TC_ST_INVALID_HEADER_DESERIALIZATION, TC_E_INPUT, label,
                       "tensor '%s': shape is not an array", msg_name(t->name, nb, sizeof nb));
    int ndim = cJSON_GetArraySize(shape);
    /* At least one byte, so bounded by the header size already read. */
    t->shape = malloc((size_t)(ndim > 0 ? ndim : 1) * sizeof *t->shape);
    if (!t->shape)
        return st_fail(kind, TC_ST_IO_ERROR, TC_E_INTERNAL, label,
                       "out of memory for a shape of %d dimensions", ndim);
    t->ndim = ndim;
    int i = 0;
    for (const cJSON *d = shape->child; d; d = d->next, i++) {
        int64_t v;
        if (!tc_json_int(d, 0, ST_MAX_UINT, &v))
            return st_fail(kind, TC_ST_INVALID_HEADER_DESERIALIZATION, TC_E_INPUT, label,
                           "tensor '%s': shape[%d] is not an integer in [0, 2^53)",
                           msg_name(t->name, nb, sizeof nb), i);
        t->shape[i] = v;
    }

    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return st_fail(kind, TC_ST_INVALID_HEADER_DESERIALIZATION, TC_E_INPUT, label,
                       "tensor '%s': data_offsets is not an array of exactly 2 integers",
                       msg_name(t->name, nb, sizeof nb));
    int64_t b, en;
    if (!tc_json_int(offs->child, 0, ST_MAX_UINT, &b) ||
        !tc_json_int(offs->child->next, 0, ST_MAX_UINT, &en))
        return st_fail(kind, TC_ST_INVALID_HEADER_DESERIALIZATION, TC_E_INPUT, label,
                       "tensor '%s': data_offsets holds a value that is not an integer in "
                       "[0, 2^53)", msg_name(t->name, nb, sizeof nb));
    t->begin = (uint64_t)b;
    t->end = (uint64_t)en;
    return TC_OK;
}

static tc_status parse_metadata(const char *label, const cJSON *m, tc_st_error *kind)
{
    char nb[160];
    if (cJSON_IsNull(m))
        return TC_OK; /* Option<HashMap> in the reference: null means none */
    if (!cJSON_IsObject(m))
        return st_fail(kind, TC_ST_INVALID_HEADER_DESERIALIZATION, TC_E_INPUT, label,
                       "__metadata__ is not an object of strings");
    /* Duplicate keys inside __metadata__ are accepted as the reference does
     * (last wins); trtconv never reads these values. */
    for (const cJSON *c = m->child; c; c = c->next) {
        if (!cJSON_IsString(c))
            return st_fail(kind, TC_ST_INVALID_HEADER_DESERIALIZATION, TC_E_INPUT, label,
                           "__metadata__ value for key '%s' is not a string",
                           msg_name(c->string ? c->string : "", nb, sizeof nb));
    }
    return TC_OK;
}

/* Contiguity and size rules on tensors sorted by offsets; *end gets the end
 * of the last tensor. */
static tc_status validate_offsets(const char *label, tc_st_tensor *ts, size_t n,
                                  uint64_t *end, tc_st_error *kind)
{
    char nb[160], sb[160];
    uint64_t start = 0;
    for (size_t i = 0; i < n; i++) {
        tc_st_tensor *t = &ts[i];
        if (t->begin != start || t->end < t->begin)
            return st_fail(kind, TC_ST_INVALID_OFFSET, TC_E_INPUT, label,
                           "tensor '%s': data_offsets [%llu,%llu] %s (expected begin %llu; "
                           "the data area must be covered without gaps or overlaps)",
                           msg_name(t->name, nb, sizeof nb), (unsigned long long)t->begin,
                           (unsigned long long)t->end,
                           t->end < t->begin ? "end before begin" :
                           t->begin > start ? "leave a gap" : "overlap the previous tensor",
                           (unsigned long long)start);
        start = t->end;
        uint64_t nel = 1;
        int overflow = 0;
        for (int d = 0; d < t->ndim && !overflow; d++) {
            uint64_t v = (uint64_t)t->shape[d];
            if (v != 0 && nel > UINT64_MAX / v)
                overflow = 1;
            else
                nel *= v;
        }
        unsigned bits = tc_dtype_bits(t->dtype);
        if (overflow || nel > UINT64_MAX / bits)
            return st_fail(kind, TC_ST_VALIDATION_OVERFLOW, TC_E_INPUT, label,
                           "tensor '%s': shape %s of %s overflows 64 bits when computing "
                           "its size", msg_name(t->name, nb, sizeof nb),
                           msg_shape(t->shape, t->ndim, sb, sizeof sb), tc_dtype_name(t->dtype));
        uint64_t nbits = nel * bits;
        if (nbits % 8 != 0)
            return st_fail(kind, TC_ST_MISALIGNED_SLICE, TC_E_INPUT, label,
                           "tensor '%s': shape %s of %s is %llu bits, not a whole number "
                           "of bytes", msg_name(t->name, nb, sizeof nb),
                           msg_shape(t->shape, t->ndim, sb, sizeof sb), tc_dtype_name(t->dtype),
                           (unsigned long long)nbits);
        if (t->end - t->begin != nbits / 8)
            return st_fail(kind, TC_ST_TENSOR_INVALID_INFO, TC_E_INPUT, label,
                           "tensor '%s': data_offsets [%llu,%llu] span %llu bytes but shape "
                           "%s of %s needs %llu", msg_name(t->name, nb, sizeof nb),
                           (unsigned long long)t->begin, (unsigned long long)t->end,
                           (unsigned long long)(t->end - t->begin),
                           msg_shape(t->shape, t->ndim, sb, sizeof sb), tc_dtype_name(t->dtype),
                           (unsigned long long)(nbits / 8));
        t->nelements = nel;
    }
    *end = start;
    return TC_OK;
}

tc_status tc_st_parse_header(const char *label, const char *buf, size_t n,
                             uint64_t file_size, tc_st_file **out, tc_st_error *err)
{
    tc_status st = TC_OK;
    tc_st_error kind = TC_ST_OK;
    tc_st_file *f = NULL;
    cJSON *root = NULL;
    const char *why;
    size_t pos = 0;
    char nb[160];

    *out = NULL;
    if (!label)
        label = "<memory>";
    if (file_size < 8) {
        st = st_fail(&kind, TC_ST_HEADER_TOO_SMALL, TC_E_INPUT, label,
                     "file is %llu bytes, shorter than the 8-byte header length",
                     (unsigned long long)file_size);
        goto done;
    }
    if ((uint64_t)n > TC_ST_MAX_HEADER) {
        st = st_fail(&kind, TC_ST_HEADER_TOO_LARGE, TC_E_INPUT, label,
                     "header length %zu exceeds the limit of %llu bytes", n,
                     (unsigned long long)TC_ST_MAX_HEADER);
        goto done;
    }
    if ((uint64_t)n > file_size - 8) {
        st = st_fail(&kind, TC_ST_INVALID_HEADER_LENGTH, TC_E_INPUT, label,
                     "header length %zu runs past the end of the %llu-byte file", n,
                     (unsigned long long)file_size);
        goto done;
    }
    if (n == 0) {
        st = st_fail(&kind, TC_ST_INVALID_HEADER_DESERIALIZATION, TC_E_INPUT, label,
                     "header is empty (a JSON object is required)");
        goto done;
    }
    if (!tc_utf8_check(buf, n, &pos)) {
        st = st_fail(&kind, TC_ST_INVALID_HEADER, TC_E_INPUT, label,
                     "header is not valid UTF-8 at header byte %zu", pos);
        goto done;
    }
    if ((why = json_lex_check(buf, n, &pos)) != NULL) {
        st = st_fail(&kind, TC_ST_INVALID_HEADER_DESERIALIZATION, TC_E_INPUT, label,
                     "header JSON: %s at header byte %zu", why, pos);
        goto done;
    }
    if (tc_json_has_non_uint_number(buf, n, &pos)) {
        st = st_fail(&kind, TC_ST_INVALID_HEADER_DESERIALIZATION, TC_E_INPUT, label,
                     "header JSON: number at header byte %zu is negative, fractional or has "
                     "an exponent; only non-negative integers are allowed", pos);
        goto done;
    }
    root = tc_json_parse(label, buf, n);
    if (!root) {
        st = st_fail(&kind, TC_ST_INVALID_HEADER_DESERIALIZATION, TC_E_INPUT, label,
                     "header is not one valid JSON value (syntax error or trailing "
                     "characters)");
        goto done;
    }
    if (!cJSON_IsObject(root)) {
        st = st_fail(&kind, TC_ST_INVALID_HEADER_DESERIALIZATION, TC_E_INPUT, label,
                     "header is not a JSON object");
        goto done;
    }
    const char *dup = tc_json_find_duplicate_key(root);
    if (dup) {
        st = st_fail(&kind, TC_ST_DUPLICATE_KEY, TC_E_INPUT, label,
                     "%s%s%s appears more than once in the header",
                     strcmp(dup, "__metadata__") == 0 ? "" : "tensor name '",
                     msg_name(dup, nb, sizeof nb),
                     strcmp(dup, "__metadata__") == 0 ? "" : "'");
        goto done;
    }

    size_t count = 0;
    for (const cJSON *c = root->child; c; c = c->next)
        if (strcmp(c->string, "__metadata__") != 0)
            count++;

    f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(label)) ||
        !(f->tensors = calloc(count ? count : 1, sizeof *f->tensors))) {
        st = st_fail(&kind, TC_ST_IO_ERROR, TC_E_INTERNAL, label,
                     "out of memory for %zu tensor entries", count);
        goto done;
    }
    f->fd = -1;
    f->file_size = file_size;
    f->header_len = n;
    f->data_offset = 8 + (uint64_t)n;

    for (const cJSON *c = root->child; c; c = c->next) {
        if (strcmp(c->string, "__metadata__") == 0) {
            if ((st = parse_metadata(label, c, &kind)) != TC_OK)
                goto done;
            continue;
        }
        tc_st_tensor *t = &f->tensors[f->n_tensors++];
        if (!(t->name = strdup(c->string))) {
            st = st_fail(&kind, TC_ST_IO_ERROR, TC_E_INTERNAL, label, "out of memory");
            goto done;
        }
        if ((st = parse_entry(label, c, t, &kind)) != TC_OK)
            goto done;
    }

    qsort(f->tensors, f->n_tensors, sizeof *f->tensors, cmp_by_offsets);
    uint64_t data_end = 0;
    if ((st = validate_offsets(label, f->tensors, f->n_tensors, &data_end, &kind)) != TC_OK)
        goto done;
    if (data_end != file_size - f->data_offset) {
        st = st_fail(&kind, TC_ST_METADATA_INCOMPLETE_BUFFER, TC_E_INPUT, label,
                     "tensors cover %llu data bytes but the file holds %llu after the "
                     "%llu-byte header (%s)", (unsigned long long)data_end,
                     (unsigned long long)(file_size - f->data_offset),
                     (unsigned long long)n,
                     data_end < file_size - f->data_offset ? "trailing bytes"
                                                           : "file truncated");
        goto done;
    }
    qsort(f->tensors, f->n_tensors, sizeof *f->tensors, cmp_by_name);

done:
    cJSON_Delete(root);
    if (st != TC_OK) {
        tc_st_close(f);
        f = NULL;
    }
    *out = f;
    if (err)
        *err = st == TC_OK ? TC_ST_OK : kind;
    return st;
}

/* ---- file access -------------------------------------------------------- */

/* Read exactly n bytes at off. Returns 0, or -1 with errno (0 = early EOF). */
static int pread_full(int fd, void *dst, size_t n, uint64_t off)
{
    char *p = dst;
    while (n > 0) {
        size_t want = n < ST_READ_CHUNK ? n : ST_READ_CHUNK;
        ssize_t r = pread(fd, p, want, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0) {
            errno = 0;
            return -1;
        }
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

static const char *read_error_text(void)
{
    return errno ? strerror(errno) : "unexpected end of file (file changed while open?)";
}

tc_status tc_st_open(const char *path, tc_st_file **out, tc_st_error *err)
{
    tc_status st = TC_OK;
    tc_st_error kind = TC_ST_OK;
    int fd = -1;
    char *hdr = NULL;
    tc_st_file *f = NULL;
    struct stat sb;
    unsigned char prefix[8];

    *out = NULL;
    /* O_NONBLOCK: opening a FIFO must not block (refused below); it has no
     * effect on reads of a regular file. */
    fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        st = st_fail(&kind, TC_ST_IO_ERROR, TC_E_IO, path, "cannot open: %s", strerror(errno));
        goto done;
    }
    if (fstat(fd, &sb) != 0) {
        st = st_fail(&kind, TC_ST_IO_ERROR, TC_E_IO, path, "cannot stat: %s", strerror(errno));
        goto done;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = st_fail(&kind, TC_ST_IO_ERROR, TC_E_IO, path,
                     "not a regular file (a FIFO, device or directory): refusing to read it");
        goto done;
    }
    uint64_t fsize = (uint64_t)sb.st_size;
    if (fsize < 8) {
        st = st_fail(&kind, TC_ST_HEADER_TOO_SMALL, TC_E_INPUT, path,
                     "file is %llu bytes, shorter than the 8-byte header length",
                     (unsigned long long)fsize);
        goto done;
    }
    if (pread_full(fd, prefix, sizeof prefix, 0) != 0) {
        st = st_fail(&kind, TC_ST_IO_ERROR, TC_E_IO, path, "cannot read the header length: %s",
                     read_error_text());
        goto done;
    }
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | prefix[i];
    /* Both bounds before allocating: n <= 1e8 and n <= file size - 8. */
    if (n > TC_ST_MAX_HEADER) {
        st = st_fail(&kind, TC_ST_HEADER_TOO_LARGE, TC_E_INPUT, path,
                     "header length %llu exceeds the limit of %llu bytes",
                     (unsigned long long)n, (unsigned long long)TC_ST_MAX_HEADER);
        goto done;
    }
    if (n > fsize - 8) {
        st = st_fail(&kind, TC_ST_INVALID_HEADER_LENGTH, TC_E_INPUT, path,
                     "header length %llu runs past the end of the %llu-byte file",
                     (unsigned long long)n, (unsigned long long)fsize);
        goto done;
    }
    hdr = malloc(n ? (size_t)n : 1);
    if (!hdr) {
        st = st_fail(&kind, TC_ST_IO_ERROR, TC_E_INTERNAL, path,
                     "out of memory for a %llu-byte header", (unsigned long long)n);
        goto done;
    }
    if (pread_full(fd, hdr, (size_t)n, 8) != 0) {
        st = st_fail(&kind, TC_ST_IO_ERROR, TC_E_IO, path, "cannot read the %llu-byte header: %s",
                     (unsigned long long)n, read_error_text());
        goto done;
    }
    if ((st = tc_st_parse_header(path, hdr, (size_t)n, fsize, &f, &kind)) != TC_OK)
        goto done;
    f->fd = fd;
    fd = -1;

done:
    free(hdr);
    if (fd >= 0)
        close(fd);
    *out = f;
    if (err)
        *err = st == TC_OK ? TC_ST_OK : kind;
    return st;
}

void tc_st_close(tc_st_file *f)
{
    if (!f)
        return;
    if (f->fd >= 0)
        close(f->fd);
    if (f->tensors) {
        for (size_t i = 0; i < f->n_tensors; i++) {
            free(f->tensors[i].name);
            free(f->tensors[i].shape);
        }
        free(f->tensors);
    }
    free(f->path);
    free(f);
}

static int cmp_key_tensor(const void *key, const void *elem)
{
    return strcmp((const char *)key, ((const tc_st_tensor *)elem)->name);
}

const tc_st_tensor *tc_st_find(const tc_st_file *f, const char *name)
{
    if (!f || !name || f->n_tensors == 0)
        return NULL;
    return bsearch(name, f->tensors, f->n_tensors, sizeof *f->tensors, cmp_key_tensor);
}

static _Atomic uint64_t g_bytes_read;

uint64_t tc_st_bytes_read(void)
{
    return atomic_load(&g_bytes_read);
}

tc_status tc_st_read(const tc_st_file *f, uint64_t off, void *dst, size_t n)
{
    uint64_t avail = f->file_size - f->data_offset;
    if (off > avail || (uint64_t)n > avail - off)
        return tc_fail(TC_E_IO, "%s: read of %zu bytes at data offset %llu is outside the "
                       "%llu-byte data area", f->path, n, (unsigned long long)off,
                       (unsigned long long)avail);
    if (f->fd < 0)
        return tc_fail(TC_E_IO, "%s: no open file to read from (header parsed from memory)",
                       f->path);
    if (n == 0)
        return TC_OK;
    if (pread_full(f->fd, dst, n, f->data_offset + off) != 0)
        return tc_fail(TC_E_IO, "%s: read of %zu bytes at file offset %llu failed: %s",
                       f->path, n, (unsigned long long)(f->data_offset + off),
                       read_error_text());
    atomic_fetch_add(&g_bytes_read, (uint64_t)n);
    return TC_OK;
}
