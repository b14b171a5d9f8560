/* calib_stats.c: calibration statistics container, HDF5 file, import of
 * upstream act_range dumps (see calib_stats.h). */
#define _POSIX_C_SOURCE 200809L
#include "trtconv/calib/calib_stats.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "trtconv/build_config.h"
#include "trtconv/core/dtype.h"
#include "trtconv/core/fsutil.h"
#include "trtconv/core/log.h"
#include "trtconv/formats/safetensors.h"
#if TRTCONV_HAVE_HDF5
#include <hdf5.h>
#endif

static const char *const linear_names[TC_LIN_COUNT + 1] = {
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head" };
/* Hugging Face module path of each decoder linear, below model.layers.L. */
static const char *const linear_modules[TC_LIN_COUNT] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj" };
static const char *const kind_names[TC_STAT_COUNT] = { "x", "y", "w" };

const char *tc_linear_name(tc_linear lin)
{
    return (unsigned)lin <= TC_LIN_COUNT ? linear_names[lin] : "?";
}

const char *tc_stat_kind_name(tc_stat_kind k)
{
    return (unsigned)k < TC_STAT_COUNT ? kind_names[k] : "?";
}

void tc_calib_dims_from_config(const tc_hf_config *cfg, tc_calib_dims *d)
{
    d->layers = cfg->num_hidden_layers;
    d->hidden = cfg->hidden_size;
    d->heads = cfg->num_attention_heads;
    d->kv_heads = cfg->num_key_value_heads;
    d->head_dim = cfg->head_dim;
    d->inter = cfg->intermediate_size;
    d->vocab = cfg->vocab_size;
    d->experts = tc_hf_is_moe(cfg) ? cfg->moe_num_experts : 0;
}

int64_t tc_calib_stack(const tc_calib_dims *d, tc_linear lin)
{
    const bool mlp = lin == TC_LIN_GATE || lin == TC_LIN_UP || lin == TC_LIN_DOWN;
    return mlp && d->experts > 1 ? d->experts : 1;
}

int64_t tc_calib_in_dim(const tc_calib_dims *d, tc_linear lin)
{
    switch (lin) {
    case TC_LIN_O: return d->heads * d->head_dim;
    case TC_LIN_DOWN: return d->inter;
    default: return d->hidden;
    }
}

int64_t tc_calib_out_dim(const tc_calib_dims *d, tc_linear lin)
{
    switch (lin) {
    case TC_LIN_Q: return d->heads * d->head_dim;
    case TC_LIN_K: case TC_LIN_V: return d->kv_heads * d->head_dim;
    case TC_LIN_GATE: case TC_LIN_UP: return d->inter;
    case TC_LIN_LM_HEAD: return d->vocab;
    default: return d->hidden;
    }
}

static size_t linear_floats(const tc_calib_dims *d, tc_linear lin)
{
    return (size_t)(tc_calib_stack(d, lin) * (tc_calib_in_dim(d, lin) + 2 * tc_calib_out_dim(d, lin)));
}

static size_t layer_floats(const tc_calib_dims *d)
{
    size_t n = 0;
    for (int l = 0; l < TC_LIN_COUNT; l++)
        n += linear_floats(d, (tc_linear)l);
    return n;
}

size_t tc_calib_offset(const tc_calib_dims *d, int64_t layer, tc_linear lin, tc_stat_kind k)
{
    size_t off;
    if (layer < 0) {
        off = (size_t)d->layers * layer_floats(d);
    } else {
        off = (size_t)layer * layer_floats(d);
        for (int l = 0; l < (int)lin; l++)
            off += linear_floats(d, (tc_linear)l);
    }
    const size_t e = (size_t)tc_calib_stack(d, lin);
    if (k >= TC_STAT_Y)
        off += e * (size_t)tc_calib_in_dim(d, lin);
    if (k == TC_STAT_W)
        off += e * (size_t)tc_calib_out_dim(d, lin);
    return off;
}

size_t tc_calib_entry_count(const tc_calib_dims *d)
{
    return (size_t)d->layers * TC_LIN_COUNT * TC_STAT_COUNT + TC_STAT_COUNT;
}

void tc_calib_entry(const tc_calib_dims *d, size_t i, int64_t *layer, tc_linear *lin,
                    tc_stat_kind *k)
{
    const size_t per_layer = TC_LIN_COUNT * TC_STAT_COUNT;
    *k = (tc_stat_kind)(i % TC_STAT_COUNT);
    if (i >= (size_t)d->layers * per_layer) {
        *layer = -1;
        *lin = TC_LIN_LM_HEAD;
    } else {
        *layer = (int64_t)(i / per_layer);
        *lin = (tc_linear)(i % per_layer / TC_STAT_COUNT);
    }
}

void tc_calib_entry_path(int64_t layer, tc_linear lin, tc_stat_kind k, char *path, size_t n)
{
    if (layer < 0)
        snprintf(path, n, "/lm_head/%s", kind_names[k]);
    else
        snprintf(path, n, "/layers/%lld/%s/%s", (long long)layer, linear_names[lin], kind_names[k]);
}

tc_status tc_calib_stats_alloc(const tc_calib_dims *d, tc_calib_stats *s)
{
    memset(s, 0, sizeof *s);
    if (d->layers < 1 || d->hidden < 1 || d->heads < 1 || d->kv_heads < 1 || d->head_dim < 1 ||
        d->inter < 1 || d->vocab < 1 || d->experts < 0 || d->experts > 4096)
        return tc_fail(TC_E_INPUT, "calibration statistics: invalid model dimensions");
    s->d = *d;
    s->n = (size_t)d->layers * layer_floats(d) + linear_floats(d, TC_LIN_LM_HEAD);
    s->data = calloc(s->n, sizeof(float));
    if (!s->data)
        return tc_fail(TC_E_INTERNAL, "out of memory for %zu calibration statistics", s->n);
    return TC_OK;
}

void tc_calib_stats_free(tc_calib_stats *s)
{
    free(s->data);
    memset(s, 0, sizeof *s);
}

float *tc_calib_get(const tc_calib_stats *s, int64_t layer, tc_linear lin, tc_stat_kind k,
                    int64_t *len)
{
    if (len)
        *len = tc_calib_stack(&s->d, lin) *
               (k == TC_STAT_X ? tc_calib_in_dim(&s->d, lin) : tc_calib_out_dim(&s->d, lin));
    return s->data + tc_calib_offset(&s->d, layer, lin, k);
}

static void stat_label(int64_t layer, tc_linear lin, char *buf, size_t n)
{
    if (layer < 0)
        snprintf(buf, n, "lm_head");
    else
        snprintf(buf, n, "layer %lld %s", (long long)layer, linear_modules[lin]);
}

tc_status tc_calib_stats_check(const tc_calib_stats *s, const char *label)
{
    /* Layers in order, lm_head last: the first overflow is the one named. */
    for (size_t e = 0; e < tc_calib_entry_count(&s->d); e++) {
        int64_t layer, n;
        tc_linear lin;
        tc_stat_kind k;
        tc_calib_entry(&s->d, e, &layer, &lin, &k);
        const float *v = tc_calib_get(s, layer, lin, k, &n);
        for (int64_t i = 0; i < n; i++) {
            if (isfinite(v[i]) && v[i] >= 0.0f)
                continue;
            char where[96];
            stat_label(layer, lin, where, sizeof where);
            if (v[i] < 0.0f)
                return tc_fail(TC_E_INPUT, "%s: negative maximum %g in the %s of %s (channel "
                               "%lld): maxima of absolute values are never negative", label,
                               (double)v[i], k == TC_STAT_W ? "weights" : k == TC_STAT_X ?
                               "inputs" : "outputs", where, (long long)i);
            if (k == TC_STAT_W)
                return tc_fail(TC_E_INPUT, "%s: NaN or Inf in the weights of %s (row %lld)", label,
                               where, (long long)i);
            return tc_fail(TC_E_INPUT,
                           "%s: NaN or Inf in the activations of %s (%s, channel %lld = %g): the "
                           "model overflows the forward dtype on this data", label, where,
                           k == TC_STAT_X ? "input" : "output", (long long)i, (double)v[i]);
        }
    }
    return TC_OK;
}

tc_status tc_calib_stats_check_scales(const tc_calib_stats *s, const char *label)
{
    for (size_t e = 0; e < tc_calib_entry_count(&s->d); e++) {
        int64_t layer, n;
        tc_linear lin;
        tc_stat_kind k;
        tc_calib_entry(&s->d, e, &layer, &lin, &k);
        /* The maxima the scales divide by: the input of each quantized
         * input (q_proj's stands for k and v) and every output. */
        const bool uncollected = s->d.experts > 1 && lin == TC_LIN_DOWN && k == TC_STAT_Y;
        const bool used = layer >= 0 && !uncollected &&
                          (k == TC_STAT_Y || (k == TC_STAT_X && lin != TC_LIN_K && lin != TC_LIN_V));
        if (!used)
            continue;
        const float *v = tc_calib_get(s, layer, lin, k, &n);
        float mx = 0.0f;
        for (int64_t i = 0; i < n; i++)
            mx = fmaxf(mx, v[i]);
        if (mx == 0.0f) {
            char where[96];
            stat_label(layer, lin, where, sizeof where);
            return tc_fail(TC_E_INPUT, "%s: every %s maximum of %s is 0: its quantization scale "
                           "(127 / max) would divide by zero", label,
                           k == TC_STAT_X ? "input" : "output", where);
        }
    }
    return TC_OK;
}

/* ---- upstream act_range dump (safetensors) ---- */

static tc_status import_one(const tc_st_file *f, const char *name, bool optional, float *dst,
                            int64_t len)
{
    const tc_st_tensor *t = tc_st_find(f, name);
    if (!t) {
        if (optional)
            return TC_OK;
        return tc_fail(TC_E_INPUT, "%s: no tensor %s", f->path, name);
    }
    if (t->ndim != 1 || t->shape[0] != len)
        return tc_fail(TC_E_INPUT, "%s: tensor %s must have shape [%lld] (the model's channels)",
                       f->path, name, (long long)len);
    if (t->dtype == TC_DT_F32) {
        return tc_st_read(f, t->begin, dst, (size_t)len * 4);
    } else if (t->dtype == TC_DT_F16) {
        uint16_t *h = malloc((size_t)len * 2 + 1);
        if (!h)
            return tc_fail(TC_E_INTERNAL, "out of memory");
        tc_status st = tc_st_read(f, t->begin, h, (size_t)len * 2);
        for (int64_t i = 0; st == TC_OK && i < len; i++)
            dst[i] = tc_f16_to_f32(h[i]);
        free(h);
        return st;
    }
    return tc_fail(TC_E_INPUT, "%s: tensor %s must be F32 or F16", f->path, name);
}

tc_status tc_calib_stats_import_safetensors(const char *path, const tc_calib_dims *expect,
                                            tc_calib_stats *out)
{
    if (expect->experts > 1)
        return tc_fail(TC_E_USAGE, "%s: TensorRT-LLM's capture_activation_range dumps hold no "
                       "expert statistics; calibrate the mixture-of-experts model with trtconv",
                       path);
    tc_st_file *f = NULL;
    tc_status st = tc_st_open(path, &f, NULL);
    if (st != TC_OK)
        return st;
    st = tc_calib_stats_alloc(expect, out);
    char name[160];
    for (size_t e = 0; st == TC_OK && e < tc_calib_entry_count(expect); e++) {
        int64_t layer, n;
        tc_linear lin;
        tc_stat_kind k;
        tc_calib_entry(expect, e, &layer, &lin, &k);
        float *dst = tc_calib_get(out, layer, lin, k, &n);
        if (layer < 0)
            snprintf(name, sizeof name, "lm_head.%s", kind_names[k]);
        else
            snprintf(name, sizeof name, "model.layers.%lld.%s.%s", (long long)layer,
                     linear_modules[lin], kind_names[k]);
        st = import_one(f, name, layer < 0, dst, n); /* lm_head is optional */
    }
    if (st == TC_OK) {
        snprintf(out->calib_dataset, sizeof out->calib_dataset, "imported from %s", path);
        snprintf(out->forward_dtype, sizeof out->forward_dtype, "float16");
        snprintf(out->layout, sizeof out->layout, "TensorRT-LLM capture_activation_range");
        st = tc_calib_stats_check(out, path);
    }
    tc_st_close(f);
    if (st != TC_OK)
        tc_calib_stats_free(out);
    return st;
}

/* ---- HDF5 ---- */

#if TRTCONV_HAVE_HDF5

#define H5_FORMAT "trtconv-calib-stats"
#define H5_FORMAT_VERSION 1

static tc_status h5_fail(const char *path, const char *what)
{
    return tc_fail(TC_E_IO, "%s: HDF5: %s failed", path, what);
}

static herr_t attr_str(hid_t obj, const char *name, const char *value)
{
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, strlen(value) + 1);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a < 0 ? -1 : H5Awrite(a, type, value);
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(space);
    H5Tclose(type);
    return rc;
}

static herr_t attr_i64(hid_t obj, const char *name, int64_t value)
{
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a < 0 ? -1 : H5Awrite(a, H5T_NATIVE_INT64, &value);
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(space);
    return rc;
}

tc_status tc_calib_stats_write_h5(const tc_calib_stats *s, const char *path)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    /* Written to a temporary name and renamed: a reader never sees half a file. */
    char tmp[4200];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.partial", path) >= sizeof tmp)
        return tc_fail(TC_E_USAGE, "--calib_stats_out: path too long");
    hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0)
        return tc_fail(TC_E_IO, "%s: cannot create the HDF5 statistics file", tmp);
    herr_t rc = 0;
    const tc_calib_dims *d = &s->d;
    char producer[64];
    snprintf(producer, sizeof producer, "trtconv %s", "0.1.0");
    rc |= attr_str(file, "format", H5_FORMAT);
    rc |= attr_i64(file, "format_version", H5_FORMAT_VERSION);
    rc |= attr_str(file, "producer", producer);
    rc |= attr_str(file, "model", s->model);
    rc |= attr_i64(file, "hidden_size", d->hidden);
    rc |= attr_i64(file, "num_hidden_layers", d->layers);
    rc |= attr_i64(file, "num_attention_heads", d->heads);
    rc |= attr_i64(file, "num_key_value_heads", d->kv_heads);
    rc |= attr_i64(file, "head_dim", d->head_dim);
    rc |= attr_i64(file, "intermediate_size", d->inter);
    rc |= attr_i64(file, "vocab_size", d->vocab);
    if (d->experts > 1)
        rc |= attr_i64(file, "num_experts", d->experts);
    rc |= attr_i64(file, "samples", s->samples);
    rc |= attr_i64(file, "tokens", s->tokens);
    rc |= attr_i64(file, "max_seq_length", s->max_seq_length);
    rc |= attr_str(file, "calib_dataset", s->calib_dataset);
    rc |= attr_str(file, "forward_dtype", s->forward_dtype);
    rc |= attr_str(file, "computed_layout", s->layout);
    rc |= attr_str(file, "note", "per-channel absolute maxima of every linear's input (x) and "
                   "output (y) over all calibration tokens and of its weight rows (w), before "
                   "smoothing: independent of alpha and of the tp/pp layout");
    /* Datasets by path; the groups on the way are created with them. */
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    char name[160];
    for (size_t e = 0; rc >= 0 && e < tc_calib_entry_count(d); e++) {
        int64_t layer, n;
        tc_linear lin;
        tc_stat_kind k;
        tc_calib_entry(d, e, &layer, &lin, &k);
        if (layer < 0 && s->lm_head_absent)
            continue;
        const float *v = tc_calib_get(s, layer, lin, k, &n);
        tc_calib_entry_path(layer, lin, k, name, sizeof name);
        hsize_t dims[1] = { (hsize_t)n };
        hid_t space = H5Screate_simple(1, dims, NULL);
        hid_t ds = H5Dcreate2(file, name, H5T_IEEE_F32LE, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        rc = ds < 0 ? -1 : H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
        if (ds >= 0)
            H5Dclose(ds);
        H5Sclose(space);
    }
    H5Pclose(lcpl);
    if (H5Fclose(file) < 0)
        rc = -1;
    if (rc < 0) {
        remove(tmp);
        return h5_fail(tmp, "writing the statistics");
    }
    if (rename(tmp, path) != 0) {
        remove(tmp);
        return tc_fail(TC_E_IO, "%s: cannot rename %s into place", path, tmp);
    }
    return TC_OK;
}

static tc_status read_attr_i64(hid_t file, const char *path, const char *name, int64_t *out)
{
    if (H5Aexists(file, name) <= 0)
        return tc_fail(TC_E_INPUT, "%s: attribute \"%s\" is missing", path, name);
    hid_t a = H5Aopen(file, name, H5P_DEFAULT);
    hid_t space = a < 0 ? -1 : H5Aget_space(a);
    hid_t type = a < 0 ? -1 : H5Aget_type(a);
    tc_status st = TC_OK;
    if (a < 0 || space < 0 || type < 0 || H5Tget_class(type) != H5T_INTEGER ||
        H5Sget_simple_extent_npoints(space) != 1 || H5Aread(a, H5T_NATIVE_INT64, out) < 0)
        st = tc_fail(TC_E_INPUT, "%s: attribute \"%s\" must be one integer", path, name);
    if (type >= 0)
        H5Tclose(type);
    if (space >= 0)
        H5Sclose(space);
    if (a >= 0)
        H5Aclose(a);
    return st;
}

static tc_status read_attr_str(hid_t file, const char *path, const char *name, char *buf,
                               size_t n, bool required)
{
    buf[0] = '\0';
    if (H5Aexists(file, name) <= 0)
        return required ? tc_fail(TC_E_INPUT, "%s: attribute \"%s\" is missing", path, name)
                        : TC_OK;
    hid_t a = H5Aopen(file, name, H5P_DEFAULT);
    hid_t type = a < 0 ? -1 : H5Aget_type(a);
    hid_t space = a < 0 ? -1 : H5Aget_space(a);
    tc_status st = TC_OK;
    size_t sz = type < 0 ? 0 : H5Tget_size(type);
    if (a < 0 || type < 0 || space < 0 || H5Tget_class(type) != H5T_STRING ||
        H5Tis_variable_str(type) > 0 || H5Sget_simple_extent_npoints(space) != 1 || sz == 0 ||
        sz > (1u << 20)) {
        st = tc_fail(TC_E_INPUT, "%s: attribute \"%s\" must be a fixed-length string", path, name);
    } else {
        char *tmp = calloc(1, sz + 1);
        hid_t mem = H5Tcopy(H5T_C_S1);
        H5Tset_size(mem, sz);
        if (!tmp || H5Aread(a, mem, tmp) < 0)
            st = tc_fail(TC_E_INPUT, "%s: cannot read attribute \"%s\"", path, name);
        else
            snprintf(buf, n, "%s", tmp);
        H5Tclose(mem);
        free(tmp);
    }
    if (space >= 0)
        H5Sclose(space);
    if (type >= 0)
        H5Tclose(type);
    if (a >= 0)
        H5Aclose(a);
    return st;
}

static tc_status read_dataset(hid_t file, const char *path, const char *name, float *dst,
                              int64_t len)
{
    if (H5Lexists(file, name, H5P_DEFAULT) <= 0)
        return tc_fail(TC_E_INPUT, "%s: dataset %s is missing", path, name);
    /* Every link on the way must be a hard link inside this file: an
     * external (or soft) link would make HDF5 open other files. */
    char part[256];
    for (const char *p = name; (p = strchr(p + 1, '/')) || 1;) {
        size_t n = p ? (size_t)(p - name) : strlen(name);
        if (n >= sizeof part)
            return tc_fail(TC_E_INPUT, "%s: dataset path %s too long", path, name);
        memcpy(part, name, n);
        part[n] = '\0';
        H5L_info_t li;
        if (n > 0 && (H5Lget_info(file, part, &li, H5P_DEFAULT) < 0 || li.type != H5L_TYPE_HARD))
            return tc_fail(TC_E_INPUT, "%s: %s is an external or soft link: refusing statistics "
                           "that point into other files", path, part);
        if (!p)
            break;
    }
    hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
    if (ds < 0)
        return tc_fail(TC_E_INPUT, "%s: %s is not a dataset", path, name);
    /* Raw data stored in external files (H5Pset_external) or a virtual
     * dataset would be read from other paths, FIFOs included. */
    hid_t dcpl = H5Dget_create_plist(ds);
    const bool external = dcpl < 0 || H5Pget_external_count(dcpl) != 0 ||
                          H5Pget_layout(dcpl) == H5D_VIRTUAL;
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (external) {
        H5Dclose(ds);
        return tc_fail(TC_E_INPUT, "%s: dataset %s keeps its data in external files (or is "
                       "virtual): refusing it", path, name);
    }
    hid_t space = H5Dget_space(ds), type = H5Dget_type(ds);
    tc_status st = TC_OK;
    hsize_t dims[2] = { 0, 0 };
    if (space < 0 || type < 0 || H5Tget_class(type) != H5T_FLOAT)
        st = tc_fail(TC_E_INPUT, "%s: dataset %s must hold floating-point values", path, name);
    else if (H5Sget_simple_extent_ndims(space) != 1 ||
             H5Sget_simple_extent_dims(space, dims, NULL) != 1 || dims[0] != (hsize_t)len)
        st = tc_fail(TC_E_INPUT, "%s: dataset %s must be 1-D with %lld values (the model's "
                     "channels)", path, name, (long long)len);
    else if (H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0)
        st = tc_fail(TC_E_IO, "%s: cannot read dataset %s", path, name);
    if (type >= 0)
        H5Tclose(type);
    if (space >= 0)
        H5Sclose(space);
    H5Dclose(ds);
    return st;
}

tc_status tc_calib_stats_read_h5(const char *path, const tc_calib_dims *expect,
                                 tc_calib_stats *out)
{
    memset(out, 0, sizeof *out);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    /* HDF5 opens the path itself: check first that it is a regular file (a
     * FIFO would block it forever). */
    int fd = -1;
    TC_TRY(tc_open_input(path, "--calib_stats", &fd));
    close(fd);
    if (H5Fis_hdf5(path) <= 0)
        return tc_fail(TC_E_INPUT, "%s: not an HDF5 file (or missing)", path);
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0)
        return tc_fail(TC_E_IO, "%s: cannot open the HDF5 file", path);
    char fmt[64];
    tc_status st = read_attr_str(file, path, "format", fmt, sizeof fmt, true);
    if (st == TC_OK && strcmp(fmt, H5_FORMAT) != 0)
        st = tc_fail(TC_E_INPUT, "%s: attribute format is \"%s\", expected \"%s\"", path, fmt,
                     H5_FORMAT);
    int64_t v = 0;
    if (st == TC_OK)
        st = read_attr_i64(file, path, "format_version", &v);
    if (st == TC_OK && v != H5_FORMAT_VERSION)
        st = tc_fail(TC_E_INPUT, "%s: format_version %lld is not supported (expected %d)", path,
                     (long long)v, H5_FORMAT_VERSION);
    static const char *const dim_names[] = { "num_hidden_layers", "hidden_size",
        "num_attention_heads", "num_key_value_heads", "head_dim", "intermediate_size",
        "vocab_size" };
    const int64_t want[] = { expect->layers, expect->hidden, expect->heads, expect->kv_heads,
                             expect->head_dim, expect->inter, expect->vocab };
    for (size_t i = 0; st == TC_OK && i < sizeof want / sizeof want[0]; i++) {
        st = read_attr_i64(file, path, dim_names[i], &v);
        if (st == TC_OK && v != want[i])
            st = tc_fail(TC_E_INPUT, "%s: statistics of another model: %s = %lld, the model has "
                         "%lld", path, dim_names[i], (long long)v, (long long)want[i]);
    }
    /* A mixture-of-experts model's file names its expert count: one
     * without it predates the experts' statistics (or is of a dense model). */
    const int64_t want_e = expect->experts > 1 ? expect->experts : 0;
    v = 0;
    if (st == TC_OK && H5Aexists(file, "num_experts") > 0)
        st = read_attr_i64(file, path, "num_experts", &v);
    if (st == TC_OK && (v > 1 ? v : 0) != want_e)
        st = want_e && !v ? tc_fail(TC_E_INPUT, "%s: the model has %lld experts but the file holds "
                                    "no expert statistics (written by an older trtconv, or for a "
                                    "dense model): calibrate again", path, (long long)want_e)
                          : tc_fail(TC_E_INPUT, "%s: statistics of another model: num_experts = "
                                    "%lld, the model has %lld", path, (long long)v,
                                    (long long)want_e);
    if (st == TC_OK)
        st = tc_calib_stats_alloc(expect, out);
    if (st == TC_OK) {
        int64_t x;
        read_attr_str(file, path, "model", out->model, sizeof out->model, false);
        read_attr_str(file, path, "calib_dataset", out->calib_dataset, sizeof out->calib_dataset,
                      false);
        read_attr_str(file, path, "forward_dtype", out->forward_dtype, sizeof out->forward_dtype,
                      false);
        read_attr_str(file, path, "computed_layout", out->layout, sizeof out->layout, false);
        /* Provenance is optional (hand-made files); the values are not used. */
        if (H5Aexists(file, "samples") > 0 && read_attr_i64(file, path, "samples", &x) == TC_OK)
            out->samples = x;
        if (H5Aexists(file, "tokens") > 0 && read_attr_i64(file, path, "tokens", &x) == TC_OK)
            out->tokens = x;
        if (H5Aexists(file, "max_seq_length") > 0 &&
            read_attr_i64(file, path, "max_seq_length", &x) == TC_OK)
            out->max_seq_length = x;
    }
    char name[160];
    for (size_t e = 0; st == TC_OK && e < tc_calib_entry_count(expect); e++) {
        int64_t layer, n;
        tc_linear lin;
        tc_stat_kind k;
        tc_calib_entry(expect, e, &layer, &lin, &k);
        float *dst = tc_calib_get(out, layer, lin, k, &n);
        tc_calib_entry_path(layer, lin, k, name, sizeof name);
        /* lm_head is all there or all absent (not collected). */
        if (layer < 0 && k == TC_STAT_X && H5Lexists(file, "/lm_head", H5P_DEFAULT) <= 0)
            out->lm_head_absent = true;
        if (layer < 0 && out->lm_head_absent)
            continue;
        st = read_dataset(file, path, name, dst, n);
    }
    H5Fclose(file);
    if (st == TC_OK)
        st = tc_calib_stats_check(out, path);
    if (st != TC_OK)
        tc_calib_stats_free(out);
    return st;
}

#else

tc_status tc_calib_stats_write_h5(const tc_calib_stats *s, const char *path)
{
    (void)s;
    return tc_fail(TC_E_USAGE, "%s: this trtconv was built without HDF5 (install "
                   "libhdf5-dev and rebuild)", path);
}

tc_status tc_calib_stats_read_h5(const char *path, const tc_calib_dims *expect,
                                 tc_calib_stats *out)
{
    (void)expect;
    memset(out, 0, sizeof *out);
    return tc_fail(TC_E_USAGE, "%s: this trtconv was built without HDF5 (install "
                   "libhdf5-dev and rebuild)", path);
}

#endif
